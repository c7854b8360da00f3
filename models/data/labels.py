"""What every head learns from a corpus: its label set (from a fold's training utterances) and each
utterance's target."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..arch.heads import IGNORE, PRIMARY
from . import transcripts
from .corpora import Corpus


def head_labels(corpus: Corpus, train: Iterable[int], aux: Iterable[str]) -> dict[str, list[str]]:
    """Label set of every head: the corpus' emotions, each aux field's values among ``train``, and
    for a transcript (CTC) head its token vocabulary among ``train`` (blank first)."""
    labels = {PRIMARY: [str(e) for e in corpus.emotions]}
    train = list(train)
    for name in aux:
        if transcripts.is_ctc(name):
            labels[name] = transcripts.vocabulary(name, [corpus.utterances[i] for i in train])
            if len(labels[name]) < 2:
                raise ValueError(f"transcript head {name!r}: no training utterance has a {name} transcript")
            continue
        values = {getattr(corpus.utterances[i], name, None) for i in train}
        values = sorted(str(v) for v in values if v not in (None, ""))
        if len(values) < 2:
            raise ValueError(f"aux head {name!r}: training utterances have {len(values)} distinct {name} value(s)")
        labels[name] = values
    return labels


def head_targets(corpus: Corpus, labels: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Class index of every utterance for every head; -100 where the label is unknown or unseen.
    A transcript head gets a token matrix instead (:func:`models.data.transcripts.targets`)."""
    out = {}
    for name, values in labels.items():
        if transcripts.is_ctc(name):
            out[name] = transcripts.targets(name, corpus.utterances, values)
            continue
        index = {v: k for k, v in enumerate(values)}
        out[name] = np.array([index.get(str(getattr(u, name, None)), IGNORE) for u in corpus.utterances], np.int64)
    return out
