"""``edge-ser bench MODEL... [--threads 1] [--seconds 3] [--runs 300] [--warmup 20] [--json|--csv|--markdown]``.

Per model: parameters (from the contract), MACs per second of audio (counted by ONNX Runtime, see
:mod:`edge_ser.macs`), file size; latency percentiles of the front-end (features and normalization of
every window, as ``Recognizer`` computes them; nothing for waveform-in models), of inference (one
``session.run`` per window) and of ``Recognizer.predict`` end to end, on one fixed input of
``--seconds`` of audio after ``--warmup`` calls, the models taking turns call by call in a new shuffled
order each round (so their ratios come from one run, and no model always follows the same one: a model
that runs right after a large one finds its data evicted from the caches), in wall-clock time and in
this thread's CPU time (what time slices lost to other processes on a shared core leave out); the
real-time factor (total p50 / audio duration); and, from fresh processes that make one prediction,
the cold start in-process (import, load, predict) and as a whole process
(interpreter start to first prediction, wall clock, and that process's CPU time), and the child's peak
resident memory (``VmHWM``, read by the child itself: Linux carries a parent's ``ru_maxrss`` across fork
and exec), the CPU (:func:`cpu_description`: model, family and the instruction sets ONNX Runtime's kernels
choose by) and the load average at the start (the machine's other work, which slows the figures). With
``--data DIR --dataset NAME`` (the training side, ``benchmarks.accuracy``) also UA/WA on that corpus.
Needs only the runtime.

Timings run in fresh interpreters whose numpy thread pools (OpenBLAS, MKL, OpenMP) are capped at
``--threads``, like ONNX Runtime's: an uncapped BLAS pool fighting for busy cores slows the front-end.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EdgeSERError, ModelError
from .macs import macs_per_second
from .model import OnnxModel
from .recognizer import Recognizer

PERCENTILES = (50, 90, 99)
PARTS = ("frontend", "inference", "total")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
FRESH_RUNS = 5  # fresh processes per model; the median is reported
# Instruction sets that change which ONNX Runtime and numpy kernels run (and so the figures): (cpuinfo flag, name).
ISA_FLAGS = {
    "flags": (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_vnni", "AVX-512 VNNI"), ("avx_vnni", "AVX-VNNI")),
    "Features": (("asimddp", "dot product"), ("i8mm", "I8MM"), ("sve", "SVE")),
}

# A fresh interpreter, argv = model path, threads, signal (.npy), rate: one prediction, then its own figures.
# The parent writes the signal, so the child loads only what a predict process loads (numpy.random alone,
# which would make the signal here, adds about 7 MiB of resident memory and milliseconds of import).
_FRESH = """
import json, resource, sys, time
t = time.perf_counter()
import numpy as np
from edge_ser import Recognizer, EdgeSERError
path, threads, signal, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
x = np.load(signal)
try:
    Recognizer(path, threads=threads).predict(x, sample_rate=rate)
except EdgeSERError as exc:
    print(json.dumps({"error": str(exc)}))
    sys.exit()
done, inside, cpu = time.time(), time.perf_counter() - t, time.process_time()
peak = None
try:
    with open("/proc/self/status") as f:
        peak = next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM:"))
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
print(json.dumps({"done": done, "in_process_ms": 1e3 * inside, "cpu_ms": 1e3 * cpu, "peak_rss_mb": peak}))
"""

# A fresh interpreter, argv = threads, seconds, runs, warmup, model paths...: `latency`.
_LATENCY = """
import json, sys
from edge_ser.bench import latency
from edge_ser import EdgeSERError
threads, seconds, runs, warmup, *paths = sys.argv[1:]
try:
    print(json.dumps({"models": latency(paths, int(threads), float(seconds), int(runs), int(warmup))}))
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
    add("--fresh", type=_number(int, 1), default=FRESH_RUNS, help="fresh processes per model (default: %(default)s)")
    fmt = parser.add_mutually_exclusive_group()
    for name in ("json", "csv", "markdown"):
        fmt.add_argument(f"--{name}", dest="format", action="store_const", const=name)
    parser.set_defaults(format="markdown")
    add("--data", help="corpus root: also report UA/WA on all its utterances (with --dataset; training side)")
    add("--dataset", help="corpus name for --data (casia, ravdess, ...)")
    add("--no-progress", action="store_true", help="no progress bar (also off when stderr is not a terminal)")


def bench_signal(seconds: float, rate: int) -> np.ndarray:
    """The fixed input: seeded noise at 0.1 RMS, never silent, identical in every process."""
    return (0.1 * np.random.default_rng(0).standard_normal(int(round(seconds * rate)))).astype(np.float32)


def _percentiles(values: list[float]) -> dict[str, float]:
    return {f"p{q}": float(v) for q, v in zip(PERCENTILES, np.percentile(values, PERCENTILES))}


def turns(n_models: int, rounds: int) -> list[list[int]]:
    """The order the models take turns in, each round: shuffled (a fixed seed), so that over the run each model
    follows every model about equally often."""
    rng = np.random.default_rng(0)
    return [[int(k) for k in rng.permutation(n_models)] for _ in range(rounds)]


def latency(paths: list[str], threads: int, seconds: float, runs: int, warmup: int) -> list[dict[str, Any]]:
    """Percentiles in ms of front-end, inference and total time on ``seconds`` of audio, for each model,
    in this process; the models take turns call by call, so a noisy machine slows them alike and their
    ratios hold, in an order shuffled each round (a fixed seed) so that each follows every other alike: the
    one after a large model starts with cold caches (a fixed order charged it up to 0.3 ms of front-end
    time, 3 s of audio). ``latency_ms`` is wall-clock time; ``cpu_ms`` the CPU time of this thread (where ONNX
    Runtime runs with one thread), which time slices lost to other processes on a shared core leave out."""
    models = []
    for path in paths:
        rec = Recognizer(path, threads=threads)
        models.append((rec, OnnxModel(path, threads=threads), bench_signal(seconds, rec.sample_rate)))
    wall: list[dict[str, list[float]]] = [{part: [] for part in PARTS} for _ in models]
    cpu: list[dict[str, list[float]]] = [{part: [] for part in PARTS} for _ in models]
    n_windows = [0] * len(models)
    clocks = (time.perf_counter, time.thread_time)
    for i, turn in enumerate(turns(len(models), warmup + runs)):
        for k in turn:
            rec, model, x = models[k]
            c = rec.contract
            t0 = [clock() for clock in clocks]
            cutter = rec.cutter()
            cut = cutter.push(x) + cutter.finish()
            inputs = [c.model_input(w.samples) if w.rows is None else c.normalize(c.frontend.pool(w.rows)) for w in cut]
            t1 = [clock() for clock in clocks]
            for features in inputs:
                model.run(features[None])
            t2 = [clock() for clock in clocks]
            rec.predict(x, sample_rate=rec.sample_rate)
            t3 = [clock() for clock in clocks]
            n_windows[k] = len(inputs)
            if i >= warmup:
                for j, times in enumerate((wall[k], cpu[k])):
                    for part, (a, b) in zip(PARTS, ((t0, t1), (t1, t2), (t2, t3))):
                        times[part].append(1e3 * (b[j] - a[j]))
    return [
        {
            "windows": n,
            "latency_ms": {part: _percentiles(w[part]) for part in PARTS},
            "cpu_ms": {part: _percentiles(c[part]) for part in PARTS},
        }
        for n, w, c in zip(n_windows, wall, cpu)
    ]


def _environment(threads: int) -> dict[str, str]:
    """This environment, with this edge_ser importable and numpy's thread pools capped at ``threads``, and Python's
    bytecode cache on: an installed package has its ``.pyc`` files, so a predict process does not compile edge_ser
    from source at every start (with ``PYTHONDONTWRITEBYTECODE`` kept, a source checkout's children did, which
    added to their cold start)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    if threads > 0:
        env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    return env


# ``python -c`` puts the working directory first on sys.path: run from another checkout, the child would import
# that checkout's edge_ser instead of this one (which _environment puts on PYTHONPATH).
_OWN_PATH = "import sys\nif sys.path and sys.path[0] == '':\n    del sys.path[0]\n"


def in_fresh_process(code: str, argv: list[str], threads: int, what: str | None = None) -> tuple[dict[str, Any], float]:
    """Run ``code`` in a new interpreter (this edge_ser, numpy's threads capped); its last stdout line is
    JSON. Returns that object and the wall-clock time (``time.time``) at which the process was started."""
    command = [sys.executable, "-c", _OWN_PATH + code, *argv]
    started = time.time()
    proc = subprocess.run(command, capture_output=True, text=True, env=_environment(threads))
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        reason = ((proc.stderr or "").strip().splitlines() or [f"exit status {proc.returncode}"])[-1][:200]
        raise ModelError(f"{what or argv[0]}: measurement in a fresh process failed ({reason})")
    result = json.loads(lines[-1])
    if "error" in result:
        raise EdgeSERError(result["error"])
    return result, started


def measure_latency(paths: list[str], threads: int, seconds: float, runs: int, warmup: int) -> list[dict]:
    """:func:`latency` of the models, interleaved, in a fresh process."""
    argv = [str(threads), str(seconds), str(runs), str(warmup), *paths]
    return in_fresh_process(_LATENCY, argv, threads, what=paths[0])[0]["models"]


def fresh_process(path: str, threads: int, seconds: float, rate: int, repeats: int = FRESH_RUNS) -> dict[str, float]:
    """Medians over ``repeats`` new interpreters that make one prediction on :func:`bench_signal`: whole-process
    cold start (ms, from starting the interpreter to the first prediction), the in-process part (import, load,
    predict), the process's CPU time up to the first prediction (ms, user + system from its start: about what the
    cold start takes on an idle core, where a loaded machine's wall clock counts other jobs' time too) and the
    child's own peak resident memory (MiB)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        signal = Path(tmp) / "signal.npy"
        np.save(signal, bench_signal(seconds, rate))
        for _ in range(repeats):
            result, started = in_fresh_process(_FRESH, [path, str(threads), str(signal), str(rate)], threads)
            rows.append(
                (1e3 * (result["done"] - started), result["in_process_ms"], result["cpu_ms"], result["peak_rss_mb"])
            )
    cold, inside, cpu, peak = (float(np.median(col)) for col in zip(*rows))
    return {"cold_start_ms": cold, "in_process_ms": inside, "cold_start_cpu_ms": cpu, "peak_rss_mb": peak}


def bench_models(
    recognizers: list[Recognizer], args: argparse.Namespace, corpus: Any = None, score: Any = None
) -> list[dict[str, Any]]:
    """Every figure for each model, as JSON-ready objects; latencies from one interleaved run
    (``score(rec, corpus)``: UA/WA, given a corpus)."""
    load, cpu = _load_average(), cpu_description()
    timings = measure_latency([rec.path for rec in recognizers], args.threads, args.seconds, args.runs, args.warmup)
    results = []
    for rec, timing in zip(recognizers, timings):
        c = rec.contract
        fresh = fresh_process(rec.path, args.threads, args.seconds, rec.sample_rate, getattr(args, "fresh", FRESH_RUNS))
        results.append(
            {
                "model": Path(rec.path).name,
                "name": c.name,
                "path": rec.path,
                "parameters": c.parameters,
                "macs_per_second": macs_per_second(rec.path, c, args.seconds),
                "size_bytes": Path(rec.path).stat().st_size,
                "seconds": args.seconds,
                "threads": args.threads,
                "runs": args.runs,
                "warmup": args.warmup,
                **timing,
                "rtf": timing["latency_ms"]["total"]["p50"] / 1e3 / args.seconds,
                **fresh,
                "accuracy": score(rec, corpus) if corpus is not None else None,
                "load_average": load,
                "cpu": cpu,
            }
        )
    return results


def si(value: float | None) -> str:
    """``value`` with an SI suffix (k, M, G), three digits."""
    if value is None:
        return "n/a"
    for scale, unit in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def flat(result: dict[str, Any]) -> dict[str, Any]:
    """One CSV row: nested latency and accuracy flattened into columns."""
    row = {k: v for k, v in result.items() if k not in ("latency_ms", "cpu_ms", "accuracy", "load_average")}
    row["load_average_1m"] = (result.get("load_average") or [None])[0]
    for part, values in result["latency_ms"].items():
        row.update({f"{part}_{q}_ms": v for q, v in values.items()})
    for part, values in result["cpu_ms"].items():
        row.update({f"{part}_{q}_cpu_ms": v for q, v in values.items()})
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
        "CPU ms p50 front-end / inference / total",
        "RTF",
        "cold start ms (process / in-process / process CPU)",
        "peak RSS MiB",
    ]
    head += ["UA %", "WA %"] if scored else []
    lines = [
        f"`edge-ser bench`: {r0['seconds']:g} s of audio, threads {r0['threads']}, {r0['runs']} runs after "
        f"{r0['warmup']} warm-up; {r0.get('cpu') or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, "
        f"onnxruntime {_ort_version()}"
        + (f"; load average {r0['load_average'][0]:.2f} at the start." if r0.get("load_average") else "."),
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    for r in results:
        cells = [
            r["model"],
            f"{r['parameters']:,}",
            si(r["macs_per_second"]),
            f"{r['size_bytes'] / 1024:.1f}",
            *(" / ".join(f"{r['latency_ms'][p][f'p{q}']:.3f}" for q in PERCENTILES) for p in PARTS),
            " / ".join(f"{r['cpu_ms'][p]['p50']:.3f}" for p in PARTS),
            f"{r['rtf']:.4f}",
            " / ".join(f"{r[k]:.0f}" for k in ("cold_start_ms", "in_process_ms", "cold_start_cpu_ms") if k in r),
            f"{r['peak_rss_mb']:.1f}",
        ]
        if scored:
            acc = r["accuracy"]
            cells += [f"{100 * acc['ua']:.1f}", f"{100 * acc['wa']:.1f}"] if acc else ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_description(cpuinfo: str | None = None) -> str:
    """The CPU as a figure's label: its model name, family and model (x86) or implementer and part (Arm), and
    which of :data:`ISA_FLAGS` it has. Two CPUs sold under one name ("AMD EPYC") differed by a third in these
    figures, and INT8 kernels by instruction set. ``cpuinfo``: the text of ``/proc/cpuinfo`` (read if ``None``;
    where there is none, the platform's own name)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    info: dict[str, str] = {}
    for line in cpuinfo.splitlines():  # the first processor's entries
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    name = info.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    if "cpu family" in info:
        ids = f"family {info['cpu family']} model {info.get('model', '?')}"
    elif "CPU implementer" in info:
        ids = f"implementer {info['CPU implementer']} part {info.get('CPU part', '?')}"
    else:
        return name
    for key, isa in ISA_FLAGS.items():
        if key in info:
            flags = set(info[key].split())
            return f"{name} ({ids}; " + ", ".join(f"{'' if f in flags else 'no '}{n}" for f, n in isa) + ")"
    return f"{name} ({ids})"


def _load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (``None`` where the system has none): on a shared machine
    they say how far the figures beside them may be from an idle core's."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def run(args: argparse.Namespace) -> int:
    if (args.data is None) != (args.dataset is None):
        raise EdgeSERError("--data and --dataset go together")
    recognizers = [Recognizer(m, threads=args.threads) for m in args.models]  # a bad model fails before measuring
    corpus, score = None, None
    if args.data is not None:
        try:  # the training side's corpora and metrics, by name: the runtime does not depend on them
            tool = importlib.import_module("benchmarks.accuracy")
        except ImportError as exc:
            raise EdgeSERError(
                f"--data needs the training side (a source checkout with the train extra): {exc}"
            ) from None
        corpus = tool.load(args.dataset, args.data)
        progress = not args.no_progress and sys.stderr.isatty()
        score = lambda rec, corpus: tool.accuracy(rec, corpus, progress)  # noqa: E731
    results = bench_models(recognizers, args, corpus, score)
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
