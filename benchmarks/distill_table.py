"""Per-fold comparison of training runs (distillation variants, students), written as Markdown and JSON.

    python benchmarks/distill_table.py LABEL=RUN_DIR [...] --out benchmarks/results/distill-ravdess [--curves]

Each RUN_DIR is an ``edge-ser train`` output folder; every fold folder in it with a ``metrics.json``
counts (runs of one recipe split over several invocations can share a folder). The table has the
test speakers' UA of the checkpoint validation chose, per fold, the mean and population std over
the folds each run finished, the best validation epoch and seconds per epoch (a shared machine's
wall clock: compare within one table only), and the command that trained it. ``--curves`` also plots
each run's learning curves (validation UA and training loss per epoch, mean over its folds) to OUT.png,
to show whether validation had plateaued; a run with no finished fold shows the curves so far of its folds
still training (a ``state.pt``, no ``metrics.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def load_run(folder: Path) -> dict:
    """``{fold: metrics}`` of the finished folds in ``folder``, the command of one of them, and ``partial``:
    ``{fold: progress}`` of the folds still training (their ``state.pt``: epochs so far, best validation UA,
    per-epoch history), so that a run cut short still shows its learning curves."""
    folds, command, partial = {}, None, {}
    for metrics in sorted(folder.glob("*/metrics.json")):
        m = json.loads(metrics.read_text())
        folds[m["fold"]] = m
        config = metrics.parent / "config.json"
        if command is None and config.exists():
            command = json.loads(config.read_text()).get("training", {}).get("command")
    for state in sorted(folder.glob("*/state.pt")):
        if not (state.parent / "metrics.json").exists():
            from models.training.checkpoint import load_tensors

            partial[state.parent.name] = load_tensors(state)["progress"]
    return {"folds": folds, "command": command, "partial": partial}


def table(runs: dict[str, dict]) -> tuple[str, dict]:
    names = sorted({f for r in runs.values() for f in r["folds"]})
    lines = ["| run | " + " | ".join(names) + " | mean ± std (folds) | s/epoch |", "|---|" + "---:|" * (len(names) + 2)]
    record = {}
    for label, run in runs.items():
        ua = {f: run["folds"][f]["test"]["emotion"]["ua"] * 100 for f in names if f in run["folds"]}
        values = list(ua.values())
        secs = [m["seconds_per_epoch"] for m in run["folds"].values() if m.get("seconds_per_epoch")]
        cells = [f"{ua[f]:.1f}" if f in ua else "–" for f in names]
        summary = f"**{np.mean(values):.1f}** ± {np.std(values):.1f} ({len(values)})" if values else "–"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {summary} | {np.mean(secs):.0f} |")
        record[label] = {
            "ua_per_fold": ua,
            "ua_mean": float(np.mean(values)) if values else None,
            "ua_std": float(np.std(values)) if values else None,
            "best_epoch": {f: m["best_epoch"] for f, m in run["folds"].items()},
            "command": run["command"],
        }
    commands = [f"- {label}: `{run['command']}`" for label, run in runs.items() if run["command"]]
    return "\n".join([*lines, "", "Commands (each fold folder records its own):", *commands]) + "\n", record


def plot_curves(runs: dict[str, dict], path: Path) -> None:
    """Validation UA and training loss per epoch, mean over each run's folds (folds of equal length only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ua_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for label, run in runs.items():
        finished = [m["history"] for m in run["folds"].values() if m.get("history")]
        histories = finished or [p["history"] for p in run.get("partial", {}).values() if p["history"]]
        if not histories:
            continue
        n = min(len(h) for h in histories)
        epochs = np.arange(1, n + 1)
        for ax, key in ((ua_ax, "val_ua"), (loss_ax, "loss")):
            if all(key in h[0] for h in histories):
                values = np.mean([[r[key] for r in h[:n]] for h in histories], axis=0)
                ax.plot(epochs, 100 * values if key == "val_ua" else values, label=f"{label} ({len(histories)})")
    ua_ax.set(xlabel="epoch", ylabel="validation UA % (mean over folds)")
    loss_ax.set(xlabel="epoch", ylabel="training loss (all terms)")
    ua_ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    parser.add_argument("--out", help="write OUT.md and OUT.json")
    parser.add_argument("--curves", action="store_true", help="with --out: learning curves to OUT.png")
    args = parser.parse_args(argv)
    runs = {}
    for item in args.runs:
        label, _, folder = item.partition("=")
        if not folder or not Path(folder).is_dir():
            parser.error(f"expected LABEL=RUN_DIR with an existing folder, got {item!r}")
        runs[label] = load_run(Path(folder))
    text, record = table(runs)
    print(text)
    if args.out:
        Path(args.out).with_suffix(".md").write_text(text)
        Path(args.out).with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
        if args.curves:
            plot_curves(runs, Path(args.out).with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
