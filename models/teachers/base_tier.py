"""The "base" tier: a Whisper encoder cut after its best block, mean+std pooling and a linear emotion head.

The head is a standardized multinomial logistic regression on the pooled features (what
``benchmarks/teacher_probe.py`` evaluates), folded into one ``Linear`` layer, so the exported graph is
waveform in, logits out: Whisper's log-mel, conv stem, ``blocks`` transformer blocks, pooling, head. The
positional table is cut to the analysis window, the only input length the runtime ever sends.

With an ``adapted`` head (``(coef, intercept)`` of a logistic regression trained on per-speaker normalized
embeddings) the module also returns the adapted logits ``head((embedding - shift) / scale)`` and the pooled
embedding itself: ``embedding_shift``/``embedding_scale`` are buffers holding the global statistics, which the
export turns into optional graph inputs a speaker profile overrides (``edge_ser.contract.EmbeddingAdaptation``).

``pool_after`` (``0``: the stem, ``k``: block ``k``) averages neighbouring frames in pairs there
(:func:`models.teachers.slim.pool_pairs`): the later blocks run on half the tokens.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .slim import pool_pairs
from .whisper import HOP, WhisperTeacher


class BaseTier(nn.Module):
    """``(batch, samples)`` at 16 kHz -> emotion logits ``(batch, classes)``; with an ``adapted`` head
    ``(logits, adapted logits, embedding)``."""

    def __init__(
        self,
        teacher: WhisperTeacher,
        block: int,
        mean: np.ndarray,
        std: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        max_seconds: float,
        adapted: tuple[np.ndarray, np.ndarray] | None = None,
        pool_after: int | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= block <= teacher.blocks:
            raise ValueError(f"block {block} outside 0..{teacher.blocks}")
        if pool_after is not None and not 0 <= pool_after < block:
            raise ValueError(f"token pooling after {pool_after} must come before the last block {block}")
        self.pool_after = pool_after
        self.logmel = teacher.logmel
        enc = teacher.encoder
        frames = int(np.ceil(max_seconds * 16000 / HOP / 2)) + 1
        self.conv1, self.conv2 = enc.conv1, enc.conv2
        self.register_buffer("positions", enc.embed_positions.weight[:frames].detach().clone())
        self.layers = nn.ModuleList(list(enc.layers)[:block])
        head = nn.Linear(coef.shape[1], coef.shape[0])
        # Fold the standardization into the head: W (x - m) / s + b = (W / s) x + (b - W m / s).
        w = coef / std[None, :]
        head.weight.data = torch.from_numpy(w.astype(np.float32))
        head.bias.data = torch.from_numpy((intercept - w @ mean).astype(np.float32))
        self.head = head
        self.adapted = adapted is not None
        if adapted is not None:
            coef_a, intercept_a = adapted
            self.register_buffer("embedding_shift", torch.from_numpy(np.asarray(mean, dtype=np.float32)))
            self.register_buffer("embedding_scale", torch.from_numpy(np.asarray(std, dtype=np.float32)))
            self.adapt_head = nn.Linear(coef_a.shape[1], coef_a.shape[0])
            self.adapt_head.weight.data = torch.from_numpy(np.asarray(coef_a, dtype=np.float32))
            self.adapt_head.bias.data = torch.from_numpy(np.asarray(intercept_a, dtype=np.float32))

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        x = nn.functional.gelu(self.conv1(self.logmel(wave)))
        x = nn.functional.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        if self.pool_after == 0:
            x = pool_pairs(x)
        for k, layer in enumerate(self.layers, 1):
            x = layer(x, attention_mask=None)
            x = x[0] if isinstance(x, tuple) else x
            if self.pool_after == k:
                x = pool_pairs(x)
        mean = x.mean(dim=1)
        std = torch.sqrt(((x - mean[:, None]) ** 2).mean(dim=1))
        return torch.cat([mean, std], dim=1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e = self.embed(wave)
        if not self.adapted:
            return self.head(e)
        return self.head(e), self.adapt_head((e - self.embedding_shift) / self.embedding_scale), e


def trunk(teacher: WhisperTeacher, block: int, pool_after: int | None = None) -> BaseTier:
    """The encoder part of a base-tier model (a placeholder head): its ``embed`` is the emotion head's input."""
    d = 2 * teacher.spec.d_model
    zeros = np.zeros(d)
    return BaseTier(teacher, block, zeros, np.ones(d), np.zeros((1, d)), np.zeros(1), 30.0, pool_after=pool_after)


def embed_waves(module: BaseTier, waves) -> np.ndarray:
    """``(n, features)`` float64: ``module.embed`` of each 16 kHz wave, one per call; NaN rows for ``None``."""
    rows = []
    with torch.inference_mode():
        for w in waves:
            x = None if w is None else torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))[None]
            rows.append(None if x is None else module.eval().embed(x)[0].double().numpy())
    width = next(len(r) for r in rows if r is not None)
    return np.stack([np.full(width, np.nan) if r is None else r for r in rows])
