"""``edge-ser bench MODEL... [--threads 1] [--seconds 3] [--runs 300] [--warmup 20] [--json|--csv|--markdown]``.

Per model: parameters (from the contract), MACs per second of audio (counted from the graph,
see :mod:`benchmarks.macs`), file size; latency percentiles of the front-end (edge_ser
front-end + normalization, as ``Recognizer`` computes it; nothing for waveform-in models),
of inference (``session.run`` on the windows' batches) and of ``Recognizer.predict`` end to
end, all on one fixed input of ``--seconds`` of audio after ``--warmup`` calls; the real-time
factor (total p50 / audio duration); cold start and peak resident memory of a fresh process
(import, load, one prediction); and with ``--data DIR --dataset NAME`` UA/WA on that corpus.
Several models print as one comparison table.

Timings and memory are taken in fresh interpreters whose numpy thread pools (OpenBLAS, MKL, OpenMP)
are capped at ``--threads``, like ONNX Runtime's: numpy is already loaded when a subcommand starts,
too late to cap its threads in this process, and an uncapped BLAS pool fighting for busy cores can
slow the front-end tenfold.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import edge_ser
from edge_ser import windows
from edge_ser.errors import EdgeSERError, ModelError
from edge_ser.model import OnnxModel
from edge_ser.recognizer import MAX_BATCH, Recognizer

from . import macs

PERCENTILES = (50, 90, 99)
PARTS = ("frontend", "inference", "total")
EVAL_BATCH = 64  # utterances per predict_batch call: bounded memory on large corpora

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")

# Fresh interpreter, argv = model path, threads, samples, rate. Times `import edge_ser` (numpy is
# already loaded), loading the model and the first prediction; then reads the peak resident memory.
_FRESH = """
import json, resource, sys, time
import numpy as np
path, threads, n, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
x = (0.1 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)
t = time.perf_counter()
from edge_ser import Recognizer, EdgeSERError
try:
    Recognizer(path, threads=threads).predict(x, sample_rate=rate)
except EdgeSERError as exc:
    print(json.dumps({"error": str(exc)}))
    sys.exit()
cold = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
print(json.dumps({"cold_start_ms": 1e3 * cold, "peak_rss_mb": peak}))
"""

# Fresh interpreter, argv = model path, threads, seconds, runs, warmup, progress (0/1): `latency`.
_LATENCY = """
import json, sys
from benchmarks.bench import latency
from edge_ser import EdgeSERError
path, threads, seconds, runs, warmup, progress = sys.argv[1:]
try:
    print(json.dumps(latency(path, int(threads), float(seconds), int(runs), int(warmup), progress == "1")))
except EdgeSERError as exc:
    print(json.dumps({"error": str(exc)}))
"""


def _number(kind: type, minimum: float, strict: bool = False) -> Any:
    """An argparse type: ``kind`` at least ``minimum`` (above it when ``strict``)."""

    def parse(text: str) -> Any:
        value = kind(text)
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum}, got {text}")
        return value

    return parse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0]
    add = parser.add_argument
    add("models", nargs="*", default=["default"], metavar="MODEL", help="shipped model names or .onnx paths")
    add("--threads", type=_number(int, 0), default=1, help="ONNX Runtime intra-op threads (default: %(default)s)")
    add("--seconds", type=_number(float, 0, strict=True), default=3.0, help="audio per call (default: %(default)s)")
    add("--runs", type=_number(int, 1), default=300, help="measured calls per model (default: %(default)s)")
    add("--warmup", type=_number(int, 0), default=20, help="calls before measuring (default: %(default)s)")
    fmt = parser.add_mutually_exclusive_group()
    for name in ("json", "csv", "markdown"):
        fmt.add_argument(f"--{name}", dest="format", action="store_const", const=name)
    parser.set_defaults(format="markdown")
    add("--data", help="corpus root: also report UA/WA on all its utterances (with --dataset)")
    add("--dataset", help="corpus name for --data (casia, ravdess, ...)")
    add("--no-progress", action="store_true", help="no progress bar (also off when stderr is not a terminal)")


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool, description: str, unit: str) -> Any:
    """A tqdm bar on stderr, or a stand-in that does nothing (disabled, or tqdm not installed)."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr, leave=False)


def bench_signal(seconds: float, rate: int) -> np.ndarray:
    """The fixed input: seeded noise at 0.1 RMS, never silent, identical in every process."""
    return (0.1 * np.random.default_rng(0).standard_normal(int(round(seconds * rate)))).astype(np.float32)


def latency(path: str, threads: int, seconds: float, runs: int, warmup: int, progress: bool) -> dict[str, Any]:
    """Percentiles in ms of front-end, inference and total time on ``seconds`` of audio, in this process."""
    rec = Recognizer(path, threads=threads)
    c = rec.contract
    model = OnnxModel(path, threads=threads)
    outputs = [h.output for h in c.heads]
    x = bench_signal(seconds, rec.sample_rate)
    window, hop = (int(round(s * c.sample_rate)) for s in (c.window_seconds, c.hop_seconds))
    chunks = [x[s:e] for s, e in windows.plan(len(x), window, hop)]
    times: dict[str, list[float]] = {part: [] for part in PARTS}
    bar = _progress(warmup + runs, progress, f"{Path(path).name}: latency", "call")
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        features = [c.model_input(chunk) for chunk in chunks]
        t1 = time.perf_counter()
        for b in range(0, len(features), MAX_BATCH):
            model.session.run(outputs, {c.input_name: np.stack(features[b : b + MAX_BATCH])})
        t2 = time.perf_counter()
        rec.predict(x, sample_rate=rec.sample_rate)
        t3 = time.perf_counter()
        if i >= warmup:
            for part, dt in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2)):
                times[part].append(1e3 * dt)
        bar.update()
    bar.close()
    return {
        "windows": len(chunks),
        "latency_ms": {
            part: {f"p{q}": float(v) for q, v in zip(PERCENTILES, np.percentile(times[part], PERCENTILES))}
            for part in PARTS
        },
    }


def _in_fresh_process(code: str, argv: list[str], threads: int, show_stderr: bool = False) -> dict[str, Any]:
    """Run ``code`` in a new interpreter importing this edge_ser, numpy's threads capped; its last line is JSON."""
    env = dict(os.environ)
    roots = {str(Path(module).resolve().parents[1]) for module in (edge_ser.__file__, __file__)}
    env["PYTHONPATH"] = os.pathsep.join([*sorted(roots), *filter(None, [env.get("PYTHONPATH")])])
    if threads > 0:
        env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    command = [sys.executable, "-c", code, *argv]
    stderr = None if show_stderr else subprocess.PIPE
    proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        reason = ((proc.stderr or "").strip().splitlines() or [f"exit status {proc.returncode}"])[-1][:200]
        raise ModelError(f"{argv[0]}: measurement in a fresh process failed ({reason})")
    result = json.loads(lines[-1])
    if "error" in result:
        raise EdgeSERError(result["error"])
    return result


def measure_latency(path: str, threads: int, seconds: float, runs: int, warmup: int, progress: bool) -> dict:
    """:func:`latency` in a fresh process (its progress bar on this stderr)."""
    argv = [path, str(threads), str(seconds), str(runs), str(warmup), "1" if progress else "0"]
    return _in_fresh_process(_LATENCY, argv, threads, show_stderr=True)


def fresh_process(path: str, threads: int, seconds: float, rate: int) -> dict[str, float]:
    """Cold start (ms) and peak resident memory (MiB) of a new interpreter making one prediction."""
    return _in_fresh_process(_FRESH, [path, str(threads), str(int(round(seconds * rate))), str(rate)], threads)


def accuracy(rec: Recognizer, corpus: Any, progress: bool) -> dict[str, Any]:
    """UA/WA over every corpus utterance whose label the model has (class order: ``rec.labels``)."""
    from models.metrics import scores

    labels = list(rec.labels)
    utterances = [u for u in corpus.utterances if u.emotion in labels]
    excluded = len(corpus.utterances) - len(utterances)
    if not utterances:
        raise EdgeSERError(f"no {corpus.name} label is among the model's labels {labels}")
    bar = _progress(len(utterances), progress, f"{Path(rec.path).name}: {corpus.name}", "utt")
    y_true, y_pred, failed = [], [], 0
    for b in range(0, len(utterances), EVAL_BATCH):
        part = utterances[b : b + EVAL_BATCH]
        for u, p in zip(part, rec.predict_batch([u.path for u in part], on_error="return")):
            if isinstance(p, EdgeSERError) or p.label is None:
                failed += 1
                continue
            y_true.append(labels.index(u.emotion))
            y_pred.append(labels.index(p.label))
        bar.update(len(part))
    bar.close()
    if not y_true:
        raise EdgeSERError(f"no {corpus.name} utterance could be predicted")
    s = scores(y_true, y_pred, len(labels))
    return {
        "dataset": corpus.name,
        "scored": len(y_true),
        "failed": failed,
        "excluded": excluded,
        "ua": s["ua"],
        "wa": s["wa"],
    }


def bench_model(rec: Recognizer, args: argparse.Namespace, corpus: Any, progress: bool) -> dict[str, Any]:
    """Every figure for one model, as one JSON-ready object."""
    c = rec.contract
    try:
        mac_rate: float | None = macs.macs_per_second(rec.path, c, args.seconds)
    except ValueError as exc:
        print(f"edge-ser: warning: {rec.path}: MACs not counted ({exc})", file=sys.stderr)
        mac_rate = None
    timing = measure_latency(rec.path, args.threads, args.seconds, args.runs, args.warmup, progress)
    fresh = fresh_process(rec.path, args.threads, args.seconds, rec.sample_rate)
    result = {
        "model": Path(rec.path).name,
        "name": c.name,
        "path": rec.path,
        "parameters": c.parameters,
        "macs_per_second": mac_rate,
        "size_bytes": Path(rec.path).stat().st_size,
        "seconds": args.seconds,
        "threads": args.threads,
        "runs": args.runs,
        "warmup": args.warmup,
        **timing,
        "rtf": timing["latency_ms"]["total"]["p50"] / 1e3 / args.seconds,
        "cold_start_ms": fresh["cold_start_ms"],
        "peak_rss_mb": fresh["peak_rss_mb"],
        "accuracy": None,
    }
    if corpus is not None:
        result["accuracy"] = accuracy(rec, corpus, progress)
    return result


def _si(value: float | None) -> str:
    if value is None:
        return "n/a"
    for scale, unit in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def flat(result: dict[str, Any]) -> dict[str, Any]:
    """One CSV row: nested latency and accuracy flattened into columns."""
    row = {k: v for k, v in result.items() if k not in ("latency_ms", "accuracy")}
    for part, values in result["latency_ms"].items():
        row.update({f"{part}_{q}_ms": v for q, v in values.items()})
    acc = result["accuracy"] or {}
    row.update({k: acc.get(k) for k in ("dataset", "scored", "failed", "excluded", "ua", "wa")})
    return row


def markdown(results: list[dict[str, Any]]) -> str:
    """One comparison table, a row per model, under a line saying how it was measured."""
    scored = any(r["accuracy"] for r in results)
    r0 = results[0]
    head = [
        "model",
        "params",
        "MAC/s",
        "size KiB",
        *(f"{p} ms p50/p90/p99" for p in ("front-end", "inference", "total")),
        "RTF",
        "cold start ms",
        "peak RSS MiB",
    ]
    head += ["UA %", "WA %"] if scored else []
    lines = [
        f"`edge-ser bench`: {r0['seconds']:g} s of audio, threads {r0['threads']}, {r0['runs']} runs after "
        f"{r0['warmup']} warm-up; {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"onnxruntime {_ort_version()}.",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    for r in results:
        cells = [
            r["model"],
            f"{r['parameters']:,}",
            _si(r["macs_per_second"]),
            f"{r['size_bytes'] / 1024:.1f}",
            *(" / ".join(f"{r['latency_ms'][p][f'p{q}']:.3f}" for q in PERCENTILES) for p in PARTS),
            f"{r['rtf']:.4f}",
            f"{r['cold_start_ms']:.0f}",
            f"{r['peak_rss_mb']:.1f}",
        ]
        if scored:
            acc = r["accuracy"]
            cells += [f"{100 * acc['ua']:.1f}", f"{100 * acc['wa']:.1f}"] if acc else ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def run(args: argparse.Namespace) -> int:
    if (args.data is None) != (args.dataset is None):
        raise EdgeSERError("--data and --dataset go together")
    recognizers = [Recognizer(m, threads=args.threads) for m in args.models]  # a bad model fails before measuring
    corpus = None
    if args.data is not None:
        from models.corpora import load_corpus

        corpus = load_corpus(args.dataset, args.data)
    progress = not args.no_progress and sys.stderr.isatty()
    results = [bench_model(rec, args, corpus, progress) for rec in recognizers]
    if args.format == "json":
        print(json.dumps(results, indent=2))
    elif args.format == "csv":
        rows = [flat(r) for r in results]
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        print(markdown(results))
    return 0
