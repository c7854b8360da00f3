"""The microcontroller build: `edge-ser export --c` of the shipped models, cross-compiled for
Cortex-M4F and run under QEMU (mps2-an386) on a golden clip generated here.

The generated model is taken from edge_ser/assets at test time and the golden outputs are
computed by ONNX Runtime at test time, so a re-trained model is checked as it ships.
Tolerances (docs/firmware.md): on the features numpy computes, the C model's logits are within
0.01 of ONNX Runtime's on the INT8 graph the C code computes (its integer kernels reproduce it; the
rest is float rounding); from the clip through the float-only C front-end, the top class is that
of the shipped file (FP32 for `english`) and the logits within 0.25 of the INT8 graph's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import voiced
from firmware_build import build, export_c, mcu_run, onnx_logits, printed

MODEL_ALONE = 0.01
END_TO_END = 0.25
ROOT = Path(__file__).resolve().parents[1]
# The convolutional student built for microcontrollers (StreamNet, docs/firmware.md), committed as its FP32 ONNX file.
MCU_STUDENT = str(ROOT / "firmware" / "models" / "english-stream.onnx")
FLASH_BAR, RAM_BAR = 256 * 1024, 128 * 1024
MODELS = ["english-adaptive", "english", MCU_STUDENT]  # functionals_mlp, edge_cnn, stream_net


def _save_graph(path: Path, nodes: list, inits: list, name: str, contract) -> Path:
    """A features-in (16 bins), 3-logit ONNX graph of ``nodes`` with ``contract`` in its metadata, saved at ``path``."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", "frames", 16])],
        [helper.make_tensor_value_info("emotion_logits", TensorProto.FLOAT, ["batch", 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"edge_ser.contract": contract.to_json()})
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("model", MODELS, ids=["english-adaptive", "english", "english-stream"])
def test_generated_model_on_cortex_m4(model: str, tmp_path: Path) -> None:
    clip = (voiced(3.0, seed=11) * 32767).astype(np.int16)
    got = mcu_run(model, tmp_path, clip)
    ref = got["reference"]
    assert got["golden_logits"].shape == ref.shape
    assert np.abs(got["golden_logits"] - ref).max() <= MODEL_ALONE, (got["golden_logits"], ref)
    assert got["golden_logits"].argmax() == ref.argmax()
    assert got["logits"].argmax() == ref.argmax() == got["shipped"].argmax()
    assert np.abs(got["logits"] - ref).max() <= END_TO_END, (got["logits"], ref)
    assert got["instructions_model"] > 0 and got["stack_bytes"] > 0
    # the arena is the generated model's only static data: its size is fixed when the C is generated
    assert got["objects"]["esr_model.o"]["bss"] == got["summary"]["arena_bytes"]
    assert got["objects"]["esr_model.o"]["data"] == 0
    if model == MCU_STUDENT:  # the microcontroller bars, from the linked program's sizes
        obj = got["objects"]
        flash = sum(obj[o]["text"] + obj[o]["data"] for o in obj)  # model, kernels, front-end (not the test clip)
        ram = got["sections"][".data"] + got["sections"][".bss"] + got["sections"][".stack"]
        assert flash <= FLASH_BAR, flash
        assert ram <= RAM_BAR, got["sections"]
        assert got["stack_bytes"] < got["sections"][".stack"]


@pytest.mark.parametrize("model", MODELS, ids=["english-adaptive", "english", "english-stream"])
def test_generated_model_on_the_host(model: str, tmp_path: Path) -> None:
    """The same program built for the host under ASan + UBSan: the kernels' portable C paths (no SIMD)
    and the double-precision front-end."""
    clip = (voiced(3.0, seed=12) * 32767).astype(np.int16)
    gen = tmp_path / "gen"
    _, features, contract, _ = export_c(model, gen, clip)
    program = build(tmp_path / "host", "model-check", GEN=str(gen)) / "model_check"
    done = subprocess.run([str(program)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = printed(done.stdout)
    ref = onnx_logits(gen / "esr_model.onnx", contract, features)
    golden, logits = np.array(lines["golden_logits"], float), np.array(lines["logits"], float)
    assert np.abs(golden - ref).max() <= MODEL_ALONE and golden.argmax() == ref.argmax()
    assert np.abs(logits - ref).max() <= END_TO_END and logits.argmax() == ref.argmax()


def test_export_refuses_what_it_cannot_compile(tmp_path: Path) -> None:
    """A graph with an operator the generator does not cover is a clear error, not C that computes something else."""
    from onnx import helper
    from tiny_models import build_graph, count_parameters, make_contract, save

    from edge_ser.contract import ModelContract

    contract = make_contract(heads={"emotion": ("calm", "excited")})
    model = build_graph(contract)
    pool = next(n for n in model.graph.node if n.op_type == "ReduceMean")
    pool.output[0] = "pooled_raw"
    model.graph.node.insert(1, helper.make_node("Softsign", ["pooled_raw"], ["pooled"]))
    contract = ModelContract.from_dict({**contract.to_dict(), "parameters": count_parameters(model)})
    path = save(model, tmp_path / "softsign.onnx", contract.to_metadata())
    done = subprocess.run(
        [sys.executable, "-m", "edge_ser.cli", "export", "--c", str(path), "--out", str(tmp_path / "gen")],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "C exporter does not support" in done.stderr and "Softsign" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "gen" / "esr_model.c").exists()


def _tiny_conv_model(path: Path) -> Path:
    """An FP32 convolutional model with the operators a student may use beyond the shipped ones
    (stride-2 and depthwise convolutions, max and average pooling, sigmoid, global pooling)."""
    from onnx import helper, numpy_helper
    from tiny_models import make_contract

    from edge_ser.frontend import FrontEnd

    rng = np.random.default_rng(4)
    contract = make_contract(FrontEnd("logmel", n_mels=16), heads={"emotion": ("a", "b", "c")}, window_seconds=0.5)

    def weight(name: str, *shape: int) -> str:
        inits.append(numpy_helper.from_array((0.3 * rng.standard_normal(shape)).astype(np.float32), name))
        return name

    inits: list = []
    nodes = [
        helper.make_node("Unsqueeze", ["input", weight("axis", 1)], ["x"]),
        helper.make_node(
            "Conv", ["x", weight("w1", 8, 1, 3, 3), weight("b1", 8)], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]
        ),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", weight("w2", 8, 1, 3, 3), weight("b2", 8)], ["c2"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Sigmoid", ["c2"], ["s2"]),
        helper.make_node("MaxPool", ["s2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p2", weight("w3", 12, 8, 1, 1), weight("b3", 12)], ["c3"]),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("AveragePool", ["r3"], ["a3"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        helper.make_node("GlobalAveragePool", ["a3"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("MatMul", ["f", weight("w4", 12, 3)], ["m4"]),
        helper.make_node("Add", ["m4", weight("b4", 3)], ["emotion_logits"]),
    ]
    inits[0] = numpy_helper.from_array(np.array([1], np.int64), "axis")
    return _save_graph(path, nodes, inits, "tiny_conv", contract)


def test_generator_on_a_synthetic_fp32_convnet(tmp_path: Path) -> None:
    """Independent of the shipped files: an FP32 convnet is quantized dynamically, compiled for the host
    and checked against ONNX Runtime on that INT8 graph."""
    model = _tiny_conv_model(tmp_path / "tiny.onnx")
    rng = np.random.default_rng(5)
    clip = (0.3 * 32767 * rng.standard_normal(8000)).clip(-32768, 32767).astype(np.int16)
    gen = tmp_path / "gen"
    summary, features, contract, _ = export_c(str(model), gen, clip, seconds=0.5)
    assert summary["quantization"].startswith("dynamic INT8")
    program = build(tmp_path / "host", "model-check", GEN=str(gen)) / "model_check"
    done = subprocess.run([str(program)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    golden = np.array(printed(done.stdout)["golden_logits"], float)
    ref = onnx_logits(gen / "esr_model.onnx", contract, features)
    assert np.abs(golden - ref).max() <= MODEL_ALONE, (golden, ref)


def _tiny_stream_model(path: Path) -> Path:
    """An FP32 causal 1-D convnet with the operators of a StreamNet (models/arch/stream_net.py): transposed and
    left-padded input, strided stem, dilated depthwise convolution, 1x1 convolution with a residual, mean and
    standard deviation pooling (ReduceMean, Sub, Pow, Clip, Sqrt, Concat), a linear head."""
    from onnx import helper, numpy_helper
    from tiny_models import make_contract

    from edge_ser.frontend import FrontEnd

    rng = np.random.default_rng(6)
    contract = make_contract(FrontEnd("logmel", n_mels=16), heads={"emotion": ("a", "b", "c")}, window_seconds=0.5)
    inits: list = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def weight(name: str, *shape: int) -> str:
        return const(name, (0.3 * rng.standard_normal(shape)).astype(np.float32))

    def left_pad(n: int) -> str:
        return const(f"pad{n}", np.array([0, 0, n, 0, 0, 0], np.int64))

    nodes = [
        helper.make_node("Transpose", ["input"], ["t"], perm=[0, 2, 1]),
        helper.make_node("Pad", ["t", left_pad(2)], ["tp"], mode="constant"),
        helper.make_node("Conv", ["tp", weight("w1", 8, 16, 3), weight("b1", 8)], ["c1"], strides=[2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Pad", ["r1", left_pad(8)], ["r1p"], mode="constant"),
        helper.make_node("Conv", ["r1p", weight("w2", 8, 1, 5), weight("b2", 8)], ["c2"], group=8, dilations=[2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", weight("w3", 8, 8, 1), weight("b3", 8)], ["c3"]),
        helper.make_node("Add", ["r1", "c3"], ["s3"]),
        helper.make_node("Relu", ["s3"], ["h"]),
        helper.make_node("ReduceMean", ["h"], ["mean"], axes=[-1], keepdims=0),
        helper.make_node("Unsqueeze", ["mean", const("last", np.array([-1], np.int64))], ["mean3"]),
        helper.make_node("Sub", ["h", "mean3"], ["d"]),
        helper.make_node("Pow", ["d", const("two", np.array(2.0, np.float32))], ["d2"]),
        helper.make_node("ReduceMean", ["d2"], ["var"], axes=[-1], keepdims=0),
        helper.make_node("Clip", ["var", const("eps", np.array(1e-6, np.float32))], ["varc"]),
        helper.make_node("Sqrt", ["varc"], ["std"]),
        helper.make_node("Concat", ["mean", "std"], ["stats"], axis=1),
        helper.make_node("MatMul", ["stats", weight("w4", 16, 3)], ["m4"]),
        helper.make_node("Add", ["m4", weight("b4", 3)], ["emotion_logits"]),
    ]
    return _save_graph(path, nodes, inits, "tiny_stream", contract)


def test_generator_on_a_synthetic_stream_net(tmp_path: Path) -> None:
    """The StreamNet operators (Transpose and Pad folded into the quantization, dilated 1-D depthwise
    convolution writing its quantized output, residual fused into the 1x1 convolution, statistics pooling)
    on generated weights and inputs, compiled for the host under ASan + UBSan, against ONNX Runtime on the
    INT8 graph; the arena is planned at generation time and the folded tensors take no memory."""
    model = _tiny_stream_model(tmp_path / "tiny_stream.onnx")
    rng = np.random.default_rng(7)
    clip = (0.3 * 32767 * rng.standard_normal(8000)).clip(-32768, 32767).astype(np.int16)
    gen = tmp_path / "gen"
    summary, features, contract, _ = export_c(str(model), gen, clip, seconds=0.5)
    header = (gen / "esr_model.h").read_text()
    assert f"#define ESR_MODEL_ARENA_BYTES {summary['arena_bytes']}u" in header
    # input (49 x 16 floats) + its quantized padded transpose (16 x 51 bytes) at the peak: no float transpose
    assert summary["arena_bytes"] < 49 * 16 * 4 + 16 * 51 + 8 * 25 * 4
    source = (gen / "esr_model.c").read_text()
    assert "esr_transpose" not in source and "esr_conv1d_depthwise_u8" in source and "esr_conv_gemm_res_u8" in source
    program = build(tmp_path / "host", "model-check", GEN=str(gen)) / "model_check"
    done = subprocess.run([str(program)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    golden = np.array(printed(done.stdout)["golden_logits"], float)
    ref = onnx_logits(gen / "esr_model.onnx", contract, features)
    assert np.abs(golden - ref).max() <= MODEL_ALONE, (golden, ref)
    assert golden.argmax() == ref.argmax()
