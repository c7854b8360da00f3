"""The SSL seed systems on a frozen pretrained encoder: heads over a learned weighted sum of its blocks.

All three read the cached frame-level hidden states of every block (:func:`models.teachers.cache.teacher_frames`),
standardize each state's channels with training-frame statistics and learn a softmax-weighted sum of them (the
SUPERB recipe), projected to ``width`` channels:

- ``ssl`` (the "SSL encoder" system): masked mean + std pooling and a linear emotion head;
- ``mtlser`` (seed 001, MTLSER): the same emotion head plus a frame-level CTC transcript head and a
  speaker head on the pooled embedding, trained jointly;
- ``ctc_fusion`` (seed 002, acoustic + phoneme/syllable CTC fusion): a BiGRU "phonetic" branch trained with CTC
  on transcripts; its pooled states are concatenated with the acoustic pooling for the emotion head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SYSTEMS = ("ssl", "mtlser", "ctc_fusion")


def masked_stats(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean and std over the first ``lengths[b]`` frames of ``x`` ``(batch, frames, d)``: ``(batch, 2d)``."""
    mask = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]).unsqueeze(-1).float()
    n = mask.sum(1).clamp(min=1)
    mean = (x * mask).sum(1) / n
    var = (((x - mean[:, None]) ** 2) * mask).sum(1) / n
    return torch.cat([mean, torch.sqrt(var + 1e-5)], dim=1)


class FrozenEncoderHeads(nn.Module):
    """``forward(states, lengths)`` with ``states`` ``(batch, frames, n_states, d)`` returns a dict of logits:
    ``emotion`` always, ``speaker`` (mtlser) and the CTC head ``transcript`` ``(batch, frames, vocab)``."""

    def __init__(
        self,
        system: str,
        n_states: int,
        d: int,
        n_emotions: int,
        vocab: int = 0,
        n_speakers: int = 0,
        width: int = 128,
        mean: torch.Tensor | None = None,
        std: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if system not in SYSTEMS:
            raise ValueError(f"unknown system {system!r}; known: {SYSTEMS}")
        self.system = system
        self.layer_logits = nn.Parameter(torch.zeros(n_states))
        # Per state and channel standardization from training frames: Whisper's residual stream has a few channels
        # of huge magnitude, which a LayerNorm across channels would let drown the others.
        self.register_buffer("mean", mean if mean is not None else torch.zeros(n_states, d))
        self.register_buffer("std", std if std is not None else torch.ones(n_states, d))
        self.project = nn.Sequential(nn.Linear(d, width), nn.GELU(), nn.Dropout(0.2))
        pooled = 2 * width
        if system == "ctc_fusion":
            self.phonetic = nn.GRU(width, width // 2, batch_first=True, bidirectional=True)
            pooled += 2 * width
        if system in ("mtlser", "ctc_fusion"):
            self.transcript = nn.Linear(width, vocab)
        if system == "mtlser":
            self.speaker = nn.Linear(pooled, n_speakers)
        self.emotion = nn.Sequential(nn.Dropout(0.2), nn.Linear(pooled, n_emotions))

    def forward(self, states: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        w = torch.softmax(self.layer_logits, dim=0)
        z = (states - self.mean) / self.std
        h = self.project((z * w[None, None, :, None]).sum(2))
        z = masked_stats(h, lengths)
        out: dict[str, torch.Tensor] = {}
        if self.system == "ctc_fusion":
            packed = nn.utils.rnn.pack_padded_sequence(h, lengths.cpu(), batch_first=True, enforce_sorted=False)
            p, _ = self.phonetic(packed)
            p, _ = nn.utils.rnn.pad_packed_sequence(p, batch_first=True, total_length=h.shape[1])
            out["transcript"] = self.transcript(p)
            z = torch.cat([z, masked_stats(p, lengths)], dim=1)
        elif self.system == "mtlser":
            out["transcript"] = self.transcript(h)
            out["speaker"] = self.speaker(z)
        out["emotion"] = self.emotion(z)
        return out


def ctc(
    logits: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor
) -> torch.Tensor:
    """CTC loss (blank 0) over the rows with a transcript (``target_lengths > 0``)."""
    keep = target_lengths > 0
    if not bool(keep.any()):
        return logits.new_zeros(())
    log_probs = logits[keep].log_softmax(-1).transpose(0, 1)
    return F.ctc_loss(log_probs, targets[keep], lengths[keep], target_lengths[keep], zero_infinity=True)
