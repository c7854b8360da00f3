"""Speaker-independent UA of students alone and averaged: is a gap between runs variance, or shared?

    python benchmarks/fold_ensemble.py LABEL=RUN_DIR ... --dataset casia --data ../shared/datasets/casia [--out FILE]

Each RUN_DIR is a finished ``edge-ser train`` run over the same folds. Every fold's checkpoint is scored again on
that fold's test speakers (window probabilities averaged per utterance, as the runtime does; each alone gives its
run's own figure back), then the probabilities of all runs are averaged ("all"), and of every pair ("pairs": the
mean UA of the pairs). If averaging several students gains little, their errors are shared and more seeds of the
same recipe will not close the gap. ``--members``: each packed member of a run (edge_cnn ``members`` > 1) is also
scored alone (rows ``LABEL member M``, not in the averages): what the packing adds over its members.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.report import emit
from edge_ser.frontend import FrontEnd, Normalization
from models.data.corpora import load_corpus
from models.data.labels import head_targets
from models.data.protocols import make_folds
from models.training.checkpoint import load_checkpoint, member_model
from models.training.config import TrainConfig
from models.training.corpus_data import prepare_data
from models.training.evaluate import eval_inputs, predict
from models.training.metrics import scores


def table(
    runs: dict[str, Path], dataset: str, root: str, cache_dir: str | None = None, members: bool = False
) -> list[str]:
    corpus = load_corpus(dataset, root)
    first = next(iter(runs.values()))
    folds = sorted(p.parent.name for p in first.glob("*/metrics.json"))
    config = json.loads((first / folds[0] / "config.json").read_text())
    window, training = config["window"], config["training"]
    plan = {f.name: f for f in make_folds(corpus, training["protocol"], seed=training["seed"])}
    cfg = TrainConfig(progress=False, window_seconds=window["seconds"], hop_seconds=window["hop_seconds"])
    data = prepare_data(corpus, FrontEnd.from_dict(config["frontend"]), cfg, cache_dir)
    rows: dict[str, dict[str, float]] = {}
    for fold in folds:
        test = list(plan[fold].test)
        probs, alone = {}, {}
        for label, run in runs.items():
            model, config = load_checkpoint(run / fold)
            x = eval_inputs(data.inputs, data.windows, test, Normalization.from_dict(config["normalization"]))
            probs[label] = predict(model, x)["emotion"]
            for m in range(model.members if members else 0):
                alone[f"{label} member {m}"] = predict(member_model(model, config, m)[0], x)["emotion"]
        classes = config["labels"]["emotion"]
        y = head_targets(corpus, {"emotion": classes})["emotion"][test]

        def ua(p: np.ndarray, y: np.ndarray = y, n: int = len(classes)) -> float:
            return 100 * scores(y, p.argmax(1), n)["ua"]

        rows[fold] = {label: ua(p) for label, p in {**alone, **probs}.items()}
        rows[fold]["all, probabilities averaged"] = ua(np.mean(list(probs.values()), axis=0))
        pairs = [ua((probs[a] + probs[b]) / 2) for a, b in itertools.combinations(probs, 2)]
        rows[fold]["pairs, mean UA"] = float(np.mean(pairs)) if pairs else float("nan")
    labels = list(rows[folds[0]])
    lines = ["| students | " + " | ".join(folds) + " | mean |", "|---|" + "---:|" * (len(folds) + 1)]
    for label in labels:
        values = [rows[f][label] for f in folds]
        lines.append(f"| {label} | " + " | ".join(f"{v:.1f}" for v in values) + f" | **{np.mean(values):.1f}** |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--cache-dir", help="feature cache (default: training's)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--members", action="store_true", help="score each packed member alone too")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    runs = {}
    for item in args.runs:
        label, _, path = item.rpartition("=")
        if not label or not Path(path).is_dir():
            parser.error(f"expected LABEL=RUN_DIR with an existing folder, got {item!r}")
        runs[label] = Path(path)
    lines = table(runs, args.dataset, args.data, args.cache_dir, args.members)
    command = "python benchmarks/fold_ensemble.py " + " ".join(sys.argv[1:] if argv is None else argv)
    emit([f"Command: `{command}`", "", *lines], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
