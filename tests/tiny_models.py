"""Tiny edge-ser ONNX models built with onnx.helper, for tests and the README's first command.

Feature models average their input over time and apply a linear layer per head; waveform
models do the same on two statistics of the samples (mean square and mean absolute value).
They are untrained: they exercise the contract, not accuracy.

    python tests/tiny_models.py OUT.onnx [EXAMPLE.wav]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge_ser.contract import Head, ModelContract
from edge_ser.frontend import FrontEnd, Normalization

EMOTIONS = ("angry", "happy", "neutral", "sad")
GENDERS = ("female", "male")


def make_contract(
    frontend: FrontEnd | None = None,
    heads: dict[str, tuple[str, ...]] | None = None,
    normalization: Normalization | None = None,
    window_seconds: float = 1.0,
    hop_seconds: float = 0.5,
    min_seconds: float = 0.1,
    parameters: int = 1,
    name: str = "tiny",
) -> ModelContract:
    frontend = frontend or FrontEnd("mfcc")
    heads = heads or {"emotion": EMOTIONS, "gender": GENDERS}
    return ModelContract(
        name=name,
        input_kind="waveform" if frontend.kind == "waveform" else "features",
        input_name="input",
        sample_rate=frontend.sample_rate,
        frontend=frontend,
        normalization=normalization or Normalization(),
        window_seconds=window_seconds,
        hop_seconds=hop_seconds,
        min_seconds=min_seconds,
        heads=tuple(Head(n, f"{n}_logits", tuple(labels)) for n, labels in heads.items()),
        parameters=parameters,
        provenance={"dataset": "none (untrained test model)", "created": "tests/tiny_models.py"},
    )


def build_graph(contract: ModelContract, seed: int = 0, n_labels: dict[str, int] | None = None) -> onnx.ModelProto:
    """An ONNX model fitting ``contract`` (``n_labels`` overrides a head's output width, to break it)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    if contract.input_kind == "features":
        dim = contract.frontend.n_features
        inp = helper.make_tensor_value_info(contract.input_name, TensorProto.FLOAT, ["batch", "frames", dim])
        nodes.append(helper.make_node("ReduceMean", [contract.input_name], ["pooled"], axes=[1], keepdims=0))
    else:
        dim = 2
        inp = helper.make_tensor_value_info(contract.input_name, TensorProto.FLOAT, ["batch", "samples"])
        nodes += [
            helper.make_node("Mul", [contract.input_name, contract.input_name], ["sq"]),
            helper.make_node("ReduceMean", ["sq"], ["power"], axes=[1], keepdims=1),
            helper.make_node("Abs", [contract.input_name], ["mag"]),
            helper.make_node("ReduceMean", ["mag"], ["level"], axes=[1], keepdims=1),
            helper.make_node("Concat", ["power", "level"], ["pooled"], axis=1),
        ]
    outputs = []
    for head in contract.heads:
        width = (n_labels or {}).get(head.name, len(head.labels))
        w = numpy_helper.from_array((0.05 * rng.standard_normal((dim, width))).astype(np.float32), f"{head.name}_w")
        b = numpy_helper.from_array((0.1 * rng.standard_normal(width)).astype(np.float32), f"{head.name}_b")
        inits += [w, b]
        nodes += [
            helper.make_node("MatMul", ["pooled", w.name], [f"{head.name}_mm"]),
            helper.make_node("Add", [f"{head.name}_mm", b.name], [head.output]),
        ]
        outputs.append(helper.make_tensor_value_info(head.output, TensorProto.FLOAT, ["batch", width]))
    graph = helper.make_graph(nodes, contract.name, [inp], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save(model: onnx.ModelProto, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` with ``metadata`` as its metadata_props."""
    del model.metadata_props[:]
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return Path(path)


def build_tiny_model(path: str | Path, contract: ModelContract | None = None, seed: int = 0) -> Path:
    """A valid tiny edge-ser model at ``path``."""
    contract = contract or make_contract()
    model = build_graph(contract, seed)
    contract = ModelContract.from_dict({**contract.to_dict(), "parameters": count_parameters(model)})
    return save(model, path, contract.to_metadata())


EMBEDDING_MEAN = (0.02, 0.1, 0.5, -0.5)
EMBEDDING_STD = (0.05, 0.1, 0.4, 0.4)


def embedding_contract(space: str = "tiny/embedding", name: str = "tiny-embedding") -> ModelContract:
    """A waveform model with embedding adaptation (the base tier's form) over a 4-dimensional embedding."""
    from edge_ser.contract import EmbeddingAdaptation

    embedding = EmbeddingAdaptation(
        space=space,
        dim=4,
        embedding_output="embedding",
        shift_input="embedding_shift",
        scale_input="embedding_scale",
        output="emotion_adapted_logits",
        mean=EMBEDDING_MEAN,
        std=EMBEDDING_STD,
    )
    base = make_contract(FrontEnd("waveform"), heads={"emotion": EMOTIONS}, name=name)
    return ModelContract.from_dict({**base.to_dict(), "adaptation": embedding.to_dict()})


def build_embedding_model(
    path: str | Path, contract: ModelContract | None = None, seed: int = 0, optional_inputs: bool = True
) -> Path:
    """A tiny model with embedding adaptation: the embedding is 4 statistics of the samples (mean square, mean
    absolute value, max, min); the plain head reads it, the adapted head reads ``(embedding - shift) / scale`` with
    ``shift``/``scale`` optional inputs defaulting to the contract's global statistics (``optional_inputs=False``
    leaves them plain initializers, which the runtime must refuse)."""
    contract = contract or embedding_contract()
    e = contract.embedding
    rng = np.random.default_rng(seed)
    x = contract.input_name
    nodes = [
        helper.make_node("Mul", [x, x], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["power"], axes=[1], keepdims=1),
        helper.make_node("Abs", [x], ["mag"]),
        helper.make_node("ReduceMean", ["mag"], ["level"], axes=[1], keepdims=1),
        helper.make_node("ReduceMax", [x], ["peak"], axes=[1], keepdims=1),
        helper.make_node("ReduceMin", [x], ["trough"], axes=[1], keepdims=1),
        helper.make_node("Concat", ["power", "level", "peak", "trough"], [e.embedding_output], axis=1),
        helper.make_node("MatMul", [e.embedding_output, "w"], ["plain_mm"]),
        helper.make_node("Add", ["plain_mm", "b"], [contract.heads[0].output]),
        helper.make_node("Sub", [e.embedding_output, e.shift_input], ["shifted"]),
        helper.make_node("Div", ["shifted", e.scale_input], ["normalized"]),
        helper.make_node("MatMul", ["normalized", "wa"], ["adapted_mm"]),
        helper.make_node("Add", ["adapted_mm", "ba"], [e.output]),
    ]
    n = len(contract.heads[0].labels)
    inits = [
        numpy_helper.from_array((2.0 * rng.standard_normal((4, n))).astype(np.float32), "w"),
        numpy_helper.from_array((0.1 * rng.standard_normal(n)).astype(np.float32), "b"),
        numpy_helper.from_array((rng.standard_normal((4, n))).astype(np.float32), "wa"),
        numpy_helper.from_array((0.1 * rng.standard_normal(n)).astype(np.float32), "ba"),
        numpy_helper.from_array(np.asarray(e.mean, dtype=np.float32), e.shift_input),
        numpy_helper.from_array(np.asarray(e.std, dtype=np.float32), e.scale_input),
    ]
    inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", "samples"])]
    if optional_inputs:
        inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [e.dim]) for n in (e.shift_input, e.scale_input)]
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", width])
        for name, width in ((contract.heads[0].output, n), (e.output, n), (e.embedding_output, 4))
    ]
    model = helper.make_model(
        helper.make_graph(nodes, contract.name, inputs, outputs, inits), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return save(model, path, contract.to_metadata())


def count_parameters(model: onnx.ModelProto) -> int:
    return int(sum(np.prod(t.dims) for t in model.graph.initializer))


def write_example(path: str | Path, seconds: float = 2.5, rate: int = 16000) -> Path:
    """A short voiced-like test signal (a gliding harmonic tone with noise), as WAV."""
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.8 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.3 + 0.2 * np.sin(2 * np.pi * 3 * t) ** 2)
    x += 0.01 * np.random.default_rng(0).standard_normal(len(t))
    sf.write(str(path), (0.5 * x / np.abs(x).max()).astype(np.float32), rate, subtype="PCM_16")
    return Path(path)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    print(build_tiny_model(sys.argv[1]))
    if len(sys.argv) == 3:
        print(write_example(sys.argv[2]))
