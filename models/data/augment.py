"""Training-time augmentation: waveform noise, gain, time shift and speed; frequency warping and SpecAugment masks;
and the deterministic augmented copies (*views*) of a clip that are computed once and cached (:func:`apply_view`).

Every function draws from a caller-supplied ``numpy.random.Generator``, so a seeded run
augments identically every time. Waveform augmentations work on 1-D float32 signals;
:func:`spec_augment` masks a ``(batch, frames, features)`` batch of normalized features,
where zero is the training-set mean, and can first warp their frequency axis (:func:`freq_warp`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from scipy.signal import resample_poly


@dataclass(frozen=True)
class Augment:
    """Which augmentations to apply; the defaults apply none.

    ``noise_snr``: (low, high) dB range of additive white noise; ``gain_db``: random gain in
    +-``gain_db``; ``shift``: largest time shift in seconds (zero-filled); ``speeds``: speed
    factors to pick from uniformly (resampling, so pitch moves too); ``pitches``: semitone shifts (pitch and
    formants move, tempo does not) and ``noises``: white-noise SNRs in dB, picked uniformly among them when no speed
    factor was picked; their copies are cached views (:func:`pitch_view`, :func:`noise_view`), not computed per
    step, so that each has the teacher's features of that copy (``noise_snr`` instead draws fresh noise every step,
    and its crops keep the clean clip's teacher targets); ``prob``: the chance that
    each enabled waveform augmentation (and a cached view) hits a given example. ``time_mask``/``freq_mask``: the
    widest SpecAugment mask in frames/feature bins, ``n_masks`` of each per example. ``freq_warp``: largest
    relative stretch of the feature (band) axis, as vocal tract length perturbation does (e.g. 0.1: factors
    0.9-1.1), applied with chance ``prob``; for band features (log-mel, log-spectrogram), not cepstra.
    ``speaker_swap``: the chance that an example's voice offset -- its speaker's mean normalized feature minus
    its corpus' mean over speakers -- is swapped for another training speaker's
    (:class:`models.data.batches.SpeakerSwap`): an unheard voice shifts every feature by about as much as emotion
    does, and a corpus of a few voices lets a network learn each voice's level instead of the emotion.
    """

    noise_snr: tuple[float, float] | None = None
    gain_db: float = 0.0
    shift: float = 0.0
    speeds: tuple[float, ...] = ()
    pitches: tuple[float, ...] = ()
    noises: tuple[float, ...] = ()
    prob: float = 0.5
    time_mask: int = 0
    freq_mask: int = 0
    n_masks: int = 2
    freq_warp: float = 0.0
    speaker_swap: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.speaker_swap <= 1.0:
            raise ValueError(f"speaker_swap is a chance in [0, 1], got {self.speaker_swap}")
        if not 0.0 <= self.freq_warp < 0.5:
            raise ValueError(f"freq_warp must be in [0, 0.5), got {self.freq_warp}")
        if any(not 0 < s < 10 for s in self.speeds):
            raise ValueError(f"speed factors must be in (0, 10): {self.speeds}")
        if any(not 0 < abs(p) <= MAX_SEMITONES for p in self.pitches):
            raise ValueError(f"pitch shifts must be non-zero and within +-{MAX_SEMITONES} semitones: {self.pitches}")
        if any(not MIN_SNR <= s <= MAX_SNR for s in self.noises):
            raise ValueError(f"noise SNRs must be within {MIN_SNR:g}..{MAX_SNR:g} dB: {self.noises}")

    @property
    def on_waveform(self) -> bool:
        """Whether any augmentation needs the waveform (so feature models compute features on the fly)."""
        return bool(self.noise_snr or self.gain_db or self.shift or any(s != 1.0 for s in self.speeds))

    @property
    def cached_views(self) -> tuple[str, ...]:
        """The cached views the pitch shifts and noise SNRs read (:func:`pitch_view`, :func:`noise_view`)."""
        return tuple(dict.fromkeys([*(pitch_view(p) for p in self.pitches), *(noise_view(s) for s in self.noises)]))

    @property
    def on_features(self) -> bool:
        return bool(self.time_mask or self.freq_mask or self.freq_warp)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["noise_snr"] = list(self.noise_snr) if self.noise_snr else None
        d["speeds"] = list(self.speeds)
        d["pitches"] = list(self.pitches)
        d["noises"] = list(self.noises)
        for name in ("pitches", "noises", "speaker_swap"):  # absent when off, as before they existed: older runs resume
            if not d[name]:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Augment:
        d = dict(d)
        d["noise_snr"] = tuple(d["noise_snr"]) if d.get("noise_snr") else None
        d["speeds"] = tuple(d.get("speeds", ()))
        d["pitches"] = tuple(d.get("pitches", ()))
        d["noises"] = tuple(d.get("noises", ()))
        return cls(**d)


MAX_SEMITONES = 12.0
MIN_SNR, MAX_SNR = -50.0, 100.0
VIEWS = ("clean", "speed0.9", "speed1.1", "noise10", "noise20", "pitch-3", "pitch+3")


def speed_view(factor: float) -> str:
    """The view name of a speed factor: ``speed0.9``; ``clean`` for 1."""
    return "clean" if factor == 1.0 else f"speed{factor:g}"


def pitch_view(semitones: float) -> str:
    """The view name of a pitch shift: ``pitch+3``, ``pitch-1.5``."""
    return f"pitch{semitones:+g}"


def noise_view(snr_db: float) -> str:
    """The view name of white noise at an SNR: ``noise10``, ``noise-5``."""
    return f"noise{snr_db:g}"


def parse_view(view: str) -> tuple[str, float]:
    """``view``'s kind (``clean``, ``speed``, ``noise``, ``pitch``) and value, or ``ValueError`` if unknown."""
    if view == "clean":
        return "clean", 0.0
    kind = view[:5]
    try:
        value = float(view[5:])
    except ValueError:
        value = float("nan")
    valid = {"speed": 0 < value < 10, "noise": MIN_SNR <= value <= MAX_SNR, "pitch": 0 < abs(value) <= MAX_SEMITONES}
    if not valid.get(kind, False):
        raise ValueError(f"unknown view {view!r}; known: clean, speedF, noiseS, pitchS (e.g. {', '.join(VIEWS)})")
    return kind, value


def check_view(view: str) -> str:
    """``view`` if :func:`apply_view` knows it (for argument parsers), else ``ValueError``."""
    parse_view(view)
    return view


def apply_view(x: np.ndarray, view: str, seed: int, sample_rate: int = 16000) -> np.ndarray:
    """The deterministic augmented copy ``view`` of a clip (``seed``: per utterance, for the noise).

    ``speedF``: resampled to play F times faster (pitch and tempo both move); ``noiseS``: white noise at S dB SNR;
    ``pitchS``: shifted by S semitones with the tempo kept (librosa's phase vocoder and resampling; formants move
    with the pitch, as between a longer and a shorter vocal tract).
    """
    kind, value = parse_view(view)
    if kind == "speed":
        return speed_perturb(x, value)
    if kind == "noise":
        return add_noise(x, value, np.random.default_rng(seed))
    if kind == "pitch":
        return pitch_shift(x, value, sample_rate)
    return x


def pitch_shift(x: np.ndarray, semitones: float, sample_rate: int) -> np.ndarray:
    """``x`` shifted by ``semitones``, same length and tempo (``librosa.effects.pitch_shift``)."""
    if not 0 < abs(semitones) <= MAX_SEMITONES:
        raise ValueError(f"pitch shift must be non-zero and within +-{MAX_SEMITONES} semitones, got {semitones}")
    import librosa  # training only; its first call compiles numba kernels

    y = librosa.effects.pitch_shift(np.asarray(x, np.float32), sr=sample_rate, n_steps=semitones)
    return np.ascontiguousarray(y, dtype=np.float32)


def speed_perturb(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` played ``factor`` times faster (``len(x) / factor`` samples), by polyphase resampling."""
    if factor == 1.0:
        return x
    ratio = Fraction(factor).limit_denominator(100)
    return resample_poly(x, ratio.denominator, ratio.numerator).astype(np.float32)


def time_shift(x: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """``x`` moved by up to +-``max_shift`` samples, the gap filled with zeros."""
    s = int(rng.integers(-max_shift, max_shift + 1))
    if s == 0:
        return x
    out = np.zeros_like(x)
    if s > 0:
        out[s:] = x[:-s]
    else:
        out[:s] = x[-s:]
    return out


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` plus white Gaussian noise ``snr_db`` dB below the signal's mean power."""
    power = float(np.mean(np.square(x, dtype=np.float64)))
    if power == 0.0:
        return x
    scale = np.sqrt(power / 10.0 ** (snr_db / 10.0))
    return (x + scale * rng.standard_normal(len(x))).astype(np.float32)


def augment_waveform(x: np.ndarray, aug: Augment, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Shift, gain and noise (speed is applied before cropping, see :mod:`models.data.batches`)."""
    if aug.shift and rng.random() < aug.prob:
        x = time_shift(x, int(aug.shift * sample_rate), rng)
    if aug.gain_db and rng.random() < aug.prob:
        x = x * np.float32(10.0 ** (rng.uniform(-aug.gain_db, aug.gain_db) / 20.0))
    if aug.noise_snr and rng.random() < aug.prob:
        x = add_noise(x, rng.uniform(*aug.noise_snr), rng)
    return x


def _masks(n: int, batch: int, width: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``(batch, n)`` boolean: ``count`` random spans of 0..``width`` positions per row."""
    pos = np.arange(n)[None, :]
    mask = np.zeros((batch, n), dtype=bool)
    for _ in range(count):
        w = rng.integers(0, min(width, n) + 1, size=batch)[:, None]
        start = (rng.random(batch)[:, None] * (n - w + 1)).astype(np.int64)
        mask |= (pos >= start) & (pos < start + w)
    return mask


def freq_warp(batch: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``batch`` (``(batch, frames, bands)``) with each example's band axis stretched by its factor, in place:
    band ``j`` takes the value at ``j / factor``, linearly interpolated (a factor above 1 moves energy to higher
    bands, as a shorter vocal tract does); positions past the top band take the top band."""
    f = batch.shape[2]
    src = np.clip(np.arange(f)[None, :] / np.asarray(factors, dtype=np.float64)[:, None], 0.0, f - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, f - 1)
    w = (src - lo).astype(np.float32)[:, None, :]
    take = np.take_along_axis
    batch[:] = take(batch, lo[:, None, :], axis=2) * (1.0 - w) + take(batch, hi[:, None, :], axis=2) * w
    return batch


def spec_augment(batch: np.ndarray, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    """Frequency warping, then SpecAugment time and frequency masking of a ``(batch, frames, features)`` array,
    in place."""
    b, t, f = batch.shape
    if aug.freq_warp:
        hit = rng.random(b) < aug.prob
        freq_warp(batch, np.where(hit, rng.uniform(1.0 - aug.freq_warp, 1.0 + aug.freq_warp, b), 1.0))
    if aug.time_mask:
        batch[_masks(t, b, aug.time_mask, aug.n_masks, rng)] = 0.0
    if aug.freq_mask:
        fm = _masks(f, b, aug.freq_mask, aug.n_masks, rng)
        batch *= ~fm[:, None, :]
    return batch
