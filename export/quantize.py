"""INT8 static quantization (QDQ, per-channel INT8 weights) with ONNX Runtime's quantization tools.

Activations are calibrated on real model input from the training speakers. For a
waveform-in model only the network is quantized: the in-graph front-end (DFT, log, DCT)
stays in float, since its dynamic range spans many orders of magnitude.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from edge_ser.contract import ModelContract

from .onnx_export import INPUT, write_contract

FRONTEND_SCOPE = "/frontend/"  # node-name prefix of the in-graph front-end (see onnx_export._WaveformIn)


class _Reader(CalibrationDataReader):
    def __init__(self, inputs: Iterable[np.ndarray]) -> None:
        self._inputs = iter(inputs)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._inputs, None)
        return None if x is None else {INPUT: np.asarray(x, np.float32)[None]}


WEIGHT_OPS = ("Conv", "Gemm", "MatMul")
MAX_FLOAT_LAYERS = 3
TARGET_AGREEMENT = 0.98
ACTIVATIONS = {"int8": QuantType.QInt8, "int16": QuantType.QInt16}


def weight_layers(model: onnx.ModelProto) -> list[str]:
    """Names of the network's weight layers in graph order (the in-graph front-end left out)."""
    return [n.name for n in model.graph.node if n.op_type in WEIGHT_OPS and not n.name.startswith(FRONTEND_SCOPE)]


def candidates(n_layers: int) -> list[tuple[str, int]]:
    """(activation type, leading float layers) the export tries, fastest first: INT8 activations with
    1 to 3 float layers, then 16-bit activations (INT8 weights all through)."""
    return [("int8", n) for n in range(1, min(MAX_FLOAT_LAYERS, n_layers) + 1)] + [("int16", 0)]


def quantize_int8(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration: list[np.ndarray],
    contract: ModelContract,
    float_layers: int | None = None,
    selection: list[np.ndarray] | None = None,
    activations: str | None = None,
) -> Path:
    """Write the INT8-weight QDQ version of ``fp32_path`` to ``out_path``, calibrated on ``calibration`` inputs.

    Weights are INT8 per channel. The first ``float_layers`` weight layers stay in float: they see the
    model input, whose range (log features with floor values, raw samples) INT8 resolves worst; one
    float layer took a spectrogram CNN from 10% to 99% top-1 agreement with FP32. ``activations`` is
    ``int8`` (fastest) or ``int16`` (A16W8: same size, FP32 speed, for models whose low-margin
    predictions flip under 8-bit activation rounding -- P-CNN: 91.7% agreement on an unseen CASIA
    speaker with INT8 activations, 99.7% with 16-bit, benchmarks/results/int8-selection.md).

    Given neither, the first of :func:`candidates` whose model agrees with FP32 on >= 98% of the
    ``selection`` inputs is taken, else the one that agrees best. ``selection`` should be inputs the
    weights never saw and the model is as unsure of as of an unseen speaker: the export passes the
    fold's validation utterances plus speed-perturbed and noisy copies of them. Without it, every
    fourth calibration window is held out. The choice is recorded in the contract's provenance as
    ``int8``.
    """
    if not calibration:
        raise ValueError("INT8 quantization needs calibration inputs")
    if activations is not None and activations not in ACTIVATIONS:
        raise ValueError(f"activations must be one of {sorted(ACTIVATIONS)}, got {activations!r}")
    out_path = Path(out_path)
    layers = weight_layers(onnx.load(str(fp32_path)))
    if float_layers is not None or activations is not None:
        kind = activations or "int8"
        n = float_layers if float_layers is not None else (1 if kind == "int8" else 0)
        quantize_static_qdq(fp32_path, out_path, calibration, layers[:n], activations=kind)
        return _finish(out_path, contract, {"activations": kind, "float_layers": n})
    if selection:
        held_out, fit, selected_on = selection, calibration, "validation"
    else:
        held_out = calibration[::4] if len(calibration) >= 8 else calibration
        fit = [x for i, x in enumerate(calibration) if i % 4] if len(calibration) >= 8 else calibration
        selected_on = "held-out calibration windows"
    reference = _top1(fp32_path, held_out)
    tried: list[tuple[float, str, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, n in candidates(len(layers)):
            trial = Path(tmp) / f"{kind}-{n}.onnx"
            quantize_static_qdq(fp32_path, trial, fit, layers[:n], activations=kind)
            tried.append((float(np.mean(_top1(trial, held_out) == reference)), kind, n))
            if tried[-1][0] >= TARGET_AGREEMENT:
                break
        agreement, kind, n = max(tried, key=lambda t: t[0])  # first of equals: the faster one
        shutil.copyfile(Path(tmp) / f"{kind}-{n}.onnx", out_path)
    chosen = {"activations": kind, "float_layers": n, "selection_agreement": agreement, "selected_on": selected_on}
    return _finish(out_path, contract, chosen)


def quantize_static_qdq(
    fp32_path: str | os.PathLike,
    out_path: Path,
    calibration: list[np.ndarray],
    keep: list[str],
    method: CalibrationMethod = CalibrationMethod.MinMax,
    options: dict | None = None,
    activations: str = "int8",
) -> None:
    """Static QDQ of every weight layer but ``keep``: INT8 per-channel weights, ``activations`` (int8 or
    int16) activations; ``method``/``options``: ORT's activation calibration."""
    model = onnx.load(str(fp32_path))
    exclude = [n.name for n in model.graph.node if n.name.startswith(FRONTEND_SCOPE)] + keep
    logging.getLogger().setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out_path),
            _Reader(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=ACTIVATIONS[activations],
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            calibrate_method=method,
            # 16-bit activation ranges are symmetric: the A16W8 variant measured in int8-selection.md
            extra_options={"ActivationSymmetric": activations == "int16", "WeightSymmetric": True, **(options or {})},
        )


def _top1(path: str | os.PathLike, inputs: list[np.ndarray]) -> np.ndarray:
    """Primary-head argmax of every input, one window at a time."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    first = session.get_outputs()[0].name
    return np.array([int(np.argmax(session.run([first], {INPUT: np.asarray(x, np.float32)[None]})[0])) for x in inputs])


def _finish(out_path: Path, contract: ModelContract, int8: dict) -> Path:
    quantized = onnx.load(str(out_path))
    onnx.checker.check_model(quantized)
    write_contract(quantized, dataclasses.replace(contract, provenance={**contract.provenance, "int8": int8}))
    onnx.save(quantized, str(out_path))
    return out_path
