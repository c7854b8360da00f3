"""INT8 static quantization (QDQ, per-channel weights) with ONNX Runtime's quantization tools.

Activations are calibrated on real model input from the training speakers. For a
waveform-in model only the network is quantized: the in-graph front-end (DFT, log, DCT)
stays in float, since its dynamic range spans many orders of magnitude.
"""

from __future__ import annotations

import logging
import os
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


def quantize_int8(
    fp32_path: str | os.PathLike, out_path: str | os.PathLike, calibration: list[np.ndarray], contract: ModelContract
) -> Path:
    """Write the INT8 QDQ version of ``fp32_path`` to ``out_path``, calibrated on ``calibration`` inputs."""
    if not calibration:
        raise ValueError("INT8 quantization needs calibration inputs")
    out_path = Path(out_path)
    model = onnx.load(str(fp32_path))
    exclude = [n.name for n in model.graph.node if n.name.startswith(FRONTEND_SCOPE)]
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
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
    quantized = onnx.load(str(out_path))
    onnx.checker.check_model(quantized)
    write_contract(quantized, contract)
    onnx.save(quantized, str(out_path))
    return out_path
