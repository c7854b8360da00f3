"""Front-end output for every utterance of a corpus, computed once and cached on disk.

Features come from :class:`edge_ser.frontend.FrontEnd` -- the runtime's own implementation --
on audio read by :func:`edge_ser.audio.load_audio` at the front-end's rate, so training sees
exactly what the runtime computes. One ``.npz`` per (corpus, front-end) holds them all,
concatenated, under ``<cache_dir>/<corpus>/``; its name hashes the front-end parameters and
the corpus file list (paths and sizes), so a changed corpus or front-end never reads stale
features. A second file per analysis window/hop holds the per-window inputs the runtime
would compute for utterances longer than one window, for evaluation.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edge_ser import windows as window_plan
from edge_ser.audio import load_audio
from edge_ser.frontend import FrontEnd, Normalization

from .augment import apply_view

CACHE_VERSION = 1
DEFAULT_CACHE_DIR = Path("~/.cache/edge-ser/features")


def utterance_path(corpus: Any, utterance: Any) -> Path:
    """An utterance's audio file (its ``path`` taken relative to the corpus root unless absolute)."""
    return Path(corpus.root) / utterance.path


def _key(corpus: Any, frontend: FrontEnd, view: str = "clean") -> str:
    """Hash of everything the cached features depend on; paths relative to the root, so a moved corpus still hits."""
    root, files = Path(corpus.root), []
    for u in corpus.utterances:
        path = utterance_path(corpus, u)
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        files.append([name, path.stat().st_size if path.exists() else -1])
    payload = {"version": CACHE_VERSION, "corpus": corpus.name, "frontend": frontend.to_dict(), "files": files}
    if view != "clean":  # the clean key is what it was before views existed, so those caches still hit
        payload["view"] = view
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _save(path: Path, **arrays: np.ndarray) -> None:
    """Write an ``.npz`` atomically, so an interrupted run never leaves a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _concat(parts: list[np.ndarray], frontend: FrontEnd) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(p) for p in parts])
    width = () if frontend.kind == "waveform" else (frontend.n_features,)
    data = np.concatenate(parts) if parts else np.zeros((0, *width), np.float32)
    return data.astype(np.float32, copy=False), offsets


@dataclass
class FeatureTable:
    """Front-end output of every corpus utterance: ``table[i]`` is utterance ``i``'s features.

    ``n_samples`` and ``peaks`` describe each utterance's signal at the front-end's rate
    (length and absolute peak); ``cached`` tells whether the table was read from disk.
    """

    frontend: FrontEnd
    data: np.ndarray
    offsets: np.ndarray
    n_samples: np.ndarray
    peaks: np.ndarray
    path: Path
    cached: bool

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.data[self.offsets[i] : self.offsets[i + 1]]


def load_features(
    corpus: Any,
    frontend: FrontEnd,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
    view: str = "clean",
) -> FeatureTable:
    """Features of every utterance of ``corpus``, from the cache or computed (and cached) now; ``view``: of that
    augmented copy of each clip (:func:`models.data.augment.apply_view`, seeded by the utterance's index)."""
    root = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR).expanduser()
    path = root / corpus.name / f"{frontend.kind}-{_key(corpus, frontend, view)}.npz"
    if path.exists():
        with np.load(path) as z:
            if len(z["offsets"]) == len(corpus.utterances) + 1:
                return FeatureTable(frontend, z["data"], z["offsets"], z["n_samples"], z["peaks"], path, True)
    parts, n_samples, peaks = [], [], []
    desc = f"{corpus.name} {frontend.kind}" + ("" if view == "clean" else f" {view}")
    for i, u in enumerate(tqdm(corpus.utterances, desc=desc, disable=not progress, leave=False)):
        signal, _ = load_audio(utterance_path(corpus, u), target_rate=frontend.sample_rate)
        signal = apply_view(signal, view, seed=i, sample_rate=frontend.sample_rate)
        parts.append(frontend(signal))
        n_samples.append(len(signal))
        peaks.append(float(np.abs(signal).max()))
    data, offsets = _concat(parts, frontend)
    n_samples_a, peaks_a = np.asarray(n_samples, np.int64), np.asarray(peaks, np.float32)
    _save(path, data=data, offsets=offsets, n_samples=n_samples_a, peaks=peaks_a)
    return FeatureTable(frontend, data, offsets, n_samples_a, peaks_a, path, False)


def concat_tables(parts: Sequence[tuple[FeatureTable, Sequence[int]]]) -> FeatureTable:
    """One table of the utterances ``rows`` of each ``(table, rows)`` part, in order (e.g. a corpus and the
    utterances of other corpora that join its training set); all parts share one front-end. The result
    keeps the first table's ``path`` (where its corpus' windows are cached) and is not itself cached."""
    first = parts[0][0]
    if any(t.frontend != first.frontend for t, _ in parts):
        raise ValueError("cannot concatenate feature tables of different front-ends")
    selected = [(t, np.asarray(rows, dtype=np.int64)) for t, rows in parts]
    data, offsets = _concat([t[int(i)] for t, rows in selected for i in rows], first.frontend)
    n_samples = np.concatenate([t.n_samples[rows] for t, rows in selected])
    peaks = np.concatenate([t.peaks[rows] for t, rows in selected])
    return FeatureTable(first.frontend, data, offsets, n_samples, peaks, first.path, False)


@dataclass
class WindowTable:
    """Per-window inputs of the utterances longer than one analysis window.

    Window ``j`` belongs to utterance ``owner[j]`` and has features ``table[j]``; ``peaks[j]``
    is the absolute peak of its samples (the runtime skips windows below its silence floor).
    Windows follow :func:`edge_ser.windows.plan`, in order.
    """

    data: np.ndarray
    offsets: np.ndarray
    owner: np.ndarray
    peaks: np.ndarray
    cached: bool

    def __getitem__(self, j: int) -> np.ndarray:
        return self.data[self.offsets[j] : self.offsets[j + 1]]


def load_windows(
    corpus: Any,
    table: FeatureTable,
    window: int,
    hop: int,
    progress: bool = False,
) -> WindowTable:
    """The runtime's analysis windows (``window``/``hop`` in samples) of every long utterance.

    Cached next to ``table``'s own cache file, whose name already fixes corpus and front-end.
    """
    frontend = table.frontend
    path = table.path.with_name(f"{table.path.stem}-w{window}-h{hop}.npz")
    if path.exists():
        with np.load(path) as z:
            return WindowTable(z["data"], z["offsets"], z["owner"], z["peaks"], True)
    parts, owner, peaks = [], [], []
    long = np.flatnonzero(table.n_samples > window)
    for i in tqdm(long, desc=f"{corpus.name} windows", disable=not progress, leave=False):
        signal, _ = load_audio(utterance_path(corpus, corpus.utterances[i]), target_rate=frontend.sample_rate)
        for start, end in window_plan.plan(len(signal), window, hop):
            chunk = signal[start:end]
            parts.append(frontend(chunk))
            owner.append(i)
            peaks.append(float(np.abs(chunk).max()))
    data, offsets = _concat(parts, frontend)
    owner_a, peaks_a = np.asarray(owner, np.int64), np.asarray(peaks, np.float32)
    _save(path, data=data, offsets=offsets, owner=owner_a, peaks=peaks_a)
    return WindowTable(data, offsets, owner_a, peaks_a, False)


Norms = Normalization | Mapping[int, Normalization]  # one for all utterances, or one per utterance index


def normalization_for(norms: Norms, index: int) -> Normalization:
    """The statistics that normalize utterance ``index`` (per-speaker training maps index -> statistics)."""
    return norms[index] if isinstance(norms, Mapping) else norms


def fit_normalization(table: FeatureTable, indices: np.ndarray | list[int]) -> Normalization:
    """Global per-feature mean/std over all rows of the utterances ``indices`` (a training set).

    The statistics of :meth:`edge_ser.frontend.Normalization.fit`, accumulated utterance by
    utterance (around the first one's mean, for precision) so that even a corpus of raw
    waveforms needs no float64 copy of itself.
    """
    total, sums, squares, shift = 0, 0.0, 0.0, None
    for i in indices:
        rows = table[int(i)].reshape(len(table[int(i)]), -1).astype(np.float64)
        if shift is None:
            shift = rows.mean(axis=0)
        d = rows - shift
        sums = sums + d.sum(axis=0)
        squares = squares + np.square(d).sum(axis=0)
        total += len(rows)
    if not total:
        raise ValueError("cannot fit normalization on no training data")
    mean = sums / total
    std = np.sqrt(np.maximum(squares / total - mean**2, 0.0))
    return Normalization("global", tuple((shift + mean).tolist()), tuple(np.maximum(std, 1e-5).tolist()))
