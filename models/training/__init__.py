"""The training loop and what surrounds it: configuration, losses, distillation, checkpoints, evaluation.

The Python API under ``edge-ser train``::

    from models.training import RunConfig, TrainConfig, train

    report = train(RunConfig(arch="edge_cnn", dataset="ravdess", data="../shared/datasets/ravdess",
                             out="runs/x", training=TrainConfig(epochs=20)))

``train`` returns a :class:`TrainReport` (what ``report.json`` holds). The names are imported on first use,
so ``from models.training import metrics`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_API = {
    "train": "run",
    "train_folds": "run",
    "RunConfig": "config",
    "TrainConfig": "config",
    "TrainReport": "report",
    "FoldResult": "loop",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(f"{__name__}.{_API[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
