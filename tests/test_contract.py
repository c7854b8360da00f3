"""The model contract: round trip, validation, and models whose graph or metadata is wrong."""

import json

import numpy as np
import pytest
from tiny_models import build_graph, build_tiny_model, make_contract, save

from edge_ser import Recognizer
from edge_ser.contract import METADATA_KEY, ModelContract
from edge_ser.errors import ContractError, EdgeSERError, ModelError
from edge_ser.frontend import FrontEnd, Normalization


def test_round_trip_through_json_and_onnx(tiny_model):
    c = make_contract(FrontEnd("logmel", n_mels=40), normalization=Normalization("global", (0.5,) * 40, (2.0,) * 40))
    assert ModelContract.from_json(c.to_json()) == c
    rec = Recognizer(tiny_model)
    assert rec.contract.labels == ("angry", "happy", "neutral", "sad")
    assert [h.name for h in rec.contract.heads] == ["emotion", "gender"]
    assert ModelContract.from_dict(rec.contract.to_dict()) == rec.contract


def mutate(path_key, value):
    d = make_contract().to_dict()
    target = d
    *parents, last = path_key
    for p in parents:
        target = target[p]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return d


@pytest.mark.parametrize(
    "path_key,value,message",
    [
        (["schema_version"], 99, "schema version"),
        (["heads"], KeyError, "lacks"),
        (["input", "kind"], "spectrogram", "input.kind must be one of"),
        (["input", "kind"], "waveform", "does not fit"),
        (["sample_rate"], 8000, "sample rate differs"),
        (["frontend", "kind"], "chroma", "frontend.kind must be one of"),
        (["window", "seconds"], -1.0, r"window.seconds must be a number in \(0, 60\]"),
        (["window", "hop_seconds"], 5.0, "hop_seconds <= window_seconds"),
        (["window", "min_seconds"], 0.001, "shorter than one front-end frame"),
        (["heads"], [], "heads must be a list of 1..16 items, got a list of 0"),
        (["heads", 0, "labels"], ["angry"], "labels must be a list of 2"),
        (["heads", 0, "labels"], ["a", "a"], "at least 2 distinct labels"),
        (["heads", 1, "name"], "emotion", "unique"),
        (["heads", 0, "kind"], "regression", "kind must be one of"),
        (["normalization"], {"mode": "global", "mean": [0.0], "std": [1.0]}, "statistics for 13 features"),
        (["parameters"], 0, "parameters must be an integer"),
        (["extra"], 1, "unknown fields"),
    ],
)
def test_invalid_contracts_are_rejected(path_key, value, message):
    with pytest.raises(ContractError, match=message):
        ModelContract.from_dict(mutate(path_key, value))


def test_malformed_json():
    with pytest.raises(ContractError, match="not valid JSON"):
        ModelContract.from_json("{nope")
    with pytest.raises(ContractError, match="contract must be a JSON object, got a list of 2"):
        ModelContract.from_json("[1, 2]")


def test_onnx_without_contract(tmp_path):
    path = save(build_graph(make_contract()), tmp_path / "plain.onnx")
    with pytest.raises(ContractError, match="not an edge-ser model"):
        Recognizer(path)


def test_onnx_with_broken_contract(tmp_path):
    path = save(build_graph(make_contract()), tmp_path / "broken.onnx", {METADATA_KEY: "{]"})
    with pytest.raises(ContractError, match="not valid JSON"):
        Recognizer(path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupted_onnx_file(tmp_path, tiny_model, damage):
    data = tiny_model.read_bytes()
    bad = {"truncate": data[: len(data) // 2], "garbage": bytes(range(256)) * 8, "empty": b""}[damage]
    path = tmp_path / "bad.onnx"
    path.write_bytes(bad)
    with pytest.raises(ModelError, match="not a loadable ONNX model") as info:
        Recognizer(path)
    assert "\n" not in str(info.value)


def test_missing_model_and_unknown_name(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Recognizer(tmp_path / "nope.onnx")
    with pytest.raises(ModelError, match="no shipped model"):
        Recognizer("klingon")
    with pytest.raises(ModelError, match="not a model file"):
        Recognizer(tmp_path)


def graph_mismatch(tmp_path, contract, **kwargs):
    path = tmp_path / "mismatch.onnx"
    return save(build_graph(contract, **kwargs), path, contract.to_metadata())


def test_graph_disagreeing_with_labels(tmp_path):
    path = graph_mismatch(tmp_path, make_contract(), n_labels={"emotion": 3})
    with pytest.raises(ModelError, match="graph disagrees.*4 labels"):
        Recognizer(path)


def test_graph_disagreeing_with_frontend(tmp_path):
    c = make_contract()
    model = build_graph(c)
    wrong = ModelContract.from_dict({**c.to_dict(), "frontend": FrontEnd("mfcc", n_mfcc=20, n_mels=26).to_dict()})
    path = save(model, tmp_path / "m.onnx", wrong.to_metadata())
    with pytest.raises(ModelError, match="13 features, front-end gives 20"):
        Recognizer(path)


def test_graph_disagreeing_with_input_and_outputs(tmp_path):
    c = make_contract()
    model = build_graph(c)
    d = c.to_dict()
    d["input"]["name"] = "audio"
    with pytest.raises(ModelError, match="expected one input 'audio'"):
        Recognizer(save(model, tmp_path / "a.onnx", {METADATA_KEY: json.dumps(d)}))
    d = c.to_dict()
    d["heads"][1]["output"] = "sex_logits"
    with pytest.raises(ModelError, match="not in graph"):
        Recognizer(save(model, tmp_path / "b.onnx", {METADATA_KEY: json.dumps(d)}))
    d = c.to_dict()
    d["input"]["kind"], d["frontend"] = "waveform", {"kind": "waveform", "sample_rate": 16000}
    with pytest.raises(ModelError, match="rank 2"):
        Recognizer(save(model, tmp_path / "c.onnx", {METADATA_KEY: json.dumps(d)}))


def test_every_error_is_an_edge_ser_error(tmp_path):
    path = graph_mismatch(tmp_path, make_contract(), n_labels={"gender": 3})
    with pytest.raises(EdgeSERError):
        Recognizer(path)


def test_parameters_recorded(tmp_path):
    path = build_tiny_model(tmp_path / "t.onnx")
    assert Recognizer(path).contract.parameters == 13 * 4 + 4 + 13 * 2 + 2
    assert np.isfinite(Recognizer(path).predict(np.ones(16000, np.float32) * 0.1, sample_rate=16000).score)


# -- issue 21: a hostile or broken contract is a ContractError at load, never a hang or a crash later ----


def contract_text(path_key=None, value=None, raw=None):
    """The tiny contract as JSON, one field replaced by ``value`` (or by the raw JSON text ``raw``)."""
    marker = "__REPLACE__"
    d = mutate(path_key, marker) if path_key else make_contract().to_dict()
    return json.dumps(d).replace(json.dumps(marker), raw if raw is not None else json.dumps(value))


HOSTILE = {
    "hop 1e-6 s (loop, memory)": (["window", "hop_seconds"], 1e-6, None, "hop_seconds"),
    "hop far below the window": (["window", "hop_seconds"], 0.005, None, "at least window_seconds / 50"),
    "window of an hour": (["window", "seconds"], 3600.0, None, "window.seconds"),
    "n_fft 512.5": (["frontend", "n_fft"], 512.5, None, "frontend.n_fft must be an integer"),
    "n_fft 2**20": (["frontend", "n_fft"], 2**20, None, "frontend.n_fft must be an integer in 16..8192"),
    "win_length as text": (["frontend", "win_length"], "0.025", None, "frontend.win_length must be a number"),
    "hop_length 1e-9": (["frontend", "hop_length"], 1e-9, None, "frontend.hop_length"),
    "frames that skip audio": (["frontend", "hop_length"], 0.5, None, "hop_length must not exceed win_length"),
    "sample_rate 1e999": (["sample_rate"], None, "1e999", "sample_rate must be an integer"),
    "sample_rate as text": (["sample_rate"], "16000", None, "sample_rate must be an integer"),
    "sample_rate true": (["sample_rate"], True, None, "sample_rate must be an integer"),
    "sample_rate float": (["sample_rate"], 16000.0, None, "sample_rate must be an integer"),
    "hop of 10**400": (["window", "hop_seconds"], 10**400, None, "window.hop_seconds must be a number"),
    "labels as a string": (["heads", 0, "labels"], "abcdefgh", None, "labels must be a list"),
    "a label that is a number": (["heads", 0, "labels"], ["a", 1], None, r"labels\[1\] must be a non-empty string"),
    "NaN statistic": (["normalization"], None, '{"mode": "global", "mean": [NaN], "std": [1]}', "not valid JSON"),
    "Infinity": (["window", "seconds"], None, "Infinity", "not valid JSON"),
    "std 1e-30": (["normalization"], {"mode": "global", "mean": [0.0] * 13, "std": [1e-30] * 13}, None, "std"),
    "deep provenance": (["provenance"], None, '{"a": ' + "[" * 100 + "]" * 100 + "}", "nested more than 32"),
    "deep JSON": (["provenance"], None, "[" * 100_000 + "]" * 100_000, "nested|not valid JSON"),
    "provenance not an object": (["provenance"], [1], None, "provenance must be a JSON object"),
    "input name null": (["input", "name"], None, "null", "input.name must be a non-empty string"),
    "frontend_in_graph 1": (["input", "frontend_in_graph"], 1, None, "frontend_in_graph must be true or false"),
    "unknown head field": (["heads", 0, "bias"], 1, None, r"heads\[0\] has unknown fields \['bias'\]"),
    "too many heads": (
        ["heads"],
        [{"name": f"h{i}", "output": f"o{i}", "labels": ["a", "b"]} for i in range(17)],
        None,
        "heads must be a list of 1..16",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_contracts_are_contract_errors(case):
    path_key, value, raw, message = HOSTILE[case]
    with pytest.raises(ContractError, match=message) as info:
        ModelContract.from_json(contract_text(path_key, value, raw))
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_a_hostile_model_file_fails_at_load_not_in_a_stream(tmp_path):
    contract = make_contract()
    text = contract_text(["window", "hop_seconds"], 1e-6)
    path = save(build_graph(contract), tmp_path / "hop.onnx", {METADATA_KEY: text})
    with pytest.raises(ContractError, match="hop_seconds"):
        Recognizer(path)


@pytest.mark.parametrize("model", [None, 3, 2.5, ["english"], b"\xffnope.onnx"])
def test_a_model_that_is_not_a_name_or_path_is_a_model_error(model):
    with pytest.raises(ModelError, match="model"):
        Recognizer(model)


@pytest.mark.parametrize("threads", [100_000, 257, -1, True, 1.5, "2"])
def test_threads_are_bounded(tiny_model, threads):
    with pytest.raises(ModelError, match="threads must be an int in 0..256"):
        Recognizer(tiny_model, threads=threads)
    Recognizer(tiny_model, threads=np.int64(2))
