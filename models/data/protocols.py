"""Evaluation protocols: speaker-independent train/validation/test folds over a :class:`~models.data.corpora.Corpus`.

Protocols (``PROTOCOLS``):

- ``loso``: leave one speaker out; one fold per speaker (default for CASIA and Emo-DB).
- ``ravdess5``: RAVDESS actors in blocks of four, 01-04, 05-08, ..., 17-20 (5 folds; default for RAVDESS).
  Actors 21-24, where present, form a sixth block.
- ``loso-session``: IEMOCAP leave one session (two speakers) out; 5 folds (default for IEMOCAP).
- ``speaker-kfold``: ``k`` speaker-disjoint groups, speakers dealt out gender by gender after a seeded
  shuffle so each group holds a similar gender mix (default for the other corpora).
- ``random``: a seeded stratified ``k``-fold over utterances that ignores speakers, so test speakers are also
  heard in training. Only when named explicitly, to compare with papers that report it.

Validation, for early stopping and model selection, is carved from each fold's training part, never from its
test part. With at least ``MIN_VAL_SPEAKERS`` training speakers, whole speakers (about ``VAL_FRACTION``,
apportioned between genders where known, seeded) are held out and validation is speaker-independent.
With fewer (e.g. CASIA's 3 training speakers per fold) and for ``random``, validation is a seeded
stratified ``VAL_FRACTION`` of training utterances: it then shares speakers with training, i.e. it is
speaker-dependent and flatters the model; :attr:`Fold.val_by_speaker` records which case applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edge_ser.errors import EdgeSERError

from .corpora import Corpus

PROTOCOLS = ("loso", "ravdess5", "loso-session", "speaker-kfold", "random")
DEFAULT_PROTOCOLS = {"casia": "loso", "emodb": "loso", "ravdess": "ravdess5", "iemocap": "loso-session"}
VAL_FRACTION = 0.15
MIN_VAL_SPEAKERS = 6

_SESSION = re.compile(r"^(Ses\d{2})[FM]$")
_GENDER_ORDER = {"female": 0, "male": 1}


class ProtocolError(EdgeSERError, ValueError):
    """Folds cannot be made: unknown protocol, or the corpus lacks what the protocol needs."""


@dataclass(frozen=True)
class Fold:
    """One train/validation/test split as sorted indices into ``corpus.utterances``.

    ``val_by_speaker`` is True when validation holds whole speakers absent from train and test.
    """

    name: str
    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]
    val_by_speaker: bool = True


def default_protocol(corpus_name: str) -> str:
    """The usual speaker-independent protocol for a corpus: see ``DEFAULT_PROTOCOLS``, else ``speaker-kfold``."""
    return DEFAULT_PROTOCOLS.get(corpus_name, "speaker-kfold")


def make_folds(corpus: Corpus, protocol: str = "default", seed: int = 0, *, k: int = 5) -> list[Fold]:
    """Folds of ``protocol`` (``"default"``: the corpus' usual one); ``k`` applies to speaker-kfold and random.

    The same corpus, protocol and seed always give the same folds; each fold draws from its own seeded
    generator, so its validation split does not depend on the other folds.
    """
    name = default_protocol(corpus.name) if protocol == "default" else protocol
    if name not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {protocol!r}; known: default, {', '.join(PROTOCOLS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ProtocolError(f"seed must be a non-negative int, got {seed!r}")
    if not corpus.utterances:
        raise ProtocolError(f"corpus {corpus.name!r} has no utterances")
    labels = np.unique([u.emotion for u in corpus.utterances], return_inverse=True)[1].ravel()
    if name == "random":
        return _random_folds(labels, seed, k)
    speakers = np.array([u.speaker for u in corpus.utterances])
    if not all(speakers):
        raise ProtocolError(f"{name} needs a speaker for every utterance; without speakers use protocol='random'")
    genders = _speaker_genders(corpus)
    groups = _test_groups(name, speakers, genders, seed, k)
    if len(groups) < 2:
        raise ProtocolError(f"{name} needs at least 2 speakers (or sessions), corpus {corpus.name!r} has 1")
    folds = []
    for number, (fold_name, in_test) in enumerate(groups):
        rng = np.random.default_rng([seed, number])
        rest = np.flatnonzero(~in_test)
        train, val, by_speaker = _carve_val(rest, speakers, genders, labels, rng)
        folds.append(Fold(fold_name, _tuple(train), _tuple(val), _tuple(np.flatnonzero(in_test)), by_speaker))
    return folds


def _tuple(indices: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.sort(indices))


def _speaker_genders(corpus: Corpus) -> dict[str, str | None]:
    """Each speaker's gender; None where unknown or inconsistent across its utterances."""
    seen: dict[str, set[str | None]] = {}
    for u in corpus.utterances:
        seen.setdefault(u.speaker, set()).add(u.gender)
    return {s: next(iter(g)) if len(g) == 1 else None for s, g in seen.items()}


def _test_groups(
    name: str, speakers: np.ndarray, genders: dict[str, str | None], seed: int, k: int
) -> list[tuple[str, np.ndarray]]:
    """``(fold name, test mask)`` per fold of a speaker-independent protocol."""
    unique = np.unique(speakers)
    if name == "loso":
        return [(str(s), speakers == s) for s in unique]
    if name == "ravdess5":
        if not all(s.isdigit() and int(s) > 0 for s in unique):
            raise ProtocolError("ravdess5 needs numeric actor ids 01, 02, ... as speakers")
        block = (speakers.astype(int) - 1) // 4
        return [(f"actors{4 * b + 1:02d}-{4 * b + 4:02d}", block == b) for b in np.unique(block)]
    if name == "loso-session":
        matches = [_SESSION.match(s) for s in speakers]
        if not all(matches):
            raise ProtocolError("loso-session needs IEMOCAP speakers like 'Ses01F'")
        sessions = np.array([m.group(1) for m in matches])
        return [(str(s), sessions == s) for s in np.unique(sessions)]
    if k < 2:
        raise ProtocolError(f"speaker-kfold needs k >= 2, got {k}")
    shuffled = np.random.default_rng([seed, 2**31]).permutation(unique)
    dealt = sorted(shuffled, key=lambda s: _GENDER_ORDER.get(genders[s], 2))
    group_of = {s: i % min(k, len(unique)) for i, s in enumerate(dealt)}
    group = np.array([group_of[s] for s in speakers])
    return [(f"group{g + 1}", group == g) for g in np.unique(group)]


def _apportion(counts: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Split ``total`` across categories in proportion to ``counts`` (largest remainder, ties seeded)."""
    n = int(counts.sum())
    quotas, remainders = np.divmod(counts * total, n)
    leftover = total - int(quotas.sum())
    order = np.lexsort((rng.random(len(counts)), -remainders))
    quotas[order[:leftover]] += 1
    return quotas


def _val_size(n: int) -> int:
    """About ``VAL_FRACTION`` of ``n``, at least 1 when there are 2 or more to choose from."""
    return max(int(np.floor(VAL_FRACTION * n + 0.5)), 1 if n >= 2 else 0)


def _stratified_mask(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A seeded, label-stratified selection of about ``VAL_FRACTION`` of the items, as a boolean mask."""
    quotas = _apportion(np.bincount(labels), _val_size(len(labels)), rng)
    order = np.lexsort((rng.random(len(labels)), labels))
    sorted_labels = labels[order]
    rank = np.arange(len(labels)) - np.searchsorted(sorted_labels, sorted_labels)
    mask = np.zeros(len(labels), dtype=bool)
    mask[order] = rank < quotas[sorted_labels]
    return mask


def _carve_val(
    rest: np.ndarray,
    speakers: np.ndarray,
    genders: dict[str, str | None],
    labels: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Split a fold's training part ``rest`` into ``(train, val, val_by_speaker)``."""
    pool = np.unique(speakers[rest])
    if len(pool) >= MIN_VAL_SPEAKERS:
        kinds = np.array([_GENDER_ORDER.get(genders[s], 2) for s in pool])
        quotas = _apportion(np.bincount(kinds, minlength=3), _val_size(len(pool)), rng)
        chosen = [s for kind in range(3) for s in rng.permutation(pool[kinds == kind])[: quotas[kind]]]
        in_val = np.isin(speakers[rest], chosen)
        return rest[~in_val], rest[in_val], True
    in_val = _stratified_mask(np.unique(labels[rest], return_inverse=True)[1].ravel(), rng)
    return rest[~in_val], rest[in_val], False


def _random_folds(labels: np.ndarray, seed: int, k: int) -> list[Fold]:
    """Stratified ``k``-fold over utterances, ignoring speakers; validation is a stratified share of train."""
    if not 2 <= k <= len(labels):
        raise ProtocolError(f"random needs 2 <= k <= {len(labels)} utterances, got k={k}")
    order = np.lexsort((np.random.default_rng([seed, 2**31]).random(len(labels)), labels))
    fold_of = np.empty(len(labels), dtype=int)
    fold_of[order] = np.arange(len(labels)) % k
    folds = []
    for number in range(k):
        rest = np.flatnonzero(fold_of != number)
        rng = np.random.default_rng([seed, number])
        in_val = _stratified_mask(np.unique(labels[rest], return_inverse=True)[1].ravel(), rng)
        test = np.flatnonzero(fold_of == number)
        folds.append(Fold(f"fold{number + 1}", _tuple(rest[~in_val]), _tuple(rest[in_val]), _tuple(test), False))
    return folds
