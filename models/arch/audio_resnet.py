"""AudioResNet: a small residual 1-D CNN on the raw 16 kHz waveform (about 0.13M parameters).

Four convolutions, each followed by batch norm: a wide strided first layer that acts as a
learned filterbank, a channel-widening layer, and a residual block of two more. Global
average pooling over time turns any input length into one utterance embedding.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock1d(nn.Module):
    """Two same-width ``kernel``-wide convolutions with batch norm and an identity skip."""

    def __init__(self, channels: int, kernel: int = 3) -> None:
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1d(channels, channels, kernel, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, kernel, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


class AudioResNet(nn.Module):
    """Waveform ``(batch, samples)`` -> embedding ``(batch, channels[1])``.

    conv1: ``channels[0]`` filters of ``stem_kernel`` samples (5 ms at 16 kHz) with stride
    ``stem_stride``; conv2: kernel 3 to ``channels[1]``; conv3+conv4: a residual block. Max
    pooling by ``pool`` follows conv1 and conv2, so the block sees 64x fewer steps than samples.
    """

    input_kind = "waveform"

    def __init__(
        self,
        n_features: int | None = None,
        channels: tuple[int, int] = (64, 128),
        stem_kernel: int = 80,
        stem_stride: int = 4,
        pool: int = 4,
    ) -> None:
        super().__init__()
        c1, c2 = channels
        self.stem = nn.Sequential(
            nn.Conv1d(1, c1, stem_kernel, stride=stem_stride, padding=(stem_kernel - stem_stride) // 2, bias=False),
            nn.BatchNorm1d(c1),
            nn.ReLU(),
            nn.MaxPool1d(pool, ceil_mode=True),
            nn.Conv1d(c1, c2, 3, padding=1, bias=False),
            nn.BatchNorm1d(c2),
            nn.ReLU(),
            nn.MaxPool1d(pool, ceil_mode=True),
        )
        self.block = ResidualBlock1d(c2)
        self.embedding_dim = c2
        self.min_samples = stem_kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block(self.stem(x.unsqueeze(1)))
        return h.mean(dim=-1)
