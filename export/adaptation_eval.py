"""Speaker adaptation evaluated causally: UA of each fold's FP32 model vs how many of a speaker's utterances
its ``SpeakerProfile`` heard before (see ``benchmarks/adaptation.py``, which renders it, and ``export.ship``,
which records it for an adaptive recipe)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edge_ser import Recognizer, SpeakerProfile

BUDGETS: tuple[int | None, ...] = (0, 1, 3, 5, 10, 20, None)  # None: all previous utterances


def export_fp32(fold_dir: Path, out: Path) -> Path:
    from .pipeline import ExportConfig, export

    return export(ExportConfig(fold_dir, out)).model


def causal_ua(
    model: Path,
    utterances: list[Any],
    seed: int,
    prior: float = 0.0,
    budgets: tuple[int | None, ...] = BUDGETS,
    root: str | os.PathLike = "",
) -> dict[str, float]:
    """UA per budget over ``utterances`` (one fold's test speakers, paths under ``root``), each speaker in a seeded
    order. Works for every model a profile adapts: front-end statistics or a base-tier embedding.

    Audio is read once; one recognizer per budget, its profile reset for every speaker."""
    from edge_ser.audio import load_audio
    from models.training.metrics import scores

    by_speaker: dict[str, list[Any]] = {}
    for u in utterances:
        by_speaker.setdefault(u.speaker, []).append(u)
    orders = {s: np.random.default_rng([seed, sum(map(ord, s))]).permutation(len(us)) for s, us in by_speaker.items()}
    audio = {u.path: load_audio(os.path.join(root, u.path)) for u in utterances}  # (signal, rate)
    result = {}
    for budget in budgets:
        rec = Recognizer(model, profile=SpeakerProfile(min_utterances=1, prior=prior))
        index = {label: k for k, label in enumerate(rec.labels)}
        truth, guess = [], []
        for speaker, utts in sorted(by_speaker.items()):
            rec.profile.reset()
            for j, i in enumerate(orders[speaker]):
                rec.profile.frozen = budget is not None and j >= budget
                signal, rate = audio[utts[i].path]
                p = rec.predict(signal, sample_rate=rate)
                truth.append(index[utts[i].emotion])
                guess.append(index[p.label] if p.label is not None else 0)
        result["all" if budget is None else str(budget)] = scores(np.array(truth), np.array(guess), len(index))["ua"]
    return result


def evaluate(run: Path, baseline: Path | None, data: str, seed: int, prior: float = 0.0) -> dict[str, Any]:
    from models.data.corpora import load_corpus
    from models.data.protocols import make_folds

    report = json.loads((run / "report.json").read_text())
    if report["training"].get("normalization") != "speaker":
        raise SystemExit(f"{run} was not trained with --normalization speaker")
    corpus = load_corpus(report["dataset"], data)
    folds = {f.name: f for f in make_folds(corpus, report["protocol"], seed=report["training"].get("seed", 0))}
    base = json.loads((baseline / "report.json").read_text()) if baseline else None
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in report["folds"]:
            print(f"adaptation: {run.name}/{name}", file=sys.stderr)
            model = export_fp32(run / name, Path(tmp) / f"{name}.onnx")
            row = causal_ua(model, [corpus.utterances[i] for i in folds[name].test], seed, prior)
            row["transductive"] = report["folds"][name]["test"]["emotion"]["ua"]
            if base and name in base["folds"]:
                row["non_adapted"] = base["folds"][name]["test"]["emotion"]["ua"]
            rows[name] = row
    return {
        "run": run.name,
        "baseline": baseline.name if baseline else None,
        "dataset": report["dataset"],
        "protocol": report["protocol"],
        "seed": seed,
        "prior": prior,
        "folds": rows,
        "command": " ".join(["python benchmarks/adaptation.py", *sys.argv[1:]]),
        "train_command": report.get("command"),
        "baseline_command": base.get("command") if base else None,
        "machine": f"{os.cpu_count()} cores",
    }
