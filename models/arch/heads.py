"""Multi-task heads on any backbone: one utterance embedding, one linear classifier per task.

Every backbone maps its input to an embedding ``(batch, embedding_dim)``. :class:`SERModel`
puts named classification heads on it -- ``emotion`` first (the primary task), then
auxiliary ones such as ``gender`` or ``speaker`` -- and trains them with a weighted sum of
losses. Transcript heads (``ctc_heads``: characters, syllables) are frame-level: they need a
backbone that exposes its frames before pooling (``frames(x) -> (batch, frame_dim, frames)``
and ``embed_frames(frames) -> embedding``), put a linear layer on every frame and train with CTC
(blank = index 0). ``adversarial`` heads see the embedding through a gradient reversal: they learn
their task while the backbone is pushed to hide it (e.g. the speaker). For export,
:meth:`SERModel.export_module` keeps only chosen heads and
returns their logits as a tuple in a fixed order, which maps directly onto ONNX outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

PRIMARY = "emotion"
IGNORE = -100  # target value for "label unknown": contributes nothing to that head's loss


class SERModel(nn.Module):
    """A backbone plus named heads; ``forward`` returns ``{head: logits}``, ``emotion`` first.

    ``heads`` maps head names to class counts and must include ``emotion``. ``loss_weights``
    gives each auxiliary head's weight in the joint loss (default 1); the emotion weight is 1
    unless given. ``dropout`` is applied to the embedding (and frames) before every head.
    ``ctc_heads`` names the heads that are frame-level CTC heads; their output is
    ``(batch, frames, classes)`` and their targets ``(batch, length)`` padded with ``IGNORE``.
    ``adversarial`` names auxiliary classification heads whose gradient reaches the backbone reversed
    (:func:`reverse_gradient`): minimizing their loss trains the head and makes the embedding hide its classes.
    """

    def __init__(
        self,
        backbone: nn.Module,
        heads: Mapping[str, int],
        loss_weights: Mapping[str, float] | None = None,
        dropout: float = 0.0,
        ctc_heads: Sequence[str] = (),
        adversarial: Sequence[str] = (),
    ) -> None:
        super().__init__()
        if PRIMARY not in heads:
            raise ValueError(f"a model needs an {PRIMARY!r} head, got {sorted(heads)}")
        order = [PRIMARY, *(name for name in heads if name != PRIMARY)]
        for name in order:
            if int(heads[name]) < 2:
                raise ValueError(f"head {name!r} needs at least 2 classes, got {heads[name]}")
        weights = dict(loss_weights or {})
        unknown = set(weights) - set(order)
        if unknown:
            raise ValueError(f"loss weights for heads the model does not have: {sorted(unknown)}")
        ctc = tuple(name for name in order if name in set(ctc_heads))
        if set(ctc_heads) - set(order) or PRIMARY in ctc:
            raise ValueError(f"CTC heads {sorted(ctc_heads)} must be auxiliary heads of {order}")
        reversed_ = tuple(name for name in order if name in set(adversarial))
        if set(adversarial) - set(order) or PRIMARY in reversed_ or set(reversed_) & set(ctc):
            raise ValueError(
                f"adversarial heads {sorted(adversarial)} must be auxiliary classification heads of {order}"
            )
        if ctc and getattr(backbone, "members", 1) != 1:
            raise ValueError(
                f"CTC heads {list(ctc)} read one network's frames; a backbone of packed members has several"
            )
        if ctc and not (hasattr(backbone, "frames") and hasattr(backbone, "embed_frames")):
            raise ValueError(
                f"{type(backbone).__name__} pools time away inside; CTC heads need a backbone with frame output "
                "(e.g. edge_cnn)"
            )
        self.backbone = backbone
        self.ctc_heads = ctc
        self.adversarial = reversed_
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict(
            {
                name: nn.Linear(backbone.frame_dim if name in ctc else backbone.embedding_dim, int(heads[name]))
                for name in order
            }
        )
        self.loss_weights = {name: float(weights.get(name, 1.0)) for name in order}

    @property
    def members(self) -> int:
        """Packed members of the backbone (:class:`models.arch.edge_cnn.EdgeCNN`): training, the outputs have
        this many rows per input row, each member's in turn (see :meth:`per_member`)."""
        return int(getattr(self.backbone, "members", 1))

    def per_member(self, *rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-input-row tensors (targets) laid out as this model's outputs are: in training, each row repeated for
        every packed member, so each member learns from the whole batch on its own; otherwise as they are."""
        if self.members == 1 or not self.training:
            return rows
        return tuple(r.repeat_interleave(self.members, dim=0) for r in rows)

    @property
    def head_names(self) -> tuple[str, ...]:
        return tuple(self.heads)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Utterance embedding ``(batch, embedding_dim)``."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return dict(zip(self.head_names, self.outputs(x, self.head_names, lengths)))

    @property
    def masks_padding(self) -> bool:
        """Whether the backbone can leave zero-padded frames out (it exposes frames and their lengths)."""
        return hasattr(self.backbone, "frame_lengths")

    def frame_lengths(self, lengths: torch.Tensor | None) -> torch.Tensor | None:
        """How many of the backbone's output frames each input of ``lengths`` rows fills (None: all,
        or a backbone without frame output)."""
        if lengths is None or not self.masks_padding:
            return None
        return self.backbone.frame_lengths(lengths)

    def outputs(
        self, x: torch.Tensor, names: Sequence[str], lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Logits of heads ``names``: ``(batch, classes)``, or ``(batch, frames, classes)`` for CTC heads.

        ``lengths``: rows of each input that are audio (the rest zero padding); a backbone with frame
        output then pools only those frames, so padding cannot leak into the utterance embedding.
        """
        return self.outputs_and_embedding(x, names, lengths)[0]

    def outputs_and_embedding(
        self, x: torch.Tensor, names: Sequence[str], lengths: torch.Tensor | None = None
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """:meth:`outputs` and the utterance embedding they were computed from (before dropout), in one pass."""
        if not self.ctc_heads and self.frame_lengths(lengths) is None:
            embedding = self.backbone(x)
            z = self.dropout(embedding)
            return tuple(self.heads[name](self._head_input(name, z)) for name in names), embedding
        return self.outputs_embedding_frames(x, names, lengths)[:2]

    def outputs_embedding_frames(
        self, x: torch.Tensor, names: Sequence[str], lengths: torch.Tensor | None = None
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
        """:meth:`outputs_and_embedding` and the backbone's frames ``(batch, channels, frames)`` they pooled (for
        frame-level teacher targets; backbones with frame output only)."""
        if not hasattr(self.backbone, "frames"):
            raise ValueError(f"{type(self.backbone).__name__} has no frame output")
        frames = self.backbone.frames(x)
        embedding = self.backbone.embed_frames(frames, self.frame_lengths(lengths))
        z = self.dropout(embedding)
        f = self.dropout(frames.transpose(1, 2))
        outputs = tuple(self.heads[name](f if name in self.ctc_heads else self._head_input(name, z)) for name in names)
        return outputs, embedding, frames

    def _head_input(self, name: str, z: torch.Tensor) -> torch.Tensor:
        return reverse_gradient(z) if name in self.adversarial else z

    def loss(
        self,
        logits: Mapping[str, torch.Tensor],
        targets: Mapping[str, torch.Tensor],
        label_smoothing: float = 0.0,
        frame_lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Joint loss ``sum(weight[h] * loss(h))`` over the heads with targets, and each head's loss.

        Classification heads: cross-entropy; targets equal to ``IGNORE`` (-100) are skipped.
        CTC heads: CTC loss (mean over utterances of the loss per target token); a target row
        starting with ``IGNORE`` is skipped. A head with no known target in the batch
        contributes zero. ``label_smoothing`` is passed to every cross-entropy; ``frame_lengths``
        (:meth:`frame_lengths`) limits each CTC alignment to the frames of its utterance. Packed members: each
        member's outputs against every target (:meth:`per_member`).
        """
        parts: dict[str, torch.Tensor] = {}
        total = next(iter(logits.values())).new_zeros(())
        for name, target in targets.items():
            (target,) = self.per_member(target)
            if name in self.ctc_heads:
                parts[name] = ctc_loss(logits[name], target, frame_lengths)
                total = total + self.loss_weights[name] * parts[name]
                continue
            valid = (target != IGNORE).sum()
            ce = F.cross_entropy(
                logits[name], target, ignore_index=IGNORE, reduction="sum", label_smoothing=label_smoothing
            ) / valid.clamp(min=1)
            parts[name] = ce
            total = total + self.loss_weights[name] * ce
        return total, parts

    def export_module(self, heads: Sequence[str] | None = None) -> HeadSelector:
        """A module returning the logits of ``heads`` (default: all) as a tuple, in that order.

        It shares this model's weights and starts in this model's train/eval mode.
        """
        selector = HeadSelector(self, heads if heads is not None else self.head_names)
        return selector.train(self.training)


class HeadSelector(nn.Module):
    """Wraps a :class:`SERModel` so that ``forward`` returns a tuple of selected heads' logits."""

    def __init__(self, model: SERModel, heads: Sequence[str]) -> None:
        super().__init__()
        missing = [h for h in heads if h not in model.heads]
        if not heads or missing:
            raise ValueError(f"cannot select heads {list(heads)} from {list(model.head_names)}")
        self.model = model
        self.names = tuple(heads)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model.outputs(x, self.names)


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        return -grad


def reverse_gradient(x: torch.Tensor) -> torch.Tensor:
    """``x`` unchanged, with its gradient negated on the way back (the gradient reversal layer)."""
    return _ReverseGradient.apply(x)


def ctc_loss(logits: torch.Tensor, target: torch.Tensor, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
    """CTC loss of frame logits ``(batch, frames, classes)`` against ``IGNORE``-padded token rows;
    ``frame_lengths``: the frames of each utterance (default: all)."""
    valid = target[:, 0] != IGNORE
    if not bool(valid.any()):
        return logits.new_zeros(())
    log_probs = logits[valid].float().log_softmax(dim=-1).transpose(0, 1)  # (frames, batch, classes)
    rows = target[valid]
    lengths = (rows != IGNORE).sum(dim=1)
    if frame_lengths is None:
        frames = torch.full((rows.shape[0],), log_probs.shape[0], dtype=torch.long, device=rows.device)
    else:
        frames = frame_lengths[valid].to(torch.long)
    return F.ctc_loss(log_probs, rows[rows != IGNORE], frames, lengths, blank=0, zero_infinity=True)
