"""The "base" tier: a Whisper encoder cut after its best block, mean+std pooling and a linear emotion head.

The head is a standardized multinomial logistic regression on the pooled features (what
``benchmarks/teacher_probe.py`` evaluates), folded into one ``Linear`` layer, so the exported graph is
waveform in, logits out: Whisper's log-mel, conv stem, ``blocks`` transformer blocks, pooling, head. The
positional table is cut to the analysis window, the only input length the runtime ever sends.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .whisper import HOP, WhisperTeacher


class BaseTier(nn.Module):
    """``(batch, samples)`` at 16 kHz -> emotion logits ``(batch, classes)``."""

    def __init__(
        self,
        teacher: WhisperTeacher,
        block: int,
        mean: np.ndarray,
        std: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        max_seconds: float,
    ) -> None:
        super().__init__()
        if not 0 <= block <= teacher.blocks:
            raise ValueError(f"block {block} outside 0..{teacher.blocks}")
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

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        x = nn.functional.gelu(self.conv1(self.logmel(wave)))
        x = nn.functional.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        for layer in self.layers:
            x = layer(x, attention_mask=None)
            x = x[0] if isinstance(x, tuple) else x
        mean = x.mean(dim=1)
        std = torch.sqrt(((x - mean[:, None]) ** 2).mean(dim=1))
        return torch.cat([mean, std], dim=1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(wave))
