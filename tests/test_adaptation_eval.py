"""benchmarks/adaptation.py: the causal adaptation protocol on a tiny trained run."""

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from test_train import make_corpus, write_manifest  # noqa: E402

from benchmarks import adaptation  # noqa: E402
from models import train  # noqa: E402


def test_causal_adaptation_table(tmp_path: Path):
    corpus = make_corpus(tmp_path / "toy", per_speaker=6)
    manifest = write_manifest(corpus, tmp_path / "toy" / "manifest.csv")
    common = ["--dataset", "csv", "--data", str(manifest), "--arch", "pcnn", "--epochs", "1", "--batch-size", "8"]
    common += ["--window", "0.5", "--hop", "0.25", "--no-progress", "--cache-dir", str(tmp_path / "cache")]
    common += ["--protocol", "loso", "--folds", "0,1"]
    run, base = tmp_path / "runs" / "csv-spk", tmp_path / "runs" / "csv-global"
    assert train.main([*common, "--normalization", "speaker", "--out", str(run)]) == 0
    assert train.main([*common, "--out", str(base)]) == 0
    out, record = tmp_path / "adaptation.md", tmp_path / "adaptation.json"
    argv = [str(run), "--baseline", str(base), "--data", str(manifest), "--json", str(record), "--out", str(out)]
    assert adaptation.main(argv) == 0
    result = json.loads(record.read_text())
    assert set(result["folds"]) == {"s0", "s1"}
    for name, row in result["folds"].items():
        assert set(row) == {"0", "1", "3", "5", "10", "20", "all", "transductive", "non_adapted"}
        assert all(0.0 <= v <= 1.0 for v in row.values())
        spk = json.loads((run / "report.json").read_text())["folds"][name]["test"]["emotion"]["ua"]
        assert row["transductive"] == spk
    # 12 utterances per test speaker: budgets 20 and "all" see the same previous utterances
    assert all(row["20"] == row["all"] for row in result["folds"].values())
    text = out.read_text()
    assert text.startswith("# On-device speaker adaptation") and "| s0 |" in text and "transductive bound" in text
    assert adaptation.main(argv) == 0 and out.read_text().count("## csv: csv-spk") == 1  # replaced, not appended
    assert adaptation.main([*argv, "--prior", "3"]) == 0  # a section of its own, beside the plain one
    text = out.read_text()
    assert text.count("## csv: csv-spk\n") == 1 and text.count("## csv: csv-spk (prior 3)\n") == 1
    assert json.loads(record.read_text())["prior"] == 3.0
    with pytest.raises(SystemExit, match="not trained with --normalization speaker"):
        adaptation.main([str(base), "--data", str(manifest)])
