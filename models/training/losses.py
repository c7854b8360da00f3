"""The loss of one training batch: the heads' own losses, with mixup or with a teacher, plus the transcript heads' CTC.

Each head's loss (cross-entropy with label smoothing, CTC for transcript heads) lives with the heads in
:class:`models.arch.heads.SERModel`; here they are combined for a batch as ``--mixup``, ``--teacher`` and the
transcript heads ask.
"""

from __future__ import annotations

import numpy as np
import torch

from ..arch.heads import PRIMARY, SERModel
from ..data.batches import Batch, WholeView
from . import distill
from .config import TrainConfig
from .ensemble import EnsembleTeacher

Losses = tuple[torch.Tensor, dict[str, torch.Tensor]]  # the total, and each part by name (for the epoch's log)


def batch_loss(
    model: SERModel,
    batch: Batch,
    *,
    cfg: TrainConfig,
    device: torch.device,
    rng: np.random.Generator,
    teacher: distill.Targets | None = None,
    projector: torch.nn.Module | None = None,
    transfer: tuple[Batch, distill.Targets] | None = None,
    frame_teacher: distill.FrameTeacher | None = None,
    ensemble: EnsembleTeacher | None = None,
) -> Losses:
    """The loss to minimize on ``batch``: plain, with mixup or with the teacher (and a ``transfer`` batch, and
    frame-level targets), plus the transcript heads'; with an ``ensemble`` teacher, plus its loss on the same
    (mixed) inputs."""
    x, lengths = torch.from_numpy(batch.inputs).to(device), torch.from_numpy(batch.lengths).to(device)
    t = {h: torch.from_numpy(v).to(device) for h, v in batch.targets.items()}
    if teacher is not None and projector is not None:
        mix = mixing(len(x), cfg.mixup, rng, x.device) if cfg.mixup else None
        loss, parts = distill_step(
            model, projector, teacher, batch, x, t, lengths, cfg, transfer, mix, frame_teacher, ensemble
        )
    elif cfg.mixup:
        loss, parts = mixup_step(model, x, t, lengths, cfg, rng)
    else:
        logits = model(x, lengths)
        loss, parts = model.loss(logits, t, cfg.label_smoothing, model.frame_lengths(lengths))
        if ensemble is not None:
            parts["ensemble"] = ensemble.loss(logits[PRIMARY], x, lengths)
            loss = loss + ensemble.weight * parts["ensemble"]
    if batch.whole is not None:
        whole_loss, whole_parts = transcript_loss(model, batch.whole, device)
        loss, parts = loss + whole_loss, {**parts, **whole_parts}
    return loss, parts


def transcript_loss(model: SERModel, whole: WholeView, device: torch.device) -> Losses:
    """Weighted CTC losses of the transcript heads on the batch's whole utterances (and each part)."""
    x, lengths = torch.from_numpy(whole.inputs).to(device), torch.from_numpy(whole.lengths).to(device)
    names = tuple(whole.targets)
    logits = dict(zip(names, model.outputs(x, names, lengths)))
    targets = {h: torch.from_numpy(v).to(device) for h, v in whole.targets.items()}
    return model.loss(logits, targets, frame_lengths=model.frame_lengths(lengths))


def distill_step(
    model: SERModel,
    projector: torch.nn.Module,
    teacher: distill.Targets,
    batch: Batch,
    x: torch.Tensor,
    t: dict[str, torch.Tensor],
    lengths: torch.Tensor,
    cfg: TrainConfig,
    transfer: tuple[Batch, distill.Targets] | None = None,
    mix: tuple[float, torch.Tensor] | None = None,
    frame_teacher: distill.FrameTeacher | None = None,
    ensemble: EnsembleTeacher | None = None,
) -> Losses:
    """The usual losses plus the teacher's: soft labels on the emotion logits, features from the embedding, and
    with a ``frame_teacher`` the teacher's frames from the backbone's frames (``--distill-frames``).

    With ``mix`` (``(lam, perm)``, from ``--mixup``) the batch's inputs are mixed with a shuffled copy, as in
    :func:`mixup_step`, and so are all its targets: the labels' losses are weighted ``lam`` and ``1 - lam``,
    the teacher's soft labels and features are mixed with the same weights (:func:`mix_targets`).

    A ``transfer`` batch (other corpora's audio with this fold's teacher targets) joins the same forward pass,
    so that batch norm's statistics in training are those of the mixture its running statistics will hold; it
    adds only the teacher's losses, weighted ``transfer_weight``. An ``ensemble`` teacher scores the student's own
    (mixed) inputs, not the transfer batch's. Packed members (:attr:`SERModel.members`) each learn every target.
    """
    n, d = len(x), cfg.distill
    rows = n * model.members  # the outputs' rows of the batch (the transfer batch's follow)
    if mix is not None:
        lam, perm = mix
        x, lengths = lam * x + (1.0 - lam) * x[perm], torch.maximum(lengths, lengths[perm])
    if transfer is not None:
        x = torch.cat([x, torch.from_numpy(transfer[0].inputs).to(x.device)])
        lengths = torch.cat([lengths, torch.from_numpy(transfer[0].lengths).to(x.device)])
    if frame_teacher is not None:
        outputs, embedding, student_frames = model.outputs_embedding_frames(x, model.head_names, lengths)
    else:
        outputs, embedding = model.outputs_and_embedding(x, model.head_names, lengths)
    logits = {name: out[:rows] for name, out in zip(model.head_names, outputs)}
    frames = model.frame_lengths(lengths[:n])
    loss, parts = model.loss(logits, t, cfg.label_smoothing, frames)
    projected = projector(embedding)
    soft, feats = (torch.from_numpy(a).to(x.device) for a in teacher.lookup(batch.index, batch.views))
    if mix is not None:
        loss_b, parts_b = model.loss(logits, {h: v[perm] for h, v in t.items()}, cfg.label_smoothing, frames)
        parts = {h: lam * parts[h] + (1.0 - lam) * parts_b[h] for h in parts}
        loss = lam * loss + (1.0 - lam) * loss_b
        soft, feats = mix_targets(soft, feats, lam, perm)
    soft, feats = model.per_member(soft, feats)
    parts["teacher_soft"] = distill.soft_label_loss(logits[PRIMARY], soft, d.temperature)
    parts["teacher_features"] = distill.feature_loss(projected[:rows], feats)
    loss = loss + d.soft_weight * parts["teacher_soft"] + d.feature_weight * parts["teacher_features"]
    if frame_teacher is not None:
        parts["teacher_frames"] = frame_teacher.loss(student_frames[:n], batch.index, batch.times, mix)
        loss = loss + d.frame_weight * parts["teacher_frames"]
    if ensemble is not None:
        parts["ensemble"] = ensemble.loss(logits[PRIMARY], x[:n], lengths[:n])
        loss = loss + ensemble.weight * parts["ensemble"]
    if transfer is not None:
        other, targets = transfer
        soft, feats = (torch.from_numpy(a).to(x.device) for a in targets.lookup(other.index, other.views))
        soft, feats = model.per_member(soft, feats)
        parts["transfer_soft"] = distill.soft_label_loss(outputs[0][rows:], soft, d.temperature)
        parts["transfer_features"] = distill.feature_loss(projected[rows:], feats)
        extra = d.soft_weight * parts["transfer_soft"] + d.feature_weight * parts["transfer_features"]
        loss = loss + d.transfer_weight * extra
    return loss, parts


def mixing(n: int, alpha: float, rng: np.random.Generator, device: torch.device) -> tuple[float, torch.Tensor]:
    """A mixup draw for a batch of ``n``: the weight ``lam ~ Beta(alpha, alpha)`` and the partner of each row."""
    lam = float(rng.beta(alpha, alpha))
    return lam, torch.from_numpy(rng.permutation(n)).to(device)


def mix_targets(
    soft: torch.Tensor, feats: torch.Tensor, lam: float, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's targets of mixed inputs: each row's soft labels and features mixed with its partner's,
    ``lam`` and ``1 - lam``. A row whose own or partner's target is unknown (NaN) stays unknown, so the
    losses skip it rather than learn half a target."""
    return lam * soft + (1.0 - lam) * soft[perm], lam * feats + (1.0 - lam) * feats[perm]


def mixup_step(
    model: SERModel,
    x: torch.Tensor,
    t: dict[str, torch.Tensor],
    lengths: torch.Tensor,
    cfg: TrainConfig,
    rng: np.random.Generator,
) -> Losses:
    """Loss on a mixup batch: inputs mixed with a shuffled copy (audio where either has audio),
    losses against both targets."""
    lam, perm = mixing(len(x), cfg.mixup, rng, x.device)
    lengths = torch.maximum(lengths, lengths[perm])
    logits = model(lam * x + (1.0 - lam) * x[perm], lengths)
    frames = model.frame_lengths(lengths)
    loss_a, parts_a = model.loss(logits, t, cfg.label_smoothing, frames)
    loss_b, parts_b = model.loss(logits, {h: v[perm] for h, v in t.items()}, cfg.label_smoothing, frames)
    parts = {h: lam * parts_a[h] + (1.0 - lam) * parts_b[h] for h in parts_a}
    return lam * loss_a + (1.0 - lam) * loss_b, parts
