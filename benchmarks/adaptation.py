"""On-device speaker adaptation, evaluated causally: UA vs. how many of a speaker's utterances came before.

    python benchmarks/adaptation.py RUN_DIR [--baseline RUN_DIR] [--data CORPUS_DIR] [--seed 0] [--prior 0]
        [--json benchmarks/results/adaptation-<run>.json] [--out benchmarks/results/adaptation.md]

RUN_DIR is an ``edge-ser train --normalization speaker`` run (speaker-independent folds). Every fold
is exported to ONNX and run through ``edge_ser.Recognizer`` with a ``SpeakerProfile``: each test
speaker's utterances arrive in a fixed random order (seeded), and the profile only ever holds
utterances *before* the current one. A budget ``k`` freezes the profile after the speaker's first
``k`` utterances (``0``: never adapted, the model's global statistics; ``all``: every previous
utterance). UA is computed over all of the speaker's utterances, pooled per fold. Beside them:
the non-adapted model (``--baseline``, a run of the same recipe with global normalization) and the
transductive upper bound (statistics from all of a test speaker's files, which no device has),
both from the runs' own reports. ``--prior N`` evaluates ``SpeakerProfile(min_utterances=1, prior=N)``
(global statistics kept as N pseudo-utterances); its section is titled with the prior.
``--out`` appends or replaces this run's section.

    python benchmarks/adaptation.py --base english-base|chinese-base [--work runs/base] [--data-root ../shared/datasets]

evaluates a base-tier model the same way (embedding adaptation, ``edge_ser.contract.EmbeddingAdaptation``): each
fold's file in the shipped variant, as ``python -m export.base_tier NAME`` left it under ``--work``, through the
runtime with ``SpeakerProfile(min_utterances=1, prior=3)`` at k = 0, 1, 5, 20; the non-adapted column is the
same file without a profile (its cross-validation record). Records already under ``--work`` are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from export.adaptation_eval import BUDGETS, evaluate

COLUMNS = [("non_adapted", "non-adapted model"), *[(str(k), f"k={k}") for k in BUDGETS if k is not None]]
COLUMNS += [("all", "all previous"), ("transductive", "transductive bound")]


def render(result: dict[str, Any]) -> list[str]:
    rows = result["folds"]
    keys = [k for k, _ in COLUMNS if all(k in r for r in rows.values())]
    head = [title for k, title in COLUMNS if k in keys]
    lines = [
        f"## {result['dataset']}: {section_name(result)}",
        "",
        f"UA % per speaker-independent fold ({result['protocol']}); `k` = utterances of the test speaker the "
        f"profile had heard before it froze (order seeded with {result['seed']}). Non-adapted: `{result['baseline']}`"
        f" ({result.get('baseline_note', 'same recipe, global normalization')}). The transductive bound uses all of "
        "a test speaker's files at once: no device has them.",
        "",
        "| fold | " + " | ".join(head) + " |",
        "|---|" + "---:|" * len(head),
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * r[k]:.1f}" for k in keys) + " |")
    means = [np.mean([r[k] for r in rows.values()]) for k in keys]
    stds = [np.std([r[k] for r in rows.values()]) for k in keys]
    lines.append("| **mean ± std** | " + " | ".join(f"**{100 * m:.1f}** ± {100 * s:.1f}" for m, s in zip(means, stds)))
    lines[-1] += " |"
    lines += ["", f"Command: `{result['command']}` ({result['machine']}).", ""]
    lines += [f"Adapted model trained with: `{result['train_command']}`", ""]
    if result.get("baseline_command"):
        lines += [f"Non-adapted model trained with: `{result['baseline_command']}`", ""]
    return lines


def section_name(result: dict[str, Any]) -> str:
    prior = result.get("prior") or 0
    return f"{result['run']} (prior {prior:g})" if prior else result["run"]


def write_section(out: Path, lines: list[str], run: str) -> None:
    """Replace this run's section of ``out`` (or append it), keeping the others."""
    title = "# On-device speaker adaptation (causal evaluation)"
    sections: dict[str, str] = {}
    if out.is_file():
        for block in out.read_text().split("\n## ")[1:]:
            sections[block.split("\n", 1)[0].split(": ", 1)[-1]] = "## " + block.rstrip() + "\n"
    sections[run] = "\n".join(lines).rstrip() + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(title + "\n\n" + "\n".join(sections[k] for k in sorted(sections)))


def evaluate_base(name: str, work: Path, data_root: str) -> dict[str, Any]:
    """The causal table of a base-tier model's folds (see the module docstring)."""
    from export.base_tier import PRIOR, RECIPES, adaptation_folds, folds_dir
    from export.base_variants import choose
    from models.data.corpora import load_corpus
    from models.data.protocols import default_protocol

    recipe = RECIPES[name]
    corpus = load_corpus(recipe.dataset, str(Path(data_root) / recipe.dataset))
    record = json.loads((Path(__file__).parent / "results" / "ship" / f"ship-{name}-cv.json").read_text())
    chosen = record.get("chosen") or choose(record["folds"], record["latency"])
    rows = adaptation_folds(name, recipe, corpus, chosen, folds_dir(name, recipe, work))
    for fold, row in rows.items():
        row["non_adapted"] = record["folds"][fold][chosen]
    return {
        "run": f"{name} ({chosen}{', ' + recipe.tag if recipe.slim else ''})",
        "baseline": name,
        "baseline_note": "the same files without a profile: their cross-validation record",
        "dataset": recipe.dataset,
        "protocol": default_protocol(recipe.dataset),
        "seed": 0,
        "prior": PRIOR,
        "folds": rows,
        "command": " ".join(["python benchmarks/adaptation.py", *sys.argv[1:]]),
        "train_command": f"python -m export.base_tier {name}",
        "baseline_command": None,
        "machine": f"{os.cpu_count()} cores",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="?")
    parser.add_argument("--base", help="a base-tier model name (export.base_tier) instead of a training run")
    parser.add_argument("--work", type=Path, default=Path("runs/base"), help="export.base_tier's --work (--base)")
    parser.add_argument("--data-root", default=os.path.join("..", "shared", "datasets"), help="corpora (--base)")
    parser.add_argument("--baseline", type=Path, help="same recipe trained with global normalization")
    parser.add_argument("--data", help="corpus folder (default: ../shared/datasets/<dataset>)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prior", type=float, default=0.0, help="SpeakerProfile prior, in utterances")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.base:
        result = evaluate_base(args.base, args.work, args.data_root)
    elif args.run is None:
        parser.error("give a RUN_DIR or --base NAME")
    else:
        dataset = json.loads((args.run / "report.json").read_text())["dataset"]
        data = args.data or os.path.join("..", "shared", "datasets", dataset)
        result = evaluate(args.run, args.baseline, data, args.seed, args.prior)
    lines = render(result)
    print("\n".join(lines))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.out:
        write_section(args.out, lines, section_name(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
