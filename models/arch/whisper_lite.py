"""WhisperLite: a tiny-tier student that keeps the teacher's conv stem and first block, compressed.

Log-mel frames (80 bands, the numpy ``logmel`` front-end) -> the teacher's conv stem (two convolutions, the
second strided) -> average of ``pool`` frames (2: 25 tokens per second instead of Whisper's 50) -> Whisper's
positional table -> one pre-norm transformer block -> mean and standard deviation over time.
:func:`from_teacher` initializes every layer from a Whisper encoder: each convolution and attention
projection is a truncated SVD of the teacher's weight (two thin layers, ``rank`` wide, whose product is the
best rank-``rank`` approximation of the teacher's), and the feed-forward layer keeps the ``ffn`` hidden
units that matter most on audio given to it (mean activation times the norm of the unit's output column).
A fixed linear map folded into the first convolution turns the front-end's natural-log HTK mel bands into
Whisper's log10 Slaney bands (least squares on frames of that audio), and Whisper's dynamic-range clamp
(8 decades below the window's peak) is applied in the graph. The defaults fit the tiny tier
(:data:`SIZES`, counted by :func:`macs_per_window`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .stream_net import masked_mean_std

LN10 = math.log(10.0)
# Compression per teacher width that fits the tiny tier (<= 0.4M parameters, <= 30 M MAC per 3 s):
# tiny.en (384) ~0.25M / 27.6 M; base (512, where attention scores alone cost 5.8 M) ~0.25M / 29.0 M.
SIZES = {
    384: {"stem_ranks": (16, 24), "rank": 24, "ffn": 160},
    512: {"stem_ranks": (16, 16), "rank": 16, "ffn": 128},
}


class LowRank(nn.Module):
    """``x -> up(down(x))``: a ``(out, in)`` linear map of rank ``rank`` (a plain ``Linear`` when ``rank`` is None)."""

    def __init__(self, n_in: int, n_out: int, rank: int | None, bias: bool = True) -> None:
        super().__init__()
        self.rank = rank
        if rank is None:
            self.down = nn.Identity()
            self.up = nn.Linear(n_in, n_out, bias=bias)
        else:
            self.down = nn.Linear(n_in, rank, bias=False)
            self.up = nn.Linear(rank, n_out, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))

    def load_factorized(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        """Set the weights to the truncated SVD of ``weight`` ``(out, in)`` (exact at full rank)."""
        with torch.no_grad():
            if self.rank is None:
                self.up.weight.copy_(weight)
            else:
                down, up = svd_factors(weight, self.rank)
                self.down.weight.copy_(down)
                self.up.weight.copy_(up)
            if bias is not None:
                self.up.bias.copy_(bias)
            elif self.up.bias is not None:
                self.up.bias.zero_()


def svd_factors(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(down (rank, in), up (out, rank))`` with ``up @ down`` the best rank-``rank`` approximation of ``weight``,
    the singular values split evenly between the two."""
    u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
    root = s[:rank].sqrt()
    return (root[:, None] * vh[:rank]).float(), (u[:, :rank] * root[None, :]).float()


class LowRankConv(nn.Module):
    """A ``Conv1d(n_in, n_out, kernel, stride)`` of rank ``rank``: a ``rank``-channel convolution, then a 1x1."""

    def __init__(self, n_in: int, n_out: int, kernel: int, stride: int, rank: int | None) -> None:
        super().__init__()
        self.rank = rank
        pad = kernel // 2
        if rank is None:
            self.down = nn.Identity()
            self.up = nn.Conv1d(n_in, n_out, kernel, stride=stride, padding=pad)
        else:
            self.down = nn.Conv1d(n_in, rank, kernel, stride=stride, padding=pad, bias=False)
            self.up = nn.Conv1d(rank, n_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))

    def load_factorized(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Set the weights to the truncated SVD of the conv kernel ``weight`` ``(out, in, kernel)``."""
        n_out, n_in, kernel = weight.shape
        with torch.no_grad():
            if self.rank is None:
                self.up.weight.copy_(weight)
            else:
                down, up = svd_factors(weight.reshape(n_out, n_in * kernel), self.rank)
                self.down.weight.copy_(down.reshape(self.rank, n_in, kernel))
                self.up.weight.copy_(up[:, :, None])
            self.up.bias.copy_(bias)


class LiteAttention(nn.Module):
    """Whisper's multi-head self-attention (no key bias, queries scaled by ``head_dim ** -0.5``), low-rank
    projections."""

    def __init__(self, width: int, heads: int, rank: int | None) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.q = LowRank(width, width, rank)
        self.k = LowRank(width, width, rank, bias=False)
        self.v = LowRank(width, width, rank)
        self.out = LowRank(width, width, rank)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.reshape(b, t, self.heads, self.head_dim).transpose(1, 2)

        q = split(self.q(x) * self.head_dim**-0.5)
        k, v = split(self.k(x)), split(self.v(x))
        weights = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        return self.out((weights @ v).transpose(1, 2).reshape(b, t, -1))


class LiteBlock(nn.Module):
    """Whisper's pre-norm encoder block with low-rank attention and ``ffn`` feed-forward hidden units."""

    def __init__(self, width: int, heads: int, rank: int | None, ffn: int) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(width)
        self.attn = LiteAttention(width, heads, rank)
        self.ffn_norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, ffn)
        self.fc2 = nn.Linear(ffn, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.fc2(F.gelu(self.fc1(self.ffn_norm(x))))


def pool_positions(table: torch.Tensor, pool: int = 2) -> torch.Tensor:
    """Whisper's positional rows averaged in groups of ``pool``, matching the tokens averaged so."""
    n = table.shape[0] // pool * pool
    return table[:n].reshape(n // pool, pool, -1).mean(dim=1)


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's positional table (``sin`` then ``cos`` halves), ``(length, channels)``."""
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float64))
    t = torch.arange(length, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1).float()


class WhisperLite(nn.Module):
    """Features ``(batch, frames, n_features)`` (natural-log mel energies) -> embedding ``(batch, 2 * width)``.

    ``stem_ranks``: ranks of the two stem convolutions; ``rank``: of the four attention projections (None:
    full); ``ffn``: feed-forward hidden units; ``max_tokens``: length of the positional table (tokens are
    25 per second: 76 covers a 3 s analysis window; a longer input fails).
    """

    input_kind = "features"

    def __init__(
        self,
        n_features: int = 80,
        width: int = 384,
        heads: int = 6,
        stem_ranks: tuple[int | None, int | None] = (16, 24),
        rank: int | None = 24,
        ffn: int = 160,
        max_tokens: int = 76,
        pool: int = 2,
    ) -> None:
        super().__init__()
        self.n_features, self.width, self.pool = n_features, width, pool
        self.conv1 = LowRankConv(n_features, width, 3, 1, stem_ranks[0])
        self.conv2 = LowRankConv(width, width, 3, 2, stem_ranks[1])
        self.register_buffer("positions", pool_positions(sinusoids(pool * max_tokens, width), pool))
        # Standardization of the pooled embedding (set from training data before a head is fit on it).
        self.register_buffer("embedding_shift", torch.zeros(2 * width))
        self.register_buffer("embedding_scale", torch.ones(2 * width))
        self.block = LiteBlock(width, heads, rank, ffn)

    @property
    def embedding_dim(self) -> int:
        return 2 * self.width

    @property
    def frame_dim(self) -> int:
        return self.width

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output tokens ``(batch, tokens, width)`` (what frame-level distillation matches)."""
        x = torch.maximum(x, x.amax(dim=(1, 2), keepdim=True) - 8.0 * LN10)  # Whisper's dynamic-range clamp
        h = F.gelu(self.conv1(x.transpose(1, 2)))
        h = F.gelu(self.conv2(h))
        if self.pool > 1:
            h = F.avg_pool1d(h, self.pool)
        h = h.transpose(1, 2)
        h = h + self.positions[: h.shape[1]]
        return self.block(h)

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x).transpose(1, 2)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        n = torch.div(lengths - 1, 2, rounding_mode="floor") + 1
        return torch.div(n, self.pool, rounding_mode="floor").clamp(min=1)

    def embed_frames(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return (masked_mean_std(frames, lengths) - self.embedding_shift) / self.embedding_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_frames(self.frames(x))


def macs_per_window(model: WhisperLite, frames: int = 299) -> int:
    """Multiply-accumulates of one window of ``frames`` feature frames (299: 3 s at 10 ms with 25 ms frames),
    counting every matrix product and convolution, attention scores and sums included."""
    f, w = model.n_features, model.width

    def conv(c: LowRankConv, n_in: int, t: int) -> int:
        if c.rank is None:
            return n_in * 3 * w * t
        return n_in * 3 * c.rank * t + c.rank * w * t

    def lin(layer: LowRank, n_in: int, n_out: int, t: int) -> int:
        return t * (n_in * n_out if layer.rank is None else layer.rank * (n_in + n_out))

    t2 = (frames - 1) // 2 + 1
    t3 = t2 // model.pool
    attn = model.block.attn
    total = conv(model.conv1, f, frames) + conv(model.conv2, w, t2)
    total += sum(lin(p, w, w, t3) for p in (attn.q, attn.k, attn.v, attn.out))
    total += 2 * t3 * t3 * w  # scores and weighted sum over all heads
    total += 2 * t3 * w * model.block.fc1.out_features
    return int(total)


def mel_adapter(features: np.ndarray, whisper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(A (80, n_features), b (80,))`` with ``A @ feature + b`` closest (least squares) to Whisper's log-mel
    frame; ``features`` ``(frames, n_features)`` and ``whisper`` ``(frames, 80)`` are aligned rows."""
    x = np.hstack([features, np.ones((len(features), 1))]).astype(np.float64)
    sol, *_ = np.linalg.lstsq(x, whisper.astype(np.float64), rcond=None)
    return sol[:-1].T, sol[-1]


def ffn_importance(fc1: nn.Linear, fc2: nn.Linear, inputs: torch.Tensor) -> torch.Tensor:
    """Per hidden unit: mean |GELU activation| over the rows of ``inputs`` (already layer-normed) times the
    norm of its output column: how much the unit adds to the block's output on that audio."""
    with torch.no_grad():
        act = F.gelu(fc1(inputs)).abs().mean(dim=0)
        return act * fc2.weight.norm(dim=0)


def from_teacher(
    encoder: nn.Module,
    *,
    adapter: tuple[np.ndarray, np.ndarray] | None = None,
    importance: torch.Tensor | None = None,
    **kwargs,
) -> WhisperLite:
    """A :class:`WhisperLite` initialized from ``encoder`` (``transformers``' ``WhisperEncoder``, its first block):
    truncated-SVD stem and attention, the ``ffn`` most ``importance``-ant feed-forward units (the first ones
    without), and ``adapter`` (see :func:`mel_adapter`) folded into the first convolution (identity without)."""
    width = encoder.conv1.out_channels
    layer = encoder.layers[0]
    model = WhisperLite(width=width, heads=layer.self_attn.num_heads, **{**SIZES.get(width, {}), **kwargs})
    w1, b1 = encoder.conv1.weight.detach(), encoder.conv1.bias.detach()
    if adapter is not None:
        a = torch.from_numpy(np.asarray(adapter[0], dtype=np.float32))
        c = torch.from_numpy(np.asarray(adapter[1], dtype=np.float32))
        b1 = b1 + torch.einsum("oik,i->o", w1, c)
        w1 = torch.einsum("oik,if->ofk", w1, a)
    model.conv1.load_factorized(w1, b1)
    model.conv2.load_factorized(encoder.conv2.weight.detach(), encoder.conv2.bias.detach())
    table = encoder.embed_positions.weight.detach()[: model.pool * model.positions.shape[0]]
    with torch.no_grad():
        model.positions.copy_(pool_positions(table, model.pool))
    attn = layer.self_attn
    for mine, theirs in (
        (model.block.attn.q, attn.q_proj),
        (model.block.attn.k, attn.k_proj),
        (model.block.attn.v, attn.v_proj),
        (model.block.attn.out, attn.out_proj),
    ):
        mine.load_factorized(theirs.weight.detach(), None if theirs.bias is None else theirs.bias.detach())
    block = model.block
    keep = block.fc1.out_features
    order = torch.arange(keep) if importance is None else torch.argsort(importance, descending=True)[:keep].sort()[0]
    with torch.no_grad():
        block.attn_norm.load_state_dict(layer.self_attn_layer_norm.state_dict())
        block.ffn_norm.load_state_dict(layer.final_layer_norm.state_dict())
        block.fc1.weight.copy_(layer.fc1.weight[order])
        block.fc1.bias.copy_(layer.fc1.bias[order])
        block.fc2.weight.copy_(layer.fc2.weight[:, order])
        block.fc2.bias.copy_(layer.fc2.bias)
    return model
