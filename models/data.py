"""Training batches: fixed-length random crops of cached features (or waveforms), augmented.

Utterances longer than the crop contribute a random excerpt each epoch; shorter ones are
padded. The default ``repeat`` padding tiles the utterance (from a random phase), which keeps
the time-average the model pools over close to that of the unpadded utterance it will see
at evaluation; ``zero`` padding puts the utterance first and zeros after it, and each batch
carries how many rows are audio, so that the model can leave the padding out (its length is the
utterance's duration, a cue the unpadded runtime input never has; only backbones with frame
output can, see ``SERModel.masks_padding``). With waveform-domain augmentation a feature model's crops are cut from the
cached waveform, augmented, and only then turned into features with the same front-end.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np

from edge_ser.frontend import FrontEnd

from .augment import Augment, augment_waveform, spec_augment, speed_perturb
from .features import FeatureTable, Norms, normalization_for
from .heads import IGNORE

PADS = ("repeat", "zero")


def crop(x: np.ndarray, length: int, rng: np.random.Generator, pad: str = "repeat") -> np.ndarray:
    """A random ``length``-row excerpt of ``x`` (rows: samples or frames), padded if ``x`` is shorter."""
    n = len(x)
    if n >= length:
        start = int(rng.integers(0, n - length + 1))
        return x[start : start + length]
    if pad == "repeat":
        tiled = np.tile(x, (math.ceil(length / n) + 1,) + (1,) * (x.ndim - 1))
        start = int(rng.integers(0, n))
        return tiled[start : start + length]
    out = np.zeros((length, *x.shape[1:]), dtype=x.dtype)
    out[:n] = x  # content first: the model masks the padded tail (``TrainBatches`` yields the lengths)
    return out


class TrainBatches:
    """Shuffled batches of ``(inputs, {head: targets})`` for one fold's training utterances.

    ``inputs`` is the model-input table; ``waves`` the waveform table, needed when ``augment``
    works on the waveform and the model takes features. ``targets`` maps head names to one
    class index per corpus utterance (-100 where unknown).
    """

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
    ) -> None:
        if pad not in PADS:
            raise ValueError(f"pad must be one of {PADS}")
        augment = augment if augment is not None else Augment()
        self.frontend: FrontEnd = inputs.frontend
        self.from_waves = augment.on_waveform or self.frontend.kind == "waveform"
        if self.from_waves and waves is None:
            waves = inputs if self.frontend.kind == "waveform" else None
            if waves is None:
                raise ValueError("waveform augmentation of a feature model needs the waveform table")
        self.inputs, self.waves = inputs, waves
        self.indices = np.asarray(indices, dtype=np.int64)
        self.targets = {name: np.asarray(t, dtype=np.int64) for name, t in targets.items()}
        self.normalization = normalization
        self.crop_samples = crop_samples
        self.crop_frames = self.frontend.num_frames(crop_samples)
        self.augment = augment
        self.pad = pad
        if any(t.ndim == 2 for t in self.targets.values()):
            self._keep_whole_transcripts(pad, crop_samples)

    def __len__(self) -> int:
        return len(self.indices)

    def _keep_whole_transcripts(self, pad: str, crop_samples: int) -> None:
        """Transcript (CTC) targets only for utterances the training crop holds whole: a cut or
        repeated utterance is not its transcript, so those rows become ``IGNORE``."""
        if pad != "zero":
            raise ValueError("transcript (CTC) heads need --pad zero: a repeated utterance is not its transcript")
        if self.from_waves:
            table, limit = self.waves, crop_samples * min([1.0, *self.augment.speeds])
        else:
            table, limit = self.inputs, self.crop_frames
        whole = np.diff(table.offsets) <= limit  # utterance lengths, rows of the table
        for name, t in self.targets.items():
            if t.ndim == 2:
                t = t.copy()
                t[~whole] = IGNORE
                self.targets[name] = t

    def example(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """One augmented, normalized training input of utterance ``i`` and how many of its leading
        rows are the utterance (the rest is zero padding; all rows unless ``pad`` is ``"zero"``)."""
        aug = self.augment
        if not self.from_waves:
            x = normalization_for(self.normalization, i)(crop(self.inputs[i], self.crop_frames, rng, self.pad))
            return x, min(len(self.inputs[i]), self.crop_frames) if self.pad == "zero" else self.crop_frames
        speed = float(rng.choice(aug.speeds)) if aug.speeds and rng.random() < aug.prob else 1.0
        x = crop(self.waves[i], math.ceil(self.crop_samples * speed), rng, self.pad)
        x = speed_perturb(x, speed)[: self.crop_samples]
        valid = min(round(len(self.waves[i]) / speed), self.crop_samples) if self.pad == "zero" else self.crop_samples
        if len(x) < self.crop_samples:
            x = np.pad(x, (0, self.crop_samples - len(x)))
        x = augment_waveform(x, aug, self.frontend.sample_rate, rng)
        if self.frontend.kind == "waveform":
            return normalization_for(self.normalization, i)(x), valid
        rows = self.frontend.num_frames(valid) if valid < self.crop_samples else self.crop_frames
        return normalization_for(self.normalization, i)(self.frontend(x)), rows

    def epoch(
        self, batch_size: int, rng: np.random.Generator
    ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
        """One pass over the utterances in random order: ``(inputs, {head: targets}, lengths)``, with
        ``lengths`` the utterance rows of each input (see :meth:`example`). A last batch of one is
        dropped (batch norm)."""
        order = rng.permutation(self.indices)
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            if len(idx) < 2:
                break
            examples = [self.example(int(i), rng) for i in idx]
            x = np.stack([e[0] for e in examples]).astype(np.float32, copy=False)
            if x.ndim == 3 and self.augment.on_features:
                spec_augment(x, self.augment, rng)
            lengths = np.array([e[1] for e in examples], dtype=np.int64)
            yield x, {name: t[idx] for name, t in self.targets.items()}, lengths

    def n_batches(self, batch_size: int) -> int:
        full, rest = divmod(len(self.indices), batch_size)
        return full + (rest >= 2)
