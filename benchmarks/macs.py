"""Multiply-accumulates of an ONNX graph, counted from its operators and inferred shapes.

Counted: ``Conv`` (output elements × C_in/group × kernel), ``ConvTranspose`` (input elements ×
C_out/group × kernel), ``MatMul`` and ``Gemm`` (M × K × N, batch dimensions included), and their
quantized forms (``QLinearConv``, ``ConvInteger``, ``QLinearMatMul``, ``MatMulInteger``). In a
QDQ INT8 graph the Conv/MatMul between ``DequantizeLinear`` and ``QuantizeLinear`` is counted
like its FP32 original; the (de)quantize nodes themselves are not. Elementwise and reduction
operators (Add, Relu, BatchNormalization, pooling, Softmax, ...) are ignored: on these models
they are a small fraction of the work, and a MAC is the usual unit for comparing networks.
Nodes inside subgraphs (If, Loop, Scan) are not visited. For a waveform-in model whose graph
holds the front-end, its DFT (a strided Conv), mel and DCT products count.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import onnx
from onnx import helper, shape_inference

from edge_ser.contract import ModelContract

# op type -> (index of the data input, index of the weight input)
_CONV = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3), "ConvTranspose": (0, 1)}
_MATMUL = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3), "Gemm": (0, 1)}
_OPS = {**_CONV, **_MATMUL}

Shape = tuple[int, ...]


def _shape(value: onnx.ValueInfoProto) -> Shape | None:
    """A fully known tensor shape, or None when any dimension is symbolic or unknown."""
    t = value.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
    return None if any(d < 0 for d in dims) else dims


def _with_input_shapes(model: onnx.ModelProto, input_shapes: dict[str, Sequence[int]]) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    inputs = {i.name: i for i in copy.graph.input}
    for name, shape in input_shapes.items():
        if name not in inputs:
            raise ValueError(f"graph has no input {name!r} (inputs: {sorted(inputs)})")
        tensor = inputs[name].type.tensor_type
        dims = tensor.shape.dim
        declared = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        fits = len(declared) == len(shape) and all(d in (None, s) for d, s in zip(declared, shape))
        if tensor.HasField("shape") and not fits:
            raise ValueError(f"input {name!r} has shape {declared}, cannot be set to {list(shape)}")
        del dims[:]
        for size in shape:
            dims.add().dim_value = int(size)
    try:
        return shape_inference.infer_shapes(copy, data_prop=True)
    except Exception as exc:  # onnx raises its own untyped inference and checker errors
        raise ValueError(f"shape inference failed: {str(exc).strip().splitlines()[0][:200]}") from None


def _need(shapes: dict[str, Shape | None], node: onnx.NodeProto, names: Sequence[str]) -> list[Shape]:
    """The known shapes of ``names``, or ``ValueError`` naming the node that cannot be counted."""
    found = []
    for name in names:
        shape = shapes.get(name)
        if shape is None:
            raise ValueError(f"{node.op_type} node {node.name or node.output[0]!r}: shape of {name!r} is unknown")
        found.append(shape)
    return found


def _counted(graph: onnx.GraphProto) -> list[tuple[onnx.NodeProto, tuple[str, str, str]]]:
    """The nodes that count, each with its (data, weight, output) tensor names."""
    found = []
    for node in graph.node:
        if node.domain in ("", "ai.onnx") and node.op_type in _OPS:
            data, weight = _OPS[node.op_type]
            found.append((node, (node.input[data], node.input[weight], node.output[0])))
    return found


def _run_shapes(model: onnx.ModelProto, names: list[str], input_shapes: dict[str, Sequence[int]]) -> dict[str, Shape]:
    """Shapes of ``names`` from one onnxruntime run of ``model`` with them exposed as outputs.

    For what static inference leaves unresolved, such as the padding arithmetic of an in-graph front-end.
    """
    import numpy as np
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in outputs)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    rng = np.random.default_rng(0)
    types = {i.name: helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in probe.graph.input}
    feeds = {name: (0.1 * rng.standard_normal(shape)).astype(types[name]) for name, shape in input_shapes.items()}
    try:
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
        values = session.run(names, feeds)
    except Exception as exc:  # onnxruntime raises several untyped errors
        raise ValueError(f"shapes unknown and the graph did not run: {str(exc).strip()[:200]}") from None
    return {n: tuple(v.shape) for n, v in zip(names, values)}


def count_macs(model: onnx.ModelProto | str | os.PathLike, input_shapes: dict[str, Sequence[int]]) -> int:
    """Total MACs of one run of ``model`` with its inputs set to ``input_shapes`` (name -> shape).

    Shapes come from onnx shape inference; those it cannot resolve, from one onnxruntime run on
    random input. Raises ``ValueError`` when neither gives the shapes a counted node needs.
    """
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(os.fspath(model))
    model = _with_input_shapes(model, input_shapes)
    graph = model.graph
    shapes: dict[str, Shape | None] = {v.name: _shape(v) for v in (*graph.input, *graph.value_info, *graph.output)}
    shapes.update({t.name: tuple(t.dims) for t in graph.initializer})
    counted = _counted(graph)
    unknown = sorted({n for _, names in counted for n in names if shapes.get(n) is None})
    if unknown:
        shapes.update(_run_shapes(model, unknown, input_shapes))
    total = 0
    for node, names in counted:
        x, w, y = _need(shapes, node, names)
        if node.op_type in _CONV:
            # Conv weight (C_out, C_in/group, *k): each output element takes C_in/group * k MACs;
            # ConvTranspose weight (C_in, C_out/group, *k): each input element feeds C_out/group * k.
            total += math.prod(x if node.op_type == "ConvTranspose" else y) * math.prod(w[1:])
        else:
            trans_a = any(attr.name == "transA" and attr.i for attr in node.attribute)
            inner = x[0] if node.op_type == "Gemm" and trans_a else x[-1]
            total += math.prod(y) * inner
    return total


def input_shape(contract: ModelContract, n_samples: int) -> Shape:
    """The model input for ``n_samples`` of audio at the model's rate, batch 1."""
    if contract.input_kind == "waveform":
        return (1, n_samples)
    return (1, contract.frontend.num_frames(n_samples), contract.frontend.n_features)


def macs_per_second(path: str | os.PathLike, contract: ModelContract, seconds: float) -> float:
    """MACs the Recognizer spends on ``seconds`` of audio, per second of audio.

    The audio is cut into the model's analysis windows (:func:`edge_ser.windows.plan`), as
    ``Recognizer.predict`` does; each distinct window length is counted once.
    """
    from edge_ser.windows import plan

    rate = contract.sample_rate
    bounds = plan(
        int(round(seconds * rate)), int(round(contract.window_seconds * rate)), int(round(contract.hop_seconds * rate))
    )
    lengths = [e - s for s, e in bounds]
    per_length = {n: count_macs(path, {contract.input_name: input_shape(contract, n)}) for n in set(lengths)}
    return sum(per_length[n] for n in lengths) / seconds
