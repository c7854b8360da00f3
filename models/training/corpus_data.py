"""A corpus made ready for training: its cached model inputs, evaluation windows and (for waveform
augmentation) waveforms, and per-speaker normalization statistics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_ser.frontend import FrontEnd, Normalization

from ..data.corpora import Corpus
from ..data.features import FeatureTable, WindowTable, fit_normalization, load_features, load_windows
from .config import TrainConfig


@dataclass
class CorpusData:
    """A corpus with its cached model inputs, evaluation windows and, if needed, waveforms; ``transfer``: other
    corpora's inputs (and waveforms) that distillation adds as a transfer set (see :mod:`models.training.distill`)."""

    corpus: Corpus
    inputs: FeatureTable
    windows: WindowTable | None
    waves: FeatureTable | None
    transfer: tuple[CorpusData, ...] = ()


def samples(seconds: float, rate: int) -> int:
    """``seconds`` as a number of samples, rounded as the Recognizer converts the contract's window."""
    return round(seconds * rate)


def prepare_data(
    corpus: Corpus,
    frontend: FrontEnd,
    cfg: TrainConfig,
    cache_dir: str | Path | None = None,
    transfer: Sequence[Corpus] = (),
) -> CorpusData:
    """Load (or compute and cache) everything training and evaluation read from the corpus, and the training
    inputs of the ``transfer`` corpora."""
    inputs = load_features(corpus, frontend, cache_dir, cfg.progress)
    rate = frontend.sample_rate
    windows = load_windows(
        corpus, inputs, samples(cfg.window_seconds, rate), samples(cfg.hop_seconds, rate), cfg.progress
    )
    waves = None
    if cfg.augment.on_waveform and frontend.kind != "waveform":
        waves = load_features(corpus, FrontEnd(kind="waveform", sample_rate=rate), cache_dir, cfg.progress)
    others = tuple(
        CorpusData(
            other,
            load_features(other, frontend, cache_dir, cfg.progress),
            None,
            None if waves is None else load_features(other, waves.frontend, cache_dir, cfg.progress),
        )
        for other in transfer
    )
    return CorpusData(corpus, inputs, windows, waves, others)


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
