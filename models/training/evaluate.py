"""Whole-utterance evaluation exactly as :class:`edge_ser.Recognizer` predicts.

Each utterance is cut into the runtime's analysis windows (:func:`edge_ser.windows.plan`),
every window goes through the front-end and normalization on its own, windows whose peak is
below the runtime's silence floor are skipped, and the softmax probabilities of the rest are
averaged. An utterance with no voiced window gets uniform probabilities (the runtime reports
no label; here it counts as class 0). Windows of equal shape are batched, none is padded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from edge_ser.ctc import best_path
from edge_ser.recognizer import SILENCE_PEAK

from ..arch.heads import IGNORE, SERModel
from ..data.features import FeatureTable, Norms, WindowTable, normalization_for
from . import metrics
from .checkpoint import jsonable


def eval_inputs(
    table: FeatureTable,
    windows: WindowTable,
    indices: Sequence[int],
    normalization: Norms,
) -> list[list[np.ndarray]]:
    """For each utterance in ``indices``, the normalized model inputs of its voiced windows
    (``normalization`` may map utterance index -> statistics, e.g. per speaker)."""
    by_owner: dict[int, list[int]] = {}
    for j, owner in enumerate(windows.owner.tolist()):
        by_owner.setdefault(owner, []).append(j)
    out = []
    for i in indices:
        i = int(i)
        if i in by_owner:
            wins = [windows[j] for j in by_owner[i] if windows.peaks[j] >= SILENCE_PEAK]
        else:
            wins = [table[i]] if table.peaks[i] >= SILENCE_PEAK else []
        norm = normalization_for(normalization, i)
        out.append([norm(w).astype(np.float32, copy=False) for w in wins])
    return out


@torch.no_grad()
def predict(
    model: SERModel, inputs: Sequence[Sequence[np.ndarray]], device: torch.device | str = "cpu", batch_size: int = 32
) -> dict[str, np.ndarray]:
    """Per classification head, ``(n_utterances, n_classes)`` probabilities: the mean softmax over each
    utterance's windows (transcript heads are scored by :func:`transcribe`)."""
    was_training = model.training
    model.eval()
    owners = np.array([u for u, wins in enumerate(inputs) for _ in wins], dtype=np.int64)
    flat = [x for wins in inputs for x in wins]
    groups: dict[tuple[int, ...], list[int]] = {}
    for k, x in enumerate(flat):
        groups.setdefault(x.shape, []).append(k)
    names = [name for name in model.head_names if name not in model.ctc_heads]
    sums = {name: np.zeros((len(inputs), model.heads[name].out_features)) for name in names}
    for members in groups.values():
        for b in range(0, len(members), batch_size):
            part = members[b : b + batch_size]
            x = torch.from_numpy(np.stack([flat[k] for k in part])).to(device)
            for name, logits in zip(names, model.outputs(x, names)):
                probs = torch.softmax(logits.double(), dim=-1).cpu().numpy()
                np.add.at(sums[name], owners[part], probs)
    counts = np.bincount(owners, minlength=len(inputs)).astype(np.float64)[:, None]
    model.train(was_training)
    return {name: np.where(counts > 0, s / np.maximum(counts, 1), 1.0 / s.shape[1]) for name, s in sums.items()}


@torch.no_grad()
def transcribe(
    model: SERModel, inputs: Sequence[np.ndarray], device: torch.device | str = "cpu"
) -> dict[str, list[list[int]]]:
    """Per CTC head, the best-path token indices of each whole-utterance input (one pass each, as the
    runtime decodes a clip)."""
    was_training = model.training
    model.eval()
    names = list(model.ctc_heads)
    out: dict[str, list[list[int]]] = {name: [] for name in names}
    for x in inputs:
        logits = model.outputs(torch.from_numpy(x[None]).to(device), names)
        for name, value in zip(names, logits):
            out[name].append(best_path(value[0].cpu().numpy()))
    model.train(was_training)
    return out


def head_scores(
    probs: dict[str, np.ndarray], targets: dict[str, np.ndarray], indices: np.ndarray
) -> dict[str, dict[str, Any]]:
    """:func:`models.training.metrics.scores` of every head over the ``indices`` whose label is known."""
    out = {}
    for name, p in probs.items():
        y = targets[name][indices]
        known = y != IGNORE
        if known.any():
            out[name] = jsonable(metrics.scores(y[known], p[known].argmax(axis=1), p.shape[1]))
    return out
