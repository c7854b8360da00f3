"""How much a second busy core slows the first: the ceiling of any two-process speed-up on this machine.

    python benchmarks/core_contention.py [--rounds 4] [--clips 600] [--out FILE]

Runs a fixed ``Recognizer.predict`` loop (``english``, 4 s clips, one ONNX Runtime thread) in a fresh process
pinned to core 1, alone and together with an identical process on core 0, the two settings alternating, and
compares the CPU milliseconds per clip of each process (``time.process_time``, so waiting is not counted). A
ratio above 1 is slowdown from shared caches, memory bandwidth or a host that shares the cores: two processes
can then be at most ``2 / ratio`` times as fast as one, however little the pool itself costs
(``benchmarks/scale_out.py`` measures the pool).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import os, sys, time
import numpy as np
import edge_ser
os.sched_setaffinity(0, {int(sys.argv[1])})
recognizer = edge_ser.Recognizer("english", threads=1)
clip = (np.sin(np.arange(64000) / 9.0) * 0.1).astype(np.float32)
for _ in range(20):
    recognizer.predict(clip, sample_rate=16000)
start = time.process_time()
for _ in range(int(sys.argv[2])):
    recognizer.predict(clip, sample_rate=16000)
print((time.process_time() - start) / int(sys.argv[2]) * 1e3)
"""


def per_clip_ms(cores: list[int], clips: int) -> list[float]:
    """CPU ms per clip of one child per core in ``cores``, all started at once."""
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(c), str(clips)], stdout=subprocess.PIPE, text=True)
        for c in cores
    ]
    return [float(child.communicate()[0]) for child in children]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--clips", type=int, default=600)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs two cores")
    alone: list[float] = []
    together: list[float] = []
    load = os.getloadavg()[0]
    for r in range(args.rounds):  # alternate which setting goes first
        if r % 2 == 0:
            alone += per_clip_ms([1], args.clips)
        together += per_clip_ms([0, 1], args.clips)
        if r % 2 == 1:
            alone += per_clip_ms([1], args.clips)
    a, t = statistics.median(alone), statistics.median(together)
    text = (
        f"`python benchmarks/core_contention.py --rounds {args.rounds} --clips {args.clips}` (load average {load:.2f}"
        f" at the start): CPU ms per 4 s clip, `english`, one process alone median {a:.3f}"
        f" ({', '.join(f'{x:.3f}' for x in alone)}); two at once median {t:.3f}"
        f" ({', '.join(f'{x:.3f}' for x in together)}); ratio {t / a:.2f}, so two processes can be at most"
        f" {2 * a / t:.2f}x as fast as one on this machine."
    )
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
