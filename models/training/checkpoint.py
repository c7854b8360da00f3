"""Checkpoints: weights as a plain ``state_dict`` file, everything else as JSON.

``model.pt`` holds only tensors and ``config.json`` the architecture, heads, front-end,
normalization, labels, window, training arguments and metrics, so a model can be rebuilt
with :func:`models.arch.registry.build_model` and loaded with ``torch.load(weights_only=True)``.
Resumable training state (optimizer, scheduler, epoch counters, history) is saved the same
way: nested dicts and lists of tensors and plain numbers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..arch.heads import SERModel
from ..arch.registry import build_model
from . import distributed

WEIGHTS = "model.pt"
CONFIG = "config.json"


def jsonable(value: Any) -> Any:
    """``value`` with numpy arrays and scalars turned into lists and Python numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically (a crash never leaves a truncated file); under torchrun, on rank 0 only."""
    if not distributed.is_main():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(jsonable(data), indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def save_tensors(path: str | os.PathLike, data: Any) -> None:
    """``torch.save`` atomically; ``data`` must hold only tensors, containers and plain values. Under
    torchrun, on rank 0 only."""
    if not distributed.is_main():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)


def load_tensors(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """Inverse of :func:`save_tensors`; refuses anything but tensors and plain values."""
    return torch.load(path, map_location=map_location, weights_only=True)


def save_checkpoint(directory: str | os.PathLike, model: SERModel, config: dict[str, Any]) -> None:
    """``model.pt`` (CPU state_dict) and ``config.json`` in ``directory``."""
    directory = Path(directory)
    save_tensors(directory / WEIGHTS, {k: v.detach().cpu() for k, v in model.state_dict().items()})
    write_json(directory / CONFIG, config)


def load_checkpoint(
    directory: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[SERModel, dict[str, Any]]:
    """The model in ``directory`` (in eval mode) and its config."""
    directory = Path(directory)
    config = json.loads((directory / CONFIG).read_text())
    model = build_model(config)
    model.load_state_dict(load_tensors(directory / WEIGHTS, map_location))
    return model.eval(), config


def member_model(model: SERModel, config: dict[str, Any], member: int) -> tuple[SERModel, dict[str, Any]]:
    """Packed member ``member`` of ``model`` (an edge_cnn with backbone ``members`` > 1) as a network of its own,
    in eval mode, and its config: to score the members alone beside their average. Each per-member tensor is its
    member's rows; the heads and a shared trunk (``shared``), which the members share, are copied."""
    members = model.members
    if not 0 <= member < members:
        raise ValueError(f"member {member!r} of a model with {members} packed members")
    backbone = {k: v for k, v in (config.get("backbone") or {}).items() if k not in ("members", "shared")}
    single_config = {**config, "backbone": backbone}
    single = build_model(single_config)
    packed = model.state_dict()
    state = {}
    for name, tensor in single.state_dict().items():
        source = packed[name]
        if source.shape != tensor.shape:
            source = source.chunk(members)[member].reshape(tensor.shape)
        state[name] = source.clone()
    single.load_state_dict(state)
    return single.eval(), single_config


def trained_fold(
    run_dir: str | os.PathLike, fold: str, *, option: str, wanted: dict[str, Any], leak: str
) -> tuple[dict[str, Any], Any]:
    """The config and weights of fold ``fold`` of the finished run ``run_dir``, refused (``ValueError`` naming
    ``option``) unless its training settings hold ``wanted`` (e.g. the same corpus, protocol and fold): weights
    trained on another split could have heard ``leak`` (what this run keeps out)."""
    directory = Path(run_dir) / fold
    try:
        config = json.loads((directory / CONFIG).read_text())
        state = load_tensors(directory / WEIGHTS)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{option} {run_dir}: no finished fold {fold!r} there ({exc})") from None
    trained = {key: config.get("training", {}).get(key) for key in wanted}
    if wanted.get("protocol") is None or trained != wanted:
        raise ValueError(
            f"{option} {run_dir}: fold {fold!r} was trained as {trained}, this run is {wanted}; "
            f"its weights could have heard {leak}"
        )
    return config, state


def warm_start(
    model: SERModel, run_dir: str | os.PathLike, *, corpus: str, protocol: str | None, fold: str, seed: int
) -> None:
    """Load into ``model`` the weights of fold ``fold`` of the finished run ``run_dir``: a fine-tuning start.

    Refused (``ValueError``) unless that fold was trained on the same corpus and protocol, as the same fold, with
    the same seed (the seed can change a protocol's split), so on the same training speakers: weights that heard
    this fold's test or validation speakers would leak them into its scores. Its weights must also fit ``model``
    exactly (the same architecture, backbone options and heads)."""
    wanted = {"corpus": corpus, "protocol": protocol, "fold": fold, "seed": seed}
    leak = "this fold's test or validation speakers"
    _, state = trained_fold(run_dir, fold, option="--init", wanted=wanted, leak=leak)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise ValueError(f"--init {run_dir}: its fold {fold!r} does not fit this model ({reason})") from None
