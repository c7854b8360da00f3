"""Scores a ``python -m models.training.lite finetune`` run through the runtime.

    python -m export.lite_folds --run runs/lite/ravdess --data ../shared/datasets/ravdess

Every finished fold is exported (FP32 and dynamic INT8: ``edge-ser export --int8 --data``) and scored on its
test speakers through :class:`edge_ser.Recognizer`; per-fold UA and the means go to ``scores.json`` in the run
folder. Resumable: a fold already exported is not exported again.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .records import export_fold


def score(run: Path, data: str, work: Path) -> dict:
    rows = {}
    for fold_dir in sorted(p.parent for p in run.glob("*/metrics.json")):
        out = work / run.name / f"{fold_dir.name}.onnx"
        saved = out.with_suffix(".parity.json")
        if saved.is_file():
            parity = json.loads(saved.read_text())
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            parity = export_fold(fold_dir, data, out)
            saved.write_text(json.dumps(parity))
        torch_ua = json.loads((fold_dir / "metrics.json").read_text())["test"]["ua"]
        rows[fold_dir.name] = {"torch_ua": torch_ua, **{k: parity.get(k) for k in ("fp32_ua", "int8_ua")}}
        print(f"{fold_dir.name}: " + ", ".join(f"{k} {v}" for k, v in rows[fold_dir.name].items()), flush=True)
    result = {
        "folds": rows,
        "mean": {k: float(np.mean([r[k] for r in rows.values()])) for k in ("torch_ua", "fp32_ua", "int8_ua")},
    }
    (run / "scores.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"mean over {len(rows)} folds: {result['mean']}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.lite_folds", description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a finetune output folder")
    p.add_argument("--data", required=True, help="the corpus root it was trained on")
    p.add_argument("--work", default="runs/lite/onnx", help="where the fold files go")
    args = p.parse_args(argv)
    score(Path(args.run), args.data, Path(args.work))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
