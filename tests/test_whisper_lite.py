"""WhisperLite, the student that keeps the teacher's stem and first block: budget, SVD initialization,
frame-level distillation loss, leakage-free transfer plan, export under the contract."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from edge_ser import Recognizer  # noqa: E402
from models.arch.heads import PRIMARY  # noqa: E402
from models.arch.registry import build_model, count_parameters, default_config  # noqa: E402
from models.arch.whisper_lite import SIZES, from_teacher, macs_per_window, svd_factors  # noqa: E402
from models.data.corpora import Corpus, Utterance  # noqa: E402
from models.data.protocols import make_folds  # noqa: E402
from models.training.lite import FRONTEND, frame_loss, transfer_plan  # noqa: E402

TINY_BUDGET = (400_000, 30_000_000)  # parameters, MAC per 3 s (issue 20's tiny tier)


def random_encoder(d=64, heads=4, ffn=256):
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    torch.manual_seed(0)
    config = WhisperConfig(
        d_model=d,
        encoder_layers=1,
        encoder_attention_heads=heads,
        encoder_ffn_dim=ffn,
        num_mel_bins=80,
        max_source_positions=300,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        attn_implementation="eager",
    )
    encoder = WhisperEncoder(config).eval()
    with torch.no_grad():  # non-trivial norms and biases, so that copying them is tested too
        for name, p in encoder.named_parameters():
            if "layer_norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return encoder


def teacher_block(encoder, mel):
    x = torch.nn.functional.gelu(encoder.conv1(mel))
    x = torch.nn.functional.gelu(encoder.conv2(x)).transpose(1, 2)
    x = x + encoder.embed_positions.weight[: x.shape[1]]
    out = encoder.layers[0](x, attention_mask=None)
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("width,heads", [(384, 6), (512, 8)])
def test_default_student_fits_the_tiny_tier(width, heads):
    model = build_model(
        {
            **default_config("whisper_lite", {PRIMARY: 8}),
            "backbone": {"width": width, "heads": heads, **SIZES[width]},
        }
    )
    params, macs = count_parameters(model), macs_per_window(model.backbone)
    assert params <= TINY_BUDGET[0] and macs <= TINY_BUDGET[1], (params, macs)
    x = torch.randn(2, FRONTEND.analysis_frames(48000), 80)
    assert model(x)[PRIMARY].shape == (2, 8)
    assert model.backbone.tokens(x).shape == (2, 75, width)


def test_full_rank_svd_reproduces_the_teacher_block():
    encoder = random_encoder()
    mel = torch.randn(1, 80, 200)
    student = from_teacher(encoder, stem_ranks=(64, 64), rank=64, ffn=256, pool=1, max_tokens=150)
    with torch.no_grad():
        ref, out = teacher_block(encoder, mel), student.tokens(mel.transpose(1, 2))
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < 1e-4 * (1 + ref.abs().max())


def test_truncated_svd_is_the_best_low_rank_approximation():
    w = torch.randn(48, 96, generator=torch.Generator().manual_seed(1))
    s = torch.linalg.svdvals(w.double())
    errors = []
    for rank in (4, 16, 48):
        down, up = svd_factors(w, rank)
        assert down.shape == (rank, 96) and up.shape == (48, rank)
        err = torch.linalg.matrix_norm((up @ down - w).double())
        assert abs(err - s[rank:].square().sum().sqrt()) < 1e-3 * s[0]
        errors.append(float(err))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-3


def test_pruning_keeps_the_most_important_units():
    encoder = random_encoder()
    importance = torch.zeros(256)
    importance[[3, 17, 200]] = 1.0
    student = from_teacher(encoder, importance=importance, ffn=3, pool=1, max_tokens=150)
    assert torch.equal(student.block.fc1.weight, encoder.layers[0].fc1.weight[[3, 17, 200]])
    assert torch.equal(student.block.fc2.weight, encoder.layers[0].fc2.weight[:, [3, 17, 200]])


def test_frame_loss_is_zero_when_equal_and_grows():
    g = torch.Generator().manual_seed(2)
    t = torch.randn(3, 20, 32, generator=g)
    assert abs(float(frame_loss(t, t))) < 1e-6
    noise = torch.randn(t.shape, generator=g)
    losses = [float(frame_loss(t + a * noise, t)) for a in (0.1, 0.5, 2.0)]
    assert 0 < losses[0] < losses[1] < losses[2]
    assert float(frame_loss(-t, t)) > losses[2]


def fake_corpus(name, speakers, per_speaker=3):
    utts = [
        Utterance(f"{s}/{k}.wav", "neutral", s, "female" if int(s) % 2 else "male", None, name)
        for s in speakers
        for k in range(per_speaker)
    ]
    return Corpus(name, "/nowhere", ("neutral", "happy"), utts)


def test_transfer_plan_never_holds_a_test_speaker():
    ravdess = fake_corpus("ravdess", [f"{a:02d}" for a in range(1, 21)])
    other = fake_corpus("casia", ["1", "2"])
    corpora = {"ravdess": ravdess, "casia": other}
    folds = make_folds(ravdess, "ravdess5")
    assert len(folds) == 5
    for fold in folds:
        plan = transfer_plan(corpora, "ravdess", fold)
        heard = {ravdess.utterances[i].speaker for i in plan["ravdess"]}
        test = {ravdess.utterances[i].speaker for i in fold.test}
        val = {ravdess.utterances[i].speaker for i in fold.val}
        assert heard and not heard & test and not heard & val
        assert len(plan["casia"]) == len(other.utterances)
    shared = transfer_plan({"casia": other})  # other corpora only: serves every RAVDESS fold
    assert set(shared) == {"casia"}
    with pytest.raises(ValueError):
        transfer_plan(corpora, "ravdess")


def test_export_satisfies_the_contract(tmp_path):
    from export.onnx_export import export_module, make_contract, to_onnx

    torch.manual_seed(0)
    config = default_config("whisper_lite", {PRIMARY: 4})
    model = build_model(config).eval()
    config.update(
        {
            "labels": {PRIMARY: ["neutral", "happy", "sad", "angry"]},
            "window": {"seconds": 3.0, "hop_seconds": 1.0, "min_seconds": 0.25},
            "normalization": {"mode": "none"},
            "parameters": count_parameters(model),
        }
    )
    contract = make_contract(config, [PRIMARY])
    path = to_onnx(export_module(model, contract), contract, tmp_path / "lite.onnx")
    rec = Recognizer(Path(path), threads=1)
    assert rec.contract.frontend == FRONTEND
    rng = np.random.default_rng(0)
    for seconds in (0.5, 3.0, 4.2):
        x = (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
        features = torch.from_numpy(contract.model_input(x[:48000]))[None]
        with torch.no_grad():
            expected = torch.softmax(model(features)[PRIMARY], -1)[0].numpy()
        got = rec.predict(x[:48000], sample_rate=16000)
        scores = np.array([got.scores[label] for label in contract.heads[0].labels])
        assert got.label in contract.heads[0].labels
        assert np.allclose(scores, expected, atol=1e-4)


@pytest.mark.parametrize("pool", [2, 4])
def test_crops_align_student_tokens_with_teacher_frames(pool):
    from models.arch.whisper_lite import WhisperLite
    from models.training.lite import TOKEN, Clip, crop_batch

    rng = np.random.default_rng(0)
    clips = []
    for seconds in (2.3, 3.7, 5.1):
        samples = int(seconds * 16000)
        frames = FRONTEND.analysis_frames(samples)
        clips.append(
            Clip(
                rng.standard_normal((frames, 80)).astype(np.float32),
                rng.standard_normal((samples // TOKEN, 16)).astype(np.float16),
                samples,
                0,
            )
        )
    model = WhisperLite(width=32, heads=4, stem_ranks=(4, 4), rank=4, ffn=8, pool=pool, max_tokens=160)
    for crop in (3.0, 6.0):
        x, t, y = crop_batch(clips, [0, 1, 2], rng, crop, pool)
        assert x.shape[0] == t.shape[0] == 3 and len(y) == 3
        assert model.tokens(x).shape[1] == t.shape[1] > 0
        assert t.shape[1] <= int(min(crop, 2.3) * 16000) // (320 * pool)
