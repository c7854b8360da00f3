"""Where a base-tier model spends its time: ONNX Runtime's own profiler, one thread, 3 s of audio.

    python benchmarks/base_profile.py english-base runs/base/english-base/actors01-04.fp32.onnx ... \
        [--seconds 3] [--runs 50] [--out benchmarks/results/base-profile.md]

Each model (a shipped name or a path) runs ``--runs`` times on the same generated clip in one session with
``SessionOptions.enable_profiling``; every node's kernel time is summed, split into the graph's parts by node name
(log-mel front-end, conv stem, attention projections, attention itself, feed-forward, layer norms, the rest:
positions, pooling, head, quantization of activations outside those) and divided by the number of runs. Profiling
adds a little overhead per node, so the sum is a bit above ``edge-ser bench``'s time: read the shares.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.report import cpu_name

PARTS = (
    ("log-mel front-end", re.compile(r"^/logmel/")),
    ("conv stem", re.compile(r"^/conv[12]/")),
    ("attention projections (q, k, v, out)", re.compile(r"/self_attn/(q|k|v|out)_proj/")),
    ("attention (scores, softmax, weighted sum)", re.compile(r"/self_attn/")),
    ("feed-forward (fc1, GELU, fc2)", re.compile(r"/(fc1|fc2|activation_fn)/")),
    ("layer norms", re.compile(r"layer_norm")),
)
OTHER = "other (positions, pooling, head, fused or renamed nodes)"


def part(node: str) -> str:
    return next((name for name, pattern in PARTS if pattern.search(node)), OTHER)


def profile(model: str, seconds: float, runs: int) -> dict:
    """Per part and per operator type, kernel ms per run; the session's own median wall ms beside them."""
    import time

    import onnxruntime as ort

    from edge_ser.model import resolve

    path = resolve(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    wave = (0.1 * np.random.default_rng(0).standard_normal((1, int(seconds * 16000)))).astype(np.float32)
    feed = {session.get_inputs()[0].name: wave}
    session.run(None, feed)  # warm-up, not counted
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        session.run(None, feed)
        walls.append(1000 * (time.perf_counter() - t))
    trace = Path(session.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    by_part: Counter = Counter()
    by_op: Counter = Counter()
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        op = e["args"].get("op_name", "?")
        if op in ("Loop", "If", "Scan"):  # a control-flow node's time is its body's, counted node by node
            continue
        node = e["name"][: -len("_kernel_time")]
        by_part[part(node)] += e["dur"] / 1000
        by_op[op] += e["dur"] / 1000
    scale = 1.0 / (runs + 1)  # the warm-up run is in the trace too
    return {
        "model": str(model),
        "bytes": path.stat().st_size,
        "wall_ms": float(np.median(walls)),
        "parts": {k: v * scale for k, v in by_part.items()},
        "ops": {k: v * scale for k, v in by_op.most_common()},
    }


def markdown(rows: list[dict], seconds: float, runs: int, command: str) -> str:
    names = [Path(r["model"]).name for r in rows]
    parts = [name for name, _ in PARTS] + [OTHER]
    lines = [
        f"# Where the base tier's time goes ({seconds:g} s of audio, one thread, ONNX Runtime profiler)",
        "",
        f"Kernel ms per run, mean of {runs} runs (share of the profiled total); `{command}`; "
        f"{platform.machine()} {cpu_name()}, load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| part | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(rows),
    ]
    for p in parts:
        cells = []
        for r in rows:
            total = sum(r["parts"].values())
            v = r["parts"].get(p, 0.0)
            cells.append(f"{v:.2f} ({100 * v / total:.0f} %)")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines.append("| **profiled total** | " + " | ".join(f"**{sum(r['parts'].values()):.2f}**" for r in rows) + " |")
    lines.append("| session wall ms, median (profiling on) | " + " | ".join(f"{r['wall_ms']:.2f}" for r in rows) + " |")
    lines.append("| file bytes | " + " | ".join(f"{r['bytes']:,}" for r in rows) + " |")
    lines += ["", "Top operator types (kernel ms per run):", ""]
    for r, name in zip(rows, names):
        top = ", ".join(f"{op} {ms:.2f}" for op, ms in list(r["ops"].items())[:8])
        lines.append(f"- `{name}`: {top}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="shipped model names or ONNX paths")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--out", type=Path, help="write the markdown table here (else print it)")
    args = parser.parse_args(argv)
    rows = [profile(m, args.seconds, args.runs) for m in args.models]
    command = "python benchmarks/base_profile.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(rows, args.seconds, args.runs, command)
    if args.out:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
