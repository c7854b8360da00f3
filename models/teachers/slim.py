"""Slimmer Whisper encoders for the base tier: fewer feed-forward units and fewer tokens.

- **Feed-forward pruning**: each block keeps the ``fraction`` of its ``fc1 -> GELU -> fc2`` hidden units with
  the largest importance ``E|h_j| * ||fc2[:, j]||`` (how much unit ``j`` moves the block's output on average);
  the pruned units' mean contribution ``fc2[:, j] E[h_j]`` is folded into ``fc2``'s bias. The statistics come
  from audio of *other* corpora than the one the head is trained and evaluated on (:data:`IMPORTANCE_CORPORA`
  minus the recipe's own), so no test speaker of any fold can leak into which units survive.
- **Token pooling** (:func:`pool_pairs`): after the stem (``0``) or after block ``k``, neighbouring frames are
  averaged in pairs, so every later block runs on half the tokens (a quarter of the attention scores).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

IMPORTANCE_CORPORA = ("ravdess", "emodb")  # never CASIA: its 4 speakers are every chinese fold's test speakers
IMPORTANCE_CLIPS = 200  # per corpus, evenly spaced over its sorted utterances


def pool_pairs(x: torch.Tensor) -> torch.Tensor:
    """``(batch, frames, d)`` -> ``(batch, frames // 2, d)``: the mean of frames ``2i`` and ``2i + 1`` (an odd last
    frame is dropped)."""
    n = x.shape[1] // 2
    return x[:, : 2 * n].reshape(x.shape[0], n, 2, x.shape[2]).mean(dim=2)


def ffn_statistics(
    layers: Sequence[nn.Module], run: callable, waves: Iterable[np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer, ``(E|h|, E[h])`` of the activated feed-forward hidden units ``h`` over every token of ``waves``;
    ``run(wave)`` passes one ``(1, samples)`` tensor through the model holding ``layers``."""
    sums = [[0.0, 0.0, 0] for _ in layers]

    def hook(i):
        def pre(_module, args):
            h = args[0].detach().reshape(-1, args[0].shape[-1]).double()
            sums[i][0] = sums[i][0] + h.abs().sum(0)
            sums[i][1] = sums[i][1] + h.sum(0)
            sums[i][2] += h.shape[0]

        return pre

    handles = [layer.fc2.register_forward_pre_hook(hook(i)) for i, layer in enumerate(layers)]
    try:
        with torch.inference_mode():
            for w in waves:
                run(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))[None])
    finally:
        for h in handles:
            h.remove()
    if not sums[0][2]:
        raise ValueError("no audio to compute feed-forward statistics on")
    return [((a / n).numpy(), (m / n).numpy()) for a, m, n in sums]


def kept_units(layer: nn.Module, mean_abs: np.ndarray, fraction: float) -> np.ndarray:
    """Sorted indices of the ``fraction`` of ``layer``'s hidden units with the largest ``E|h_j| ||fc2[:, j]||``."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction of feed-forward units to keep must be in (0, 1], got {fraction}")
    score = mean_abs * layer.fc2.weight.detach().double().norm(dim=0).numpy()
    keep = max(1, int(round(fraction * len(score))))
    return np.sort(np.argsort(-score, kind="stable")[:keep])


def prune_ffn(layer: nn.Module, keep: np.ndarray, mean: np.ndarray) -> None:
    """Keep only hidden units ``keep`` of ``layer``'s feed-forward (in place); the others' mean output
    ``fc2[:, j] mean[j]`` goes into ``fc2``'s bias. Keeping every unit leaves the layer unchanged."""
    keep = np.asarray(keep, dtype=np.int64)
    fc1, fc2 = layer.fc1, layer.fc2
    dropped = np.setdiff1d(np.arange(fc1.out_features), keep)
    idx = torch.from_numpy(keep)
    new1 = nn.Linear(fc1.in_features, len(keep), bias=fc1.bias is not None)
    new2 = nn.Linear(len(keep), fc2.out_features, bias=True)
    with torch.no_grad():
        new1.weight.copy_(fc1.weight[idx])
        if fc1.bias is not None:
            new1.bias.copy_(fc1.bias[idx])
        new2.weight.copy_(fc2.weight[:, idx])
        bias = fc2.bias.detach().clone() if fc2.bias is not None else torch.zeros(fc2.out_features)
        if len(dropped):
            w = fc2.weight.detach().double()[:, torch.from_numpy(dropped)]
            bias += (w @ torch.from_numpy(np.asarray(mean, np.float64)[dropped])).float()
        new2.bias.copy_(bias)
    layer.fc1, layer.fc2 = new1, new2


def prune_layers(layers: Sequence[nn.Module], statistics: Sequence[tuple[np.ndarray, np.ndarray]], fraction: float):
    """Prune every layer's feed-forward to ``fraction`` of its units by :func:`kept_units` (in place)."""
    for layer, (mean_abs, mean) in zip(layers, statistics, strict=True):
        prune_ffn(layer, kept_units(layer, mean_abs, fraction), mean)


def importance_files(data_root: str | Path, target: str) -> list[str]:
    """The audio files the importance statistics read: :data:`IMPORTANCE_CLIPS` evenly spaced utterances of each
    corpus of :data:`IMPORTANCE_CORPORA` except ``target`` (the corpus the head is evaluated on)."""
    from models.data.corpora import load_corpus

    files = []
    for name in IMPORTANCE_CORPORA:
        if name == target:
            continue
        corpus = load_corpus(name, str(Path(data_root) / name))
        step = max(1, len(corpus.utterances) // IMPORTANCE_CLIPS)
        files += [str(Path(corpus.root) / u.path) for u in corpus.utterances[::step][:IMPORTANCE_CLIPS]]
    if not files:
        raise ValueError(f"no corpus other than {target!r} to compute feed-forward importance on")
    return files


def importance_statistics(
    module: nn.Module, data_root: str | Path, target: str, seconds: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`ffn_statistics` of ``module`` (a :class:`models.teachers.base_tier.BaseTier`: its ``layers`` and
    ``embed``) on :func:`importance_files` (never ``target``'s audio), each clip cut to ``seconds``; unreadable
    files are skipped."""
    from edge_ser.audio import load_audio
    from edge_ser.errors import AudioError

    def waves():
        for f in importance_files(data_root, target):
            try:
                yield load_audio(f, target_rate=16000)[0][: int(seconds * 16000)]
            except AudioError:
                continue

    return ffn_statistics(list(module.layers), module.embed, waves())
