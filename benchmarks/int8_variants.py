"""INT8 variants of one fold checkpoint: float layers, calibration method, static vs dynamic.

    python benchmarks/int8_variants.py FOLD_DIR --data CORPUS_DIR [--depths 0,1,2,3,4,6] [--methods MinMax,...]
        [--runs 200]

Why: it shows what each INT8 choice costs and buys on unseen speakers, to ground the export's
rule (``export.quantize.quantize_int8``). The fold is exported to FP32; static QDQ variants keep
the first N weight layers in float and calibrate activations on 300 training utterances with
MinMax (windows as the runtime cuts them), Percentile (99.99) or Entropy (these two need equal
shapes, so each calibration utterance is tiled to one full window); an A16W8 variant keeps INT8
weights with 16-bit activations (MinMax, no float layer); the dynamic variant is ONNX Runtime's
``quantize_dynamic`` (ConvInteger, uint8 weights). Every file is scored on the fold's validation and
test utterances through ``edge_ser.Recognizer`` (UA, top-1 agreement with FP32) and on the windows
the export selects on (validation plus speed-perturbed and noisy copies, window-level agreement);
MinMax, A16W8, FP32 and dynamic files are timed on 3 s of audio (one thread, front-end included).
Run it on an idle machine for the latencies.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationMethod

from benchmarks.report import emit
from edge_ser.audio import load_audio
from export import parity, pipeline
from export.model_card import latency_ms
from export.onnx_export import export_module, make_contract, to_onnx
from export.quantize import quantize_scheme, quantize_static_qdq, top1, weight_layers

METHODS = {
    "MinMax": (CalibrationMethod.MinMax, {}),
    "Percentile": (CalibrationMethod.Percentile, {"CalibPercentile": 99.99}),
    "Entropy": (CalibrationMethod.Entropy, {}),
}


def full_windows(contract, utterances: list) -> list[np.ndarray]:
    """One model input per utterance, tiled to exactly one analysis window (equal shapes for histograms)."""
    window = int(contract.window_seconds * contract.sample_rate)
    out = []
    for u in utterances:
        signal, _ = load_audio(u.path, target_rate=contract.sample_rate)
        out.append(contract.model_input(np.tile(signal, window // len(signal) + 1)[:window]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fold", type=Path)
    parser.add_argument("--data", required=True)
    parser.add_argument("--depths", default="0,1,2,3,4,6", help="leading weight layers kept in float")
    parser.add_argument("--methods", default=",".join(METHODS), help="calibration methods of the static variants")
    parser.add_argument("--runs", type=int, default=200, help="timed predictions per file")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    model, config = pipeline._load(args.fold)
    contract = make_contract(config, ["emotion"])
    train, val, test = pipeline._split(config, args.data, config["training"]["protocol"], seed=0)
    work = Path(tempfile.mkdtemp())
    fp32 = to_onnx(export_module(model, contract), contract, work / "fp32.onnx")
    layers = weight_layers(onnx.load(str(fp32)))
    calibration = {
        "runtime windows": pipeline._calibration_inputs(contract, train, 300),
        "full windows": full_windows(contract, train[:300]),
    }
    files: dict[str, Path] = {"FP32": fp32}
    for method in args.methods.split(","):
        kind, options = METHODS[method]
        windows = calibration["runtime windows" if method == "MinMax" else "full windows"]
        for depth in (int(d) for d in args.depths.split(",") if int(d) <= len(layers)):
            files[f"static {method}, {depth} float"] = path = work / f"{method}-{depth}.onnx"
            quantize_static_qdq(fp32, path, windows, layers[:depth], kind, options)
    for name, scheme in (("A16W8 (16-bit activations)", "a16w8"), ("dynamic (ConvInteger, uint8)", "dynamic")):
        files[name] = work / f"{scheme}.onnx"
        quantize_scheme(fp32, files[name], calibration["runtime windows"], scheme, [])

    selection = pipeline._selection_inputs(contract, val)
    reference = top1(fp32, selection)
    sets = {"val": val, "test": test}
    scored = {
        name: {k: parity.evaluate(f, [u.path for u in s], [u.emotion for u in s]) for k, s in sets.items()}
        for name, f in files.items()
    }
    lines = [
        f"INT8 variants of `{args.fold}` ({len(layers)} weight layers; {len(val)} validation, {len(test)} test "
        "utterances). Latency: median `Recognizer.predict` on 3 s, one thread.",
        "",
        "| variant | size KiB | latency ms | test UA % | agreement val % | agreement test % | "
        "agreement selection windows % |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, f in files.items():
        timed = name == "FP32" or name.startswith(("static MinMax", "dynamic", "A16W8"))
        lat = f"{latency_ms(f, runs=args.runs):.2f}" if timed else ""
        agree = [100 * parity.agreement(scored["FP32"][k], scored[name][k]) for k in sets]
        lines.append(
            f"| {name} | {f.stat().st_size / 1024:.1f} | {lat} | {100 * scored[name]['test']['ua']:.1f} | "
            f"{agree[0]:.1f} | {agree[1]:.1f} | {100 * np.mean(top1(f, selection) == reference):.1f} |"
        )
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
