"""Checkpoint -> self-describing ONNX file (feature-in or waveform-in), checked and tested for parity.

The exported graph takes model input ``(batch, frames, features)`` — or raw samples
``(batch, samples)`` with ``waveform_in`` — and returns one logits tensor per kept head,
with dynamic batch and time axes. The model contract (see ``docs/model-contract.md``) is
written into the file's metadata, so :class:`edge_ser.Recognizer` needs nothing else.
"""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from edge_ser.contract import Head, ModelContract
from edge_ser.errors import ModelError
from edge_ser.frontend import FrontEnd, Normalization
from models.data import transcripts

from .graph_frontend import GraphFrontEnd

OPSET = 17
INPUT = "input"


class _WaveformIn(nn.Module):
    """Front-end graph followed by the network."""

    def __init__(self, frontend: GraphFrontEnd, network: nn.Module) -> None:
        super().__init__()
        self.frontend, self.network = frontend, network

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.network(self.frontend(wave))


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def make_contract(
    config: dict[str, Any],
    heads: Sequence[str],
    waveform_in: bool = False,
    provenance: dict[str, Any] | None = None,
    name: str | None = None,
) -> ModelContract:
    """The contract of a checkpoint's network exported with ``heads`` (validated)."""
    try:
        frontend = FrontEnd.from_dict(config["frontend"])
        normalization = Normalization.from_dict(config.get("normalization") or {"mode": "none"})
        labels, window = config["labels"], config["window"]
        training = config.get("training", {})
        in_graph = waveform_in and frontend.kind != "waveform"
        if in_graph and frontend.kind == "functionals":
            raise ModelError(
                "the functionals front-end (percentiles over time) has no in-graph version: drop --waveform-in"
            )
        return ModelContract(
            name=name or f"{config['arch']}-{training.get('corpus', 'custom')}",
            input_kind="waveform" if (waveform_in or frontend.kind == "waveform") else "features",
            input_name=INPUT,
            sample_rate=frontend.sample_rate,
            frontend=frontend,
            normalization=normalization,
            window_seconds=float(window["seconds"]),
            hop_seconds=float(window["hop_seconds"]),
            min_seconds=float(window["min_seconds"]),
            heads=tuple(
                Head(h, f"{h}_logits", tuple(labels[h]), "ctc", separator=transcripts.separator(h))
                if transcripts.is_ctc(h)
                else Head(h, f"{h}_logits", tuple(labels[h]))
                for h in heads
            ),
            parameters=int(config["parameters"]),
            provenance=provenance or {},
            frontend_in_graph=in_graph,
            adaptation="speaker" if training.get("normalization") == "speaker" else "none",
        )
    except KeyError as exc:
        raise ModelError(f"checkpoint config lacks {exc.args[0]!r}; was it written by edge-ser train?") from None


def export_module(model: nn.Module, contract: ModelContract) -> nn.Module:
    """The torch module the ONNX graph is traced from: selected heads, front-end in front if in-graph."""
    network = model.export_module([h.name for h in contract.heads]).eval()
    if not contract.frontend_in_graph:
        return network
    return _WaveformIn(GraphFrontEnd(contract.frontend, contract.normalization), network).eval()


def example_input(contract: ModelContract, seconds: float = 1.0) -> torch.Tensor:
    n = int(seconds * contract.sample_rate)
    wave = 0.1 * torch.randn(1, n, generator=torch.Generator().manual_seed(0))
    if contract.input_kind == "waveform":
        return wave
    return torch.from_numpy(contract.normalization(contract.frontend(wave[0].numpy())))[None].float()


def to_onnx(module: nn.Module, contract: ModelContract, path: str | os.PathLike) -> Path:
    """Trace ``module`` to ONNX at ``path`` with dynamic batch/time axes, check it, add the contract."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    outputs = [h.output for h in contract.heads]
    time_axis = "samples" if contract.input_kind == "waveform" else "frames"
    dynamic = {INPUT: {0: "batch", 1: time_axis}}
    dynamic.update(
        {h.output: {0: "batch", 1: "out_frames"} if h.kind == "ctc" else {0: "batch"} for h in contract.heads}
    )
    if contract.embedding is not None:  # the module returns the adapted logits and the embedding after the heads
        outputs += [contract.embedding.output, contract.embedding.embedding_output]
        dynamic.update({name: {0: "batch"} for name in outputs[-2:]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example_input(contract),),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT],
            output_names=outputs,
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    write_contract(model, contract)
    onnx.save(model, str(path))
    return path


def write_contract(model: onnx.ModelProto, contract: ModelContract) -> None:
    """Replace the model's metadata_props with ``contract``."""
    del model.metadata_props[:]
    for key, value in contract.to_metadata().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "edge-ser"


def provenance_from(config: dict[str, Any], checkpoint: str | os.PathLike) -> dict[str, Any]:
    training = config.get("training", {})
    return {
        "dataset": training.get("corpus"),
        "fold": training.get("fold"),
        "protocol": training.get("protocol"),
        "command": training.get("command"),
        "metrics": config.get("metrics", {}),
        "checkpoint": str(checkpoint),
        "commit": git_commit(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
