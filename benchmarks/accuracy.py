"""UA/WA of a Recognizer on a whole corpus: what ``edge-ser bench --data DIR --dataset NAME`` adds (training side)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from edge_ser import EdgeSERError, Recognizer
from models.data.corpora import load_corpus
from models.training.metrics import scores

EVAL_BATCH = 64  # utterances per predict_batch call: bounded memory on large corpora


def load(dataset: str, data: str) -> Any:
    return load_corpus(dataset, data)


def _bar(total: int, enabled: bool, description: str) -> Any:
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(total=total, desc=description, unit="utt", file=sys.stderr, leave=False)
        except ImportError:
            pass
    return None


def accuracy(rec: Recognizer, corpus: Any, progress: bool = False) -> dict[str, Any]:
    """UA/WA over every corpus utterance whose label the model has (class order: ``rec.labels``)."""
    labels = list(rec.labels)
    utterances = [u for u in corpus.utterances if u.emotion in labels]
    excluded = len(corpus.utterances) - len(utterances)
    if not utterances:
        raise EdgeSERError(f"no {corpus.name} label is among the model's labels {labels}")
    bar = _bar(len(utterances), progress, f"{Path(rec.path).name}: {corpus.name}")
    y_true, y_pred, failed = [], [], 0
    for b in range(0, len(utterances), EVAL_BATCH):
        part = utterances[b : b + EVAL_BATCH]
        for u, p in zip(part, rec.predict_batch([u.path for u in part], on_error="return")):
            if isinstance(p, EdgeSERError) or p.label is None:
                failed += 1
                continue
            y_true.append(labels.index(u.emotion))
            y_pred.append(labels.index(p.label))
        if bar is not None:
            bar.update(len(part))
    if bar is not None:
        bar.close()
    if not y_true:
        raise EdgeSERError(f"no {corpus.name} utterance could be predicted")
    s = scores(y_true, y_pred, len(labels))
    return {
        "dataset": corpus.name,
        "scored": len(y_true),
        "failed": failed,
        "excluded": excluded,
        "ua": s["ua"],
        "wa": s["wa"],
    }
