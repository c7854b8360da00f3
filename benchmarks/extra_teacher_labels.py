"""How well a fold's teacher head labels the extra corpora's clips (``edge-ser train --teacher --extra-corpus``).

    python benchmarks/extra_teacher_labels.py --teacher whisper-base:3 --corpus casia=../shared/datasets/casia \
        --extra ravdess=../shared/datasets/ravdess emodb=../shared/datasets/emodb --heads own all \
        --standardize training speaker --out benchmarks/results/extra-teacher-labels.md

Per fold of the target corpus, the targets training reads (:func:`models.training.distill.fold_targets`: soft
labels of the extra clips from one head fit on the fold's own training utterances, each extra corpus' features
aligned to them by its own statistics) against the same head fed the extra features standardized with the
target's training statistics (no alignment). For each: how often the soft label's argmax is the clip's mapped
label (accuracy, UA) and the mean probability of that label and of the top class at temperature 1. The head's UA
on the fold's test speaker is the reference for what it knows. ``--heads``: the ``DistillConfig.heads`` settings
to compare (``all``: the teacher heads fit on the extra corpora's clips too), ``--standardize`` the
``DistillConfig.standardize`` ones (``speaker``: each training speaker's features standardized with its own
statistics); each also gives the agreement of the target corpus' own training clips, whose soft labels come from
the cross-fitted heads, and a last table the mean over folds.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from models.data import corpora, label_map, protocols
from models.training import distill


def agreement(soft: np.ndarray, y: np.ndarray, temperature: float) -> dict[str, float]:
    """Accuracy and UA of ``soft``'s argmax against ``y``, and mean p(label) and p(top) at temperature 1."""
    p = np.exp(np.log(np.clip(soft, 1e-30, 1.0)) * temperature)
    p /= p.sum(1, keepdims=True)
    hit = soft.argmax(1) == y
    return {
        "acc": float(hit.mean()),
        "ua": float(np.mean([hit[y == c].mean() for c in np.unique(y)])),
        "p_label": float(p[np.arange(len(y)), y].mean()),
        "p_top": float(p.max(1).mean()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teacher", default="whisper-base:3")
    p.add_argument("--corpus", required=True, help="NAME=ROOT of the target corpus")
    p.add_argument("--extra", nargs="+", required=True, help="NAME=ROOT of each extra corpus")
    p.add_argument("--heads", nargs="+", choices=distill.HEADS, default=["own"], help="DistillConfig.heads to compare")
    p.add_argument(
        "--standardize",
        nargs="+",
        choices=distill.STANDARDIZE,
        default=["training"],
        help="DistillConfig.standardize settings to compare (each with every --heads)",
    )
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    name, _, root = args.corpus.partition("=")
    target = corpora.load_corpus(name, root)
    extra = [corpora.load_corpus(n, r) for n, _, r in (e.partition("=") for e in args.extra)]
    kept = [(o, label_map.relabel(o, target)) for o in extra]
    sources = [(o, tuple(i for i, _ in pairs)) for o, pairs in kept]
    joined = replace(target, utterances=[*target.utterances, *(u for _, pairs in kept for _, u in pairs)])
    n_own = len(target.utterances)
    y = np.array([target.emotions.index(u.emotion) for u in joined.utterances])
    cfg = distill.DistillConfig(args.teacher)
    raw, ok = distill._joined_views(joined, sources, cfg, ("clean",))
    blocks, start = [(name, np.arange(n_own))], n_own
    for o, rows in sources:
        blocks.append((o.name, np.arange(start, start + len(rows))))
        start += len(rows)
    lines = [
        f"# Teacher soft labels of the training clips ({args.teacher}, target {name})",
        "",
        f"`python benchmarks/extra_teacher_labels.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
        "",
        "| fold | head UA on test speaker | corpus | soft labels | acc | UA | p(label) | p(top) |",
        "|---|---:|---|---|---:|---:|---:|---:|",
    ]
    folds = protocols.make_folds(target, protocols.default_protocol(name), seed=0)
    means: dict[tuple[str, str], list[float]] = {}
    for fold in folds:
        own = np.asarray(fold.train)
        own = own[ok[own]]
        train = np.concatenate([own, np.arange(n_own, len(y))])
        mean, std, clf = distill.fit_head(raw["clean"], y, own, cfg.c)
        test = np.asarray(fold.test)
        test = test[ok[test]]
        predicted = clf.predict((raw["clean"][test] - mean) / std)
        head_ua = np.mean([np.mean(predicted[y[test] == c] == c) for c in np.unique(y[test])])
        for heads, standardize in itertools.product(args.heads, args.standardize):
            variant = replace(cfg, heads=heads, standardize=standardize)
            targets = distill.fold_targets(
                joined, train, y, len(target.emotions), variant, ("clean",), 0, extra=sources
            )
            per_speaker = ", per speaker" if standardize == "speaker" else ""
            for corpus_name, rows in blocks:
                rows = np.intersect1d(rows[ok[rows]], train)
                compared = [(f"training, heads {heads}{per_speaker}", targets.soft["clean"][rows])]
                if heads == "own" and standardize == "training" and corpus_name != name:
                    unaligned = distill._soft(
                        clf, (raw["clean"][rows] - mean) / std, len(target.emotions), cfg.temperature
                    )
                    compared.append(("target statistics", unaligned))
                for label, soft in compared:
                    a = agreement(soft, y[rows], cfg.temperature)
                    means.setdefault((corpus_name, label), []).append(a["ua"])
                    lines.append(
                        f"| {fold.name} | {100 * head_ua:.1f} | {corpus_name} | {label} | {100 * a['acc']:.1f} | "
                        f"{100 * a['ua']:.1f} | {a['p_label']:.2f} | {a['p_top']:.2f} |"
                    )
        print(fold.name, flush=True)
    lines += ["", "Mean over folds:", "", "| corpus | soft labels | UA |", "|---|---|---:|"]
    lines += [f"| {c} | {label} | {100 * np.mean(v):.1f} |" for (c, label), v in means.items()]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
