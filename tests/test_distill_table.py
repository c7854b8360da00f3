"""benchmarks/distill_table.py: per-fold table, means over the folds each run finished, learning curves."""

import json
from pathlib import Path

from benchmarks.distill_table import main


def _fold(run: Path, name: str, ua: float, epochs: int = 3) -> None:
    folder = run / name
    folder.mkdir(parents=True)
    history = [{"epoch": e + 1, "loss": 2.0 - 0.1 * e, "val_ua": 0.3 + 0.05 * e, "seconds": 1.0} for e in range(epochs)]
    metrics = {"fold": name, "best_epoch": epochs, "seconds_per_epoch": 1.0, "history": history}
    metrics["test"] = {"emotion": {"ua": ua}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "config.json").write_text(json.dumps({"training": {"command": f"train {run.name}"}}))


def test_table_means_over_finished_folds_and_curves(tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _fold(a, "f1", 0.40)
    _fold(a, "f2", 0.60)
    _fold(b, "f1", 0.50)
    out = tmp_path / "table"
    assert main([f"plain={a}", f"teacher={b}", "--out", str(out), "--curves"]) == 0
    text = out.with_suffix(".md").read_text()
    assert "| plain | 40.0 | 60.0 | **50.0** ± 10.0 (2) |" in text
    assert "| teacher | 50.0 | – | **50.0** ± 0.0 (1) |" in text and "`train b`" in text
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["plain"]["ua_per_fold"] == {"f1": 40.0, "f2": 60.0}
    assert out.with_suffix(".png").stat().st_size > 1000
