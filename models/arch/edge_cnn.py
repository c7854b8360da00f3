"""EdgeCNN: edge-ser's own design, a depthwise-separable CNN on log-mel with attentive pooling.

Why this shape: a strided 3x3 stem and depthwise-separable blocks (as in MobileNet/DS-CNN keyword
spotters) give a 2-D receptive field over time and frequency for a few MMACs; the frequency axis
is then folded into channels and a 1x1 temporal convolution mixes it; attentive pooling (as in
ECAPA speaker models) weighs the frames that carry emotion instead of averaging silence and speech
alike. ECAPA's standard-deviation term is left out: with batch norm before it, it made train- and
eval-mode outputs diverge on stationary inputs (tones, hum) until the model predicted one class.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SeparableBlock(nn.Module):
    """Depthwise 3x3 then pointwise 1x1 convolution, each with batch norm; residual when shapes allow.

    ``members`` side-by-side copies (channels ``members * c``, the pointwise convolution grouped per member)
    compute ``members`` independent blocks in one set of operators."""

    def __init__(self, c_in: int, c_out: int, stride: tuple[int, int], members: int = 1) -> None:
        super().__init__()
        c_in, c_out = members * c_in, members * c_out
        self.depthwise = nn.Sequential(
            nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False),
            nn.BatchNorm2d(c_in),
            nn.ReLU(),
        )
        self.pointwise = nn.Sequential(nn.Conv2d(c_in, c_out, 1, groups=members, bias=False), nn.BatchNorm2d(c_out))
        self.residual = c_in == c_out and stride == (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise(self.depthwise(x))
        return torch.relu(x + y if self.residual else y)


class AttentivePool(nn.Module):
    """Per-channel attention over time -> attention-weighted mean ``(batch, channels)``; ``members`` groups of
    channels each with their own attention network."""

    def __init__(self, channels: int, hidden: int = 64, members: int = 1) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv1d(channels, members * hidden, 1, groups=members),
            nn.Tanh(),
            nn.Conv1d(members * hidden, channels, 1, groups=members),
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``lengths``: frames of each row that count (the rest is padding and gets no weight)."""
        scores = self.attention(x)
        if lengths is not None:
            padded = torch.arange(x.shape[-1], device=x.device)[None, :] >= lengths.to(x.device)[:, None]
            scores = scores.masked_fill(padded[:, None, :], float("-inf"))
        return (x * torch.softmax(scores, dim=-1)).sum(dim=-1)


class GroupedLinear(nn.Module):
    """``members`` independent linear maps ``in_features -> out_features`` side by side:
    ``(batch, members * in_features) -> (batch, members * out_features)``, one grouped 1x1 convolution. Its
    ``weight`` holds the members' ``nn.Linear`` weights stacked, ``(members * out_features, in_features)``,
    initialized as theirs would be."""

    def __init__(self, in_features: int, out_features: int, members: int) -> None:
        super().__init__()
        self.members = members
        self.weight = nn.Parameter(torch.empty(members * out_features, in_features))
        self.bias = nn.Parameter(torch.empty(members * out_features))
        for rows in zip(self.weight.split(out_features), self.bias.split(out_features)):
            nn.init.kaiming_uniform_(rows[0], a=math.sqrt(5))
            nn.init.uniform_(rows[1], -1 / math.sqrt(in_features), 1 / math.sqrt(in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.conv1d(x.unsqueeze(-1), self.weight.unsqueeze(-1), self.bias, groups=self.members)
        return y.squeeze(-1)


class EdgeCNN(nn.Module):
    """Features ``(batch, frames, bins)`` -> embedding ``(batch, embedding)``.

    ``channels``: the stem's width, then each stage's. A stage is a strided separable block and
    ``depth - 1`` residual ones; the first two stages halve time, every stage halves frequency
    until 4 bins are left, so 3 s of 64 log-mel bins reach ``(38 frames, 4 bins)``. ``stem_time_stride``
    1 keeps the stem from halving time: for a front-end with a 20 ms hop, whose 150 frames per 3 s then
    reach the same ``(38, 4)`` grid as the default on 10 ms frames, for the same compute after the stem and
    half the front-end's.

    ``members`` > 1 packs that many independent networks of this shape into one (a packed ensemble): every
    convolution is ``members`` times as wide and grouped so that no member sees another's channels, in the
    operators of one network. Training, each input row gives ``members`` embedding rows, its members' in turn
    (``(batch * members, embedding)``), so that each member learns from every loss on its own (the losses repeat
    their targets, :attr:`models.arch.heads.SERModel.members`); in evaluation (and in an exported file) the
    embedding is the members' mean, so a linear head outputs their averaged logits. ``shared`` > 0: the stem and
    the first ``shared - 1`` blocks are one network's, which every member reads (a shared trunk: the large early
    feature maps, most of the time per 3 s, computed once); the members start after it.
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
        members: int = 1,
        shared: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(members, int) or members < 1:
            raise ValueError(f"EdgeCNN's members is a whole number of at least 1, got {members!r}")
        n_blocks = depth * (len(channels) - 1)
        if not isinstance(shared, int) or not 0 <= shared <= n_blocks + 1 or (shared and members == 1):
            raise ValueError(f"EdgeCNN's shared is 0 to {n_blocks + 1} layers, and only with members > 1")
        if not n_features:
            raise ValueError("EdgeCNN needs a feature front-end (n_features)")
        if stem_time_stride not in (1, 2):
            raise ValueError(f"EdgeCNN's stem_time_stride is 1 or 2, got {stem_time_stride!r}")

        def copies(layer: int) -> int:
            """How many copies of layer ``layer`` (0: the stem, then the blocks) the network holds."""
            return 1 if layer < shared else members

        self.stem = nn.Sequential(
            nn.Conv2d(1, copies(0) * channels[0], 3, stride=(stem_time_stride, 2), padding=1, bias=False),
            nn.BatchNorm2d(copies(0) * channels[0]),
            nn.ReLU(),
        )
        bins = (n_features + 1) // 2
        blocks: list[nn.Module] = []
        time_strides = [stem_time_stride]  # the stem's
        for stage, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            stride = (2 if stage < 2 else 1, 2 if bins > 4 else 1)
            bins = (bins + stride[1] - 1) // stride[1]
            blocks.append(SeparableBlock(c_in, c_out, stride, copies(len(blocks) + 1)))
            time_strides.append(stride[0])
            blocks += [SeparableBlock(c_out, c_out, (1, 1), copies(len(blocks) + 1 + i)) for i in range(depth - 1)]
        self.blocks = nn.Sequential(*blocks)
        self.time_strides = tuple(time_strides)
        self.temporal = nn.Sequential(
            nn.Conv1d(members * channels[-1] * bins, members * temporal, 1, groups=members, bias=False),
            nn.BatchNorm1d(members * temporal),
            nn.ReLU(),
        )
        self.pool = AttentivePool(members * temporal, members=members)
        linear = nn.Linear(temporal, embedding) if members == 1 else GroupedLinear(temporal, embedding, members)
        self.project = nn.Sequential(linear, nn.BatchNorm1d(members * embedding), nn.ReLU())
        self.members = members
        self.shared = shared
        self.embedding_dim = embedding
        self.frame_dim = members * temporal
        self.min_frames = 1

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """Frame-level features ``(batch, members * temporal, frames / 8)``, what CTC heads read (one member)."""
        h = self.stem(x.unsqueeze(1))  # (batch, channels, frames', bins')
        if self.shared:  # the trunk's blocks, its output once per member, then the members' blocks
            trunk = self.shared - 1
            h = self.blocks[trunk:](self.blocks[:trunk](h).repeat(1, self.members, 1, 1))
        else:
            h = self.blocks(h)
        return self.temporal(h.transpose(2, 3).flatten(1, 2))  # 1x1 conv over (channels * bins'), member by member

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames of :meth:`frames` that inputs of ``lengths`` rows fill (each stride-2 conv: ceil(n / 2))."""
        for stride in self.time_strides:
            lengths = (lengths + stride - 1) // stride
        return lengths

    def embed_frames(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Utterance embedding ``(batch, embedding)`` from :meth:`frames`, pooling only the first
        ``lengths`` frames of each row when given; packed members: each member's in training, their mean in
        evaluation (see the class)."""
        embedding = self.project(self.pool(frames, lengths))
        if self.members == 1:
            return embedding
        members = embedding.unflatten(1, (self.members, self.embedding_dim))
        return members.flatten(0, 1) if self.training else members.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_frames(self.frames(x))
