"""Windows of long audio share a model call only where that gives each window exactly its own call's result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import voiced
from onnx import TensorProto, helper, numpy_helper
from tiny_models import build_graph, count_parameters, make_contract, save

from edge_ser import ModelError, Recognizer
from edge_ser.contract import ModelContract
from edge_ser.model import BATCH


class CountingSession:
    """An ONNX Runtime session that records the batch size of every call."""

    def __init__(self, session) -> None:
        self.session, self.batches = session, []

    def run(self, outputs, feeds):
        self.batches.append(len(next(iter(feeds.values()))))
        return self.session.run(outputs, feeds)

    def __getattr__(self, name):
        return getattr(self.session, name)


def batch_dependent_model(path: Path) -> Path:
    """The tiny model with each head's logits plus their mean over the batch: batched calls change every row."""
    contract = make_contract()
    model = build_graph(contract)
    for head in contract.heads:
        add = next(n for n in model.graph.node if head.output in n.output)
        add.output[0] = f"{head.name}_own"
        model.graph.node.extend(
            [
                helper.make_node("ReduceMean", [f"{head.name}_own"], [f"{head.name}_mean"], axes=[0], keepdims=1),
                helper.make_node("Add", [f"{head.name}_own", f"{head.name}_mean"], [head.output]),
            ]
        )
    onnx.checker.check_model(model)
    contract = ModelContract.from_dict({**contract.to_dict(), "parameters": count_parameters(model)})
    return save(model, path, contract.to_metadata())


def slicing_model(path: Path) -> Path:
    """Logits that are input values (the first frame's first features): no arithmetic, so a batched call gives
    each window its own call's result on any CPU."""
    contract = make_contract()
    nodes, inits, outputs, first = [], [], [], 0
    for head in contract.heads:
        bounds = {"starts": [0, first], "ends": [1, first + len(head.labels)], "axes": [1, 2]}
        for key, value in bounds.items():
            inits.append(numpy_helper.from_array(np.array(value, dtype=np.int64), f"{head.name}_{key}"))
        names = [f"{head.name}_{key}" for key in bounds]
        nodes += [
            helper.make_node("Slice", ["input", *names], [f"{head.name}_slice"]),
            helper.make_node("Squeeze", [f"{head.name}_slice", f"{head.name}_axis"], [head.output]),
        ]
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), f"{head.name}_axis"))
        outputs.append(helper.make_tensor_value_info(head.output, TensorProto.FLOAT, ["batch", len(head.labels)]))
        first += len(head.labels)
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", "frames", 13])
    model = helper.make_model(
        helper.make_graph(nodes, "slicing", [inp], outputs, inits), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    contract = ModelContract.from_dict({**contract.to_dict(), "parameters": 1})
    return save(model, path, contract.to_metadata())


def own_calls(rec: Recognizer, x: np.ndarray) -> list[dict[str, float]]:
    """Each window's scores from a call of its own (the reference)."""
    c = rec.contract
    out = []
    cutter = rec.cutter()
    for w in [*cutter.push(x), *cutter.finish()]:
        probs = rec._model.run(c.normalize(c.frontend.pool(w.rows))[None])
        out.append({h: p[0].tolist() for h, p in probs.items()})
    return out


def scores(predictions) -> list[dict[str, list[float]]]:
    return [
        {"emotion": list(p.scores.values()), **{h: list(r.scores.values()) for h, r in p.heads.items()}}
        for p in predictions
    ]


def test_long_audio_windows_share_calls_and_get_their_own_results(tmp_path):
    rec = Recognizer(slicing_model(tmp_path / "slicing.onnx"))
    spy = rec._model.session = CountingSession(rec._model.session)
    x = voiced(12.0, seed=3)
    segments = rec.predict_segments(x, sample_rate=16000)
    assert rec._model.batch_exact(rec._model.contract.model_input(x[:16000]).shape)
    assert spy.batches.count(BATCH) > 2  # beyond batch_exact's probe, windows went through together
    assert scores(segments) == own_calls(rec, x)
    stream = rec.stream()
    streamed = [p for i in range(0, len(x), 160) for p in stream.accept(x[i : i + 160])] + stream.flush()
    assert streamed == segments  # one window at a time in the stream: the same scores, bit for bit


def test_a_model_whose_batched_call_differs_scores_one_window_per_call(tmp_path):
    rec = Recognizer(batch_dependent_model(tmp_path / "batchy.onnx"))
    spy = rec._model.session = CountingSession(rec._model.session)
    x = voiced(12.0, seed=4)
    segments = rec.predict_segments(x, sample_rate=16000)
    shape = rec._model.contract.model_input(x[:16000]).shape
    assert rec._model.batch_exact(shape) is False
    probes = 1 + BATCH  # batch_exact's one check: a batched call and each input on its own
    assert spy.batches[probes:] == [1] * len(segments)
    assert scores(segments) == own_calls(rec, x)


def test_window_batch_is_an_option_checked_at_load(tmp_path):
    path = slicing_model(tmp_path / "slicing.onnx")
    x = voiced(12.0, seed=5)
    default = Recognizer(path).predict_segments(x, sample_rate=16000)
    for n in (1, 3, 8):
        rec = Recognizer(path, window_batch=n)
        spy = rec._model.session = CountingSession(rec._model.session)
        assert rec.predict_segments(x, sample_rate=16000) == default
        assert max(spy.batches) == n
    for bad in (0, -1, 65, 2.0, True, "4", None):
        with pytest.raises(ModelError, match="window_batch"):
            Recognizer(path, window_batch=bad)
