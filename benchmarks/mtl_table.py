"""Multi-task ablation table: emotion UA per corpus and head configuration, over folds and seeds.

    python benchmarks/mtl_table.py RECORD... [--out benchmarks/results/mtl_ablation.md]

Each RECORD is a run record (``benchmarks/results.py --record-only``) of a run named
``<corpus>-mtl-<config>-s<seed>`` (ablation) or ``<corpus>-mtltune-<task>-w<weight>`` (weight
tuning). UA is given as mean ± std over every (fold, seed) pair, and the spread of the seed means
(how much of a difference the seed alone makes); transcript heads add their test token error
rate. Each configuration is also compared with "emotion only" pair by pair (same fold, same seed):
the mean paired difference, how many pairs it wins, and the two-sided sign-test p-value.
``--weights FILE`` writes the weight chosen per corpus and task: the best mean validation UA over
folds (the test folds are never looked at).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from benchmarks.report import emit, write_atomic

NAME = re.compile(r"^(?P<corpus>\w+)-mtl-(?P<config>\w+)-s(?P<seed>\d+)$")
TUNE = re.compile(r"^(?P<corpus>\w+)-mtltune-(?P<task>\w+)-w(?P<weight>[0-9.]+)$")
ORDER = ["none", "gender", "speaker", "chars", "syllables", "all"]
LABEL = {"none": "emotion only", "all": "all auxiliary tasks"}


def collect(
    paths: list[Path], chosen: dict[str, dict[str, float]] | None = None
) -> dict[tuple[str, str], dict[int, dict]]:
    """``(corpus, config) -> {seed: report}`` of the records whose run name fits the scheme.

    A tuning run (seed 0, one task) at the ``chosen`` weight is the same run as that task's seed-0
    ablation run, so it stands for it (``mtl_ablation.sh`` does not train it twice).
    """
    out: dict[tuple[str, str], dict[int, dict]] = {}
    for path in paths:
        record = json.loads(path.read_text())
        match = NAME.match(record["run"])
        if match:
            out.setdefault((match["corpus"], match["config"]), {})[int(match["seed"])] = record["report"]
        tune = TUNE.match(record["run"])
        if tune and (chosen or {}).get(tune["corpus"], {}).get(tune["task"]) == float(tune["weight"]):
            out.setdefault((tune["corpus"], tune["task"]), {}).setdefault(0, record["report"])
    return out


def choose_weights(paths: list[Path]) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Per corpus and task, the tuned weight with the best mean validation UA; and the tuning table rows."""
    val: dict[tuple[str, str], dict[float, float]] = {}
    for path in paths:
        record = json.loads(path.read_text())
        match = TUNE.match(record["run"])
        if match:
            scores = [f["best_val_ua"] for f in record["report"]["folds"].values() if f.get("best_val_ua") is not None]
            val.setdefault((match["corpus"], match["task"]), {})[float(match["weight"])] = float(np.mean(scores))
    chosen: dict[str, dict[str, float]] = {}
    rows = []
    for (corpus, task), by_weight in sorted(val.items()):
        best = max(by_weight, key=lambda w: (by_weight[w], -w))
        chosen.setdefault(corpus, {})[task] = best
        cells = ", ".join(f"{w:g}: {100 * v:.1f}{' *' if w == best else ''}" for w, v in sorted(by_weight.items()))
        rows.append(f"| {corpus} | {task} | {cells} |")
    return chosen, rows


def fold_uas(seeds: dict[int, dict]) -> dict[tuple[int, str], float]:
    """``(seed, fold) -> test emotion UA`` of one configuration's runs."""
    return {
        (seed, name): f["test"]["emotion"]["ua"]
        for seed, r in seeds.items()
        for name, f in r["folds"].items()
        if f.get("test")
    }


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign-test p-value (ties dropped): is winning ``wins`` of the pairs chance?"""
    return binomtest(wins, wins + losses).pvalue if wins + losses else 1.0


def paired(ours: dict[tuple[int, str], float], base: dict[tuple[int, str], float]) -> str:
    """``Δ mean ± std (wins/pairs, p)`` over the (seed, fold) runs both have; blank without any."""
    diffs = np.array([ours[k] - base[k] for k in sorted(ours.keys() & base.keys())])
    if diffs.size == 0:
        return ""
    wins, losses = int((diffs > 0).sum()), int((diffs < 0).sum())
    return f"{100 * diffs.mean():+.1f} ± {100 * diffs.std():.1f} ({wins}/{diffs.size}, p={sign_test(wins, losses):.2f})"


def row(corpus: str, config: str, seeds: dict[int, dict], baseline: dict[int, dict] | None = None) -> str:
    """One table row; ``baseline`` (the emotion-only runs) adds the paired comparison."""
    by_fold = fold_uas(seeds)
    ua = list(by_fold.values())
    per_seed: dict[int, list[float]] = {}
    for (seed, _), value in by_fold.items():
        per_seed.setdefault(seed, []).append(value)
    seed_means = [np.mean(v) for v in per_seed.values()]
    folds = {len(r["folds"]) for r in seeds.values()}
    ter: dict[str, list[float]] = {}
    for r in seeds.values():
        for head, summary in (r.get("aux_summary") or {}).items():
            if summary and "token_error_rate_mean" in summary:
                ter.setdefault(head, []).append(summary["token_error_rate_mean"])
    errors = "; ".join(f"{head} {100 * np.mean(v):.0f}%" for head, v in sorted(ter.items()))
    aux = ", ".join(f"{k}={v}" for k, v in next(iter(seeds.values())).get("aux", {}).items()) or "–"
    val = [f["best_val_ua"] for r in seeds.values() for f in r["folds"].values() if f.get("best_val_ua") is not None]
    val_ua = f"{100 * np.mean(val):.1f}" if val else "–"
    return (
        f"| {corpus} | {LABEL.get(config, '+ ' + config)} | {aux} | {100 * np.mean(ua):.1f} ± {100 * np.std(ua):.1f} | "
        f"{100 * np.std(seed_means):.1f} | {len(seeds)} ({', '.join(map(str, sorted(seeds)))}) | "
        f"{'/'.join(map(str, sorted(folds)))} | {val_ua} | {paired(by_fold, fold_uas(baseline)) if baseline else ''} | "
        f"{errors} |"
    )


def baseline(groups: dict[tuple[str, str], dict[int, dict]], corpus: str, config: str) -> dict[int, dict] | None:
    """The emotion-only runs a configuration is compared with (none for emotion only itself)."""
    return None if config == "none" else groups.get((corpus, "none"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="+", type=Path, metavar="RECORD")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--weights", type=Path, help="write the chosen loss weights (JSON) here")
    args = parser.parse_args(argv)
    chosen, tuning = choose_weights(args.records)
    groups = collect(args.records, chosen)
    if args.weights:
        write_atomic(args.weights, json.dumps(chosen, indent=1, sort_keys=True) + "\n")
    keys = sorted(groups, key=lambda k: (k[0], ORDER.index(k[1]) if k[1] in ORDER else len(ORDER)))
    command = next(iter(groups[keys[-1]].values())).get("command", "") if keys else ""  # last row: all tasks
    lines = [
        "# Multi-task ablation (edge_cnn, speaker-independent folds)",
        "",
        "Emotion UA of the same backbone and recipe with different auxiliary heads. UA: mean ± std over every "
        "(fold, seed) pair; seed spread: std of the per-seed fold means. Transcript heads: test token error rate "
        "(greedy CTC), mean over folds and seeds. Validation UA: mean over (fold, seed) of the UA that chose the "
        "checkpoint, on validation speakers (RAVDESS) or held-out utterances of the training speakers (CASIA). "
        "Δ vs emotion only: paired over the (fold, seed) runs both "
        "have: mean ± std of the UA difference (points), pairs won / pairs, two-sided sign-test p.",
        "",
        "Regenerate: `bash benchmarks/mtl_ablation.sh` (runs), then "
        "`python benchmarks/mtl_table.py benchmarks/results/mtl/*.json --out benchmarks/results/mtl_ablation.md`.",
        f"One run's command: `{command}`",
        "",
        "| corpus | heads | loss weights | UA % | seed spread | seeds | folds | validation UA % | Δ vs emotion only | "
        "token error rate |",
        "|---|---|---|---:|---:|---|---:|---:|---|---|",
        *[row(corpus, config, groups[(corpus, config)], baseline(groups, corpus, config)) for corpus, config in keys],
        "",
        "## Loss-weight tuning (seed 0, each task alone; mean validation UA % over folds, * = chosen)",
        "",
        "Validation is speaker-independent on RAVDESS (held-out training actors); on CASIA, with three "
        "training speakers per fold, it is a held-out share of their utterances (speaker-dependent).",
        "",
        "| corpus | task | weight: validation UA |",
        "|---|---|---|",
        *tuning,
    ]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
