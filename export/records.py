"""Recording a finished training run: every fold exported (FP32 and INT8) and scored on its test speakers.

What ``benchmarks/results.py`` tabulates and ``export.ship`` records for a shipped recipe's folds.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def export_fold(
    fold_dir: Path, data: str, out: Path, float_layers: int | None = None, scheme: str | None = None
) -> dict[str, Any]:
    """``edge-ser export FOLD --int8 --data DATA``: writes ``out`` (INT8) and ``out.fp32.onnx``; its parity report."""
    from .pipeline import ExportConfig, export

    config = ExportConfig(fold_dir, out, int8=True, data=data, float_layers=float_layers, scheme=scheme)
    return export(config).parity


def mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


def _reusable(saved: Path, out: Path, checkpoint: str) -> dict[str, Any] | None:
    """The parity report of an earlier export of this very checkpoint (sha256 ``checkpoint``), or None: a run
    directory re-trained under the same name must be exported again, not scored from the old files."""
    if not (saved.is_file() and out.is_file() and out.with_suffix(".fp32.onnx").is_file()):
        return None
    parity = json.loads(saved.read_text())
    if parity.pop("checkpoint_sha256", None) != checkpoint:
        return None
    return parity


def record_run(run: Path, data: str, work: Path, records: Path, reuse: bool, export: bool = True) -> Path:
    """Exports every fold of a finished run and keeps what the table needs in ``records/<run>.json``.

    The record holds the run's report and, per fold, the export's parity report (ONNX FP32/INT8
    scores on the test speakers) and the checkpoint config (no weights), so the table can be
    rebuilt after the run directory is gone. Random-split runs (and any with ``export=False``) are
    recorded without export: only their torch scores are shown.
    """
    report = json.loads((run / "report.json").read_text())
    missing = [name for name in report["folds"] if not (run / name / "model.pt").is_file()]
    if missing or not report["folds"]:
        raise ValueError(f"{run}: unfinished run (no checkpoint for folds {missing or 'any'})")
    folds = {}
    if export and report["protocol"] != "random":
        for name in report["folds"]:
            out = work / run.name / f"{name}.onnx"
            saved = out.with_suffix(".parity.json")
            checkpoint = hashlib.sha256((run / name / "model.pt").read_bytes()).hexdigest()
            parity = _reusable(saved, out, checkpoint) if reuse else None
            if parity is None:
                print(f"results: exporting {run.name}/{name}", file=sys.stderr)
                parity = export_fold(run / name, data, out)
                saved.write_text(json.dumps({**parity, "checkpoint_sha256": checkpoint}))
            folds[name] = {"parity": parity, "config": json.loads((run / name / "config.json").read_text())}
    records.mkdir(parents=True, exist_ok=True)
    path = records / f"{run.name}.json"
    path.write_text(json.dumps({"run": run.name, "report": report, "folds": folds}, indent=1) + "\n")
    return path
