"""Resampling time per 3 s of audio to 16 kHz, this checkout's ``edge_ser/resample.py`` against an earlier commit's.

    python -m benchmarks.resample_speed [--before REF] [--runs 200] [--out benchmarks/results/runtime.md]

Every input rate the runtime meets often (48, 44.1, 32, 24, 22.05 and 8 kHz). Both implementations run in one
process, pinned to one core, and take turns in a new random order each round (``benchmarks.frontend_speed``'s
interleaving); figures are medians of this thread's CPU time, and each pair's outputs are compared first.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.frontend_speed import HEAD, interleaved, module_at, revision  # noqa: E402
from benchmarks.report import pinned_section  # noqa: E402

BEFORE = "8f1fb51"  # main before the resampler's overlapping windows moved from @ to einsum (2026-12-02)
RATES = (48000, 44100, 32000, 24000, 22050, 8000)


def report(ref: str, runs: int) -> list[str]:
    from edge_ser import resample as new

    old = module_at(ref, "resample")
    signals = {rate: (0.1 * np.random.default_rng(rate).standard_normal(3 * rate)).astype(np.float32) for rate in RATES}
    worst = {r: float(np.abs(new.resample(x, r, 16000) - old.resample(x, r, 16000)).max()) for r, x in signals.items()}
    fns = {}
    for rate, x in signals.items():
        fns[(rate, "before")] = lambda x=x, r=rate: old.resample(x, r, 16000)
        fns[(rate, "after")] = lambda x=x, r=rate: new.resample(x, r, 16000)
    ms = interleaved(fns, runs, warmup=10)
    lines = [
        f"Resampling 3 s of audio to 16 kHz, `{ref}` (before) against this checkout (after, `{revision()}`), CPU ms, "
        f"median of {runs} rounds, each calling every row once in a new random order:",
        "",
        "| input rate | before | after | after / before | max abs difference of the samples |",
        "|---|---:|---:|---:|---:|",
    ]
    for rate in RATES:
        b, a = ms[(rate, "before")], ms[(rate, "after")]
        lines.append(f"| {rate} Hz | {b:.3f} | {a:.3f} | {a / b:.2f} | {worst[rate]:.1e} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="git ref of the resampler to compare (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", type=Path, help="Markdown file to write the section into (replacing its old one)")
    args = parser.parse_args()
    pinned_section("Resampler before and after", lambda: report(args.before, args.runs), args.out, HEAD)


if __name__ == "__main__":
    main()
