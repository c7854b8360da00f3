"""Seed architectures, multi-task heads and build_model: sizes, shapes, joint loss, ONNX export."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from edge_ser.frontend import FrontEnd
from models.arch.heads import IGNORE, SERModel
from models.arch.registry import ARCHITECTURES, build_model, count_parameters, default_config

torch.set_num_threads(1)

ARCHS = sorted(ARCHITECTURES)


def _heads(arch: str, n: int = 6) -> dict[str, int]:
    return {"emotion": n, "gender": 2} if arch == "pcnn_gender" else {"emotion": n}


def _model(arch: str, n: int = 6, **heads: int) -> tuple[SERModel, FrontEnd]:
    config = default_config(arch, {**_heads(arch, n), **heads})
    return build_model(config).eval(), FrontEnd.from_dict(config["frontend"])


def _input(frontend: FrontEnd, seconds: float, batch: int = 2) -> torch.Tensor:
    n = int(seconds * frontend.sample_rate)
    if frontend.kind == "waveform":
        return torch.randn(batch, n)
    return torch.randn(batch, frontend.num_frames(n), frontend.n_features)


@pytest.mark.parametrize(("arch", "target"), [("audio_resnet", 0.13e6), ("spectrogram_resnet", 0.39e6)])
@pytest.mark.parametrize("n_classes", [6, 7, 8])
def test_parameter_counts_match_the_published_sizes(arch: str, target: float, n_classes: int) -> None:
    model, _ = _model(arch, n_classes)
    assert abs(count_parameters(model) / target - 1) <= 0.15


def test_pcnn_gender_is_pcnn_plus_a_gender_head() -> None:
    pcnn, _ = _model("pcnn")
    both, _ = _model("pcnn_gender")
    assert count_parameters(both) - count_parameters(pcnn) == pcnn.backbone.embedding_dim * 2 + 2
    assert both.head_names == ("emotion", "gender")
    assert both.loss_weights["gender"] == pytest.approx(0.3)


@pytest.mark.parametrize("arch", ARCHS)
def test_declared_frontends(arch: str) -> None:
    kind = FrontEnd.from_dict(ARCHITECTURES[arch].frontend).kind
    declared = {
        "audio_resnet": "waveform",
        "spectrogram_resnet": "logspec",
        "edge_cnn": "logmel",
        "stream_net": "logmel",
        "whisper_lite": "logmel",
        "functionals_mlp": "functionals",
    }
    assert kind == declared.get(arch, "mfcc")


def test_edge_cnn_stays_within_the_edge_budget() -> None:
    model, frontend = _model("edge_cnn", 8, gender=2)
    assert count_parameters(model) <= 0.4e6
    shapes = []
    model.backbone.blocks.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    with torch.no_grad():
        model(_input(frontend, 3.0))
    assert shapes == [(2, 128, 38, 4)]  # 299 frames x 64 bins -> time / 8, frequency / 16


def test_edge_cnn_on_a_20_ms_hop_keeps_the_grid_and_the_weights() -> None:
    """``stem_time_stride`` 1 on 20 ms frames reaches the 10 ms default's (38, 4) grid with the same parameters;
    frame_lengths follows the strides (what CTC and masked pooling rely on)."""
    config = default_config("edge_cnn", {"emotion": 8})
    config["frontend"] = {**config["frontend"], "hop_length": 0.02}
    config["backbone"] = {"stem_time_stride": 1}
    model = build_model(config).eval()
    frontend = FrontEnd.from_dict(config["frontend"])
    default, _ = _model("edge_cnn", 8)
    assert count_parameters(model) == count_parameters(default)
    x = _input(frontend, 3.0)
    assert x.shape[1] == 150
    with torch.no_grad():
        frames = model.backbone.frames(x)
    assert tuple(frames.shape) == (2, 192, 38)
    assert model.backbone.frame_lengths(torch.tensor([150, 75, 1])).tolist() == [38, 19, 1]
    assert default.backbone.frame_lengths(torch.tensor([299, 150, 1])).tolist() == [38, 19, 1]
    with pytest.raises(ValueError, match="stem_time_stride"):
        build_model({**config, "backbone": {"stem_time_stride": 3}})


@pytest.mark.parametrize("arch", ["edge_cnn", "stream_net"])
def test_students_stay_within_the_edge_budget(arch, tmp_path) -> None:
    """<= 0.4M parameters and <= 30 M multiply-accumulates for 3 s, counted on the exported graph."""
    from edge_ser.macs import count_macs

    model, frontend = _model(arch, 8)
    assert count_parameters(model) <= 0.4e6
    x = _input(frontend, 3.0, batch=1)
    path = tmp_path / f"{arch}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.backbone, (x,), str(path), input_names=["x"], dynamo=False)
    assert 5e6 < count_macs(path, {"x": x.numpy()}) <= 30e6


def test_stream_net_runs_frame_by_frame_as_it_runs_whole() -> None:
    """Causal convolutions and running statistics: streaming each frame gives the whole input's embedding
    (at every odd frame count, for the frames heard so far)."""
    torch.manual_seed(0)
    model, frontend = _model("stream_net", 6)
    backbone = model.backbone
    with torch.no_grad():  # non-trivial running statistics, so eval-mode batch norm is not the identity
        for bn in (m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm1d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 41, frontend.n_features)
    state = None
    for t in range(x.shape[1]):
        state = backbone.step(x[:, t], state)
        if t % 2 == 0:
            whole = backbone(x[:, : t + 1])
            assert torch.allclose(state["embedding"], whole, atol=1e-4), t
    with pytest.raises(RuntimeError, match="eval"):
        backbone.train().step(x[:, 0])


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("seconds", [0.25, 0.8, 1.37])
def test_output_shapes_for_any_length(arch: str, seconds: float) -> None:
    model, frontend = _model(arch, 7, speaker=5)
    with torch.no_grad():
        out = model(_input(frontend, seconds, batch=3))
    assert list(out) == list(model.head_names)
    assert next(iter(out)) == "emotion"
    expected = {"emotion": 7, "speaker": 5, **({"gender": 2} if arch == "pcnn_gender" else {})}
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (3, n) for k, n in expected.items()}
    assert model.embed(_input(frontend, seconds)).shape == (2, model.backbone.embedding_dim)


def test_emotion_head_comes_first_whatever_the_config_order() -> None:
    model = build_model({"arch": "pcnn", "heads": {"gender": 2, "emotion": 4}})
    assert model.head_names == ("emotion", "gender")


def test_config_is_json_and_rebuilds_the_same_model() -> None:
    config = json.loads(json.dumps(default_config("spectrogram_resnet", {"emotion": 6, "gender": 2}, {"gender": 0.5})))
    torch.manual_seed(0)
    a = build_model(config)
    torch.manual_seed(0)
    b = build_model(config)
    assert a.loss_weights == {"emotion": 1.0, "gender": 0.5}
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


def test_build_model_rejects_mismatches() -> None:
    with pytest.raises(ValueError, match="waveform"):
        build_model({"arch": "audio_resnet", "heads": {"emotion": 6}, "frontend": {"kind": "mfcc"}})
    with pytest.raises(ValueError, match="features"):
        build_model({"arch": "pcnn", "heads": {"emotion": 6}, "frontend": {"kind": "waveform"}})
    with pytest.raises(ValueError, match="gender"):
        build_model({"arch": "pcnn_gender", "heads": {"emotion": 6}})
    with pytest.raises(ValueError, match="emotion"):
        build_model({"arch": "pcnn", "heads": {"gender": 2}})
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model({"arch": "resnet152", "heads": {"emotion": 6}})


def test_joint_loss_is_the_weighted_sum_of_the_parts() -> None:
    model = build_model(
        {
            "arch": "pcnn",
            "heads": {"emotion": 4, "gender": 2, "speaker": 3},
            "loss_weights": {"gender": 0.3, "speaker": 0.1},
        }
    )
    torch.manual_seed(1)
    logits = {"emotion": torch.randn(5, 4), "gender": torch.randn(5, 2), "speaker": torch.randn(5, 3)}
    targets = {
        "emotion": torch.tensor([0, 1, 2, 3, 0]),
        "gender": torch.tensor([0, 1, IGNORE, 1, 0]),
        "speaker": torch.tensor([IGNORE] * 5),
    }
    total, parts = model.loss(logits, targets)
    ce_emotion = F.cross_entropy(logits["emotion"], targets["emotion"])
    keep = targets["gender"] != IGNORE
    ce_gender = F.cross_entropy(logits["gender"][keep], targets["gender"][keep])
    assert torch.allclose(parts["emotion"], ce_emotion)
    assert torch.allclose(parts["gender"], ce_gender)
    assert float(parts["speaker"]) == 0.0
    assert torch.allclose(total, ce_emotion + 0.3 * ce_gender)
    only_emotion, _ = model.loss(logits, {"emotion": targets["emotion"]})
    assert torch.allclose(only_emotion, ce_emotion)
    smooth, _ = model.loss(logits, {"emotion": targets["emotion"]}, label_smoothing=0.1)
    assert torch.allclose(smooth, F.cross_entropy(logits["emotion"], targets["emotion"], label_smoothing=0.1))
    assert not torch.allclose(smooth, ce_emotion)


def test_an_adversarial_head_learns_its_task_and_pushes_the_backbone_the_other_way() -> None:
    config = {"arch": "pcnn", "heads": {"emotion": 4, "speaker": 3}, "loss_weights": {"speaker": 0.5}}
    torch.manual_seed(0)
    plain = build_model(config)
    torch.manual_seed(0)
    adversarial = build_model(json.loads(json.dumps({**config, "adversarial": ["speaker"]})))
    assert adversarial.adversarial == ("speaker",) and plain.adversarial == ()
    x = torch.randn(4, 300, 39)
    speaker = {"speaker": torch.tensor([0, 1, 2, 0])}
    grads = []
    for model in (plain, adversarial):
        model.train()
        torch.manual_seed(1)  # the same dropout masks
        out = model(x)
        total, _ = model.loss(out, speaker)
        total.backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    torch.manual_seed(1)
    assert torch.equal(plain.eval()(x)["speaker"], adversarial.eval()(x)["speaker"])  # forward unchanged
    head = [n for n in grads[0] if n.startswith("heads.speaker")]
    backbone = [n for n in grads[0] if n.startswith("backbone.")]
    assert head and backbone
    for name in head:  # the head still learns to tell the speakers apart
        assert torch.allclose(grads[1][name], grads[0][name])
    for name in backbone:  # the backbone learns to hide them
        assert torch.allclose(grads[1][name], -grads[0][name])
    assert any(float(grads[0][name].abs().max()) > 0 for name in backbone)
    with pytest.raises(ValueError, match="adversarial"):
        build_model({**config, "adversarial": ["emotion"]})
    with pytest.raises(ValueError, match="adversarial"):
        build_model({**config, "adversarial": ["gender"]})


def test_export_module_selects_heads_in_a_fixed_order() -> None:
    model, frontend = _model("pcnn_gender", speaker=3)
    x = _input(frontend, 0.5)
    full = model(x)
    selected = model.export_module(["speaker", "emotion"])
    assert not selected.training
    out = selected(x)
    assert isinstance(out, tuple) and len(out) == 2
    assert torch.equal(out[0], full["speaker"]) and torch.equal(out[1], full["emotion"])
    with pytest.raises(ValueError):
        model.export_module(["valence"])


@pytest.mark.parametrize("arch", ["audio_resnet", "spectrogram_resnet", "pcnn_gender"])
def test_onnx_export_handles_variable_length(arch: str) -> None:
    model, frontend = _model(arch)
    for m in model.modules():  # non-trivial batch-norm statistics, as after training
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    selector = model.export_module(["emotion"])
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            selector,
            (_input(frontend, 1.0),),
            buf,
            input_names=["input"],
            output_names=["emotion"],
            dynamic_axes={"input": {0: "batch", 1: "time"}, "emotion": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    for seconds in (0.25, 0.61, 2.0):
        x = _input(frontend, seconds)
        (got,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            (want,) = selector(x)
        np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=1e-4)


def test_stats_net_is_functionals_of_frames_and_deltas() -> None:
    from models.arch.stats_net import functionals

    model, frontend = _model("stats_net", 8, gender=2)
    assert count_parameters(model) <= 0.15e6
    x = torch.tensor([[[1.0, 2.0, 4.0]]])  # (batch, channels, frames)
    mean, std, hi, lo = functionals(x)[0]
    assert (mean.item(), hi.item(), lo.item()) == pytest.approx((7 / 3, 4.0, 1.0))
    assert std.item() == pytest.approx(float(np.std([1, 2, 4])), rel=1e-5)
    model.eval()
    a = _input(frontend, 2.0)
    with torch.no_grad():  # reversing time keeps mean/std/max/min; the deltas change sign
        assert not torch.allclose(model(a)["emotion"], model(torch.flip(a, dims=[1]))["emotion"])
