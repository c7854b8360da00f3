"""Transcript targets for CTC heads: which utterance field each head reads and how it becomes tokens.

Three transcript heads exist, all trained with CTC on the backbone's frame-level output:

- ``chars``: the utterance's text as characters (CASIA's Chinese sentence from
  ``transcripts.txt``, RAVDESS' English statement), lower-cased, punctuation removed;
- ``syllables``: CASIA's pinyin syllables with tone digits from the ``.lab`` files (``SIL`` removed
  by the loader);
- ``syllables_notone``: the same syllables without their tone digit.

The vocabulary is built from the training utterances only, index 0 being the CTC blank.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from edge_ser.ctc import BLANK

from ..arch.heads import IGNORE


def _chars(utt: Any) -> list[str] | None:
    text = getattr(utt, "text", None)
    if not text:
        return None
    kept = "".join(" " if c.isspace() else c for c in text.lower() if not unicodedata.category(c).startswith("P"))
    tokens = list(" ".join(kept.split()))
    return tokens or None


def _syllables(utt: Any) -> list[str] | None:
    return list(utt.syllables) if getattr(utt, "syllables", None) else None


def _syllables_notone(utt: Any) -> list[str] | None:
    syllables = _syllables(utt)
    return [s.rstrip("0123456789") for s in syllables] if syllables else None


# head name -> (tokens of an utterance, or None when unknown; separator when decoded tokens are joined)
CTC_HEADS: dict[str, tuple[Callable[[Any], list[str] | None], str]] = {
    "chars": (_chars, ""),
    "syllables": (_syllables, " "),
    "syllables_notone": (_syllables_notone, " "),
}


def is_ctc(head: str) -> bool:
    return head in CTC_HEADS


def tokens(head: str, utt: Any) -> list[str] | None:
    """The token sequence of ``utt`` for transcript head ``head`` (None when the utterance has none)."""
    return CTC_HEADS[head][0](utt)


def separator(head: str) -> str:
    return CTC_HEADS[head][1]


def vocabulary(head: str, utterances: Iterable[Any]) -> list[str]:
    """``[blank, *sorted tokens]`` over ``utterances`` (the training ones)."""
    seen = {t for u in utterances for t in (tokens(head, u) or ())}
    return [BLANK, *sorted(seen)]


def targets(head: str, utterances: Sequence[Any], vocab: Sequence[str]) -> np.ndarray:
    """``(n_utterances, longest)`` token indices padded with ``IGNORE``; a row of ``IGNORE`` when the
    utterance has no transcript or holds a token outside ``vocab`` (it then trains no CTC loss)."""
    index = {t: k for k, t in enumerate(vocab) if k}
    rows = []
    for u in utterances:
        seq = tokens(head, u) or []
        rows.append([index[t] for t in seq] if seq and all(t in index for t in seq) else [])
    out = np.full((len(rows), max([1, *map(len, rows)])), IGNORE, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def edit_distance(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Levenshtein distance between two token sequences."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def error_rate(references: Sequence[Sequence[Any]], hypotheses: Sequence[Sequence[Any]]) -> float:
    """Token error rate: total edit distance over total reference length."""
    total = sum(len(r) for r in references)
    return sum(edit_distance(r, h) for r, h in zip(references, hypotheses)) / max(total, 1)
