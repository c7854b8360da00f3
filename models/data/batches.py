"""Training batches: fixed-length random crops of cached features (or waveforms), augmented.

Utterances longer than the crop contribute a random excerpt each epoch; shorter ones are
padded. The default ``repeat`` padding tiles the utterance (from a random phase), which keeps
the time-average the model pools over close to that of the unpadded utterance it will see
at evaluation; ``zero`` padding puts the utterance first and zeros after it, and each batch
carries how many rows are audio, so that the model can leave the padding out (its length is the
utterance's duration, a cue the unpadded runtime input never has; only backbones with frame
output can, see ``SERModel.masks_padding``). With waveform-domain augmentation a feature model's
crops are cut from the cached waveform, augmented, and only then turned into features with the
same front-end.

Transcript (CTC) heads cannot learn from an excerpt or a repeated utterance: a batch for a model
with one also carries a second view, :class:`WholeView`, of the same utterances whole (augmented
alike, zero-padded to the batch's longest, with their lengths), on which only the CTC losses are
computed. Every other head keeps training on the excerpts, so adding a transcript head changes
nothing else about the recipe.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from edge_ser.frontend import FrontEnd, Normalization

from ..arch.heads import IGNORE
from .augment import Augment, augment_waveform, spec_augment, speed_perturb, speed_view
from .features import FeatureTable, Norms, fit_normalization, normalization_for

PADS = ("repeat", "zero")


class SpeakerSwap:
    """Each training speaker's voice offset, and its swap for another's (``Augment.speaker_swap``).

    A speaker's offset is the mean of their training utterances' normalized features minus the mean of those
    means over the speakers of the same corpus (so the corpus' own recording level and channel stay put, and a
    clip takes on another voice of any corpus). Fit on the training part only: validation and test speakers
    never contribute.
    """

    def __init__(
        self,
        inputs: FeatureTable,
        indices: np.ndarray,
        voices: Sequence[tuple[str, str]],
        normalization: Normalization,
        chance: float,
    ) -> None:
        if normalization.mode != "global":
            raise ValueError("a speaker swap shifts globally normalized features: use --normalization global")
        groups: dict[tuple[str, str], list[int]] = {}
        for i in indices:
            groups.setdefault(tuple(voices[int(i)]), []).append(int(i))
        if len(groups) < 2:
            raise ValueError("a speaker swap needs at least two training speakers")
        names = sorted(groups)
        mean, std = np.asarray(normalization.mean), np.asarray(normalization.std)
        means = np.stack([(np.asarray(fit_normalization(inputs, groups[v]).mean) - mean) / std for v in names])
        corpora = np.array([v[0] for v in names])
        for c in set(corpora):
            means[corpora == c] -= means[corpora == c].mean(axis=0)
        self.offsets = means.astype(np.float32)
        self.speaker = {i: k for k, v in enumerate(names) for i in groups[v]}
        self.chance = chance

    def __call__(self, x: np.ndarray, i: int, rng: np.random.Generator) -> np.ndarray:
        """Normalized input ``x`` of training utterance ``i``, with chance ``chance`` moved to another voice."""
        if rng.random() >= self.chance:
            return x
        other = int(rng.integers(len(self.offsets) - 1))
        own = self.speaker[i]
        other += other >= own  # any speaker but its own
        return x + (self.offsets[other] - self.offsets[own]).reshape(x.shape[1:])


class WholeView(NamedTuple):
    """Utterances whole for the transcript heads: ``inputs`` zero-padded to the longest,
    ``lengths`` their audio rows, ``targets`` their token rows per CTC head."""

    inputs: np.ndarray
    lengths: np.ndarray
    targets: dict[str, np.ndarray]


class Batch(NamedTuple):
    """One training batch: model ``inputs`` (crops), ``targets`` per classification head, the audio
    ``lengths`` of each crop, ``whole`` (None unless the model has transcript heads), which corpus
    utterances (``index``) and which of their views (``views``: ``clean``, a speed view such as ``speed0.9``, a
    pitch view such as ``pitch+3`` or a noise view such as ``noise10``) the crops came from (for per-utterance
    teacher targets, see :mod:`models.training.distill`), and ``times`` ``(batch, rows)``: the time in seconds,
    within its utterance, of the middle of each input row (NaN for padding and for crops of an augmented view: the
    frame-level teacher targets are the clean clip's)."""

    inputs: np.ndarray
    targets: dict[str, np.ndarray]
    lengths: np.ndarray
    whole: WholeView | None
    index: np.ndarray | None = None
    views: np.ndarray | None = None
    times: np.ndarray | None = None


def crop(x: np.ndarray, length: int, rng: np.random.Generator, pad: str = "repeat") -> np.ndarray:
    """A random ``length``-row excerpt of ``x`` (rows: samples or frames), padded if ``x`` is shorter."""
    return crop_at(x, length, rng, pad)[0]


def crop_at(x: np.ndarray, length: int, rng: np.random.Generator, pad: str = "repeat") -> tuple[np.ndarray, int]:
    """:func:`crop` and where it starts in ``x`` (see :func:`source_rows`)."""
    n = len(x)
    if n >= length:
        start = int(rng.integers(0, n - length + 1))
        return x[start : start + length], start
    if pad == "repeat":
        tiled = np.tile(x, (math.ceil(length / n) + 1,) + (1,) * (x.ndim - 1))
        start = int(rng.integers(0, n))
        return tiled[start : start + length], start
    out = np.zeros((length, *x.shape[1:]), dtype=x.dtype)
    out[:n] = x  # content first: the model masks the padded tail (``TrainBatches`` yields the lengths)
    return out, 0


def source_rows(offsets: np.ndarray, start: int, n: int, pad: str = "repeat") -> np.ndarray:
    """The rows of an ``n``-row source that rows ``offsets`` of a crop starting at ``start`` (:func:`crop_at`) hold:
    the tiled copy wraps around with ``repeat``; zero padding (``zero``, rows from ``n`` on) gives -1."""
    rows = start + np.asarray(offsets, dtype=np.int64)
    if pad == "repeat":
        return rows % n
    return np.where(rows < n, rows, -1)


class TrainBatches:
    """Shuffled :class:`Batch` es of one fold's training utterances.

    ``shard``: ``(rank, world size)``; each rank yields its share of every batch (data-parallel
    training, see :mod:`models.training.distributed`).

    ``inputs`` is the model-input table; ``waves`` the waveform table, needed when ``augment``
    works on the waveform and the model takes features. ``targets`` maps head names to one
    class index per corpus utterance (-100 where unknown), or for a transcript (CTC) head to a
    token row per utterance (2-D). ``transcript_samples``: the longest utterance (in samples)
    whose transcript trains the CTC heads (default: all); longer ones would make every batch long.
    ``views``: the tables of the cached copies that ``augment.pitches`` and ``augment.noises`` pick from, by view
    name (:attr:`Augment.cached_views`), of the same kind as the table the crops come from (``waves`` when they come
    from the waveform, else ``inputs``); transcript heads' whole utterances stay unshifted. ``voices``: each
    corpus utterance's ``(corpus, speaker)``, which ``augment.speaker_swap`` needs (:class:`SpeakerSwap`).
    """

    shard: tuple[int, int] = (0, 1)

    def __init__(
        self,
        inputs: FeatureTable,
        indices: np.ndarray,
        targets: Mapping[str, np.ndarray],
        normalization: Norms,
        crop_samples: int,
        augment: Augment | None = None,
        waves: FeatureTable | None = None,
        pad: str = "repeat",
        transcript_samples: int | None = None,
        views: Mapping[str, FeatureTable] | None = None,
        voices: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        if pad not in PADS:
            raise ValueError(f"pad must be one of {PADS}")
        augment = augment if augment is not None else Augment()
        self.frontend: FrontEnd = inputs.frontend
        if augment.freq_warp and self.frontend.kind not in ("logmel", "logspec"):
            raise ValueError(f"--freq-warp stretches band features (logmel, logspec), not {self.frontend.kind!r}")
        self.from_waves = augment.on_waveform or self.frontend.kind == "waveform"
        if self.from_waves and waves is None:
            waves = inputs if self.frontend.kind == "waveform" else None
            if waves is None:
                raise ValueError("waveform augmentation of a feature model needs the waveform table")
        self.inputs, self.waves = inputs, waves
        self.views = dict(views or {})
        missing = [v for v in augment.cached_views if v not in self.views]
        if missing:
            raise ValueError(
                f"pitch shifts and noise copies need the tables of their cached views: {', '.join(missing)}"
            )
        source = self.waves if self.from_waves else self.inputs
        for name in augment.cached_views:
            table = self.views[name]
            if table.frontend != source.frontend or not np.array_equal(np.diff(table.offsets), np.diff(source.offsets)):
                raise ValueError(f"view {name!r} does not match the table the crops come from (front-end, lengths)")
        self.indices = np.asarray(indices, dtype=np.int64)
        self.targets = {name: np.asarray(t, dtype=np.int64) for name, t in targets.items()}
        self.normalization = normalization
        self.crop_samples = crop_samples
        self.crop_frames = self.frontend.num_frames(crop_samples)
        self.augment = augment
        self.pad = pad
        self.swap: SpeakerSwap | None = None
        if augment.speaker_swap:
            if voices is None or not isinstance(normalization, Normalization) or self.frontend.kind == "waveform":
                raise ValueError("a speaker swap needs each utterance's speaker, global normalization and features")
            self.swap = SpeakerSwap(inputs, self.indices, voices, normalization, augment.speaker_swap)
        self.transcript_heads = tuple(name for name, t in self.targets.items() if t.ndim == 2)
        if self.transcript_heads and transcript_samples is not None:
            self._drop_long_transcripts(transcript_samples)

    def __len__(self) -> int:
        return len(self.indices)

    def _drop_long_transcripts(self, samples: int) -> None:
        """Transcript targets become ``IGNORE`` for utterances longer than ``samples``."""
        if self.from_waves:
            table, limit = self.waves, samples
        else:
            table, limit = self.inputs, self.frontend.num_frames(samples)
        long = np.diff(table.offsets) > limit  # utterance lengths, rows of the table
        for name in self.transcript_heads:
            t = self.targets[name].copy()
            t[long] = IGNORE
            self.targets[name] = t

    def example(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """One augmented, normalized training input of utterance ``i`` and how many of its leading
        rows are the utterance (the rest is zero padding; all rows unless ``pad`` is ``"zero"``)."""
        x, rows, *_ = self._example(i, rng)
        return x, rows

    def _cached_view(self, rng: np.random.Generator) -> str:
        """The view a crop comes from after no speed factor was picked: a cached view (pitch, noise) or ``clean``."""
        views = self.augment.cached_views
        if views and rng.random() < self.augment.prob:
            return str(rng.choice(views))
        return "clean"

    def _example(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, int, str, np.ndarray]:
        """:meth:`example`, the view it came from and the time of each of its rows (see :class:`Batch`)."""
        aug, fe = self.augment, self.frontend
        if not self.from_waves:
            view = self._cached_view(rng)
            source = self.views.get(view, self.inputs)  # clean: the inputs themselves
            x, start = crop_at(source[i], self.crop_frames, rng, self.pad)
            rows = source_rows(np.arange(self.crop_frames), start, len(source[i]), self.pad)
            x = self._normalized(x, i, rng)
            valid = min(len(source[i]), self.crop_frames) if self.pad == "zero" else self.crop_frames
            times = self._times(rows * fe.frame_step)
            if view != "clean":
                times[:] = np.nan
            return x, valid, view, times
        speed = float(rng.choice(aug.speeds)) if aug.speeds and rng.random() < aug.prob else 1.0
        view = speed_view(speed) if speed != 1.0 else self._cached_view(rng)
        source = self.views.get(view, self.waves)  # clean and speed views crop the waveform itself
        x, start = crop_at(source[i], math.ceil(self.crop_samples * speed), rng, self.pad)
        x = speed_perturb(x, speed)[: self.crop_samples]
        n_rows = self.crop_samples if fe.kind == "waveform" else self.crop_frames
        step = 1 if fe.kind == "waveform" else fe.frame_step
        times = self._times(source_rows(np.arange(n_rows) * step, start, len(self.waves[i]), self.pad))
        if view != "clean":
            times[:] = np.nan
        valid = min(round(len(self.waves[i]) / speed), self.crop_samples) if self.pad == "zero" else self.crop_samples
        if len(x) < self.crop_samples:
            x = np.pad(x, (0, self.crop_samples - len(x)))
        x = augment_waveform(x, aug, fe.sample_rate, rng)
        if fe.kind == "waveform":
            return normalization_for(self.normalization, i)(x), valid, view, times
        rows = fe.num_frames(valid) if valid < self.crop_samples else self.crop_frames
        return self._normalized(fe(x), i, rng), rows, view, times

    def _normalized(self, x: np.ndarray, i: int, rng: np.random.Generator) -> np.ndarray:
        """Features ``x`` of utterance ``i`` normalized, then moved to another voice if the speaker swap draws it."""
        x = normalization_for(self.normalization, i)(x)
        return x if self.swap is None else self.swap(x, i, rng)

    def _times(self, first_samples: np.ndarray) -> np.ndarray:
        """Seconds at the middle of rows that start at sample ``first_samples`` of their utterance (-1: padding)."""
        fe = self.frontend
        width = 1 if fe.kind == "waveform" else fe.frame_length
        times = (first_samples + width / 2) / fe.sample_rate
        return np.where(first_samples >= 0, times, np.nan)

    def whole(self, i: int, rng: np.random.Generator) -> np.ndarray:
        """Utterance ``i`` whole, augmented and normalized like :meth:`example` (transcript heads)."""
        aug = self.augment
        if not self.from_waves:
            return normalization_for(self.normalization, i)(self.inputs[i])
        speed = float(rng.choice(aug.speeds)) if aug.speeds and rng.random() < aug.prob else 1.0
        x = augment_waveform(speed_perturb(self.waves[i], speed), aug, self.frontend.sample_rate, rng)
        return normalization_for(self.normalization, i)(x if self.frontend.kind == "waveform" else self.frontend(x))

    def _whole_view(self, idx: np.ndarray, rng: np.random.Generator) -> WholeView | None:
        """The batch's utterances that have a transcript, whole and zero-padded (see :class:`WholeView`)."""
        known = np.zeros(len(idx), dtype=bool)
        for name in self.transcript_heads:
            known |= self.targets[name][idx, 0] != IGNORE
        keep = idx[known]
        if len(keep) == 0:
            return None
        rows = [self.whole(int(i), rng) for i in keep]
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        x = np.zeros((len(rows), int(lengths.max()), *rows[0].shape[1:]), dtype=np.float32)
        for k, r in enumerate(rows):
            x[k, : len(r)] = r
        if x.ndim == 3 and self.augment.on_features:
            spec_augment(x, self.augment, rng)
        return WholeView(x, lengths, {name: self.targets[name][keep] for name in self.transcript_heads})

    def epoch(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """One pass over the utterances in random order, as :class:`Batch` es. A last batch of one
        is dropped (batch norm)."""
        order = rng.permutation(self.indices)
        rank, world = self.shard
        rng = rng.spawn(world)[rank] if world > 1 else rng  # the ranks' crops and augmentation differ
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            if len(idx) < 2 * world:
                break
            idx = idx[rank::world]
            examples = [self._example(int(i), rng) for i in idx]
            x = np.stack([e[0] for e in examples]).astype(np.float32, copy=False)
            if x.ndim == 3 and self.augment.on_features:
                spec_augment(x, self.augment, rng)
            lengths = np.array([e[1] for e in examples], dtype=np.int64)
            targets = {name: t[idx] for name, t in self.targets.items() if name not in self.transcript_heads}
            whole = self._whole_view(idx, rng) if self.transcript_heads else None
            views, times = np.array([e[2] for e in examples], dtype=object), np.stack([e[3] for e in examples])
            yield Batch(x, targets, lengths, whole, idx, views, times)

    def n_batches(self, batch_size: int) -> int:
        full, rest = divmod(len(self.indices), batch_size)
        return full + (rest >= 2 * self.shard[1])
