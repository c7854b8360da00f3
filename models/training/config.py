"""Configuration of a training run: :class:`TrainConfig` (how every fold trains, recorded in each checkpoint)
and :class:`RunConfig` (what is trained on which corpus, into which directory: the ``edge-ser train`` command
as an object, see :func:`models.training.train`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..data.augment import Augment, speed_view
from ..data.batches import PADS
from ..data.features import DEFAULT_CACHE_DIR
from ..data.protocols import Fold
from . import distill
from .ensemble import EnsembleConfig

# Settings added after runs had been saved: left out of :meth:`TrainConfig.to_dict` when off, and counted at
# their defaults when a saved run lacks them (``models.training.loop.same_settings``).
ABSENT_WHEN_OFF = ("extra_corpora", "ema", "adversarial", "backbone", "init", "ensemble")


@dataclass(frozen=True)
class TrainConfig:
    """Everything about how a fold is trained and evaluated (recorded in every checkpoint).

    ``patience``: epochs without a better validation UA before stopping (0: never stop early).
    ``label_smoothing``: for every head's cross-entropy; ``mixup``: the Beta(a, a) parameter of
    mixup on model inputs and targets (0: off). ``normalization``: ``global`` (training-set
    statistics), ``utterance`` (each window's own mean and std: removes speaker and channel
    offsets, see :class:`edge_ser.frontend.Normalization`) or ``speaker`` (each speaker's own
    statistics, see :func:`speaker_normalization`).
    ``crop_seconds``: training crop length (default: the analysis window); transcript (CTC) heads
    instead train on whole utterances up to ``transcript_max_seconds`` (default: all, see
    :class:`models.data.batches.WholeView`). ``ema``: the decay of an exponential moving average of the
    weights, updated after every step (warmed up: ``min(ema, (1 + n) / (10 + n))`` after ``n`` steps),
    which validation scores and the checkpoint keeps (0: off; it smooths the epoch-to-epoch swings that make
    one validation epoch a noisy pick). ``window_seconds``,
    ``hop_seconds``, ``min_seconds``: the runtime analysis window used for evaluation and
    stored for export. ``extra_corpora``: the names of the other corpora whose relabelled utterances
    joined every fold's training part (set from :attr:`RunConfig.extra`; see :mod:`models.data.label_map`).
    ``adversarial``: auxiliary heads (of :attr:`RunConfig.aux`, e.g. ``speaker``) trained through a gradient
    reversal: the head learns to tell its classes apart while the backbone learns an embedding that hides them
    (domain-adversarial training, Ganin and Lempitsky 2015), meant to make emotion cues speaker-independent.
    ``backbone``: keyword arguments of the architecture's backbone (e.g. ``{"depth": 1}``: edge_cnn without its
    residual blocks), written into the model config that export rebuilds the model from. ``init``: a finished run
    directory whose fold of the same name (same corpus, protocol and seed, so the same training speakers) gives
    each fold its starting weights instead of random ones: fine-tuning a trained network, e.g. on another
    front-end (see :func:`models.training.checkpoint.warm_start`). ``ensemble``: finished runs whose same fold
    teaches the student their averaged probabilities on its own crops (:mod:`models.training.ensemble`).
    """

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 10
    grad_clip: float = 5.0
    seed: int = 0
    crop_seconds: float | None = None
    window_seconds: float = 3.0
    hop_seconds: float = 1.0
    min_seconds: float = 0.25
    pad: str = "repeat"
    transcript_max_seconds: float | None = None
    augment: Augment = field(default_factory=Augment)
    label_smoothing: float = 0.0
    mixup: float = 0.0
    ema: float = 0.0
    normalization: str = "global"
    distill: distill.DistillConfig | None = None
    extra_corpora: tuple[str, ...] = ()
    adversarial: tuple[str, ...] = ()
    backbone: Mapping[str, Any] = field(default_factory=dict)
    init: str | None = None
    ensemble: EnsembleConfig | None = None
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("need epochs >= 1 and batch_size >= 2")
        if self.normalization not in ("global", "utterance", "speaker"):
            raise ValueError("normalization must be global, utterance or speaker")
        if not 0 <= self.label_smoothing < 1 or self.mixup < 0:
            raise ValueError("need 0 <= label_smoothing < 1 and mixup >= 0")
        if not 0 <= self.ema < 1:
            raise ValueError("need 0 <= ema < 1")
        if self.pad not in PADS:
            raise ValueError(f"pad must be one of {PADS}")
        if self.transcript_max_seconds is not None and self.transcript_max_seconds <= 0:
            raise ValueError("transcript_max_seconds must be positive")
        if not 0 < self.min_seconds <= self.window_seconds or not 0 < self.hop_seconds <= self.window_seconds:
            raise ValueError("need 0 < min_seconds <= window_seconds and 0 < hop_seconds <= window_seconds")
        if self.init is not None:  # recorded absolute, so a resumed or shipped run compares it whatever its cwd
            object.__setattr__(self, "init", str(Path(self.init).resolve()))
        if self.ensemble is not None and self.mixup and self.distill is None:
            raise ValueError("the ensemble teacher with mixup needs --teacher too (it mixes the teacher's targets)")
        if not isinstance(self.backbone, Mapping) or not all(isinstance(k, str) for k in self.backbone):
            raise ValueError("backbone must be a JSON object of the backbone's keyword arguments")
        if self.backbone.get("members", 1) != 1 and (self.ensemble or (self.distill and self.distill.frame_weight)):
            raise ValueError(
                "packed members (backbone members > 1) cannot train with --ensemble-teacher or --distill-frames"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["augment"] = self.augment.to_dict()
        d["distill"] = self.distill.to_dict() if self.distill else None
        d["ensemble"] = self.ensemble.to_dict() if self.ensemble else None
        d["backbone"] = dict(self.backbone)
        for name in ABSENT_WHEN_OFF:  # absent when off, as before they existed: older states resume
            if not d[name]:
                del d[name]
        return d

    @property
    def teacher_views(self) -> tuple[str, ...]:
        """The cached teacher views distillation reads: clean, and one per speed factor, pitch shift and noise SNR."""
        speeds = (speed_view(float(s)) for s in self.augment.speeds)
        return tuple(dict.fromkeys(["clean", *speeds, *self.augment.cached_views]))

    @property
    def crop(self) -> float:
        return self.crop_seconds or self.window_seconds


class Split(NamedTuple):
    """A fold-like split (``models.data.protocols.Fold`` has the same fields)."""

    name: str
    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]


FoldPlan = Fold | Split  # a protocol's fold or a hand-made split: train/val/test utterance indices


@dataclass(frozen=True)
class RunConfig:
    """What a training run trains: architecture ``arch`` on corpus ``dataset`` (root ``data``), into ``out``.

    ``protocol``: the fold plan (``default``: the corpus' own, see :mod:`models.data.protocols`); ``folds``:
    only these folds (comma-separated indices or names); ``final``: instead, one model on every utterance
    for exactly ``training.epochs`` epochs. ``aux``: auxiliary heads and their loss weights (on top of the
    architecture's required heads); ``frontend``: a front-end override (``FrontEnd.to_dict()`` form).
    ``command``: what report.json and the checkpoints record as the command (default: this process'
    command line). ``threads``: torch CPU threads (default: unchanged). ``transfer``: with distillation, other
    corpora (name -> root) as an unlabelled transfer set; ``extra``: other corpora (name -> root) whose
    utterances, relabelled to this corpus' classes (:mod:`models.data.label_map`), join every fold's training
    part as labelled data (validation and test stay this corpus' own).
    """

    arch: str
    dataset: str
    data: str | Path
    out: str | Path
    training: TrainConfig = field(default_factory=TrainConfig)
    protocol: str = "default"
    folds: str | None = None
    final: bool = False
    aux: Mapping[str, float] = field(default_factory=dict)
    frontend: Mapping[str, Any] | None = None
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR
    resume: bool = False
    threads: int | None = None
    command: str | None = None
    transfer: Mapping[str, str | Path] = field(default_factory=dict)
    extra: Mapping[str, str | Path] = field(default_factory=dict)
