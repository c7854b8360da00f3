"""Audio input: anything a user may hold becomes a mono float32 signal at the model's rate.

Accepted: a path (``str``, ``bytes`` or ``os.PathLike``, any file name the OS allows; WAV, FLAC,
OGG Vorbis/Opus, MP3, anything libsndfile reads), a binary file-like object, ``bytes`` holding such
a file, or a numpy array with ``sample_rate=`` (int16, int32, float32 or float64; 1-D mono, or 2-D
multi-channel with at most 64 channels: ``(frames, channels)`` like soundfile returns, or
``(channels, frames)``; the shorter axis is the channels, ``(n, n)`` is ``(frames, channels)``).
Channels are averaged; rates from 8 to 96 kHz are resampled (see :mod:`edge_ser.resample`).

Encoded audio is untrusted: it is decoded block by block into mono, so memory follows the audio
really decoded and never a length a header claims; a header declaring more than ``MAX_FRAMES`` is
refused before reading, and the decoded length must equal the declared one for every container
(an Ogg stream must also end with its end-of-stream page), so a cut-off file is an error, never a
silently shorter signal.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from .errors import AudioError
from .resample import resample

AudioInput = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | np.ndarray

MIN_RATE, MAX_RATE = 8000, 96000
MAX_CHANNELS = 64
# Largest |sample| accepted in float audio: full scale is 1.0, int16-scaled floats reach 32768; beyond
# 1e6 (120 dB over full scale) it is not audio, and squares in the front-end would overflow float32.
MAX_AMPLITUDE = 1e6
# Most frames read from one file (3.1 h at 48 kHz, 9.3 h at 16 kHz; 2 GiB as one mono float32 array): a
# header claiming more is refused before reading, so a small file cannot ask for hours of decoding.
MAX_FRAMES = 2**29
BLOCK_FRAMES = 2**16
_INT_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# libsndfile's own diagnostics for a cut-off file: a WAV data chunk longer than the file,
# or an Ogg stream without its end.
_TRUNCATED = re.compile(r"^data\s*:.*should be|ended unexpectedly", re.MULTILINE)
_UNKNOWN_LENGTH = 2**62  # libsndfile reports SF_COUNT_MAX frames for a stream of unknown length
_OGG_PAGE_MAX = 27 + 255 + 255 * 255


def check_rate(sample_rate: object) -> int:
    """The sample rate as an int, or an :class:`AudioError` if it is not one in 8..96 kHz."""
    if isinstance(sample_rate, (bool, np.bool_)) or not isinstance(sample_rate, (int, np.integer, float, np.floating)):
        raise AudioError(f"sample rate must be a number of Hz, got {sample_rate!r}")
    if not math.isfinite(sample_rate) or sample_rate != int(sample_rate) or not MIN_RATE <= sample_rate <= MAX_RATE:
        raise AudioError(f"sample rate {sample_rate} Hz is outside the supported {MIN_RATE}..{MAX_RATE} Hz")
    return int(sample_rate)


def _channels_last(samples: np.ndarray) -> np.ndarray:
    """A 2-D array as ``(frames, channels)``: the shorter axis holds the channels."""
    frames, channels = samples.shape
    if channels > frames:
        samples, frames, channels = samples.T, channels, frames
    if channels > MAX_CHANNELS:
        raise AudioError(f"audio of shape {samples.shape} has more than {MAX_CHANNELS} channels")
    return samples


def to_mono_float(samples: np.ndarray) -> np.ndarray:
    """Validate a sample array and return it as a 1-D float32 mono signal in [-1, 1] scale."""
    if not isinstance(samples, np.ndarray):
        raise AudioError(f"expected a numpy array of samples, got {type(samples).__name__}")
    dtype = samples.dtype
    if dtype not in _INT_SCALE and dtype not in _FLOATS:
        raise AudioError(f"unsupported sample dtype {dtype}; use int16, int32, float32 or float64")
    if samples.ndim == 2:
        samples = _channels_last(samples)
    elif samples.ndim != 1:
        raise AudioError(f"audio must be 1-D (mono) or 2-D (frames, channels), got shape {samples.shape}")
    if samples.size == 0:
        raise AudioError("audio is empty (0 samples)")
    if dtype in _INT_SCALE:
        x = samples.astype(np.float32) / np.float32(_INT_SCALE[dtype])
    else:
        _check_float(samples)
        x = samples.astype(np.float32, copy=False)
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    return np.ascontiguousarray(x)


def _check_float(samples: np.ndarray) -> None:
    """Refuse NaN, infinite and absurdly large float samples (before any float32 cast could overflow)."""
    if not samples.size:
        return
    peak = max(float(samples.max()), -float(samples.min()))  # NaN propagates; no copy of the signal
    if not math.isfinite(peak):
        raise AudioError("audio contains NaN or infinite samples")
    if peak > MAX_AMPLITUDE:
        raise AudioError(
            f"audio samples reach {peak:.3g}; float audio must be near [-1, 1] (at most {MAX_AMPLITUDE:g})"
        )


def _describe(source: object) -> str:
    if _is_path(source):
        return os.fsdecode(source).encode("utf-8", "backslashreplace").decode("utf-8")
    return f"<{type(source).__name__}>"


def _is_path(source: object) -> bool:
    """``str``/``os.PathLike`` always; ``bytes`` when short and free of NUL bytes, which every encoded audio
    file has (WAV, FLAC and Ogg headers hold zero bytes), so ``os.listdir(b".")`` names can be read."""
    if isinstance(source, (str, os.PathLike)):
        return True
    return isinstance(source, bytes) and 0 < len(source) <= 4096 and b"\0" not in source


def _ogg_complete(tail: bytes) -> bool:
    """True if ``tail`` (the last bytes of a file) ends exactly with an Ogg page flagged end-of-stream."""
    at = tail.rfind(b"OggS")
    while at >= 0:
        header_end = at + 27 + (tail[at + 26] if at + 26 < len(tail) else 0)
        if header_end <= len(tail) and header_end + sum(tail[at + 27 : header_end]) == len(tail):
            return bool(tail[at + 5] & 0x04)
        at = tail.rfind(b"OggS", 0, at)
    return False


def _tail(handle: BinaryIO) -> bytes:
    position = handle.tell()
    handle.seek(0, io.SEEK_END)
    size = handle.tell()
    handle.seek(max(size - _OGG_PAGE_MAX, 0))
    data = handle.read()
    handle.seek(position)
    return data


class AudioFile:
    """Encoded audio opened for reading in blocks of mono float32, each checked as it comes.

    ``rate`` and ``frames`` (the declared length, ``None`` if the container does not say) are known
    once open; :meth:`blocks` yields the signal and raises :class:`AudioError` for bad samples as soon
    as they appear, and at the end if the decoded length differs from the declared one. Memory is one
    block, whatever the file's length. Use as a context manager.
    """

    def __init__(self, source: AudioInput) -> None:
        import soundfile as sf

        self.name = _describe(source)
        self._own: BinaryIO | None = None
        if isinstance(source, (bytes, bytearray, memoryview)) and not _is_path(source):
            handle: BinaryIO = io.BytesIO(bytes(source))
        elif _is_path(source):
            path = os.fspath(source)
            if not os.path.exists(path):
                what = " (bytes without NUL are taken as a file name; encoded audio always has some)"
                raise AudioError(f"{self.name}: file not found{what if isinstance(path, bytes) else ''}")
            if os.path.isdir(path):
                raise AudioError(f"{self.name}: is a directory, not an audio file")
            try:  # opened by Python, so any name the OS allows works (libsndfile wants UTF-8 text)
                handle = self._own = open(path, "rb")
            except OSError as exc:
                raise AudioError(f"{self.name}: cannot open ({exc.strerror or exc})") from None
        elif hasattr(source, "read"):
            handle = source  # type: ignore[assignment]
        else:
            raise AudioError(f"cannot read audio from a {type(source).__name__}")
        try:
            self._file = sf.SoundFile(handle)
        except Exception as exc:  # libsndfile and soundfile raise several untyped errors for bad input
            self.close()
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise AudioError(f"{self.name}: not a readable audio file ({reason})") from None
        try:
            self._check_header(handle)
        except AudioError:
            self.close()
            raise

    def _check_header(self, handle: BinaryIO) -> None:
        f = self._file
        self.rate = check_rate(f.samplerate)
        self.channels = f.channels
        if not 1 <= f.channels <= MAX_CHANNELS:
            raise AudioError(f"{self.name}: {f.channels} channels; at most {MAX_CHANNELS} are supported")
        self.frames: int | None = f.frames if 0 < f.frames < _UNKNOWN_LENGTH else None
        if self.frames is not None and self.frames > MAX_FRAMES:
            raise AudioError(
                f"{self.name}: declares {self.frames} frames ({self.frames / self.rate / 3600:.1f} h); "
                f"at most {MAX_FRAMES} are read"
            )
        if f.format == "OGG" and getattr(handle, "seekable", lambda: False)() and not _ogg_complete(_tail(handle)):
            raise AudioError(f"{self.name}: truncated or corrupt: the Ogg stream ends without its last page")

    def blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """The signal as mono float32 blocks of up to ``frames`` frames; at most ``MAX_FRAMES`` in all."""
        import soundfile as sf

        limit, total = MAX_FRAMES, 0
        while True:
            try:
                data = self._file.read(frames, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError, OSError, MemoryError) as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise AudioError(f"{self.name}: not a readable audio file ({reason})") from None
            if not len(data):
                break
            total += len(data)
            if self.frames is not None and total > self.frames:
                raise AudioError(f"{self.name}: truncated or corrupt: more audio than its header declares")
            if total > limit:
                raise AudioError(f"{self.name}: more than {limit} frames; edge-ser reads at most that many")
            try:
                _check_float(data)
            except AudioError as exc:
                raise AudioError(f"{self.name}: {exc}") from None
            yield data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0].copy()
        if _TRUNCATED.search(self._file.extra_info) or (self.frames is not None and total != self.frames):
            raise AudioError(f"{self.name}: truncated or corrupt: the file ends before the audio its header declares")
        if total == 0:
            raise AudioError(f"{self.name}: audio is empty (0 samples)")

    def close(self) -> None:
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()
        if self._own is not None:
            self._own.close()

    def __enter__(self) -> AudioFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_audio(source: AudioInput) -> tuple[np.ndarray, int]:
    """Decode a path, file-like object or encoded bytes into ``(mono float32, rate)``."""
    with AudioFile(source) as f:
        blocks = list(f.blocks())
        return (blocks[0] if len(blocks) == 1 else np.concatenate(blocks)), f.rate


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
