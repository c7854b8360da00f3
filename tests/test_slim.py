"""Slimmer base-tier encoders: feed-forward pruning, token pooling, and where the importance statistics come from."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from models.teachers import slim  # noqa: E402


def tiny_teacher(layers: int = 2, d: int = 16, seed: int = 0):
    """A randomly initialized Whisper encoder with Whisper's front-end, small enough for a unit test."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from models.teachers.whisper import EncoderSpec, WhisperTeacher

    torch.manual_seed(seed)
    config = WhisperConfig(
        d_model=d,
        encoder_layers=layers,
        encoder_attention_heads=2,
        encoder_ffn_dim=4 * d,
        num_mel_bins=80,
        max_source_positions=1500,
        attn_implementation="eager",
    )
    spec = EncoderSpec("tiny-test", (), 0, "0" * 64, layers, d, 2)
    encoder = WhisperEncoder(config).eval()
    with torch.no_grad():  # distinct biases and norms (the exporter merges equal initializers)
        for name, p in encoder.named_parameters():
            if "bias" in name or "layer_norm.weight" in name:
                p.add_(0.05 * torch.randn(p.shape))
    return WhisperTeacher(spec, encoder, spec.sha256).eval()


def waves(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    return [(0.3 * np.sin(2 * np.pi * (120 + 40 * i) * t) + 0.05 * rng.standard_normal(len(t))) for i in range(n)]


def test_pool_pairs_averages_neighbouring_frames_and_drops_an_odd_last_one():
    x = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    y = slim.pool_pairs(x)
    assert y.shape == (2, 2, 3)
    torch.testing.assert_close(y[:, 0], (x[:, 0] + x[:, 1]) / 2)
    torch.testing.assert_close(y[:, 1], (x[:, 2] + x[:, 3]) / 2)


def test_ffn_statistics_are_the_mean_absolute_and_mean_hidden_activations():
    from models.teachers.base_tier import trunk

    module = trunk(tiny_teacher(), 2)
    seen = []
    handle = module.layers[1].fc2.register_forward_pre_hook(lambda _m, a: seen.append(a[0].reshape(-1, 64)))
    stats = slim.ffn_statistics(list(module.layers), module.embed, waves(3))
    handle.remove()
    h = torch.cat(seen).double()
    np.testing.assert_allclose(stats[1][0], h.abs().mean(0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(stats[1][1], h.mean(0).numpy(), rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="no audio"):
        slim.ffn_statistics(list(module.layers), module.embed, [])


def test_pruning_that_keeps_every_unit_leaves_the_model_unchanged():
    from models.teachers.base_tier import trunk

    teacher = tiny_teacher()
    module = trunk(teacher, 2)
    stats = slim.ffn_statistics(list(module.layers), module.embed, waves(2))
    pruned = copy.deepcopy(teacher)
    slim.prune_layers(list(pruned.encoder.layers), stats, 1.0)
    x = torch.from_numpy(waves(1, seed=5)[0].astype(np.float32))[None]
    with torch.no_grad():
        assert torch.equal(trunk(pruned, 2).embed(x), module.embed(x))
    assert pruned.encoder.layers[0].fc1.out_features == 64


def test_pruning_keeps_the_most_important_units_and_folds_the_others_mean_into_the_bias():
    teacher = tiny_teacher(layers=1)
    layer = teacher.encoder.layers[0]
    with torch.no_grad():
        layer.fc2.weight[:, :16] = 0.0  # units 0..15 cannot move the output: least important
    mean_abs = np.linspace(1.0, 2.0, 64)
    keep = slim.kept_units(layer, mean_abs, 0.75)
    assert len(keep) == 48 and set(keep) == set(range(16, 64))
    mean = np.random.default_rng(0).standard_normal(64)
    original = copy.deepcopy(layer)
    keep = slim.kept_units(layer, np.ones(64), 0.5)
    slim.prune_ffn(layer, keep, mean)
    assert (layer.fc1.out_features, layer.fc2.in_features) == (32, 32)
    h = torch.randn(5, 64, dtype=torch.float64)
    dropped = np.setdiff1d(np.arange(64), keep)
    h[:, dropped] = torch.from_numpy(mean[dropped])  # a dropped unit at its mean: the pruned layer is exact
    with torch.no_grad():
        want = original.fc2(h.float())
        got = layer.fc2(h[:, keep].float())
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="fraction"):
        slim.kept_units(layer, np.ones(32), 0.0)


def tone(path: Path, seconds: float = 0.6, f: float = 220.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * 16000)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), 16000)


def test_importance_statistics_never_read_the_evaluated_corpus(tmp_path, monkeypatch):
    import edge_ser.audio
    import models.data.corpora
    from models.teachers.base_tier import trunk

    root = tmp_path / "datasets"
    tone(root / "casia" / "liuchanhg" / "angry" / "201.wav")
    tone(root / "casia" / "wangzhe" / "happy" / "202.wav")
    tone(root / "ravdess" / "Actor_01" / "03-01-05-02-01-01-01.wav", f=300)
    tone(root / "ravdess" / "Actor_02" / "03-01-02-01-02-02-02.wav", f=180)
    tone(root / "emodb" / "wav" / "03a01Fa.wav", f=250)
    read, loaded = [], []
    real_read, real_load = edge_ser.audio.read_audio, models.data.corpora.load_corpus
    monkeypatch.setattr(edge_ser.audio, "read_audio", lambda s, *a, **k: read.append(str(s)) or real_read(s, *a, **k))
    monkeypatch.setattr(
        models.data.corpora, "load_corpus", lambda n, *a, **k: loaded.append(n) or real_load(n, *a, **k)
    )
    module = trunk(tiny_teacher(), 2, pool_after=0)
    stats = slim.importance_statistics(module, root, "casia", 6.0)
    assert len(stats) == 2 and all(a.shape == (64,) and np.isfinite(a).all() for a, _ in stats)
    assert sorted(loaded) == ["emodb", "ravdess"]
    assert len(read) == 3 and not any("casia" in p for p in read)
    assert all(Path(p).is_relative_to(root / "ravdess") or Path(p).is_relative_to(root / "emodb") for p in read)
    assert slim.importance_files(root, "ravdess") == [str(root / "emodb" / "wav" / "03a01Fa.wav")]


@pytest.mark.parametrize("pool_after", [None, 0, 1])
def test_slim_base_tier_exports_equal_to_torch_and_batch_independent(tmp_path, pool_after):
    pytest.importorskip("onnx")
    from edge_ser import Recognizer
    from export.base_tier import export_base
    from export.base_variants import make_variant
    from models.teachers.base_tier import BaseTier, trunk

    teacher = tiny_teacher()
    stats = slim.ffn_statistics(list(trunk(teacher, 2).layers), trunk(teacher, 2).embed, waves(2))
    slim.prune_layers(list(teacher.encoder.layers), stats, 0.5)
    rng = np.random.default_rng(0)
    head = (np.zeros(32), np.ones(32), rng.standard_normal((3, 32)), np.zeros(3))
    fp32 = export_base(teacher, 2, head, ["a", "b", "c"], "slim-test", {}, tmp_path / "m.onnx", pool_after=pool_after)
    module = BaseTier(teacher, 2, *head, max_seconds=6.0, pool_after=pool_after).eval()
    clips = [w[:n].astype(np.float32) for w, n in zip(waves(3, seed=1), (16000, 15680, 9920))]  # odd/even frames
    for variant in ("fp32", "int8d-stem"):
        rec = Recognizer(make_variant(fp32, variant, [], tmp_path / f"m.{variant}.onnx"))
        one = [rec.predict(c, sample_rate=16000) for c in clips]
        assert [p.scores for p in one] == [p.scores for p in rec.predict_batch(clips, sample_rate=16000)]
        assert all(abs(sum(p.scores.values()) - 1) < 1e-5 for p in one)
        if variant == "fp32":
            with torch.no_grad():
                want = module(torch.from_numpy(clips[1])[None])[0].softmax(-1).numpy()
            np.testing.assert_allclose([one[1].scores[k] for k in "abc"], want, atol=1e-4)


def test_the_shipped_chinese_base_is_its_pooled_recipe():
    from edge_ser import Recognizer
    from edge_ser.model import ASSETS, SHIPPED
    from export.base_tier import RECIPES, space

    if not (ASSETS / SHIPPED["chinese-base"]).is_file():
        pytest.skip("chinese-base is not in this checkout")
    c = Recognizer("chinese-base").contract
    recipe = RECIPES["chinese-base"]
    assert c.provenance["pool_after"] == recipe.pool_after == 1 and c.provenance["ffn_keep"] == recipe.ffn_keep == 1.0
    assert c.embedding.space == space(recipe) == "whisper-base/block3/pool1/mean+std"
    assert c.provenance["cross_validation"]["variant"] in recipe.variants
