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
from export import parity  # noqa: E402
from export.cli import _load  # noqa: E402
from export.onnx_export import export_module, make_contract, to_onnx  # noqa: E402
from export.quantize import WEIGHT_OPS, quantize_int8, weight_layers  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from models.train import prepare_data, train_fold  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A P-CNN+Gender checkpoint trained for a few epochs on tones vs noise, and its corpus."""
    root = tmp_path_factory.mktemp("toy")
    corpus = make_corpus(root)
    cfg = small_config(epochs=4)
    data = prepare_data(corpus, FrontEnd(kind="mfcc", n_mels=40, n_mfcc=40), cfg, root / "cache")
    train_fold(data, fold_of(corpus), 0, "pcnn_gender", {"gender": 0.3}, cfg, root / "run")
    return root / "run", corpus


def signals(corpus, n=12):
    from edge_ser.audio import load_audio

    return [load_audio(Path(corpus.root) / u.path)[0] for u in corpus.utterances[:n]]


def torch_probs(model, contract, signal):
    x = torch.from_numpy(contract.model_input(signal))[None]
    with torch.no_grad():
        out = model.export_module([h.name for h in contract.heads])(x)
    return [softmax(o.numpy())[0] for o in out]


def test_export_runs_in_the_recognizer_like_torch(trained, tmp_path):
    checkpoint, corpus = trained
    model, config = load_checkpoint(checkpoint)
    contract = make_contract(config, ["emotion", "gender"], provenance={"dataset": "toy"})
    path = to_onnx(export_module(model, contract), contract, tmp_path / "m.onnx")
    rec = Recognizer(path)
    assert rec.contract == contract  # metadata round-trips
    assert [h.name for h in rec.contract.heads] == ["emotion", "gender"]
    for x in signals(corpus):
        if len(x) > rec._window:
            continue  # one window: the torch reference below sees the whole clip
        p = rec.predict(x, sample_rate=16000)
        emo, gender = torch_probs(model, contract, x)
        np.testing.assert_allclose(list(p.scores.values()), emo, atol=1e-5)
        np.testing.assert_allclose(list(p.heads["gender"].scores.values()), gender, atol=1e-5)
    diff = parity.logits_diff(export_module(model, contract), path, [contract.model_input(voiced(2.0))])
    assert diff <= 1e-4


def test_int8_is_smaller_and_agrees(trained, tmp_path):
    checkpoint, corpus = trained
    model, config = load_checkpoint(checkpoint)
    contract = make_contract(config, ["emotion"])
    fp32 = to_onnx(export_module(model, contract), contract, tmp_path / "m.fp32.onnx")
    xs = signals(corpus, 32)
    calibration = [contract.model_input(x) for x in xs[::2]]
    int8 = quantize_int8(fp32, tmp_path / "m.onnx", calibration, contract)
    assert int8.stat().st_size < fp32.stat().st_size
    a, b = Recognizer(fp32), Recognizer(int8)
    chosen = b.contract.provenance.pop("int8")
    assert b.contract == contract
    assert 1 <= chosen["float_layers"] <= 3 and 0 <= chosen["calibration_agreement"] <= 1
    fixed = Recognizer(quantize_int8(fp32, tmp_path / "f2.onnx", calibration, contract, float_layers=2))
    assert fixed.contract.provenance["int8"] == {"float_layers": 2}
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
    assert choice["selected_on"] == "validation" and 1 <= choice["float_layers"] <= 3
    fp32_top1, int8_top1 = (
        [int(np.argmax(OnnxModel(f).session.run(None, {"input": x[None]})[0])) for x in selection]
        for f in (fp32, picked)
    )
    assert choice["calibration_agreement"] == pytest.approx(np.mean(np.equal(fp32_top1, int8_top1)))


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
