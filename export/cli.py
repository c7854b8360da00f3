"""``edge-ser export CHECKPOINT --out model.onnx [--int8] [--waveform-in] [--keep-aux [HEAD...]] [--data DIR]``.

``edge-ser export --c MODEL.onnx --out DIR`` writes a model as C99 for microcontrollers instead.

Writes the ONNX file (with ``--int8``: the INT8 file at ``--out`` and the FP32 one beside it
as ``<name>.fp32.onnx``), prints a parity report and writes a model card ``<name>.md``.
With ``--data`` (the corpus the checkpoint was trained on), INT8 calibration uses training
speakers of the checkpoint's fold and parity is measured on its test speakers. The options are
parsed into an :class:`export.pipeline.ExportConfig` for :func:`export.pipeline.export`, which the
Python API calls directly.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .pipeline import ExportConfig, export


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0]
    add = parser.add_argument
    add("checkpoint", help="a trained fold directory (model.pt + config.json)")
    add("--out", required=True, type=Path, help="the .onnx file to write")
    add("--int8", action="store_true", help="static INT8 quantization (needs --data for calibration)")
    add("--waveform-in", action="store_true", help="put the front-end inside the graph (input: raw samples)")
    add(
        "--keep-aux",
        nargs="*",
        metavar="HEAD",
        help="keep auxiliary heads as outputs: the named ones (e.g. gender chars), or every head if none is named",
    )
    add("--data", help="corpus root the checkpoint was trained on (calibration and parity on real audio)")
    add("--protocol", default="default", help="protocol of the checkpoint's fold, if its config does not say")
    add("--calibration", type=int, default=300, help="training utterances used to calibrate INT8")
    add(
        "--float-layers",
        type=int,
        help="leading weight layers kept in float in the INT8 model (default: chosen, see --scheme)",
    )
    add(
        "--scheme",
        choices=("static", "dynamic", "a16w8"),
        help="INT8 scheme: static QDQ, dynamic, or INT8 weights with 16-bit activations (default: static with the "
        "fewest of 1-3 float layers reaching 98%% agreement with FP32 on perturbed validation audio, else the best "
        "agreeing of all)",
    )
    add("--name", help="model name in the contract (default: ARCH-CORPUS)")
    add(
        "--cv-record",
        type=Path,
        help="run record (benchmarks/results.py) of the speaker-independent folds that chose this model's recipe: "
        "its per-fold scores go into the contract and the card",
    )
    add(
        "--adaptation-record",
        type=Path,
        help="causal adaptation evaluation (benchmarks/adaptation.py --json) of the same folds: its UA per number "
        "of utterances heard goes into the contract and the card",
    )
    add("--command", help="the command that reproduces this file, for the card (default: the training command)")
    add(
        "--c",
        action="store_true",
        help="instead: read CHECKPOINT as an edge-ser ONNX model (path or shipped name) and write dependency-free C99 "
        "for microcontrollers (esr_model.c/.h) into the directory --out (export/c_model.py)",
    )
    add("--c-seconds", type=float, help="with --c: the window the C model is built for (default: the contract's)")


def config_from_args(args: argparse.Namespace) -> ExportConfig:
    """The export the parsed options ask for."""
    return ExportConfig(
        checkpoint=args.checkpoint,
        out=args.out,
        int8=args.int8,
        waveform_in=args.waveform_in,
        keep_aux=None if args.keep_aux is None else tuple(args.keep_aux),
        data=args.data,
        protocol=args.protocol,
        calibration=args.calibration,
        float_layers=args.float_layers,
        scheme=args.scheme,
        name=args.name,
        cv_record=args.cv_record,
        adaptation_record=args.adaptation_record,
        command=args.command,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``edge-ser export`` with parsed ``args``: print what was written (JSON); returns the exit status."""
    if args.c:
        from .c_model import write_c

        print(json.dumps(write_c(args.checkpoint, args.out, args.c_seconds)))
        return 0
    print(json.dumps(export(config_from_args(args)).to_dict(), indent=2))
    return 0
