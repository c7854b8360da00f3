"""A fine-tuned run averaged with the run it started from, fold by fold: WiSE-FT weight interpolation.

    python -m models.training.interpolate PARENT_RUN CHILD_RUN OUT_RUN [--alpha 0.5]

Every finished fold of ``CHILD_RUN`` (trained with ``--init PARENT_RUN``) is written to ``OUT_RUN`` as
``(1 - alpha) * parent + alpha * child`` of each floating-point tensor, batch-norm running statistics included
(counters are the child's), with the child's configuration: its front-end, backbone options and heads. No training.
Why: a fine-tune moves a network a short way from its start, and the average of the two often keeps the fine-tune's
accuracy while generalizing better to data unlike the training set (Wortsman et al., "Robust fine-tuning of
zero-shot models", 2022); here, to speakers no fold heard (``docs/teacher.md``).
A fold is averaged only with the parent's same fold, trained on the same corpus, protocol and seed (the same
training speakers), so the average hears no speaker its fold's child did not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from .checkpoint import CONFIG, WEIGHTS, load_tensors, save_tensors

REPORT = "report.json"
SAME_SPEAKERS = ("corpus", "protocol", "fold", "seed")  # training record fields that fix a fold's speakers


def interpolate_state(parent: dict, child: dict, alpha: float) -> dict:
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


def interpolate_run(parent_dir: str | Path, child_dir: str | Path, out_dir: str | Path, alpha: float) -> list[str]:
    """Write every finished fold of ``child_dir`` averaged with the same fold of ``parent_dir`` into ``out_dir``,
    with a ``report.json`` that lists the folds (its scores are left out: they describe the child, not the
    average). Returns the folds written; ``ValueError`` for a fold the parent lacks or trained on other speakers."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    parent_dir, child_dir, out_dir = Path(parent_dir), Path(child_dir), Path(out_dir)
    written = []
    for config_path in sorted(child_dir.glob(f"*/{CONFIG}")):
        fold = config_path.parent
        if not (fold / WEIGHTS).is_file():
            continue
        source = parent_dir / fold.name
        if not (source / WEIGHTS).is_file():
            raise ValueError(f"{parent_dir}: no finished fold {fold.name!r} to average with")
        config = json.loads(config_path.read_text())
        parent_training = json.loads((source / CONFIG).read_text()).get("training", {})
        training = dict(config.get("training") or {})
        mine, theirs = ({k: t.get(k) for k in SAME_SPEAKERS} for t in (training, parent_training))
        if mine != theirs:
            raise ValueError(f"{fold.name}: the parent's fold was trained as {theirs}, the child's as {mine}")
        state = interpolate_state(load_tensors(source / WEIGHTS), load_tensors(fold / WEIGHTS), alpha)
        training["derived_from"] = (
            f"{1 - alpha:g} x {source} + {alpha:g} x {fold} (weights averaged: models.training.interpolate)"
        )
        config["training"] = training
        config["metrics"] = {}  # the child's test scores do not describe the average
        target = out_dir / fold.name
        target.mkdir(parents=True, exist_ok=True)
        save_tensors(target / WEIGHTS, state)
        (target / CONFIG).write_text(json.dumps(config, indent=1) + "\n")
        written.append(fold.name)
    if not written:
        raise ValueError(f"{child_dir}: no finished fold (config.json and model.pt) to average")
    report = json.loads((child_dir / REPORT).read_text()) if (child_dir / REPORT).is_file() else {}
    report.update(
        command=" ".join(["python -m models.training.interpolate", str(parent_dir), str(child_dir), str(out_dir)])
        + f" --alpha {alpha:g}",
        folds={name: {"fold": name} for name in written},
        summary={},
    )
    (out_dir / REPORT).write_text(json.dumps(report, indent=1) + "\n")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parent_run")
    parser.add_argument("child_run")
    parser.add_argument("out_run")
    parser.add_argument("--alpha", type=float, default=0.5, help="the child's share (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        folds = interpolate_run(args.parent_run, args.child_run, args.out_run, args.alpha)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(folds)} averaged folds to {args.out_run}: {', '.join(folds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
