"""Embedding-level speaker adaptation (the base tier's): the contract section, the graph's optional statistics
inputs, a SpeakerProfile of pooled embeddings, causality, exactness across paths, persistence and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_models import EMBEDDING_MEAN, build_embedding_model, embedding_contract

from edge_ser import ContractError, ModelError, ProfileError, Recognizer, SpeakerProfile
from edge_ser.cli import main
from edge_ser.contract import ModelContract
from edge_ser.frontend import FrontEnd, Normalization
from edge_ser.model import OnnxModel, softmax

RATE = 16000


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_embedding_model(tmp_path_factory.mktemp("emb") / "emb.onnx")


def speaker(n: int = 6, seed: int = 0, gain: float = 0.3) -> list[np.ndarray]:
    """Utterances of one 'voice': harmonic tones of varying length and loudness (one window each)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = np.arange(int(rng.uniform(0.5, 0.9) * RATE)) / RATE
        x = sum(np.sin(2 * np.pi * k * 150 * rng.uniform(0.9, 1.1) * t) / k for k in range(1, 4))
        out.append((gain * rng.uniform(0.5, 1.0) * x).astype(np.float32))
    return out


def embedding_of(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return np.array([np.mean(x * x), np.mean(np.abs(x)), x.max(), x.min()])


# -- contract -----------------------------------------------------------------------------------------------
def _with(**changes):
    d = embedding_contract().to_dict()
    d["adaptation"] = {**d["adaptation"], **changes}
    return d


def test_the_section_round_trips_and_describes_the_profile():
    c = embedding_contract()
    again = ModelContract.from_json(c.to_json())
    assert again == c and again.adaptation == "embedding" and again.embedding.dim == 4
    assert again.embedding.profile_spec() == {"kind": "embedding", "space": "tiny/embedding", "dim": 4}
    assert again.embedding.normalization.mean == EMBEDDING_MEAN


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"dim": 5}, "statistics for dim 5"),
        ({"dim": 0}, "dim must be an integer"),
        ({"dim": 4.0}, "dim must be an integer"),
        ({"dim": True}, "dim must be an integer"),
        ({"mean": "0,0,0,0"}, "mean must be a list"),
        ({"mean": [0, 0, 0, float("nan")]}, r"mean\[3\] must be a number"),
        ({"std": [1, 1, 1, 0]}, r"std\[3\] must be a number"),
        ({"kind": "speaker"}, "kind must be one of"),
        ({"space": ""}, "space must be a non-empty string"),
        ({"extra": 1}, "unknown fields"),
        ({"output": "emotion_logits"}, "differ from the model's input and heads"),
        ({"shift_input": "input"}, "differ from the model's input and heads"),
        ({"scale_input": "embedding_shift"}, "distinct"),
    ],
)
def test_bad_sections_are_refused(changes, message):
    with pytest.raises(ContractError, match=message):
        ModelContract.from_dict(_with(**changes))


def test_the_section_is_required_for_embedding_adaptation_and_complete():
    d = embedding_contract().to_dict()
    with pytest.raises(ContractError, match="'none', 'speaker' or an embedding"):
        ModelContract.from_dict({**d, "adaptation": "embedding"})
    incomplete = {k: v for k, v in d["adaptation"].items() if k != "scale_input"}
    with pytest.raises(ContractError, match="lacks"):
        ModelContract.from_dict({**d, "adaptation": incomplete})


def test_a_graph_without_the_optional_inputs_is_refused(tmp_path):
    path = build_embedding_model(tmp_path / "fixed.onnx", optional_inputs=False)
    with pytest.raises(ModelError, match="adaptation input 'embedding_shift' must be an optional float"):
        Recognizer(path)


def test_a_graph_without_the_adapted_output_is_refused(tmp_path):
    path = build_embedding_model(tmp_path / "plain.onnx")
    c = embedding_contract()
    d = c.to_dict()
    d["adaptation"] = {**d["adaptation"], "output": "missing_logits"}
    import onnx

    m = onnx.load(str(path))
    m.metadata_props[0].value = ModelContract.from_dict(d).to_json()
    onnx.save(m, str(path))
    with pytest.raises(ModelError, match="adaptation output 'missing_logits' must be \\(batch, 4\\)"):
        Recognizer(path)


# -- graph and runtime --------------------------------------------------------------------------------------
def test_a_plain_call_equals_the_global_statistics_path(model):
    m = OnnxModel(model)
    x = speaker(1)[0][None]
    e = m.contract.embedding
    plain = m.session.run([e.output], {"input": x})[0]
    fed = m.session.run([e.output], {"input": x, e.shift_input: np.float32(e.mean), e.scale_input: np.float32(e.std)})
    assert np.array_equal(plain, fed[0])
    probs, embedding = m.run_embedding(x)
    assert np.array_equal(probs["emotion"], m.run(x)["emotion"])  # without statistics: the plain head
    assert np.allclose(embedding[0], embedding_of(x[0]), rtol=1e-5, atol=1e-6)


def test_the_profile_adapts_causally_from_the_embeddings_it_heard(model):
    utts = speaker(5)
    plain = Recognizer(model)
    rec = Recognizer(model, profile=SpeakerProfile(min_utterances=1, prior=2))
    m = OnnxModel(model)
    e = m.contract.embedding
    first = rec.predict(utts[0], sample_rate=RATE)
    assert first.scores == plain.predict(utts[0], sample_rate=RATE).scores  # an empty profile: the plain head
    for k in range(1, len(utts)):
        p = rec.predict(utts[k], sample_rate=RATE)
        # expected: the adapted head fed the profile of the k utterances before, blended with 2 pseudo-utterances
        heard = SpeakerProfile(min_utterances=1, prior=2)
        for u in utts[:k]:
            heard.add(embedding_of(u)[None])
        norm = heard.normalization(e.normalization)
        feeds = {"input": utts[k][None], e.shift_input: np.float32(norm.mean), e.scale_input: np.float32(norm.std)}
        expected = softmax(m.session.run([e.output], feeds)[0])[0]
        assert np.allclose(list(p.scores.values()), expected, atol=1e-6)
        assert (
            max(abs(p.scores[label] - q) for label, q in plain.predict(utts[k], sample_rate=RATE).scores.items()) > 1e-3
        )
    assert rec.profile.utterances == len(utts)
    mean, _ = rec.profile.statistics()
    assert np.allclose(mean, np.mean([embedding_of(u) for u in utts], axis=0), rtol=1e-5, atol=1e-7)


def test_predict_batch_and_stream_equal_predict_with_a_profile(model):
    utts = speaker(4, seed=1)
    runs = []
    for path in ("predict", "batch", "stream"):
        rec = Recognizer(model, profile=SpeakerProfile(min_utterances=1, prior=1))
        if path == "predict":
            scores = [rec.predict(x, sample_rate=RATE).scores for x in utts]
        elif path == "batch":
            scores = [p.scores for p in rec.predict_batch(utts, sample_rate=RATE)]
        else:
            scores = []
            for x in utts:
                stream = rec.stream()
                out = stream.accept(x[:3000]) + stream.accept(x[3000:]) + stream.flush()
                assert len(out) == 1
                scores.append(out[0].scores)
        runs.append((scores, rec.profile.to_dict()))
    assert runs[0] == runs[1] == runs[2]


def test_save_load_continues_exactly(model, tmp_path):
    utts = speaker(5, seed=2)
    rec = Recognizer(model, profile=SpeakerProfile(min_utterances=1, prior=3))
    for x in utts[:3]:
        rec.predict(x, sample_rate=RATE)
    rec.profile.save(tmp_path / "user.json")
    assert json.loads((tmp_path / "user.json").read_text())["frontend"]["kind"] == "embedding"
    again = Recognizer(model, profile=SpeakerProfile.load(tmp_path / "user.json"))
    assert [again.predict(x, sample_rate=RATE).scores for x in utts[3:]] == [
        rec.predict(x, sample_rate=RATE).scores for x in utts[3:]
    ]


def test_a_profile_of_another_model_is_refused(model, tmp_path):
    rec = Recognizer(model, profile=SpeakerProfile(min_utterances=1))
    rec.predict(speaker(1)[0], sample_rate=RATE)
    other = build_embedding_model(tmp_path / "other.onnx", embedding_contract(space="another/encoder"))
    with pytest.raises(ProfileError, match="different embedding space"):
        Recognizer(other, profile=rec.profile)
    tiny = SpeakerProfile()
    tiny.bind(FrontEnd("mfcc"))
    with pytest.raises(ProfileError, match="different embedding space"):
        Recognizer(model, profile=tiny)
    wide = SpeakerProfile(min_utterances=1)
    wide.bind({"kind": "embedding", "space": "tiny/embedding", "dim": 4})
    wide.add(np.ones((1, 6)))
    with pytest.raises(ProfileError, match="the model has 4 statistics, the profile 6"):
        Recognizer(model, profile=wide).predict(speaker(1)[0], sample_rate=RATE)
    with pytest.raises(ModelError, match="statistics must have 4 values"):
        OnnxModel(model).run_embedding(speaker(1)[0][None], Normalization("global", (0.0,) * 3, (1.0,) * 3))


def test_cli_profile_works_with_an_embedding_model(model, tmp_path, capsys):
    import soundfile as sf

    files = []
    for k, x in enumerate(speaker(3, seed=3)):
        files.append(tmp_path / f"u{k}.wav")
        sf.write(files[-1], x, RATE)
    profile = tmp_path / "user.json"
    assert main(["predict", "--model", str(model), "--profile", str(profile), *map(str, files)]) == 0
    saved = json.loads(profile.read_text())
    assert saved["utterances"] == 3 and len(saved["mean"]) == 4
    assert main(["predict", "--model", str(model), "--profile", str(profile), str(files[0])]) == 0
    assert json.loads(profile.read_text())["utterances"] == 4
    capsys.readouterr()
