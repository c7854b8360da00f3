"""Where a teacher head's errors go on each unheard speaker: the class it gives most often, per fold.

    python benchmarks/teacher_errors.py --encoder whisper-base --block 3 --corpus casia=../shared/datasets/casia \
        --out benchmarks/results/teacher-errors-casia.md

The head is the probe of ``benchmarks/teacher_probe.py`` and of the base tier (``models.teachers.probe``): a
standardized logistic regression on one block's pooled features (``models.teachers.cache``), ``C`` chosen on the
fold's training speakers only, fit on training + validation. For each fold's test speaker the table gives the UA
and the class the head predicts most, with its share of that speaker's utterances. The tiny students' cards show
the same for them (*Where the errors go*): a share far above the labels' own says the errors are a per-speaker
bias, not noise, and this table says whether the teacher has it too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from edge_ser.frontend import Normalization
from models.teachers.probe import choose_fold_c, fit
from models.training.metrics import scores


def fold_errors(
    x: np.ndarray, y: np.ndarray, speakers: np.ndarray, fold, n_classes: int, ok: np.ndarray | None = None
) -> dict:
    """One fold's head: ``C``, test UA, and the share of the test utterances given each class (rows the teacher
    could not read, ``ok`` false, left out)."""
    c, train, val = choose_fold_c(x, y, speakers, fold, n_classes, ok)
    test = np.asarray(fold.test, dtype=np.int64)
    test = test if ok is None else test[ok[test]]
    rest = np.concatenate([train, val])
    z = Normalization.fit([x[rest]])(x)
    predicted = fit(z[rest], y[rest], c).predict(z[test])
    share = np.bincount(predicted, minlength=n_classes) / len(test)
    return {"C": c, "ua": scores(y[test], predicted, n_classes)["ua"], "share": share.tolist()}


def markdown(title: str, emotions: list[str], y: np.ndarray, per_fold: dict[str, dict]) -> str:
    labels = np.bincount(y, minlength=len(emotions)) / len(y)
    lines = [
        f"## {title}",
        "",
        "| test fold | UA | class given most | its share of the fold's utterances | C |",
        "|---|---:|---|---:|---:|",
    ]
    for name, r in per_fold.items():
        top = int(np.argmax(r["share"]))
        lines.append(f"| {name} | {100 * r['ua']:.1f} | {emotions[top]} | {100 * r['share'][top]:.0f} % | {r['C']} |")
    mean = np.mean([r["ua"] for r in per_fold.values()])
    lines += [
        "",
        f"Mean UA {100 * mean:.1f}. The labels' largest class is {100 * labels.max():.0f} % of the corpus.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from models.data import protocols
    from models.data.corpora import load_corpus
    from models.teachers.cache import teacher_features

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoder", default="whisper-base")
    p.add_argument("--block", type=int, default=3)
    p.add_argument("--corpus", required=True, help="NAME=ROOT")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    name, _, root = args.corpus.partition("=")
    corpus = load_corpus(name, root)
    table = teacher_features(corpus, args.encoder, "clean", progress=False)
    keep = np.flatnonzero(table.ok)
    if len(keep) < len(table.ok):
        print(f"{len(table.ok) - len(keep)} utterances the teacher could not read are left out", file=sys.stderr)
    protocol = protocols.default_protocol(corpus.name)
    y = np.array([corpus.emotions.index(u.emotion) for u in corpus.utterances])
    speakers = np.array([u.speaker for u in corpus.utterances])
    x = table.block(args.block).astype(np.float64)
    per_fold = {}
    for fold in protocols.make_folds(corpus, protocol):
        per_fold[fold.name] = fold_errors(x, y, speakers, fold, len(corpus.emotions), table.ok)
    title = f"{args.encoder} block {args.block} on {corpus.name} ({protocol}, {len(per_fold)} folds)"
    text = markdown(title, list(corpus.emotions), y[keep], per_fold)
    command = "python benchmarks/teacher_errors.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text += f"\nCommand: `{command}`\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
