"""How far voices move the log-mel features, against how far emotions do (docs/teacher.md, "Swapping voice offsets").

    python benchmarks/voice_offsets.py [--data-root ../shared/datasets] [--corpus casia ravdess emodb]

Per corpus, on the cached 10 ms 64-band log-mel standardized with the whole corpus' statistics: the RMS over
speakers and bands of each speaker's mean offset, and the RMS of each emotion's mean offset within a speaker.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edge_ser.frontend import FrontEnd
from models.data.corpora import load_corpus
from models.data.features import DEFAULT_CACHE_DIR, fit_normalization, load_features


def offsets(name: str, root: Path, cache_dir: Path) -> tuple[float, float]:
    """``name``'s (speaker offset RMS, within-speaker emotion offset RMS)."""
    corpus = load_corpus(name, root, check_audio=False)
    table = load_features(corpus, FrontEnd(kind="logmel", n_mels=64, window="hann"), cache_dir, False)
    norm = fit_normalization(table, range(len(table)))
    mean, std = np.asarray(norm.mean), np.asarray(norm.std)
    clips = np.stack([((table[i] - mean) / std).mean(axis=0) for i in range(len(table))])
    speakers = np.array([u.speaker for u in corpus.utterances])
    emotions = np.array([u.emotion for u in corpus.utterances])
    voice, emotion = [], []
    for s in np.unique(speakers):
        own = clips[speakers == s].mean(axis=0)
        voice.append(own)
        emotion += [
            clips[(speakers == s) & (emotions == e)].mean(axis=0) - own for e in np.unique(emotions[speakers == s])
        ]
    return float(np.sqrt(np.mean(np.square(voice)))), float(np.sqrt(np.mean(np.square(emotion))))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--corpus", nargs="+", default=["casia", "ravdess", "emodb"])
    parser.add_argument("--cache-dir", type=Path, default=Path(DEFAULT_CACHE_DIR))
    args = parser.parse_args(argv)
    print("| corpus | speakers' offsets (RMS) | emotions' offsets within a speaker (RMS) |\n|---|---:|---:|")
    for name in args.corpus:
        voice, emotion = offsets(name, args.data_root / name, args.cache_dir)
        print(f"| {name} | {voice:.2f} | {emotion:.2f} |")


if __name__ == "__main__":
    main()
