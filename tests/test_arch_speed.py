"""benchmarks/arch_speed.py: variants of a recorded config, exported with fresh weights and timed side by side."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from benchmarks import arch_speed  # noqa: E402
from edge_ser import Recognizer  # noqa: E402


def base_config() -> dict:
    return next(iter(json.loads(arch_speed.BASE.read_text())["folds"].values()))["config"]


def test_variant_config_merges_frontend_and_backbone():
    base = base_config()
    mel32 = arch_speed.variant_config(base, {"frontend": {"n_mels": 32}, "dropout": 0.0})
    assert mel32["frontend"] == {**base["frontend"], "n_mels": 32}
    assert mel32["backbone"] == base["backbone"] and mel32["dropout"] == 0.0
    assert len(mel32["normalization"]["mean"]) == len(mel32["normalization"]["std"]) == 32  # width follows
    deeper = arch_speed.variant_config(base, {"backbone": {"depth": 1}})
    assert deeper["backbone"] == {**base["backbone"], "depth": 1}
    assert deeper["normalization"] == base["normalization"]  # same front-end: statistics kept
    assert base["frontend"]["n_mels"] == 64 and "depth" not in base["backbone"]  # the base is not modified


def test_exported_variant_is_a_runtime_model(tmp_path: Path):
    config = arch_speed.variant_config(base_config(), {"frontend": {"n_mels": 32}, "backbone": {"depth": 1}})
    rec = Recognizer(arch_speed.export_variant(config, tmp_path / "v.onnx"))
    c = rec.contract
    assert c.frontend.n_mels == 32 and [h.name for h in c.heads] == ["emotion"]
    assert 0 < c.parameters < Recognizer("english").contract.parameters  # depth 1 drops the residual blocks
    assert (
        rec.predict(0.1 * np.random.default_rng(0).standard_normal(48000), sample_rate=16000).label in c.heads[0].labels
    )


def test_report_times_every_variant(tmp_path: Path):
    out = tmp_path / "speed.md"
    assert arch_speed.main(["--variant", 'mel32={"frontend": {"n_mels": 32}}', "--runs", "3", "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
    names = [r.split(" | ")[0] for r in rows]
    assert names[:2] == ["| `english` (shipped)", "| as in `ship-english-cv.json`"] and names[2].startswith("| mel32: ")
    params = [int(r.split(" | ")[1].replace(",", "")) for r in rows]
    assert params[0] == params[1] == params[2]  # 32 bands reach the same 4 bins in the last stage: same weights
    assert all(float(r.split(" | ")[4]) > 0 for r in rows)  # total CPU ms
