"""A training run's report: every fold's results and their mean +- std, as ``report.json`` holds them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..arch.heads import PRIMARY
from ..data import transcripts
from . import metrics
from .checkpoint import jsonable
from .loop import FoldResult

REPORT = "report.json"


@dataclass(frozen=True)
class TrainReport:
    """What ``report.json`` holds: the command, architecture and auxiliary heads, the corpus (name, utterances,
    skipped files), front-end and training settings, every fold's results (without their epoch history),
    the mean +- std of the test scores over folds (``summary``; per auxiliary head in ``aux_summary``) and
    the mean seconds per epoch. ``dataset`` and ``protocol`` are set by :func:`models.training.train`."""

    command: str
    arch: str
    aux: dict[str, float]
    corpus: dict[str, Any]
    frontend: dict[str, Any]
    training: dict[str, Any]
    folds: dict[str, FoldResult]
    summary: dict[str, Any] | None
    seconds_per_epoch: float | None
    dataset: str | None = None
    protocol: str | None = None
    aux_summary: dict[str, Any] | None = None
    path: Path | None = field(default=None, compare=False)  # where it was written or read

    @property
    def ua(self) -> float | None:
        """Mean test UA over folds (None without test parts)."""
        return self.summary["ua_mean"] if self.summary else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``report.json``), keys in their usual order; unset optional keys left out."""
        extra = {k: getattr(self, k) for k in ("dataset", "protocol") if getattr(self, k) is not None}
        out = {
            "command": self.command,
            "arch": self.arch,
            "aux": self.aux,
            **extra,
            "corpus": self.corpus,
            "frontend": self.frontend,
            "training": self.training,
            "folds": {name: fold.to_dict(history=False) for name, fold in self.folds.items()},
            "summary": self.summary,
            "seconds_per_epoch": self.seconds_per_epoch,
        }
        if self.aux_summary is not None:
            out["aux_summary"] = self.aux_summary
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: Path | None = None) -> TrainReport:
        known = {f.name for f in fields(cls)} - {"folds", "path"}
        folds = {name: FoldResult.from_dict(fold) for name, fold in data["folds"].items()}
        return cls(**{k: v for k, v in data.items() if k in known}, folds=folds, path=path)

    @classmethod
    def load(cls, path: str | Path) -> TrainReport:
        """A report from ``report.json`` (or the run directory holding it)."""
        path = Path(path)
        path = path / REPORT if path.is_dir() else path
        return cls.from_dict(json.loads(path.read_text()), path)


def skipped_summary(skipped: Any) -> dict[str, Any]:
    """The corpus' skipped files as counts (the list itself may be long)."""
    if isinstance(skipped, int):
        return {"total": skipped}
    if isinstance(skipped, dict):
        counts = {str(k): (len(v) if isinstance(v, (list, tuple, set)) else v) for k, v in skipped.items()}
        return {"total": sum(v for v in counts.values() if isinstance(v, int)), "by_reason": counts}
    items = list(skipped or ())
    reasons: dict[str, int] = {}
    for item in items:
        if isinstance(item, (list, tuple)) and len(item) >= 2:
            reasons[str(item[1])] = reasons.get(str(item[1]), 0) + 1
    return {"total": len(items), **({"by_reason": reasons} if reasons else {})}


def summarize_folds(results: Sequence[FoldResult]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(mean +- std of the emotion scores over the tested folds, the same per auxiliary head or None)."""
    tested = [r.test for r in results if r.test is not None]
    summary = jsonable(metrics.summarize([t[PRIMARY] for t in tested])) if tested else None
    aux: dict[str, Any] = {}
    for head in sorted({h for t in tested for h in t if h != PRIMARY}):
        per_fold = [t[head] for t in tested if head in t]
        if transcripts.is_ctc(head):
            rates = [f["token_error_rate"] for f in per_fold if f["token_error_rate"] is not None]
            mean_std = {"token_error_rate_mean": float(np.mean(rates)), "token_error_rate_std": float(np.std(rates))}
            aux[head] = mean_std if rates else None
            continue
        aux[head] = jsonable(metrics.summarize(per_fold))
    return summary, aux or None
