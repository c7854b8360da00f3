"""Emotion-recognition metrics as the literature reports them, as fractions in [0, 1] (not percentages).

- UA, unweighted accuracy: mean per-class recall over the classes present in ``y_true``; the usual headline
  number for imbalanced corpora (IEMOCAP), equal to balanced accuracy.
- WA, weighted accuracy: plain accuracy, each utterance counts once.
- macro F1: mean per-class F1 over the classes present in ``y_true`` or ``y_pred`` (a class predicted but never
  true scores 0), as scikit-learn's ``f1_score(average="macro")`` computes it by default.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_KEYS = ("ua", "wa", "macro_f1")


def _labels(values: Sequence[int] | np.ndarray, n_classes: int, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D sequence of class indices, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what} must hold integer class indices, got dtype {array.dtype}")
    if array.min() < 0 or array.max() >= n_classes:
        raise ValueError(f"{what} has class indices outside 0..{n_classes - 1}")
    return array.astype(np.int64)


def scores(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, n_classes: int) -> dict:
    """``{"ua", "wa", "macro_f1"}`` as floats in [0, 1], and ``"confusion"`` (rows true, columns predicted)."""
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    t = _labels(y_true, n_classes, "y_true")
    p = _labels(y_pred, n_classes, "y_pred")
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} labels, y_pred {len(p)}")
    confusion = np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    hits = np.diag(confusion)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    present = support > 0
    used = present | (predicted > 0)
    return {
        "ua": float(np.mean(hits[present] / support[present])),
        "wa": float(hits.sum() / len(t)),
        "macro_f1": float(np.mean(2 * hits[used] / (support[used] + predicted[used]))),
        "confusion": confusion.tolist(),
    }


def summarize(per_fold: list[dict]) -> dict:
    """Mean and population std (``ddof=0``) over folds of UA, WA and macro F1, and the summed confusion.

    Keys: ``ua_mean``, ``ua_std``, ``wa_mean``, ``wa_std``, ``macro_f1_mean``, ``macro_f1_std``, ``confusion``
    (sum of the folds' matrices, as a list of lists) and ``folds`` (how many).
    """
    if not per_fold:
        raise ValueError("summarize needs at least one fold's scores")
    values = np.array([[fold[key] for key in _KEYS] for fold in per_fold], dtype=float)
    matrices = [np.asarray(fold["confusion"]) for fold in per_fold]
    if len({m.shape for m in matrices}) != 1:
        raise ValueError("the folds' confusion matrices differ in shape")
    summary: dict = {}
    for key, mean, std in zip(_KEYS, values.mean(axis=0), values.std(axis=0), strict=True):
        summary[f"{key}_mean"], summary[f"{key}_std"] = float(mean), float(std)
    summary["confusion"] = np.sum(matrices, axis=0).tolist()
    summary["folds"] = len(per_fold)
    return summary


def plot_confusion(
    confusion: Sequence[Sequence[float]] | np.ndarray, labels: Sequence[str], path: str | os.PathLike, title: str
) -> Path:
    """Write a confusion-matrix PNG: cells coloured by row fraction (recall), annotated with count and percent.

    Renders with matplotlib's Agg canvas directly, so it works headless and leaves pyplot's backend alone.
    Under torchrun, on rank 0 only.
    """
    from . import distributed

    if not distributed.is_main():
        return Path(path)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(confusion, dtype=float)
    n = len(labels)
    if counts.shape != (n, n):
        raise ValueError(f"confusion of shape {counts.shape} does not match {n} labels")
    rows = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = 2.5 + 0.7 * n
    figure = Figure(figsize=(size + 1.0, size))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(fractions, vmin=0.0, vmax=1.0, cmap="Blues")
    axes.set_xticks(range(n), labels, rotation=45, ha="right")
    axes.set_yticks(range(n), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for (row, col), count in np.ndenumerate(counts):
        text = f"{count:.0f}" if count == int(count) else f"{count:.1f}"
        axes.text(
            col,
            row,
            f"{text}\n{fractions[row, col]:.0%}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if fractions[row, col] > 0.5 else "black",
        )
    figure.colorbar(image, ax=axes, label="fraction of the true class")
    figure.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    return out
