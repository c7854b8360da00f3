"""FP32 vs INT8 per speaker-independent fold: UA change, agreement, size and latency.

    python benchmarks/export_folds.py RUN_DIR --data CORPUS_DIR [--out benchmarks/results/int8.md]

Exports every fold checkpoint of an ``edge-ser train`` run with ``--int8`` (calibrated on
that fold's training speakers), evaluates both files on the fold's test speakers through
``edge_ser.Recognizer``, and tabulates the export's own parity reports.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.report import emit
from export.records import export_fold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    folds = sorted(p.parent for p in args.run.glob("*/model.pt"))
    rows, deltas = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for fold in folds:
            p = export_fold(fold, args.data, Path(tmp) / f"{fold.name}.onnx")
            delta = 100 * (p["int8_ua"] - p["fp32_ua"])
            deltas.append(delta)
            rows.append(
                f"| {fold.name} | {100 * p['fp32_ua']:.1f} | {100 * p['int8_ua']:.1f} | {delta:+.1f} | "
                f"{100 * p['fp32_int8_top1_agreement']:.1f} | "
                f"{p['fp32_bytes'] / 1024:.0f} | {p['int8_bytes'] / 1024:.0f} | "
                f"{p['fp32_latency_ms_3s']:.2f} | {p['int8_latency_ms_3s']:.2f} | "
                f"{p['torch_vs_onnx_fp32_max_abs_logit_diff']:.1e} |"
            )
    lines = [
        f"# FP32 vs INT8: {args.run.name}",
        "",
        f"{platform.machine()}, {os.cpu_count()} cores; latency = median `Recognizer.predict` on 3 s, one thread.",
        "",
        "| fold | FP32 UA % | INT8 UA % | Δ UA | top-1 agreement % | FP32 KiB | INT8 KiB | FP32 ms | INT8 ms | "
        "torch vs ONNX max |Δlogit| |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Mean Δ UA over {len(deltas)} folds: {np.mean(deltas):+.2f} points.",
        "",
        f"Command: `python benchmarks/export_folds.py {args.run} --data {args.data}`",
    ]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
