"""Architecture registry and ``build_model``: a JSON-able config in, a :class:`SERModel` out.

A config looks like ``{"arch": "pcnn", "heads": {"emotion": 6, "gender": 2}, "loss_weights":
{"gender": 0.3}, "frontend": FrontEnd.to_dict(), "backbone": {...}, "dropout": 0.3}``; only
``arch`` and ``heads`` are required, the rest default to what the architecture declares.
The same config (plus weights) rebuilds the model, so checkpoints store it as JSON.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from edge_ser.frontend import FrontEnd

from ..data.transcripts import is_ctc
from .audio_resnet import AudioResNet
from .edge_cnn import EdgeCNN
from .functionals_mlp import FunctionalsMLP
from .heads import PRIMARY, SERModel
from .pcnn import PCNN
from .spectrogram_resnet import SpectrogramResNet
from .stats_net import StatsNet
from .stream_net import StreamNet
from .whisper_lite import WhisperLite


@dataclass(frozen=True)
class Architecture:
    """A named backbone with the front-end it is meant for and the heads it always carries."""

    name: str
    backbone: Callable[..., nn.Module]
    frontend: dict[str, Any]
    dropout: float = 0.0
    required_heads: dict[str, float] = field(default_factory=dict)  # head -> default loss weight
    summary: str = ""

    @property
    def input_kind(self) -> str:
        return self.backbone.input_kind


_MFCC40 = FrontEnd(kind="mfcc", n_mels=40, n_mfcc=40).to_dict()

ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            "audio_resnet",
            AudioResNet,
            FrontEnd(kind="waveform").to_dict(),
            summary="1-D residual CNN on the raw 16 kHz waveform, ~0.13M parameters",
        ),
        Architecture(
            "spectrogram_resnet",
            SpectrogramResNet,
            FrontEnd(kind="logspec", window="hamming").to_dict(),
            summary="2-D residual CNN on the 257-bin log-power spectrogram, ~0.37M parameters",
        ),
        Architecture(
            "pcnn",
            PCNN,
            _MFCC40,
            dropout=0.3,
            summary="parallel-kernel feature combination + CNN body on 40 MFCCs",
        ),
        Architecture(
            "pcnn_gender",
            PCNN,
            _MFCC40,
            dropout=0.3,
            required_heads={"gender": 0.3},
            summary="P-CNN with an auxiliary gender head (loss = CE(emotion) + 0.3 CE(gender) by default)",
        ),
        Architecture(
            "edge_cnn",
            EdgeCNN,
            FrontEnd(kind="logmel", n_mels=64, window="hann").to_dict(),
            dropout=0.2,
            summary="edge-ser's own: depthwise-separable CNN on 64 log-mel + attentive pooling, ~0.2M",
        ),
        Architecture(
            "stream_net",
            StreamNet,
            FrontEnd(kind="logmel", n_mels=64, window="hann").to_dict(),
            dropout=0.2,
            summary="edge-ser's own: causal 1-D separable frame model on 64 log-mel + mean/std pooling, ~0.15M;"
            " runs frame by frame",
        ),
        Architecture(
            "whisper_lite",
            WhisperLite,
            FrontEnd(kind="logmel", n_mels=80, n_fft=512, window="hann", preemph=0.0, high_freq=8000).to_dict(),
            dropout=0.2,
            summary="edge-ser's own: Whisper's conv stem + first block, low-rank and pruned (~0.25M, ~27 M MAC per"
            " 3 s); initialize from the teacher with python -m models.training.lite",
        ),
        Architecture(
            "stats_net",
            StatsNet,
            _MFCC40,
            dropout=0.2,
            summary="edge-ser's own: learned utterance functionals (mean/std/max/min of frames and deltas) + MLP",
        ),
        Architecture(
            "functionals_mlp",
            FunctionalsMLP,
            FrontEnd(kind="functionals", n_mels=40, n_mfcc=40).to_dict(),
            dropout=0.5,
            summary="edge-ser's own: MLP on utterance functionals of 40 MFCC + 40 log-mel (~0.1M); pairs with"
            " --normalization speaker and a SpeakerProfile",
        ),
    )
}


def input_kind(frontend: FrontEnd) -> str:
    """What a backbone takes for ``frontend``: raw ``waveform``, one row of ``functionals`` or frame ``features``."""
    return frontend.kind if frontend.kind in ("waveform", "functionals") else "features"


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; expected one of {sorted(ARCHITECTURES)}") from None


def default_config(
    arch: str,
    heads: Mapping[str, int],
    loss_weights: Mapping[str, float] | None = None,
    frontend: Mapping[str, Any] | None = None,
    backbone: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete config for ``arch``: its declared front-end, dropout and required heads filled in;
    ``backbone``: keyword arguments of its backbone (default: the backbone's own)."""
    spec = get_architecture(arch)
    weights = {**spec.required_heads, **dict(loss_weights or {})}
    missing = [h for h in spec.required_heads if h not in heads]
    if missing:
        raise ValueError(f"{arch} needs heads {missing}")
    return {
        "arch": arch,
        "heads": {PRIMARY: int(heads[PRIMARY]), **{k: int(v) for k, v in heads.items() if k != PRIMARY}},
        "loss_weights": {k: float(v) for k, v in weights.items() if k in heads},
        "frontend": dict(frontend) if frontend is not None else dict(spec.frontend),
        "backbone": dict(backbone or {}),
        "dropout": spec.dropout,
    }


def build_model(config: Mapping[str, Any]) -> SERModel:
    """The :class:`SERModel` a config describes (freshly initialized)."""
    spec = get_architecture(config["arch"])
    frontend = FrontEnd.from_dict(dict(config.get("frontend") or spec.frontend))
    if input_kind(frontend) != spec.input_kind:
        raise ValueError(f"{spec.name} takes {spec.input_kind} input, not a {frontend.kind!r} front-end")
    heads = dict(config["heads"])
    missing = [h for h in spec.required_heads if h not in heads]
    if missing:
        raise ValueError(f"{spec.name} needs heads {missing}")
    weights = {**spec.required_heads, **dict(config.get("loss_weights") or {})}
    options = dict(config.get("backbone") or {})
    known = set(inspect.signature(spec.backbone).parameters) - {"n_features"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"{spec.name}'s backbone takes no {unknown} (it takes {sorted(known)})")
    backbone = spec.backbone(n_features=frontend.n_features, **options)
    return SERModel(
        backbone,
        heads,
        {k: v for k, v in weights.items() if k in heads},
        dropout=float(config.get("dropout", spec.dropout)),
        ctc_heads=[h for h in heads if is_ctc(h)],
        adversarial=tuple(config.get("adversarial") or ()),
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
