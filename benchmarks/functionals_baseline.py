"""Classic baseline: utterance functionals of the runtime's front-ends + logistic regression.

    python benchmarks/functionals_baseline.py --dataset casia --data ../shared/datasets/casia \
        [--seed 0] [--json benchmarks/results/functionals-casia.json] [--out benchmarks/results/functionals.md]

Why: it measures, on our speaker-independent folds, where speaker normalization pays. Each utterance
becomes one vector, the runtime's ``functionals`` front-end (mean, std, min, max, 10/50/90th percentile
and the mean and std of the first difference of 40 MFCC and 40 log-mel coefficients; the input of
``functionals_mlp``), and a multinomial logistic regression (scikit-learn) classifies it. Three
normalizations of those vectors:

- ``global``: training-set statistics (what a non-adapted model does);
- ``causal k``: each test speaker's utterances arrive in a seeded order and go through the runtime's
  :class:`edge_ser.SpeakerProfile` (``min_utterances=5``: global statistics until 5 were heard), which
  normalizes each with the utterances before it and is frozen after the first ``k`` (the order and
  budgets of ``benchmarks/adaptation.py``);
- ``transductive``: statistics of all of a test speaker's files (an upper bound no device has).

Training speakers are always normalized with their own statistics under the speaker modes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edge_ser import SpeakerProfile
from edge_ser.audio import load_audio
from edge_ser.frontend import FrontEnd, Normalization

FRONTEND = FrontEnd(kind="functionals", n_mels=40, n_mfcc=40)  # what functionals_mlp reads
BUDGETS = (5, 10, 20, None)  # None: every previous utterance
MIN_UTTERANCES = 5


def causal(x: np.ndarray, order: np.ndarray, budget: int | None, fallback: Normalization) -> np.ndarray:
    """Each row of ``x`` (one speaker's vectors, heard in ``order``) normalized by a ``SpeakerProfile``
    holding the rows heard before it (at most ``budget`` of them; None: all)."""
    profile = SpeakerProfile(min_utterances=MIN_UTTERANCES)
    out = np.empty_like(x)
    for position, i in enumerate(order):
        profile.frozen = budget is not None and position >= budget
        out[i] = profile.normalization(fallback)(x[i])
        profile.add(x[i : i + 1])
    return out


def evaluate(x: np.ndarray, y: np.ndarray, n_classes: int, speakers: np.ndarray, folds: list, seed: int) -> dict:
    """UA per fold and normalization mode, and their mean and std over folds."""
    from sklearn.linear_model import LogisticRegression

    from models.training.metrics import scores

    modes = ["global", *(f"causal k={'all' if b is None else b}" for b in BUDGETS), "transductive"]
    own = np.empty_like(x)  # every speaker normalized with all of their own vectors
    for s in np.unique(speakers):
        rows = speakers == s
        own[rows] = Normalization.fit([x[rows]])(x[rows])
    per_fold: dict[str, dict[str, float]] = {}
    for fold in folds:
        train, test = np.asarray(fold.train + fold.val), np.asarray(fold.test)
        fallback = Normalization.fit([x[train]])
        inputs = {"global": fallback(x)}
        for budget, mode in zip(BUDGETS, modes[1:-1]):
            z = own.copy()
            for s in np.unique(speakers[test]):
                rows = test[speakers[test] == s]
                order = np.random.default_rng([seed, sum(map(ord, s))]).permutation(len(rows))
                z[rows] = causal(x[rows], order, budget, fallback)
            inputs[mode] = z
        inputs["transductive"] = own
        per_fold[fold.name] = {}
        for mode in modes:
            z = inputs[mode]
            clf = LogisticRegression(C=0.01, max_iter=3000).fit(z[train], y[train])
            per_fold[fold.name][mode] = scores(y[test], clf.predict(z[test]), n_classes)["ua"]
    summary = {
        m: (float(np.mean([f[m] for f in per_fold.values()])), float(np.std([f[m] for f in per_fold.values()])))
        for m in modes
    }
    return {"modes": modes, "per_fold": per_fold, "summary": summary}


def markdown(dataset: str, protocol: str, result: dict, command: str) -> str:
    modes = result["modes"]
    lines = [
        f"## {dataset} ({protocol})",
        "",
        "| fold | " + " | ".join(modes) + " |",
        "|---|" + "---:|" * len(modes),
    ]
    for name, row in result["per_fold"].items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * row[m]:.1f}" for m in modes) + " |")
    mean = " | ".join(f"**{100 * result['summary'][m][0]:.1f}** ± {100 * result['summary'][m][1]:.1f}" for m in modes)
    lines += [f"| **mean ± std** | {mean} |", "", f"Command: `{command}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from models.data.corpora import load_corpus
    from models.data.protocols import default_protocol, make_folds

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--out", type=Path, help="Markdown file; this corpus' section is replaced or appended")
    args = parser.parse_args(argv)

    corpus = load_corpus(args.dataset, args.data)
    protocol = default_protocol(corpus.name)
    folds = make_folds(corpus, protocol, seed=args.seed)
    x = np.concatenate([FRONTEND(load_audio(u.path, target_rate=FRONTEND.sample_rate)[0]) for u in corpus.utterances])
    y = np.array([corpus.emotions.index(u.emotion) for u in corpus.utterances])
    speakers = np.array([u.speaker for u in corpus.utterances])
    result = evaluate(x.astype(np.float64), y, len(corpus.emotions), speakers, folds, args.seed)
    command = "python benchmarks/functionals_baseline.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = markdown(corpus.name, protocol, result, command)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"dataset": corpus.name, "protocol": protocol, **result}, indent=1) + "\n")
    if args.out:
        from benchmarks.report import replace_section

        head = "# Classic baseline: utterance functionals + logistic regression (UA %)\n\n"
        replace_section(args.out, head, corpus.name, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
