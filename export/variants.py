"""``python -m export.variants MODEL.onnx --data DIR [--fold FOLD] [--out OUT.onnx]``: the export rule on an ONNX file.

Builds every variant of the model (FP32, static INT8 QDQ and QOperator, dynamic INT8; see
:func:`export.quantize.choose_variant`), measures latency, size, agreement with FP32 and UA on held-out
speakers, prints the table and, with ``--out``, writes the chosen variant with the table in its contract
(``provenance.export``). A dynamic-INT8 input or static-QDQ input (whose PyTorch checkpoint may be gone) is first turned
into the FP32 graph of its own INT8 weights (:func:`export.quantize.to_float`).

Held-out speakers: ``--fold`` names a fold of the model's protocol (its test speakers are evaluated, its
training speakers calibrate); a model trained on every speaker (``fold: final``) is evaluated on the
fold ``--fold`` of its recipe, which its training saw: agreement then still compares variants fairly.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edge_ser.model import OnnxModel

from .onnx_export import write_contract
from .quantize import VARIANTS, choose_variant, to_float, variant_table

CALIBRATION_UTTERANCES = 200


def fp32_graph(path: Path, out: Path) -> Path:
    """The FP32 graph of ``path`` (its INT8 weights dequantized, see :func:`export.quantize.to_float`)."""
    onnx.save(to_float(onnx.load(str(path))), str(out))
    return out


def held_out(contract: Any, data: str, fold_name: str) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """(calibration inputs, evaluation inputs, their labels) from ``fold_name``'s training and test speakers."""
    from edge_ser.audio import load_audio
    from models.data.corpora import load_corpus
    from models.data.protocols import make_folds

    from .pipeline import _calibration_inputs, _windows

    corpus = load_corpus(contract.provenance["dataset"], data)
    protocol = contract.provenance.get("protocol")
    if protocol in (None, "final"):  # trained on every speaker: the folds of its recipe's cross-validation
        protocol = contract.provenance.get("cross_validation", {}).get("protocol", "default")
    folds = {f.name: f for f in make_folds(corpus, protocol)}
    if fold_name not in folds:
        raise SystemExit(f"fold {fold_name!r} not in {sorted(folds)}")
    fold = folds[fold_name]
    train = [corpus.utterances[i] for i in np.random.default_rng(0).permutation(fold.train)]
    calibration = _calibration_inputs(contract, train, CALIBRATION_UTTERANCES)
    inputs, labels = [], []
    for u in (corpus.utterances[i] for i in fold.test):
        if u.emotion not in contract.labels:
            continue
        windows = _windows(contract, load_audio(u.path, target_rate=contract.sample_rate)[0])
        inputs += windows
        labels += [contract.labels.index(u.emotion)] * len(windows)
    return calibration, inputs, labels


def apply_rule(
    fp32: Path,
    contract: Any,
    calibration: list[np.ndarray],
    evaluation: list[np.ndarray],
    labels: list[int],
    out: Path,
    variant: str | None = None,
    runs: int = 300,
    evaluated_on: str = "",
    source: str = "int8",
) -> dict[str, Any]:
    """The export rule on an FP32 file: every variant measured, the chosen one (or ``variant``) written to
    ``out`` with ``contract`` and the table in its provenance (``export``). ``source`` records what ``fp32`` is:
    ``fp32``, the checkpoint's own FP32 export, or ``int8``, the FP32 graph of an INT8 file's weights
    (:func:`fp32_graph`). Returns that record."""
    with tempfile.TemporaryDirectory() as tmp:
        chosen, table = choose_variant(fp32, calibration, Path(tmp), evaluation, labels, runs=runs)
        print("\n".join(variant_table(table, chosen)))
        picked = next(v for v in table if v.name == (variant or chosen.name))
        model = onnx.load(str(picked.path))
        record = {
            "variant": picked.name,
            "rule_choice": chosen.name,
            "source": source,
            "evaluated_on": evaluated_on or f"{len(evaluation)} held-out windows",
            "variants": [v.row() for v in table],
        }
        write_contract(model, dataclasses.replace(contract, provenance={**contract.provenance, "export": record}))
        onnx.save(model, str(out))
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data", required=True, help="the model's corpus")
    parser.add_argument("--fold", help="fold whose test speakers evaluate (default: the model's own)")
    parser.add_argument("--out", type=Path, help="write the chosen variant here, the table in its contract")
    parser.add_argument("--variant", choices=VARIANTS, help="write this variant instead of the chosen one")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args(argv)
    contract = OnnxModel(args.model).contract
    fold = args.fold or contract.provenance.get("fold")
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = fp32_graph(Path(args.model), Path(tmp) / "source-fp32.onnx")
        calibration, evaluation, labels = held_out(contract, args.data, fold)
        where = f"fold {fold} test speakers, {len(evaluation)} windows"
        out = args.out or Path(tmp) / "chosen.onnx"
        record = apply_rule(fp32, contract, calibration, evaluation, labels, out, args.variant, args.runs, where)
        print(f"chosen: {record['rule_choice']} ({where})")
        if args.out:
            print(json.dumps({"source": Path(args.model).name, **record}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
