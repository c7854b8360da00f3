"""The in-graph (torch/ONNX) front-end equals the numpy one, at any length, after export."""

import numpy as np
import pytest
from conftest import voiced

from edge_ser.frontend import FrontEnd, Normalization

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from export.graph_frontend import GraphFrontEnd  # noqa: E402

FRONTENDS = [
    FrontEnd("mfcc"),
    FrontEnd("mfcc", window="hamming", n_mfcc=20, n_mels=40, append_energy=False),
    FrontEnd("logmel", n_mels=40, window="hann"),
    FrontEnd("logspec", window="hann", preemph=0.0),
]
TOLERANCE = {"mfcc": 1e-3, "logmel": 2e-3, "logspec": 5e-3}  # absolute, on log-scale features


@pytest.mark.parametrize("fe", FRONTENDS, ids=lambda f: f.kind + "-" + f.window)
def test_exported_graph_matches_numpy(fe, tmp_path):
    x = voiced(1.3)
    x[3000:4000] = 0.0
    norm = Normalization.fit([fe(x)])
    graph = GraphFrontEnd(fe, norm).eval()
    path = tmp_path / "fe.onnx"
    torch.onnx.export(
        graph,
        (torch.tensor(x)[None],),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["features"],
        dynamic_axes={"input": {0: "batch", 1: "samples"}, "features": {0: "batch", 1: "frames"}},
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (fe.frame_length - 1, fe.frame_length, fe.frame_length + 1, 8000, len(x)):
        ref = norm(fe(x[:n]))
        got = session.run(None, {"input": x[None, :n]})[0][0]
        assert got.shape == ref.shape
        scale = np.asarray(norm.std, np.float32)  # compare on the un-normalized scale
        assert np.abs((got - ref) * scale).max() < TOLERANCE[fe.kind]


def test_batch_of_equal_lengths():
    fe = FrontEnd("mfcc")
    graph = GraphFrontEnd(fe).eval()
    batch = np.stack([voiced(0.5, seed=s) for s in range(3)])
    with torch.no_grad():
        out = graph(torch.tensor(batch)).numpy()
    for row, x in zip(out, batch):
        np.testing.assert_allclose(row, fe(x), atol=1e-3)


def test_utterance_normalization_in_the_graph():
    fe, norm = FrontEnd("logmel", n_mels=40, window="hann"), Normalization("utterance")
    graph = GraphFrontEnd(fe, norm).eval()
    x = voiced(1.1)
    with torch.no_grad():
        got = graph(torch.tensor(x)[None]).numpy()[0]
    ref = norm(fe(x))
    assert abs(ref.mean(axis=0)).max() < 1e-4 and abs(ref.std(axis=0) - 1).max() < 1e-3
    np.testing.assert_allclose(got, ref, atol=2e-3 / fe(x).std(axis=0).min())
