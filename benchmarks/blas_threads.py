"""The front-end's filterbank product with numpy's default BLAS threads, on an idle and on a busy machine.

    python -m benchmarks.blas_threads [--calls 400] [--rounds 5] [--out benchmarks/results/blas-threads.md]

numpy's wheels multiply matrices with OpenBLAS, which splits a product of more than 4 * 65536 multiply-adds over
one thread per core. An app does not set ``OPENBLAS_NUM_THREADS=1`` (``edge-ser bench`` and the other
benchmarks do, so they never saw this): on a device whose cores are busy, those threads wake late and then spin,
and the front-end and the inference after it wait. ``edge_ser.frontend`` therefore splits its products into
chunks under :data:`edge_ser.frontend.SERIAL_MACS`. This script times ``Recognizer("english")`` on 3 s of audio
with the chunks (as shipped) and with one product per block (``SERIAL_MACS`` set huge, as before), the two
taking turns in rounds of ``--calls`` calls, first on an idle machine, then with one busy-looping process per
core (the "busy device"). Wall-clock ms per call (what a caller waits) and the CPU ms of all this process'
threads per call (BLAS threads spinning included). Nothing here sets a thread variable.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    if _name in os.environ:
        sys.exit(f"{_name} is set: this benchmark measures numpy's default BLAS threads; unset it")

import numpy as np  # noqa: E402

from benchmarks.report import cpu_name, emit  # noqa: E402
from edge_ser import Recognizer, frontend  # noqa: E402

VARIANTS = {"chunked products (shipped)": frontend.SERIAL_MACS, "one product per block (before)": 1 << 62}


def timed(fn: Callable[[], object], calls: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds of each of ``calls`` calls."""
    wall, cpu = [], []
    for _ in range(calls):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return wall, cpu


def measure(rec: Recognizer, x: np.ndarray, calls: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Per variant, the front-end's and predict's wall and CPU seconds, the variants taking turns each round."""
    fe = rec.contract.frontend
    out: dict[str, dict[str, list[float]]] = {v: {} for v in VARIANTS}
    for r in range(rounds):
        order = list(VARIANTS) if r % 2 == 0 else list(VARIANTS)[::-1]
        for variant in order:
            frontend.SERIAL_MACS = VARIANTS[variant]
            for part, fn in (("frontend", lambda: fe(x)), ("predict", lambda: rec.predict(x, sample_rate=16000))):
                fn()  # warm
                wall, cpu = timed(fn, calls)
                out[variant].setdefault(f"{part} wall", []).extend(wall)
                out[variant].setdefault(f"{part} cpu", []).extend(cpu)
    frontend.SERIAL_MACS = VARIANTS["chunked products (shipped)"]
    return out


def table(results: dict[str, dict[str, list[float]]]) -> list[str]:
    lines = [
        "| variant | front-end wall ms (median / p90) | front-end CPU ms | predict wall ms (median / p90) "
        "| predict CPU ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for variant, t in results.items():

        def ms(key: str, q: float, t: dict[str, list[float]] = t) -> float:
            return 1e3 * float(np.percentile(t[key], q))

        lines.append(
            f"| {variant} | {ms('frontend wall', 50):.3f} / {ms('frontend wall', 90):.3f} | "
            f"{ms('frontend cpu', 50):.3f} | {ms('predict wall', 50):.3f} / {ms('predict wall', 90):.3f} | "
            f"{ms('predict cpu', 50):.3f} |"
        )
    names = list(results)
    ratio = np.median(results[names[1]]["predict wall"]) / np.median(results[names[0]]["predict wall"])
    lines += ["", f"predict wall-clock median, before / chunked: {ratio:.2f}"]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="calls per variant and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    cpu = cpu_name()
    rec = Recognizer("english")
    x = (0.1 * np.random.default_rng(0).standard_normal(3 * 16000)).astype(np.float32)
    lines = [
        "# The filterbank product and numpy's BLAS threads",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {cpu} · {cores} cores · numpy {np.__version__} · "
        f"load average {os.getloadavg()[0]:.2f} at the start · no thread variable set",
        "",
        f"Command: `python -m benchmarks.blas_threads --calls {args.calls} --rounds {args.rounds}`",
        "",
        f"`Recognizer('english')`, 3 s of audio, {args.calls} calls per variant and part in each of {args.rounds} "
        "rounds (the variants in turn, the order alternating): medians and 90th percentiles over all calls.",
        "",
        "## Idle machine",
        "",
        *table(measure(rec, x, args.calls, args.rounds)),
    ]
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        time.sleep(1.0)
        busy = measure(rec, x, args.calls, args.rounds)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    lines += ["", f"## Busy machine: {cores} busy-looping processes beside it, one per core", "", *table(busy)]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
