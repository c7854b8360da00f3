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
from edge_ser.model import session_options

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
    reference = top1(fp32_path, held_out)
    tried: list[tuple[float, str, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, n in candidates(len(layers)):
            trial = Path(tmp) / f"{kind}-{n}.onnx"
            quantize_scheme(fp32_path, trial, fit, kind, layers[:n])
            tried.append((float(np.mean(top1(trial, held_out) == reference)), kind, n))
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


def top1(path: str | os.PathLike, inputs: list[np.ndarray]) -> np.ndarray:
    """Primary-head argmax of every input, one window at a time."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), session_options(1), providers=["CPUExecutionProvider"])
    first = session.get_outputs()[0].name
    return np.array([int(np.argmax(session.run([first], {INPUT: np.asarray(x, np.float32)[None]})[0])) for x in inputs])


def _finish(out_path: Path, contract: ModelContract, int8: dict) -> Path:
    quantized = onnx.load(str(out_path))
    onnx.checker.check_model(quantized)
    write_contract(quantized, dataclasses.replace(contract, provenance={**contract.provenance, "int8": int8}))
    onnx.save(quantized, str(out_path))
    return out_path


# -- the export rule: every variant measured, the fastest accurate one chosen --------------------------------------

UA_TOLERANCE = 0.005  # a variant may lose at most half a point of UA against FP32 to be the default
VARIANTS = ("fp32", "static-qdq", "static-qoperator", "dynamic")


@dataclasses.dataclass
class Variant:
    """One file the export rule measured: its size, median single-window latency on this CPU (one
    thread), top-1 agreement with FP32 and, given labels, UA on the evaluation windows."""

    name: str
    path: Path
    size_bytes: int = 0
    latency_ms: float = float("nan")
    agreement: float = float("nan")
    ua: float | None = None

    def row(self) -> dict[str, object]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "path"}


def dequantize_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    """The FP32 graph that computes what a dynamic-INT8 graph would without its activation rounding.

    Each ``DynamicQuantizeLinear -> ConvInteger/MatMulInteger -> Cast -> Mul(scale)`` chain becomes one
    ``Conv``/``MatMul`` whose weights are the INT8 weights dequantized (``(q - zero_point) * scale``), so
    the weights stay exactly those shipped, and results no longer depend on what else is in the batch.
    """
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    removed: set[int] = set()
    added: dict[int, onnx.NodeProto] = {}
    for node in graph.node:
        if node.op_type not in ("ConvInteger", "MatMulInteger"):
            continue
        quantize = producer[node.input[0]]
        (cast,) = consumers[node.output[0]]
        (scale_mul,) = consumers[cast.output[0]]
        scales = producer[next(i for i in scale_mul.input if i != cast.output[0])]
        w_scale = numpy_helper.to_array(inits[next(i for i in scales.input if i in inits)]).astype(np.float32)
        w_q = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        w_zero = numpy_helper.to_array(inits[node.input[3]]).astype(np.float32) if len(node.input) > 3 else 0.0
        if node.op_type == "ConvInteger":
            shape = (-1,) + (1,) * (w_q.ndim - 1)
            weight = (w_q - np.reshape(w_zero, shape if np.ndim(w_zero) else ())) * np.reshape(
                w_scale, shape if w_scale.ndim else ()
            )
            op = "Conv"
        else:
            weight = (w_q - w_zero) * w_scale
            op = "MatMul"
        name = f"{node.input[1]}_dequantized"
        graph.initializer.append(numpy_helper.from_array(weight.astype(np.float32), name))
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        inputs, output, gone = [quantize.input[0], name], scale_mul.output[0], [node, cast, scale_mul, scales]
        bias_add = consumers.get(output, [])
        if op == "Conv" and len(bias_add) == 1 and bias_add[0].op_type == "Add":  # the bias, back inside the Conv
            other = next(i for i in bias_add[0].input if i != output)
            reshape = producer.get(other)
            if reshape is not None and reshape.op_type == "Reshape" and reshape.input[0] in inits:
                inputs.append(reshape.input[0])
                output = bias_add[0].output[0]
                gone += [bias_add[0], reshape]
        fused = helper.make_node(op, inputs, [output], name=node.name, **attributes)
        for n in gone:
            removed.add(id(n))
        added[id(node)] = fused
    nodes = [added.get(id(n), n) for n in graph.node if id(n) not in removed or id(n) in added]
    used = {i for n in nodes for i in n.input}
    nodes = [n for n in nodes if n.op_type != "DynamicQuantizeLinear" or any(o in used for o in n.output)]
    return _with_nodes(out, nodes)


def _with_nodes(model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> onnx.ModelProto:
    """``model`` with its graph's nodes replaced by ``nodes`` and the initializers they no longer read dropped."""
    graph = model.graph
    used = {i for n in nodes for i in n.input}
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.checker.check_model(model)
    return model


def dequantize_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """The FP32 graph of a static QDQ graph: weight ``DequantizeLinear`` nodes become float initializers
    (the INT8 weights dequantized) and activation ``QuantizeLinear -> DequantizeLinear`` pairs are dropped,
    or become the ``Relu`` that ORT's quantizer folded into a range starting at zero."""
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    rename: dict[str, str] = {}
    nodes = []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float64)
            scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
            zero = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64) if len(node.input) > 2 else 0.0
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if np.ndim(scale) and q.ndim > 1:
                shape = [1] * q.ndim
                shape[axis % q.ndim] = -1
                scale, zero = scale.reshape(shape), np.reshape(zero, shape) if np.ndim(zero) else zero
            name = node.input[0].removesuffix("_quantized")  # the weight's own name, free again
            name = name if name not in inits and name not in producer else node.output[0]
            graph.initializer.append(numpy_helper.from_array(((q - zero) * scale).astype(np.float32), name))
            if name != node.output[0]:
                rename[node.output[0]] = name
            continue
        if node.op_type == "DequantizeLinear" and producer.get(node.input[0], node).op_type == "QuantizeLinear":
            quantize = producer[node.input[0]]
            if _clamps_at_zero(quantize, inits):  # ORT drops a Relu the quantized range already applies
                relu = f"{quantize.input[0]}_relu"
                nodes.append(helper.make_node("Relu", [quantize.input[0]], [relu], name=f"{node.name}_relu"))
                rename[node.output[0]] = relu
            else:
                rename[node.output[0]] = quantize.input[0]
            continue
        if node.op_type == "QuantizeLinear":
            continue
        nodes.append(node)

    def resolve(name: str) -> str:
        while name in rename:
            name = rename[name]
        return name

    for node in nodes:
        node.input[:] = [resolve(name) for name in node.input]
    for output in graph.output:  # an output that was dequantized: its float source now carries the name
        if output.name in rename:
            source = resolve(output.name)
            for node in nodes:
                node.output[:] = [output.name if o == source else o for o in node.output]
                node.input[:] = [output.name if i == source else i for i in node.input]
    return _with_nodes(out, nodes)


def _clamps_at_zero(quantize: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> bool:
    """Whether a ``QuantizeLinear``'s representable range starts at 0 (it clamps negatives, like a Relu)."""
    from onnx import numpy_helper

    if len(quantize.input) < 3 or quantize.input[1] not in inits or quantize.input[2] not in inits:
        return False
    scale = numpy_helper.to_array(inits[quantize.input[1]]).astype(np.float64)
    zero = numpy_helper.to_array(inits[quantize.input[2]])
    lowest = np.iinfo(zero.dtype).min
    return bool(np.all((lowest - zero.astype(np.float64)) * scale >= 0))


def to_float(model: onnx.ModelProto) -> onnx.ModelProto:
    """The FP32 graph of a dynamic-INT8 or static-QDQ file (the model itself if it is float): its INT8
    weights dequantized, activations no longer rounded, and no ``Relu`` left on values that cannot be
    negative (:func:`drop_redundant_relus`: also on a float file made by an earlier version)."""
    ops = {n.op_type for n in model.graph.node}
    if ops & {"ConvInteger", "MatMulInteger"}:
        model = dequantize_dynamic(model)
    if "DequantizeLinear" in {n.op_type for n in model.graph.node}:
        model = dequantize_qdq(model)
    return drop_redundant_relus(model)


# Ops whose output is non-negative when their (float) data inputs are: ``Relu`` on it changes nothing.
_KEEPS_NONNEGATIVE = {
    "Add", "AveragePool", "Concat", "Flatten", "Gather", "GlobalAveragePool", "Identity", "MaxPool", "Mul",
    "ReduceMax", "ReduceMean", "ReduceSum", "Reshape", "Slice", "Squeeze", "Transpose", "Unsqueeze",
}  # fmt: skip
_DATA_FIRST = {"Flatten", "Gather", "Reshape", "Slice", "Squeeze", "Unsqueeze"}  # other inputs are shapes/indices


def drop_redundant_relus(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` without the ``Relu`` nodes whose input can never be negative: one after another ``Relu``, a
    ``Softmax`` or a ``Sigmoid``, or after reshaping, pooling, adding or multiplying such values. The
    quantizer's ranges that start at zero come back from :func:`dequantize_qdq` as ``Relu`` nodes, some on
    values that are already non-negative; they cost ONNX Runtime a kernel each (and the ``Conv`` + ``Relu``
    fusion) and change no output: ``relu(x) == x`` exactly for ``x >= 0``."""
    from onnx import numpy_helper

    if sum(1 for _ in _graphs(model.graph)) > 1:
        return model  # subgraphs may read a value by name: left as they are
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nonnegative = {name for name, a in inits.items() if a.dtype.kind == "f" and bool(np.all(a >= 0))}
    outputs = {o.name for o in graph.output}
    rename: dict[str, str] = {}
    nodes = []
    for node in graph.node:
        node.input[:] = [rename.get(name, name) for name in node.input]
        if node.op_type == "Relu" and node.input[0] in nonnegative and node.output[0] not in outputs:
            rename[node.output[0]] = node.input[0]
            continue
        if node.op_type in ("Relu", "Softmax", "Sigmoid"):
            nonnegative.update(node.output)
        elif node.op_type in _KEEPS_NONNEGATIVE:
            data = node.input[:1] if node.op_type in _DATA_FIRST else [i for i in node.input if i]
            if data and all(name in nonnegative for name in data):
                nonnegative.update(node.output)
        nodes.append(node)
    return _with_nodes(out, nodes)


def build_variant(
    fp32_path: str | os.PathLike, out_path: Path, name: str, calibration: list[np.ndarray], keep: Sequence[str] = ()
) -> Path:
    """Write variant ``name`` (see :data:`VARIANTS`) of ``fp32_path``. Static variants quantize only weight
    layers (Conv, Gemm, MatMul) and leave pooling in float: ORT's quantized AveragePool costs more than
    it saves; ``keep`` weight layers stay float."""
    if name == "fp32":
        shutil.copyfile(fp32_path, out_path)
    elif name == "dynamic":
        quantize_dynamic_int8(fp32_path, out_path, keep)
    elif name in ("static-qdq", "static-qoperator"):
        fmt = QuantFormat.QDQ if name == "static-qdq" else QuantFormat.QOperator
        with _prepared(fp32_path, keep) as (prepared, exclude):
            quantize_static(
                str(prepared),
                str(out_path),
                _Reader(calibration),
                quant_format=fmt,
                per_channel=True,
                activation_type=QuantType.QUInt8 if fmt == QuantFormat.QOperator else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude,
                op_types_to_quantize=list(WEIGHT_OPS),
                extra_options={"WeightSymmetric": True},
            )
    else:
        raise ValueError(f"unknown variant {name!r}; expected one of {VARIANTS}")
    return out_path


def _session(path: Path):  # noqa: ANN202 -- onnxruntime.InferenceSession
    import onnxruntime as ort

    return ort.InferenceSession(str(path), session_options(1), providers=["CPUExecutionProvider"])


def measure_latency(paths: Sequence[Path], probe: np.ndarray, runs: int = 200) -> list[float]:
    """Median ms of one single-window ``session.run`` per file, the files interleaved call by call (so a
    noisy machine slows them alike)."""
    import time

    sessions = [_session(p) for p in paths]
    feed = {INPUT: np.asarray(probe, np.float32)[None]}
    times: list[list[float]] = [[] for _ in sessions]
    for i in range(runs + 10):
        for s, t in zip(sessions, times):
            t0 = time.perf_counter()
            s.run(None, feed)
            if i >= 10:
                t.append(1e3 * (time.perf_counter() - t0))
    return [float(np.median(t)) for t in times]


def _ua(truth: np.ndarray, guess: np.ndarray) -> float:
    classes = np.unique(truth)
    return float(np.mean([np.mean(guess[truth == c] == c) for c in classes]))


def choose_variant(
    fp32_path: str | os.PathLike,
    calibration: list[np.ndarray],
    out_dir: str | os.PathLike,
    evaluation: list[np.ndarray] | None = None,
    labels: Sequence[int] | None = None,
    variants: Sequence[str] = VARIANTS,
    keep: Sequence[str] = (),
    runs: int = 200,
) -> tuple[Variant, list[Variant]]:
    """The export rule: build every variant of ``fp32_path`` in ``out_dir``, measure each, pick the default.

    ``calibration``: model inputs from the training speakers (static INT8 activation ranges).
    ``evaluation``/``labels``: held-out model inputs (and their primary-head class) for agreement and UA;
    without them every fourth calibration input is used and only agreement counts. The default is the
    fastest variant whose UA is within :data:`UA_TOLERANCE` of FP32's (without labels: whose agreement
    with FP32 is at least :data:`TARGET_AGREEMENT`); FP32 always qualifies, so an INT8 file slower than
    FP32 never becomes the default -- it stays a named option (NPUs, microcontrollers).
    Returns ``(chosen, table)``, ``table`` in ``variants`` order.
    """
    if "fp32" not in variants:
        raise ValueError("the export rule compares against fp32: include it in variants")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    held_out = evaluation if evaluation else calibration[::4]
    table = [Variant(v, build_variant(fp32_path, out_dir / f"{v}.onnx", v, calibration, keep)) for v in variants]
    for v, ms in zip(table, measure_latency([v.path for v in table], held_out[0], runs)):
        v.latency_ms, v.size_bytes = ms, v.path.stat().st_size
    reference = top1(table[0].path, held_out)
    for v in table:
        guess = reference if v.name == "fp32" else top1(v.path, held_out)
        v.agreement = float(np.mean(guess == reference))
        if labels is not None and evaluation:
            v.ua = _ua(np.asarray(labels), guess)
    fp32 = table[0] if table[0].name == "fp32" else next(v for v in table if v.name == "fp32")

    def accurate(v: Variant) -> bool:
        if v.ua is not None and fp32.ua is not None:
            return v.ua >= fp32.ua - UA_TOLERANCE
        return v.agreement >= TARGET_AGREEMENT

    chosen = min((v for v in table if v is fp32 or accurate(v)), key=lambda v: v.latency_ms)
    return chosen, table


def variant_table(table: Sequence[Variant], chosen: Variant, mark: str = "default") -> list[str]:
    """Markdown rows of every variant (for the model card), ``chosen`` marked ``(mark)``."""
    lines = [
        "| variant | size KiB | latency ms (1 window, 1 thread) | agreement with FP32 % | UA % |",
        "|---|---:|---:|---:|---:|",
    ]
    for v in table:
        ua = "" if v.ua is None else f"{100 * v.ua:.1f}"
        label = f"{v.name} ({mark})" if v is chosen else v.name
        lines.append(f"| {label} | {v.size_bytes / 1024:.0f} | {v.latency_ms:.3f} | {100 * v.agreement:.1f} | {ua} |")
    return lines


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph in it (``Loop`` bodies, ``If`` branches), depth first."""
    yield graph
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from _graphs(g)


def unsigned_weights(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """``model`` with every ``MatMulInteger``'s INT8 weights stored as UINT8 plus 128 (zero points too), and how
    many nodes changed; subgraphs included.

    Why: on x86 CPUs with AVX2 but no VNNI (Intel before Ice Lake / Cascade Lake, AMD before Zen 4), ONNX
    Runtime multiplies UINT8 activations by INT8 weights with ``vpmaddubsw``, which adds pairs of products in
    16-bit lanes that saturate: the dynamic-INT8 base and small tiers lost 7-17 UA points on such a CPU.
    The session option ``session.x64quantprecision`` selects an exact kernel, but not inside a ``Loop`` body,
    where those tiers run their graph. UINT8 x UINT8 takes a kernel that widens first. ``MatMulInteger``
    computes ``(a - a_zero) * (b - b_zero)`` in 32-bit integers, and ``b + 128 - (zero + 128)`` is ``b - zero``
    exactly, so the result is the same integer wherever the INT8 kernel did not saturate."""
    from onnx import TensorProto, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graphs = list(_graphs(out.graph))
    inits = {t.name: t for g in graphs for t in g.initializer}
    made: dict[tuple[str, str], tuple[str, str]] = {}
    changed = 0
    for graph in graphs:
        for node in graph.node:
            weight = inits.get(node.input[1]) if node.op_type == "MatMulInteger" else None
            if weight is None or weight.data_type != TensorProto.INT8:
                continue
            zero_name = node.input[3] if len(node.input) > 3 else ""
            if zero_name and zero_name not in inits:
                continue  # a zero point computed in the graph: left as it is
            key = (node.input[1], zero_name)
            if key not in made:
                q = numpy_helper.to_array(weight).astype(np.int16) + 128
                zero = numpy_helper.to_array(inits[zero_name]) if zero_name else np.zeros((), np.int8)
                names = (f"{weight.name}_u8", f"{weight.name}_zero_point_u8")
                graph.initializer.extend(
                    [
                        numpy_helper.from_array(q.astype(np.uint8), names[0]),
                        numpy_helper.from_array((zero.astype(np.int16) + 128).astype(np.uint8), names[1]),
                    ]
                )
                made[key] = names
            while len(node.input) < 4:
                node.input.append("")
            node.input[1], node.input[3] = made[key]
            changed += 1
    used = {i for g in graphs for n in g.node for i in n.input} | {o.name for o in out.graph.output}
    for graph in graphs:  # the INT8 copies nothing reads any more
        kept = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(kept)
    return out, changed
