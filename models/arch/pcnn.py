"""P-CNN: parallel-convolution CNN on MFCCs, the backbone of P-CNN and P-CNN+Gender.

A feature-combination stage runs three convolutions with differently shaped kernels in
parallel over the ``(frames, coefficients)`` map -- long in time (11x1), long across
coefficients (1x9) and local (3x3) -- and concatenates them, so the body sees temporal,
spectral and joint patterns side by side. The body is a plain CNN (3x3 convolutions of
64, 96, 128, 160 channels and a 1x1 of 320, each with batch norm and average pooling),
followed by global average pooling. This follows the Light-SERNet layout that P-CNN uses.
Average pooling uses ``ceil_mode`` (partial windows averaged over their valid cells, as
Keras' ``same`` pooling does), so short inputs never collapse to zero size.
"""

from __future__ import annotations

import torch
from torch import nn

PATH_KERNELS = ((11, 1), (1, 9), (3, 3))  # (time, coefficient) kernel of each parallel path
BODY = ((64, (2, 2)), (96, (2, 2)), (128, (2, 1)), (160, (2, 1)))  # (channels, pooling) of 3x3 layers


def _conv_bn(c_in: int, c_out: int, kernel: tuple[int, int], bias: bool = False) -> list[nn.Module]:
    pad = (kernel[0] // 2, kernel[1] // 2)
    return [nn.Conv2d(c_in, c_out, kernel, padding=pad, bias=bias), nn.BatchNorm2d(c_out), nn.ReLU()]


class PCNN(nn.Module):
    """Features ``(batch, frames, n_mfcc)`` -> embedding ``(batch, 320)``."""

    input_kind = "features"

    def __init__(self, n_features: int | None = None, path_channels: int = 32, head_channels: int = 320) -> None:
        super().__init__()
        self.paths = nn.ModuleList(
            nn.Sequential(*_conv_bn(1, path_channels, k, bias=True), nn.AvgPool2d(2, ceil_mode=True))
            for k in PATH_KERNELS
        )
        layers: list[nn.Module] = []
        c_in = path_channels * len(PATH_KERNELS)
        for c_out, pool in BODY:
            layers += [*_conv_bn(c_in, c_out, (3, 3)), nn.AvgPool2d(pool, ceil_mode=True)]
            c_in = c_out
        layers += _conv_bn(c_in, head_channels, (1, 1))
        self.body = nn.Sequential(*layers)
        self.embedding_dim = head_channels
        self.min_frames = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)
        h = torch.cat([path(x) for path in self.paths], dim=1)
        return self.body(h).mean(dim=(-2, -1))
