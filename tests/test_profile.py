"""SpeakerProfile and adaptive recognition: running statistics, causality, persistence, reset,
streaming vs offline, and the CLI's --profile."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from tiny_models import build_tiny_model, make_contract

from edge_ser import ModelError, ProfileError, Recognizer, SpeakerProfile
from edge_ser.cli import main
from edge_ser.frontend import FrontEnd, Normalization
from edge_ser.model import OnnxModel
from edge_ser.windows import plan

RATE = 16000
FRONTEND = FrontEnd("mfcc")
FALLBACK = Normalization("global", tuple(np.linspace(-5, 5, 13)), tuple(np.linspace(1, 3, 13)))


@pytest.fixture(scope="module")
def adapted_model(tmp_path_factory) -> Path:
    contract = dataclasses.replace(make_contract(FRONTEND, normalization=FALLBACK), adaptation="speaker")
    return build_tiny_model(tmp_path_factory.mktemp("models") / "adapted.onnx", contract)


def voices(n: int = 8, seed: int = 0) -> list[np.ndarray]:
    """One 'speaker': tones around 180 Hz with varying length, loudness and breathiness."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = np.arange(int(rng.uniform(0.6, 1.8) * RATE)) / RATE
        f0 = 180 * rng.uniform(0.9, 1.2)
        x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)) * rng.uniform(0.05, 0.3)
        out.append((x + 0.01 * rng.standard_normal(len(t))).astype(np.float32))
    return out


def window_features(x: np.ndarray, window: int = RATE, hop: int = RATE // 2) -> list[np.ndarray]:
    return [FRONTEND(x[s:e]) for s, e in plan(len(x), window, hop)]


def test_profile_statistics_equal_batch_statistics():
    utts = [np.random.default_rng(i).normal(i, 1 + i, size=(50 + 10 * i, 13)) for i in range(5)]
    profile = SpeakerProfile(min_utterances=1)
    for u in utts[:2]:
        profile.add(u)
    profile.add(utts[2], utts[3])  # one utterance given in two parts
    profile.add(utts[4])
    mean, std = profile.statistics()
    batch = Normalization.fit(utts)
    assert profile.utterances == 4 and profile.frames == sum(len(u) for u in utts)
    assert np.allclose(mean, batch.mean, atol=1e-10) and np.allclose(std, batch.std, atol=1e-10)


def test_memory_caps_the_frames_and_follows_a_new_voice():
    profile = SpeakerProfile(min_utterances=1, memory=100)
    profile.add(np.zeros((100, 2)))
    profile.add(np.ones((50, 2)))
    assert profile.frames == 100  # 50 old frames kept, 50 new
    assert np.allclose(profile.statistics()[0], 0.5)


def test_not_ready_means_the_models_global_statistics():
    profile = SpeakerProfile(min_utterances=3)
    assert profile.normalization(FALLBACK) is FALLBACK
    profile.add(np.ones((10, 13)))
    profile.add(np.zeros((10, 13)))
    assert not profile.ready and profile.normalization(FALLBACK) is FALLBACK
    profile.add(np.ones((10, 13)))
    assert profile.ready and np.allclose(profile.normalization(FALLBACK).mean, 2 / 3)


def test_prior_blends_global_statistics_as_pseudo_utterances(tmp_path):
    rng = np.random.default_rng(3)
    utts = [rng.normal(2.0, 0.5, size=(20, 13)) for _ in range(4)]
    profile = SpeakerProfile(min_utterances=1, prior=2)
    for u in utts:
        profile.add(u)
    rows = np.concatenate(utts)
    n, n0 = len(rows), 2 * len(rows) / 4  # two utterances' worth of frames
    g_mean, g_var = np.array(FALLBACK.mean), np.array(FALLBACK.std) ** 2
    mean = (n * rows.mean(0) + n0 * g_mean) / (n + n0)
    var = (n * rows.var(0) + n0 * g_var + (rows.mean(0) - g_mean) ** 2 * n * n0 / (n + n0)) / (n + n0)
    blended = profile.normalization(FALLBACK)
    assert np.allclose(blended.mean, mean) and np.allclose(blended.std, np.sqrt(var))
    assert np.allclose(profile.statistics()[0], rows.mean(0))  # the profile's own statistics are untouched
    plain = SpeakerProfile(min_utterances=1)
    plain.add(*utts)
    assert np.allclose(plain.normalization(FALLBACK).mean, rows.mean(0))  # prior 0: the speaker alone
    profile.save(tmp_path / "p.json")
    assert SpeakerProfile.load(tmp_path / "p.json").normalization(FALLBACK) == blended
    with pytest.raises(ProfileError, match="prior"):
        SpeakerProfile(prior=-1)
    wrong = SpeakerProfile(min_utterances=1, prior=1)
    wrong.add(np.ones((3, 5)))
    with pytest.raises(ProfileError, match="statistics"):
        wrong.normalization(FALLBACK)


def test_each_utterance_uses_only_the_ones_before_it(adapted_model):
    utts = voices()
    rec = Recognizer(adapted_model, profile=SpeakerProfile(min_utterances=2))
    model = OnnxModel(adapted_model)
    for k, x in enumerate(utts):
        got = rec.predict(x, sample_rate=RATE)
        if k < 2:
            norm = FALLBACK
        else:  # the statistics of utterances 0..k-1 only, never k or later
            norm = Normalization.fit([f for u in utts[:k] for f in window_features(u)])
        inputs = [norm(f).astype(np.float32) for f in window_features(x)]
        expected = np.mean([model.run(i[None])["emotion"][0] for i in inputs], axis=0)
        assert np.allclose([got.scores[label] for label in rec.labels], expected, atol=1e-5), k
    assert rec.profile.utterances == len(utts)


def test_save_load_round_trips_exactly(adapted_model, tmp_path):
    rec = Recognizer(adapted_model, profile=SpeakerProfile(min_utterances=2, memory=5000))
    for x in voices(4):
        rec.predict(x, sample_rate=RATE)
    rec.profile.save(tmp_path / "user.json")
    assert (tmp_path / "user.json").stat().st_size < 8192
    loaded = SpeakerProfile.load(tmp_path / "user.json")
    assert loaded.to_dict() == rec.profile.to_dict()
    probe = voices(1, seed=7)[0]
    again = Recognizer(adapted_model, profile=loaded)
    assert again.predict(probe, sample_rate=RATE).scores == rec.predict(probe, sample_rate=RATE).scores


def test_reset_returns_to_the_unadapted_output(adapted_model):
    plain = Recognizer(adapted_model)
    rec = Recognizer(adapted_model, profile=SpeakerProfile(min_utterances=1))
    probe = voices(1, seed=3)[0]
    for x in voices(3):
        rec.predict(x, sample_rate=RATE)
    assert rec.predict(probe, sample_rate=RATE).scores != plain.predict(probe, sample_rate=RATE).scores
    rec.profile.reset()
    assert rec.predict(probe, sample_rate=RATE).scores == plain.predict(probe, sample_rate=RATE).scores


def test_streaming_and_offline_adaptation_agree(adapted_model):
    utts = voices(6, seed=1)
    offline = Recognizer(adapted_model, profile=SpeakerProfile(min_utterances=2))
    streaming = Recognizer(adapted_model, profile=SpeakerProfile(min_utterances=2))
    stream = streaming.stream(sample_rate=RATE)
    for x in utts:
        expected = offline.predict_segments(x, sample_rate=RATE)
        stream.reset()
        got = [p for c in range(0, len(x), 320) for p in stream.accept(x[c : c + 320])] + stream.flush()
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert (g.start, g.end) == (e.start, e.end) and g.scores == pytest.approx(e.scores, abs=1e-6)
    assert streaming.profile.utterances == offline.profile.utterances == len(utts)
    assert np.allclose(streaming.profile.statistics()[0], offline.profile.statistics()[0])


def test_batch_adapts_in_order_and_reports_bad_items(adapted_model):
    utts = voices(4, seed=2)
    one = Recognizer(adapted_model, profile=SpeakerProfile(min_utterances=1))
    expected = [one.predict(x, sample_rate=RATE) for x in utts]
    rec = Recognizer(adapted_model, profile=SpeakerProfile(min_utterances=1))
    got = rec.predict_batch([utts[0], np.zeros(10, np.float32), *utts[1:]], sample_rate=RATE, on_error="return")
    assert isinstance(got[1], Exception) and rec.profile.utterances == 4
    assert [p.scores for p in got[:1] + got[2:]] == [p.scores for p in expected]


def test_profile_errors(adapted_model, tiny_model, tmp_path):
    with pytest.raises(ModelError, match="not trained for speaker adaptation"):
        Recognizer(tiny_model, profile=SpeakerProfile())
    other = SpeakerProfile()
    other.bind(FrontEnd("logmel"))
    with pytest.raises(ProfileError, match="different front-end"):
        Recognizer(adapted_model, profile=other)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ProfileError, match="invalid JSON"):
        SpeakerProfile.load(tmp_path / "bad.json")
    good = SpeakerProfile(min_utterances=1)
    good.add(np.ones((4, 13)))
    broken = {**good.to_dict(), "m2": [-1.0] * 13}
    with pytest.raises(ProfileError, match="malformed"):
        SpeakerProfile.from_dict(broken)
    with pytest.raises(ProfileError, match="not an edge-ser speaker profile"):
        SpeakerProfile.from_dict({"mean": [0]})
    with pytest.raises(ProfileError):
        SpeakerProfile(min_utterances=0)


def test_cli_profile_is_created_used_and_saved(adapted_model, tmp_path, capsys):
    import soundfile as sf

    files = []
    for k, x in enumerate(voices(3)):
        files.append(tmp_path / f"u{k}.wav")
        sf.write(files[-1], x, RATE)
    profile = tmp_path / "user.json"
    assert main(["predict", "--model", str(adapted_model), "--profile", str(profile), *map(str, files)]) == 0
    saved = json.loads(profile.read_text())
    assert saved["utterances"] == 3 and (saved["min_utterances"], saved["prior"]) == (1, 3.0)
    assert main(["predict", "--model", str(adapted_model), "--profile", str(profile), str(files[0])]) == 0
    assert json.loads(profile.read_text())["utterances"] == 4
    capsys.readouterr()


def test_a_frozen_profile_is_used_but_learns_nothing(adapted_model):
    rec = Recognizer(adapted_model, profile=SpeakerProfile(min_utterances=1))
    for x in voices(2):
        rec.predict(x, sample_rate=RATE)
    rec.profile.frozen = True
    before = rec.profile.to_dict()
    probe = voices(1, seed=5)[0]
    first = rec.predict(probe, sample_rate=RATE)
    assert rec.profile.to_dict() == before and rec.predict(probe, sample_rate=RATE).scores == first.scores
