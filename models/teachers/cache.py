"""Teacher features per corpus, computed once and cached: ``python -m models.teachers.cache``.

For every utterance (and, optionally, for deterministic augmented views of it) the teacher runs on the
whole clip, unpadded, and each hidden state (conv stem and every block) is pooled over time into its mean
and standard deviation. The cache lives under ``<cache_dir>/<encoder>-<sha256[:12]>/<corpus>-<view>/``
in shards of ``SHARD`` utterances, each written atomically, so an interrupted run resumes at the first
missing shard. A shard's name hashes its file list (paths and sizes), so a changed corpus is recomputed.
Files that cannot be read are reported and skipped (their rows stay NaN and ``ok`` false).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from edge_ser.audio import load_audio
from edge_ser.errors import EdgeSERError

from ..data.augment import apply_view, check_view
from ..data.corpora import Corpus, load_corpus
from ..data.features import utterance_path
from .whisper import MAX_SECONDS, SAMPLE_RATE, WhisperTeacher, get_spec, load_encoder

DEFAULT_TEACHER_CACHE = Path("~/.cache/edge-ser/teacher")
SHARD = 200


@dataclass
class TeacherFeatures:
    """Pooled features ``(utterances, states, 2 * d_model)`` (mean then std over time), row ``i`` for
    ``corpus.utterances[i]``; ``ok[i]`` is false for a file that could not be read."""

    encoder: str
    sha256: str
    view: str
    pooled: np.ndarray
    ok: np.ndarray

    @property
    def states(self) -> int:
        return self.pooled.shape[1]

    def block(self, k: int) -> np.ndarray:
        """Pooled features of hidden state ``k`` (0: conv stem, k: block k) as float32."""
        return self.pooled[:, k].astype(np.float32)


def pool(states: Sequence[torch.Tensor]) -> np.ndarray:
    """Mean and std over time of each ``(1, frames, d)`` state: ``(states, 2d)`` float16."""
    rows = [torch.cat([s[0].mean(0), s[0].std(0, unbiased=False)]) for s in states]
    return torch.stack(rows).numpy().astype(np.float16)


def _names(corpus: Corpus) -> list[tuple[str, int]]:
    root = Path(corpus.root)
    out = []
    for u in corpus.utterances:
        p = utterance_path(corpus, u)
        name = p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p)
        out.append((name, p.stat().st_size if p.exists() else -1))
    return out


def _save(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def teacher_features(
    corpus: Corpus,
    encoder: str = "whisper-base",
    view: str = "clean",
    cache_dir: str | os.PathLike | None = None,
    compute: bool = True,
    progress: bool = True,
) -> TeacherFeatures:
    """Pooled teacher features of every utterance of ``corpus`` under ``view``, from the cache or computed.

    With ``compute=False`` a missing shard raises :class:`EdgeSERError` instead of running the teacher.
    """
    spec = get_spec(encoder)
    folder = (
        Path(cache_dir or DEFAULT_TEACHER_CACHE).expanduser()
        / f"{encoder}-{spec.sha256[:12]}"
        / f"{corpus.name}-{view}"
    )
    names = _names(corpus)
    model: WhisperTeacher | None = None
    pooled, ok = [], []
    starts = range(0, len(names), SHARD)
    bar = tqdm(total=len(names), desc=f"{encoder} {corpus.name} {view}", disable=not progress, unit="utt")
    for start in starts:
        part = names[start : start + SHARD]
        key = hashlib.sha1(json.dumps([encoder, view, part]).encode()).hexdigest()[:12]
        path = folder / f"shard{start // SHARD:04d}-{key}.npz"
        if path.exists():
            with np.load(path) as z:
                pooled.append(z["pooled"])
                ok.append(z["ok"])
            bar.update(len(part))
            continue
        if not compute:
            raise EdgeSERError(f"teacher features {path} are not cached; run python -m models.teachers.cache")
        if model is None:
            model = load_encoder(encoder)
        rows, good = [], []
        for i, (name, _) in enumerate(part):
            u = corpus.utterances[start + i]
            try:
                x, _ = load_audio(str(utterance_path(corpus, u)), target_rate=SAMPLE_RATE)
                x = apply_view(x, view, seed=start + i, sample_rate=SAMPLE_RATE)[: int(MAX_SECONDS * SAMPLE_RATE)]
                if len(x) < 2 * 320:
                    raise EdgeSERError(f"{name}: shorter than two encoder frames")
                with torch.inference_mode():
                    rows.append(pool(model(torch.from_numpy(np.ascontiguousarray(x))[None])))
                good.append(True)
            except EdgeSERError as exc:
                print(f"skipped {name}: {exc}", file=sys.stderr)
                rows.append(None)
                good.append(False)
            bar.update(1)
        width = next((r.shape for r in rows if r is not None), (spec.layers + 1, 2 * spec.d_model))
        block = np.stack([r if r is not None else np.full(width, np.nan, np.float16) for r in rows])
        _save(path, pooled=block, ok=np.array(good))
        pooled.append(block)
        ok.append(np.array(good))
    bar.close()
    return TeacherFeatures(encoder, spec.sha256, view, np.concatenate(pooled), np.concatenate(ok))


@dataclass
class TeacherFrames:
    """Frame-level hidden states of every utterance: ``frames`` ``(total frames, states, d_model)`` float16 (or
    ``(total frames, d_model)``: one state), utterance ``i`` at rows ``offsets[i]:offsets[i + 1]`` (none for a
    file that could not be read)."""

    frames: np.ndarray
    offsets: np.ndarray
    ok: np.ndarray

    def __getitem__(self, i: int) -> np.ndarray:
        return self.frames[self.offsets[i] : self.offsets[i + 1]]


def teacher_frames(
    corpus: Corpus,
    encoder: str = "whisper-base",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    block: int | None = None,
) -> TeacherFrames:
    """Every hidden state of every frame (50 per second) of the clean clips, from the cache or computed; with
    ``block`` only that state (0: conv stem, k: block k), read shard by shard (a seventh of the memory for
    whisper-base)."""
    spec = get_spec(encoder)
    folder = Path(cache_dir or DEFAULT_TEACHER_CACHE).expanduser() / f"{encoder}-{spec.sha256[:12]}"
    folder = folder / f"{corpus.name}-frames"
    names = _names(corpus)
    model: WhisperTeacher | None = None
    parts, lengths, ok = [], [], []
    bar = tqdm(total=len(names), desc=f"{encoder} {corpus.name} frames", disable=not progress, unit="utt")
    for start in range(0, len(names), SHARD):
        part = names[start : start + SHARD]
        key = hashlib.sha1(json.dumps([encoder, "frames", part]).encode()).hexdigest()[:12]
        path = folder / f"shard{start // SHARD:04d}-{key}.npz"
        if not path.exists():
            if model is None:
                model = load_encoder(encoder)
            rows, n, good = [], [], []
            for i, (name, _) in enumerate(part):
                u = corpus.utterances[start + i]
                try:
                    x, _ = load_audio(str(utterance_path(corpus, u)), target_rate=SAMPLE_RATE)
                    x = x[: int(MAX_SECONDS * SAMPLE_RATE)]
                    if len(x) < 2 * 320:
                        raise EdgeSERError(f"{name}: shorter than two encoder frames")
                    with torch.inference_mode():
                        states = model(torch.from_numpy(np.ascontiguousarray(x))[None])
                    rows.append(torch.stack([s[0] for s in states], dim=1).numpy().astype(np.float16))
                    good.append(True)
                except EdgeSERError as exc:
                    print(f"skipped {name}: {exc}", file=sys.stderr)
                    rows.append(np.zeros((0, spec.layers + 1, spec.d_model), np.float16))
                    good.append(False)
                n.append(len(rows[-1]))
                bar.update(1)
            _save(path, frames=np.concatenate(rows), lengths=np.array(n), ok=np.array(good))
        else:
            bar.update(len(part))
        with np.load(path) as z:
            parts.append(z["frames"] if block is None else np.ascontiguousarray(z["frames"][:, block]))
            lengths.append(z["lengths"])
            ok.append(z["ok"])
    bar.close()
    lengths_all = np.concatenate(lengths)
    offsets = np.zeros(len(lengths_all) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths_all)
    return TeacherFrames(np.concatenate(parts), offsets, np.concatenate(ok))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.teachers.cache", description=__doc__.split("\n")[0])
    p.add_argument("--encoder", nargs="+", default=["whisper-base"])
    p.add_argument("--corpus", nargs="+", required=True, help="NAME=ROOT, e.g. ravdess=../shared/datasets/ravdess")
    p.add_argument(
        "--view", nargs="+", default=["clean"], type=check_view, help="clean, speedF, noiseS or pitchS, e.g. pitch-3"
    )
    p.add_argument("--frames", action="store_true", help="also cache every frame's hidden states (clean view)")
    p.add_argument("--cache-dir", default=str(DEFAULT_TEACHER_CACHE))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    for item in args.corpus:
        name, _, root = item.partition("=")
        corpus = load_corpus(name, root)
        for encoder in args.encoder:
            for view in args.view:
                feats = teacher_features(corpus, encoder, view, args.cache_dir)
                print(f"{encoder} {name} {view}: {int(feats.ok.sum())}/{len(feats.ok)} utterances")
            if args.frames:
                frames = teacher_frames(corpus, encoder, args.cache_dir)
                print(f"{encoder} {name} frames: {len(frames.frames)} frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
