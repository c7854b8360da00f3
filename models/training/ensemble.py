"""Finished student runs as a teacher (``--ensemble-teacher RUN ...``): one student learns what several say.

Averaging the probabilities of a recipe's seeds scores above each seed on unheard speakers (``benchmarks/
fold_ensemble.py``), but several networks do not fit the tiny tier. Here, per fold, the same fold of each run scores
the very crops the student trains on (augmented as they are: "function matching", Beyer et al. 2022), and the
student's emotion logits learn their averaged probabilities at a temperature, beside its other losses.

A member must have been trained on the same corpus, protocol and fold as the student, so that this fold's test
speakers were never in its training part. Its seed may differ: where a protocol draws validation from the training
speakers' utterances (CASIA), a member may have trained on some of the student's validation utterances, which then
flatter the student's epoch choice, never its test score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from edge_ser.errors import EdgeSERError
from edge_ser.frontend import FrontEnd, Normalization

from ..arch.heads import PRIMARY, SERModel
from ..arch.registry import build_model
from .checkpoint import trained_fold


@dataclass(frozen=True)
class EnsembleConfig:
    """``runs``: finished training runs (their folds are the members); ``weight`` of the loss that matches their
    averaged probabilities, softened by ``temperature``."""

    runs: tuple[str, ...]
    weight: float = 1.0
    temperature: float = 2.0

    def __post_init__(self) -> None:
        runs = tuple(str(Path(r).resolve()) for r in self.runs)  # absolute: a resumed run compares them
        if not runs or len(set(runs)) != len(runs):
            raise ValueError("--ensemble-teacher takes one or more distinct runs")
        if not self.weight >= 0 or not self.temperature > 0:
            raise ValueError("the ensemble teacher needs weight >= 0 and temperature > 0")
        object.__setattr__(self, "runs", runs)

    def to_dict(self) -> dict[str, Any]:
        return {"runs": list(self.runs), "weight": self.weight, "temperature": self.temperature}


class EnsembleTeacher:
    """A fold's members, each with the affine map from the student's normalized inputs to its own; ``weight``: of
    its loss among the student's."""

    def __init__(
        self, members: Sequence[tuple[SERModel, torch.Tensor, torch.Tensor]], temperature: float, weight: float = 1.0
    ) -> None:
        self.members = list(members)
        self.temperature = temperature
        self.weight = weight

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The members' emotion probabilities at the temperature, averaged, for the student's batch ``x``."""
        total = None
        for model, scale, shift in self.members:
            logits = model(x * scale + shift, lengths)[PRIMARY]
            p = F.softmax(logits / self.temperature, dim=1)
            total = p if total is None else total + p
        return total / len(self.members)

    def loss(self, logits: torch.Tensor, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``T^2 * KL(ensemble || softmax(student / T))``, mean over the batch."""
        target = self.probabilities(x, lengths)
        log_p = F.log_softmax(logits / self.temperature, dim=1)
        return F.kl_div(log_p, target, reduction="batchmean") * self.temperature**2


def fold_ensemble(
    cfg: EnsembleConfig,
    *,
    corpus: str,
    protocol: str | None,
    fold: str,
    frontend: FrontEnd,
    normalization: Normalization,
    labels: Sequence[str],
    device: torch.device,
) -> EnsembleTeacher:
    """The members of fold ``fold``: the same fold of each run, checked to share the student's test speakers,
    front-end and emotion classes (``ValueError`` naming the run otherwise)."""
    if normalization.mode != "global":
        raise ValueError("the ensemble teacher needs the student's global normalization")
    members = []
    for run in cfg.runs:
        wanted = {"corpus": corpus, "protocol": protocol, "fold": fold}
        config, state = trained_fold(
            run, fold, option="--ensemble-teacher", wanted=wanted, leak="this fold's test speakers"
        )
        try:
            same = FrontEnd.from_dict(config["frontend"]) == frontend and config["labels"][PRIMARY] == list(labels)
            own = Normalization.from_dict(config["normalization"])
            model = build_model(config)
            model.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError, EdgeSERError) as exc:
            raise ValueError(
                f"--ensemble-teacher {run}: its fold {fold!r} is not a model this can read ({exc})"
            ) from None
        if not same:
            raise ValueError(f"--ensemble-teacher {run}: its front-end or emotion classes differ from this run's")
        if own.mode != "global":
            raise ValueError(f"--ensemble-teacher {run}: its members must use global normalization")
        scale, shift = renormalization(normalization, own)
        members.append((model.to(device).eval(), scale.to(device), shift.to(device)))
    return EnsembleTeacher(members, cfg.temperature, cfg.weight)


def renormalization(student: Normalization, member: Normalization) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` that turn features normalized with ``student``'s statistics into features normalized with
    ``member``'s: ``x = (f - mean) / std`` becomes ``(f - member_mean) / member_std``."""
    mean, std = torch.tensor(student.mean), torch.tensor(student.std)
    own_mean, own_std = torch.tensor(member.mean), torch.tensor(member.std)
    return (std / own_std).float(), ((mean - own_mean) / own_std).float()
