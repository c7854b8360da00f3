"""Starting weights for a smaller network, cut from a trained run: ``--init`` for a shallower fine-tune.

    python -m models.training.surgery RUN_DIR OUT_DIR

Every finished fold of the ``edge_cnn`` run ``RUN_DIR`` is written to ``OUT_DIR`` as a depth-1 network: each stage
keeps its strided separable block and drops the residual ones after it (``x + f(x)`` becomes ``x``), everything else
is kept as trained. The folds keep their training record (corpus, protocol, fold, seed), so ``edge-ser train --init
OUT_DIR --backbone '{"depth": 1, ...}'`` accepts them for the same folds only, as it does any parent run.
Why: a residual block can be removed from a trained network and the rest recovers in a short fine-tune, where the
same shallower network trained from scratch starts from nothing (``docs/teacher.md``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from pathlib import Path

from models.arch.edge_cnn import EdgeCNN

from .checkpoint import CONFIG, WEIGHTS, load_tensors, save_tensors

DEFAULT_DEPTH = inspect.signature(EdgeCNN).parameters["depth"].default  # a config without "depth" has EdgeCNN's
_BLOCK = re.compile(r"^(backbone\.blocks)\.(\d+)\.(.+)$")


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


def shallower_run(run_dir: str | Path, out_dir: str | Path) -> list[str]:
    """Write every finished fold of ``run_dir`` to ``out_dir`` as a depth-1 ``edge_cnn`` (see the module's
    docstring); returns the folds written. ``ValueError`` for another architecture or a network already depth 1."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    written = []
    for config_path in sorted(run_dir.glob(f"*/{CONFIG}")):
        fold = config_path.parent
        if not (fold / WEIGHTS).is_file():
            continue
        config = json.loads(config_path.read_text())
        if config.get("arch") != "edge_cnn":
            raise ValueError(f"{fold}: an edge_cnn run is needed, this is {config.get('arch')!r}")
        backbone = dict(config.get("backbone") or {})
        depth = int(backbone.get("depth", DEFAULT_DEPTH))
        if depth < 2:
            raise ValueError(f"{fold}: the network is already depth {depth}")
        state = shallower_state(load_tensors(fold / WEIGHTS), depth)
        backbone["depth"] = 1
        config["backbone"] = backbone
        training = dict(config.get("training") or {})
        training["backbone"] = backbone
        training["derived_from"] = f"{fold} (residual blocks dropped: models.training.surgery)"
        config["training"] = training
        target = out_dir / fold.name
        target.mkdir(parents=True, exist_ok=True)
        save_tensors(target / WEIGHTS, state)
        (target / CONFIG).write_text(json.dumps(config, indent=1) + "\n")
        written.append(fold.name)
    if not written:
        raise ValueError(f"{run_dir}: no finished fold (config.json and model.pt) to cut")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("out_dir")
    args = parser.parse_args(argv)
    try:
        folds = shallower_run(args.run_dir, args.out_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(folds)} depth-1 folds to {args.out_dir}: {', '.join(folds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
