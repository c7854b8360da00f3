"""Multi-task heads on any backbone: one utterance embedding, one linear classifier per task.

Every backbone maps its input to an embedding ``(batch, embedding_dim)``. :class:`SERModel`
puts named classification heads on it -- ``emotion`` first (the primary task), then
auxiliary ones such as ``gender`` or ``speaker`` -- and trains them with a weighted sum of
cross-entropies. For export, :meth:`SERModel.export_module` keeps only chosen heads and
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
    unless given. ``dropout`` is applied to the embedding before every head.
    """

    def __init__(
        self,
        backbone: nn.Module,
        heads: Mapping[str, int],
        loss_weights: Mapping[str, float] | None = None,
        dropout: float = 0.0,
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
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(backbone.embedding_dim, int(heads[name])) for name in order})
        self.loss_weights = {name: float(weights.get(name, 1.0)) for name in order}

    @property
    def head_names(self) -> tuple[str, ...]:
        return tuple(self.heads)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Utterance embedding ``(batch, embedding_dim)``."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.dropout(self.backbone(x))
        return {name: head(z) for name, head in self.heads.items()}

    def loss(
        self,
        logits: Mapping[str, torch.Tensor],
        targets: Mapping[str, torch.Tensor],
        label_smoothing: float = 0.0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Joint loss ``sum(weight[h] * CE(h))`` over the heads with targets, and each head's CE.

        Targets equal to ``IGNORE`` (-100) are skipped; a head with no known target in the
        batch contributes zero. ``label_smoothing`` is passed to every cross-entropy.
        """
        parts: dict[str, torch.Tensor] = {}
        total = next(iter(logits.values())).new_zeros(())
        for name, target in targets.items():
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
        z = self.model.backbone(x)
        return tuple(self.model.heads[name](z) for name in self.names)
