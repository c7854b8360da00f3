"""StreamNet: a causal frame model with statistics pooling, chosen for speed on a CPU and for streams.

Why this shape: a CPU spends its time in matrix products, so the model is 1-D throughout -- log-mel
frames in, a strided stem to 50 frames per second, then depthwise-separable temporal blocks whose
1x1 (pointwise) convolutions are plain GEMMs over all frames at once. Every convolution looks only at
the past (left padding), and the pooling is the running mean and standard deviation of the last
block's frames, so the same weights can also run frame by frame on a microcontroller: each new
frame costs one column of every layer, the state is a few frames of history per block plus two
running sums (:meth:`StreamNet.step`), and the utterance embedding can be read at any moment.
With 128 channels and five blocks it has ~0.13M parameters and ~16 M MAC per 3 s.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CausalBlock(nn.Module):
    """Depthwise causal temporal convolution, then a pointwise 1x1 convolution; batch norm, residual."""

    def __init__(self, channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.history = (kernel - 1) * dilation  # past frames each output reads
        self.depthwise = nn.Conv1d(channels, channels, kernel, dilation=dilation, groups=channels, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.pointwise = nn.Conv1d(channels, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, frames)`` -> same shape; output frame t reads input frames up to t."""
        y = torch.relu(self.bn1(self.depthwise(F.pad(x, (self.history, 0)))))
        return torch.relu(x + self.bn2(self.pointwise(y)))


def masked_mean_std(frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """``(batch, channels, frames)`` -> ``(batch, 2 * channels)``: mean and standard deviation over the first
    ``lengths`` frames of each row (all frames when None)."""
    if lengths is None:
        mean = frames.mean(dim=-1)
        var = (frames - mean.unsqueeze(-1)).pow(2).mean(dim=-1)
    else:
        keep = torch.arange(frames.shape[-1], device=frames.device)[None, :] < lengths.to(frames.device)[:, None]
        keep = keep.unsqueeze(1).to(frames.dtype)
        count = keep.sum(dim=-1).clamp(min=1.0)
        mean = (frames * keep).sum(dim=-1) / count
        var = ((frames - mean.unsqueeze(-1)).pow(2) * keep).sum(dim=-1) / count
    return torch.cat([mean, var.clamp(min=1e-6).sqrt()], dim=1)


class StreamNet(nn.Module):
    """Features ``(batch, frames, bins)`` -> embedding ``(batch, embedding)``.

    ``channels``: width of the stem and of every block; ``dilations``: one causal block each (kernel
    ``kernel``); the stem (kernel 3, stride 2, causal) halves the frame rate.
    """

    input_kind = "features"

    def __init__(
        self,
        n_features: int | None = None,
        channels: int = 128,
        kernel: int = 5,
        dilations: tuple[int, ...] = (1, 2, 4, 1, 2),
        embedding: int = 128,
    ) -> None:
        super().__init__()
        if not n_features:
            raise ValueError("StreamNet needs a feature front-end (n_features)")
        self.stem = nn.Sequential(
            nn.Conv1d(n_features, channels, 3, stride=2, bias=False), nn.BatchNorm1d(channels), nn.ReLU()
        )
        self.blocks = nn.Sequential(*(CausalBlock(channels, kernel, d) for d in dilations))
        self.project = nn.Sequential(nn.Linear(2 * channels, embedding), nn.BatchNorm1d(embedding), nn.ReLU())
        self.embedding_dim = embedding
        self.frame_dim = channels
        self.min_frames = 1

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """Frame-level features ``(batch, channels, ceil(frames / 2))``; frame t reads input frames up to 2t."""
        return self.blocks(self.stem(F.pad(x.transpose(1, 2), (2, 0))))

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames of :meth:`frames` that inputs of ``lengths`` rows fill."""
        return (lengths + 1) // 2

    def embed_frames(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Utterance embedding from :meth:`frames`: mean and std of the first ``lengths`` frames, projected."""
        return self.project(masked_mean_std(frames, lengths))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_frames(self.frames(x))

    @torch.no_grad()
    def step(self, frame: torch.Tensor, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Stream one input frame ``(batch, bins)`` (eval mode). Returns the new state; its ``embedding`` is the
        utterance embedding of every frame so far (equal to :meth:`forward` on them, up to rounding)."""
        if self.training:
            raise RuntimeError("StreamNet.step runs in eval mode (batch norm must use its running statistics)")
        state = dict(state) if state is not None else {}
        n = int(state.get("n", torch.zeros(())).item()) + 1
        state["n"] = torch.tensor(n)
        stem_in = torch.cat(
            [state.get("stem", frame.new_zeros(frame.shape[0], frame.shape[1], 2)), frame[..., None]], 2
        )
        state["stem"] = stem_in[..., 1:]
        if n % 2 == 0:  # the stride-2 stem emits a frame for input frames 1, 3, 5, ... (1-based: odd counts)
            return state
        h = self.stem(stem_in)
        for k, block in enumerate(self.blocks):
            past = state.get(f"block{k}", h.new_zeros(h.shape[0], h.shape[1], block.history))
            window = torch.cat([past, h], dim=2)
            state[f"block{k}"] = window[..., 1:] if block.history else past
            y = torch.relu(block.bn1(block.depthwise(window)))
            h = torch.relu(h + block.bn2(block.pointwise(y)))
        h = h[..., 0].double()
        state["sum"] = state.get("sum", torch.zeros_like(h)) + h
        state["sumsq"] = state.get("sumsq", torch.zeros_like(h)) + h * h
        state["count"] = state.get("count", torch.zeros(())) + 1
        mean = state["sum"] / state["count"]
        std = (state["sumsq"] / state["count"] - mean * mean).clamp(min=1e-6).sqrt()
        state["embedding"] = self.project(torch.cat([mean, std], dim=1).float())
        return state
