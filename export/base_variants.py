"""Precision variants of a large FP32 graph (the base tier) and the rule that picks the shipped one.

- ``fp32``: the graph as exported.
- ``fp16w``: every large float weight stored as FP16 and cast to FP32 when the session loads (ONNX Runtime
  folds the casts), so the file is half the size and computes like FP32.
- ``int8s``: static QDQ INT8 (per-channel weights, activation scales calibrated on training speakers' audio) of
  the weight MatMuls; the log-mel front-end, the attention's activation x activation MatMuls and the head stay
  float.
- ``int8d``: ONNX Runtime's dynamic INT8 of the same MatMuls (per-channel weights, activation scale computed per
  call from the whole input tensor).
- ``int8d-ffn``: dynamic INT8 of the feed-forward MatMuls only (about two thirds of a block's MACs); the attention
  projections, whose value/output path lost the most when quantized, stay float.
- ``int8d-ffnqk``: dynamic INT8 of the feed-forward MatMuls and the query/key projections (the least sensitive
  projections); the value and output projections stay float.
- ``int8d-refit``: ``int8d``'s encoder with the emotion head fit on that encoder's own pooled features
  (:func:`embeddings`) instead of the FP32 teacher's: quantization noise shifts the pooled statistics (the
  standard deviation grows by it), which a head fit on FP32 features reads slightly off.
- ``int8d-stem`` / ``int8d-stem-refit``: ``int8d`` (/ ``int8d-refit``) with the conv stem in INT8 too: each
  stem ``Conv`` rewritten as an im2col ``MatMul`` (:func:`conv_stem_as_matmul`, equal in FP32), which dynamic INT8
  runs fast where ONNX Runtime's ``ConvInteger`` is slower than the float ``Conv``.

Every variant runs its graph once per window inside a ``Loop`` over the batch (:func:`per_item`): dynamic INT8
would otherwise quantize a window with the scale of its whole batch, and even FP32 GEMMs round differently for
different batch sizes, so without it ``predict``, ``predict_batch`` and ``stream`` would not agree exactly.
:func:`choose` ships the fastest variant that fits the tier's 16 MB and whose mean UA is within 0.5 point of FP32.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge_ser.model import session_options

from .quantize import unsigned_weights

VARIANTS = {
    "fp32": "FP32",
    "fp16w": "FP16 weights, FP32 compute",
    "int8s": "static INT8 weight MatMuls (QDQ, per-channel), attention and front-end in float",
    "int8d": "dynamic INT8 weight MatMuls (per-channel)",
    "int8d-ffn": "dynamic INT8 feed-forward MatMuls (per-channel), attention projections float",
    "int8d-ffnqk": "dynamic INT8 feed-forward and query/key MatMuls (per-channel), value/output projections float",
    "int8d-refit": "dynamic INT8 weight MatMuls (per-channel), head fit on the INT8 encoder's own features",
    "int8d-stem": "dynamic INT8 weight MatMuls and conv stem (im2col MatMul), per-channel",
    "int8d-stem-refit": "dynamic INT8 weight MatMuls and conv stem, head fit on that encoder's own features",
}
# Variants whose emotion head is refit on their own encoder's features: the variant whose encoder each uses.
REFIT = {"int8d-refit": "int8d", "int8d-stem-refit": "int8d-stem"}
STEM = ("/conv1/Conv", "/conv2/Conv")  # the conv stem's nodes, which int8d-stem runs as im2col MatMuls
# Dynamic INT8 variants: the weight MatMuls they quantize, by a part of the node name (None: all of them).
DYNAMIC: dict[str, tuple[str, ...] | None] = {
    "int8d": None,
    "int8d-ffn": ("/fc1/", "/fc2/"),
    "int8d-ffnqk": ("/fc1/", "/fc2/", "/q_proj/", "/k_proj/"),
    "int8d-stem": None,
}
TOLERANCE = 0.005  # UA, as a fraction
MAX_BYTES = 16_000_000  # the base tier's size budget
FLOAT_SCOPES = ("/logmel/", "/head/", "/adapt_head/")  # front-end (huge dynamic range) and emotion heads stay float
MIN_FP16_ELEMENTS = 1024
# The emotion heads' initializers and the adaptation's default statistics: float in every variant.
HEAD = ("head.weight", "head.bias", "adapt_head.weight", "adapt_head.bias", "embedding_shift", "embedding_scale")


def _copy_contract(src: onnx.ModelProto, dst: onnx.ModelProto) -> None:
    del dst.metadata_props[:]
    for prop in src.metadata_props:
        dst.metadata_props.add(key=prop.key, value=prop.value)
    dst.producer_name = src.producer_name


def fp16_weights(fp32: onnx.ModelProto) -> onnx.ModelProto:
    """Large float initializers (but the head's) stored as FP16, each behind a ``Cast`` to FP32."""
    model = onnx.ModelProto()
    model.CopyFrom(fp32)
    graph = model.graph
    casts, kept = [], []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and np.prod(init.dims) >= MIN_FP16_ELEMENTS and init.name not in HEAD:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16")
            kept.append(half)
            casts.append(
                helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=init.name + "_cast")
            )
        else:
            kept.append(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return model


def per_item(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph run once per batch row inside a ``Loop``: each row's result cannot depend on the others.

    The original nodes become the loop body, which reads row ``i`` of the input and the (outer-scope)
    initializers; every output's rows are stacked back into ``(batch, ...)``.
    """
    graph = model.graph
    (x,) = graph.input
    row = x.name + "_row"
    body_nodes = [
        helper.make_node("Gather", [x.name, "i"], [row], axis=0, name="per_item/Gather"),
        helper.make_node("Unsqueeze", [row, "zero_axis"], [x.name + "_one"], name="per_item/Unsqueeze"),
    ]
    rename = {x.name: x.name + "_one"}
    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        for k, name in enumerate(copy.input):
            copy.input[k] = rename.get(name, name)
        body_nodes.append(copy)
    outputs = []
    for out in graph.output:
        body_nodes.append(
            helper.make_node("Squeeze", [out.name, "zero_axis"], [out.name + "_item"], name=f"per_item/{out.name}")
        )
        outputs.append(helper.make_tensor_value_info(out.name + "_item", TensorProto.FLOAT, None))
    body_nodes.append(helper.make_node("Identity", ["cond"], ["cond_out"], name="per_item/cond"))
    body = helper.make_graph(
        body_nodes,
        "per_item",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), *outputs],
    )
    outer = [
        helper.make_node("Shape", [x.name], ["per_item_shape"], name="per_item/Shape"),
        helper.make_node("Gather", ["per_item_shape", "zero"], ["per_item_batch"], axis=0, name="per_item/batch"),
        helper.make_node(
            "Loop", ["per_item_batch", "true"], [o.name for o in graph.output], body=body, name="per_item/Loop"
        ),
    ]
    constants = [
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "zero_axis"),
        numpy_helper.from_array(np.array(True), "true"),
    ]
    new = helper.make_graph(outer, graph.name, [x], list(graph.output), [*graph.initializer, *constants])
    wrapped = helper.make_model(new, opset_imports=model.opset_import, producer_name=model.producer_name)
    wrapped.ir_version = model.ir_version
    return wrapped


def expose_adaptation(model: onnx.ModelProto, src: onnx.ModelProto) -> onnx.ModelProto:
    """For a contract with embedding adaptation: its shift/scale initializers (the global statistics) made optional
    graph inputs, which a speaker profile overrides and a plain call leaves at their defaults."""
    from edge_ser.contract import METADATA_KEY, ModelContract

    metadata = {p.key: p.value for p in src.metadata_props}
    if METADATA_KEY not in metadata:  # a bare graph (no contract) has no adaptation to expose
        return model
    e = ModelContract.from_metadata(metadata).embedding
    if e is None:
        return model
    inits = {i.name: i for i in model.graph.initializer}
    for name in (e.shift_input, e.scale_input):
        init = inits.get(name)
        if init is None or init.data_type != TensorProto.FLOAT or list(init.dims) != [e.dim]:
            raise ValueError(f"no float ({e.dim},) initializer {name!r} to expose as an adaptation input")
        model.graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [e.dim]))
    return model


def weight_matmuls(model: onnx.ModelProto, parts: Sequence[str] | None = None) -> list[str]:
    """MatMul/Gemm nodes with an initializer operand, outside the front-end and the head (with ``parts``: only
    those whose name contains one of them)."""
    inits = {i.name for i in model.graph.initializer}
    return [
        n.name
        for n in model.graph.node
        if n.op_type in ("MatMul", "Gemm")
        and any(i in inits for i in n.input)
        and not n.name.startswith(FLOAT_SCOPES)
        and (parts is None or any(p in n.name for p in parts))
    ]


class _Reader:
    def __init__(self, inputs: Sequence[np.ndarray], name: str) -> None:
        self._it, self._name = iter(inputs), name

    def get_next(self):
        x = next(self._it, None)
        return None if x is None else {self._name: x[None].astype(np.float32)}


def conv_stem_as_matmul(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with each 1-D stem ``Conv`` (:data:`STEM`; weight ``(O, C, K)``, symmetric padding, a stride)
    rewritten as im2col + ``MatMul``: the padded input's ``K`` strided taps are concatenated along the channels,
    ``(N, K*C, T')``, transposed and multiplied by the weight reshaped to ``(K*C, O)``. Equal in FP32; a ``MatMul``
    is what dynamic INT8 quantizes fast."""
    from .quantize import _with_nodes

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits = {i.name: i for i in g.initializer}
    nodes = []
    for n in g.node:
        if n.op_type != "Conv" or n.name not in STEM:
            nodes.append(n)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        w = numpy_helper.to_array(inits[n.input[1]])
        (o, c, k), (stride,), (pad, pad_end) = w.shape, attrs.get("strides", [1]), attrs.get("pads", [0, 0])
        if pad != pad_end or attrs.get("group", 1) != 1 or attrs.get("dilations", [1]) != [1]:
            raise ValueError(f"{n.name}: only symmetric padding, one group and no dilation are rewritten")
        pre = n.name.rsplit("/", 1)[0]
        consts = {
            "pads": np.array([0, 0, pad, 0, 0, pad], np.int64),
            "im2col.weight": np.ascontiguousarray(w.transpose(2, 1, 0).reshape(k * c, o)),
            "im2col.bias": numpy_helper.to_array(inits[n.input[2]]) if len(n.input) > 2 else np.zeros(o, np.float32),
            "axis": np.array([2], np.int64),
            "step": np.array([stride], np.int64),
        }
        nodes.append(helper.make_node("Pad", [n.input[0], f"{pre}/pads"], [f"{pre}/xp"], name=f"{pre}/Pad"))
        taps = []
        for j in range(k):  # tap j: frames j, j + stride, ... up to the last full window
            consts[f"start{j}"] = np.array([j], np.int64)
            consts[f"end{j}"] = np.array([j - k + 1 if j < k - 1 else np.iinfo(np.int64).max], np.int64)
            names = [f"{pre}/xp", f"{pre}/start{j}", f"{pre}/end{j}", f"{pre}/axis", f"{pre}/step"]
            nodes.append(helper.make_node("Slice", names, [f"{pre}/tap{j}"], name=f"{pre}/Slice{j}"))
            taps.append(f"{pre}/tap{j}")
        g.initializer.extend(numpy_helper.from_array(v, f"{pre}/{name}") for name, v in consts.items())
        nodes += [
            helper.make_node("Concat", taps, [f"{pre}/cols"], axis=1, name=f"{pre}/Concat"),
            helper.make_node("Transpose", [f"{pre}/cols"], [f"{pre}/rows"], perm=[0, 2, 1], name=f"{pre}/Rows"),
            helper.make_node("MatMul", [f"{pre}/rows", f"{pre}/im2col.weight"], [f"{pre}/mm"], name=f"{pre}/MatMul"),
            helper.make_node("Add", [f"{pre}/mm", f"{pre}/im2col.bias"], [f"{pre}/y"], name=f"{pre}/Add"),
            helper.make_node("Transpose", [f"{pre}/y"], [n.output[0]], perm=[0, 2, 1], name=f"{pre}/Columns"),
        ]
    return _with_nodes(out, nodes)


def _convert(fp32_path: Path, variant: str, calibration: Sequence[str], out: Path) -> None:
    """Write ``variant``'s graph of the FP32 file to ``out``, not yet wrapped by :func:`per_item`."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    src = onnx.load(str(fp32_path))
    variant = REFIT.get(variant, variant)
    if variant == "fp32":
        shutil.copyfile(fp32_path, out)
    elif variant == "fp16w":
        onnx.save(fp16_weights(src), str(out))
    elif variant in DYNAMIC:
        if variant == "int8d-stem":
            src = conv_stem_as_matmul(src)
            fp32_path = Path(out).with_name(Path(out).name + ".im2col.onnx")
            onnx.save(src, str(fp32_path))
        nodes = weight_matmuls(src, DYNAMIC[variant])
        if not nodes:
            raise ValueError(f"{fp32_path}: no MatMul for variant {variant!r}")
        quantize_dynamic(
            str(fp32_path), str(out), weight_type=QuantType.QInt8, per_channel=True, nodes_to_quantize=nodes
        )
        onnx.save(unsigned_weights(onnx.load(str(out)))[0], str(out))  # exact on AVX2 CPUs too (see there)
        if variant == "int8d-stem":
            fp32_path.unlink()
    elif variant == "int8s":
        from edge_ser.audio import load_audio

        class Reader(_Reader, CalibrationDataReader):
            pass

        waves = [load_audio(f, target_rate=16000)[0] for f in calibration]
        quantize_static(
            str(fp32_path),
            str(out),
            Reader(waves, src.graph.input[0].name),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=weight_matmuls(src),
            op_types_to_quantize=["MatMul", "Gemm"],
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
    else:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")


def _head_node(model: onnx.ModelProto) -> onnx.NodeProto:
    nodes = [n for n in model.graph.node if n.name.startswith("/head/") and n.op_type in ("Gemm", "MatMul")]
    if len(nodes) != 1:
        raise ValueError(f"expected one emotion head node under /head/, found {len(nodes)}")
    return nodes[0]


def _set_head(model: onnx.ModelProto, weight: np.ndarray, bias: np.ndarray) -> None:
    """Replace the emotion head's ``(classes, features)`` weight and bias (a ``Gemm`` on ``head.weight``, or the
    quantizer's ``MatMul`` on ``head.weight_Transposed``)."""
    inits = {i.name: i for i in model.graph.initializer}
    for name, value in ((HEAD[0], weight), (HEAD[1], bias)):
        value = np.asarray(value, np.float32)
        if name not in inits and f"{name}_Transposed" in inits:
            name, value = f"{name}_Transposed", value.T
        if name not in inits or list(inits[name].dims) != list(value.shape):
            raise ValueError(f"no float emotion head initializer {name!r} of shape {value.shape}")
        inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), name))


def make_variant(
    fp32_path: Path,
    variant: str,
    calibration: Sequence[str],
    out: Path,
    head: tuple[np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Write ``variant`` of the FP32 file (contract copied) to ``out``; ``calibration``: audio files for int8s;
    ``head``: ``(weight, bias)`` replacing the emotion head (a :data:`REFIT` variant's head, fit on
    :func:`embeddings`; without it the file keeps the FP32 head)."""
    out = Path(out)
    if out.exists() and out.stat().st_mtime >= Path(fp32_path).stat().st_mtime:
        return out
    src = onnx.load(str(fp32_path))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    _convert(fp32_path, variant, calibration, tmp)
    model = onnx.load(str(tmp))
    if head is not None:
        _set_head(model, *head)
    model = expose_adaptation(per_item(model), src)
    _copy_contract(src, model)
    onnx.save(model, str(tmp))
    os.replace(tmp, out)
    return out


def embeddings(fp32_path: Path, variant: str, waves: Iterable[np.ndarray]) -> np.ndarray:
    """``(n, features)``: the pooled embedding (the emotion head's input) of each 16 kHz wave through ``variant``'s
    encoder, one wave per call as the runtime runs it; NaN rows for ``None`` waves (unreadable files)."""
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        _convert(fp32_path, variant, [], path)
        model = onnx.load(str(path))
    name = _head_node(model).input[0]
    model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), session_options(1), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    rows = [None if w is None else session.run([name], {feed: np.asarray(w, np.float32)[None]})[0][0] for w in waves]
    width = next(len(r) for r in rows if r is not None)
    return np.stack([np.full(width, np.nan, np.float32) if r is None else r for r in rows])


def latency_table(paths: Mapping[str, Path], seconds: float = 3.0, runs: int = 30) -> dict[str, dict]:
    """Median ms per ``seconds`` of audio through ``edge_ser.Recognizer`` (one thread), variants interleaved."""
    from edge_ser import Recognizer

    recs = {v: Recognizer(p, threads=1) for v, p in paths.items()}
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
    times: dict[str, list[float]] = {v: [] for v in recs}
    for rec in recs.values():
        rec.predict(audio, sample_rate=16000)
    for _ in range(runs):
        for v, rec in recs.items():
            t = time.perf_counter()
            rec.predict(audio, sample_rate=16000)
            times[v].append(1000 * (time.perf_counter() - t))
    return {v: {"ms": statistics.median(t), "bytes": Path(paths[v]).stat().st_size} for v, t in times.items()}


def choose(folds: Mapping[str, Mapping[str, float]], latency: Mapping[str, Mapping[str, float]]) -> str:
    """The fastest variant within ``MAX_BYTES`` whose mean UA over ``folds`` is within ``TOLERANCE`` of FP32."""
    mean = {v: float(np.mean([f[v] for f in folds.values()])) for v in latency}
    ok = [v for v in latency if mean[v] >= mean["fp32"] - TOLERANCE and latency[v]["bytes"] <= MAX_BYTES]
    if not ok:
        raise ValueError(f"no variant is within {TOLERANCE:.1%} UA of FP32 and {MAX_BYTES:,} bytes")
    return min(ok, key=lambda v: latency[v]["ms"])
