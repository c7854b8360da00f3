"""Front-end time per 3 s of audio, this checkout's ``edge_ser/frontend.py`` against an earlier commit's.

    python -m benchmarks.frontend_speed [--before REF] [--runs 1000] [--long 600] [--corpus DIR] [--out FILE.md]

Both implementations run in one process, pinned to one core, and take turns call by call (one interleaved
run: a loaded machine slows them alike, so their ratio holds); figures are medians of this thread's CPU
time. Rows: the shipped ``english`` log-mel front-end (its contract's hop), the same with a 10 ms hop, the shipped
``chinese`` front-end, and numpy's float64 rfft of each one's frames alone (the FFT's share, which no change
to the code around it removes). Before timing, each pair's features are compared. ``--long SECONDS`` adds
``predict`` on that much audio, with the earlier commit's front-end and window cutter against this checkout's.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import importlib.util  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import runtime  # noqa: E402
from benchmarks.report import pinned_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "238b464"  # main before the front-end's per-frame work was cut (2026-12-01)
HEAD = "# Runtime figures\n"


def interleaved(fns: dict[Any, Callable[[], object]], runs: int, warmup: int = 30) -> dict[Any, float]:
    """Median CPU ms of this thread for each function, all called once per round in an order shuffled each round
    (:func:`benchmarks.runtime.interleaved`; a fixed order biases the call after a switch: caches and branch
    predictors hold the previous one's state)."""
    return {name: cpu for name, (cpu, _) in runtime.interleaved(fns, runs, warmup).items()}


def module_at(ref: str, module: str = "frontend") -> ModuleType:
    """``edge_ser/<module>.py`` as of git ``ref``, loaded as a module beside the current one."""
    source = subprocess.run(
        ["git", "show", f"{ref}:edge_ser/{module}.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    name = f"edge_ser._{module}_before"
    loaded = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None))
    loaded.__package__ = "edge_ser"
    sys.modules[name] = loaded  # dataclasses look their module up
    exec(compile(source, f"{ref}:edge_ser/{module}.py", "exec"), loaded.__dict__)
    return loaded


def revision() -> str:
    """This checkout's commit, marked when its edge_ser files differ from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "edge_ser"], cwd=ROOT).returncode
    return head.strip() + (" + changes" if dirty else "")


def report(ref: str, runs: int) -> list[str]:
    from edge_ser import Recognizer

    old = module_at(ref)
    english, chinese = (Recognizer(name).contract.frontend for name in ("english", "chinese"))
    configs = {
        f"`english` {runtime.describe(english)} (shipped)": english,
        "`english` log-mel, 10 ms hop (the file shipped before 2026-12-03)": dataclasses.replace(
            english, hop_length=0.01
        ),
        f"`chinese` {runtime.describe(chinese)} (shipped)": chinese,
    }
    x = (0.1 * np.random.default_rng(0).standard_normal(48000)).astype(np.float32)
    fns, worst = {}, {}
    for name, new in configs.items():
        before = old.FrontEnd(**dataclasses.asdict(new))
        worst[name] = float(np.abs(new(x).astype(np.float64) - before(x)).max())
        n = new.analysis_frames(len(x))
        frames = np.zeros((n, new.n_fft))  # zero-padded, as the front-end hands them to the FFT
        frames[:, : new.frame_length] = np.random.default_rng(1).standard_normal((n, new.frame_length))
        spectrum = np.empty((n, new.n_fft // 2 + 1), complex)
        fns[(name, "before")] = lambda fe=before: fe(x)
        fns[(name, "after")] = lambda fe=new: fe(x)
        fns[(name, "fft")] = lambda a=frames, o=spectrum: np.fft.rfft(a, out=o)
    ms = interleaved(fns, runs)
    lines = [
        f"Front-end per 3 s of 16 kHz audio, `{ref}` (before) against this checkout (after, `{revision()}`), CPU "
        "ms, median of "
        f"{runs} rounds, each calling every row once in a new random order:",
        "",
        "| front-end | frames | before | after | after / before | numpy rfft of the frames alone | "
        "after minus the rfft | max abs difference of the features |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, fe in configs.items():
        b, a, f = (ms[(name, part)] for part in ("before", "after", "fft"))
        lines.append(
            f"| {name} | {fe.analysis_frames(len(x))} | {b:.3f} | {a:.3f} | {a / b:.2f} | {f:.3f} | {a - f:.3f} | "
            f"{worst[name]:.1e} |"
        )
    lines += [
        "",
        "The rfft column is numpy's float64 FFT of the same frames and nothing else: the floor for a front-end on "
        "numpy (faster FFTs cost more to import than they save; see the front-end table above).",
    ]
    return lines


def recognizers_before_and_after(ref: str, name: str) -> tuple[Any, Any, Any]:
    """Shipped model ``name`` twice: its windows cut and analysed by ``ref``'s cutter and front-end (``edge_ser/
    windows.py`` and ``frontend.py``, through the seam Stream uses), and by this checkout's; and ``ref``'s
    front-end itself."""
    from edge_ser import Recognizer

    old_frontend, old_windows = module_at(ref, "frontend"), module_at(ref, "windows")
    after = Recognizer(name)
    old_fe = old_frontend.FrontEnd(**dataclasses.asdict(after.contract.frontend))

    class Before(Recognizer):
        def cutter(self) -> Any:
            return old_windows.Cutter(self.window_samples, self.hop_samples, self.min_samples, old_fe)

    return Before(name), after, old_fe


def long_audio_report(ref: str, seconds: float, runs: int) -> list[str]:
    """``english``'s ``predict`` on ``seconds`` of audio, ms per audio-second, with ``ref``'s front-end and window
    cutter (``edge_ser/frontend.py`` and ``windows.py``) against this checkout's: frames once per signal, the
    windows' own edge frames and inference, the whole long-audio path."""
    before, after, _ = recognizers_before_and_after(ref, "english")
    x = (0.1 * np.random.default_rng(0).standard_normal(int(seconds * 16000))).astype(np.float32)
    old, new = (rec.predict_segments(x, sample_rate=16000) for rec in (before, after))
    worst = max(abs(a - b) for o, n in zip(old, new) for a, b in zip(o.scores.values(), n.scores.values()))
    same = sum(o.label == n.label for o, n in zip(old, new))
    fns = {name: lambda r=rec: r.predict(x, sample_rate=16000) for name, rec in (("before", before), ("after", after))}
    ms = interleaved(fns, runs, 2)
    return [
        f"`english` `predict` on {seconds:g} s of 16 kHz noise ({len(new)} windows), `{ref}`'s front-end "
        f"and window cutter (before) against this checkout's (after, `{revision()}`), CPU ms per audio-second, "
        f"median of {runs} rounds in a new random order each: before {ms['before'] / seconds:.3f}, after "
        f"{ms['after'] / seconds:.3f} ({ms['after'] / ms['before']:.2f}x); `predict_segments` gives the same label "
        f"in {same} of {len(new)} windows, scores at most {worst:.1e} apart.",
    ]


def corpus_report(ref: str, root: Path, clips: int) -> list[str]:
    """Each shipped model's features and ``predict`` scores on real speech, ``ref``'s front-end and window cutter
    against this checkout's: ``clips`` files drawn (fixed seed) from each corpus folder under ``root``. Generated
    signals (the tables above) do not show what a change of arithmetic does in the quiet bands of recordings."""
    from edge_ser.audio import load_audio

    rng = np.random.default_rng(0)
    corpora = sorted(d for d in root.iterdir() if d.is_dir())
    files = {}
    for corpus in corpora:
        found = sorted(f for f in corpus.rglob("*") if f.suffix.lower() in (".wav", ".flac"))
        files[corpus.name] = [found[i] for i in rng.choice(len(found), min(clips, len(found)), replace=False)]
    lines = [
        f"Real speech, `{ref}` (before) against this checkout (after), {clips} clips drawn from each of "
        f"{', '.join(files)} (`--corpus {root}`), whole clips through `predict`:",
        "",
        "| model | clips | max abs feature difference, lowest mel band | the other bands | max abs score difference | "
        "top class changed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("english", "chinese"):
        before, after, old_fe = recognizers_before_and_after(ref, name)
        band0 = rest = score = 0.0
        changed = total = 0
        for paths in files.values():
            for path in paths:
                x = load_audio(path, target_rate=after.sample_rate)[0]
                diff = np.abs(after.contract.frontend(x).astype(np.float64) - old_fe(x))
                band0, rest = max(band0, float(diff[:, 0].max())), max(rest, float(diff[:, 1:].max()))
                a, b = after.predict(x, sample_rate=after.sample_rate), before.predict(x, sample_rate=after.sample_rate)
                score = max(score, max(abs(a.scores[k] - b.scores[k]) for k in a.scores))
                changed += a.label != b.label
                total += 1
        lines.append(f"| `{name}` | {total} | {band0:.1e} | {rest:.1e} | {score:.1e} | {changed} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="git ref of the front-end to compare (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--out", type=Path, help="Markdown file for the section (above earlier ones, which stay)")
    parser.add_argument("--long", type=float, default=0, help="also time predict on this many seconds (default: no)")
    parser.add_argument("--long-runs", type=int, default=7, help="rounds of the long-audio timing")
    parser.add_argument("--corpus", type=Path, help="also compare features and scores on clips of the corpora here")
    parser.add_argument("--clips", type=int, default=100, help="clips per corpus for --corpus")
    args = parser.parse_args()

    def lines() -> list[str]:
        extra = ["", *long_audio_report(args.before, args.long, args.long_runs)] if args.long else []
        if args.corpus:
            extra += ["", *corpus_report(args.before, args.corpus, args.clips)]
        return [*report(args.before, args.runs), *extra]

    pinned_section("Front-end before and after", lines, args.out, HEAD)


if __name__ == "__main__":
    main()
