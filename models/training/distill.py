"""Distillation from a Whisper teacher into a small student: targets per fold, and the losses.

Per fold, :func:`fold_targets` turns the teacher's cached pooled features of one block
(:mod:`models.teachers.cache`) into two per-utterance targets for the fold's *training* utterances only:

- **soft labels**, cross-fitted: the training speakers are dealt into groups, and a standardized logistic
  regression fit on the other groups' speakers labels each group's clips (softmax of its logits at temperature
  ``T``). A head fit on the very clips it labels would return the hard labels (it gets them all right), so no
  clip is labelled by a head that heard its speaker;
- **features**: the teacher's pooled block features standardized with the training utterances' statistics,
  which the student regresses through a linear projection of its own utterance embedding.

Test (and validation) speakers never enter: not the teacher head, not the statistics. Augmented views
(``speed0.9``, ``speed1.1``, pitch shifts such as ``pitch+3``) have their own cached teacher features and labels,
so a student trained on a sped-up or pitch-shifted copy learns what the teacher said of that copy.

**Extra corpora** (``--extra-corpus``: other corpora's utterances, relabelled to the corpus' classes, in every
fold's training part) keep their own cached teacher features (the same encoder and block, computed for that
corpus); their soft labels come from one head fit on all the fold's training utterances of the corpus itself --
the extra clips never fit a teacher head (with ``DistillConfig.heads == "all"`` they do: every head fits on them
too, and each extra corpus is labelled by a head fit on the others, :func:`fold_targets`). Each corpus is
standardized with its own statistics, as each speaker is for a speaker-adaptive student: an extra corpus' features
are moved from their own mean and std to those of the fold's training utterances (:func:`_aligned`), then
standardized like the corpus' own. Taken with the target's statistics instead, a corpus offset reads as emotion: on
CASIA's first fold (whisper-base:3) the head then gives RAVDESS clips their mapped label 18 % of the time at 0.96
mean confidence, against 37 % aligned (Emo-DB 37 / 50 %).

With ``DistillConfig.standardize == "speaker"`` (``--distill-standardize speaker``) every training speaker's teacher
features, of every corpus, are standardized with that speaker's own statistics first, as for a speaker-adaptive
student (:func:`per_speaker_standardized`): heads and feature targets then see no speaker's offset, while the
student keeps its global normalization.

**Frame-level targets** (``--distill-frames WEIGHT``, as DistilHuBERT-style students learn): besides the pooled
features, the student's output frames regress the teacher's frames of the same block (:func:`fold_frame_targets`,
:class:`FrameTargets`): each student frame the mean of the teacher frames (50 per second) under the input rows it
comes from, through a linear projection, with an L1 plus cosine-distance loss (:func:`frame_loss`). Targets exist
for the fold's training utterances only (of every corpus in it), each corpus' frames standardized with its own
training utterances' statistics, and for unperturbed audio (the frame cache holds the clean clips).

A **transfer set** widens what the student hears: every utterance of other corpora (``--transfer``), which has
no label the fold's heads know, gets its targets from :func:`transfer_targets` -- soft labels from one head
fit on all the fold's training utterances, and its teacher features standardized with the same training
statistics -- and the student learns only the teacher's losses on it. No test speaker is in another corpus,
so every fold stays speaker-independent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression

    from ..data.corpora import Corpus

Head = tuple[np.ndarray, np.ndarray, "LogisticRegression"]  # (mean, std, classifier), from fit_head
Extra = Sequence[tuple["Corpus", Sequence[int]]]  # each extra corpus and its rows in the joined corpus

TEACHER_FRAME_RATE = 50  # Whisper's encoder frames per second
HEADS = ("own", "all")  # what the soft-label heads fit on: DistillConfig.heads
STANDARDIZE = ("training", "speaker")  # how the teacher's features are standardized: DistillConfig.standardize


@dataclass(frozen=True)
class DistillConfig:
    """``teacher``: ``ENCODER:BLOCK`` (e.g. ``whisper-tiny.en:2``; ``ENCODER`` alone: its middle block);
    ``temperature`` of the soft labels; ``soft_weight``/``feature_weight``: weights of the soft-label and
    feature-regression losses; ``groups``: cross-fitting groups of training speakers; ``c``: the teacher head's
    inverse regularization;
    ``transfer``: names of other corpora whose utterances join as a transfer set (teacher losses only), weighted
    ``transfer_weight``; ``frame_weight``: weight of the frame-level loss (0: off); ``heads``: what the teacher
    heads that give soft labels fit on, ``"own"`` (the corpus' own training speakers) or ``"all"`` (with the extra
    corpora's training utterances too, see :func:`fold_targets`); ``standardize``: the teacher's features
    standardized with the fold's training statistics (``"training"``, each corpus aligned to the own one) or each
    training speaker with its own (``"speaker"``, as for a speaker-adaptive student,
    :func:`per_speaker_standardized`): the targets then carry no speaker's offset, so a student with global
    normalization is taught what an adapted teacher would say."""

    teacher: str
    temperature: float = 4.0
    soft_weight: float = 1.0
    feature_weight: float = 1.0
    groups: int = 4
    c: float = 0.1
    transfer: tuple[str, ...] = ()
    transfer_weight: float = 1.0
    frame_weight: float = 0.0
    heads: str = "own"
    standardize: str = "training"

    def __post_init__(self) -> None:
        encoder, colon, block = self.teacher.partition(":")
        if encoder and not colon:  # the middle block: whisper-base:3, whisper-tiny.en:2 (docs/teacher.md's probes)
            from ..teachers.whisper import get_spec

            object.__setattr__(self, "teacher", f"{encoder}:{get_spec(encoder).layers // 2}")
        elif not encoder or not block.isdigit():
            raise ValueError(f"--teacher takes ENCODER[:BLOCK] (e.g. whisper-tiny.en:2), got {self.teacher!r}")
        if self.temperature <= 0 or self.soft_weight < 0 or self.feature_weight < 0 or self.groups < 2:
            raise ValueError("distillation needs temperature > 0, weights >= 0 and groups >= 2")
        if self.transfer_weight < 0 or len(set(self.transfer)) != len(self.transfer):
            raise ValueError("transfer corpora must be distinct and transfer_weight >= 0")
        if not self.frame_weight >= 0:
            raise ValueError("--distill-frames takes a weight >= 0")
        if self.heads not in HEADS:
            raise ValueError(f"--distill-heads is one of {', '.join(HEADS)}, got {self.heads!r}")
        if self.standardize not in STANDARDIZE:
            raise ValueError(f"--distill-standardize is one of {', '.join(STANDARDIZE)}, got {self.standardize!r}")

    @property
    def encoder(self) -> str:
        return self.teacher.partition(":")[0]

    @property
    def block(self) -> int:
        return int(self.teacher.partition(":")[2])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["transfer"] = list(self.transfer)
        return d


@dataclass
class Targets:
    """Per view, ``soft`` ``(utterances, classes)`` and ``features`` ``(utterances, dim)``; NaN rows outside
    the fold's training utterances (and for files the teacher could not read)."""

    soft: dict[str, np.ndarray]
    features: dict[str, np.ndarray]

    @property
    def dim(self) -> int:
        return next(iter(self.features.values())).shape[1]

    def lookup(self, index: np.ndarray, views: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Soft labels and features of utterances ``index`` as the student heard them (the view of each row)."""
        soft = np.stack([self.soft[v][i] for i, v in zip(index, views)])
        feats = np.stack([self.features[v][i] for i, v in zip(index, views)])
        return soft.astype(np.float32), feats.astype(np.float32)


@dataclass
class FrameTargets:
    """The teacher's frames of one block for the utterances that have targets: ``frames`` ``(rows, dim)`` float16,
    standardized, utterance ``i`` at ``frames[offsets[i]:offsets[i + 1]]`` (no rows: no target)."""

    frames: np.ndarray
    offsets: np.ndarray

    @property
    def dim(self) -> int:
        return self.frames.shape[1]

    def lookup(self, index: np.ndarray, times: np.ndarray, n_out: int) -> np.ndarray:
        """``(batch, n_out, dim)`` float32 targets of crops of utterances ``index`` whose input rows lie at ``times``
        (seconds, ``(batch, rows)``, NaN for padding): the student's output frame ``j`` comes from rows ``j * s``
        to ``(j + 1) * s - 1`` (``s = ceil(rows / n_out)``), its target is the mean of the teacher frames at those
        rows' times. NaN where a row has no time or the utterance no target."""
        stride = math.ceil(times.shape[1] / n_out)
        out = np.full((len(index), n_out, self.dim), np.nan, np.float32)
        grid = np.full((len(index), n_out * stride), np.nan)
        grid[:, : times.shape[1]] = times
        for k, i in enumerate(index):
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            if hi == lo:
                continue
            rows = np.floor(grid[k] * TEACHER_FRAME_RATE).reshape(n_out, stride)
            known = ~np.isnan(rows).any(axis=1)
            at = lo + np.clip(rows[known], 0, hi - lo - 1).astype(np.int64)
            out[k, known] = self.frames[at].astype(np.float32).mean(axis=1)
        return out


@dataclass
class FrameTeacher:
    """A fold's frame-level targets and the linear map from the student's frame channels to the teacher's."""

    targets: FrameTargets
    projector: torch.nn.Module

    def loss(
        self, frames: torch.Tensor, index: np.ndarray, times: np.ndarray, mix: tuple[float, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """:func:`frame_loss` of the student's ``frames`` ``(batch, channels, n)`` against the targets of the crops
        (``mix``: ``(lam, perm)`` of mixed inputs, whose targets mix alike)."""
        target = torch.from_numpy(self.targets.lookup(index, times, frames.shape[-1])).to(frames.device)
        if mix is not None:
            lam, perm = mix
            target = lam * target + (1.0 - lam) * target[perm]
        return frame_loss(self.projector(frames.transpose(1, 2)), target)


def speaker_groups(speakers: np.ndarray, groups: int, seed: int) -> dict[str, int]:
    """Training speakers dealt into ``min(groups, n)`` groups after a seeded shuffle."""
    unique = np.random.default_rng([seed, 7]).permutation(np.unique(speakers))
    n = min(groups, len(unique))
    return {str(s): i % n for i, s in enumerate(unique)}


def fit_head(x: np.ndarray, y: np.ndarray, rows: np.ndarray, c: float) -> Head:
    """A standardized logistic regression on ``x[rows]``: ``(mean, std, classifier)``."""
    from sklearn.linear_model import LogisticRegression

    mean, std = x[rows].mean(0), x[rows].std(0) + 1e-6
    return mean, std, LogisticRegression(C=c, max_iter=2000).fit((x[rows] - mean) / std, y[rows])


def cross_fitted_soft_labels(
    x: dict[str, np.ndarray],
    y: np.ndarray,
    speakers: np.ndarray,
    train: np.ndarray,
    n_classes: int,
    temperature: float,
    groups: int = 4,
    c: float = 0.1,
    seed: int = 0,
    shared: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per view, soft labels of the ``train`` rows from heads that never saw the row's speaker.

    ``x`` maps view names to ``(utterances, dim)`` teacher features ("clean" must be there: heads train on clean
    features of the other groups' clips). ``shared``: rows that join every head's training set and get no label
    here (other corpora's, none of whose speakers is in ``train``). Rows outside ``train`` stay NaN.
    """
    group_of = speaker_groups(speakers[train], groups, seed)
    group = np.array([group_of[str(s)] for s in speakers[train]])
    shared = np.zeros(0, np.int64) if shared is None else shared
    out = {view: np.full((len(y), n_classes), np.nan, np.float32) for view in x}
    for g in np.unique(group):
        label_rows = train[group == g]
        mean, std, clf = fit_head(x["clean"], y, np.concatenate([train[group != g], shared]), c)
        for view, feats in x.items():
            out[view][label_rows] = _soft(clf, (feats[label_rows] - mean) / std, n_classes, temperature)
    return out


def _teacher_views(
    corpus: Corpus, cfg: DistillConfig, views: tuple[str, ...]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The teacher's pooled block features of ``corpus`` per view (clean first), and which utterances it read."""
    from ..teachers.cache import teacher_features

    feats, ok = {}, None
    for view in ("clean", *[v for v in views if v != "clean"]):
        table = teacher_features(corpus, cfg.encoder, view, progress=False)
        feats[view] = table.block(cfg.block).astype(np.float64)
        ok = table.ok if ok is None else ok & table.ok
    return feats, ok


def _own_part(corpus: Corpus, extra: Extra) -> tuple[Corpus, int]:
    """``corpus`` without the ``extra`` corpora's utterances that follow its own (``CorpusData.extra_sources``: each
    such corpus as loaded and the indices of its utterances, in order), and the number of its own."""
    n_own = len(corpus.utterances) - sum(len(rows) for _, rows in extra)
    return (replace(corpus, utterances=corpus.utterances[:n_own]) if extra else corpus), n_own


def _joined_views(
    corpus: Corpus, extra: Extra, cfg: DistillConfig, views: tuple[str, ...]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """:func:`_teacher_views` of every row of ``corpus``, whose last rows are the ``extra`` corpora's utterances
    (see :func:`_own_part`): each corpus' features come from its own cache (the same encoder and block)."""
    own, _ = _own_part(corpus, extra)
    parts = [(own, slice(None)), *((other, np.asarray(rows, dtype=np.int64)) for other, rows in extra)]
    loaded = [(*_teacher_views(c, cfg, views), rows) for c, rows in parts]
    feats = {view: np.concatenate([f[view][rows] for f, _, rows in loaded]) for view in loaded[0][0]}
    return feats, np.concatenate([ok[rows] for _, ok, rows in loaded])


def _labelled_by(
    head: Head, feats: dict[str, np.ndarray], rows: np.ndarray, n_classes: int, t: float
) -> dict[str, np.ndarray]:
    """Per view, the soft labels at temperature ``t`` that a :func:`fit_head` head gives ``rows``; NaN elsewhere."""
    mean, std, clf = head
    out = {}
    for view, f in feats.items():
        soft = np.full((len(f), n_classes), np.nan, np.float32)
        if len(rows):
            soft[rows] = _soft(clf, (f[rows] - mean) / std, n_classes, t)
        out[view] = soft
    return out


def _aligned(
    feats: dict[str, np.ndarray], groups: np.ndarray, rows: np.ndarray, reference: np.ndarray
) -> dict[str, np.ndarray]:
    """Per view, each group's ``rows`` (``groups``: a group per row, e.g. its corpus) moved from the group's own clean
    mean and std over its ``rows`` to those of the ``reference`` rows; other rows keep their values."""
    ref_mean, ref_std = feats["clean"][reference].mean(0), feats["clean"][reference].std(0) + 1e-6
    out = {view: f.copy() for view, f in feats.items()}
    for g in np.unique(groups[rows]):
        members = rows[groups[rows] == g]
        mean, std = feats["clean"][members].mean(0), feats["clean"][members].std(0) + 1e-6
        for view, f in feats.items():
            out[view][members] = (f[members] - mean) / std * ref_std + ref_mean
    return out


def _standardized(
    feats: dict[str, np.ndarray], rows: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> dict[str, np.ndarray]:
    """Per view, ``(feats - mean) / std`` on ``rows``, NaN elsewhere."""
    out = {}
    for view, f in feats.items():
        z = np.full(f.shape, np.nan, np.float32)
        z[rows] = (f[rows] - mean) / std
        out[view] = z
    return out


def _soft(clf: LogisticRegression, x: np.ndarray, n_classes: int, temperature: float) -> np.ndarray:
    """Softmax at ``temperature`` of a fitted head's logits; a class the head never saw gets no mass."""
    logits = clf.decision_function(x)
    full = np.full((len(x), n_classes), -1e9)
    full[:, clf.classes_] = logits if logits.ndim == 2 else np.stack([-logits, logits], 1)
    return torch.softmax(torch.from_numpy(full / temperature), dim=1).numpy()


def per_speaker_standardized(
    feats: dict[str, np.ndarray], speakers: np.ndarray, rows: np.ndarray
) -> dict[str, np.ndarray]:
    """Per view, each speaker's ``rows`` standardized with that speaker's own clean statistics (over its ``rows``).

    The teacher's side of a speaker-adaptive student (``--normalization speaker``): its heads then label what an
    adapted teacher would say. Rows outside ``rows`` keep their values; only ``rows`` speakers' statistics are read.
    """
    out = {view: f.copy() for view, f in feats.items()}
    for s in np.unique(speakers[rows]):
        members = rows[speakers[rows] == s]
        mean, std = feats["clean"][members].mean(0), feats["clean"][members].std(0) + 1e-6
        for view, f in feats.items():
            out[view][members] = (f[members] - mean) / std
    return out


def fold_targets(
    corpus: Corpus,
    train: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    cfg: DistillConfig,
    views: tuple[str, ...],
    seed: int,
    extra: Extra = (),
) -> Targets:
    """The distillation targets of one fold (see the module docstring); with ``cfg.standardize == "speaker"`` (which a
    speaker-adaptive student always uses) the teacher's features are first standardized per training speaker
    (:func:`per_speaker_standardized`).

    ``extra``: the other corpora whose relabelled utterances are the last rows of ``corpus`` (``--extra-corpus``,
    ``CorpusData.extra_sources``); those of them in ``train`` get soft labels from one head fit on the corpus' own
    training rows, never from a head they trained, on their features aligned per corpus (per speaker with
    ``standardize == "speaker"``) to the corpus' own training rows. With ``cfg.heads == "all"`` every head fits on
    the extra corpora's training rows too: the cross-fitted heads of the corpus' own rows on all of them, and an
    extra corpus' rows are labelled by a head fit on the corpus' own training rows and the *other* extra corpora's."""
    feats, ok = _joined_views(corpus, extra, cfg, views)
    train = train[ok[train] & (y[train] >= 0)]
    _, n_own = _own_part(corpus, extra)
    own, extra_rows = train[train < n_own], train[train >= n_own]
    speakers = np.array([u.speaker for u in corpus.utterances])
    source = np.repeat(np.arange(len(extra) + 1), [n_own, *(len(rows) for _, rows in extra)])
    if cfg.standardize == "speaker":
        feats = per_speaker_standardized(feats, speakers, train)
    elif len(extra_rows):
        feats = _aligned(feats, source, extra_rows, own)
    shared = extra_rows if cfg.heads == "all" else None
    soft = cross_fitted_soft_labels(
        feats, y, speakers, own, n_classes, cfg.temperature, cfg.groups, cfg.c, seed, shared=shared
    )
    # heads "all": each extra corpus labelled by a head that also fit the other extra corpora; "own": one head
    groups = source[extra_rows] if cfg.heads == "all" else np.zeros(len(extra_rows), np.int64)
    for k in np.unique(groups):
        head = fit_head(feats["clean"], y, np.concatenate([own, extra_rows[groups != k]]), cfg.c)
        rows = extra_rows[groups == k]
        labelled = _labelled_by(head, feats, rows, n_classes, cfg.temperature)
        for view in soft:
            soft[view][rows] = labelled[view][rows]
    mean, std = feats["clean"][own].mean(0), feats["clean"][own].std(0) + 1e-6
    return Targets(soft, _standardized(feats, train, mean, std))


def transfer_targets(
    corpus: Corpus,
    train: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    cfg: DistillConfig,
    views: tuple[str, ...],
    other: Corpus,
    extra: Extra = (),
) -> Targets:
    """Targets for every utterance of ``other`` (a transfer corpus) in one fold of ``corpus``: soft labels from one
    head fit on all the fold's training utterances ``train`` of ``corpus`` (its own: not the ``extra`` corpora's
    rows, see :func:`fold_targets`), features standardized with their statistics. Utterances the teacher could not
    read stay NaN."""
    corpus, n_own = _own_part(corpus, extra)
    feats, ok = _teacher_views(corpus, cfg, ("clean",))
    train = train[train < n_own]
    train = train[ok[train] & (y[train] >= 0)]
    head = fit_head(feats["clean"], y, train, cfg.c)
    other_feats, other_ok = _teacher_views(other, cfg, views)
    rows = np.flatnonzero(other_ok)
    return Targets(
        _labelled_by(head, other_feats, rows, n_classes, cfg.temperature), _standardized(other_feats, rows, *head[:2])
    )


def fold_frame_targets(
    corpus: Corpus, train: np.ndarray, y: np.ndarray, cfg: DistillConfig, extra: Extra = ()
) -> FrameTargets:
    """The teacher's block ``cfg.block`` frames of the fold's training utterances ``train`` (of ``corpus`` and of the
    ``extra`` corpora that follow its own rows, see :func:`fold_targets`), each corpus standardized with the mean
    and std of its own training frames. Other utterances (validation, test) get no rows."""
    from ..teachers.cache import teacher_frames

    own, n_own = _own_part(corpus, extra)
    parts = [(own, np.arange(n_own)), *((c, np.asarray(rows, dtype=np.int64)) for c, rows in extra)]
    train = train[y[train] >= 0]
    pieces: dict[int, np.ndarray] = {}
    first = 0
    for part, rows in parts:
        cached = teacher_frames(part, cfg.encoder, progress=False, block=cfg.block)
        joined = first + np.arange(len(rows))  # this corpus' rows of ``corpus``
        mine = np.isin(joined, train) & cached.ok[rows]
        chosen = [(int(j), cached[int(r)]) for j, r, m in zip(joined, rows, mine) if m]
        first += len(rows)
        if not chosen:
            continue
        stacked = np.concatenate([f for _, f in chosen]).astype(np.float64)
        mean, std = stacked.mean(0), stacked.std(0) + 1e-6
        for j, f in chosen:
            pieces[j] = ((f - mean) / std).astype(np.float16)
    dim = next(iter(pieces.values())).shape[1] if pieces else 0
    lengths = np.array([len(pieces[j]) if j in pieces else 0 for j in range(len(corpus.utterances))])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    frames = np.concatenate([pieces[j] for j in sorted(pieces)]) if pieces else np.zeros((0, dim), np.float16)
    return FrameTargets(frames, offsets)


def soft_label_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(teacher || softmax(student / T))``, mean over the rows with a soft label (others: NaN)."""
    known = ~torch.isnan(teacher_probs).any(dim=1)
    if not bool(known.any()):
        return student_logits.new_zeros(())
    log_p = F.log_softmax(student_logits[known] / temperature, dim=1)
    return F.kl_div(log_p, teacher_probs[known], reduction="batchmean") * temperature**2


def feature_loss(projected: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the student's projected embedding and the teacher's standardized features."""
    if projected.shape != target.shape:
        raise ValueError(f"projection {tuple(projected.shape)} does not match teacher features {tuple(target.shape)}")
    known = ~torch.isnan(target).any(dim=1)
    if not bool(known.any()):
        return projected.new_zeros(())
    return F.mse_loss(projected[known], target[known])


def frame_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 plus cosine distance between the student's projected frames and the teacher's, ``(batch, frames, dim)``
    each, mean over the frames with a target (others: NaN), as DistilHuBERT (its log-sigmoid of the cosine
    replaced by ``1 - cos``)."""
    if predicted.shape != target.shape:
        raise ValueError(f"student frames {tuple(predicted.shape)} do not match teacher frames {tuple(target.shape)}")
    known = ~torch.isnan(target).any(dim=-1)
    if not bool(known.any()):
        return predicted.new_zeros(())
    p, t = predicted[known], target[known]
    return F.l1_loss(p, t) + (1.0 - F.cosine_similarity(p, t, dim=-1)).mean()
