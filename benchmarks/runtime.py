"""Runtime figures: front-end time per 3 s of audio, batching, long audio, `import edge_ser`, install size.

    python -m benchmarks.runtime [--runs 300] [--install-size] [--long-hours 2] [--out benchmarks/results/runtime.md]

Pinned to one core (and one BLAS thread) so the figures mean "one core". Times are medians over
``--runs`` calls after warm-up, as CPU time of the measuring thread (the machine is shared: wall-clock
time, shown beside it, includes other jobs' time slices); the rows of each table take turns call by
call, in an order shuffled each round (one interleaved run, so their ratios hold).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.report import cpu_name, emit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def interleaved(fns: dict[Any, Callable[[], object]], runs: int, warmup: int = 10) -> dict[Any, tuple[float, float]]:
    """Median ms of each function as ``(CPU time of this thread, wall-clock time)``, the functions called in
    turn ``runs`` times, in an order shuffled each round (``edge_ser.bench.turns``): in a fixed order the first
    one follows the last one's working set every round, which put the default ONNX Runtime session 7-10 % behind
    session options as fast as it. The machine is shared: wall-clock time includes time slices other jobs took."""
    from edge_ser.bench import turns

    items = list(fns.items())
    times: dict[Any, list[tuple[float, float]]] = {name: [] for name in fns}
    for i, turn in enumerate(turns(len(items), warmup + runs)):
        for name, fn in (items[k] for k in turn):
            c, w = time.thread_time(), time.perf_counter()
            fn()
            if i >= warmup:
                times[name].append((time.thread_time() - c, time.perf_counter() - w))
    return {name: tuple(1e3 * float(v) for v in np.median(np.array(t), axis=0)) for name, t in times.items()}


def plain_numpy_logmel(x: np.ndarray, fb: np.ndarray, length: int = 400, step: int = 160) -> np.ndarray:
    """A straightforward numpy log-mel (strided frames, rfft, power, filterbank): the usual baseline."""
    frames = np.lib.stride_tricks.sliding_window_view(x, length)[::step] * np.hanning(length)
    power = np.abs(np.fft.rfft(frames, n=512)) ** 2 / 512
    return np.log(power @ fb.T + 1e-10)


def describe(frontend: Any) -> str:
    """A shipped front-end as a table label, read from its contract (kind, bands, window, hop)."""
    bands = f"{frontend.n_mfcc} of {frontend.n_mels} mel" if frontend.kind == "mfcc" else f"{frontend.n_mels} mel"
    kind = {"logmel": "log-mel", "mfcc": "MFCC"}.get(frontend.kind, frontend.kind)
    return f"{kind} ({bands}, {frontend.window}, {1000 * frontend.hop_length:g} ms hop)"


def frontend_table(runs: int) -> list[str]:
    from edge_ser import Recognizer
    from edge_ser.frontend import FrontEnd, mel_filterbank

    x = (0.1 * np.random.default_rng(0).standard_normal(48000)).astype(np.float32)
    english = Recognizer("english").contract.frontend
    chinese = Recognizer("chinese").contract.frontend
    # The rows after `english`'s own compute its frames (its hop), so the ratios compare the same work.
    hop, n = f"{1000 * english.hop_length:g} ms hop", english.analysis_frames(len(x))
    fb = mel_filterbank(64, 512, 16000)
    fft_in = np.zeros((n, 512))
    fft_out = np.empty((n, 257), np.complex128)  # reused, as the front-end's: a fresh result each call (1.2 MB at
    # 299 frames) would add page faults (interleaved with the allocating baselines, numpy's rfft took 0.87 ms
    # instead of 0.30)
    fns = {
        f"edge_ser {describe(english)}: `english`": lambda: english(x),
        f"edge_ser {describe(chinese)}: `chinese`": lambda: chinese(x),
        f"edge_ser log-power spectrogram (257 bins, hann, {hop})": lambda: FrontEnd(
            "logspec", window="hann", hop_length=english.hop_length
        )(x),
        f"plain numpy log-mel, 64 mel, {hop} (baseline)": lambda: plain_numpy_logmel(
            x, fb, english.frame_length, english.frame_step
        ),
        f"numpy float64 rfft of the {n} frames alone, into a reused buffer (lower bound)": lambda: np.fft.rfft(
            fft_in, out=fft_out
        ),
    }
    try:
        import scipy.fft

        fft_in32 = fft_in.astype(np.float32)
        fns[f"scipy.fft float32 rfft of the {n} frames alone, a new result each call (not used: import cost below)"] = (
            lambda: scipy.fft.rfft(fft_in32)
        )
    except ImportError:
        pass
    try:
        import python_speech_features as psf

        x64 = x.astype(np.float64)
        fns[f"python_speech_features log fbank, 64 mel, hann, {hop} (reference)"] = lambda: np.log(
            psf.fbank(x64, winstep=english.hop_length, nfilt=64, winfunc=np.hanning)[0]
        )
    except ImportError:
        pass
    ms = interleaved(fns, runs)
    ours = ms[next(iter(ms))][0]
    lines = [
        f"Front-ends, per 3 s of 16 kHz audio, median of {runs} interleaved runs:",
        "",
        "| step | CPU ms | × `english`'s | wall ms |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {cpu:.3f} | {cpu / ours:.2f} | {wall:.3f} |" for name, (cpu, wall) in ms.items()]
    if "scipy" in sys.modules:
        alone = interleaved(
            {"numpy": lambda: np.fft.rfft(fft_in, out=fft_out), "scipy": lambda: scipy.fft.rfft(fft_in32)}, runs
        )
        lines += [
            "",
            f"The two FFTs alone, taking turns only with each other (median of {runs}): numpy float64 into a reused "
            f"buffer {alone['numpy'][0]:.3f} ms, scipy float32 {alone['scipy'][0]:.3f} ms. scipy's has no output "
            "buffer: between other work that frees memory, each fresh result costs page faults (the table above).",
        ]
    lines += ["", *fft_import_lines()]
    from edge_ser.resample import resample

    rng = np.random.default_rng(1)
    signals = {rate: (0.1 * rng.standard_normal(3 * rate)).astype(np.float32) for rate in (48000, 44100, 8000)}
    ms = interleaved(
        {f"resample 3 s from {r} Hz to 16 kHz": (lambda y=y, r=r: resample(y, r, 16000)) for r, y in signals.items()},
        50,
    )
    lines += ["", "Resampling (median of 50 interleaved runs):", "", "| step | CPU ms | wall ms |", "|---|---:|---:|"]
    lines += [f"| {name} | {cpu:.3f} | {wall:.3f} |" for name, (cpu, wall) in ms.items()]
    return lines


_IMPORT_COST = """
import json, sys, time
import numpy as np

def peak():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM:"))

before, t = peak(), time.perf_counter()
module = __import__(sys.argv[1], fromlist=["rfft"])
module.rfft(np.zeros((299, 512), np.float32))
print(json.dumps({"ms": 1e3 * (time.perf_counter() - t), "mib": peak() - before}))
"""


def fft_import_lines(repeats: int = 5) -> list[str]:
    """What a first float32 rfft costs a fresh process that has numpy: import time and peak RSS added."""
    cost = {}
    for module in ("numpy.fft", "scipy.fft"):
        rows = []
        for _ in range(repeats):
            out = subprocess.run([sys.executable, "-c", _IMPORT_COST, module], capture_output=True, text=True)
            if out.returncode:
                break
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((r["ms"], r["mib"]))
        if rows:
            cost[module] = np.median(np.array(rows), axis=0)
    return [
        f"First rfft in a fresh process with numpy (import and call, median of {repeats}): "
        + ", ".join(f"`{m}` {ms:.0f} ms and {mib:.1f} MiB of peak RSS" for m, (ms, mib) in cost.items())
        + ". The front-end keeps numpy's float64 FFT into reused buffers: whatever scipy's float32 transform saves "
        "per call, its import would cost the predict process more than the front-end's whole time and the memory "
        "goal."
    ]


def one_thread_options() -> Any:
    """ONNX Runtime session options for the timings here: one intra- and one inter-op thread, warnings off."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = 1, 1, 3
    return so


def session_options_lines(runs: int) -> list[str]:
    """ONNX Runtime session options on the default model: time per window (interleaved), outputs against
    the default session's, and where a profiled run spends its time by operator type."""
    import collections

    import onnxruntime as ort

    from edge_ser import Recognizer

    rec = Recognizer()
    path = rec.path
    x = (0.1 * np.random.default_rng(0).standard_normal(rec.window_samples)).astype(np.float32)
    feeds = {rec.contract.input_name: rec.contract.model_input(x)[None]}
    variants: dict[str, dict[str, Any]] = {
        "as `Recognizer` opens it (graph optimization all, 1 thread)": {},
        "CPU memory arena off": {"enable_cpu_mem_arena": False},
        "memory pattern off": {"enable_mem_pattern": False},
        "arena and memory pattern off": {"enable_cpu_mem_arena": False, "enable_mem_pattern": False},
        "`session.intra_op.allow_spinning` 0": {"session.intra_op.allow_spinning": "0"},
        "graph optimization extended (no NCHWc layout)": {
            "graph_optimization_level": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        },
    }
    sessions = {}
    for name, options in variants.items():
        so = one_thread_options()
        for key, value in options.items():
            if "." in key:
                so.add_session_config_entry(key, value)
            else:
                setattr(so, key, value)
        sessions[name] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    reference = next(iter(sessions.values())).run(None, feeds)
    same = {
        name: all(np.array_equal(a, b) for a, b in zip(s.run(None, feeds), reference)) for name, s in sessions.items()
    }
    ms = interleaved({name: (lambda s=s: s.run(None, feeds)) for name, s in sessions.items()}, runs)
    lines = [
        f"ONNX Runtime session options, `{Path(path).name}`, one window (median of {runs} interleaved runs):",
        "",
        "| session | CPU ms | wall ms | outputs equal to the default's |",
        "|---|---:|---:|---|",
    ]
    lines += [f"| {name} | {cpu:.3f} | {wall:.3f} | {same[name]} |" for name, (cpu, wall) in ms.items()]
    with tempfile.TemporaryDirectory() as tmp:
        so = one_thread_options()
        so.enable_profiling, so.profile_file_prefix = True, str(Path(tmp) / "profile")
        session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        for _ in range(runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    spent: collections.Counter = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            spent[e["args"]["op_name"]] += e["dur"]
    total = sum(spent.values())
    lines += [
        "",
        f"Profiled (`enable_profiling`, {runs} runs, kernel time by operator after ONNX Runtime's graph optimization): "
        + ", ".join(f"{op} {100 * t / total:.1f} %" for op, t in spent.most_common())
        + ".",
    ]
    return lines


def compute_rate_lines(runs: int, size: int = 256) -> list[str]:
    """How close the default model's inference runs to what this core does on plain matrix products: its MACs per
    window (counted by ``edge_ser.macs``) over its time per window, against one ONNX Runtime ``MatMul`` of
    ``size`` x ``size`` by ``size`` x ``size`` (1 thread), the two taking turns; and the time the model's MACs alone
    would take at the MatMul's rate (what a faster runtime could at most reach for this network)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from edge_ser import Recognizer
    from edge_ser.macs import count_macs

    rec = Recognizer()
    x = (0.1 * np.random.default_rng(0).standard_normal(rec.window_samples)).astype(np.float32)
    feeds = {rec.contract.input_name: rec.contract.model_input(x)[None]}
    macs = count_macs(rec.path, feeds)
    weights = numpy_helper.from_array(np.random.default_rng(1).standard_normal((size, size)).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    so = one_thread_options()
    sessions = {
        "model": ort.InferenceSession(rec.path, so, providers=["CPUExecutionProvider"]),
        "matmul": ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]),
    }
    a = np.random.default_rng(2).standard_normal((size, size)).astype(np.float32)
    ms = interleaved(
        {"model": lambda: sessions["model"].run(None, feeds), "matmul": lambda: sessions["matmul"].run(None, {"a": a})},
        runs,
    )
    rate = {"model": macs / ms["model"][0] / 1e6, "matmul": size**3 / ms["matmul"][0] / 1e6}  # GMAC/s (CPU time)
    return [
        f"Compute rate, `{Path(rec.path).name}` (median CPU time of {runs} interleaved runs): "
        f"{macs / 1e6:.2f} M MACs per window in {ms['model'][0]:.3f} ms, {rate['model']:.1f} GMAC/s; "
        f"a plain ONNX Runtime MatMul ({size}x{size} by {size}x{size}, 1 thread) {rate['matmul']:.1f} GMAC/s, so "
        f"the model runs at {100 * rate['model'] / rate['matmul']:.0f} % of the MatMul rate. At that rate its MACs "
        f"alone would take {macs / rate['matmul'] / 1e6:.3f} ms per window: inference cannot drop much below that "
        "without fewer MACs."
    ]


def fresh_process_lines(repeats: int = 5) -> list[str]:
    """`edge-ser bench`'s fresh predict process with the default model, and the same child importing
    numpy.random as it did before (the generated signal), to show what that import added."""
    from edge_ser import Recognizer, bench

    path = Recognizer().path
    fresh = bench.fresh_process(path, 1, 3.0, 16000, repeats)
    with tempfile.TemporaryDirectory() as tmp:
        signal = Path(tmp) / "signal.npy"
        np.save(signal, bench.bench_signal(3.0, 16000))
        code = bench._FRESH.replace("x = np.load(signal)", "x = np.load(signal)\nnp.random.default_rng(0)")
        old = [bench.in_fresh_process(code, [path, "1", str(signal), "16000"], 1)[0] for _ in range(repeats)]
    old_peak = float(np.median([r["peak_rss_mb"] for r in old]))
    return [
        f"Fresh predict process (`edge-ser bench`'s child, default model, 3 s array, median of {repeats}): "
        f"whole-process cold start {fresh['cold_start_ms']:.0f} ms (in-process {fresh['in_process_ms']:.0f} ms; "
        f"the process's CPU time {fresh['cold_start_cpu_ms']:.0f} ms), "
        f"peak RSS (VmHWM) {fresh['peak_rss_mb']:.1f} MiB; the same child importing numpy.random too (as "
        f"bench's child did to make its signal): {old_peak:.1f} MiB."
    ]


def batching_table(runs: int) -> list[str]:
    """ms per window of one ``session.run`` at batch sizes 1..32, per shipped model: where batching loses."""
    from edge_ser import Recognizer
    from edge_ser.model import OnnxModel, shipped_models

    sizes = (1, 2, 4, 8, 32)
    fns, names = {}, [n for n in ("english", "chinese", "english-adaptive") if n in shipped_models()]
    for name in names:
        rec = Recognizer(name)
        model = OnnxModel(name)
        x = (0.1 * np.random.default_rng(0).standard_normal(rec.window_samples)).astype(np.float32)
        features = rec.contract.model_input(x)
        for b in sizes:
            batch = np.repeat(features[None], b, axis=0)
            fns[(name, b)] = lambda m=model, batch=batch: m.run(batch)
    ms = interleaved(fns, max(runs // 10, 20), warmup=3)
    lines = [
        "Inference per window at each batch size (one `session.run` of B windows, CPU ms / B; median of "
        f"{max(runs // 10, 20)} interleaved runs). `predict_batch` scores one window per call, as `predict` does:",
        "",
        "| model | " + " | ".join(f"B={b}" for b in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{ms[(name, b)][0] / b:.3f}" for b in sizes) + " |")
    rec = Recognizer("english")
    clips = [(0.1 * np.random.default_rng(i).standard_normal(48000)).astype(np.float32) for i in range(32)]
    ms = interleaved(
        {
            "predict_batch": lambda: rec.predict_batch(clips, sample_rate=16000),
            "predict loop": lambda: [rec.predict(c, sample_rate=16000) for c in clips],
        },
        max(runs // 30, 5),
        warmup=1,
    )
    lines += [
        "",
        "32 clips of 3 s, `english`: "
        + ", ".join(f"{name} {32e3 / cpu:.0f} clips/s" for name, (cpu, _) in ms.items())
        + " (one code path: equal by construction).",
    ]
    return lines


def long_audio_lines() -> list[str]:
    """ms per audio-second of `predict` on 600 s (16 kHz) with the default model, against 3 s, and where the 600 s
    go: the windows cut and their frames analysed (each frame once), the windows scored
    (``Recognizer.score_windows``: silence check, normalization, one model run each), the rest."""
    from edge_ser import Recognizer
    from edge_ser.recognizer import BLOCK
    from edge_ser.windows import plan

    rounds = 9
    rec = Recognizer()
    rng = np.random.default_rng(0)
    short = (0.1 * rng.standard_normal(48000)).astype(np.float32)
    clip = (0.1 * rng.standard_normal(600 * 16000)).astype(np.float32)

    def windows() -> list:
        cutter = rec.cutter()
        cut = [w for start in range(0, len(clip), BLOCK) for w in cutter.push(clip[start : start + BLOCK])]
        return cut + cutter.finish()

    def windows_and_runs() -> None:
        rec.score_windows(windows())

    ms = interleaved(
        {
            "3 s": lambda: rec.predict(short, sample_rate=16000),
            "600 s": lambda: rec.predict(clip, sample_rate=16000),
            "windows": windows,
            "windows and runs": windows_and_runs,
        },
        rounds,
        warmup=1,
    )
    per_s = {name: cpu / 600 for name, (cpu, _) in ms.items()}
    return [
        f"`predict` with the default model, CPU ms per second of audio: 3 s clip {ms['3 s'][0] / 3:.3f}, "
        f"600 s clip {per_s['600 s']:.3f} (wall: {ms['3 s'][1] / 3:.3f} and {ms['600 s'][1] / 600:.3f}; "
        f"features once per frame, one window per second; median of {rounds}). Where the 600 s go (medians of "
        "the same interleaved rounds, shares by difference, so within this machine's noise of a few per cent): "
        f"the {len(plan(len(clip), rec.window_samples, rec.hop_samples))} windows cut and their frames analysed "
        f"{per_s['windows']:.3f}, scored one by one (silence check, normalization, one model run each) "
        f"{per_s['windows and runs'] - per_s['windows']:.3f}, the rest of `predict` (window bookkeeping, "
        f"aggregation) {per_s['600 s'] - per_s['windows and runs']:.3f} ms per audio-second."
    ]


_PEAK_FILE = """
import json, sys, time
t = time.perf_counter()
import edge_ser
p = edge_ser.Recognizer().predict(sys.argv[1])
with open("/proc/self/status") as f:
    peak = next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM:"))
print(json.dumps({"label": p.label, "seconds": time.perf_counter() - t, "peak_rss_mib": peak}))
"""

_PEAK_ARRAY = """
import json, sys, time
import numpy as np
import edge_ser

def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith(key + ":"))

rec = edge_ser.Recognizer()
n = int(float(sys.argv[1]) * 3600 * 44100)
x = np.empty(n, np.float32)
rng = np.random.default_rng(0)
for i in range(0, n, 2**22):
    x[i : i + 2**22] = 0.1 * rng.standard_normal(min(2**22, n - i))
held = status("VmRSS")
t = time.perf_counter()
p = rec.predict(x, sample_rate=44100)
print(json.dumps({"seconds": time.perf_counter() - t, "array_mib": x.nbytes / 2**20, "rss_before_mib": held,
                  "peak_rss_mib": status("VmHWM")}))
"""


def long_audio_memory_lines(hours: float) -> list[str]:
    """Peak resident memory of fresh processes predicting ``hours`` of 44.1 kHz audio: a WAV file (read in
    blocks), and a float32 array the caller holds (what predict adds on top of it)."""
    import soundfile as sf

    lines = []
    out = subprocess.run([sys.executable, "-c", _PEAK_ARRAY, str(hours)], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    lines.append(
        f"`Recognizer().predict(array, sample_rate=44100)` on {hours:g} h of float32 audio ({r['array_mib']:.0f} MiB "
        f"held by the caller): resident memory {r['rss_before_mib']:.0f} MiB before, peak {r['peak_rss_mib']:.0f} "
        f"MiB (predict adds {r['peak_rss_mib'] - r['rss_before_mib']:.0f} MiB), {r['seconds']:.0f} s."
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.wav"
        rng = np.random.default_rng(0)
        with sf.SoundFile(path, "w", 44100, 1, "PCM_16") as f:
            for _ in range(int(hours * 60)):
                f.write((0.1 * rng.standard_normal(44100 * 60)).astype(np.float32))
        size = path.stat().st_size
        out = subprocess.run([sys.executable, "-c", _PEAK_FILE, str(path)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
    lines.append(
        f"`Recognizer().predict(FILE)` on {hours:g} h of 44.1 kHz 16-bit WAV ({size / 2**20:.0f} MiB): "
        f"peak RSS (VmHWM) {r['peak_rss_mib']:.0f} MiB, {r['seconds']:.0f} s."
    )
    return lines


def import_time_ms(repeats: int = 7) -> float:
    code = "import time; t = time.perf_counter(); import edge_ser; print(time.perf_counter() - t)"
    times = [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(repeats)]
    return 1e3 * float(np.median(times))


def install_size_mb() -> tuple[float, bool, str]:
    """Size of a fresh virtual environment's site-packages after `pip install .` (runtime only)."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = venv / "bin" / "pip"
        subprocess.run([str(pip), "install", "-q", str(ROOT)], check=True, capture_output=True)
        site = next((venv / "lib").glob("python*/site-packages"))
        baseline = {"pip", "setuptools", "_distutils_hack", "distutils-precedence.pth", "pkg_resources"}
        total = sum(
            f.stat().st_size
            for entry in site.iterdir()
            if not any(entry.name.startswith(b) for b in baseline)
            for f in ([entry] if entry.is_file() else entry.rglob("*"))
            if f.is_file()
        )
        listing = subprocess.check_output([str(pip), "list", "--format=freeze"], text=True)
        return total / 2**20, "torch" in listing.lower(), listing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--install-size", action="store_true", help="also build a fresh venv and measure it")
    parser.add_argument("--long-hours", type=float, default=0, help="also predict a WAV this long (peak memory)")
    parser.add_argument("--out", type=Path, help="write the markdown report here too")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    cpu = cpu_name()
    started, load = datetime.now(timezone.utc), os.getloadavg()
    body = [
        *frontend_table(args.runs),
        "",
        *session_options_lines(max(args.runs // 3, 20)),
        "",
        *compute_rate_lines(max(args.runs // 3, 20)),
        "",
        *batching_table(args.runs),
        "",
        *long_audio_lines(),
        "",
        *fresh_process_lines(),
    ]
    if args.long_hours:
        body += ["", "In fresh processes:", "", *(f"- {line}" for line in long_audio_memory_lines(args.long_hours))]
    body += ["", f"`import edge_ser`: {import_time_ms():.1f} ms (median of 7 fresh interpreters)."]
    if args.install_size:
        size, torch_present, listing = install_size_mb()
        packages = ", ".join(
            line for line in listing.split() if "==" in line and not line.startswith(("pip=", "setuptools="))
        )
        body += [
            "",
            f"Fresh runtime install (`pip install .` in a new venv): {size:.1f} MiB of site-packages; "
            f"torch installed: {torch_present}. Packages: {packages}.",
        ]
    lines = [
        "# Runtime figures",
        "",
        f"{started:%Y-%m-%d %H:%M} UTC · {cpu} · {os.cpu_count()} cores on the machine (shared with other jobs: "
        f"figures are noisy), pinned to 1 · Python {platform.python_version()} · numpy {np.__version__} · load "
        f"average {load[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end (`uptime`: 2 cores; above 1 "
        "another job shares the measured core's time or caches)",
        "",
        "Command: `python -m benchmarks.runtime " + " ".join(a for a in sys.argv[1:]) + "`",
        "",
        "Features + inference per model, end to end, side by side: `edge-ser bench` runs in "
        "[bench-quiet.md](bench-quiet.md).",
        "",
        *body,
    ]
    if args.out and args.out.exists():  # sections other benchmarks wrote into the file (``## ...``) stay
        lines += ["", *("## " + s.rstrip("\n") + "\n" for s in args.out.read_text().split("\n## ")[1:])]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
