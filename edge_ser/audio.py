"""Audio input: anything a user may hold becomes a mono float32 signal at the model's rate.

Accepted: a path (WAV, FLAC, OGG, anything libsndfile reads), a binary file-like object,
``bytes`` holding such a file, or a numpy array with ``sample_rate=`` (int16, int32, float32 or
float64; 1-D mono, or 2-D multi-channel as ``(frames, channels)`` like soundfile returns,
``(channels, frames)`` accepted when the first axis is the short one, at most 64 channels).
Channels are averaged; rates from 8 to 96 kHz are resampled (see :mod:`edge_ser.resample`).
"""

from __future__ import annotations

import io
import os
import re
from typing import BinaryIO

import numpy as np

from .errors import AudioError
from .resample import resample

AudioInput = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | np.ndarray

MIN_RATE, MAX_RATE = 8000, 96000
MAX_CHANNELS = 64
_INT_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# libsndfile's own diagnostics for a cut-off file: a WAV data chunk longer than the file,
# or an Ogg stream without its end.
_TRUNCATED = re.compile(r"^data\s*:.*should be|ended unexpectedly", re.MULTILINE)


def check_rate(sample_rate: object) -> int:
    """The sample rate as an int, or an :class:`AudioError` if it is not one in 8..96 kHz."""
    if isinstance(sample_rate, (bool, np.bool_)) or not isinstance(sample_rate, (int, np.integer, float)):
        raise AudioError(f"sample rate must be a number of Hz, got {sample_rate!r}")
    if sample_rate != int(sample_rate) or not MIN_RATE <= sample_rate <= MAX_RATE:
        raise AudioError(f"sample rate {sample_rate} Hz is outside the supported {MIN_RATE}..{MAX_RATE} Hz")
    return int(sample_rate)


def to_mono_float(samples: np.ndarray) -> np.ndarray:
    """Validate a sample array and return it as a 1-D float32 mono signal in [-1, 1] scale."""
    if not isinstance(samples, np.ndarray):
        raise AudioError(f"expected a numpy array of samples, got {type(samples).__name__}")
    dtype = samples.dtype
    if dtype in _INT_SCALE:
        x = samples.astype(np.float32) / np.float32(_INT_SCALE[dtype])
    elif dtype in _FLOATS:
        x = samples.astype(np.float32, copy=False)
        if not np.isfinite(samples).all():
            raise AudioError("audio contains NaN or infinite samples")
    else:
        raise AudioError(f"unsupported sample dtype {dtype}; use int16, int32, float32 or float64")
    if x.ndim == 2:
        if x.shape[1] > MAX_CHANNELS and x.shape[0] <= MAX_CHANNELS:
            x = x.T
        if x.shape[1] > MAX_CHANNELS:
            raise AudioError(f"audio of shape {samples.shape} has more than {MAX_CHANNELS} channels")
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    elif x.ndim != 1:
        raise AudioError(f"audio must be 1-D (mono) or 2-D (frames, channels), got shape {samples.shape}")
    if x.size == 0:
        raise AudioError("audio is empty (0 samples)")
    return np.ascontiguousarray(x)


def _describe(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return f"<{type(source).__name__}>"


def read_audio(source: AudioInput) -> tuple[np.ndarray, int]:
    """Decode a path, file-like object or encoded bytes into ``(mono float32, rate)``."""
    import soundfile as sf

    name = _describe(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise AudioError(f"{name}: file not found")
        if os.path.isdir(path):
            raise AudioError(f"{name}: is a directory, not an audio file")
    elif not hasattr(source, "read"):
        raise AudioError(f"cannot read audio from a {type(source).__name__}")
    try:
        with sf.SoundFile(source) as f:
            declared, rate, diagnostics = f.frames, f.samplerate, f.extra_info
            data = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AudioError(f"{name}: not a readable audio file ({reason})") from None
    if _TRUNCATED.search(diagnostics) or (0 < declared < 2**62 and declared != len(data)):
        raise AudioError(f"{name}: truncated or corrupt: the file ends before the audio its header declares")
    if not np.isfinite(data).all():
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    if len(data) == 0:
        raise AudioError(f"{name}: audio is empty (0 samples)")
    return to_mono_float(data), check_rate(rate)


def load_audio(
    source: AudioInput, sample_rate: int | None = None, target_rate: int | None = None
) -> tuple[np.ndarray, int]:
    """Any accepted input as a mono float32 signal, resampled to ``target_rate`` if given.

    ``sample_rate`` is required for numpy arrays and must not be given for encoded audio,
    whose rate is in its header. Returns ``(signal, rate)``.
    """
    if isinstance(source, np.ndarray):
        if sample_rate is None:
            raise AudioError("a numpy array needs sample_rate= (its rate in Hz)")
        rate = check_rate(sample_rate)
        signal = to_mono_float(source)
    else:
        if sample_rate is not None:
            raise AudioError("sample_rate= applies to numpy arrays only; encoded audio carries its rate")
        signal, rate = read_audio(source)
    if target_rate is not None and rate != target_rate:
        signal, rate = resample(signal, rate, target_rate), target_rate
    return signal, rate
