"""INT8 static quantization (QDQ, per-channel weights) with ONNX Runtime's quantization tools.

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


def weight_layers(model: onnx.ModelProto) -> list[str]:
    """Names of the network's weight layers in graph order (the in-graph front-end left out)."""
    return [n.name for n in model.graph.node if n.op_type in WEIGHT_OPS and not n.name.startswith(FRONTEND_SCOPE)]


def quantize_int8(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration: list[np.ndarray],
    contract: ModelContract,
    float_layers: int | None = None,
    selection: list[np.ndarray] | None = None,
) -> Path:
    """Write the INT8 QDQ version of ``fp32_path`` to ``out_path``, calibrated on ``calibration`` inputs.

    The first ``float_layers`` weight layers stay in float: they see the model input, whose range
    (log features with floor values, raw samples) INT8 resolves worst; one float layer took a
    spectrogram CNN from 10% to 99% top-1 agreement with FP32. ``None`` picks the fewest (1 to
    3) whose INT8 model agrees with FP32 on >= 98% of the ``selection`` inputs, else the best of
    the three. ``selection`` should be windows the weights never saw (the fold's validation
    utterances): the model is less sure of them than of its training audio, as it is of unseen
    speakers, so agreement there predicts agreement on test speakers better; on a P-CNN+Gender fold,
    held-out calibration windows of training utterances said 98.7% where the test speaker gave 96.7%
    (benchmarks/results/int8-selection.md). Without it,
    every fourth calibration window is held out. The choice is recorded in the contract's
    provenance as ``int8``.
    """
    if not calibration:
        raise ValueError("INT8 quantization needs calibration inputs")
    out_path = Path(out_path)
    layers = weight_layers(onnx.load(str(fp32_path)))
    if float_layers is not None:
        quantize_static_qdq(fp32_path, out_path, calibration, layers[:float_layers])
        return _finish(out_path, contract, {"float_layers": float_layers})
    if selection:
        held_out, fit, selected_on = selection, calibration, "validation"
    else:
        held_out = calibration[::4] if len(calibration) >= 8 else calibration
        fit = [x for i, x in enumerate(calibration) if i % 4] if len(calibration) >= 8 else calibration
        selected_on = "held-out calibration windows"
    reference = _top1(fp32_path, held_out)
    best: tuple[float, int] = (-1.0, 0)
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(1, min(MAX_FLOAT_LAYERS, len(layers)) + 1):
            trial = Path(tmp) / f"float{n}.onnx"
            quantize_static_qdq(fp32_path, trial, fit, layers[:n])
            agreement = float(np.mean(_top1(trial, held_out) == reference))
            best = max(best, (agreement, -n))
            if agreement >= TARGET_AGREEMENT:
                break
        shutil.copyfile(Path(tmp) / f"float{-best[1]}.onnx", out_path)
    chosen = {"float_layers": -best[1], "calibration_agreement": best[0], "selected_on": selected_on}
    return _finish(out_path, contract, chosen)


def quantize_static_qdq(
    fp32_path: str | os.PathLike,
    out_path: Path,
    calibration: list[np.ndarray],
    keep: list[str],
    method: CalibrationMethod = CalibrationMethod.MinMax,
    options: dict | None = None,
) -> None:
    """Static QDQ INT8 of every weight layer but ``keep``; ``method``/``options``: ORT's activation calibration."""
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
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            calibrate_method=method,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True, **(options or {})},
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
