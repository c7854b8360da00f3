"""Greedy (best-path) CTC decoding of a frame-level head: what ``Recognizer`` does with a transcript head.

A CTC head scores, per output frame, every token of its vocabulary plus a blank (index 0).
Best-path decoding takes each frame's top token, merges runs of the same token and drops
blanks: cheap, allocation-light, and what MTLSER-style systems use at inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BLANK = "<blank>"


def best_path(logits: np.ndarray) -> list[int]:
    """Token indices of the best path of ``(frames, vocabulary)`` scores: repeats merged, blanks (0) dropped."""
    if logits.ndim != 2 or logits.shape[0] == 0:
        return []
    best = logits.argmax(axis=-1)
    keep = np.concatenate([[True], best[1:] != best[:-1]]) & (best != 0)
    return best[keep].tolist()


def greedy_decode(logits: np.ndarray, labels: Sequence[str], separator: str = "") -> str:
    """The best-path transcript of ``(frames, len(labels))`` scores; ``labels[0]`` is the blank."""
    return separator.join(labels[i] for i in best_path(logits))
