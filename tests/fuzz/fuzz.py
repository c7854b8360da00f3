"""Mutation fuzzer for edge-ser's untrusted inputs: encoded audio, sample arrays, model contracts and model files.

Every case must end in a result or an ``EdgeSERError``. Anything else is a finding: another exception (or a
numpy RuntimeWarning, raised as one), a crash of the worker process (a signal), or a hang (no answer within
``--timeout`` seconds). Cases run in subprocess workers, a fresh one per chunk, so a crash or a hang costs one
case and is counted, and the parent goes on with the next case.

The seed corpus is generated here, never taken from the corpora: short WAV (PCM 16, float, stereo), FLAC,
OGG Vorbis, OGG Opus and MP3 files of a synthetic voiced signal, and tiny ONNX models (MFCC, log-mel with
global statistics, waveform) with their contracts. Case ``i`` of a family is mutated from
``numpy.random.default_rng([seed, family, i])``, so ``--replay FAMILY I`` reproduces it exactly.

    nice -n 10 env OMP_NUM_THREADS=1 python tests/fuzz/fuzz.py --audio 100000 --arrays 10000 \\
        --contracts 10000 --models 2000 --out benchmarks/results/fuzz.md
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import select
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: tiny_models builds the seed models

FAMILIES = ("audio", "arrays", "contracts", "models")
INTERESTING_INTS = (0, 1, 2, 7, 8, 15, 16, 127, 128, 255, 256, 32767, 32768, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1)
INTERESTING_VALUES: tuple[Any, ...] = (
    0,
    -1,
    1,
    2**31,
    2**63,
    10**400,
    1e-300,
    1e-6,
    0.5,
    512.5,
    -0.0,
    1e308,
    -1e308,
    "",
    "0.025",
    "16000",
    "abcdefgh",
    "\u0000",
    "x" * 10_000,
    True,
    False,
    None,
    [],
    {},
    [1, 2],
    ["a", "a"],
    {"mode": "global"},
    [[[[[[]]]]]],
)
INTERESTING_TEXT = ("NaN", "Infinity", "-Infinity", "1e999", "-1e999", "[" * 50_000, "{}", "null", '"\\ud800"')
MEMORY_LIMIT = 6 * 2**30  # address space per worker: an allocation bomb becomes a MemoryError (a finding)


# -- seed corpus ------------------------------------------------------------------------------------------------
def voiced(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(130 + 40 * np.sin(2 * np.pi * 0.9 * t)) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) + 0.05 * rng.standard_normal(len(t))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def audio_seeds() -> dict[str, bytes]:
    import soundfile as sf

    specs = {
        "pcm16.wav": ("WAV", "PCM_16", 16000, 1, 0.8),
        "float.wav": ("WAV", "FLOAT", 16000, 1, 0.6),
        "stereo-44k.wav": ("WAV", "PCM_16", 44100, 2, 0.4),
        "pcm24.flac": ("FLAC", "PCM_24", 16000, 1, 0.8),
        "stereo-8k.flac": ("FLAC", "PCM_16", 8000, 2, 1.0),
        "vorbis.ogg": ("OGG", "VORBIS", 16000, 1, 1.2),
        "opus.ogg": ("OGG", "OPUS", 48000, 1, 0.6),
        "mp3.mp3": ("MP3", "MPEG_LAYER_III", 16000, 1, 1.0),
    }
    seeds = {}
    for name, (fmt, subtype, rate, channels, seconds) in specs.items():
        x = voiced(seconds, rate)
        if channels == 2:
            x = np.stack([x, voiced(seconds, rate, seed=1)], axis=1)
        buffer = io.BytesIO()
        sf.write(buffer, x, rate, format=fmt, subtype=subtype)
        seeds[name] = buffer.getvalue()
    return seeds


def model_seeds(folder: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Tiny valid models: ``name -> (path, contract dict)``."""
    from tiny_models import build_tiny_model, make_contract

    from edge_ser.frontend import FrontEnd, Normalization

    contracts = {
        "mfcc": make_contract(),
        "logmel": make_contract(
            FrontEnd("logmel", n_mels=16, window="hann"),
            normalization=Normalization("global", (-5.0,) * 16, (3.0,) * 16),
            window_seconds=1.5,
            hop_seconds=0.5,
        ),
        "waveform": make_contract(FrontEnd("waveform"), heads={"emotion": ("calm", "excited")}),
    }
    out = {}
    for name, contract in contracts.items():
        path = build_tiny_model(folder / f"{name}.onnx", contract)
        from edge_ser.model import OnnxModel

        out[name] = (path, OnnxModel(path).contract.to_dict())
    return out


# -- mutations --------------------------------------------------------------------------------------------------
def mutate_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    """1-4 of: bit flips, interesting bytes or integers, deletions, duplications, insertions, truncation."""
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        if not b:
            b = bytearray(rng.bytes(int(rng.integers(1, 64))))
        op = int(rng.integers(0, 9))
        # header bytes are where most parsing happens: bias positions towards the start
        at = int(rng.integers(0, min(len(b), 256))) if rng.random() < 0.6 else int(rng.integers(0, len(b)))
        if op == 0:
            b[at] ^= 1 << int(rng.integers(0, 8))
        elif op == 1:
            b[at] = int(rng.choice([0, 1, 0x7F, 0x80, 0xFF]))
        elif op == 2:
            value = int(rng.choice(INTERESTING_INTS))
            width = int(rng.choice([2, 4, 8]))
            b[at : at + width] = (value % 2 ** (8 * width)).to_bytes(width, str(rng.choice(["little", "big"])))
        elif op == 3:
            del b[at : at + int(rng.integers(1, 512))]
        elif op == 4:
            n = int(rng.integers(1, 512))
            b[at:at] = b[at : at + n]
        elif op == 5:
            b[at:at] = rng.bytes(int(rng.integers(1, 64)))
        elif op == 6:
            del b[int(len(b) * rng.uniform(0.05, 1.0)) :]
        elif op == 7:
            for k in rng.integers(0, len(b), size=int(rng.integers(1, 32))):
                b[int(k)] = int(rng.integers(0, 256))
        else:
            b += rng.bytes(int(rng.integers(1, 4096)))
    return bytes(b)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:8]):
            out += _paths(v, (*prefix, i))
    return out


def _random_value(rng: np.random.Generator, old: Any) -> Any:
    r = rng.random()
    if r < 0.45:
        return INTERESTING_VALUES[int(rng.integers(0, len(INTERESTING_VALUES)))]
    if r < 0.7 and isinstance(old, (int, float)) and not isinstance(old, bool) and abs(old) < 1e300:
        return float(old) * float(rng.choice([-1, 0.5, 2, 10, 1e-3, 1e3, 1e9, 1e-9])) + float(rng.choice([0, 1, 0.5]))
    if r < 0.8 and isinstance(old, list):
        return old * int(rng.integers(0, 4)) if rng.random() < 0.5 else old[: int(rng.integers(0, len(old) + 1))]
    if r < 0.9:
        return float(rng.normal(0, 10.0 ** int(rng.integers(-3, 12))))
    return "".join(chr(int(c)) for c in rng.integers(32, 0x2FFF, size=int(rng.integers(0, 12))))


def mutate_contract(contract: dict[str, Any], rng: np.random.Generator) -> str:
    """JSON text of ``contract`` after 1-3 structural mutations, sometimes also a textual one."""
    d = json.loads(json.dumps(contract))
    marker_values: dict[str, str] = {}
    for _ in range(int(rng.integers(1, 4))):
        paths = _paths(d)
        path = paths[int(rng.integers(1, len(paths)))] if len(paths) > 1 else ()
        if not path:
            continue
        parent = d
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        op = rng.random()
        if op < 0.15 and isinstance(parent, dict):
            del parent[key]
        elif op < 0.25 and isinstance(parent, dict):
            parent[f"extra{int(rng.integers(0, 9))}"] = _random_value(rng, None)
        elif op < 0.35:
            marker = f"@@RAW{len(marker_values)}@@"
            marker_values[marker] = str(rng.choice(INTERESTING_TEXT))
            parent[key] = marker
        else:
            parent[key] = _random_value(rng, parent[key])
    text = json.dumps(d, allow_nan=True)
    for marker, raw in marker_values.items():
        text = text.replace(json.dumps(marker), raw)
    if rng.random() < 0.2:
        text = mutate_bytes(text.encode(), rng).decode("utf-8", "replace")
    return text


def random_array(rng: np.random.Generator) -> tuple[np.ndarray, Any]:
    valid = ["int16", "int32", "float32", "float64"]
    dtype = rng.choice(valid if rng.random() < 0.7 else ["uint8", "int64", "float16", "complex64", "bool", "object"])
    shape_kind = rng.choice([0, 0, 0, 1, 1, 2, 3, 4])
    n = int(rng.choice([0, 1, 2, 40, 64, 65, 400, 1601, 1601, 16000, 16000, 24000, 24000]))
    c = int(rng.choice([1, 2, 3, 40, 64, 65]))
    shape = {0: (n,), 1: (n, c), 2: (c, n), 3: (c, n, 2), 4: ()}[int(shape_kind)]
    x = rng.standard_normal(shape) * float(rng.choice([0, 1e-6, 0.3, 0.3, 0.3, 1, 30000, 1e7, 1e30, 1e300]))
    if x.size and rng.random() < 0.2:
        x.flat[int(rng.integers(0, x.size))] = float(rng.choice([np.nan, np.inf, -np.inf]))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array = x.astype(dtype)
    rate = rng.choice([16000, 8000, 44100, 96000, 16000.0, np.int64(22050)])
    if rng.random() < 0.3:
        rate = rng.choice([7999, 96001, 0, -16000, 16000.5, "16000", None, True])
    if rng.random() < 0.05:
        rate = float(rng.choice([np.nan, np.inf, -np.inf, 1e300]))
    return array, rate


# -- one case ---------------------------------------------------------------------------------------------------
class Context:
    """What a worker builds once: the seeds, a recognizer per seed model, and test signals."""

    def __init__(self, folder: Path) -> None:
        from edge_ser import Recognizer

        self.folder = folder
        self.audio = audio_seeds()
        self.models = model_seeds(folder)
        self.recognizers = {name: Recognizer(path) for name, (path, _) in self.models.items()}
        self.signal = voiced(1.3, 16000, seed=3)
        self.short = voiced(0.3, 16000, seed=4)


def exercise(rec: Any, audio: Any, rate: Any = None) -> None:
    """predict, predict_segments and a stream on the same input (each may raise EdgeSERError)."""
    from edge_ser import EdgeSERError

    rec.predict(audio, rate)
    if isinstance(audio, np.ndarray):
        rec.predict_segments(audio, rate)
        try:
            stream = rec.stream(rate)
        except EdgeSERError:
            return
        if audio.ndim >= 1 and len(audio):
            for chunk in np.array_split(audio, 3):
                stream.accept(chunk)
        stream.flush()


def run_case(ctx: Context, family: str, seed: int, index: int) -> str:
    rng = np.random.default_rng([seed, FAMILIES.index(family), index])
    if family == "audio":
        names = sorted(ctx.audio)
        name = names[int(rng.integers(0, len(names)))]
        data = mutate_bytes(ctx.audio[name], rng)
        rec = ctx.recognizers[str(rng.choice(["mfcc", "logmel", "waveform"]))]
        if rng.random() < 0.1:
            path = ctx.folder / f"case{Path(name).suffix}"
            path.write_bytes(data)
            exercise(rec, path)
        else:
            exercise(rec, data)
        return name
    if family == "arrays":
        array, rate = random_array(rng)
        exercise(ctx.recognizers[str(rng.choice(["mfcc", "logmel", "waveform"]))], array, rate)
        return f"{array.dtype}{array.shape}@{rate}"
    from edge_ser import Recognizer
    from edge_ser.contract import METADATA_KEY

    base = str(rng.choice(sorted(ctx.models)))
    path, contract = ctx.models[base]
    import onnx

    model = onnx.load(str(path))
    if family == "contracts":
        text = mutate_contract(contract, rng)
        for entry in model.metadata_props:
            if entry.key == METADATA_KEY:
                entry.value = text
        data = model.SerializeToString()
    else:  # models: the ONNX bytes themselves
        data = mutate_bytes(model.SerializeToString(), rng)
    case = ctx.folder / "case.onnx"
    case.write_bytes(data)
    rec = Recognizer(case)
    exercise(rec, ctx.signal, 16000)
    rec.predict_batch([ctx.signal, ctx.short], 16000, on_error="return")
    return base


# -- worker and parent ------------------------------------------------------------------------------------------
def worker(family: str, seed: int, start: int, count: int) -> None:
    """Run cases ``start .. start+count``; one line per case on stdout: ``index outcome detail``."""
    from edge_ser import EdgeSERError

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    warnings.simplefilter("error", RuntimeWarning)
    report = os.fdopen(os.dup(1), "w", buffering=1)  # the protocol; libraries may print on fds 1 and 2
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    with tempfile.TemporaryDirectory(prefix="edge-ser-fuzz-") as tmp:
        ctx = Context(Path(tmp))
        print("ready", file=report)
        for index in range(start, start + count):
            print(f"{index} start", file=report)
            try:
                run_case(ctx, family, seed, index)
                outcome, detail = "ok", ""
            except EdgeSERError as exc:
                outcome, detail = type(exc).__name__, ""
                if "\n" in str(exc):
                    outcome, detail = "multiline", str(exc)[:300]
            except BaseException as exc:  # noqa: BLE001 -- the finding this fuzzer looks for
                outcome, detail = "exception", f"{type(exc).__name__}: {str(exc)[:300]}"
            print(f"{index} {outcome} {json.dumps(detail)}", file=report)


def run_family(family: str, cases: int, seed: int, chunk: int, timeout: float, log: Any) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    findings: list[dict[str, Any]] = []
    started = time.monotonic()
    index = 0
    while index < cases:
        count = min(chunk, cases - index)
        command = [sys.executable, __file__, "--worker", family, str(seed), str(index), str(count)]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        current, done_upto = None, index
        deadline = time.monotonic() + max(timeout, 120)  # the first answer waits for imports and seeds
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
            if not ready:  # hang: kill, count, go on after the case
                proc.kill()
                proc.wait()
                counts["hang"] += 1
                findings.append({"family": family, "case": current, "outcome": "hang"})
                done_upto = (current if current is not None else done_upto) + 1
                break
            line = proc.stdout.readline()
            if not line:  # the worker died
                code = proc.wait()
                if current is not None:
                    counts["crash"] += 1
                    findings.append({"family": family, "case": current, "outcome": f"crash (exit {code})"})
                    done_upto = current + 1
                elif code != 0:
                    raise RuntimeError(f"worker for {family} failed before its first case (exit {code})")
                break
            deadline = time.monotonic() + timeout
            parts = line.rstrip("\n").split(" ", 2)
            if parts[0] == "ready":
                continue
            case, outcome = int(parts[0]), parts[1]
            if outcome == "start":
                current = case
                continue
            current, done_upto = None, case + 1
            counts[outcome] += 1
            if outcome in ("exception", "multiline"):
                findings.append({"family": family, "case": case, "outcome": outcome, "detail": json.loads(parts[2])})
        index = max(done_upto, index + 1) if done_upto <= index else done_upto
        elapsed = time.monotonic() - started
        print(f"{family}: {index}/{cases} cases, {dict(counts)}, {elapsed:.0f} s", file=log, flush=True)
    return {"family": family, "cases": cases, "counts": dict(counts), "findings": findings, "seconds": elapsed}


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout
    lines = [
        "# Fuzzing edge-ser's untrusted inputs",
        "",
        f"Command: `{' '.join(['python', 'tests/fuzz/fuzz.py', *sys.argv[1:]])}` (niced, `OMP_NUM_THREADS=1`), "
        f"seed {args.seed}, commit {commit.strip() or '?'}, {cpu_model()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d', time.gmtime())}.",
        "",
        "Each case runs in a subprocess worker (a fresh one every "
        f"{args.chunk} cases) and must end in a result or an `EdgeSERError` with a one-line message. "
        "*Other exception*: anything else (numpy RuntimeWarnings are raised as errors); *crash*: the worker died; "
        f"*hang*: no answer within {args.timeout:g} s. Seeds are generated by the script (see its docstring).",
        "",
        "| family | what is mutated | cases | result | AudioError | ContractError | ModelError | other EdgeSERError "
        "| other exception | crash | hang | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    what = {
        "audio": "bytes of WAV/FLAC/OGG Vorbis/OGG Opus/MP3 seeds (bytes or a file), run through predict",
        "arrays": "numpy arrays: dtype, shape, values (NaN, inf, 1e300), rate; predict, segments, stream",
        "contracts": "the contract JSON in a tiny model's metadata (fields, types, raw NaN/Infinity/nesting, text)",
        "models": "the bytes of the ONNX model file",
    }
    for r in results:
        c = r["counts"]
        typed = sum(v for k, v in c.items() if k not in ("ok", "exception", "multiline", "crash", "hang"))
        other_typed = typed - c.get("AudioError", 0) - c.get("ContractError", 0) - c.get("ModelError", 0)
        lines.append(
            f"| {r['family']} | {what[r['family']]} | {r['cases']:,} | {c.get('ok', 0):,} | {c.get('AudioError', 0):,} "
            f"| {c.get('ContractError', 0):,} | {c.get('ModelError', 0):,} | {other_typed:,} "
            f"| {c.get('exception', 0) + c.get('multiline', 0):,} | {c.get('crash', 0):,} | {c.get('hang', 0):,} "
            f"| {r['seconds']:.0f} |"
        )
    findings = [f for r in results for f in r["findings"]]
    lines += ["", f"Findings: {len(findings)}."]
    for f in findings[:50]:
        lines.append(
            f"- {f['family']} case {f['case']}: {f['outcome']} {f.get('detail', '')} "
            f"(replay: `python tests/fuzz/fuzz.py --replay {f['family']} {f['case']} --seed {args.seed}`)"
        )
    return "\n".join(lines) + "\n"


def replay(family: str, index: int, seed: int) -> None:
    """Run one case in this process, with its traceback."""
    warnings.simplefilter("error", RuntimeWarning)
    with tempfile.TemporaryDirectory(prefix="edge-ser-fuzz-") as tmp:
        print(run_case(Context(Path(tmp)), family, seed, index))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        family, seed, start, count = sys.argv[2], *map(int, sys.argv[3:6])
        worker(family, seed, start, count)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for family in FAMILIES:
        parser.add_argument(f"--{family}", type=int, default=0, metavar="N", help=f"cases of the {family} family")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--chunk", type=int, default=2000, help="cases per worker process")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a case may take before it is a hang")
    parser.add_argument("--out", type=Path, help="markdown report (default: print it)")
    parser.add_argument("--replay", nargs=2, metavar=("FAMILY", "CASE"), help="run one case here, with a traceback")
    args = parser.parse_args()
    if args.replay:
        replay(args.replay[0], int(args.replay[1]), args.seed)
        return
    results = [
        run_family(f, getattr(args, f), args.seed, args.chunk, args.timeout, sys.stderr)
        for f in FAMILIES
        if getattr(args, f)
    ]
    text = report(results, args)
    if args.out:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    print(text)
    bad = sum(r["counts"].get(k, 0) for r in results for k in ("exception", "multiline", "crash", "hang"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
