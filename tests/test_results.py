"""benchmarks/results.py: Pareto front, and RESULTS.md + plot + JSON regenerated from a real (tiny) training run."""

import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from test_train import toy_pcnn_args  # noqa: E402

from benchmarks import results, training_results  # noqa: E402
from models import train  # noqa: E402


def test_pareto_keeps_only_undominated_points():
    points = [(10.0, 0.5), (5.0, 0.4), (20.0, 0.45), (5.0, 0.3), (30.0, 0.6), (2.0, 0.1)]
    assert results.pareto(points) == [5, 1, 0, 4]
    assert results.pareto([]) == []


def test_results_from_a_run(tmp_path: Path, monkeypatch):
    manifest, common = toy_pcnn_args(tmp_path)
    run = tmp_path / "runs" / "csv-pcnn"
    assert train.main([*common, "--protocol", "loso", "--folds", "0,1", "--out", str(run)]) == 0
    random_run = run.parent / "csv-random-pcnn"
    assert train.main([*common, "--protocol", "random", "--folds", "0", "--out", str(random_run)]) == 0
    monkeypatch.chdir(tmp_path)
    out, plot = tmp_path / "bench" / "RESULTS.md", tmp_path / "bench" / "pareto.png"
    records, work = tmp_path / "records", tmp_path / "onnx"
    common = ["--data", f"csv={manifest}", "--records", str(records), "--work", str(work)]
    argv = [*common, "--out", str(out), "--plot", str(plot), "--runs", "5"]
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    assert results.main([str(run), str(random_run), *argv]) == 0
    if cores is not None:  # timed on one core, then the caller's cores back (this test suite's)
        assert os.sched_getaffinity(0) == cores
    assert sorted(p.name for p in records.glob("*.json")) == ["csv-pcnn.json", "csv-random-pcnn.json"]
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["machine"]["cores"] >= 1 and "onnxruntime" in record["machine"]["versions"]
    fp32, int8 = [e for e in record["entries"] if e["name"] == "pcnn (csv)"]  # random split: a column, not a row
    shipped = [e for e in record["entries"] if e["name"].endswith("(shipped)")]
    assert len(record["entries"]) == 2 + len(shipped)
    assert (fp32["precision"], int8["precision"]) == ("fp32", "int8")
    assert fp32["ua"]["n"] == 2 and 0.0 <= fp32["ua"]["mean"] <= 1.0
    assert int8["bench"]["size_bytes"] < fp32["bench"]["size_bytes"]
    assert fp32["timed_graph"] == "fold checkpoint"
    lat = fp32["bench"]["latency_ms"]["total"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
    report = json.loads((run / "report.json").read_text())
    torch_ua = {name: fold["test"]["emotion"]["ua"] for name, fold in report["folds"].items()}
    assert fp32["ua_per_fold"] == pytest.approx(torch_ua, abs=1e-6)  # ONNX scores the folds as training did
    assert fp32["random_split_ua"] == json.loads((random_run / "report.json").read_text())["summary"]["ua_mean"]
    onnx_dir = work / "csv-pcnn"
    before = {f: f.stat().st_mtime_ns for f in onnx_dir.glob("*.onnx")}
    assert len(before) == 4 and results.main([str(run), *argv, "--reuse", "--record-only"]) == 0
    assert {f: f.stat().st_mtime_ns for f in onnx_dir.glob("*.onnx")} == before  # nothing re-exported
    # A fold re-trained under the same run name is exported again, never scored from the old files.
    import torch

    fold = sorted(json.loads((run / "report.json").read_text())["folds"])[0]
    original = (run / fold / "model.pt").read_bytes()
    weights = torch.load(run / fold / "model.pt", weights_only=True)
    first = next(k for k, v in weights.items() if v.is_floating_point())
    weights[first] = weights[first] + 0.5
    torch.save(weights, run / fold / "model.pt")
    assert results.main([str(run), *argv, "--reuse", "--record-only"]) == 0
    after = {f: f.stat().st_mtime_ns for f in onnx_dir.glob("*.onnx")}
    assert {f.name for f in after if after[f] != before[f]} == {f"{fold}.onnx", f"{fold}.fp32.onnx"}
    (run / fold / "model.pt").write_bytes(original)
    assert results.main([str(run), *argv, "--reuse", "--record-only"]) == 0
    text = out.read_text()
    assert "| pcnn (csv) | FP32 |" in text and "| pcnn (csv) | INT8 |" in text and "cores" in text
    assert "hardware is not stated" in text and "pareto.png" in text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A later session: the run directory and its exports are gone, the record is enough.
    shutil.rmtree(run)
    shutil.rmtree(work)
    assert results.main(argv) == 0
    again = [e for e in json.loads(out.with_suffix(".json").read_text())["entries"] if e["name"] == "pcnn (csv)"]
    assert [e["ua"] for e in again] == [fp32["ua"], int8["ua"]]
    assert again[0]["timed_graph"] == "same graph, re-initialised weights"
    assert again[1]["bench"]["parameters"] == int8["bench"]["parameters"]
    assert again[1]["bench"]["macs_per_second"] == int8["bench"]["macs_per_second"]
    # A seed reproduction trained to convergence on the random split replaces the 12-epoch record's column.
    converged = tmp_path / "reproductions.json"
    unfinished = {"arch": "pcnn", "dataset": "csv", "finished": False}
    converged.write_text(
        json.dumps({"pcnn": unfinished, "other": {**unfinished, "arch": "x", "finished": True, "test_ua": 50.0}})
    )
    assert results.main([*argv, "--reproductions", str(converged)]) == 0
    fp32_again = next(
        e for e in json.loads(out.with_suffix(".json").read_text())["entries"] if e["name"] == "pcnn (csv)"
    )
    assert fp32_again["random_split_ua"] == fp32["random_split_ua"]  # nothing finished for pcnn: the record's
    converged.write_text(json.dumps({"pcnn": {**unfinished, "finished": True, "test_ua": 61.0}}))
    assert results.main([*argv, "--reproductions", str(converged)]) == 0
    fp32_again = next(
        e for e in json.loads(out.with_suffix(".json").read_text())["entries"] if e["name"] == "pcnn (csv)"
    )
    assert fp32_again["random_split_ua"] == pytest.approx(0.61) and "| 61.0 |" in out.read_text()


def test_training_table_reads_records(tmp_path: Path):
    report = {
        "arch": "pcnn",
        "dataset": "casia",
        "corpus": {"name": "casia"},
        "protocol": "loso",
        "training": {"epochs": 3},
        "summary": {"ua_mean": 0.5, "ua_std": 0.1, "wa_mean": 0.4, "wa_std": 0.05},
        "folds": {"a": {"test": {"emotion": {"ua": 0.4}}}, "b": {"test": {"emotion": {"ua": 0.6}}}},
        "command": "edge-ser train ...",
    }
    path = tmp_path / "casia-pcnn.json"
    path.write_text(json.dumps({"run": "casia-pcnn", "report": report, "folds": {}}))
    out = tmp_path / "training.md"
    training_results.main([str(path), "--out", str(out)])
    assert "| pcnn | casia | loso (speaker-independent) | 50.0 ± 10.0 | 40.0 ± 5.0 | 2 | 3 | a 40.0, b 60.0 |" in (
        out.read_text()
    )


def test_mtl_table_pools_folds_and_seeds(tmp_path: Path):
    from benchmarks import mtl_table

    def record(config: str, seed: int, uas: list[float], ter: float | None = None) -> Path:
        folds = {f"f{k}": {"best_val_ua": 0.8 - ua, "test": {"emotion": {"ua": ua}}} for k, ua in enumerate(uas)}
        report = {"folds": folds, "summary": {"ua_mean": sum(uas) / len(uas)}, "aux": {"chars": 0.3}}
        if ter is not None:
            report["aux_summary"] = {"chars": {"token_error_rate_mean": ter}}
        path = tmp_path / f"casia-mtl-{config}-s{seed}.json"
        path.write_text(json.dumps({"run": path.stem, "report": report, "folds": {}}))
        return path

    paths = [record("chars", 0, [0.4, 0.6], 0.5), record("chars", 1, [0.5, 0.7], 0.3), record("none", 0, [0.3, 0.3])]
    (tmp_path / "other.json").write_text(json.dumps({"run": "casia-pcnn", "report": {}, "folds": {}}))
    out = tmp_path / "mtl.md"
    mtl_table.main([*map(str, paths), str(tmp_path / "other.json"), "--out", str(out)])
    lines = [line for line in out.read_text().splitlines() if line.startswith("| casia")]
    assert lines[0].startswith("| casia | emotion only |") and "| 30.0 ± 0.0 |" in lines[0]
    assert lines[1].startswith("| casia | + chars | chars=0.3 | 55.0 ± 11.2 | 5.0 | 2 (0, 1) | 2 |")
    assert "| 2 | 25.0 |" in lines[1]  # validation UA: mean of the four runs' 40, 20, 30 and 10 %
    assert lines[1].endswith("| chars 40% |")  # token error rate: mean of the seeds' 50 % and 30 %
    # paired with "emotion only" on the (fold, seed) runs both have: seed 0's two folds, +10 and +30 points
    assert "| +20.0 ± 10.0 (2/2, p=0.50) |" in lines[1]


def test_sign_test_is_exact_binomial():
    from benchmarks.mtl_table import sign_test

    assert sign_test(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 2**12)
    assert sign_test(2, 10) == sign_test(10, 2)
    assert sign_test(3, 3) == 1.0 and sign_test(0, 0) == 1.0


def test_mtl_weights_are_chosen_on_validation_only(tmp_path: Path):
    from benchmarks import mtl_table

    paths = []
    for weight, val, test in ((0.1, 0.5, 0.9), (0.3, 0.7, 0.1), (1.0, 0.6, 0.95)):
        folds = {"f0": {"best_val_ua": val, "test": {"emotion": {"ua": test}}}}
        path = tmp_path / f"ravdess-mtltune-chars-w{weight}.json"
        path.write_text(json.dumps({"run": path.stem, "report": {"folds": folds}, "folds": {}}))
        paths.append(path)
    chosen, rows = mtl_table.choose_weights(paths)
    assert chosen == {"ravdess": {"chars": 0.3}}  # best validation, although its test UA is the worst
    out, weights = tmp_path / "t.md", tmp_path / "w.json"
    mtl_table.main([*map(str, paths), "--out", str(out), "--weights", str(weights)])
    assert json.loads(weights.read_text()) == {"ravdess": {"chars": 0.3}} and "0.3: 70.0 *" in out.read_text()
    # the tuning run at the chosen weight is seed 0 of the "+ chars" ablation row; the others are not
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ravdess | + chars")]
    assert len(rows) == 1 and "| 10.0 ± 0.0 |" in rows[0] and "| 1 (0) |" in rows[0]


def test_sections_are_replaced_or_kept_as_history(tmp_path: Path):
    from benchmarks.report import replace_section

    path = tmp_path / "r.md"
    replace_section(path, "# Figures\n", "Speed", "## Speed (day 1)\n\nslow\n")
    replace_section(path, "# Figures\n", "Memory", "## Memory (day 1)\n\nbig\n")
    replace_section(path, "# Figures\n", "Speed", "## Speed (day 2)\n\nfast\n", keep_older=True)
    text = path.read_text()
    assert text.startswith("# Figures\n")
    titles = [line for line in text.splitlines() if line.startswith("## ")]
    assert titles == ["## Speed (day 2)", "## Speed (day 1)", "## Memory (day 1)"]
    replace_section(path, "# Figures\n", "Speed", "## Speed (day 3)\n\nfaster\n")
    titles = [line for line in path.read_text().splitlines() if line.startswith("## ")]
    assert titles == ["## Memory (day 1)", "## Speed (day 3)"]
    assert "\nfaster\n" in path.read_text() and "slow" not in path.read_text()
