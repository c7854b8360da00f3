"""Runtime figures: front-end time per 3 s of 16 kHz audio, `import edge_ser` time, install size.

    python benchmarks/runtime.py [--runs 300] [--install-size] [--out benchmarks/results/runtime.md]

Pinned to one core (and one BLAS thread) so the front-end figures mean "one core". Times
are medians over ``--runs`` calls after warm-up, measured in one process run.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.report import emit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def median_ms(fn, runs: int) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def plain_numpy_logmel(x: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """A straightforward numpy log-mel (strided frames, rfft, power, filterbank): the usual baseline."""
    frames = np.lib.stride_tricks.sliding_window_view(x, 400)[::160] * np.hanning(400)
    power = np.abs(np.fft.rfft(frames, n=512)) ** 2 / 512
    return np.log(power @ fb.T + 1e-10)


def frontend_rows(runs: int) -> list[tuple[str, float]]:
    from edge_ser.frontend import FrontEnd, mel_filterbank

    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(48000)).astype(np.float32)
    mfcc = FrontEnd("mfcc")
    logmel = FrontEnd("logmel", n_mels=40, window="hann")
    logspec = FrontEnd("logspec", window="hann")
    rows = [
        ("edge_ser MFCC (13 of 26 mel, 25/10 ms, n_fft 512)", median_ms(lambda: mfcc(x), runs)),
        ("edge_ser log-mel (40 mel, hann)", median_ms(lambda: logmel(x), runs)),
        ("edge_ser log-power spectrogram (257 bins, hann)", median_ms(lambda: logspec(x), runs)),
    ]
    fb = mel_filterbank(40, 512, 16000)
    rows.append(("plain numpy log-mel (baseline)", median_ms(lambda: plain_numpy_logmel(x, fb), runs)))
    try:
        import python_speech_features as psf

        x64 = x.astype(np.float64)
        rows.append(("python_speech_features.mfcc (reference)", median_ms(lambda: psf.mfcc(x64), max(runs // 5, 20))))
    except ImportError:
        pass
    from edge_ser.resample import resample

    for rate in (48000, 44100, 8000):
        y = (0.1 * rng.standard_normal(3 * rate)).astype(np.float32)
        rows.append(
            (f"resample 3 s from {rate} Hz to 16 kHz", median_ms(lambda y=y, r=rate: resample(y, r, 16000), 50))
        )
    fft_in = np.zeros((299, 512))
    rows.append(("numpy rfft of the 299 frames alone (lower bound)", median_ms(lambda: np.fft.rfft(fft_in), runs)))
    return rows


def import_time_ms(repeats: int = 7) -> float:
    code = "import time; t = time.perf_counter(); import edge_ser; print(time.perf_counter() - t)"
    times = [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(repeats)]
    return 1e3 * float(np.median(times))


def install_size_mb() -> float:
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
        torch_present = "torch" in listing.lower()
        return total / 2**20, torch_present, listing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--install-size", action="store_true", help="also build a fresh venv and measure it")
    parser.add_argument("--out", type=Path, help="write the markdown report here too")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    rows = frontend_rows(args.runs)
    lines = [
        "# Runtime figures",
        "",
        f"{date.today()} · {platform.processor() or platform.machine()} · {os.cpu_count()} cores on the machine, "
        f"pinned to 1 · Python {platform.python_version()} · numpy {np.__version__}",
        "",
        f"Time per 3 s of audio, one core, median of {args.runs} runs (resampling: 50 runs):",
        "",
        "| step | ms |",
        "|---|---:|",
        *[f"| {name} | {ms:.3f} |" for name, ms in rows],
        "",
        f"`import edge_ser`: {import_time_ms():.1f} ms (median of 7 fresh interpreters).",
    ]
    if args.install_size:
        size, torch_present, listing = install_size_mb()
        packages = ", ".join(
            line for line in listing.split() if "==" in line and not line.startswith(("pip=", "setuptools="))
        )
        lines += [
            "",
            f"Fresh runtime install (`pip install .` in a new venv): {size:.1f} MiB of site-packages; "
            f"torch installed: {torch_present}. Packages: {packages}.",
        ]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
