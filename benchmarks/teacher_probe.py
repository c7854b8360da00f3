"""Linear probes on a Whisper teacher's pooled block features, speaker-independently, per block.

    python benchmarks/teacher_probe.py --encoder whisper-base whisper-tiny.en \
        --corpus casia=../shared/datasets/casia ravdess=../shared/datasets/ravdess emodb=../shared/datasets/emodb \
        --json benchmarks/results/teacher.json --out benchmarks/results/teacher.md

Each utterance is the mean and std over time of one hidden state (0: conv stem, k: block k) of the teacher
run on the whole clip (``models.teachers.cache``). A standardized multinomial logistic regression classifies
it, on the corpus' speaker-independent folds (``models.data.protocols``). Everything is chosen on training speakers
only: the regularization ``C`` per block, and the block of the ``selected`` row, by UA on the fold's validation
part when it holds whole speakers (RAVDESS), else by leave-one-training-speaker-out over the fold's training
speakers (CASIA, EmoDB), then refit on train + validation. Normalizations as in
``benchmarks/functionals_baseline.py``: ``global`` (training-set statistics), ``causal k`` (each test speaker's
utterances in a seeded order through :class:`edge_ser.SpeakerProfile` with ``min_utterances=1, prior=3``,
frozen after ``k``; training speakers normalized with their own statistics) and ``transductive`` (all of a
test speaker's utterances: an upper bound no device has).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from edge_ser import SpeakerProfile
from edge_ser.frontend import Normalization
from models.teachers.probe import choose_c, fit, ua

BUDGETS = (1, 5, 20)
PRIOR = 3.0


def causal(x: np.ndarray, order: np.ndarray, budget: int, fallback: Normalization) -> np.ndarray:
    """Rows of one speaker, heard in ``order``, each normalized by a profile of the rows before it (frozen after
    ``budget``), blended with ``fallback`` as ``PRIOR`` pseudo-utterances."""
    profile = SpeakerProfile(min_utterances=1, prior=PRIOR)
    out = np.empty_like(x)
    for position, i in enumerate(order):
        profile.frozen = position >= budget
        out[i] = profile.normalization(fallback)(x[i : i + 1])[0]
        profile.add(x[i : i + 1])
    return out


def own_normalized(x: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for s in np.unique(speakers):
        rows = speakers == s
        out[rows] = Normalization.fit([x[rows]])(x[rows])
    return out


def probe_fold(x: np.ndarray, y: np.ndarray, speakers: np.ndarray, fold, n_classes: int, seed: int) -> dict:
    """UA of one block's features on one fold: C chosen on training speakers, every normalization mode."""
    train, val, test = (np.asarray(i) for i in (fold.train, fold.val, fold.test))
    fallback = Normalization.fit([x[train]])
    z = fallback(x)
    c, selected_by = choose_c(z, y, speakers, fold, n_classes)
    rest = np.concatenate([train, val])
    fallback = Normalization.fit([x[rest]])
    z = fallback(x)
    out = {"C": c, "val": selected_by, "global": ua(fit(z[rest], y[rest], c), z[test], y[test], n_classes)}
    own = own_normalized(x, speakers)
    clf = fit(own[rest], y[rest], c)
    for budget in BUDGETS:
        zc = own.copy()
        for s in np.unique(speakers[test]):
            rows = test[speakers[test] == s]
            order = np.random.default_rng([seed, sum(map(ord, s))]).permutation(len(rows))
            zc[rows] = causal(x[rows], order, budget, fallback)
        out[f"causal k={budget}"] = ua(clf, zc[test], y[test], n_classes)
    out["transductive"] = ua(clf, own[test], y[test], n_classes)
    return out


MODES = ("global", *(f"causal k={b}" for b in BUDGETS), "transductive")


def probe(pooled: np.ndarray, ok: np.ndarray, corpus, folds, seed: int = 0) -> dict:
    """Per block and fold, every mode; plus the ``selected`` row (block chosen per fold on validation UA)."""
    y = np.array([corpus.emotions.index(u.emotion) for u in corpus.utterances])
    speakers = np.array([u.speaker for u in corpus.utterances])
    keep = np.flatnonzero(ok)
    remap = -np.ones(len(ok), dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    folds = [
        type(f)(
            f.name,
            *(tuple(int(remap[i]) for i in part if remap[i] >= 0) for part in (f.train, f.val, f.test)),
            f.val_by_speaker,
        )
        for f in folds
    ]
    y, speakers = y[keep], speakers[keep]
    blocks = {}
    for k in range(pooled.shape[1]):
        x = pooled[keep, k].astype(np.float64)
        blocks[k] = {f.name: probe_fold(x, y, speakers, f, len(corpus.emotions), seed) for f in folds}
    selected = {}
    for f in folds:
        best = max(blocks, key=lambda k: (blocks[k][f.name]["val"], -k))
        selected[f.name] = {"block": best, **blocks[best][f.name]}
    return {"blocks": blocks, "selected": selected}


def summary(per_fold: dict) -> dict:
    return {
        m: (float(np.mean([r[m] for r in per_fold.values()])), float(np.std([r[m] for r in per_fold.values()])))
        for m in MODES
    }


def markdown(encoder: str, corpus_name: str, protocol: str, result: dict) -> str:
    lines = [
        f"## {encoder} on {corpus_name} ({protocol}, {len(result['selected'])} folds)",
        "",
        "| hidden state | " + " | ".join(MODES) + " |",
        "|---|" + "---:|" * len(MODES),
    ]
    rows = [(("stem" if k == 0 else f"block {k}"), per) for k, per in result["blocks"].items()]
    rows.append(("**selected on training speakers**", result["selected"]))
    for name, per in rows:
        s = summary(per)
        lines.append(f"| {name} | " + " | ".join(f"{100 * s[m][0]:.1f} ± {100 * s[m][1]:.1f}" for m in MODES) + " |")
    chosen = ", ".join(f"{f}: {r['block']}" for f, r in result["selected"].items())
    fold_ua = ", ".join(f"{f} {100 * r['global']:.1f}" for f, r in result["selected"].items())
    lines += ["", f"Blocks chosen per fold: {chosen}. Selected row per fold (global): {fold_ua}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from models.data.corpora import load_corpus
    from models.data.protocols import default_protocol, make_folds
    from models.teachers.cache import teacher_features

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoder", nargs="+", default=["whisper-base"])
    p.add_argument("--corpus", nargs="+", required=True, help="NAME=ROOT")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    results, texts = {}, []
    for item in args.corpus:
        name, _, root = item.partition("=")
        corpus = load_corpus(name, root)
        protocol = default_protocol(corpus.name)
        folds = make_folds(corpus, protocol, seed=args.seed)
        for encoder in args.encoder:
            t0 = time.time()
            feats = teacher_features(corpus, encoder, progress=False)
            result = probe(feats.pooled, feats.ok, corpus, folds, args.seed)
            results[f"{encoder}/{name}"] = {"protocol": protocol, **result}
            texts.append(markdown(encoder, name, protocol, result))
            print(texts[-1], f"({time.time() - t0:.0f} s)", flush=True)
    command = "python benchmarks/teacher_probe.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.out:
        head = (
            "# Teacher probes: Whisper encoder blocks, speaker-independent folds (UA %, mean ± std over folds)\n\n"
            "Generated by `benchmarks/teacher_probe.py` (see its docstring for the protocol). EmoDB is the edited copy "
            "(2 s clips): not comparable with published Emo-DB figures.\n\n"
        )
        args.out.write_text(head + "\n".join(texts) + f"\nCommand: `{command}`\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
