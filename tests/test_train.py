"""Trainer: feature cache, crops and augmentation, runtime-equivalent evaluation, training,
checkpoints, resume and the CLI -- on a tiny generated corpus (sine tones vs. noise)."""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import types
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

import models.training.corpus_data
import models.training.run
from edge_ser import windows
from edge_ser.frontend import FrontEnd, Normalization
from models.arch.heads import IGNORE, ctc_loss
from models.arch.registry import build_model, count_parameters, default_config
from models.data import features
from models.data.augment import (
    Augment,
    add_noise,
    apply_view,
    check_view,
    freq_warp,
    noise_view,
    pitch_view,
    spec_augment,
    speed_perturb,
    speed_view,
)
from models.data.batches import TrainBatches, crop
from models.training import FoldResult, RunConfig, TrainReport, train
from models.training.checkpoint import load_checkpoint, load_tensors, save_checkpoint
from models.training.cli import configure_parser, main
from models.training.config import Split, TrainConfig
from models.training.corpus_data import prepare_data
from models.training.evaluate import eval_inputs, predict
from models.training.loop import _training_settings, _warmed_up_ema, same_settings, train_fold
from models.training.run import train_folds

torch.set_num_threads(1)
RATE = 16000


@dataclass
class Utt:
    path: str
    emotion: str
    speaker: str
    gender: str | None
    text: str = ""
    corpus: str = "toy"
    syllables: int | None = None


@dataclass
class Corpus:
    name: str
    root: str
    emotions: tuple[str, ...]
    utterances: list[Utt]
    skipped: list[Any] = field(default_factory=list)


def make_corpus(root: Path, per_speaker: int = 4, speakers: int = 4, long_every: int = 5) -> Corpus:
    """Sine tones ("calm") vs. white noise ("angry"), 0.3-0.9 s, some longer than the 0.5 s window."""
    rng = np.random.default_rng(0)
    utts = []
    for s in range(speakers):
        for k in range(per_speaker):
            for label in ("calm", "angry"):
                seconds = 1.3 if k % long_every == long_every - 1 else rng.uniform(0.3, 0.9)
                t = np.arange(int(seconds * RATE)) / RATE
                if label == "calm":
                    x = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 600) * t)
                else:
                    x = 0.1 * rng.standard_normal(len(t))
                name = f"s{s}/{label}_{k}.wav"
                (root / f"s{s}").mkdir(parents=True, exist_ok=True)
                sf.write(root / name, x.astype(np.float32), RATE)
                utts.append(Utt(name, label, f"s{s}", "female" if s % 2 else "male"))
    return Corpus("toy", str(root), ("calm", "angry"), utts, skipped=[("bad.wav", "unreadable")])


def write_manifest(corpus: Corpus, path: Path) -> Path:
    """``corpus`` as the CSV manifest the ``csv`` loader reads (absolute paths), at ``path``."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "emotion", "speaker", "gender"])
        writer.writerows([str(Path(corpus.root) / u.path), u.emotion, u.speaker, u.gender] for u in corpus.utterances)
    return path


def by_speaker(corpus: Corpus, *speakers: str) -> tuple[int, ...]:
    return tuple(i for i, u in enumerate(corpus.utterances) if u.speaker in speakers)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return make_corpus(tmp_path_factory.mktemp("toy"))


def small_config(**kw: Any) -> TrainConfig:
    """Tiny, fast settings: 0.5 s windows, a few epochs, no early stopping."""
    base = {
        "epochs": 3,
        "batch_size": 8,
        "lr": 3e-3,
        "window_seconds": 0.5,
        "hop_seconds": 0.25,
        "min_seconds": 0.1,
        "patience": 0,
        "progress": False,
        "device": "cpu",
    }
    return TrainConfig(**{**base, **kw})


def fold_of(corpus: Corpus) -> Split:
    return Split("s3", by_speaker(corpus, "s0", "s1"), by_speaker(corpus, "s2"), by_speaker(corpus, "s3"))


# -- features and cache -----------------------------------------------------------------


def test_feature_cache_is_hit_on_the_second_run(corpus: Corpus, tmp_path: Path, monkeypatch) -> None:
    fe = FrontEnd(kind="mfcc", n_mels=40, n_mfcc=40)
    first = features.load_features(corpus, fe, tmp_path)
    assert not first.cached and first.path.exists() and first.path.parent == tmp_path / "toy"
    audio, _ = features.load_audio(Path(corpus.root) / corpus.utterances[3].path, target_rate=RATE)
    np.testing.assert_array_equal(first[3], fe(audio))
    assert first.n_samples[3] == len(audio)

    def no_audio(*args, **kwargs):
        raise AssertionError("audio was read although the cache should be hit")

    monkeypatch.setattr(features, "load_audio", no_audio)
    second = features.load_features(corpus, fe, tmp_path)
    assert second.cached
    np.testing.assert_array_equal(second.data, first.data)
    np.testing.assert_array_equal(second.offsets, first.offsets)
    other = FrontEnd(kind="mfcc", n_mels=40, n_mfcc=20)
    with pytest.raises(AssertionError, match="cache should be hit"):
        features.load_features(corpus, other, tmp_path)  # another front-end has its own cache entry


def test_eval_windows_are_what_the_runtime_computes(corpus: Corpus, tmp_path: Path) -> None:
    fe = FrontEnd(kind="logspec", window="hamming")
    table = features.load_features(corpus, fe, tmp_path)
    window, hop = 8000, 4000
    wins = features.load_windows(corpus, table, window, hop)
    long = int(np.flatnonzero(table.n_samples > window)[0])
    short = int(np.flatnonzero(table.n_samples <= window)[0])
    audio, _ = features.load_audio(Path(corpus.root) / corpus.utterances[long].path, target_rate=RATE)
    bounds = windows.plan(len(audio), window, hop)
    norm = Normalization("global", tuple(np.zeros(257)), tuple(np.full(257, 2.0)))
    inputs = eval_inputs(table, wins, [long, short], norm)
    assert len(inputs[0]) == len(bounds) > 1
    for got, (s, e) in zip(inputs[0], bounds):
        np.testing.assert_allclose(got, norm(fe(audio[s:e])), rtol=1e-6)
    assert len(inputs[1]) == 1
    np.testing.assert_allclose(inputs[1][0], norm(table[short]), rtol=1e-6)
    assert features.load_windows(corpus, table, window, hop).cached


def test_silent_windows_are_skipped_like_the_runtime(tmp_path: Path) -> None:
    root = tmp_path / "c"
    root.mkdir()
    sig = np.concatenate([np.zeros(8000), 0.2 * np.sin(np.arange(8000) / 5.0)]).astype(np.float32)
    sf.write(root / "a.wav", sig, RATE, subtype="FLOAT")
    sf.write(root / "b.wav", np.zeros(4000, np.float32), RATE)
    corpus = Corpus("sil", str(root), ("x", "y"), [Utt("a.wav", "x", "s", None), Utt("b.wav", "y", "s", None)])
    table = features.load_features(corpus, FrontEnd(kind="waveform"), tmp_path)
    wins = features.load_windows(corpus, table, 8000, 8000)
    inputs = eval_inputs(table, wins, [0, 1], Normalization())
    assert [len(w) for w in inputs] == [1, 0]
    np.testing.assert_array_equal(inputs[0][0], sig[8000:])
    model = build_model(default_config("audio_resnet", {"emotion": 2}))
    probs = predict(model, inputs)["emotion"]
    np.testing.assert_allclose(probs[1], [0.5, 0.5])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_fit_normalization_matches_the_runtime_fit(corpus: Corpus, tmp_path: Path) -> None:
    table = features.load_features(corpus, FrontEnd(kind="logmel"), tmp_path)
    idx = [0, 3, 5, 8]
    ours = features.fit_normalization(table, idx)
    ref = Normalization.fit([table[i] for i in idx])
    np.testing.assert_allclose(ours.mean, ref.mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.std, ref.std, rtol=1e-7)


# -- crops and augmentation -------------------------------------------------------------


def test_crop_pads_short_input_and_excerpts_long_input() -> None:
    rng = np.random.default_rng(0)
    x = np.arange(10, dtype=np.float32)
    rep = crop(x, 25, rng, "repeat")
    assert rep.shape == (25,) and set(rep.tolist()) == set(range(10))
    assert np.all(np.diff(rep) % 10 == 1)  # consecutive samples, wrapping around
    zero = crop(x, 25, rng, "zero")
    assert zero.shape == (25,) and np.array_equal(zero[:10], x) and not zero[10:].any()  # content first
    sub = crop(x, 4, rng)
    assert len(sub) == 4 and np.all(np.diff(sub) == 1)
    assert crop(np.ones((3, 5)), 7, rng).shape == (7, 5)


def test_augmentations() -> None:
    rng = np.random.default_rng(0)
    x = np.sin(np.arange(16000) / 7.0).astype(np.float32)
    assert len(speed_perturb(x, 1.1)) == pytest.approx(16000 / 1.1, abs=2)
    assert len(speed_perturb(x, 0.9)) == pytest.approx(16000 / 0.9, abs=2)
    noisy = add_noise(x, 10.0, rng)
    snr = 10 * np.log10(np.mean(x**2) / np.mean((noisy - x) ** 2))
    assert snr == pytest.approx(10.0, abs=0.3)
    batch = np.ones((4, 50, 20), np.float32)
    spec_augment(batch, Augment(time_mask=10, freq_mask=5, n_masks=2), rng)
    assert 0 < (batch == 0).mean() < 0.6
    assert Augment.from_dict(
        json.loads(json.dumps(Augment(noise_snr=(5, 20), speeds=(0.9, 1.1)).to_dict()))
    ) == Augment(noise_snr=(5, 20), speeds=(0.9, 1.1))


def test_freq_warp_moves_bands_and_keeps_the_identity() -> None:
    bands = np.zeros((3, 4, 40), np.float32)
    bands[:, :, 20] = 1.0  # a formant at band 20
    before = bands.copy()
    freq_warp(bands, np.array([1.0, 1.1, 0.9]))
    np.testing.assert_array_equal(bands[0], before[0])  # factor 1: unchanged
    centre = (bands * np.arange(40)).sum(axis=2) / bands.sum(axis=2)
    assert centre[1] == pytest.approx(np.full(4, 22.0), abs=0.01)  # stretched up by 10 %
    assert centre[2] == pytest.approx(np.full(4, 18.0), abs=0.01)  # squeezed down by 10 %
    ramp = np.tile(np.arange(40, dtype=np.float32), (2, 5, 1))
    freq_warp(ramp, np.array([0.8, 1.25]))
    assert ramp[0, 0, -1] == 39.0 and ramp[1, 0, 0] == 0.0  # ends stay inside the axis
    np.testing.assert_allclose(ramp[1, 0, :10], np.arange(10) / 1.25, atol=1e-5)
    seeded = [np.ones((4, 50, 20), np.float32) * np.arange(20) for _ in range(2)]
    for x in seeded:
        spec_augment(x, Augment(freq_warp=0.1, prob=1.0), np.random.default_rng(3))
    np.testing.assert_array_equal(seeded[0], seeded[1])
    assert not np.array_equal(seeded[0][0], np.ones((50, 20)) * np.arange(20))
    assert Augment(freq_warp=0.1).on_features
    with pytest.raises(ValueError, match="freq_warp"):
        Augment(freq_warp=0.7)


def test_batches_are_seeded_and_waveform_augmentation_feeds_feature_models(corpus: Corpus, tmp_path: Path) -> None:
    fe = FrontEnd(kind="mfcc", n_mels=40, n_mfcc=40)
    table = features.load_features(corpus, fe, tmp_path)
    waves = features.load_features(corpus, FrontEnd(kind="waveform"), tmp_path)
    targets = {"emotion": np.arange(len(corpus.utterances)) % 2}
    norm = features.fit_normalization(table, range(8))
    aug = Augment(noise_snr=(10, 20), gain_db=6, shift=0.05, speeds=(0.9, 1.1), prob=1.0, time_mask=5, freq_mask=4)
    batches = TrainBatches(table, np.arange(12), targets, norm, 8000, aug, waves)
    a = list(batches.epoch(5, np.random.default_rng(7)))
    b = list(batches.epoch(5, np.random.default_rng(7)))
    assert [batch.inputs.shape for batch in a] == [(5, fe.num_frames(8000), 40)] * 2 + [(2, fe.num_frames(8000), 40)]
    assert all(batch.whole is None for batch in a)  # no transcript head: no whole-utterance view
    for ba, bb in zip(a, b):
        np.testing.assert_array_equal(ba.inputs, bb.inputs)
        np.testing.assert_array_equal(ba.targets["emotion"], bb.targets["emotion"])
    with pytest.raises(ValueError, match="waveform table"):
        TrainBatches(table, np.arange(12), targets, norm, 8000, aug)
    with pytest.raises(ValueError, match="band features"):  # MFCC are cepstra: no frequency axis to warp
        TrainBatches(table, np.arange(12), targets, norm, 8000, Augment(freq_warp=0.1))


def test_views_name_and_make_their_augmented_copies() -> None:
    """apply_view: a pitch view moves a tone by its semitones at the same length (tempo kept); bad names refused."""
    t = np.arange(16000) / 16000
    tone = np.sin(2 * np.pi * 200 * t).astype(np.float32)
    for semitones in (-3.0, 3.0):
        shifted = apply_view(tone, pitch_view(semitones), seed=0)
        assert shifted.shape == tone.shape and shifted.dtype == np.float32
        peak = np.abs(np.fft.rfft(shifted * np.hanning(len(shifted)))).argmax()  # 1 Hz bins
        assert peak == pytest.approx(200 * 2 ** (semitones / 12), abs=4)  # 168 or 238 Hz, not 200
    assert pitch_view(3) == "pitch+3" and pitch_view(-1.5) == "pitch-1.5" and speed_view(0.9) == "speed0.9"
    assert speed_view(1.0) == "clean" and apply_view(tone, "clean", 0) is tone
    assert len(apply_view(tone, "speed1.1", 0)) == pytest.approx(16000 / 1.1, abs=2)
    for bad in ("pitch0", "pitch+13", "pitchx", "speed", "echo3", ""):
        with pytest.raises(ValueError, match="unknown view"):
            check_view(bad)
    with pytest.raises(ValueError, match="semitones"):
        Augment(pitches=(0.0,))
    with pytest.raises(ValueError, match="noise SNRs"):
        Augment(noises=(150.0,))
    aug = Augment(pitches=(-3.0, 3.0), noises=(10.0, 20.0))
    assert aug.cached_views == ("pitch-3", "pitch+3", "noise10", "noise20") and not aug.on_waveform
    assert Augment.from_dict(json.loads(json.dumps(aug.to_dict()))) == aug
    assert not {"pitches", "noises"} & set(Augment().to_dict())  # absent when off: runs recorded before resume
    assert noise_view(10.0) == "noise10" and noise_view(-5) == "noise-5"
    noisy = apply_view(tone, "noise10", seed=3)
    snr = 10 * np.log10(np.mean(tone**2) / np.mean((noisy - tone) ** 2))
    assert noisy.shape == tone.shape and snr == pytest.approx(10.0, abs=0.3)  # 16,000 samples of noise
    np.testing.assert_array_equal(apply_view(tone, "noise10", seed=3), noisy)  # the same copy each time it is made
    assert not np.array_equal(apply_view(tone, "noise10", seed=4), noisy)  # another utterance, other noise


def test_pitch_shifts_and_noise_copies_read_their_cached_views(corpus: Corpus, tmp_path: Path) -> None:
    """Crops with a pitch shift or a noise copy come from that view's cached table (computed on the augmented
    clips), say so in Batch.views, and keep the RNG stream of a recipe without them."""
    fe = FrontEnd(kind="logmel", n_mels=16, window="hann")
    table = features.load_features(corpus, fe, tmp_path)
    views = {v: features.load_features(corpus, fe, tmp_path, view=v) for v in ("pitch-3", "pitch+3", "noise10")}
    assert len({table.path, *(t.path for t in views.values())}) == 4  # one cache file per view
    assert not np.allclose(views["noise10"].data, table.data)
    assert features.load_features(corpus, fe, tmp_path).path == table.path  # the clean key is unchanged
    assert not np.allclose(views["pitch+3"].data, table.data)
    np.testing.assert_array_equal(np.diff(views["pitch+3"].offsets), np.diff(table.offsets))  # same frames
    targets = {"emotion": np.arange(len(corpus.utterances)) % 2}
    norm = Normalization()
    n = len(corpus.utterances)
    long = 4 * max(len(table[i]) for i in range(n)) * fe.frame_step  # every crop a whole (tiled) utterance
    plain = TrainBatches(table, np.arange(n), targets, norm, long, Augment())
    pitched = TrainBatches(
        table, np.arange(n), targets, norm, long, Augment(pitches=(-3, 3), noises=(10,)), views=views
    )
    seen = set()
    for batch in pitched.epoch(4, np.random.default_rng(5)):
        assert batch.views.dtype == object and len(batch.views) == len(batch.index)
        for x, i, view, t in zip(batch.inputs, batch.index, batch.views, batch.times):
            source = table if view == "clean" else views[view]
            rows = source[int(i)]
            assert any(np.array_equal(x[:2], np.roll(rows, -k, axis=0)[:2]) for k in range(len(rows)))  # a tiled crop
            assert np.isnan(t).all() == (view != "clean")  # frame targets are the clean clip's
            seen.add(view)
    assert seen == {"clean", "pitch-3", "pitch+3", "noise10"}
    assert all(set(b.views) == {"clean"} for b in plain.epoch(4, np.random.default_rng(5)))
    with pytest.raises(ValueError, match="pitch-3"):
        TrainBatches(table, np.arange(n), targets, norm, long, Augment(pitches=(-3,)))
    with pytest.raises(ValueError, match="noise20"):
        TrainBatches(table, np.arange(n), targets, norm, long, Augment(noises=(20,)), views=views)
    other = {"pitch-3": features.load_features(corpus, FrontEnd(kind="logmel", n_mels=8), tmp_path, view="pitch-3")}
    with pytest.raises(ValueError, match="does not match"):
        TrainBatches(table, np.arange(n), targets, norm, long, Augment(pitches=(-3,)), views=other)


def test_speaker_swap_moves_a_clip_to_another_training_voice_of_its_corpus_level() -> None:
    """The swap adds another training speaker's voice offset in place of the clip's own: offsets are each
    speaker's mean minus its corpus' mean over speakers, fit on the training indices only; off, it draws
    nothing, so recipes without it keep their random stream."""
    n_feat, frames = 6, 10
    rng = np.random.default_rng(0)
    corpus_level = {"a": np.full(n_feat, 3.0), "b": np.full(n_feat, -2.0)}
    voice = {v: rng.normal(size=n_feat) for v in ("a1", "a2", "a3", "b1", "b2")}
    voice["a4"] = np.full(n_feat, 100.0)  # a held-out speaker: must never become an offset
    for c in "ab":  # the designed offsets are zero-mean within each corpus, as the swap's are
        names = [v for v in voice if v[0] == c and v != "a4"]
        mean = np.mean([voice[v] for v in names], axis=0)
        for v in names:
            voice[v] = voice[v] - mean
    speakers = ["a1", "a2", "a3", "b1", "b2", "a4"] * 3
    emotion = {v: 0.1 * rng.normal(size=n_feat) for v in voice}  # -1, 0, +1 times it: a speaker's mean is its voice
    rows = [corpus_level[v[0]] + voice[v] + emotion[v] * (k // 6 - 1) for k, v in enumerate(speakers)]
    data = np.concatenate([np.tile(r, (frames, 1)) for r in rows]).astype(np.float32)
    offsets = np.arange(len(rows) + 1) * frames
    table = features.FeatureTable(
        FrontEnd(kind="logmel", n_mels=n_feat), data, offsets, offsets, offsets, Path("x"), False
    )
    voices = [(v[0], v) for v in speakers]
    train = np.array([k for k, v in enumerate(speakers) if v != "a4"])
    norm = Normalization("global", mean=(0.0,) * n_feat, std=(1.0,) * n_feat)
    targets = {"emotion": np.zeros(len(rows), dtype=np.int64)}
    crop_samples = table.frontend.frame_step * (frames - 1) + table.frontend.frame_length
    batches = TrainBatches(table, train, targets, norm, crop_samples, Augment(speaker_swap=1.0), voices=voices)
    swap = batches.swap
    assert swap is not None and len(swap.offsets) == 5 and np.abs(swap.offsets).max() < 10
    for k in train:
        np.testing.assert_allclose(swap.offsets[swap.speaker[int(k)]], voice[speakers[k]], atol=1e-5)
    moved = set()
    for batch in batches.epoch(4, np.random.default_rng(1)):
        for x, k in zip(batch.inputs, batch.index):
            shift = x - rows[int(k)]
            np.testing.assert_allclose(shift, np.tile(shift[0], (len(x), 1)), atol=1e-5)  # one offset per clip
            other = [v for v in voice if v != "a4" and np.allclose(shift[0], voice[v] - voice[speakers[k]], atol=1e-4)]
            assert len(other) == 1 and other[0] != speakers[k]
            moved.add(other[0])
    assert moved == {"a1", "a2", "a3", "b1", "b2"}
    plain = TrainBatches(table, train, targets, norm, crop_samples, Augment(), voices=voices)
    unswapped = TrainBatches(table, train, targets, norm, crop_samples, Augment(speaker_swap=0.0), voices=voices)
    for a, b in zip(plain.epoch(4, np.random.default_rng(1)), unswapped.epoch(4, np.random.default_rng(1))):
        np.testing.assert_array_equal(a.inputs, b.inputs)
    with pytest.raises(ValueError, match="speaker"):
        TrainBatches(table, train, targets, norm, crop_samples, Augment(speaker_swap=0.5))
    with pytest.raises(ValueError, match="global"):
        TrainBatches(
            table, train, targets, Normalization("utterance"), crop_samples, Augment(speaker_swap=0.5), voices=voices
        )
    with pytest.raises(ValueError, match="chance"):
        Augment(speaker_swap=1.5)
    assert "speaker_swap" not in Augment().to_dict()  # absent when off: runs recorded before it resume
    assert Augment.from_dict(json.loads(json.dumps(Augment(speaker_swap=0.5).to_dict()))).speaker_swap == 0.5


# -- training ---------------------------------------------------------------------------


def test_training_lowers_the_loss_and_beats_chance(corpus: Corpus, tmp_path: Path) -> None:
    # Validation UA first reaches 1.0 at epoch 3 here; 6 epochs leave room for a CPU whose rounding is slower to get
    # there, and the model kept is then one with every validation utterance right (test p(true) >= 0.6 here).
    cfg = small_config(epochs=6)
    data = prepare_data(corpus, FrontEnd(kind="mfcc", n_mels=40, n_mfcc=40), cfg, tmp_path / "cache")
    res = train_fold(
        data, fold_of(corpus), fold_index=0, arch="pcnn_gender", aux={"gender": 0.3}, cfg=cfg, out_dir=tmp_path / "run"
    )
    losses = [r["loss"] for r in res.history]
    assert losses[-1] < losses[0]
    assert set(res.history[0]) >= {"emotion", "gender", "loss", "val_ua", "seconds"}
    assert res.test["emotion"]["ua"] >= 0.75  # chance is 0.5
    assert "gender" in res.test  # the test speaker's gender was seen in training
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["labels"] == {"emotion": ["calm", "angry"], "gender": ["female", "male"]}
    assert config["normalization"]["mode"] == "global" and len(config["normalization"]["mean"]) == 40
    assert config["window"] == {"seconds": 0.5, "hop_seconds": 0.25, "min_seconds": 0.1}
    assert config["training"]["best_epoch"] == res.best_epoch
    assert (tmp_path / "run" / "confusion.png").exists()
    assert not (tmp_path / "run" / "state.pt").exists()


def test_mixup_and_label_smoothing_train_the_edge_cnn(corpus: Corpus, tmp_path: Path) -> None:
    # No validation split: the model tested is the last epoch's, not the first to touch a validation UA that
    # moves in steps of 1/8 (which epoch that is depends on the CPU's rounding). Three speakers' tones and noise,
    # lr 1e-2, 8 epochs: every test utterance ends with p(true class) >= 0.77 on our machines, so UA >= 0.75
    # (6 of 8; chance 0.5) leaves two utterances of slack for any CPU.
    cfg = small_config(epochs=8, batch_size=4, lr=1e-2, mixup=0.4, label_smoothing=0.1)  # steps for 14 batch norms
    data = prepare_data(corpus, FrontEnd(kind="logmel", n_mels=64, window="hann"), cfg, tmp_path / "cache")
    fold = Split("s3", by_speaker(corpus, "s0", "s1", "s2"), (), by_speaker(corpus, "s3"))
    res = train_fold(data, fold, fold_index=0, arch="edge_cnn", aux={"gender": 0.3}, cfg=cfg, out_dir=tmp_path / "run")
    losses = [r["loss"] for r in res.history]
    assert losses[-1] < 0.8 * losses[0]
    assert res.test["emotion"]["ua"] >= 0.75
    again = train_fold(
        data, fold, fold_index=0, arch="edge_cnn", aux={"gender": 0.3}, cfg=cfg, out_dir=tmp_path / "again"
    )
    assert [r["loss"] for r in again.history] == losses  # mixup draws from the seeded generator
    plain = train_fold(
        data,
        fold,
        fold_index=0,
        arch="edge_cnn",
        aux={"gender": 0.3},
        cfg=small_config(epochs=1, lr=1e-2),
        out_dir=tmp_path / "p",
    )
    assert plain.history[0]["loss"] != losses[0]
    training = json.loads((tmp_path / "run" / "config.json").read_text())["training"]
    assert (training["mixup"], training["label_smoothing"]) == (0.4, 0.1)
    cfg = small_config(epochs=1, normalization="utterance")  # per-bin CMVN: tones and noise look alike, no UA here
    res = train_fold(data, fold_of(corpus), fold_index=0, arch="edge_cnn", aux={}, cfg=cfg, out_dir=tmp_path / "utt")
    assert np.isfinite(res.history[0]["loss"])
    assert json.loads((tmp_path / "utt" / "config.json").read_text())["normalization"] == {"mode": "utterance"}
    with pytest.raises(ValueError, match="label_smoothing"):
        small_config(label_smoothing=1.0)


def test_a_speaker_adversarial_head_trains_and_is_kept_in_the_checkpoint(corpus: Corpus, tmp_path: Path) -> None:
    args = configure_parser(parser := argparse.ArgumentParser()) or parser.parse_args(
        ["--arch", "edge_cnn", "--dataset", "x", "--data", "x", "--out", "x", "--adversarial", "speaker=0.2"]
    )
    run = models.training.cli.run_config_from_args(args)
    assert run.aux == {"speaker": 0.2} and run.training.adversarial == ("speaker",)
    cfg = small_config(epochs=2, adversarial=("speaker",))
    data = prepare_data(corpus, FrontEnd(kind="logmel", n_mels=64, window="hann"), cfg, tmp_path / "cache")
    res = train_fold(
        data, fold_of(corpus), fold_index=0, arch="edge_cnn", aux={"speaker": 0.2}, cfg=cfg, out_dir=tmp_path / "adv"
    )
    assert all(r["speaker"] > 0 and np.isfinite(r["loss"]) for r in res.history)  # the head's loss is trained
    model, config = load_checkpoint(tmp_path / "adv")
    assert config["adversarial"] == ["speaker"] and model.adversarial == ("speaker",)
    assert json.loads((tmp_path / "adv" / "config.json").read_text())["training"]["adversarial"] == ["speaker"]
    assert "adversarial" not in small_config().to_dict()  # off: absent, so older runs resume
    with pytest.raises(ValueError, match="adversarial"):
        train_fold(data, fold_of(corpus), fold_index=0, arch="edge_cnn", aux={}, cfg=cfg, out_dir=tmp_path / "bad")


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    config = default_config("spectrogram_resnet", {"emotion": 6, "gender": 2}, {"gender": 0.3})
    model = build_model(config)
    model.train()
    model(torch.randn(4, 60, 257))  # move batch-norm statistics away from their defaults
    model.eval()
    save_checkpoint(tmp_path, model, {**config, "labels": {"emotion": list("abcdef")}})
    loaded, cfg = load_checkpoint(tmp_path)
    assert cfg["labels"]["emotion"] == list("abcdef")
    x = torch.randn(2, 77, 257)
    with torch.no_grad():
        for name, value in model(x).items():
            assert torch.equal(value, loaded(x)[name])
    assert set(load_tensors(tmp_path / "model.pt")) == set(model.state_dict())


def test_same_seed_same_numbers_and_resume_continues_where_it_stopped(corpus: Corpus, tmp_path: Path) -> None:
    cfg = small_config(epochs=3, augment=Augment(gain_db=3, shift=0.02, prob=1.0))
    data = prepare_data(corpus, FrontEnd(kind="waveform"), cfg, tmp_path / "cache")
    fold = fold_of(corpus)
    resnet = partial(train_fold, data, fold, fold_index=1, arch="audio_resnet", aux={})
    full = resnet(cfg=cfg, out_dir=tmp_path / "full")
    again = resnet(cfg=cfg, out_dir=tmp_path / "again")
    assert [r["loss"] for r in again.history] == [r["loss"] for r in full.history]

    class Interrupt(Exception):
        pass

    def stop_after_first(epoch: int, record: dict) -> None:
        if epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        resnet(cfg=cfg, out_dir=tmp_path / "cut", on_epoch_end=stop_after_first)
    state = load_tensors(tmp_path / "cut" / "state.pt")
    assert state["progress"]["epoch"] == 1 and state["optimizer"]["state"]
    seen = []
    resumed = resnet(cfg=cfg, out_dir=tmp_path / "cut", resume=True, on_epoch_end=lambda e, r: seen.append(e))
    assert seen == [2, 3]
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
    a = load_tensors(tmp_path / "full" / "model.pt")
    b = load_tensors(tmp_path / "cut" / "model.pt")
    for name in a:
        assert torch.equal(a[name], b[name]), name
    changed = small_config(epochs=3, lr=1e-2)
    with pytest.raises(Interrupt):
        resnet(cfg=cfg, out_dir=tmp_path / "cut2", on_epoch_end=stop_after_first)
    with pytest.raises(ValueError, match="other settings"):
        resnet(cfg=changed, out_dir=tmp_path / "cut2", resume=True)
    with pytest.raises(ValueError, match="finished fold trained with other settings"):
        resnet(cfg=changed, out_dir=tmp_path / "cut", resume=True)
    assert resnet(cfg=cfg, out_dir=tmp_path / "cut", resume=True) == resumed


def test_ema_keeps_the_average_of_the_weights_without_changing_training(corpus: Corpus, tmp_path: Path) -> None:
    """--ema: training steps are the same; the checkpoint holds the moving average (about the last step's
    weights when the decay is tiny), validation scores it, and an interrupted run resumes it exactly."""
    cfg = small_config(epochs=3)
    data = prepare_data(corpus, FrontEnd(kind="logmel", n_mels=20), cfg, tmp_path / "cache")
    no_val = Split("s3", by_speaker(corpus, "s0", "s1", "s2"), (), by_speaker(corpus, "s3"))
    edge = partial(train_fold, data, no_val, fold_index=0, arch="edge_cnn", aux={})
    plain = edge(cfg=cfg, out_dir=tmp_path / "plain")
    averaged = edge(cfg=replace(cfg, ema=0.9), out_dir=tmp_path / "ema")
    edge(cfg=replace(cfg, ema=1e-6), out_dir=tmp_path / "tiny-decay")
    assert [r["loss"] for r in averaged.history] == [r["loss"] for r in plain.history]
    weights = {name: load_tensors(tmp_path / name / "model.pt") for name in ("plain", "ema", "tiny-decay")}
    floats = [k for k, v in weights["plain"].items() if v.is_floating_point()]
    assert max((weights["ema"][k] - weights["plain"][k]).abs().max().item() for k in floats) > 1e-3
    for k in floats:
        torch.testing.assert_close(weights["tiny-decay"][k], weights["plain"][k], rtol=1e-4, atol=1e-4)

    class Interrupt(Exception):
        pass

    def stop_after_first(epoch: int, record: dict) -> None:
        if epoch == 1:
            raise Interrupt

    with_val = partial(
        train_fold, data, fold_of(corpus), fold_index=0, arch="edge_cnn", aux={}, cfg=replace(cfg, ema=0.9)
    )
    full = with_val(out_dir=tmp_path / "full")
    with pytest.raises(Interrupt):
        with_val(out_dir=tmp_path / "cut", on_epoch_end=stop_after_first)
    resumed = with_val(out_dir=tmp_path / "cut", resume=True)
    assert [r["val_ua"] for r in resumed.history] == [r["val_ua"] for r in full.history]
    a, b = load_tensors(tmp_path / "full" / "model.pt"), load_tensors(tmp_path / "cut" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="ema"):
        small_config(ema=1.0)
    plain_settings, ema_settings = _training_settings(cfg), _training_settings(replace(cfg, ema=0.9))
    assert same_settings(plain_settings, plain_settings) and same_settings(ema_settings, ema_settings)
    assert not same_settings(ema_settings, plain_settings)  # a state saved with --ema resumes only with it
    assert not same_settings(plain_settings, ema_settings)


def test_ema_decay_warms_up_so_the_first_weights_fade_fast() -> None:
    update = _warmed_up_ema(0.99)
    for n, expected in ((1, 1 - 2 / 11), (1000, 1 - 0.99)):
        averaged = [torch.zeros(3)]
        update(averaged, [torch.ones(3)], torch.tensor(n))
        torch.testing.assert_close(averaged[0], torch.full((3,), expected))


def test_report_over_folds(corpus: Corpus, tmp_path: Path) -> None:
    cfg = small_config(epochs=1)
    data = prepare_data(corpus, FrontEnd(kind="logspec", window="hamming"), cfg, tmp_path / "cache")
    folds = [(0, fold_of(corpus)), (1, Split("s2", by_speaker(corpus, "s0", "s1"), (), by_speaker(corpus, "s2")))]
    report = train_folds(
        data, folds, arch="spectrogram_resnet", aux={"speaker": 0.1}, cfg=cfg, out=tmp_path, command="cmd"
    )
    assert report.command == "cmd" and set(report.folds) == {"s3", "s2"}
    assert report.ua == pytest.approx(np.mean([f.test["emotion"]["ua"] for f in report.folds.values()]))
    assert report.corpus["skipped"] == {"total": 1, "by_reason": {"unreadable": 1}}
    assert "speaker" not in report.folds["s3"].test  # unseen test speakers have no speaker label
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["arch"] == "spectrogram_resnet" and "history" not in saved["folds"]["s3"]
    assert TrainReport.load(tmp_path) == report and saved == report.to_dict()


def test_cli(corpus: Corpus, tmp_path: Path, monkeypatch, capsys) -> None:
    corpora = types.ModuleType("models.data.corpora")
    corpora.load_corpus = lambda name, root: corpus
    protocols = types.ModuleType("models.data.protocols")
    other = Split("s2", by_speaker(corpus, "s0", "s1"), by_speaker(corpus, "s3"), by_speaker(corpus, "s2"))
    protocols.make_folds = lambda c, protocol="default", seed=0: [fold_of(c), other]
    protocols.default_protocol = lambda name: "speaker-kfold"
    for name, module in (("corpora", corpora), ("protocols", protocols)):
        monkeypatch.setattr(models.training.run, name, module)
    out = tmp_path / "run"
    args = [
        "--arch",
        "pcnn",
        "--dataset",
        "toy",
        "--data",
        corpus.root,
        "--out",
        str(out),
        "--folds",
        "0",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--window",
        "0.5",
        "--hop",
        "0.25",
        "--no-progress",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--aux",
        "gender=0.3",
        "--time-mask",
        "5",
        "--freq-mask",
        "4",
    ]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert list(report["folds"]) == ["s3"] and report["aux"] == {"gender": 0.3}
    assert report["training"]["augment"]["time_mask"] == 5 and report["protocol"] == "speaker-kfold"
    assert (out / "s3" / "model.pt").exists() and (out / "s3" / "metrics.json").exists()
    training = json.loads((out / "s3" / "config.json").read_text())["training"]
    assert training["protocol"] == "speaker-kfold" and training["command"]  # export and model cards read these
    assert main([*args, "--resume"]) == 0  # finished folds are not retrained
    assert main([*args, "--folds", "s2"]) == 0  # the other fold, as a second process would train it
    report = json.loads((out / "report.json").read_text())
    assert list(report["folds"]) == ["s3", "s2"]  # both folds of the folder, in the protocol's order
    assert report["summary"]["folds"] == 2
    assert main([*args, "--folds", "s2", "--epochs", "2"]) == 0  # retrained with other settings
    assert list(json.loads((out / "report.json").read_text())["folds"]) == ["s2"]  # s3 is not this run's
    assert main([*args, "--final", "--out", str(tmp_path / "final")]) == 0
    assert (tmp_path / "final" / "final" / "model.pt").exists()
    assert main([*args, "--folds", "9"]) == 2
    assert "no fold" in capsys.readouterr().err


def test_speaker_normalization_uses_each_speakers_own_statistics(corpus, tmp_path):
    data = prepare_data(corpus, FrontEnd(kind="mfcc", n_mfcc=13), small_config(), tmp_path / "cache")
    train_idx = by_speaker(corpus, "s0", "s1")
    norms = models.training.corpus_data.speaker_normalization(
        data, np.array(train_idx), np.array([], int), np.array(by_speaker(corpus, "s3"))
    )
    assert set(norms) == set(train_idx) | set(by_speaker(corpus, "s3"))
    s1 = by_speaker(corpus, "s1")
    expected = Normalization.fit([data.inputs[i] for i in s1])
    assert np.allclose(norms[s1[0]].mean, expected.mean) and np.allclose(norms[s1[0]].std, expected.std)
    assert norms[s1[0]] is norms[s1[-1]] and norms[s1[0]] is not norms[by_speaker(corpus, "s0")[0]]
    normalized = np.concatenate([norms[i](data.inputs[i]) for i in s1])
    assert np.allclose(normalized.mean(axis=0), 0, atol=1e-4) and np.allclose(normalized.std(axis=0), 1, atol=1e-3)
    fold = Split("f", train_idx, by_speaker(corpus, "s2"), by_speaker(corpus, "s3"))
    result = train_fold(
        data,
        fold,
        fold_index=0,
        arch="pcnn",
        aux={},
        cfg=small_config(normalization="speaker"),
        out_dir=tmp_path / "run",
    )
    assert 0.0 <= result.test["emotion"]["ua"] <= 1.0
    onnx_export = pytest.importorskip("export.onnx_export")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    contract = onnx_export.make_contract(config, ["emotion"])
    assert contract.adaptation == "speaker" and contract.normalization.mode == "global"  # global = fallback


def test_functionals_mlp_trains_with_speaker_statistics_and_adapts_at_run_time(corpus, tmp_path):
    from edge_ser import ModelError, Recognizer, SpeakerProfile

    onnx_export = pytest.importorskip("export.onnx_export")
    cfg = small_config(epochs=6, window_seconds=1.5, hop_seconds=0.5, normalization="speaker")
    frontend = FrontEnd(kind="functionals", n_mels=26, n_mfcc=13)
    data = prepare_data(corpus, frontend, cfg, tmp_path / "cache")
    assert np.all(np.diff(data.inputs.offsets) == 1)  # one row of statistics per utterance
    res = train_fold(
        data, fold_of(corpus), fold_index=0, arch="functionals_mlp", aux={}, cfg=cfg, out_dir=tmp_path / "run"
    )
    assert res.test["emotion"]["ua"] > 0.75  # chance is 0.5
    model, config = load_checkpoint(tmp_path / "run")
    contract = onnx_export.make_contract(config, ["emotion"])
    assert contract.adaptation == "speaker" and contract.frontend == frontend
    path = onnx_export.to_onnx(onnx_export.export_module(model, contract), contract, tmp_path / "f.onnx")
    profile = SpeakerProfile(min_utterances=2)
    rec = Recognizer(path, profile=profile)
    test = [corpus.utterances[i] for i in by_speaker(corpus, "s3")]
    preds = [rec.predict(str(Path(corpus.root) / u.path)) for u in test]
    assert profile.utterances == len(test) and profile.frames == len(test)  # one row per (short) utterance
    assert np.mean([p.label == u.emotion for p, u in zip(preds, test)]) > 0.75
    with pytest.raises(ModelError, match="in-graph"):
        onnx_export.make_contract(config, ["emotion"], waveform_in=True)
    with pytest.raises(ValueError, match="one row per window"):
        train_fold(
            data,
            fold_of(corpus),
            fold_index=0,
            arch="functionals_mlp",
            aux={},
            cfg=small_config(normalization="utterance"),
            out_dir=tmp_path,
        )
    masked = small_config(augment=Augment(time_mask=5))
    with pytest.raises(ValueError, match="SpecAugment"):
        train_fold(data, fold_of(corpus), fold_index=0, arch="functionals_mlp", aux={}, cfg=masked, out_dir=tmp_path)
    with pytest.raises(ValueError, match="stats_net takes features input, not a 'functionals' front-end"):
        build_model(default_config("stats_net", {"emotion": 2}, frontend=frontend.to_dict()))


def toy_pcnn_args(tmp_path: Path) -> tuple[Path, list[str]]:
    """A generated CSV corpus under ``tmp_path`` and ``edge-ser train`` arguments for a one-epoch P-CNN on it."""
    manifest = write_manifest(make_corpus(tmp_path / "toy", per_speaker=3), tmp_path / "toy" / "manifest.csv")
    argv = ["--dataset", "csv", "--data", str(manifest), "--arch", "pcnn", "--epochs", "1", "--batch-size", "8"]
    argv += ["--window", "0.5", "--hop", "0.25", "--no-progress", "--cache-dir", str(tmp_path / "cache")]
    return manifest, argv


def test_python_api_trains_a_run_and_returns_its_report(tmp_path: Path) -> None:
    """``models.training.train`` is ``edge-ser train`` as a function: the same run directory, and the
    report it wrote returned as an object."""
    manifest, argv = toy_pcnn_args(tmp_path)
    cfg = small_config(epochs=2)
    run = RunConfig(
        arch="pcnn",
        dataset="csv",
        data=manifest,
        out=tmp_path / "api",
        training=cfg,
        folds="0,1",
        aux={"gender": 0.3},
        cache_dir=tmp_path / "cache",
        command="api test",
    )
    report = train(run)
    assert isinstance(report, TrainReport) and report.path == tmp_path / "api" / "report.json"
    assert report.arch == "pcnn" and report.dataset == "csv" and report.protocol == "speaker-kfold"
    assert len(report.folds) == 2 and report.aux == {"gender": 0.3} and report.command == "api test"
    for name, fold in report.folds.items():
        assert isinstance(fold, FoldResult) and fold.epochs_run == 2 and fold.history == []  # report: no history
        assert 0.0 <= fold.test["emotion"]["ua"] <= 1.0 and "gender" in fold.test
        assert len(json.loads((tmp_path / "api" / name / "metrics.json").read_text())["history"]) == 2
    assert report.ua == pytest.approx(np.mean([f.test["emotion"]["ua"] for f in report.folds.values()]))
    assert TrainReport.load(tmp_path / "api") == report
    final = train(replace(run, final=True, out=tmp_path / "final"))  # as --final: every utterance, no early stop
    assert list(final.folds) == ["final"] and final.summary is None and final.training["patience"] == 0
    assert final.folds["final"].n_train == sum(1 for _ in open(manifest)) - 1


def test_arch_names_the_architecture_and_model_is_its_deprecated_alias(tmp_path: Path, capsys) -> None:
    parser = argparse.ArgumentParser(prog="edge-ser train")
    configure_parser(parser)
    required = ["--dataset", "csv", "--data", "d", "--out", "o"]
    assert parser.parse_args(["--arch", "edge_cnn", *required]).arch == "edge_cnn"
    assert "deprecated" not in capsys.readouterr().err
    assert parser.parse_args(["--model", "edge_cnn", *required]).arch == "edge_cnn"
    assert "--model is deprecated, use --arch" in capsys.readouterr().err
    assert "--arch" in parser.format_help() and "--model" not in parser.format_help()
    for wrong in (["--arch", "nope"], ["--arch", "pcnn", "--model", "pcnn"], []):
        with pytest.raises(SystemExit):
            parser.parse_args([*wrong, *required])
    _, argv = toy_pcnn_args(tmp_path)
    old = [a if a != "--arch" else "--model" for a in argv]
    assert main([*old, "--folds", "0", "--out", str(tmp_path / "old")]) == 0  # scripts with --model keep working
    assert json.loads((tmp_path / "old" / "report.json").read_text())["arch"] == "pcnn"


def test_zero_padded_batches_say_how_many_rows_are_audio(corpus: Corpus, tmp_path: Path) -> None:
    fe = FrontEnd(kind="mfcc", n_mels=40, n_mfcc=40)
    table = features.load_features(corpus, fe, tmp_path)
    targets = {"emotion": np.arange(len(corpus.utterances)) % 2}
    norm = features.fit_normalization(table, range(8))
    crop_samples = 2 * max(len(table[i]) for i in range(12)) * round(fe.hop_length * fe.sample_rate)
    frames = fe.num_frames(crop_samples)
    rng = np.random.default_rng(3)
    for pad in ("zero", "repeat"):
        batches = TrainBatches(table, np.arange(12), targets, norm, crop_samples, pad=pad)
        for i in range(12):
            x, n = batches.example(i, rng)
            assert x.shape[0] == frames
            assert n == (len(table[i]) if pad == "zero" else frames)
        lengths = next(batches.epoch(4, rng)).lengths
        assert lengths.shape == (4,) and lengths.dtype == np.int64
    short = TrainBatches(table, np.arange(12), targets, norm, 1600, pad="zero")
    assert all(short.example(i, rng)[1] == short.crop_frames for i in range(12))  # longer than the crop: all audio


def test_zero_padding_is_refused_for_a_backbone_that_cannot_leave_it_out(tmp_path: Path, capsys) -> None:
    _, argv = toy_pcnn_args(tmp_path)
    assert main([*argv, "--pad", "zero", "--folds", "0", "--out", str(tmp_path / "run")]) == 2
    assert "--pad zero needs a backbone that leaves the padding out" in capsys.readouterr().err
    assert not (tmp_path / "run" / "report.json").exists()


def test_transcript_heads_get_a_whole_utterance_view_of_the_batch(corpus: Corpus, tmp_path: Path) -> None:
    """The classification heads keep their random excerpts; a transcript (CTC) head's targets come
    with the same utterances whole, zero-padded to the batch's longest, and their lengths."""
    fe = FrontEnd(kind="mfcc", n_mels=40, n_mfcc=40)
    table = features.load_features(corpus, fe, tmp_path)
    n = len(corpus.utterances)
    chars = np.full((n, 3), IGNORE, np.int64)
    chars[::2, :2] = [1, 2]  # every other utterance has a two-token transcript
    targets = {"emotion": np.arange(n) % 2, "chars": chars}
    norm = features.fit_normalization(table, range(12))
    crop_samples = 4000  # 0.25 s: shorter than every utterance
    batches = TrainBatches(table, np.arange(12), targets, norm, crop_samples, pad="zero")
    order = np.random.default_rng(5).permutation(np.arange(12))
    for b, batch in enumerate(batches.epoch(4, np.random.default_rng(5))):
        idx = order[4 * b : 4 * b + 4]
        assert set(batch.targets) == {"emotion"} and batch.inputs.shape[1] == batches.crop_frames
        with_text = idx[chars[idx, 0] != IGNORE]
        whole = batch.whole
        if len(with_text) == 0:
            assert whole is None
            continue
        assert whole is not None and whole.lengths.tolist() == [len(table[int(i)]) for i in with_text]
        assert whole.inputs.shape[:2] == (len(with_text), max(whole.lengths))
        np.testing.assert_array_equal(whole.targets["chars"], chars[with_text])
        for row, i, length in zip(whole.inputs, with_text, whole.lengths):
            np.testing.assert_allclose(row[:length], norm(table[int(i)]), rtol=1e-6)
            assert not row[length:].any()
    limit = fe.num_frames(int(0.6 * RATE))
    capped = TrainBatches(table, np.arange(12), targets, norm, crop_samples, transcript_samples=int(0.6 * RATE))
    kept = (capped.targets["chars"][:12, 0] != IGNORE).tolist()
    assert kept == [bool(i % 2 == 0 and len(table[i]) <= limit) for i in range(12)]
    assert 0 < sum(kept) < 6  # the cap dropped some transcripts and kept others
    for batch in capped.epoch(4, np.random.default_rng(1)):
        assert batch.whole is None or max(batch.whole.lengths) <= limit


def test_transcript_loss_is_the_weighted_ctc_loss_of_the_whole_view() -> None:
    from models.data.batches import WholeView
    from models.training.losses import transcript_loss

    torch.manual_seed(0)
    model = build_model(default_config("edge_cnn", {"emotion": 2, "chars": 4}, {"chars": 0.3})).eval()
    x = np.random.default_rng(0).standard_normal((2, 90, 64)).astype(np.float32)  # edge_cnn: 64 log-mel bins
    x[1, 60:] = 0.0
    view = WholeView(x, np.array([90, 60]), {"chars": np.array([[1, 2, 3], [2, 3, IGNORE]])})
    with torch.no_grad():
        loss, parts = transcript_loss(model, view, torch.device("cpu"))
        frames = model.frame_lengths(torch.tensor([90, 60]))
        (logits,) = model.outputs(torch.from_numpy(x), ("chars",), torch.tensor([90, 60]))
        expected = ctc_loss(logits, torch.tensor([[1, 2, 3], [2, 3, IGNORE]]), frames)
    assert set(parts) == {"chars"} and float(parts["chars"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(loss) == pytest.approx(0.3 * float(expected), rel=1e-5)


@pytest.mark.parametrize(
    "argv0,expected",
    [
        ("/x/edge_ser/__main__.py", "edge-ser train --arch pcnn"),  # python -m edge_ser (and under torchrun)
        ("/x/edge_ser/cli.py", "edge-ser train --arch pcnn"),
        ("/venv/bin/edge-ser", "edge-ser train --arch pcnn"),
    ],
)
def test_recorded_command_is_what_a_user_types(argv0: str, expected: str, monkeypatch) -> None:
    from models.training.run import invocation

    monkeypatch.setattr(sys, "argv", [argv0, "train", "--arch", "pcnn"])
    assert invocation() == expected
    monkeypatch.setattr(sys, "argv", ["/x/models/train.py", "--arch", "pcnn"])
    assert invocation() == "python -m models.train --arch pcnn"


def test_backbone_options_build_a_smaller_edge_cnn_and_resume_only_with_the_same_ones(tmp_path: Path, capsys) -> None:
    """``--backbone '{"depth": 1}'``: edge_cnn without its residual blocks, recorded in the model config (which export
    rebuilds from) and in the training settings (a finished fold trained otherwise is refused on resume); a keyword
    the backbone does not take, or JSON that is not an object, is a clean error."""
    _, argv = toy_pcnn_args(tmp_path)
    argv = [*("edge_cnn" if a == "pcnn" else a for a in argv), "--folds", "0"]
    runs = {}
    for name, extra in (("plain", []), ("shallow", ["--backbone", '{"depth": 1}'])):
        assert main([*argv, *extra, "--out", str(tmp_path / name)]) == 0
        fold = next((tmp_path / name).glob("*/config.json")).parent
        runs[name] = json.loads((fold / "config.json").read_text())
    plain, shallow = runs["plain"], runs["shallow"]
    assert shallow["backbone"] == {"depth": 1} and shallow["training"]["backbone"] == {"depth": 1}
    assert plain["backbone"] == {} and "backbone" not in plain["training"]  # off: absent, as in older runs
    assert shallow["parameters"] < plain["parameters"]
    shallow_model = build_model(shallow)
    assert count_parameters(shallow_model) == shallow["parameters"]
    assert len(shallow_model.backbone.blocks) < len(build_model(plain).backbone.blocks)
    resumed = [*argv, "--resume", "--out", str(tmp_path / "shallow")]
    assert main(resumed) == 2  # the same folder without the option: other settings
    assert "other settings" in capsys.readouterr().err
    assert main([*resumed, "--backbone", '{"depth": 1}']) == 0
    assert main([*argv, "--backbone", '{"wings": 2}', "--out", str(tmp_path / "bad")]) == 2
    assert "edge_cnn's backbone takes no ['wings']" in capsys.readouterr().err
    assert main([*argv, "--backbone", "[1]", "--out", str(tmp_path / "bad")]) == 2
    assert "JSON object" in capsys.readouterr().err


def test_init_starts_each_fold_from_the_same_fold_of_a_finished_run(tmp_path: Path, capsys) -> None:
    """``--init RUN_DIR``: each fold starts from that run's weights of the same fold (with a zero learning rate the
    kept weights are exactly the parent's; without --init they are not), recorded in the training settings; a
    parent fold trained with another seed (another split), a model it does not fit, or a missing run is a clean
    error before anything trains."""
    _, argv = toy_pcnn_args(tmp_path)
    argv = [*("edge_cnn" if a == "pcnn" else a for a in argv), "--folds", "0"]
    assert main([*argv, "--out", str(tmp_path / "parent")]) == 0
    fold = next((tmp_path / "parent").glob("*/config.json")).parent.name
    parent_config = json.loads((tmp_path / "parent" / fold / "config.json").read_text())
    weights = [name for name, _ in build_model(parent_config).named_parameters()]
    parent = load_tensors(tmp_path / "parent" / fold / "model.pt")

    def kept(name: str) -> dict[str, torch.Tensor]:
        return load_tensors(tmp_path / name / fold / "model.pt")

    frozen = [*argv, "--lr", "0"]
    assert main([*frozen, "--init", str(tmp_path / "parent"), "--out", str(tmp_path / "child")]) == 0
    assert main([*frozen, "--out", str(tmp_path / "fresh")]) == 0
    assert all(torch.equal(kept("child")[w], parent[w]) for w in weights)
    assert not all(torch.equal(kept("fresh")[w], parent[w]) for w in weights)
    child = json.loads((tmp_path / "child" / fold / "config.json").read_text())
    assert child["training"]["init"] == str((tmp_path / "parent").resolve())
    assert "init" not in parent_config["training"]  # off: absent, as in older runs

    refusals = {
        "could have heard": ["--seed", "1", "--init", str(tmp_path / "parent")],
        "does not fit this model": ["--backbone", '{"depth": 1}', "--init", str(tmp_path / "parent")],
        "no finished fold": ["--init", str(tmp_path / "nowhere")],
    }
    for message, extra in refusals.items():
        out = tmp_path / f"refused-{len(message)}"
        assert main([*argv, *extra, "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
        assert not list(out.glob("*/model.pt"))


def test_a_run_cut_to_depth_one_starts_a_shallower_fine_tune(tmp_path: Path) -> None:
    """``models.training.surgery``: each stage keeps its strided block (block ``2k`` of a depth-2 network becomes
    block ``k``), everything else as trained; the cut run is accepted by ``--init`` for a depth-1 network of the same
    folds (with a zero learning rate the child keeps exactly the cut weights); a depth-1 run cannot be cut again."""
    from models.training.surgery import shallower_run

    _, argv = toy_pcnn_args(tmp_path)
    argv = [*("edge_cnn" if a == "pcnn" else a for a in argv), "--folds", "0"]
    assert main([*argv, "--out", str(tmp_path / "parent")]) == 0
    fold = next((tmp_path / "parent").glob("*/config.json")).parent.name
    assert shallower_run(tmp_path / "parent", tmp_path / "cut") == [fold]
    parent, cut = (load_tensors(tmp_path / run / fold / "model.pt") for run in ("parent", "cut"))
    for key, value in cut.items():
        block = re.match(r"backbone\.blocks\.(\d+)\.(.+)", key)
        source = f"backbone.blocks.{2 * int(block.group(1))}.{block.group(2)}" if block else key
        assert torch.equal(value, parent[source]), key
    residual = [k for k in parent if re.match(r"backbone\.blocks\.[135]\.", k)]  # the three dropped blocks
    assert residual and len(cut) == len(parent) - len(residual)
    depth1 = [*argv, "--lr", "0", "--backbone", '{"depth": 1}', "--init", str(tmp_path / "cut")]
    assert main([*depth1, "--out", str(tmp_path / "child")]) == 0
    child = load_tensors(tmp_path / "child" / fold / "model.pt")
    config = json.loads((tmp_path / "child" / fold / "config.json").read_text())
    weights = [name for name, _ in build_model(config).named_parameters()]
    assert weights and all(torch.equal(child[w], cut[w]) for w in weights)
    with pytest.raises(ValueError, match="already depth 1"):
        shallower_run(tmp_path / "child", tmp_path / "again")


def test_a_fine_tune_averaged_with_its_parent(tmp_path: Path) -> None:
    """``models.training.surgery --average-with``: each fold's floating-point tensors are ``(1 - alpha) * parent +
    alpha * child`` (alpha 0 and 1 give either network back), counters and configuration are the child's, the
    child's test scores are left out; a parent trained on other speakers (another seed) or with other shapes is
    refused."""
    from models.training import surgery

    _, argv = toy_pcnn_args(tmp_path)
    argv = [*("edge_cnn" if a == "pcnn" else a for a in argv), "--folds", "0"]
    assert main([*argv, "--out", str(tmp_path / "parent")]) == 0
    assert main([*argv, "--init", str(tmp_path / "parent"), "--lr", "0.05", "--out", str(tmp_path / "child")]) == 0
    fold = next((tmp_path / "child").glob("*/config.json")).parent.name
    parent, child = (load_tensors(tmp_path / run / fold / "model.pt") for run in ("parent", "child"))
    moved = [k for k, v in child.items() if v.is_floating_point() and not torch.equal(v, parent[k])]
    assert moved  # the fine-tune changed weights
    for alpha in (0.0, 0.25, 1.0):
        out = tmp_path / f"avg-{alpha}"
        assert surgery.averaged_run(tmp_path / "parent", tmp_path / "child", out, alpha) == [fold]
        avg = load_tensors(out / fold / "model.pt")
        for key, value in child.items():
            want = (1 - alpha) * parent[key] + alpha * value if value.is_floating_point() else value
            assert torch.allclose(avg[key], want, rtol=1e-6, atol=1e-7), key
    config = json.loads((tmp_path / "avg-0.25" / fold / "config.json").read_text())
    child_config = json.loads((tmp_path / "child" / fold / "config.json").read_text())
    assert config["metrics"] == {} and child_config["metrics"]
    assert config["frontend"] == child_config["frontend"]
    assert "weights averaged" in config["training"]["derived_from"]
    report = json.loads((tmp_path / "avg-0.25" / "report.json").read_text())
    assert list(report["folds"]) == [fold] and report["protocol"] == child_config["training"]["protocol"]
    assert build_model(config).load_state_dict(load_tensors(tmp_path / "avg-0.25" / fold / "model.pt"))

    assert main([*argv, "--seed", "1", "--out", str(tmp_path / "other-seed")]) == 0
    with pytest.raises(ValueError, match="trained as"):
        surgery.averaged_run(tmp_path / "other-seed", tmp_path / "child", tmp_path / "refused", 0.5)
    assert main([*argv, "--backbone", '{"depth": 1}', "--out", str(tmp_path / "depth1")]) == 0
    with pytest.raises(ValueError, match="differ in tensors"):
        surgery.averaged_run(tmp_path / "depth1", tmp_path / "child", tmp_path / "refused", 0.5)
    assert surgery.main([str(tmp_path / "child"), str(tmp_path / "x"), "--average-with", str(tmp_path / "parent")]) == 0
    assert json.loads((tmp_path / "x" / "report.json").read_text())["folds"] == {fold: {"fold": fold}}
    runs = [str(tmp_path / "child"), str(tmp_path / "y"), "--average-with", str(tmp_path / "parent")]
    assert surgery.main([*runs, "--alpha", "2"]) == 2
