"""Peak resident memory of a fresh predict process: this checkout against an earlier commit, and the floor
that numpy and ONNX Runtime set without edge_ser.

    python -m benchmarks.predict_memory [--before REF] [--rounds 7] [--model default] [--out FILE.md]

Each round starts one process of each kind, in turn: ``edge-ser bench``'s own fresh-process child (import,
load, one prediction on 3 s of audio, then its ``VmHWM``) running this checkout's ``edge_ser``, the same
child running ``REF``'s (exported with ``git archive``), and a floor process that imports numpy, makes one
``numpy.fft`` call, opens the same model file in ONNX Runtime as ``Recognizer`` does and runs it once on
zeros, with no edge_ser at all. Medians over the rounds; the floor is what no change to edge_ser removes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tarfile
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from benchmarks.frontend_speed import BEFORE, HEAD, revision
from benchmarks.report import cpu_name, replace_section
from edge_ser.bench import _FRESH, _environment, bench_signal
from edge_ser.model import resolve

ROOT = Path(__file__).resolve().parents[1]

_FLOOR = """
import json, sys
import numpy as np
np.fft.rfft(np.zeros((2, 400)), n=512)
import onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = 1, 1, 3
session = ort.InferenceSession(sys.argv[1], sess_options=options, providers=["CPUExecutionProvider"])
shape = [d if isinstance(d, int) else 299 for d in session.get_inputs()[0].shape]
session.run(None, {session.get_inputs()[0].name: np.zeros([1, *shape[1:]], np.float32)})
with open("/proc/self/status") as f:
    print(json.dumps({"peak_rss_mb": next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM:"))}))
"""


# This checkout's predict process, stage by stage: peak, anonymous and file-backed resident memory after each.
_STAGES = """
import json, sys

def status():
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return [int(fields[k].split()[0]) / 1024 for k in ("VmHWM", "RssAnon", "RssFile")]

stages = [("interpreter started", status())]
import numpy as np
stages.append(("import numpy", status()))
from edge_ser import Recognizer
stages.append(("import edge_ser", status()))
x = np.load(sys.argv[2])
rec = Recognizer(sys.argv[1], threads=1)
stages.append(("Recognizer loaded (imports onnxruntime, opens the session)", status()))
rec.predict(x, sample_rate=16000)
stages.append(("first predict (front-end, one session run)", status()))
print(json.dumps(stages))
"""


def _child_environment() -> dict[str, str]:
    """``edge-ser bench``'s environment for its children (one thread everywhere, Python's bytecode cache on) without
    its PYTHONPATH: each kind of process here sets its own."""
    env = _environment(1)
    del env["PYTHONPATH"]
    return env


def stage_lines(path: str, signal: Path, rounds: int, cwd: Path) -> list[str]:
    """Medians over ``rounds`` fresh processes of :data:`_STAGES`, as Markdown lines."""
    env = _child_environment()
    env["PYTHONPATH"] = str(ROOT)
    runs = []
    for _ in range(rounds):
        out = subprocess.run(
            [sys.executable, "-c", _STAGES, path, str(signal)], capture_output=True, text=True, env=env, cwd=cwd
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    values = np.median(np.array([[row for _, row in run] for run in runs]), axis=0)
    lines = [
        f"This checkout's predict process stage by stage (MiB, median of {rounds}):",
        "",
        "| after | peak RSS | anonymous | file-backed | peak added |",
        "|---|---:|---:|---:|---:|",
    ]
    previous = 0.0
    for (name, _), (peak, anon, file) in zip(runs[0], values):
        lines.append(f"| {name} | {peak:.1f} | {anon:.1f} | {file:.1f} | {peak - previous:+.1f} |")
        previous = peak
    return lines


def export(ref: str, into: Path) -> Path:
    """``ref``'s tree (``git archive``), extracted into ``into``."""
    archive = into / "tree.tar"
    subprocess.run(["git", "archive", "-o", str(archive), ref], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


def peak(code: str, argv: list[str], root: Path | None, cwd: Path) -> float:
    """VmHWM (MiB) of a fresh interpreter running ``code``, one thread everywhere, ``root`` importable. It runs
    in ``cwd``, a folder without ``edge_ser``: ``python -c`` puts the working directory first on ``sys.path``."""
    env = _child_environment()
    if root is not None:
        env["PYTHONPATH"] = str(root)
    out = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, cwd=cwd, check=True
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"])


def report(ref: str, rounds: int, model: str) -> list[str]:
    path = str(resolve(model))
    with tempfile.TemporaryDirectory() as tmp:
        old = export(ref, Path(tmp))
        signal = Path(tmp) / "signal.npy"
        np.save(signal, bench_signal(3.0, 16000))
        fresh = [path, "1", str(signal), "16000"]
        kinds = {
            f"this checkout (`{revision()}`)": (_FRESH, fresh, ROOT),
            f"`{ref}`": (_FRESH, fresh, old),
            "floor: numpy, numpy.fft, the ONNX Runtime session and one run, no edge_ser": (_FLOOR, [path], None),
        }
        peaks: dict[str, list[float]] = {name: [] for name in kinds}
        for _ in range(rounds):
            for name, (code, argv, root) in kinds.items():
                peaks[name].append(peak(code, argv, root, Path(tmp)))
        stages = stage_lines(path, signal, rounds, Path(tmp))
    lines = [
        f"Peak RSS (`VmHWM`) of fresh processes, `{Path(path).name}`, 3 s of audio, one thread; median of {rounds} "
        "rounds, the kinds taking turns:",
        "",
        "| process | peak RSS MiB (median) | min | max |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {np.median(v):.1f} | {min(v):.1f} | {max(v):.1f} |" for name, v in peaks.items()]
    return [*lines, "", *stages]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="git ref to compare (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", type=Path, help="Markdown file to write the section into (replacing its old one)")
    args = parser.parse_args()
    started = datetime.now(timezone.utc)
    text = "\n".join(
        [
            f"## Predict-process memory ({started:%Y-%m-%d %H:%M} UTC)",
            "",
            f"{cpu_name()} · Python {sys.version.split()[0]} · numpy {np.__version__} · interpreter `{sys.prefix}`",
            "",
            "Command: `python -m benchmarks.predict_memory " + shlex.join(sys.argv[1:]) + "`",
            "",
            *report(args.before, args.rounds, args.model),
        ]
    )
    print(text)
    if args.out:
        replace_section(args.out, HEAD, "Predict-process memory", text + "\n", keep_older=True)


if __name__ == "__main__":
    main()
