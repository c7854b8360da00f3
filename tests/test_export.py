"""Export: checkpoint -> ONNX that the runtime runs like the torch model; INT8; waveform-in; errors."""

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from conftest import voiced  # noqa: E402
from test_train import fold_of, make_corpus, small_config  # noqa: E402

from edge_ser import ModelError, Recognizer  # noqa: E402
from edge_ser.frontend import FrontEnd  # noqa: E402
from edge_ser.model import OnnxModel, softmax  # noqa: E402
from export import parity, quantize  # noqa: E402
from export.onnx_export import export_module, make_contract, to_onnx  # noqa: E402
from export.pipeline import _load  # noqa: E402
from export.quantize import WEIGHT_OPS, candidates, quantize_int8, weight_layers  # noqa: E402
from models.training.checkpoint import load_checkpoint  # noqa: E402
from models.training.corpus_data import prepare_data  # noqa: E402
from models.training.loop import train_fold  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A P-CNN+Gender checkpoint trained for a few epochs on tones vs noise, and its corpus."""
    root = tmp_path_factory.mktemp("toy")
    corpus = make_corpus(root)
    cfg = small_config(epochs=4)
    data = prepare_data(corpus, FrontEnd(kind="mfcc", n_mels=40, n_mfcc=40), cfg, root / "cache")
    train_fold(
        data, fold_of(corpus), fold_index=0, arch="pcnn_gender", aux={"gender": 0.3}, cfg=cfg, out_dir=root / "run"
    )
    return root / "run", corpus


def signals(corpus, n=12):
    from edge_ser.audio import load_audio

    return [load_audio(Path(corpus.root) / u.path)[0] for u in corpus.utterances[:n]]


def torch_probs(model, contract, signal):
    x = torch.from_numpy(contract.model_input(signal))[None]
    with torch.no_grad():
        out = model.export_module([h.name for h in contract.heads])(x)
    return [softmax(o.numpy())[0] for o in out]


def exported_fp32(trained, tmp_path, n, waveform_in=False):
    """(contract, FP32 ONNX path, ``n`` test signals, calibration inputs of every other signal) of the trained fold."""
    checkpoint, corpus = trained
    model, config = load_checkpoint(checkpoint)
    contract = make_contract(config, ["emotion"], waveform_in=waveform_in)
    fp32 = to_onnx(export_module(model, contract), contract, tmp_path / "m.fp32.onnx")
    xs = signals(corpus, n)
    return contract, fp32, xs, [contract.model_input(x) for x in xs[::2]]


def test_export_runs_in_the_recognizer_like_torch(trained, tmp_path):
    checkpoint, corpus = trained
    model, config = load_checkpoint(checkpoint)
    contract = make_contract(config, ["emotion", "gender"], provenance={"dataset": "toy"})
    path = to_onnx(export_module(model, contract), contract, tmp_path / "m.onnx")
    rec = Recognizer(path)
    assert rec.contract == contract  # metadata round-trips
    assert [h.name for h in rec.contract.heads] == ["emotion", "gender"]
    for x in signals(corpus):
        if len(x) > rec.window_samples:
            continue  # one window: the torch reference below sees the whole clip
        p = rec.predict(x, sample_rate=16000)
        emo, gender = torch_probs(model, contract, x)
        np.testing.assert_allclose(list(p.scores.values()), emo, atol=1e-5)
        np.testing.assert_allclose(list(p.heads["gender"].scores.values()), gender, atol=1e-5)
    diff = parity.logits_diff(export_module(model, contract), path, [contract.model_input(voiced(2.0))])
    assert diff <= 1e-4


def test_int8_is_smaller_and_agrees(trained, tmp_path):
    contract, fp32, xs, calibration = exported_fp32(trained, tmp_path, 32)
    int8 = quantize_int8(fp32, tmp_path / "m.onnx", calibration, contract)
    assert int8.stat().st_size < fp32.stat().st_size
    a, b = Recognizer(fp32), Recognizer(int8)
    chosen = b.contract.provenance.pop("int8")
    assert b.contract == contract
    assert (chosen["scheme"], chosen["float_layers"]) in candidates(len(weight_layers(onnx.load(str(fp32)))))
    assert 0 <= chosen["selection_agreement"] <= 1
    fixed = Recognizer(quantize_int8(fp32, tmp_path / "f2.onnx", calibration, contract, float_layers=2))
    assert fixed.contract.provenance["int8"] == {"scheme": "static", "float_layers": 2}
    graph = onnx.load(str(tmp_path / "f2.onnx")).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    quantized = [n.name for n in graph.node if n.op_type in WEIGHT_OPS and n.input[1] in dequantized]
    layers = weight_layers(onnx.load(str(fp32)))
    assert quantized == layers[2:]  # the first two stay float, every later one is INT8
    agree = np.mean([a.predict(x, sample_rate=16000).label == b.predict(x, sample_rate=16000).label for x in xs])
    assert agree >= 0.9
    assert chosen["selected_on"] == "held-out calibration windows"
    selection = [contract.model_input(x) for x in xs[1::2]]  # windows calibration never saw
    picked = quantize_int8(fp32, tmp_path / "v.onnx", calibration, contract, selection=selection)
    choice = Recognizer(picked).contract.provenance["int8"]
    assert choice["selected_on"] == "validation"
    fp32_top1, int8_top1 = (
        [int(np.argmax(OnnxModel(f).session.run(None, {"input": x[None]})[0])) for x in selection]
        for f in (fp32, picked)
    )
    assert choice["selection_agreement"] == pytest.approx(np.mean(np.equal(fp32_top1, int8_top1)))


def test_int8_schemes_and_fallback(trained, tmp_path, monkeypatch):
    contract, fp32, xs, calibration = exported_fp32(trained, tmp_path, 24)
    selection = [contract.model_input(x) for x in xs[1::2]]
    a16 = Recognizer(quantize_int8(fp32, tmp_path / "a16.onnx", calibration, contract, scheme="a16w8"))
    assert a16.contract.provenance["int8"] == {"scheme": "a16w8", "float_layers": 0}
    graph = onnx.load(str(tmp_path / "a16.onnx")).graph
    activation_types = {
        init.data_type
        for init in graph.initializer
        for n in graph.node
        if n.op_type == "QuantizeLinear"
        if init.name == n.input[2]
    }
    assert activation_types == {onnx.TensorProto.INT16}
    assert (tmp_path / "a16.onnx").stat().st_size < fp32.stat().st_size
    fp32_rec = Recognizer(fp32)
    same = [fp32_rec.predict(x, sample_rate=16000).label == a16.predict(x, sample_rate=16000).label for x in xs]
    assert np.mean(same) >= 0.95
    monkeypatch.setattr(quantize, "TARGET_AGREEMENT", 1.01)  # nothing reaches it: every candidate is tried
    tried = []
    real = quantize.quantize_scheme

    def spy(fp32_path, out_path, calibration, scheme, keep):
        tried.append((scheme, len(keep)))
        real(fp32_path, out_path, calibration, scheme, keep)

    monkeypatch.setattr(quantize, "quantize_scheme", spy)
    best = Recognizer(quantize_int8(fp32, tmp_path / "best.onnx", calibration, contract, selection=selection))
    assert tried == candidates(len(weight_layers(onnx.load(str(fp32)))))
    assert tried[-2:] == [("dynamic", 0), ("a16w8", 0)]
    choice = best.contract.provenance["int8"]
    assert (choice["scheme"], choice["float_layers"]) in tried
    dynamic = Recognizer(quantize_int8(fp32, tmp_path / "dyn.onnx", calibration, contract, scheme="dynamic"))
    ops = {n.op_type for n in onnx.load(str(tmp_path / "dyn.onnx")).graph.node}
    assert "ConvInteger" in ops or "MatMulInteger" in ops
    assert dynamic.predict(xs[0], sample_rate=16000).label in dynamic.labels
    with pytest.raises(ValueError, match="scheme"):
        quantize_int8(fp32, tmp_path / "x.onnx", calibration, contract, scheme="int4")


def test_waveform_in_equals_feature_in(trained, tmp_path):
    checkpoint, corpus = trained
    model, config = load_checkpoint(checkpoint)
    feat = make_contract(config, ["emotion"])
    wave = make_contract(config, ["emotion"], waveform_in=True)
    assert wave.frontend_in_graph and wave.input_kind == "waveform"
    a = Recognizer(to_onnx(export_module(model, feat), feat, tmp_path / "f.onnx"))
    b = Recognizer(to_onnx(export_module(model, wave), wave, tmp_path / "w.onnx"))
    for x in signals(corpus):
        pa, pb = a.predict(x, sample_rate=16000), b.predict(x, sample_rate=16000)
        assert pa.label == pb.label
        np.testing.assert_allclose(list(pa.scores.values()), list(pb.scores.values()), atol=2e-3)


@pytest.mark.parametrize("scheme", ["static", "dynamic", "a16w8"])
def test_int8_of_waveform_in_keeps_the_frontend_float(trained, tmp_path, scheme):
    wave, fp32, xs, calibration = exported_fp32(trained, tmp_path, 16, waveform_in=True)
    out = quantize_int8(fp32, tmp_path / "w.onnx", calibration, wave, scheme=scheme)
    graph = onnx.load(str(out)).graph
    frontend = [n for n in graph.node if n.name.startswith(quantize.FRONTEND_SCOPE)]
    assert frontend  # the in-graph front-end is there...
    integer_ops = ("ConvInteger", "MatMulInteger", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")
    assert not [n.name for n in frontend if n.op_type in integer_ops]
    assert any(n.op_type in integer_ops for n in graph.node)  # the network itself is quantized
    a, b = Recognizer(fp32), Recognizer(out)
    same = [a.predict(x, sample_rate=16000).label == b.predict(x, sample_rate=16000).label for x in xs]
    assert np.mean(same) >= 0.8


def test_bad_checkpoints_give_clear_errors(trained, tmp_path):
    checkpoint, _ = trained
    with pytest.raises(ModelError, match="not a checkpoint"):
        _load(str(tmp_path))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.pt").write_bytes((checkpoint / "model.pt").read_bytes())
    config = json.loads((checkpoint / "config.json").read_text())
    config["heads"]["emotion"] = 5  # disagrees with the saved weights
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="does not fit its weights"):
        _load(str(broken))
    del config["labels"]
    config["heads"]["emotion"] = 2
    (broken / "config.json").write_text(json.dumps(config))
    model, cfg = _load(str(broken))
    with pytest.raises(ModelError, match="lacks 'labels'"):
        make_contract(cfg, ["emotion"])


@pytest.mark.parametrize(
    ("agreements", "expected", "tried"),
    [
        ({"static-1": 0.9, "static-2": 0.99}, ("static", 2), 2),  # fewest float layers reaching 98%
        ({"static-1": 0.9, "static-2": 0.9, "static-3": 0.97, "dynamic-0": 0.95, "a16w8-0": 0.96}, ("static", 3), 5),
        ({"static-1": 0.9, "static-2": 0.9, "static-3": 0.9, "dynamic-0": 0.985, "a16w8-0": 0.99}, ("a16w8", 0), 5),
        ({"static-1": 0.9, "static-2": 0.9, "static-3": 0.9, "dynamic-0": 0.99, "a16w8-0": 0.99}, ("dynamic", 0), 5),
    ],
)
def test_int8_selection_rule(trained, tmp_path, monkeypatch, agreements, expected, tried):
    import shutil

    contract, fp32, _, _ = exported_fp32(trained, tmp_path, 2)
    made = []

    def fake_quantize(fp32_path, out_path, calibration, scheme, keep):
        made.append(f"{scheme}-{len(keep)}")
        shutil.copyfile(fp32_path, out_path)

    def fake_top1(path, inputs):  # FP32 predicts class 0 on 200 inputs; a trial agrees on its share
        share = 1.0 if Path(path) == fp32 else agreements[Path(path).stem]
        return (np.arange(200) >= round(share * 200)).astype(int)

    monkeypatch.setattr(quantize, "quantize_scheme", fake_quantize)
    monkeypatch.setattr(quantize, "top1", fake_top1)
    selection = [np.zeros((10, 41), np.float32)]
    out = quantize_int8(fp32, tmp_path / "q.onnx", selection, contract, selection=selection)
    choice = Recognizer(out).contract.provenance["int8"]
    assert (choice["scheme"], choice["float_layers"]) == expected and len(made) == tried
    assert choice["selection_agreement"] == pytest.approx(agreements[f"{expected[0]}-{expected[1]}"])


def test_int8_selection_audio_adds_perturbed_copies(trained, tmp_path):
    import soundfile as sf

    from export.pipeline import _selection_inputs

    checkpoint, _ = trained
    contract = make_contract(load_checkpoint(checkpoint)[1], ["emotion"])
    path = tmp_path / "a.wav"
    clip = voiced(0.6 * contract.window_seconds)  # one window, also at 0.85x speed
    sf.write(path, clip, 16000, subtype="FLOAT")
    utterance = type("Utterance", (), {"path": path})
    inputs = _selection_inputs(contract, [utterance, utterance])
    assert len(inputs) == 8  # one window for each of (original, 0.85x, 1.15x, noisy), twice
    assert inputs[0].shape != inputs[1].shape  # 0.85x speed is longer, so more frames
    np.testing.assert_allclose(inputs[0], contract.model_input(clip), atol=1e-5)
    assert not np.allclose(inputs[3], inputs[0])  # the noisy copy differs


def test_int8_files_back_to_float_keep_the_weights(trained, tmp_path):
    """A dynamic-INT8 or static-QDQ file becomes the FP32 graph of its own INT8 weights: no integer or
    (de)quantize node left, and it predicts what FP32 does (its weights rounded to INT8 only)."""
    from export.quantize import quantize_dynamic_int8, quantize_static_qdq, to_float

    contract, fp32, xs, calibration = exported_fp32(trained, tmp_path, 16)
    dynamic, qdq = tmp_path / "d.onnx", tmp_path / "q.onnx"
    quantize_dynamic_int8(fp32, dynamic)
    quantize_static_qdq(fp32, qdq, calibration, keep=())
    reference = OnnxModel(fp32)
    for source in (dynamic, qdq):
        back = tmp_path / f"{source.stem}.float.onnx"
        onnx.save(to_float(onnx.load(str(source))), str(back))
        ops = {n.op_type for n in onnx.load(str(back)).graph.node}
        assert not ops & {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear"}
        model = OnnxModel(back)
        inputs = [contract.model_input(x) for x in xs]
        ours = np.array([model.run(x[None])["emotion"][0] for x in inputs])
        want = np.array([reference.run(x[None])["emotion"][0] for x in inputs])
        assert np.abs(ours - want).max() < 0.05  # INT8 weight rounding only; an activation range would be far off


def test_export_rule_picks_the_fastest_accurate_variant(trained, tmp_path, monkeypatch):
    """Every variant is built and measured; the default is the fastest within half a UA point of FP32, and an
    INT8 file slower than FP32 is never the default."""
    contract, fp32, xs, calibration = exported_fp32(trained, tmp_path, 16)
    evaluation = [contract.model_input(x) for x in xs]
    labels = [int(np.argmax(OnnxModel(fp32).run(x[None])["emotion"])) for x in evaluation]  # FP32 UA 1.0
    chosen, table = quantize.choose_variant(fp32, calibration, tmp_path / "v", evaluation, labels, runs=5)
    assert [v.name for v in table] == list(quantize.VARIANTS)
    assert all(v.size_bytes > 0 and v.latency_ms > 0 and 0 <= v.agreement <= 1 for v in table)
    fp32_row = table[0]
    assert fp32_row.agreement == 1.0 and fp32_row.ua == 1.0
    qualifying = [v for v in table if v.ua >= fp32_row.ua - quantize.UA_TOLERANCE]
    assert chosen is min(qualifying, key=lambda v: v.latency_ms)
    assert chosen.latency_ms <= fp32_row.latency_ms
    slow = {v: 1.0 for v in quantize.VARIANTS} | {"fp32": 0.5}  # every INT8 variant slower: FP32 wins
    monkeypatch.setattr(quantize, "measure_latency", lambda paths, probe, runs: [slow[p.stem] for p in paths])
    chosen, _ = quantize.choose_variant(fp32, calibration, tmp_path / "w", evaluation, labels, runs=5)
    assert chosen.name == "fp32"
    rows = quantize.variant_table(table, table[0])
    assert len(rows) == 2 + len(table) and "(default)" in rows[2]


def test_export_api_returns_what_the_command_prints(trained, tmp_path, capsys):
    """``export.export`` is ``edge-ser export`` as a function: the CLI prints its report as JSON."""
    import argparse

    from export import ExportConfig, ExportReport, cli, export

    checkpoint, _ = trained
    report = export(ExportConfig(checkpoint, tmp_path / "api.onnx", keep_aux=(), name="api"))
    assert isinstance(report, ExportReport) and report.model == tmp_path / "api.onnx" and report.card.is_file()
    contract = Recognizer(report.model).contract
    assert contract.name == "api" and [h.name for h in contract.heads] == ["emotion", "gender"]
    assert report.parity["torch_vs_onnx_fp32_max_abs_logit_diff"] < 1e-3
    parser = argparse.ArgumentParser()
    cli.configure_parser(parser)
    assert cli.run(parser.parse_args([str(checkpoint), "--out", str(tmp_path / "cli.onnx"), "--keep-aux"])) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"] == str(tmp_path / "cli.onnx") and set(printed) == set(report.to_dict())
    assert set(printed["parity"]) == set(report.parity)
    with pytest.raises(ModelError, match="not a checkpoint"):
        export(ExportConfig(tmp_path, tmp_path / "none.onnx"))


def test_card_names_every_extra_corpus_with_its_terms() -> None:
    from export.model_card import extra_corpora_lines

    lines = extra_corpora_lines({"training": {"extra_corpora": ["ravdess", "emodb"]}})
    assert len(lines) == 2 and "ravdess" in lines[0] and "CC BY-NC-SA" in lines[0] and "Emo-DB" in lines[1]
    assert extra_corpora_lines({"training": {}}) == [] == extra_corpora_lines(None)


def test_card_shows_where_each_folds_errors_go() -> None:
    """The card's error section reads the run report's confusion matrices: a speaker whose utterances all went to one
    class shows that class and its share, and the class recognized worst."""
    from export.model_card import error_lines

    def fold(confusion):
        return {"test": {"emotion": {"ua": 0.5, "confusion": confusion}}}

    report = {
        "folds": {"spk1": fold([[2, 0, 0], [3, 0, 1], [4, 0, 0]]), "spk2": fold([[4, 0, 0], [0, 4, 0], [0, 0, 4]])}
    }
    lines = error_lines(report, ("a", "b", "c"))
    rows = {line.split(" | ")[0][2:]: line for line in lines if line.startswith("| spk")}
    assert rows["spk1"] == "| spk1 | a | 90 % | 20 % | b | 0 % |"  # 9 of 10 given a; b never recognized
    assert rows["spk2"].startswith("| spk2 | a | 33 % | 33 % |") and rows["spk2"].endswith("| 100 % |")
    assert "| c | 4 | 0 | 4 |" in lines  # summed over the folds
    assert error_lines({"folds": {"spk1": {"test": {"emotion": {"ua": 0.5}}}}}, ("a", "b", "c")) == []
    assert error_lines(report, ("a", "b")) == [] == error_lines(None, ("a",))


def _relu_graph() -> onnx.ModelProto:
    """A graph with Relu nodes where a QDQ file's FP32 graph has them: some on values that cannot be negative."""
    from onnx import TensorProto, helper, numpy_helper

    def node(op, inputs, output, **kw):
        return helper.make_node(op, inputs, [output], **kw)

    nodes = [
        node("Relu", ["x"], "r1"),
        node("Relu", ["r1"], "r2"),  # after a Relu: dropped
        node("Transpose", ["r2"], "t", perm=[1, 0]),
        node("Relu", ["t"], "r3"),  # after a transpose of non-negative values: dropped
        node("Softmax", ["x"], "s", axis=1),
        node("Relu", ["s"], "r4"),  # after a softmax: dropped
        node("Mul", ["r4", "half"], "m"),
        node("Relu", ["m"], "r5"),  # non-negative times a non-negative constant: dropped
        node("Mul", ["r4", "minus"], "n"),
        node("Relu", ["n"], "r6"),  # times a negative constant: kept
        node("Add", ["r5", "x"], "a"),
        node("Relu", ["a"], "r7"),  # x may be negative: kept
        node("Relu", ["r3"], "y"),  # a graph output: kept, so that the output keeps its name
        node("Add", ["r6", "r7"], "z"),
    ]
    inits = [numpy_helper.from_array(np.float32(v).reshape(1), n) for n, v in (("half", 0.5), ("minus", -1.0))]
    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [3, 3])  # noqa: E731
    graph = helper.make_graph(nodes, "g", [value("x")], [value("y"), value("z")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _run_relu_graph(model: onnx.ModelProto) -> list[np.ndarray]:
    import onnxruntime as ort

    x = np.linspace(-2, 2, 9, dtype=np.float32).reshape(3, 3)
    return ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})


def test_relus_on_values_that_cannot_be_negative_are_dropped():
    """The FP32 graph of a QDQ file carries a Relu for every quantized range that starts at zero, some of them
    on values that are already non-negative; those go, the others stay, and every output is unchanged."""
    from export.quantize import drop_redundant_relus

    model = _relu_graph()
    pruned = drop_redundant_relus(model)
    onnx.checker.check_model(pruned)
    relus = [n.output[0] for n in pruned.graph.node if n.op_type == "Relu"]
    assert relus == ["r1", "r6", "r7", "y"]
    for before, after in zip(_run_relu_graph(model), _run_relu_graph(pruned)):
        np.testing.assert_array_equal(before, after)


def test_drop_relus_rewrites_files_in_place_and_keeps_their_metadata(tmp_path, capsys):
    from export import drop_relus

    model = _relu_graph()
    onnx.helper.set_model_props(model, {"edge_ser.contract": '{"kept": true}'})
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert drop_relus.main([str(path)]) == 0
    assert "8 Relu node(s), 4 after" in capsys.readouterr().out
    rewritten = onnx.load(str(path))
    assert sum(n.op_type == "Relu" for n in rewritten.graph.node) == 4
    assert {p.key: p.value for p in rewritten.metadata_props} == {"edge_ser.contract": '{"kept": true}'}
    for before, after in zip(_run_relu_graph(model), _run_relu_graph(rewritten)):
        np.testing.assert_array_equal(before, after)
    data = path.read_bytes()
    assert drop_relus.main([str(path)]) == 0 and path.read_bytes() == data  # nothing left to drop


def test_shipped_fp32_of_int8_graphs_carry_no_redundant_relus():
    """The shipped FP32-of-INT8 files were rewritten by ``python -m export.drop_relus``: nothing is left to drop."""
    import edge_ser
    from export.quantize import drop_redundant_relus

    for name in ("english", "chinese"):
        model = onnx.load(str(Path(edge_ser.__file__).parent / "assets" / f"{name}.onnx"))
        count = lambda m: sum(n.op_type == "Relu" for n in m.graph.node)  # noqa: E731
        assert count(model) > 0 and count(drop_redundant_relus(model)) == count(model)


def test_unsigned_weights_give_the_exact_integer_products_inside_a_loop_too():
    """INT8 MatMulInteger weights stored as UINT8 + 128: the exact integer products, even for inputs where a
    saturating UINT8 x INT8 kernel (x86 with AVX2, no VNNI) would be off, and the same as the INT8 graph where
    no kernel saturates; a Loop body's nodes are converted too."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from export.quantize import unsigned_weights

    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, size=(16, 4)).astype(np.int8)
    w[:, 0] = -128  # with 255s in the input, pairs of products reach -65280: beyond a 16-bit lane
    w_zero = np.array([0, 1, -2, 3], np.int8)
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(w_zero, "w_zero"),
        numpy_helper.from_array(np.uint8(0), "a_zero"),
        numpy_helper.from_array(np.int64(1), "trips"),
        numpy_helper.from_array(np.bool_(True), "go"),
    ]
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("MatMulInteger", ["a", "w", "a_zero", "w_zero"], ["y_in"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("y_in", TensorProto.INT32, [3, 4]),
        ],
    )
    graph = helper.make_graph(
        [
            helper.make_node("MatMulInteger", ["a", "w", "a_zero", "w_zero"], ["y"]),
            helper.make_node("Loop", ["trips", "go"], ["y_loop"], body=body),
        ],
        "g",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [3, 16])],
        [
            helper.make_tensor_value_info("y", TensorProto.INT32, [3, 4]),
            helper.make_tensor_value_info("y_loop", TensorProto.INT32, [1, 3, 4]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    converted, changed = unsigned_weights(model)
    onnx.checker.check_model(converted)
    assert changed == 2
    weights = {t.name: t.data_type for t in converted.graph.initializer}
    assert TensorProto.INT8 not in weights.values() and weights["w_u8"] == TensorProto.UINT8

    def run(m, a):
        return ort.InferenceSession(m.SerializeToString()).run(None, {"a": a})

    exact = lambda a: a.astype(np.int64) @ (w.astype(np.int64) - w_zero)  # noqa: E731
    loud = np.full((3, 16), 255, np.uint8)
    for y in run(converted, loud):
        np.testing.assert_array_equal(y.reshape(3, 4), exact(loud))
    quiet = rng.integers(0, 128, size=(3, 16)).astype(np.uint8)  # no 16-bit pair sum overflows: every kernel exact
    for before, after in zip(run(model, quiet), run(converted, quiet)):
        np.testing.assert_array_equal(before, after)
        np.testing.assert_array_equal(after.reshape(3, 4), exact(quiet))
