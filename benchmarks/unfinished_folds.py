"""Score the folds of a run that are still training: each one's best epoch so far on its test speakers.

    python benchmarks/unfinished_folds.py --json OUT.json -- ARGS OF THE RUN'S edge-ser train COMMAND

The run's own ``edge-ser train`` arguments rebuild its data and fold plan (:func:`models.training.run.prepare_run`);
every fold in ``--out`` with a ``state.pt`` and no ``metrics.json`` is scored as
:func:`models.training.loop.evaluate_unfinished` does (the epoch validation chose among those run so far; the test
part never chose anything), without touching the run. For a run cut short by the machine, so that its finished
epochs still give a figure, marked as such: it is not the recipe's result.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.arch.heads import PRIMARY
from models.training.cli import configure_parser, run_config_from_args
from models.training.loop import evaluate_unfinished
from models.training.run import prepare_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then the run's edge-ser train arguments")
    args = parser.parse_args(argv)
    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    train_parser = argparse.ArgumentParser(prog="edge-ser train")
    configure_parser(train_parser)
    run = run_config_from_args(train_parser.parse_args(train_args))
    plan = prepare_run(run)
    rows = {}
    for index, fold in plan.folds:
        result = evaluate_unfinished(
            plan.data,
            fold,
            fold_index=index,
            arch=run.arch,
            aux=plan.aux,
            cfg=plan.cfg,
            out_dir=Path(run.out) / fold.name,
            protocol=plan.protocol,
        )
        if result is None or result.test is None:
            continue
        test = result.test[PRIMARY]
        rows[fold.name] = {
            "epochs_run": result.epochs_run,
            "epochs": plan.cfg.epochs,
            "best_epoch": result.best_epoch,
            "best_val_ua": result.best_val_ua,
            "ua": test["ua"],
            "wa": test["wa"],
        }
        print(
            f"{fold.name}: {result.epochs_run}/{plan.cfg.epochs} epochs, best so far epoch {result.best_epoch}"
            f" (val UA {100 * (result.best_val_ua or 0):.1f}): test UA {100 * test['ua']:.1f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
