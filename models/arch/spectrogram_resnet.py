"""SpectrogramResNet: a small residual 2-D CNN on the log-power spectrogram (about 0.39M parameters).

The 2-D counterpart of :mod:`models.arch.audio_resnet`: four 3x3 convolutions with batch norm on
the ``(frames, frequency bins)`` image, the last two a residual block, then global average
pooling over time and frequency, so any number of frames gives one utterance embedding.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock2d(nn.Module):
    """Two same-width 3x3 convolutions with batch norm and an identity skip."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


class SpectrogramResNet(nn.Module):
    """Features ``(batch, frames, bins)`` -> embedding ``(batch, channels[1])``.

    conv1 (stride 2) and conv2 (stride 2), each followed by 2x2 max pooling, shrink the
    spectrogram 16x along both axes before the residual block (conv3+conv4), which keeps a
    3 s, 257-bin input at a few hundred positions: cheap enough to train on a CPU.
    """

    input_kind = "features"

    def __init__(self, n_features: int | None = None, channels: tuple[int, int] = (64, 128)) -> None:
        super().__init__()
        c1, c2 = channels
        self.stem = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c1),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c2),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
        )
        self.block = ResidualBlock2d(c2)
        self.embedding_dim = c2
        self.min_frames = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block(self.stem(x.unsqueeze(1)))
        return h.mean(dim=(-2, -1))
