"""Transcript (CTC) heads: targets from the corpora's fields, greedy decoding, the joint loss,
training, and a model exported with every head answering through ``Recognizer``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from edge_ser import Recognizer
from edge_ser.cli import main as cli_main
from edge_ser.contract import Head
from edge_ser.ctc import BLANK, best_path, greedy_decode
from edge_ser.errors import ContractError, ModelError
from models.arch.heads import IGNORE, ctc_loss
from models.arch.registry import build_model, default_config
from models.data import transcripts
from models.data.corpora import load_corpus

torch.set_num_threads(1)
RATE = 16000


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    labels = [BLANK, "a", "b"]
    path = [0, 1, 1, 0, 1, 2, 2, 0, 0, 2]  # -> a a b b
    logits = np.eye(3)[path] * 5.0
    assert best_path(logits) == [1, 1, 2, 2]
    assert greedy_decode(logits, labels) == "aabb"
    assert greedy_decode(logits, labels, " ") == "a a b b"
    assert greedy_decode(np.eye(3)[[0, 0, 0]], labels) == "" and best_path(np.zeros((0, 3))) == []


def test_syllable_and_character_targets_from_casia_lab_files(tmp_path: Path):
    root = tmp_path / "casia"
    root.mkdir()
    (root / "transcripts.txt").write_text("201. 就是下雨也去。\n202. 我马上拿来。\n", encoding="utf-8")
    for speaker, number in (("liuchanhg", "201"), ("wangzhe", "202")):
        path = root / speaker / "angry" / f"{number}.wav"
        path.parent.mkdir(parents=True)
        sf.write(path, np.zeros(RATE // 2, np.float32), RATE)
    (root / "liuchanhg" / "angry" / "201.lab").write_text(
        "0 2890000 SIL\n2890000 4190000 jiu4\n4190000 5510000 shi4\n5510000 5600000 SIL\n5600000 6000000 xia4\n"
    )
    utts = sorted(load_corpus("casia", root).utterances, key=lambda u: u.path)
    assert transcripts.tokens("syllables", utts[0]) == ["jiu4", "shi4", "xia4"]  # SIL removed, tones kept
    assert transcripts.tokens("syllables_notone", utts[0]) == ["jiu", "shi", "xia"]
    assert transcripts.tokens("syllables", utts[1]) is None  # no .lab
    assert transcripts.tokens("chars", utts[0]) == list("就是下雨也去")  # punctuation dropped
    vocab = transcripts.vocabulary("syllables", utts)
    assert vocab == [BLANK, "jiu4", "shi4", "xia4"]
    t = transcripts.targets("syllables", utts, vocab)
    assert t.tolist() == [[1, 2, 3], [IGNORE] * 3]
    only_jiu = transcripts.targets("syllables", utts, [BLANK, "jiu4"])
    assert (only_jiu == IGNORE).all()  # an utterance with an unknown token trains no CTC loss


def test_english_characters_and_error_rate():
    class U:
        text = "Kids are talking, by the door!"

    assert "".join(transcripts.tokens("chars", U())) == "kids are talking by the door"
    assert transcripts.edit_distance("kitten", "sitting") == 3
    assert transcripts.error_rate(["abc", "de"], ["abd", "de"]) == pytest.approx(1 / 5)


def test_ctc_head_kind_in_the_contract():
    head = Head("chars", "chars_logits", (BLANK, "a"), "ctc", separator=" ")
    assert head.to_dict()["separator"] == " "
    with pytest.raises(ContractError, match="blank"):
        Head("chars", "chars_logits", ("a", "b"), "ctc")


def _model(heads: dict, weights: dict):
    config = default_config("edge_cnn", heads, weights)
    return build_model(config)


def test_joint_loss_is_the_weighted_sum_of_cross_entropies_and_ctc():
    torch.manual_seed(0)
    model = _model({"emotion": 3, "gender": 2, "chars": 5}, {"gender": 0.3, "chars": 0.5}).eval()
    x = torch.randn(4, 120, 64)
    out = model(x)
    assert out["emotion"].shape == (4, 3) and out["chars"].shape[0] == 4 and out["chars"].shape[2] == 5
    assert out["chars"].shape[1] == 15  # the time axis survives to the head (120 frames / 8)
    targets = {
        "emotion": torch.tensor([0, 1, 2, 1]),
        "gender": torch.tensor([0, 1, IGNORE, 1]),
        "chars": torch.tensor([[1, 2, 3], [4, IGNORE, IGNORE], [IGNORE] * 3, [2, 2, IGNORE]]),
    }
    total, parts = model.loss(out, targets)
    ce_e = F.cross_entropy(out["emotion"], targets["emotion"])
    ce_g = F.cross_entropy(out["gender"][[0, 1, 3]], targets["gender"][[0, 1, 3]])
    lp = out["chars"][[0, 1, 3]].log_softmax(-1).transpose(0, 1)
    flat = torch.tensor([1, 2, 3, 4, 2, 2])
    ctc_ref = F.ctc_loss(lp, flat, torch.tensor([15, 15, 15]), torch.tensor([3, 1, 2]), blank=0)
    assert parts["emotion"].item() == pytest.approx(ce_e.item(), rel=1e-5)
    assert parts["gender"].item() == pytest.approx(ce_g.item(), rel=1e-5)
    assert parts["chars"].item() == pytest.approx(ctc_ref.item(), rel=1e-5)
    assert total.item() == pytest.approx((ce_e + 0.3 * ce_g + 0.5 * ctc_ref).item(), rel=1e-5)
    assert ctc_loss(out["chars"], torch.full((4, 2), IGNORE)).item() == 0.0


def test_ctc_needs_a_backbone_with_frames():
    with pytest.raises(ValueError, match="frame output"):
        build_model(default_config("pcnn", {"emotion": 3, "chars": 4}))


def make_spoken_corpus(root: Path) -> Path:
    """Two 'words': a low tone says "lo" and is calm, a high tone says "hi" and is angry; CSV manifest."""
    rng = np.random.default_rng(0)
    rows = ["path,emotion,speaker,gender,text"]
    for s in range(4):
        for k in range(6):
            for label, freq, text in (("calm", 300, "lo"), ("angry", 1500, "hi")):
                seconds = rng.uniform(0.3, 0.45)
                t = np.arange(int(seconds * RATE)) / RATE
                x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
                name = f"s{s}_{label}_{k}.wav"
                sf.write(root / name, x.astype(np.float32), RATE)
                rows.append(f"{name},{label},s{s},{'female' if s % 2 else 'male'},{text}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


def test_train_and_export_with_every_head_through_the_recognizer(tmp_path: Path, capsys):
    from export import cli
    from models import train

    manifest = make_spoken_corpus(tmp_path)
    run = tmp_path / "run"
    argv = ["--dataset", "csv", "--data", str(manifest), "--arch", "edge_cnn", "--epochs", "3", "--batch-size", "8"]
    argv += ["--window", "0.5", "--hop", "0.25", "--no-progress", "--cache-dir", str(tmp_path / "c")]
    argv += ["--aux", "gender=0.3", "speaker=0.1", "chars=0.5", "--folds", "0", "--out", str(run)]
    assert train.main(argv) == 0
    fold = next(p for p in run.iterdir() if p.is_dir())
    metrics = json.loads((fold / "metrics.json").read_text())
    assert metrics["history"][-1]["chars"] < metrics["history"][0]["chars"]  # the CTC loss goes down
    test = metrics["test"]
    assert 0.0 <= test["chars"]["token_error_rate"] and test["chars"]["utterances"] > 0
    bad = [*argv, "--transcript-max", "0"]
    bad[bad.index("--out") + 1] = str(tmp_path / "bad")
    assert train.main(bad) == 2
    assert "transcript_max_seconds must be positive" in capsys.readouterr().err

    parser = argparse.ArgumentParser()
    cli.configure_parser(parser)
    out = tmp_path / "all-heads.onnx"
    cli.run(parser.parse_args([str(fold), "--out", str(out), "--keep-aux"]))
    rec = Recognizer(out)
    assert [h.kind for h in rec.contract.heads] == ["classification", "classification", "classification", "ctc"]
    x, _ = sf.read(tmp_path / "s0_angry_0.wav", dtype="float32")
    p = rec.predict(x, sample_rate=RATE)
    assert set(p.heads) == {"gender", "speaker"} and set(p.transcripts) == {"chars"}
    assert sum(p.heads["speaker"].scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert set(p.heads["speaker"].scores) <= {"s0", "s1", "s2", "s3"}
    assert set(p.transcripts["chars"]) <= set("lohi")
    assert p.to_dict()["transcripts"] == p.transcripts
    (batch,) = rec.predict_batch([x], sample_rate=RATE)
    assert batch.transcripts == p.transcripts
    segment = rec.predict_segments(x, sample_rate=RATE)[0]
    assert set(segment.transcripts) == {"chars"}
    capsys.readouterr()
    assert cli_main(["predict", "--model", str(out), str(tmp_path / "s0_angry_0.wav")]) == 0
    line = capsys.readouterr().out.strip()
    assert "\tgender=" in line and "\tspeaker=" in line and f"\tchars={p.transcripts['chars']!r}" in line
    plain = tmp_path / "emotion-only.onnx"
    cli.run(parser.parse_args([str(fold), "--out", str(plain)]))
    assert Recognizer(plain).predict(x, sample_rate=RATE).transcripts == {}

    some = tmp_path / "some-heads.onnx"
    cli.run(parser.parse_args([str(fold), "--out", str(some), "--keep-aux", "chars", "gender"]))
    assert [h.name for h in Recognizer(some).contract.heads] == ["emotion", "gender", "chars"]  # the model's order
    with pytest.raises(ModelError, match="no head phonemes"):
        cli.run(parser.parse_args([str(fold), "--out", str(some), "--keep-aux", "phonemes"]))


def test_padded_frames_are_masked_from_pooling_and_ctc_alignment():
    """Zero-padded training crops: the utterance embedding and the CTC loss see only the audio's
    frames, so the padding (whose length is the utterance's duration) cannot become a cue."""
    torch.manual_seed(0)
    model = _model({"emotion": 3, "chars": 5}, {"chars": 1.0}).eval()
    backbone = model.backbone
    for n in range(1, 60):
        assert backbone.frame_lengths(torch.tensor([n])).item() == backbone.frames(torch.zeros(1, n, 64)).shape[-1]
    frames = torch.randn(2, backbone.frame_dim, 15)
    lengths = torch.tensor([15, 6])
    pooled = backbone.pool(frames, lengths)
    torch.testing.assert_close(pooled[1], backbone.pool(frames[1:, :, :6])[0])
    torch.testing.assert_close(pooled[0], backbone.pool(frames[:1])[0])
    assert not torch.allclose(pooled[1], backbone.pool(frames[1:])[0])  # the mask changed something

    x = torch.randn(2, 120, 64)
    x[1, 50:] = 0.0
    out = model(x, torch.tensor([120, 50]))
    targets = {"emotion": torch.tensor([0, 1]), "chars": torch.tensor([[1, 2, 3], [4, 4, IGNORE]])}
    frame_lengths = model.frame_lengths(torch.tensor([120, 50]))
    assert frame_lengths.tolist() == [15, 7]
    _, parts = model.loss(out, targets, frame_lengths=frame_lengths)
    lp = out["chars"].log_softmax(-1)
    ref = [
        F.ctc_loss(lp[i, :f, None], t[t != IGNORE][None], [f], [int((t != IGNORE).sum())])
        for i, (f, t) in enumerate(zip(frame_lengths.tolist(), targets["chars"]))
    ]
    assert parts["chars"].item() == pytest.approx(torch.stack(ref).mean().item(), rel=1e-5)
    _, unmasked = model.loss(out, targets)
    assert unmasked["chars"].item() != pytest.approx(parts["chars"].item(), rel=1e-3)
