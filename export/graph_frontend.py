"""The numpy front-end rebuilt from torch ops, so it can live inside an ONNX graph.

A waveform-in model is ``GraphFrontEnd`` followed by the network: firmware then needs
nothing but ONNX Runtime. Framing, window and DFT are one strided ``conv1d`` whose kernels
are the windowed cosine and sine rows (the DFT as a matrix product); the mel filterbank,
log, DCT, lifter, energy and normalization follow as in :mod:`edge_ser.frontend`, whose
matrices it reuses. Equality with the numpy front-end is tested, not assumed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edge_ser.frontend import _EPS, FrontEnd, Normalization


class GraphFrontEnd(nn.Module):
    """Waveform ``(batch, samples)`` -> normalized features ``(batch, frames, n_features)``."""

    def __init__(self, frontend: FrontEnd, normalization: Normalization | None = None) -> None:
        super().__init__()
        if frontend.kind == "waveform":
            raise ValueError("the waveform front-end needs no graph")
        self.frontend = frontend
        self.normalization = normalization or Normalization()
        length, n_fft = frontend.frame_length, frontend.n_fft
        window = frontend.frame_window
        k = np.arange(n_fft // 2 + 1)[None, :]
        angle = 2 * np.pi * np.arange(length)[:, None] * k / n_fft
        kernels = np.concatenate([window[:, None] * np.cos(angle), -window[:, None] * np.sin(angle)], axis=1)
        self.register_buffer("dft", torch.tensor(kernels.T[:, None, :], dtype=torch.float32))
        if frontend.kind in ("mfcc", "logmel"):
            self.register_buffer("projection", torch.tensor(frontend._projection))
        if frontend.kind == "mfcc":
            self.register_buffer("cepstrum", torch.tensor(frontend._cepstrum))
        if self.normalization.mode == "global":
            mean, inv_std = self.normalization._stats
            self.register_buffer("mean", torch.tensor(mean))
            self.register_buffer("inv_std", torch.tensor(inv_std))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        fe = self.frontend
        length, step, bins = fe.frame_length, fe.frame_step, fe.n_fft // 2 + 1
        x = wave
        if fe.preemph:
            x = torch.cat([x[:, :1], x[:, 1:] - fe.preemph * x[:, :-1]], dim=1)
        # frames = 1 + ceil((n - length) / step), at least 1; the last one zero-padded
        n = x.shape[1]
        n_frames = (
            torch.div(torch.clamp(torch.as_tensor(n) - length, min=0) + step - 1, step, rounding_mode="floor") + 1
        )
        x = nn.functional.pad(x, (0, length))
        spec = nn.functional.conv1d(x[:, None, :], self.dft, stride=step)[:, :, :n_frames]
        power = (spec[:, :bins] ** 2 + spec[:, bins:] ** 2).transpose(1, 2)
        if fe.kind == "logspec":
            feats = torch.log(_floor(power / fe.n_fft))
        else:
            feats = torch.log(_floor(power @ self.projection))
            if fe.kind == "mfcc":
                feats = feats @ self.cepstrum
                if fe.append_energy:
                    energy = torch.log(_floor(power.sum(dim=2, keepdim=True) / fe.n_fft))
                    feats = torch.cat([energy, feats[:, :, 1:]], dim=2)
        if self.normalization.mode == "global":
            feats = (feats - self.mean) * self.inv_std
        elif self.normalization.mode == "utterance":
            mean = feats.mean(dim=1, keepdim=True)
            std = ((feats - mean) ** 2).mean(dim=1, keepdim=True).sqrt()
            feats = (feats - mean) / torch.clamp(std, min=1e-5)
        return feats


def _floor(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x == 0, torch.full_like(x, _EPS), x)
