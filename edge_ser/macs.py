"""Multiply-accumulates of an ONNX model, counted by ONNX Runtime itself (no ``onnx`` package needed).

The model runs once on an input of the given shape with ORT's profiler on and graph optimizations off,
so every node is the file's own operator with the tensor shapes it really saw. Counted: ``Conv``
(output elements x C_in/group x kernel), ``ConvTranspose`` (input elements x C_out/group x kernel),
``MatMul``/``Gemm`` (output elements x K) and their quantized forms (``QLinearConv``, ``ConvInteger``,
``QLinearMatMul``, ``MatMulInteger``); in a QDQ graph the float Conv/MatMul between (de)quantize
nodes counts like its FP32 original. Elementwise, pooling and (de)quantize nodes are not counted.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter

import numpy as np

from .contract import ModelContract
from .windows import plan

_WEIGHT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3, "ConvTranspose": 1}
_MATMUL = {"MatMul": 0, "MatMulInteger": 0, "QLinearMatMul": 0, "Gemm": 0}


def _node_macs(op: str, inputs: list[list[int]], output: list[int]) -> int:
    if op in _WEIGHT:
        w = inputs[_WEIGHT[op]]
        if op == "ConvTranspose":
            return math.prod(inputs[0]) * math.prod(w[1:])
        return math.prod(output) * math.prod(w[1:])
    if op in _MATMUL:
        a = inputs[_MATMUL[op]]
        k = a[-1] if op != "Gemm" else math.prod(a) // max(output[0], 1)
        return math.prod(output) * k
    return 0


def count_macs(path: str | os.PathLike, feed: dict[str, np.ndarray]) -> int:
    """MACs of one run of the model at ``path`` on ``feed``."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "profile")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        session.run(None, feed)
        with open(session.end_profiling()) as f:
            events = json.load(f)
    total = 0
    for e in events:
        args = e.get("args", {})
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or "op_name" not in args:
            continue
        shapes = [next(iter(t.values())) for t in args.get("input_type_shape", [])]
        output = [next(iter(t.values())) for t in args.get("output_type_shape", [])]
        if output:
            total += _node_macs(args["op_name"], shapes, output[0])
    return total


def macs_per_second(path: str | os.PathLike, contract: ModelContract, seconds: float) -> float:
    """MACs per second of audio when ``seconds`` of audio are cut into the model's windows."""
    rate = contract.sample_rate
    window, hop = (int(round(s * rate)) for s in (contract.window_seconds, contract.hop_seconds))
    lengths = Counter(e - s for s, e in plan(int(round(seconds * rate)), window, hop))
    total = 0
    for length, count in lengths.items():
        if contract.input_kind == "waveform":
            shape: tuple[int, ...] = (1, length)
        else:
            shape = (1, contract.frontend.num_frames(length), contract.frontend.n_features)
        total += count * count_macs(path, {contract.input_name: np.zeros(shape, np.float32)})
    return total / seconds
