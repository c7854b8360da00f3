"""INT8 quantization with ONNX Runtime's tools: static QDQ (per-channel weights), dynamic, or A16W8.

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
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_dynamic,
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
SCHEMES = ("static", "dynamic", "a16w8")
ACTIVATIONS = {"int8": QuantType.QInt8, "int16": QuantType.QInt16}


def weight_layers(model: onnx.ModelProto) -> list[str]:
    """Names of the network's weight layers in graph order (the in-graph front-end left out)."""
    return [n.name for n in model.graph.node if n.op_type in WEIGHT_OPS and not n.name.startswith(FRONTEND_SCOPE)]


def candidates(n_layers: int) -> list[tuple[str, int]]:
    """(scheme, leading float layers) the export tries, fastest first: static INT8 with 1 to 3 float
    layers, then dynamic INT8, then INT8 weights with 16-bit activations (A16W8)."""
    return [("static", n) for n in range(1, min(MAX_FLOAT_LAYERS, n_layers) + 1)] + [("dynamic", 0), ("a16w8", 0)]


def quantize_int8(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration: list[np.ndarray],
    contract: ModelContract,
    float_layers: int | None = None,
    selection: list[np.ndarray] | None = None,
    scheme: str | None = None,
) -> Path:
    """Write an INT8-weight version of ``fp32_path`` to ``out_path``, calibrated on ``calibration`` inputs.

    ``scheme``: ``static`` (QDQ, INT8 activations calibrated by min/max: the fastest), ``dynamic``
    (ConvInteger/MatMulInteger, activation ranges measured per call) or ``a16w8`` (QDQ with 16-bit
    activations). The first ``float_layers`` weight layers of a static model stay in float: they see
    the model input, whose range (log features with floor values, raw samples) INT8 resolves worst;
    one float layer took a spectrogram CNN from 10% to 99% top-1 agreement with FP32. Some models'
    low-margin predictions flip under static INT8 activations on unseen speakers -- a CASIA P-CNN
    fold: 91.7% agreement, against 98.0% dynamic and 99.7% A16W8
    (benchmarks/results/int8-selection.md) --, hence the other two.

    Given neither ``scheme`` nor ``float_layers``, the first static candidate (:func:`candidates`)
    whose model agrees with FP32 on >= 98% of the ``selection`` inputs is taken; if none does, the
    candidate that agrees best (dynamic and A16W8 are no faster than FP32 on x86, so agreement
    decides; on a RAVDESS P-CNN fold 98.5% vs 98.7% on the selection windows, 97.9% vs 99.2% on the
    test speakers).
    ``selection`` should be inputs the weights never saw and the model is as unsure of as of an
    unseen speaker: the export passes the fold's validation utterances plus speed-perturbed and
    noisy copies of them. Without it, every fourth calibration window is held out. The choice is
    recorded in the contract's provenance as ``int8``.
    """
    if not calibration:
        raise ValueError("INT8 quantization needs calibration inputs")
    if scheme is not None and scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    out_path = Path(out_path)
    layers = weight_layers(onnx.load(str(fp32_path)))
    if float_layers is not None or scheme is not None:
        scheme = scheme or "static"
        n = float_layers if float_layers is not None else (1 if scheme == "static" else 0)
        quantize_scheme(fp32_path, out_path, calibration, scheme, layers[:n])
        return _finish(out_path, contract, {"scheme": scheme, "float_layers": n})
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
            quantize_scheme(fp32_path, trial, fit, kind, layers[:n])
            tried.append((float(np.mean(_top1(trial, held_out) == reference)), kind, n))
            if kind == "static" and tried[-1][0] >= TARGET_AGREEMENT:
                break
        agreement, kind, n = max(tried, key=lambda t: t[0])  # first of equals: the faster one
        shutil.copyfile(Path(tmp) / f"{kind}-{n}.onnx", out_path)
    chosen = {"scheme": kind, "float_layers": n, "selection_agreement": agreement, "selected_on": selected_on}
    return _finish(out_path, contract, chosen)


def quantize_scheme(
    fp32_path: str | os.PathLike, out_path: Path, calibration: list[np.ndarray], scheme: str, keep: Sequence[str]
) -> None:
    """One INT8-weight file of ``scheme`` (see :func:`quantize_int8`) with weight layers ``keep`` in float."""
    if scheme == "dynamic":
        quantize_dynamic_int8(fp32_path, out_path, keep)
    else:
        quantize_static_qdq(
            fp32_path, out_path, calibration, keep, activations="int16" if scheme == "a16w8" else "int8"
        )


def quantize_dynamic_int8(fp32_path: str | os.PathLike, out_path: Path, keep: Sequence[str] = ()) -> None:
    """ONNX Runtime's dynamic quantization of every weight layer but ``keep`` (uint8 weights: its CPU
    ConvInteger kernel takes no int8 ones); the in-graph front-end stays float."""
    with _prepared(fp32_path, keep) as (prepared, exclude):
        quantize_dynamic(str(prepared), str(out_path), weight_type=QuantType.QUInt8, nodes_to_exclude=exclude)


def quantize_static_qdq(
    fp32_path: str | os.PathLike,
    out_path: Path,
    calibration: list[np.ndarray],
    keep: Sequence[str],
    method: CalibrationMethod = CalibrationMethod.MinMax,
    options: dict | None = None,
    activations: str = "int8",
) -> None:
    """Static QDQ of every weight layer but ``keep``: INT8 per-channel weights, ``activations`` (int8 or
    int16) activations; ``method``/``options``: ORT's activation calibration."""
    with _prepared(fp32_path, keep) as (prepared, exclude):
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


@contextmanager
def _prepared(fp32_path: str | os.PathLike, keep: Sequence[str]) -> Iterator[tuple[Path, list[str]]]:
    """ORT's pre-processed copy of ``fp32_path`` (in a temporary folder) and the nodes to leave in
    float: ``keep`` and the in-graph front-end."""
    model = onnx.load(str(fp32_path))
    exclude = [n.name for n in model.graph.node if n.name.startswith(FRONTEND_SCOPE)] + list(keep)
    logging.getLogger().setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        yield prepared, exclude


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
