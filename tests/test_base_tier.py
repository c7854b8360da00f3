"""The shipped base- and small-tier models: contract, scores, and one fold re-scored against its card (corpus)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_ser import ProfileError, Recognizer, SpeakerProfile
from edge_ser.model import ASSETS, SHIPPED

TIERS = ("english-base", "chinese-base", "english-small", "chinese-small")
BASE = [name for name in TIERS if name in SHIPPED and (ASSETS / SHIPPED[name]).is_file()]
TEST_ASSETS = Path(__file__).parent / "assets"


@pytest.mark.parametrize("name", BASE)
def test_base_model_loads_and_scores_sum_to_one(name):
    rec = Recognizer(name)
    c = rec.contract
    assert c.input_kind == "waveform" and c.heads[0].name == "emotion"
    assert (ASSETS / SHIPPED[name]).stat().st_size <= 16_000_000
    t = np.arange(32000) / 16000
    clip = (0.2 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    p = rec.predict(clip, sample_rate=16000)
    assert p.label in c.heads[0].labels and abs(sum(p.scores.values()) - 1) < 1e-5
    assert rec.predict_batch([clip, clip[:20000]], sample_rate=16000)[0].scores == p.scores
    cv = c.provenance["cross_validation"]
    assert cv["folds"] == len(cv["per_fold"]) >= 4 and cv["variant"] == c.provenance["variant"]
    assert 0.0 < cv["ua_mean"] < 1.0 and all(f"{cv['variant']}_ua" in f for f in cv["per_fold"].values())


@pytest.mark.parametrize("name", BASE)
def test_base_model_adapts_to_a_speaker_profile(name):
    rec = Recognizer(name)
    e = rec.contract.embedding
    assert rec.contract.adaptation == "embedding" and e.dim == len(e.mean) >= 2 * 384
    t = np.arange(24000) / 16000
    clips = [
        (0.2 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32) for f in (150, 220)
    ]
    adapted = Recognizer(name, profile=SpeakerProfile(min_utterances=1, prior=3))
    first, second = (adapted.predict(x, sample_rate=16000) for x in clips)
    assert first.scores == rec.predict(clips[0], sample_rate=16000).scores  # nothing heard yet: the plain head
    assert (
        abs(sum(second.scores.values()) - 1) < 1e-5 and second.scores != rec.predict(clips[1], sample_rate=16000).scores
    )
    assert adapted.profile.utterances == 2 and len(adapted.profile.statistics()[0]) == e.dim
    other = [n for n in BASE if n != name]
    if other:
        with pytest.raises(ProfileError, match="different embedding space"):
            Recognizer(other[0], profile=adapted.profile)
    ev = rec.contract.provenance["adaptation_eval"]
    assert ev["folds"] == len(ev["per_fold"]) and set(ev["ua_mean"]) == {"0", "1", "5", "20"}


@pytest.mark.corpus
@pytest.mark.parametrize("name", BASE)
def test_one_fold_rescored_matches_the_card(name, datasets_dir, tmp_path):
    pytest.importorskip("onnx")
    from export.adaptation_eval import causal_ua
    from export.base_tier import PRIOR, RECIPES, with_head
    from models.data.corpora import load_corpus
    from models.data.protocols import make_folds
    from models.training.metrics import scores

    recipe = RECIPES[name]
    head = TEST_ASSETS / f"{name}-{recipe.test_fold}.head.npz"
    model = with_head(ASSETS / SHIPPED[name], head, tmp_path / "fold.onnx")
    corpus = load_corpus(recipe.dataset, datasets_dir / recipe.dataset)
    fold = next(f for f in make_folds(corpus, "default", seed=0) if f.name == recipe.test_fold)
    rec = Recognizer(model)
    labels = list(rec.contract.heads[0].labels)
    files = [str(Path(corpus.root) / corpus.utterances[i].path) for i in fold.test]
    y = [corpus.emotions.index(corpus.utterances[i].emotion) for i in fold.test]
    pred = [labels.index(p.label) for p in rec.predict_batch(files)]
    ua = 100 * scores(y, pred, len(labels))["ua"]
    provenance = Recognizer(name).contract.provenance
    card = 100 * provenance["cross_validation"]["per_fold"][recipe.test_fold]["ua"]
    assert abs(ua - card) <= 1.0, json.dumps({"rescored": ua, "card": card})
    # the adapted head: the causal protocol, profile frozen after 20 utterances of each test speaker
    adapted = 100 * causal_ua(model, [corpus.utterances[i] for i in fold.test], 0, PRIOR, (20,))["20"]
    card = 100 * provenance["adaptation_eval"]["per_fold"][recipe.test_fold]["20"]
    assert abs(adapted - card) <= 1.0, json.dumps({"rescored k=20": adapted, "card": card})


def _layer_graph(path: Path) -> Path:
    """A generated graph named like the exported encoder: per layer q/v projections and fc1/fc2, then a head."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "input"
    for name in ("q_proj", "v_proj", "fc1", "fc2"):
        w = f"{name}.w"
        inits.append(numpy_helper.from_array((rng.standard_normal((32, 32)) / 6).astype(np.float32), w))
        nodes.append(helper.make_node("MatMul", [x, w], [f"{name}.y"], name=f"/layers.0/{name}/MatMul"))
        x = f"{name}.y"
    inits.append(numpy_helper.from_array(rng.standard_normal((3, 32)).astype(np.float32), "head.weight"))
    inits.append(numpy_helper.from_array(np.zeros(3, np.float32), "head.bias"))
    nodes.append(
        helper.make_node("Gemm", [x, "head.weight", "head.bias"], ["emotion_logits"], name="/head/Gemm", transB=1)
    )
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 32])],
        [helper.make_tensor_value_info("emotion_logits", TensorProto.FLOAT, ["batch", 3])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize(
    ("variant", "quantized"),
    [
        ("int8d", {"q_proj", "v_proj", "fc1", "fc2"}),
        ("int8d-ffn", {"fc1", "fc2"}),
        ("int8d-ffnqk", {"q_proj", "fc1", "fc2"}),
    ],
)
def test_partial_int8_variants_quantize_only_their_matmuls(tmp_path, variant, quantized):
    import onnx
    import onnxruntime as ort

    from export.base_variants import make_variant

    fp32 = _layer_graph(tmp_path / "m.onnx")
    out = make_variant(fp32, variant, [], tmp_path / f"m.{variant}.onnx")
    (loop,) = [n for n in onnx.load(str(out)).graph.node if n.op_type == "Loop"]
    body = loop.attribute[0].g.node
    integer = {n.name.split("/")[2] for n in body if n.name.startswith("/layers.0/") and "Integer" in n.op_type}
    floating = {n.name.split("/")[2] for n in body if n.op_type == "MatMul" and n.name.startswith("/layers.0/")}
    assert integer == quantized and floating == {"q_proj", "v_proj", "fc1", "fc2"} - quantized
    head = [n.op_type for n in body if n.name.startswith("/head/")]
    assert head and not any("Integer" in op or "Quantize" in op for op in head)  # the head stays float
    x = np.random.default_rng(1).standard_normal((2, 32)).astype(np.float32)
    runs = [ort.InferenceSession(str(p)).run(None, {"input": x})[0] for p in (fp32, out)]
    np.testing.assert_allclose(runs[1], runs[0], atol=0.15 * np.abs(runs[0]).max())  # INT8 rounding only


@pytest.mark.parametrize("variant", ["int8d-refit", "int8d-stem-refit"])
def test_refit_variant_gets_the_head_fit_on_its_own_encoder_features(tmp_path, variant):
    import onnxruntime as ort

    from export.base_variants import REFIT, embeddings, make_variant

    fp32 = _layer_graph(tmp_path / "m.onnx")
    rng = np.random.default_rng(2)
    waves = [rng.standard_normal(32).astype(np.float32) for _ in range(3)]
    assert variant in REFIT
    x = embeddings(fp32, variant, [*waves, None])
    assert x.shape == (4, 32) and np.isnan(x[3]).all()
    exact = embeddings(fp32, "fp32", waves)
    assert 0 < np.abs(x[:3] - exact).max() < 0.15 * np.abs(exact).max()  # the INT8 encoder's own, not FP32's
    weight, bias = rng.standard_normal((3, 32)), rng.standard_normal(3)
    out = make_variant(fp32, variant, [], tmp_path / "m.refit.onnx", (weight, bias))
    session = ort.InferenceSession(str(out))
    logits = np.concatenate([session.run(None, {"input": w[None]})[0] for w in waves])
    np.testing.assert_allclose(logits, x[:3] @ weight.T + bias, rtol=1e-4, atol=1e-4)


def _stem_graph(path: Path) -> Path:
    """A generated conv stem named like the exported encoder's: two 1-D convolutions (the second strided), then a
    mean over time and a head."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    inits = [
        numpy_helper.from_array((rng.standard_normal((6, 4, 3)) / 3).astype(np.float32), "conv1.weight"),
        numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "conv1.bias"),
        numpy_helper.from_array((rng.standard_normal((6, 6, 3)) / 4).astype(np.float32), "conv2.weight"),
        numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "conv2.bias"),
        numpy_helper.from_array(rng.standard_normal((3, 6)).astype(np.float32), "head.weight"),
        numpy_helper.from_array(np.zeros(3, np.float32), "head.bias"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["c1"], name="/conv1/Conv", pads=[1, 1]),
        helper.make_node(
            "Conv", ["c1", "conv2.weight", "conv2.bias"], ["c2"], name="/conv2/Conv", pads=[1, 1], strides=[2]
        ),
        helper.make_node("ReduceMean", ["c2"], ["pooled"], name="/pool/ReduceMean", axes=[2], keepdims=0),
        helper.make_node(
            "Gemm", ["pooled", "head.weight", "head.bias"], ["emotion_logits"], name="/head/Gemm", transB=1
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4, "time"])],
        [helper.make_tensor_value_info("emotion_logits", TensorProto.FLOAT, ["batch", 3])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_conv_stem_as_im2col_matmul_is_the_same_function_and_int8d_stem_quantizes_it(tmp_path):
    import onnx
    import onnxruntime as ort

    from export.base_variants import conv_stem_as_matmul, make_variant

    fp32 = _stem_graph(tmp_path / "stem.onnx")
    rewritten = conv_stem_as_matmul(onnx.load(str(fp32)))
    assert not [n for n in rewritten.graph.node if n.op_type == "Conv"]
    assert not {"conv1.weight", "conv2.weight"} & {i.name for i in rewritten.graph.initializer}
    onnx.save(rewritten, str(tmp_path / "im2col.onnx"))
    out = make_variant(fp32, "int8d-stem", [], tmp_path / "stem.int8d-stem.onnx")
    (loop,) = [n for n in onnx.load(str(out)).graph.node if n.op_type == "Loop"]
    integer = {n.name.split("/")[1] for n in loop.attribute[0].g.node if "Integer" in n.op_type}
    assert integer == {"conv1", "conv2"}
    runs = [ort.InferenceSession(str(p)) for p in (fp32, tmp_path / "im2col.onnx", out)]
    for frames in (9, 10, 31):  # odd and even lengths: the strided taps must end where Conv's windows do
        x = np.random.default_rng(frames).standard_normal((1, 4, frames)).astype(np.float32)
        conv, im2col, int8 = (s.run(None, {"input": x})[0] for s in runs)
        np.testing.assert_allclose(im2col, conv, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(int8, conv, atol=0.15 * np.abs(conv).max())  # INT8 rounding only
