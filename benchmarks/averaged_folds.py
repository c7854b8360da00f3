"""Fine-tuned runs averaged with their parents, scored through the runtime fold by fold, written as Markdown and JSON.

    python benchmarks/averaged_folds.py LABEL=PARENT_RUN:CHILD_RUN [...] --data CORPUS_ROOT --alpha 0.5 \\
        --work DIR [--out benchmarks/results/NAME]

For each pair, ``models.training.surgery`` (``--average-with``) writes ``(1 - alpha) * parent + alpha * child`` of
every fold into ``DIR/LABEL``, and ``export.records.record_run`` exports each averaged fold (FP32 and static INT8)
and scores it on its fold's test speakers through ``edge_ser``. The table sets the averaged network's FP32 UA
beside the child's own (its checkpoint's test UA, which its FP32 export reproduces) per fold; the mean is over
the folds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.records import record_run  # noqa: E402
from models.training.surgery import averaged_run  # noqa: E402


def child_scores(child: Path) -> dict[str, float]:
    """Test UA (%) of each finished fold of ``child``, as its checkpoint's metrics record it."""
    metrics = sorted(child.glob("*/metrics.json"))
    return {m.parent.name: 100 * json.loads(m.read_text())["test"]["emotion"]["ua"] for m in metrics}


def score_pair(label: str, parent: Path, child: Path, data: str, alpha: float, work: Path) -> dict:
    """Average ``parent`` and ``child``, export and score every fold; both networks' UA per fold."""
    averaged = work / label
    averaged_run(parent, child, averaged, alpha)
    record = json.loads(record_run(averaged, data, work / "onnx", work / "records", reuse=True).read_text())
    own = child_scores(child)
    folds = {
        name: {
            "child": own.get(name),
            "averaged_fp32": 100 * fold["parity"]["fp32_ua"],
            "averaged_int8": 100 * fold["parity"]["int8_ua"],
        }
        for name, fold in record["folds"].items()
    }
    return {"parent": str(parent), "child": str(child), "alpha": alpha, "folds": folds}


def table(results: dict[str, dict]) -> str:
    folds = sorted({name for r in results.values() for name in r["folds"]})
    lines = [
        "| run | " + " | ".join(folds) + " | mean |",
        "|---|" + "---:|" * (len(folds) + 1),
    ]
    for label, r in results.items():
        for key, name in (("child", "the child"), ("averaged_fp32", f"averaged (alpha {r['alpha']:g}), FP32")):
            values = [r["folds"].get(f, {}).get(key) for f in folds]
            cells = [f"{v:.1f}" if v is not None else "–" for v in values]
            done = [v for v in values if v is not None]
            lines.append(f"| {label}: {name} | " + " | ".join(cells) + f" | **{np.mean(done):.1f}** |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", metavar="LABEL=PARENT_RUN:CHILD_RUN")
    parser.add_argument("--data", required=True, help="the corpus root the runs trained on")
    parser.add_argument("--alpha", type=float, default=0.5, help="the child's share (default: %(default)s)")
    parser.add_argument("--work", type=Path, required=True, help="folder for the averaged runs and their exports")
    parser.add_argument("--out", help="write OUT.md and OUT.json")
    args = parser.parse_args(argv)
    results = {}
    for item in args.pairs:
        label, _, runs = item.partition("=")
        parent, _, child = runs.partition(":")
        if not (label and Path(parent).is_dir() and Path(child).is_dir()):
            parser.error(f"expected LABEL=PARENT_RUN:CHILD_RUN with existing folders, got {item!r}")
        results[label] = score_pair(label, Path(parent), Path(child), args.data, args.alpha, args.work)
        print(table({label: results[label]}), flush=True)
    text = table(results)
    command = "python benchmarks/averaged_folds.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text += f"\nCommand: `{command}`\n"
    print(text)
    if args.out:
        Path(args.out).with_suffix(".md").write_text(text)
        Path(args.out).with_suffix(".json").write_text(json.dumps({"command": command, **results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
