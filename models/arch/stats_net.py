"""StatsNet: utterance functionals of frame features (and their deltas) into a small MLP.

Why this shape: with a handful of training speakers, what carries across speakers is how an
utterance's pitch, energy and spectral envelope *move* -- their level, spread and extremes over the
utterance -- more than local time-frequency patterns a CNN can memorize speaker by speaker. Classic
SER pipelines (openSMILE functionals + SVM) compute exactly such statistics; StatsNet learns them
end to end: a 1x1 projection of each frame, the per-channel mean, standard deviation, maximum and
minimum over time of it and of its first difference, then an MLP. It is tiny (~0.1M parameters,
a few hundred kMAC per second of audio), exports to plain ONNX reductions, and pairs naturally with
per-speaker normalization (``--normalization speaker``).
"""

from __future__ import annotations

import torch
from torch import nn


def functionals(x: torch.Tensor) -> torch.Tensor:
    """``(batch, channels, frames)`` -> ``(batch, 4 * channels)``: mean, std, max, min over time."""
    mean = x.mean(dim=-1)
    std = (x - mean.unsqueeze(-1)).pow(2).mean(dim=-1).clamp(min=1e-6).sqrt()
    return torch.cat([mean, std, x.amax(dim=-1), x.amin(dim=-1)], dim=1)


class StatsNet(nn.Module):
    """Features ``(batch, frames, bins)`` -> embedding ``(batch, embedding)``."""

    input_kind = "features"

    def __init__(
        self, n_features: int | None = None, channels: int = 96, hidden: int = 128, embedding: int = 128
    ) -> None:
        super().__init__()
        if not n_features:
            raise ValueError("StatsNet needs a feature front-end (n_features)")
        self.project = nn.Sequential(nn.Conv1d(n_features, channels, 1, bias=False), nn.BatchNorm1d(channels))
        self.mlp = nn.Sequential(
            nn.Linear(8 * channels, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(hidden, embedding, bias=False),
            nn.BatchNorm1d(embedding),
            nn.ReLU(),
        )
        self.embedding_dim = embedding
        self.min_frames = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.project(x.transpose(1, 2))  # (batch, channels, frames)
        delta = h[..., 1:] - h[..., :-1]
        return self.mlp(torch.cat([functionals(h), functionals(delta)], dim=1))
