"""Weights derived from trained runs, fold by fold, without training: a network cut to depth 1, or a fine-tune
averaged with the run it started from.

    python -m models.training.surgery RUN_DIR OUT_DIR
    python -m models.training.surgery CHILD_RUN OUT_DIR --average-with PARENT_RUN [--alpha 0.5]

**Cut** (the first form): every finished fold of the ``edge_cnn`` run ``RUN_DIR`` is written to ``OUT_DIR`` as a
depth-1 network: each stage keeps its strided separable block and drops the residual ones after it (``x + f(x)``
becomes ``x``), everything else is kept as trained. The folds keep their training record (corpus, protocol, fold,
seed), so ``edge-ser train --init OUT_DIR --backbone '{"depth": 1, ...}'`` accepts them for the same folds only, as
it does any parent run. Why: a residual block can be removed from a trained network and the rest recovers in a
short fine-tune, where the same shallower network trained from scratch starts from nothing (``docs/teacher.md``).

**Average** (``--average-with``): every finished fold of ``CHILD_RUN`` (trained with ``--init PARENT_RUN``) is
written as ``(1 - alpha) * parent + alpha * child`` of each floating-point tensor, batch-norm running statistics
included (counters are the child's), with the child's configuration (front-end, backbone options, heads) and
without its test scores. Why: a fine-tune moves a network a short way from its start, and the average of the two
often keeps the fine-tune's accuracy while generalizing better to data unlike the training set (WiSE-FT: Wortsman
et al., "Robust fine-tuning of zero-shot models", 2022); here, to unheard speakers. A fold is averaged only with
the parent's same fold trained on the same corpus, protocol and seed (the same training speakers).
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

from models.arch.edge_cnn import EdgeCNN

from .checkpoint import CONFIG, WEIGHTS, load_tensors, save_tensors

DEFAULT_DEPTH = inspect.signature(EdgeCNN).parameters["depth"].default  # a config without "depth" has EdgeCNN's
_BLOCK = re.compile(r"^(backbone\.blocks)\.(\d+)\.(.+)$")
REPORT = "report.json"
SAME_SPEAKERS = ("corpus", "protocol", "fold", "seed")  # training record fields that fix a fold's speakers


def shallower_state(state: dict, depth: int) -> dict:
    """``state`` of an ``edge_cnn`` of ``depth`` blocks per stage, as the state of the depth-1 network: block
    ``stage * depth`` becomes block ``stage``, the residual blocks between are left out."""
    kept = {}
    for key, value in state.items():
        match = _BLOCK.match(key)
        if match is None:
            kept[key] = value
        elif int(match.group(2)) % depth == 0:
            kept[f"{match.group(1)}.{int(match.group(2)) // depth}.{match.group(3)}"] = value
    return kept


def averaged_state(parent: dict, child: dict, alpha: float) -> dict:
    """``(1 - alpha) * parent + alpha * child`` of each floating-point tensor; others (counters) from ``child``.
    ``ValueError`` unless both hold the same tensors with the same shapes."""
    if parent.keys() != child.keys():
        raise ValueError(f"the two networks differ in tensors: {sorted(set(parent) ^ set(child))[:5]}")
    out = {}
    for key, value in child.items():
        if parent[key].shape != value.shape:
            shapes = tuple(parent[key].shape), tuple(value.shape)
            raise ValueError(f"{key}: shape {shapes[0]} in the parent, {shapes[1]} in the child")
        out[key] = torch.lerp(parent[key], value, alpha) if value.is_floating_point() else value.clone()
    return out


def _finished_folds(run_dir: Path) -> Iterator[tuple[Path, dict]]:
    """Each fold folder of ``run_dir`` with a checkpoint, and its configuration."""
    for config_path in sorted(run_dir.glob(f"*/{CONFIG}")):
        if (config_path.parent / WEIGHTS).is_file():
            yield config_path.parent, json.loads(config_path.read_text())


def _write_fold(target: Path, config: dict, state: dict, derived_from: str) -> None:
    """A derived fold: its weights, and its configuration with where it came from."""
    config["training"] = {**(config.get("training") or {}), "derived_from": derived_from}
    target.mkdir(parents=True, exist_ok=True)
    save_tensors(target / WEIGHTS, state)
    (target / CONFIG).write_text(json.dumps(config, indent=1) + "\n")


def shallower_run(run_dir: str | Path, out_dir: str | Path) -> list[str]:
    """Write every finished fold of ``run_dir`` to ``out_dir`` as a depth-1 ``edge_cnn`` (see the module's
    docstring); returns the folds written. ``ValueError`` for another architecture or a network already depth 1."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    written = []
    for fold, config in _finished_folds(run_dir):
        if config.get("arch") != "edge_cnn":
            raise ValueError(f"{fold}: an edge_cnn run is needed, this is {config.get('arch')!r}")
        backbone = dict(config.get("backbone") or {})
        if backbone.get("members", 1) != 1:
            raise ValueError(f"{fold}: a single network is cut, not packed members ({backbone})")
        depth = int(backbone.get("depth", DEFAULT_DEPTH))
        if depth < 2:
            raise ValueError(f"{fold}: the network is already depth {depth}")
        state = shallower_state(load_tensors(fold / WEIGHTS), depth)
        backbone["depth"] = 1
        config["backbone"] = backbone
        config["training"] = {**(config.get("training") or {}), "backbone": backbone}
        _write_fold(out_dir / fold.name, config, state, f"{fold} (residual blocks dropped: models.training.surgery)")
        written.append(fold.name)
    if not written:
        raise ValueError(f"{run_dir}: no finished fold (config.json and model.pt) to cut")
    return written


def averaged_run(parent_dir: str | Path, child_dir: str | Path, out_dir: str | Path, alpha: float) -> list[str]:
    """Write every finished fold of ``child_dir`` averaged with the same fold of ``parent_dir`` into ``out_dir``,
    with a ``report.json`` that lists the folds (its scores are left out: they describe the child, not the
    average). Returns the folds written; ``ValueError`` for a fold the parent lacks or trained on other speakers."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    parent_dir, child_dir, out_dir = Path(parent_dir), Path(child_dir), Path(out_dir)
    written = []
    for fold, config in _finished_folds(child_dir):
        source = parent_dir / fold.name
        if not (source / WEIGHTS).is_file():
            raise ValueError(f"{parent_dir}: no finished fold {fold.name!r} to average with")
        parent_training = json.loads((source / CONFIG).read_text()).get("training", {})
        mine, theirs = ({k: t.get(k) for k in SAME_SPEAKERS} for t in (config.get("training") or {}, parent_training))
        if mine != theirs:
            raise ValueError(f"{fold.name}: the parent's fold was trained as {theirs}, the child's as {mine}")
        state = averaged_state(load_tensors(source / WEIGHTS), load_tensors(fold / WEIGHTS), alpha)
        config["metrics"] = {}  # the child's test scores do not describe the average
        derived = f"{1 - alpha:g} x {source} + {alpha:g} x {fold} (weights averaged: models.training.surgery)"
        _write_fold(out_dir / fold.name, config, state, derived)
        written.append(fold.name)
    if not written:
        raise ValueError(f"{child_dir}: no finished fold (config.json and model.pt) to average")
    report = json.loads((child_dir / REPORT).read_text()) if (child_dir / REPORT).is_file() else {}
    command = ["python -m models.training.surgery", str(child_dir), str(out_dir), "--average-with", str(parent_dir)]
    report.update(
        command=" ".join(command) + f" --alpha {alpha:g}", folds={n: {"fold": n} for n in written}, summary={}
    )
    (out_dir / REPORT).write_text(json.dumps(report, indent=1) + "\n")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="the run to cut, or with --average-with the fine-tuned (child) run")
    parser.add_argument("out_dir")
    parser.add_argument("--average-with", metavar="PARENT_RUN", help="average with this run, the child's --init")
    parser.add_argument("--alpha", type=float, default=0.5, help="with --average-with: the child's share (0.5)")
    args = parser.parse_args(argv)
    try:
        if args.average_with:
            folds = averaged_run(args.average_with, args.run_dir, args.out_dir, args.alpha)
        else:
            folds = shallower_run(args.run_dir, args.out_dir)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    kind = "averaged" if args.average_with else "depth-1"
    print(f"wrote {len(folds)} {kind} folds to {args.out_dir}: {', '.join(folds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
