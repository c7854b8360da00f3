"""benchmarks/int8_variants.py: every INT8 variant of a (tiny) fold checkpoint, scored and tabulated."""

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from test_train import toy_pcnn_args  # noqa: E402

from benchmarks import int8_variants  # noqa: E402
from models import train  # noqa: E402


def test_variants_table(tmp_path: Path):
    manifest, argv = toy_pcnn_args(tmp_path)
    run = tmp_path / "runs" / "csv-pcnn"
    assert train.main([*argv, "--protocol", "loso", "--folds", "0", "--out", str(run)]) == 0
    out = tmp_path / "variants.md"
    fold = next(p.parent for p in run.glob("*/model.pt"))
    assert (
        int8_variants.main([str(fold), "--data", str(manifest), "--depths", "0,1", "--runs", "3", "--out", str(out)])
        == 0
    )
    rows = {
        line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in out.read_text().splitlines()[4:] if line
    }
    expected = {"FP32", "dynamic (ConvInteger, uint8)", "A16W8 (16-bit activations)"}
    expected |= {f"static {m}, {d} float" for m in ("MinMax", "Percentile", "Entropy") for d in (0, 1)}
    assert set(rows) == expected
    assert rows["FP32"][3:] == ["100.0", "100.0", "100.0 |"]  # FP32 agrees with itself everywhere
    fp32_kib = float(rows["FP32"][0])
    assert all(float(r[0]) < fp32_kib for name, r in rows.items() if name != "FP32")  # INT8 files are smaller
    assert rows["static Percentile, 0 float"][1] == ""  # only MinMax, FP32 and dynamic are timed
    assert float(rows["static MinMax, 1 float"][1]) > 0
    assert float(rows["A16W8 (16-bit activations)"][1]) > 0
    assert all(0 <= float(r[5].rstrip(" |")) <= 100 for r in rows.values())
