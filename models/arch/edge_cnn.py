"""EdgeCNN: edge-ser's own design, a depthwise-separable CNN on log-mel with attentive pooling.

Why this shape: a strided 3x3 stem and depthwise-separable blocks (as in MobileNet/DS-CNN keyword
spotters) give a 2-D receptive field over time and frequency for a few MMACs; the frequency axis
is then folded into channels and a 1x1 temporal convolution mixes it; attentive pooling (as in
ECAPA speaker models) weighs the frames that carry emotion instead of averaging silence and speech
alike. ECAPA's standard-deviation term is left out: with batch norm before it, it made train- and
eval-mode outputs diverge on stationary inputs (tones, hum) until the model predicted one class.
"""

from __future__ import annotations

import torch
from torch import nn


class SeparableBlock(nn.Module):
    """Depthwise 3x3 then pointwise 1x1 convolution, each with batch norm; residual when shapes allow."""

    def __init__(self, c_in: int, c_out: int, stride: tuple[int, int]) -> None:
        super().__init__()
        self.depthwise = nn.Sequential(
            nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False),
            nn.BatchNorm2d(c_in),
            nn.ReLU(),
        )
        self.pointwise = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.residual = c_in == c_out and stride == (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise(self.depthwise(x))
        return torch.relu(x + y if self.residual else y)


class AttentivePool(nn.Module):
    """Per-channel attention over time -> attention-weighted mean ``(batch, channels)``."""

    def __init__(self, channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.attention = nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.Tanh(), nn.Conv1d(hidden, channels, 1))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``lengths``: frames of each row that count (the rest is padding and gets no weight)."""
        scores = self.attention(x)
        if lengths is not None:
            padded = torch.arange(x.shape[-1], device=x.device)[None, :] >= lengths.to(x.device)[:, None]
            scores = scores.masked_fill(padded[:, None, :], float("-inf"))
        return (x * torch.softmax(scores, dim=-1)).sum(dim=-1)


class EdgeCNN(nn.Module):
    """Features ``(batch, frames, bins)`` -> embedding ``(batch, embedding)``.

    ``channels``: the stem's width, then each stage's. A stage is a strided separable block and
    ``depth - 1`` residual ones; the first two stages halve time, every stage halves frequency
    until 4 bins are left, so 3 s of 64 log-mel bins reach ``(38 frames, 4 bins)``. ``stem_time_stride``
    1 keeps the stem from halving time: for a front-end with a 20 ms hop, whose 150 frames per 3 s then
    reach the same ``(38, 4)`` grid as the default on 10 ms frames, for the same compute after the stem and
    half the front-end's.
    """

    input_kind = "features"

    def __init__(
        self,
        n_features: int | None = None,
        channels: tuple[int, ...] = (32, 64, 96, 128),
        depth: int = 2,
        temporal: int = 192,
        embedding: int = 128,
        stem_time_stride: int = 2,
    ) -> None:
        super().__init__()
        if not n_features:
            raise ValueError("EdgeCNN needs a feature front-end (n_features)")
        if stem_time_stride not in (1, 2):
            raise ValueError(f"EdgeCNN's stem_time_stride is 1 or 2, got {stem_time_stride!r}")
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels[0], 3, stride=(stem_time_stride, 2), padding=1, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(),
        )
        bins = (n_features + 1) // 2
        blocks: list[nn.Module] = []
        time_strides = [stem_time_stride]  # the stem's
        for stage, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            stride = (2 if stage < 2 else 1, 2 if bins > 4 else 1)
            bins = (bins + stride[1] - 1) // stride[1]
            blocks.append(SeparableBlock(c_in, c_out, stride))
            time_strides.append(stride[0])
            blocks += [SeparableBlock(c_out, c_out, (1, 1)) for _ in range(depth - 1)]
        self.blocks = nn.Sequential(*blocks)
        self.time_strides = tuple(time_strides)
        self.temporal = nn.Sequential(
            nn.Conv1d(channels[-1] * bins, temporal, 1, bias=False), nn.BatchNorm1d(temporal), nn.ReLU()
        )
        self.pool = AttentivePool(temporal)
        self.project = nn.Sequential(nn.Linear(temporal, embedding), nn.BatchNorm1d(embedding), nn.ReLU())
        self.embedding_dim = embedding
        self.frame_dim = temporal
        self.min_frames = 1

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """Frame-level features ``(batch, temporal, frames / 8)``, what CTC heads read."""
        h = self.blocks(self.stem(x.unsqueeze(1)))  # (batch, channels, frames', bins')
        return self.temporal(h.transpose(2, 3).flatten(1, 2))  # 1x1 conv over (channels * bins')

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames of :meth:`frames` that inputs of ``lengths`` rows fill (each stride-2 conv: ceil(n / 2))."""
        for stride in self.time_strides:
            lengths = (lengths + stride - 1) // stride
        return lengths

    def embed_frames(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Utterance embedding ``(batch, embedding)`` from :meth:`frames`, pooling only the first
        ``lengths`` frames of each row when given."""
        return self.project(self.pool(frames, lengths))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_frames(self.frames(x))
