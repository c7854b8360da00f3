"""Shipped FP32-of-INT8 files with and without their redundant ``Relu`` nodes: time per window, outputs.

    python -m benchmarks.relu_pruning [--runs 3000] [--out benchmarks/results/relu-pruning.md]

``export.quantize.to_float`` now drops the ``Relu`` nodes that the quantizer's zero-based ranges leave on values
that cannot be negative (:func:`export.quantize.drop_redundant_relus`); the files shipped before it still carry
them. Each model's two sessions (one thread each, as ``Recognizer`` opens them) take turns call by call on one
core: only two sessions, as an app has one, so neither is timed with the other's weights evicted from cache.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from benchmarks.report import cpu_name, emit
from benchmarks.runtime import interleaved
from edge_ser import Recognizer
from edge_ser.model import session_options
from export.quantize import drop_redundant_relus


def session(model: bytes | str) -> ort.InferenceSession:
    """One thread, as ``Recognizer`` opens a model."""
    return ort.InferenceSession(model, session_options(1), providers=["CPUExecutionProvider"])


def rows(name: str, runs: int) -> str:
    rec = Recognizer(name)
    model = onnx.load(rec.path)
    pruned = drop_redundant_relus(model)
    sessions = {"shipped": session(rec.path), "pruned": session(pruned.SerializeToString())}
    x = (0.1 * np.random.default_rng(0).standard_normal(rec.window_samples)).astype(np.float32)
    feeds = {rec.contract.input_name: rec.contract.model_input(x)[None]}
    out = {k: s.run(None, feeds) for k, s in sessions.items()}
    equal = all(np.array_equal(a, b) for a, b in zip(out["shipped"], out["pruned"]))
    ms = interleaved({k: (lambda s=s: s.run(None, feeds)) for k, s in sessions.items()}, runs, warmup=50)
    relus = [sum(n.op_type == "Relu" for n in m.graph.node) for m in (model, pruned)]
    (a, _), (b, _) = ms["shipped"], ms["pruned"]
    return f"| `{name}` | {relus[0]} | {relus[1]} | {a:.3f} | {b:.3f} | {b / a:.3f} | {equal} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    cpu = cpu_name()
    load = os.getloadavg()[0]
    body = [rows(name, args.runs) for name in ("english", "chinese")]
    emit(
        [
            "# Redundant Relu nodes in the shipped files",
            "",
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {cpu} · pinned to one core · onnxruntime "
            f"{ort.__version__} · load average {load:.2f} at the start",
            "",
            "Command: `python -m benchmarks.relu_pruning --runs " + str(args.runs) + "`",
            "",
            f"One window of 3 s, CPU ms per call, median of {args.runs} calls, the two sessions of a model in turn:",
            "",
            "| model | Relu nodes | after `drop_redundant_relus` | shipped ms | pruned ms | ratio | outputs equal |",
            "|---|---:|---:|---:|---:|---:|---|",
            *body,
        ],
        args.out,
    )


if __name__ == "__main__":
    main()
