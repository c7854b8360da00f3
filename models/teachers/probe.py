"""Linear probes on pooled teacher features: the head of the base tier and of ``benchmarks/teacher_probe.py``.

A probe is a standardized multinomial logistic regression. Its ``C`` (and, in the benchmark, the block) is chosen
from training speakers only: on the fold's validation part when that holds whole speakers (RAVDESS, EmoDB), else
by leave-one-training-speaker-out over train + validation (CASIA's 3 training speakers, whose validation part
shares their speakers and would reward speaker-specific cues).
"""

from __future__ import annotations

import numpy as np

from edge_ser.frontend import Normalization
from models.training.metrics import scores

C_GRID = (0.01, 0.1)


def fit(z: np.ndarray, y: np.ndarray, c: float):
    """Logistic regression on already standardized rows."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=2000).fit(z, y)


def ua(clf, z: np.ndarray, y: np.ndarray, n_classes: int) -> float:
    return scores(y, clf.predict(z), n_classes)["ua"]


def selection_ua(z: np.ndarray, y: np.ndarray, speakers: np.ndarray, fold, c: float, n_classes: int) -> float:
    """The UA that chooses ``C`` (and the block), from the fold's training speakers only (module docstring)."""
    train, val = np.asarray(fold.train), np.asarray(fold.val)
    if fold.val_by_speaker:
        return ua(fit(z[train], y[train], c), z[val], y[val], n_classes)
    rest = np.concatenate([train, val])
    inner = []
    for s in np.unique(speakers[rest]):
        held = speakers[rest] == s
        inner.append(ua(fit(z[rest[~held]], y[rest[~held]], c), z[rest[held]], y[rest[held]], n_classes))
    return float(np.mean(inner))


def choose_c(z: np.ndarray, y: np.ndarray, speakers: np.ndarray, fold, n_classes: int) -> tuple[float, float]:
    """``(C, its selection UA)``: the best of ``C_GRID``, the smaller on ties."""
    val_ua = {c: selection_ua(z, y, speakers, fold, c, n_classes) for c in C_GRID}
    c = max(C_GRID, key=lambda k: (val_ua[k], -k))
    return c, val_ua[c]


def choose_fold_c(
    x: np.ndarray, y: np.ndarray, speakers: np.ndarray, fold, n_classes: int, ok: np.ndarray | None = None
) -> tuple[float, np.ndarray, np.ndarray]:
    """``(C, train, val)``: the fold's training and validation rows the teacher could read (``ok``; all without it),
    and the ``C`` :func:`choose_c` picks on them, features standardized with the training rows' statistics."""
    train, val = (np.asarray(part, dtype=np.int64) for part in (fold.train, fold.val))
    if ok is not None:
        train, val = train[ok[train]], val[ok[val]]
    kept = type(fold)(fold.name, tuple(train), tuple(val), fold.test, fold.val_by_speaker)
    c, _ = choose_c(Normalization.fit([x[train]])(x), y, speakers, kept, n_classes)
    return c, train, val
