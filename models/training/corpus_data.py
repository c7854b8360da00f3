"""A corpus made ready for training: its cached model inputs, evaluation windows and (for waveform
augmentation) waveforms, and per-speaker normalization statistics; with extra corpora (``--extra-corpus``),
their relabelled utterances appended as training data (:mod:`models.data.label_map`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edge_ser.frontend import FrontEnd, Normalization

from ..data import label_map
from ..data.corpora import Corpus
from ..data.features import (
    FeatureTable,
    WindowTable,
    concat_tables,
    fit_normalization,
    load_features,
    load_windows,
)
from .config import TrainConfig


@dataclass
class CorpusData:
    """A corpus with its cached model inputs, evaluation windows and, if needed, waveforms; ``transfer``: other
    corpora's inputs (and waveforms) that distillation adds as a transfer set (see :mod:`models.training.distill`).

    ``extra_train``: indices of the utterances that extra corpora added after the corpus' own (relabelled to its
    classes, speakers prefixed by their corpus, see :func:`models.data.label_map.relabel`); they only ever train,
    never validate or test. ``corpus`` then holds the corpus' own utterances first, the extra ones after them.
    ``extra_sources``: where those come from, in order: each extra corpus as loaded (its own name, root and
    labels, which its caches are keyed on, e.g. the teacher's features) and the indices of its utterances kept.
    ``views``: per cached augmented view the pitch shifts read (``--pitch``), the table the training crops come
    from (``waves`` if there are any, else ``inputs``) computed on that copy of every clip.
    """

    corpus: Corpus
    inputs: FeatureTable
    windows: WindowTable | None
    waves: FeatureTable | None
    transfer: tuple[CorpusData, ...] = ()
    extra_train: tuple[int, ...] = ()
    extra_sources: tuple[tuple[Corpus, tuple[int, ...]], ...] = ()
    views: dict[str, FeatureTable] = field(default_factory=dict)


def voices(data: CorpusData) -> list[tuple[str, str]]:
    """Each utterance's ``(corpus, speaker)``: who speaks it, and on which corpus' recordings."""
    return [(u.corpus, u.speaker) for u in data.corpus.utterances]


def samples(seconds: float, rate: int) -> int:
    """``seconds`` as a number of samples, rounded as the Recognizer converts the contract's window."""
    return round(seconds * rate)


def prepare_data(
    corpus: Corpus,
    frontend: FrontEnd,
    cfg: TrainConfig,
    cache_dir: str | Path | None = None,
    transfer: Sequence[Corpus] = (),
    extra: Sequence[Corpus] = (),
) -> CorpusData:
    """Load (or compute and cache) everything training and evaluation read from the corpus, the training
    inputs of the ``transfer`` corpora, and the ``extra`` corpora's utterances as labelled training data."""
    inputs = load_features(corpus, frontend, cache_dir, cfg.progress)
    rate = frontend.sample_rate
    windows = load_windows(
        corpus, inputs, samples(cfg.window_seconds, rate), samples(cfg.hop_seconds, rate), cfg.progress
    )
    waves = None
    if cfg.augment.on_waveform and frontend.kind != "waveform":
        waves = load_features(corpus, FrontEnd(kind="waveform", sample_rate=rate), cache_dir, cfg.progress)
    crops = (inputs if waves is None else waves).frontend  # the table training crops come from

    def views(c: Corpus) -> dict[str, FeatureTable]:
        return {v: load_features(c, crops, cache_dir, cfg.progress, view=v) for v in cfg.augment.cached_views}

    others = tuple(
        CorpusData(
            other,
            load_features(other, frontend, cache_dir, cfg.progress),
            None,
            None if waves is None else load_features(other, waves.frontend, cache_dir, cfg.progress),
            views=views(other),
        )
        for other in transfer
    )
    data = CorpusData(corpus, inputs, windows, waves, others, views=views(corpus))
    return with_extra(data, extra, cache_dir, cfg.progress) if extra else data


def with_extra(
    data: CorpusData, extra: Sequence[Corpus], cache_dir: str | Path | None = None, progress: bool = False
) -> CorpusData:
    """``data`` with the utterances of the ``extra`` corpora that map onto its classes appended (inputs and
    waveforms from each corpus' own cache); the evaluation windows stay the corpus' own (extras never test)."""
    corpus, n_own = data.corpus, len(data.corpus.utterances)
    kept = [(other, label_map.relabel(other, corpus)) for other in extra]
    utterances = [*corpus.utterances, *(u for _, pairs in kept for _, u in pairs)]

    def joined(table: FeatureTable, view: str = "clean") -> FeatureTable:
        parts = [(table, range(n_own))]
        parts += [(load_features(o, table.frontend, cache_dir, progress, view), [i for i, _ in p]) for o, p in kept]
        return concat_tables(parts)

    return replace(
        data,
        corpus=replace(corpus, utterances=utterances),
        inputs=joined(data.inputs),
        waves=None if data.waves is None else joined(data.waves),
        views={view: joined(table, view) for view, table in data.views.items()},
        extra_train=tuple(range(n_own, len(utterances))),
        extra_sources=tuple((o, tuple(i for i, _ in p)) for o, p in kept),
    )


def speaker_normalization(
    data: CorpusData, train_idx: np.ndarray, val_idx: np.ndarray, test_idx: np.ndarray
) -> dict[int, Normalization]:
    """Per-speaker statistics for every utterance of a fold (``--normalization speaker``).

    Training and validation speakers use their own utterances outside the test part; a test
    speaker uses all of their test utterances -- the transductive upper bound of on-device
    adaptation (the runtime only ever has the utterances heard before; see ``SpeakerProfile``).
    """
    speakers = [u.speaker for u in data.corpus.utterances]
    out: dict[int, Normalization] = {}
    for part in (np.concatenate([train_idx, val_idx]), test_idx):
        groups: dict[str, list[int]] = {}
        for i in part:
            groups.setdefault(speakers[int(i)], []).append(int(i))
        for members in groups.values():
            stats = fit_normalization(data.inputs, members)
            out.update(dict.fromkeys(members, stats))
    return out
