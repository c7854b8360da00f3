"""Audio front-ends: waveform, MFCC, log-power spectrogram, log-mel and utterance functionals, in numpy.

This is the only feature implementation in edge-ser. Training imports it too, so a model
never sees different features at training and at run time. MFCC and log-mel follow
``python_speech_features``' definitions (``mfcc`` and ``logfbank``): same framing (zero-padded
last frame), pre-emphasis, power spectrum, triangular mel filterbank, DCT-II and lifter.
Frames are pre-emphasized and windowed in float32 (half the memory traffic of float64; the C port rounds
the same products), then go through numpy's float64 FFT in blocks of :data:`FFT_BLOCK` frames in reused
buffers (no per-frame Python loop, no per-call scratch allocation). Band energies match a float64 computation
to 1e-4, except bands 70 dB or more under their frame's loudest (the DC bin after pre-emphasis), which are as
exact as the frame's float32 rounding allows.
``functionals`` summarizes a whole window as one row: statistics over time of its MFCC and
log-mel frames (see :func:`functionals`), the input of utterance-level models whose speaker
adaptation normalizes those statistics.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .errors import AudioError, ContractError

KINDS = ("waveform", "mfcc", "logspec", "logmel", "functionals")
WINDOWS = ("rect", "hamming", "hann")

# Parameters that matter for each kind; the contract stores exactly these.
_FRAMES = ("sample_rate", "win_length", "hop_length", "n_fft", "window", "preemph")
_MEL = ("n_mels", "low_freq", "high_freq")
_PARAMS = {
    "waveform": ("sample_rate",),
    "mfcc": (*_FRAMES, *_MEL, "n_mfcc", "lifter", "append_energy"),
    "logspec": _FRAMES,
    "logmel": (*_FRAMES, *_MEL),
}
_PARAMS["functionals"] = _PARAMS["mfcc"]  # statistics of those MFCC and of the log-mel bands under them
N_FUNCTIONALS = 9  # statistics per frame feature, see functionals()
MEL_BLOCK = 16  # mel bands per block of the filterbank product
FFT_BLOCK = 150  # frames per FFT block: 1.5 s at a 10 ms hop, so 3 s take two blocks; bounded scratch (1.2 MB)
# Multiply-adds per BLAS call, at most: OpenBLAS (numpy's wheels) splits a product of more than 4 * 65536 over
# threads, which on a busy device wake late and then spin, stealing the core from inference (see _serial_matmul).
SERIAL_MACS = 4 * 65536
_EPS = float(np.finfo(float).eps)  # python_speech_features' floor for empty bands


def _round_half_up(x: float) -> int:
    """``x`` to the nearest integer, halves up, as python_speech_features rounds ``decimal.Decimal(repr(x))``
    for non-negative ``x``: a float's shortest ``repr`` ends in exactly .5 only when the float does, so
    its exact fractional part decides (without importing ``decimal``: 0.3 MiB of the predict process)."""
    if not math.isfinite(x):
        raise ContractError(f"front-end window and hop must be finite, got {x!r} samples")
    whole, fraction = divmod(x, 1.0)  # exact for floats
    return int(whole) + (fraction >= 0.5)


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale, as in python_speech_features."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    n_mels: int, n_fft: int, sample_rate: int, low_freq: float = 0.0, high_freq: float | None = None
) -> np.ndarray:
    """Triangular filters on FFT bins, ``(n_mels, n_fft // 2 + 1)``, as python_speech_features builds them."""
    high = high_freq or sample_rate / 2
    mels = np.linspace(hz_to_mel(low_freq), hz_to_mel(high), n_mels + 2)
    edges = np.floor((n_fft + 1) * mel_to_hz(mels) / sample_rate)
    bins = np.arange(n_fft // 2 + 1, dtype=np.float64)[None, :]
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        rising = np.where((bins >= lo) & (bins < mid), (bins - lo) / (mid - lo), 0.0)
        falling = np.where((bins >= mid) & (bins < hi), (hi - bins) / (hi - mid), 0.0)
    return rising + falling


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II as a ``(n_in, n_out)`` matrix (``x @ D == scipy dct(x, norm='ortho')[:n_out]``)."""
    k = np.arange(n_out)[None, :]
    n = np.arange(n_in)[:, None]
    d = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    d[:, 0] /= np.sqrt(2.0)
    return d


@dataclass(frozen=True)
class FrontEnd:
    """Turns a mono float signal at ``sample_rate`` into model input.

    ``waveform`` returns the samples, shape ``(n,)``; the others return ``(frames, n_features)``.
    Times are in seconds; ``window`` is ``rect`` (python_speech_features' default), ``hamming``
    or ``hann``; ``preemph`` is the pre-emphasis coefficient (0 disables it).
    """

    kind: str = "mfcc"
    sample_rate: int = 16000
    win_length: float = 0.025
    hop_length: float = 0.01
    n_fft: int = 512
    window: str = "rect"
    preemph: float = 0.97
    n_mels: int = 26
    low_freq: float = 0.0
    high_freq: float | None = None
    n_mfcc: int = 13
    lifter: float = 22.0
    append_energy: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ContractError(f"unknown front-end kind {self.kind!r}; expected one of {KINDS}")
        if self.window not in WINDOWS:
            raise ContractError(f"unknown window {self.window!r}; expected one of {WINDOWS}")
        if not 8000 <= self.sample_rate <= 96000:
            raise ContractError(f"front-end sample_rate {self.sample_rate} is outside 8000..96000")
        if self.kind == "waveform":
            return
        if self.frame_length < 2 or self.frame_step < 1:
            raise ContractError("front-end window and hop must each span at least one sample")
        if self.frame_length > self.n_fft:
            raise ContractError(f"n_fft {self.n_fft} is shorter than the {self.frame_length}-sample window")
        nyquist = self.sample_rate / 2
        if self.kind in ("mfcc", "logmel", "functionals") and not 0 <= self.low_freq < (self.high_freq or nyquist):
            raise ContractError("front-end needs 0 <= low_freq < high_freq")
        if self.kind in ("mfcc", "functionals") and not 1 <= self.n_mfcc <= self.n_mels:
            raise ContractError("front-end needs 1 <= n_mfcc <= n_mels")

    # -- description ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The parameters that define this front-end (what the model contract stores)."""
        return {"kind": self.kind, **{k: getattr(self, k) for k in _PARAMS[self.kind]}}

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> FrontEnd:
        """Build from ``to_dict()`` output; unknown or irrelevant keys are contract errors."""
        if not isinstance(spec, dict) or "kind" not in spec:
            raise ContractError("front-end spec must be an object with a 'kind'")
        kind = spec["kind"]
        if kind not in _PARAMS:
            raise ContractError(f"unknown front-end kind {kind!r}; expected one of {KINDS}")
        extra = set(spec) - {"kind", *_PARAMS[kind]}
        if extra:
            raise ContractError(f"front-end {kind!r} does not take {sorted(extra)}")
        try:
            return cls(**spec)
        except TypeError as exc:
            raise ContractError(f"bad front-end spec: {exc}") from None

    @cached_property
    def frame_length(self) -> int:
        return _round_half_up(self.win_length * self.sample_rate)

    @cached_property
    def frame_step(self) -> int:
        return _round_half_up(self.hop_length * self.sample_rate)

    @property
    def n_features(self) -> int | None:
        """Feature dimension of each frame; ``None`` for the waveform front-end."""
        return {
            "waveform": None,
            "mfcc": self.n_mfcc,
            "logspec": self.n_fft // 2 + 1,
            "logmel": self.n_mels,
            "functionals": N_FUNCTIONALS * (self.n_mfcc + self.n_mels),
        }[self.kind]

    @property
    def min_samples(self) -> int:
        return 1 if self.kind == "waveform" else self.frame_length

    def num_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` samples (the last one zero-padded; one row of functionals)."""
        if self.kind == "waveform":
            return n_samples
        if self.kind == "functionals":
            return 1
        return self.analysis_frames(n_samples)

    def analysis_frames(self, n_samples: int) -> int:
        """STFT frames over ``n_samples`` samples (what every spectral kind analyses)."""
        if n_samples <= self.frame_length:
            return 1
        return 1 + math.ceil((n_samples - self.frame_length) / self.frame_step)

    # -- computation ---------------------------------------------------------------------
    @cached_property
    def frame_window(self) -> np.ndarray:
        """The analysis window over one frame's ``frame_length`` samples (ones for ``rect``)."""
        n = self.frame_length
        return {"rect": np.ones(n), "hamming": np.hamming(n), "hann": np.hanning(n)}[self.window]

    @cached_property
    def _window32(self) -> np.ndarray:
        """:attr:`frame_window` in float32, for windowing float32 frames."""
        return self.frame_window.astype(np.float32)

    @cached_property
    def _projection(self) -> np.ndarray:
        """Maps the raw |FFT|^2 of a frame to filterbank energies (1/n_fft folded in), dense ``(bins, n_mels)``."""
        fb = mel_filterbank(self.n_mels, self.n_fft, self.sample_rate, self.low_freq, self.high_freq)
        return np.ascontiguousarray(fb.T / self.n_fft, dtype=np.float32)

    @cached_property
    def _mel_blocks(self) -> list[tuple[slice, slice, np.ndarray]]:
        """The filterbank as blocks of ``MEL_BLOCK`` adjacent bands over just the bins they cover
        ``(bins, bands, weights)``: a mel band spans few bins, so the dense product is mostly zeros."""
        dense = self._projection
        blocks = []
        for b0 in range(0, dense.shape[1], MEL_BLOCK):
            bands = slice(b0, min(b0 + MEL_BLOCK, dense.shape[1]))
            used = np.flatnonzero(dense[:, bands].any(axis=1))
            bins = slice(int(used[0]), int(used[-1]) + 1) if len(used) else slice(0, 1)
            blocks.append((bins, bands, np.ascontiguousarray(dense[bins, bands])))
        return blocks

    @cached_property
    def _cepstrum(self) -> np.ndarray:
        """DCT-II (orthonormal) with the sinusoidal lifter folded in."""
        d = dct_matrix(self.n_mels, self.n_mfcc)
        if self.lifter > 0:
            n = np.arange(self.n_mfcc)
            d = d * (1.0 + (self.lifter / 2.0) * np.sin(np.pi * n / self.lifter))[None, :]
        return d.astype(np.float32)

    @cached_property
    def _cepstrum64(self) -> np.ndarray:
        return self._cepstrum.astype(np.float64)

    @property
    def frame_width(self) -> int:
        """Width of one frame row of :meth:`frame_rows` (for ``functionals``: MFCC then log-mel)."""
        if self.kind == "functionals":
            return self.n_mfcc + self.n_mels
        return 1 if self.kind == "waveform" else int(self.n_features)

    def _emphasize(self, samples: np.ndarray, previous: float | None, out: np.ndarray) -> None:
        """``out`` = the pre-emphasized ``samples`` (in ``out``'s dtype), zero beyond them; ``previous`` is the
        signal's sample before ``samples[0]`` (``None``: the signal starts there). Two passes over ``out`` alone:
        the lagged samples scaled into it, then subtracted from the samples in place."""
        used = min(len(samples), len(out))
        if used < len(out):
            out[used:] = 0.0
        if used == 0:
            return
        head = out[:used]
        if not self.preemph:
            np.copyto(head, samples[:used], casting="same_kind")
            return
        np.multiply(samples[: used - 1], self.preemph, out=head[1:], casting="same_kind")  # the lagged samples
        # the first sample's lag in the same arithmetic as the others': a signal cut anywhere gives the same digits
        as_sample = samples.dtype.type if samples.dtype.kind == "f" else float  # the dtype numpy computes in
        head[0] = 0.0 if previous is None else as_sample(previous) * self.preemph
        np.subtract(samples[:used], head, out=head, casting="same_kind")  # element by element: in place is exact

    def _power(
        self,
        frames: Callable[[int, int, np.ndarray], None],
        pieces: Sequence[tuple[np.ndarray, float | None]],
        power: np.ndarray,
    ) -> None:
        """``power`` (float32, ``(n_frames, bins)``) = raw |FFT|^2 of pre-emphasized frames, windowed and zero-padded:
        first ``len(power) - len(pieces)`` signal frames, ``frames(start, stop, out)`` writing frames
        ``start .. stop-1`` into the ``(stop - start, n_fft)`` rows ``out``, windowed and zero-padded, then one
        frame per ``(samples, previous)`` of ``pieces`` (see :meth:`frame_rows`), in the same pass.

        The FFT runs in float64: numpy's float64 FFT is several times faster than its float32 one, and as
        fast as scipy's float32 FFT without scipy's import time and memory. Frames go through in blocks of
        :data:`FFT_BLOCK` (made, windowed, transformed and squared while the block is in cache) in per-thread
        buffers, so repeated calls allocate nothing. ``pieces`` ride in the signal frames' last block: no second
        pass with its own FFT call for a window's own frame (each window of a long signal has one).
        """
        n_frames, n_fft, bins = len(power), self.n_fft, self.n_fft // 2 + 1
        if not n_frames:
            return
        n_signal = n_frames - len(pieces)
        block = min(n_frames, FFT_BLOCK)
        fft_in = _buffer(("fft_in", n_fft, self.frame_length), (block, n_fft), np.float64, zeroed=True)
        spec = _buffer(("spectrum",), (block, bins), np.complex128)
        for start in range(0, n_frames, block):
            stop = min(start + block, n_frames)
            rows = stop - start
            signal = max(min(stop, n_signal) - start, 0)  # this block's signal frames, then its pieces
            if signal:
                frames(start, start + signal, fft_in[:signal])
            for row in range(signal, rows):
                samples, previous = pieces[start + row - n_signal]
                piece = _buffer(("piece",), (1, self.frame_length), np.float32)
                self._emphasize(samples, previous, piece[0])
                self._window(piece, fft_in[row : row + 1])
            parts = np.fft.rfft(fft_in[:rows], axis=-1, out=spec[:rows]).view(np.float64)
            np.square(parts, out=parts)  # re, im interleaved, squared in place (spec is scratch)
            np.add(parts[:, 0::2], parts[:, 1::2], out=power[start:stop], casting="same_kind")

    def _window(self, frames: np.ndarray, out: np.ndarray) -> None:
        """``out`` (float64 ``(rows, n_fft)``) = the float32 ``(rows, frame_length)`` ``frames`` times the window,
        rounded in float32 (the C port rounds the same way). The columns after ``frame_length`` are the FFT's zero
        padding: ``out`` is a zeroed buffer whose rows only ever get their first ``frame_length`` columns written."""
        length = self.frame_length
        if self.window == "rect":
            np.copyto(out[:, :length], frames)
        else:
            np.multiply(frames, self._window32, out=out[:, :length])  # float32 product, stored as float64

    def frame_rows(
        self,
        samples: np.ndarray,
        previous: float | None = None,
        n_frames: int | None = None,
        pieces: Sequence[tuple[np.ndarray, float | None]] = (),
    ) -> np.ndarray:
        """Per-frame features (a new float32 ``(frames, frame_width)`` array) of a spectral front-end.

        ``n_frames`` frames start at ``samples[0]``, one every ``frame_step``; the signal is zero beyond
        ``samples``. ``previous`` (the signal's sample before ``samples``, for pre-emphasis) and
        ``n_frames`` let a long signal be analysed piecewise into the frames it has as a whole; by
        default ``samples`` is a whole signal. For ``functionals`` the rows are the MFCC then the
        log-mel bands of each frame, which :meth:`pool` summarizes. Each ``(samples, previous)`` of
        ``pieces`` adds one row after those: the single frame starting at its ``samples[0]``, zero beyond
        them (a window's own first or last frame, computed with the frames around it in one pass).
        """
        if n_frames is None:
            n_frames = self.analysis_frames(len(samples))
        step = self.frame_step
        power = _buffer(("power",), (n_frames + len(pieces), self.n_fft // 2 + 1), np.float32)

        def frames(start: int, stop: int, out: np.ndarray) -> None:
            """The block's span of the signal, pre-emphasized into a small reused float32 buffer, then windowed
            into ``out``: float32 passes move half the bytes of float64 ones."""
            first, length = start * step, self.frame_length
            span = _buffer(("signal",), ((stop - start - 1) * step + length,), np.float32)
            before = previous if first == 0 else (float(samples[first - 1]) if first <= len(samples) else None)
            self._emphasize(samples[first:], before, span)
            # the overlapping frames as a view (np.ndarray on the buffer: as_strided costs ~5 us a call)
            self._window(np.ndarray((stop - start, length), np.float32, span, strides=(4 * step, 4)), out)

        self._power(frames, pieces, power)
        return self._rows(power)

    def _rows(self, power: np.ndarray) -> np.ndarray:
        """Frame rows from the frames' raw power spectra. The filterbank product takes all frames at once,
        so its (BLAS) rounding does not depend on how the FFT was blocked."""
        n_frames = len(power)
        if self.kind == "logspec":
            out = np.multiply(power, 1.0 / self.n_fft, dtype=np.float32)
            return np.log(_floor(out), out=out)
        width = self.frame_width
        out = np.empty((n_frames, width), np.float32)
        if self.kind == "mfcc":
            bands = _buffer(("bands",), (n_frames, self.n_mels), np.float32)
        else:
            bands = out[:, width - self.n_mels :]
        for bins, mels, weights in self._mel_blocks:
            _serial_matmul(power[:, bins], weights, bands[:, mels])
        logbands = np.log(_floor(bands), out=bands)
        if self.kind == "logmel":
            return out
        cep = np.empty((n_frames, self.n_mfcc))
        _serial_matmul(logbands.astype(np.float64), self._cepstrum64, cep)  # float64: the same digits in any batch
        if self.append_energy:
            cep[:, 0] = np.log(_floor(power.sum(axis=1, dtype=np.float32) / np.float32(self.n_fft)))
        out[:, : self.n_mfcc] = cep
        return out

    def pool(self, rows: np.ndarray) -> np.ndarray:
        """Model features from frame rows: the rows themselves, or for ``functionals`` their one summary row."""
        return functionals(rows)[None] if self.kind == "functionals" else rows

    def __call__(self, signal: np.ndarray) -> np.ndarray:
        """Features of a 1-D float signal, as a new float32 array."""
        x = np.asarray(signal)
        if x.ndim != 1 or x.size == 0:
            raise AudioError(f"front-end expects a non-empty 1-D signal, got shape {x.shape}")
        if self.kind == "waveform":
            return x.astype(np.float32)
        return self.pool(self.frame_rows(x))


def functionals(frames: np.ndarray) -> np.ndarray:
    """``(frames, bins)`` -> ``(9 * bins,)``: per bin, the mean, std, min, max, 10th/50th/90th percentile
    over time, and the mean absolute value and std of the first difference (level, spread, extremes and
    movement: what classic SER functionals describe), as float32 blocks in that order."""
    x = frames.astype(np.float64, copy=False)
    delta = np.diff(x, axis=0) if len(x) > 1 else np.zeros_like(x)
    ordered = np.sort(x, axis=0)  # one sort gives min, max and the percentiles
    position = np.array([0.1, 0.5, 0.9]) * (len(x) - 1)  # numpy's default (linear) percentile rule
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(x) - 1)
    frac = (position - low)[:, None]
    percentiles = ordered[low] + frac * (ordered[high] - ordered[low])
    stats = [x.mean(0), x.std(0), ordered[0], ordered[-1], *percentiles]
    return np.concatenate([*stats, np.abs(delta).mean(0), delta.std(0)]).astype(np.float32)


def _serial_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out[:] = a @ b`` in row chunks of at most :data:`SERIAL_MACS` multiply-adds each, so that no BLAS call
    is big enough to wake BLAS threads (the chunks move a result by float32 rounding at most; tested). Why: with
    numpy's default BLAS threads, beside one busy process per core, ``english``'s front-end took 8.0 ms for 3 s
    instead of 1.5 and ``predict`` 11.1 instead of 5.6 (the threads, spinning after the product, delay ONNX
    Runtime too); on an idle machine the threads saved 7 % of ``predict``'s wall time for twice its CPU time
    (``benchmarks/results/blas-threads.md``)."""
    per_row = a.shape[1] * b.shape[1]
    if len(a) * per_row <= SERIAL_MACS:  # the usual case: one call
        np.matmul(a, b, out=out)
        return
    rows = max(1, SERIAL_MACS // max(1, per_row))
    for start in range(0, len(a), rows):
        np.matmul(a[start : start + rows], b, out=out[start : start + rows])


_workspace = threading.local()


def _buffer(key: tuple, shape: tuple[int, ...], dtype: type, zeroed: bool = False) -> np.ndarray:
    """A reusable per-thread scratch array of ``shape`` (contents undefined). ``zeroed``: it starts as zeros, for a
    caller that keeps part of it zero by never writing there (``key`` must then pin that part's layout). The view
    last handed out under ``key`` is kept, so that a call on input of the same length makes no new array object."""
    try:
        buffers, views = _workspace.buffers, _workspace.views
    except AttributeError:
        buffers, views = _workspace.buffers, _workspace.views = {}, {}
    last = views.get(key)
    if last is not None and last.shape == shape and last.dtype == dtype:
        return last
    size = math.prod(shape)
    buf = buffers.get(key)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = buffers[key] = (np.zeros if zeroed else np.empty)(max(size, 1), dtype)
    view = views[key] = buf[:size].reshape(shape)
    return view


def _floor(a: np.ndarray) -> np.ndarray:
    """Replace exact zeros by machine epsilon before a log, as python_speech_features does. Energies are
    never negative, so a positive minimum (one fast reduction) means there is nothing to replace."""
    if not np.minimum.reduce(a, axis=None) > 0:  # the ufunc itself: ndarray.min's Python wrapper costs a microsecond
        a[a == 0] = _EPS
    return a


@dataclass(frozen=True)
class Normalization:
    """Feature normalization applied after the front-end.

    ``none``: features as they are. ``global``: ``(x - mean) / std`` with statistics of the
    training set (per feature, or one scalar each for waveforms). ``utterance``: each input's
    own mean and standard deviation over time (per feature).
    """

    mode: str = "none"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in ("none", "global", "utterance"):
            raise ContractError(f"unknown normalization mode {self.mode!r}")
        if self.mode == "global":
            if not self.mean or len(self.mean) != len(self.std):
                raise ContractError("global normalization needs mean and std of equal, non-zero length")
            if not all(math.isfinite(v) for v in (*self.mean, *self.std)) or min(self.std) <= 0:
                raise ContractError("normalization statistics must be finite and std > 0")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mode": self.mode}
        if self.mode == "global":
            d.update(mean=list(self.mean), std=list(self.std))
        return d

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> Normalization:
        if not isinstance(spec, dict):
            raise ContractError("normalization must be an object")
        try:
            return cls(
                mode=spec.get("mode", "none"),
                mean=tuple(float(v) for v in spec.get("mean", ())),
                std=tuple(float(v) for v in spec.get("std", ())),
            )
        except (TypeError, ValueError) as exc:
            raise ContractError(f"bad normalization: {exc}") from None

    @classmethod
    def fit(cls, features: list[np.ndarray]) -> Normalization:
        """Global statistics over all frames (rows) of a list of feature matrices or signals."""
        rows = np.concatenate([f.reshape(len(f), -1) for f in features]).astype(np.float64)
        return cls("global", tuple(rows.mean(axis=0)), tuple(np.maximum(rows.std(axis=0), 1e-5)))

    @cached_property
    def _stats(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.mean, np.float32), 1.0 / np.asarray(self.std, np.float32)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        if self.mode == "none":
            return features
        if self.mode == "global":
            mean, inv_std = self._stats
            if features.ndim == 2 and len(mean) not in (1, features.shape[1]):
                raise ContractError(f"normalization has {len(mean)} statistics for {features.shape[1]} features")
            out = features - mean  # one new array, scaled in place
            out *= inv_std
            return out
        mean = features.mean(axis=0, keepdims=True)
        std = features.std(axis=0, keepdims=True)
        out = features - mean
        out /= np.maximum(std, 1e-5)
        return out
