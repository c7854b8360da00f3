"""benchmarks/distill_table.py: per-fold table, means over the folds each run finished, learning curves."""

import json
from pathlib import Path

from benchmarks.distill_table import main


def _fold(run: Path, name: str, ua: float, epochs: int = 3) -> None:
    folder = run / name
    folder.mkdir(parents=True)
    history = [{"epoch": e + 1, "loss": 2.0 - 0.1 * e, "val_ua": 0.3 + 0.05 * e, "seconds": 1.0} for e in range(epochs)]
    metrics = {"fold": name, "best_epoch": epochs, "seconds_per_epoch": 1.0, "history": history}
    metrics["test"] = {"emotion": {"ua": ua}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "config.json").write_text(json.dumps({"training": {"command": f"train {run.name}"}}))


def test_table_means_over_finished_folds_and_curves(tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _fold(a, "f1", 0.40)
    _fold(a, "f2", 0.60)
    _fold(b, "f1", 0.50)
    out = tmp_path / "table"
    assert main([f"plain={a}", f"teacher={b}", "--out", str(out), "--curves"]) == 0
    text = out.with_suffix(".md").read_text()
    assert "| plain | 40.0 | 60.0 | **50.0** ± 10.0 (2) |" in text
    assert "| teacher | 50.0 | – | **50.0** ± 0.0 (1) |" in text and "`train b`" in text
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["plain"]["ua_per_fold"] == {"f1": 40.0, "f2": 60.0}
    assert out.with_suffix(".png").stat().st_size > 1000


def test_seed_reproductions_table_lists_finished_and_running_runs(tmp_path: Path) -> None:
    """A finished run gets its test accuracy, UA and gap to the paper; one still training its epochs so far and
    curves; hand-written notes below the table survive regeneration."""
    import torch

    from benchmarks.seed_reproductions import main as reproductions
    from models.training.checkpoint import save_tensors

    done, running = tmp_path / "pg", tmp_path / "ar"
    _fold(done, "fold1", 0.90)
    m = json.loads((done / "fold1" / "metrics.json").read_text())
    m.update(epochs_run=3, best_val_ua=0.8)
    m["test"]["emotion"]["wa"] = 0.91
    (done / "fold1" / "metrics.json").write_text(json.dumps(m))
    config = {"arch": "pcnn_gender", "training": {"epochs": 40, "lr": 0.001, "command": "train pg"}}
    (done / "fold1" / "config.json").write_text(json.dumps(config))
    history = [{"epoch": e + 1, "loss": 1.0 / (e + 1), "val_ua": 0.2 * e, "seconds": 5.0} for e in range(2)]
    identity = {"config": {"arch": "audio_resnet"}, "training": {"epochs": 30, "lr": 0.002}}
    progress = {"epoch": 2, "best_ua": 0.2, "best_epoch": 2, "bad_epochs": 0, "history": history}
    (running / "fold1").mkdir(parents=True)
    save_tensors(
        running / "fold1" / "state.pt", {"identity": json.dumps(identity), "progress": progress, "w": torch.ones(1)}
    )
    out = tmp_path / "seed"
    out.with_suffix(".md").write_text("old table\n\n## Notes\nwhat it means\n")
    assert reproductions([str(done), str(running), "--out", str(out)]) == 0
    text = out.with_suffix(".md").read_text()
    assert "| pcnn_gender | 3 / 40 | cosine from 0.001 | 3 (80.0) | 91.0 | 90.0 | 93.90 (UA) | +3.9 | 82.9 |" in text
    assert "| audio_resnet | 2 / 30 | cosine from 0.002 | 2 (20.0) | – | – | 73.33 (accuracy) | unfinished |" in text
    assert "old table" not in text and text.endswith("## Notes\nwhat it means\n")
    assert (tmp_path / "seed-audio_resnet.png").stat().st_size > 1000


def test_fold_ensemble_gives_each_run_back_and_averages_them(tmp_path: Path) -> None:
    """benchmarks/fold_ensemble.py on two one-epoch runs of a generated corpus: each run's row is the UA its own
    metrics recorded (the checkpoints re-scored), and the averaged rows are there for every fold."""
    import pytest

    pytest.importorskip("torch")
    from test_train import toy_pcnn_args

    from benchmarks import fold_ensemble
    from models.training.cli import main as train

    manifest, common = toy_pcnn_args(tmp_path)
    runs = {}
    for seed in (0, 1):
        runs[f"seed {seed}"] = tmp_path / f"s{seed}"
        argv = [
            *common,
            "--protocol",
            "loso",
            "--folds",
            "0,1",
            "--seed",
            str(seed),
            "--out",
            str(runs[f"seed {seed}"]),
        ]
        assert train(argv) == 0
    out = tmp_path / "ensemble.md"
    args = [f"{k}={v}" for k, v in runs.items()]
    assert (
        fold_ensemble.main(
            [
                *args,
                "--dataset",
                "csv",
                "--data",
                str(manifest),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    lines = out.read_text().splitlines()
    folds = sorted(p.parent.name for p in runs["seed 0"].glob("*/metrics.json"))
    assert lines[2] == "| students | " + " | ".join(folds) + " | mean |"
    for label, run in runs.items():
        recorded = [100 * json.loads((run / f / "metrics.json").read_text())["test"]["emotion"]["ua"] for f in folds]
        row = next(line for line in lines if line.startswith(f"| {label} |"))
        assert [float(v) for v in row.split("|")[2:-2]] == [round(v, 1) for v in recorded]
    assert any(line.startswith("| all, probabilities averaged |") for line in lines)
    assert any(line.startswith("| pairs, mean UA |") for line in lines)


def test_averaged_folds_table_sets_the_average_beside_the_child(tmp_path: Path) -> None:
    """benchmarks/averaged_folds.py: the child's own test UA per fold (from its metrics) beside the averaged
    network's FP32 UA through the runtime, means over the folds each row has."""
    from benchmarks.averaged_folds import child_scores, table

    _fold(tmp_path / "child", "f1", 0.40)
    _fold(tmp_path / "child", "f2", 0.50)
    assert child_scores(tmp_path / "child") == {"f1": 40.0, "f2": 50.0}
    folds = {"f1": {"child": 40.0, "averaged_fp32": 44.0}, "f2": {"child": 50.0, "averaged_fp32": 48.0}}
    text = table({"seed0": {"alpha": 0.5, "folds": folds}})
    assert "| seed0: the child | 40.0 | 50.0 | **45.0** |" in text
    assert "| seed0: averaged (alpha 0.5), FP32 | 44.0 | 48.0 | **46.0** |" in text


def test_fold_ensemble_scores_packed_members_alone_beside_their_average(tmp_path: Path) -> None:
    """A packed edge_cnn run (``--backbone '{"members": 2, ...}'``, trained end to end through ``edge-ser train``):
    its row is the UA its metrics recorded (the members averaged), and ``--members`` adds each member alone."""
    import pytest

    pytest.importorskip("torch")
    from test_train import toy_pcnn_args

    from benchmarks import fold_ensemble
    from models.training.cli import main as train

    manifest, common = toy_pcnn_args(tmp_path)
    common[common.index("pcnn")] = "edge_cnn"
    packed = '{"members": 2, "channels": [8, 16, 24, 32], "temporal": 24, "embedding": 16}'
    run = tmp_path / "packed"
    assert train([*common, "--protocol", "loso", "--folds", "0", "--backbone", packed, "--out", str(run)]) == 0
    out = tmp_path / "members.md"
    argv = ["packed=" + str(run), "--dataset", "csv", "--data", str(manifest), "--members", "--out", str(out)]
    assert fold_ensemble.main([*argv, "--cache-dir", str(tmp_path / "cache")]) == 0
    lines = out.read_text().splitlines()
    (fold,) = [p.parent.name for p in run.glob("*/metrics.json")]
    recorded = 100 * json.loads((run / fold / "metrics.json").read_text())["test"]["emotion"]["ua"]
    row = next(line for line in lines if line.startswith("| packed |"))
    assert float(row.split("|")[2]) == round(recorded, 1)
    for m in (0, 1):
        member = next(line for line in lines if line.startswith(f"| packed member {m} |"))
        assert 0.0 <= float(member.split("|")[2]) <= 100.0
