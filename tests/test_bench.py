"""``edge-ser bench`` and its MAC counter: hand-computed MACs, output formats, fields, memory, exit codes."""

import contextlib
import csv
import io
import json
from collections import Counter

import numpy as np
import onnx
import pytest
import soundfile as sf
from conftest import voiced
from onnx import TensorProto, helper, numpy_helper

import edge_ser
from edge_ser import Recognizer, bench
from edge_ser.cli import main
from edge_ser.macs import macs_per_second
from edge_ser.model import OnnxModel, resolve, shipped_models

FAST = ["--runs", "20", "--warmup", "3", "--seconds", "1"]


def graph_model(nodes, inputs, output, weights) -> onnx.ModelProto:
    """A one-output ONNX model from nodes, ``(name, shape)`` inputs and numpy initializers."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(w), name) for name, w in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime reads
    return model


def count_macs(model: onnx.ModelProto, shapes: dict, tmp_path_factory=None) -> int:
    """MACs ONNX Runtime counts for ``model`` run on zeros of ``shapes``."""
    import tempfile

    from edge_ser.macs import count_macs as count

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/m.onnx"
        onnx.save(model, path)
        return count(path, {name: np.zeros(shape, np.float32) for name, shape in shapes.items()})


def test_conv1d_macs():
    w = np.ones((4, 1, 3), np.float32)
    model = graph_model([helper.make_node("Conv", ["x", "w"], ["y"])], [("x", ["batch", 1, "t"])], "y", {"w": w})
    assert count_macs(model, {"x": [1, 1, 10]}) == 4 * 8 * 1 * 3  # length 10, kernel 3 -> 8 outputs
    assert count_macs(model, {"x": [2, 1, 10]}) == 2 * 96


def test_conv2d_grouped_macs():
    w = np.ones((6, 2, 3, 3), np.float32)  # C_in 4 in 2 groups -> 2 input channels per output channel
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=2, pads=[1, 1, 1, 1])
    model = graph_model([node], [("x", [1, 4, 8, 8])], "y", {"w": w})
    assert count_macs(model, {"x": [1, 4, 8, 8]}) == (6 * 8 * 8) * 2 * 3 * 3


def matmul_model(a_shape) -> onnx.ModelProto:
    """``a @ b`` with ``b`` a 7x3 weight."""
    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    return graph_model([node], [("a", a_shape)], "y", {"b": np.ones((7, 3), np.float32)})


def test_linear_macs():
    assert count_macs(matmul_model([5, 7]), {"a": [5, 7]}) == 5 * 7 * 3
    assert count_macs(matmul_model(["batch", 5, 7]), {"a": [2, 5, 7]}) == 2 * 105
    gemm = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transA=1)
    weights = {"b": np.ones((7, 3), np.float32), "c": np.zeros(3, np.float32)}
    assert count_macs(graph_model([gemm], [("a", [7, 5])], "y", weights), {"a": [7, 5]}) == 105


def test_qdq_conv_counts_like_fp32_and_elementwise_is_ignored():
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "scale", "zero"], ["w"]),
        helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "scale", "zero"], ["xd"]),
        helper.make_node("Conv", ["xd", "w"], ["c"]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Add", ["r", "r"], ["y"]),
    ]
    weights = {"wq": np.ones((4, 1, 3), np.int8), "scale": np.float32(0.1), "zero": np.int8(0)}
    nodes[1].input[:] = ["x", "scale", "zero"]
    model = graph_model(nodes, [("x", [1, 1, "t"])], "y", weights)
    assert count_macs(model, {"x": [1, 1, 10]}) == 96


def test_shapes_static_inference_cannot_resolve_come_from_a_run():
    # pad the end by ceil(length / 4) samples, computed in float: onnx's data propagation stops at Ceil
    nodes = [
        helper.make_node("Shape", ["x"], ["length"], start=2),
        helper.make_node("Cast", ["length"], ["length_f"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["length_f", "four"], ["quarter"]),
        helper.make_node("Ceil", ["quarter"], ["extra_f"]),
        helper.make_node("Cast", ["extra_f"], ["extra"], to=TensorProto.INT64),
        helper.make_node("Concat", ["zeros", "extra"], ["pads"], axis=0),
        helper.make_node("Pad", ["x", "pads"], ["padded"]),
        helper.make_node("Conv", ["padded", "w"], ["y"]),
    ]
    weights = {"four": np.float32([4]), "zeros": np.zeros(5, np.int64), "w": np.ones((4, 1, 3), np.float32)}
    model = graph_model(nodes, [("x", [1, 1, "t"])], "y", weights)
    assert count_macs(model, {"x": [1, 1, 10]}) == 4 * (10 + 3 - 2) * 3


def test_macs_per_second_of_tiny_models(tiny_model, waveform_model):
    # feature model: mean over frames, then 13x4 and 13x2 heads, on each of the 3 windows
    # (1 s every 0.5 s) that cover 2 s of audio; waveform model: a 2x2 head, one window
    assert macs_per_second(tiny_model, OnnxModel(tiny_model).contract, 2.0) == 3 * (13 * 4 + 13 * 2) / 2
    assert macs_per_second(waveform_model, OnnxModel(waveform_model).contract, 1.0) == 2 * 2


def _bench(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["bench", *argv])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def report(tiny_model, waveform_model):
    code, out = _bench([str(tiny_model), str(waveform_model), "--json", "--no-progress", *FAST])
    assert code == 0
    return json.loads(out)


def test_json_fields_and_sane_figures(report, tiny_model, waveform_model):
    assert [r["path"] for r in report] == [str(tiny_model), str(waveform_model)]
    for r, path in zip(report, (tiny_model, waveform_model)):
        assert r["parameters"] == OnnxModel(path).contract.parameters
        assert r["macs_per_second"] > 0
        assert r["size_bytes"] == path.stat().st_size
        for part in ("frontend", "inference", "total"):
            for clock in ("latency_ms", "cpu_ms"):
                p = r[clock][part]
                assert 0 <= p["p50"] <= p["p90"] <= p["p99"]
        assert r["rtf"] > 0 and r["rtf"] == pytest.approx(r["latency_ms"]["total"]["p50"] / 1e3)
        assert r["cold_start_ms"] > r["in_process_ms"] > 0 and r["peak_rss_mb"] > 10
        assert r["runs"] == 20 and r["seconds"] == 1.0 and r["accuracy"] is None
        assert r["cpu"] == bench.cpu_description()


@pytest.fixture
def no_subprocess(monkeypatch):
    """The fresh-process figures stubbed out, for tests about formats only."""
    figures = {"cold_start_ms": 1.0, "in_process_ms": 0.5, "peak_rss_mb": 2.0}
    monkeypatch.setattr(bench, "fresh_process", lambda *a: figures)


def test_csv_and_markdown_one_row_per_model(tiny_model, waveform_model, no_subprocess):
    models = [str(tiny_model), str(waveform_model)]
    code, out = _bench([*models, "--csv", "--runs", "2", "--warmup", "0", "--seconds", "1"])
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["path"] for r in rows] == models
    assert {"macs_per_second", "frontend_p50_ms", "total_p99_ms", "rtf", "cold_start_ms", "ua"} <= set(rows[0])
    code, out = _bench([*models, "--runs", "2", "--warmup", "0", "--seconds", "1"])
    assert code == 0
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 2 and table[2].startswith(f"| {tiny_model.name} |")
    assert f"warm-up; {bench.cpu_description()}, " in out  # the figures name the CPU they came from


ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx avx2 fma bmi2

processor\t: 1
model name\t: something else
"""
ZEN4 = ZEN3.replace("model\t\t: 1", "model\t\t: 17").replace("bmi2", "bmi2 avx512f avx512_vnni")
ARM = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes asimddp sve
CPU implementer\t: 0x41
CPU part\t: 0xd40
"""


def test_cpu_description_tells_apart_cpus_sold_under_one_name():
    assert bench.cpu_description(ZEN3) == "AMD EPYC (family 25 model 1; AVX2, no AVX-512, no AVX-512 VNNI, no AVX-VNNI)"
    assert bench.cpu_description(ZEN4) == "AMD EPYC (family 25 model 17; AVX2, AVX-512, AVX-512 VNNI, no AVX-VNNI)"
    arm = bench.cpu_description(ARM)
    assert arm.endswith("(implementer 0x41 part 0xd40; dot product, no I8MM, SVE)")
    assert bench.cpu_description("") == bench.cpu_description("no colon here\n")  # no cpuinfo: the platform's name


def test_accuracy_on_a_csv_corpus(tiny_model, tmp_path, no_subprocess):
    rows = ["path,emotion"]
    for i, label in enumerate(["angry", "happy", "sad", "neutral", "angry", "bored"]):
        sf.write(tmp_path / f"{i}.wav", voiced(0.6, seed=i), 16000)
        rows.append(f"{i}.wav,{label}")
    sf.write(tmp_path / "quiet.wav", np.zeros(8000, np.float32), 16000)
    rows.append("quiet.wav,sad")
    (tmp_path / "corpus.csv").write_text("\n".join(rows) + "\n")
    argv = [str(tiny_model), "--json", "--runs", "1", "--warmup", "0", "--seconds", "1"]
    code, out = _bench([*argv, "--data", str(tmp_path / "corpus.csv"), "--dataset", "csv"])
    assert code == 0
    acc = json.loads(out)[0]["accuracy"]
    assert (acc["scored"], acc["failed"], acc["excluded"]) == (5, 1, 1)  # silent file fails, "bored" is excluded
    rec = Recognizer(tiny_model)
    truth = ["angry", "happy", "sad", "neutral", "angry"]
    hits = sum(rec.predict(str(tmp_path / f"{i}.wav")).label == t for i, t in enumerate(truth))
    assert acc["wa"] == pytest.approx(hits / 5) and 0 <= acc["ua"] <= 1


def test_fresh_processes_cap_numpy_threads_and_use_this_edge_ser(monkeypatch):
    """The child imports this edge_ser with numpy's threads capped, and keeps Python's bytecode cache on as an
    installed predict process does, whatever the caller's ``PYTHONDONTWRITEBYTECODE``."""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    code = (
        "import json, os, sys, edge_ser as e; "
        "print(json.dumps({'n': os.environ['OMP_NUM_THREADS'], 'at': e.__file__, 'nopyc': sys.dont_write_bytecode}))"
    )
    out, _ = bench.in_fresh_process(code, ["unused"], threads=1)
    assert out == {"n": "1", "at": edge_ser.__file__, "nopyc": False}


def test_peak_memory_is_the_childs_own(tiny_model):
    """A parent holding 400 MiB starts the measured child: the child reports its own peak, not the parent's
    (``ru_maxrss`` of a forked and exec'd child starts from the parent's size on Linux)."""
    held = np.ones(400 * 2**20 // 8)  # touched: resident in this process
    child = bench.fresh_process(str(tiny_model), 1, 1.0, 16000, repeats=1)
    assert held.sum() > 0
    assert 10 < child["peak_rss_mb"] < 300
    assert child["cold_start_ms"] > child["in_process_ms"] > 0
    assert 0 < child["cold_start_cpu_ms"] < 60_000


def test_bad_model_path_exits_2_with_one_line(tmp_path, capsys):
    assert main(["bench", str(tmp_path / "none.onnx"), *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edge-ser: error: ") and "not found" in err[0]


def test_data_needs_dataset(tiny_model, tmp_path, capsys):
    assert main(["bench", str(tiny_model), "--data", str(tmp_path), *FAST]) == 2
    assert capsys.readouterr().err.strip() == "edge-ser: error: --data and --dataset go together"


def test_no_model_means_the_shipped_default(capsys):
    if "default" not in shipped_models():
        assert main(["bench", *FAST]) == 2
        assert "shipped model 'english' is missing from the installation" in capsys.readouterr().err
        return
    assert main(["bench", *FAST, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["path"] == str(resolve("default")) and row["parameters"] == Recognizer().contract.parameters


def test_bench_runs_without_the_training_side(tiny_model):
    """What a runtime-only install has: `edge-ser bench --json` with torch, onnx, scipy and the training-side
    packages unimportable (CI also runs it in a fresh `pip install .` venv)."""
    import subprocess
    import sys

    code = (
        "import sys, json\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'onnx', 'scipy', 'models', 'export', 'benchmarks'):\n"
        "            raise ImportError(f'{name} is not installed')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from edge_ser.cli import main\n"
        f"sys.exit(main(['bench', {str(tiny_model)!r}, '--json', '--runs', '3', '--warmup', '1', '--fresh', '1']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    assert row["macs_per_second"] > 0 and row["peak_rss_mb"] > 0 and row["cold_start_ms"] > 0


def test_fresh_processes_import_this_edge_ser_from_any_working_directory(tmp_path, monkeypatch):
    """``python -c`` puts the working directory first on sys.path; bench's child must still measure this
    edge_ser, not one that happens to sit in the directory bench runs from."""
    (tmp_path / "edge_ser").mkdir()
    (tmp_path / "edge_ser" / "__init__.py").write_text("raise ImportError('the impostor was imported')\n")
    monkeypatch.chdir(tmp_path)
    code = "import json, edge_ser\nprint(json.dumps({'file': edge_ser.__file__}))"
    result, _ = bench.in_fresh_process(code, [], threads=1)
    assert result["file"] == edge_ser.__file__


def test_models_take_turns_in_shuffled_orders():
    rounds = bench.turns(4, 400)
    assert all(sorted(r) == [0, 1, 2, 3] for r in rounds)
    calls = [k for r in rounds for k in r]
    follows = Counter(zip(calls, calls[1:]))
    for before in range(4):  # 1,599 successions: ~125 for each pair of two models, ~25 of one model after itself
        for after in range(4):
            assert follows[before, after] < 50 if before == after else 75 < follows[before, after] < 175
