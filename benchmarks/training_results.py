"""Results table of training runs, speaker-independent first, with published anchors beside them.

    python benchmarks/training_results.py RUN... [--out benchmarks/results/training.md]

Each RUN is an ``edge-ser train`` output folder (its ``report.json``) or a run record written by
``benchmarks/results.py`` (``benchmarks/results/runs/<run>.json``, the report inside). UA and WA are
mean ± population std over the folds that finished; the table says how many did. Runs of the
``random`` protocol (speakers shared between training and test) are labelled as such.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.report import emit
from models.data.protocols import default_protocol

ANCHORS = [
    "Same-protocol anchors (EmoBox, speaker-independent UA, large frozen encoders): CASIA 59.6 (Whisper-large-v3), "
    "52.1 (WavLM-large); RAVDESS 75.3 (Whisper-large-v3), 72.0 (WavLM-large).",
    "The seed papers' own figures use random splits (speakers shared between training and test), so they are not "
    "comparable with the speaker-independent numbers: AudioResNet 73.3 and SpectrogramResNet 71.7 accuracy on CASIA; "
    "P-CNN+Gender UA 93.9 on CASIA.",
    "The random-split rows above trained 12 epochs (patience 6). Longer runs on CASIA's random split with "
    "learning curves, and their gaps to the papers: [seed-reproductions.md](seed-reproductions.md).",
]


def row(report: dict) -> str:
    summary = report.get("summary") or {}
    folds = report.get("folds", {})
    done = sum(1 for f in folds.values() if f.get("test"))
    epochs = report.get("training", {}).get("epochs")
    per_fold = ", ".join(f"{name} {100 * f['test']['emotion']['ua']:.1f}" for name, f in folds.items() if f.get("test"))
    ua = f"{100 * summary['ua_mean']:.1f} ± {100 * summary['ua_std']:.1f}" if summary else "–"
    wa = f"{100 * summary['wa_mean']:.1f} ± {100 * summary['wa_std']:.1f}" if summary else "–"
    protocol = report.get("protocol", "?")
    protocol = default_protocol(report["corpus"]["name"]) if protocol == "default" else protocol  # older runs
    protocol = "random split (speakers shared)" if protocol == "random" else f"{protocol} (speaker-independent)"
    return (
        f"| {report['arch']} | {report['corpus']['name']} | {protocol} | {ua} | {wa} | "
        f"{done} | {epochs} | {per_fold} | `{report.get('command', '')}` |"
    )


def load(run: Path) -> dict:
    """The report of a run directory or of a run record."""
    if run.is_file():
        return json.loads(run.read_text())["report"]
    return json.loads((run / "report.json").read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    reports = [load(r) for r in args.runs if r.is_file() or (r / "report.json").is_file()]
    reports.sort(key=lambda r: (r["corpus"]["name"], r.get("protocol") == "random", r["arch"]))
    lines = [
        "# Training results",
        "",
        "| model | corpus | protocol | UA % | WA % | folds | max epochs | UA per fold | command |",
        "|---|---|---|---:|---:|---:|---:|---|---|",
        *[row(r) for r in reports],
        "",
        *[f"- {a}" for a in ANCHORS],
    ]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
