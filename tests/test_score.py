"""``edge-ser score``: inputs, outputs, resuming, errors, the process pool and Ray -- on generated clips."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from conftest import voiced

from edge_ser.cli import main
from edge_ser.score import ScoreError, expand_inputs, read_manifest, read_results


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Twelve voiced clips of 0.6-2.8 s at 8, 16 and 44.1 kHz in two folders, one silent, one corrupt."""
    root = tmp_path_factory.mktemp("clips")
    (root / "b").mkdir()
    for i in range(12):
        rate = (8000, 16000, 44100)[i % 3]
        sf.write(root / ("b" if i % 2 else ".") / f"clip{i:02d}.wav", voiced(0.6 + 0.2 * i, rate, seed=i), rate)
    sf.write(root / "silence.flac", 0 * voiced(1.0), 16000)
    (root / "b" / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt not really")
    (root / "notes.txt").write_text("not audio, not listed")
    return root


def by_path(rows: list[dict]) -> dict[str, dict]:
    out = {r["path"]: r for r in rows}
    assert len(out) == len(rows), "a path was scored twice"
    return out


def score(*argv: str) -> int:
    return main(["score", "--no-progress", *argv])


def test_folder_to_parquet_and_jsonl_same_rows_errors_recorded(tiny_model, clips, tmp_path, capsys):
    assert score(str(clips), "--model", str(tiny_model), "--out", str(tmp_path / "r.parquet"), "--workers", "1") == 1
    assert "scored 14 files (1 errors; 0 already" in capsys.readouterr().out
    rows = by_path(read_results(tmp_path / "r.parquet"))
    assert len(rows) == 14  # 12 clips + silence + corrupt; notes.txt is not audio
    bad = rows[str(clips / "b" / "corrupt.wav")]
    assert bad["error_type"] == "AudioError" and "corrupt.wav" in bad["error"] and bad["label"] is None
    good = rows[str(clips / "clip00.wav")]
    assert good["error"] is None and good["label"] in good["scores"] and good["seconds"] == pytest.approx(0.6)
    assert sum(good["scores"].values()) == pytest.approx(1.0) and set(good["heads"]) == {"gender"}
    assert rows[str(clips / "silence.flac")]["silent"] is True
    assert {r["model"] for r in rows.values()} == {"tiny"} and len(good["model_sha256"]) == 64
    assert good["segments"] is None

    assert score(str(clips), "--model", str(tiny_model), "--out", str(tmp_path / "r.jsonl"), "--workers", "2") == 1
    assert by_path(read_results(tmp_path / "r.jsonl")) == rows  # two processes, JSONL: the same rows


POOL_SCRIPT = """
import os, sys
from edge_ser import score
pool = score.start_pool(2, sys.argv[1])
assert "onnxruntime" not in sys.modules
parents = {pool.submit(os.getppid).result() for _ in range(8)}
spec = score.ScoreSpec.for_model(sys.argv[1])
rows = [row for chunk in score.score_local(sys.argv[2:], spec, 2, pool=pool) for row in chunk]
print(parents == {os.getpid()}, len(rows), sum(row["error"] is None for row in rows))
"""


def test_pool_processes_are_forks_of_a_process_without_onnx_runtime(tiny_model, clips):
    """Before ONNX Runtime is imported the pool's processes are forks of this one (no fork server),
    and they score: the crash test checks their rows against one process'."""
    paths = expand_inputs([str(clips)])  # 14 files: two chunks, so the pool scores them
    code = [sys.executable, "-c", POOL_SCRIPT, str(tiny_model), *paths]
    done = subprocess.run(code, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "14", "13"]


def test_segments_are_the_recognizers_timeline(tiny_model, clips, tmp_path):
    from edge_ser import Recognizer

    clip = str(clips / "b" / "clip11.wav")
    assert score(clip, "--model", str(tiny_model), "--segments", "--out", str(tmp_path / "s.parquet")) == 0
    (row,) = read_results(tmp_path / "s.parquet")
    expected = Recognizer(tiny_model).predict_segments(clip)
    timeline = [(s["start"], s["end"], s["label"]) for s in row["segments"]]
    assert timeline == [(p.start, p.end, p.label) for p in expected]
    assert row["segments"][0]["scores"] == expected[0].scores and "gender" in row["segments"][0]["heads"]


def test_manifests_globs_and_relative_paths(clips, tmp_path):
    names = ["clip00.wav", "b/clip01.wav"]
    with open(clips / "m.csv", "w", newline="") as f:
        csv.writer(f).writerows([["file", "emotion"], *([n, "x"] for n in names)])
    (clips / "m.jsonl").write_text("".join(json.dumps({"path": str(clips / n)}) + "\n" for n in names))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"path": names}), clips / "m.parquet")
    expected = [str(clips / n) for n in names]
    assert read_manifest(clips / "m.csv", "file") == expected  # relative to the manifest's folder
    assert read_manifest(clips / "m.jsonl") == expected == read_manifest(clips / "m.parquet")
    assert expand_inputs([str(clips / "m.parquet"), str(clips / "clip0*.wav"), str(clips / "b")])[:3] == [
        *expected,
        str(clips / "clip02.wav"),
    ]
    with pytest.raises(ScoreError, match="column"):
        read_manifest(clips / "m.parquet", "file")
    with pytest.raises(ScoreError, match="no file matches"):
        expand_inputs([str(clips / "*.mp3")])
    with pytest.raises(ScoreError, match="no such file"):
        expand_inputs([str(clips / "missing")])


def test_resume_scores_only_the_rest(tiny_model, clips, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("edge_ser.score.WRITE_BATCH", 4)  # the Parquet output written in several batches
    for suffix in ("jsonl", "parquet"):
        out = tmp_path / f"r.{suffix}"
        first = [str(clips / f"clip{i:02d}.wav") for i in (0, 2, 4)]
        assert score(*first, "--model", str(tiny_model), "--out", str(out), "--workers", "1") == 0
        before = by_path(read_results(out))
        assert score(str(clips), "--model", str(tiny_model), "--out", str(out)) == 1
        assert "scored 11 files (1 errors; 3 already" in capsys.readouterr().out
        after = by_path(read_results(out))
        assert len(after) == 14 and all(after[p] == before[p] for p in first)
        assert score(str(clips), "--model", str(tiny_model), "--out", str(out)) == 0  # nothing left to do
        assert "scored 0 files (0 errors; 14 already" in capsys.readouterr().out


def test_an_interrupted_run_is_finished(tiny_model, clips, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    assert score(str(clips / "b"), "--model", str(tiny_model), "--out", str(out), "--workers", "1") == 1
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][:30])  # killed while writing the third row
    assert score(str(clips / "b"), "--model", str(tiny_model), "--out", str(out), "--workers", "1") == 1
    assert "scored 5 files (1 errors; 2 already" in capsys.readouterr().out
    assert len(by_path(read_results(out))) == 7

    parquet = tmp_path / "r.parquet"  # a Parquet run killed before its journal was folded in
    journal = tmp_path / "r.parquet.partial.jsonl"
    journal.write_text("".join(lines[:2]))
    assert score(str(clips / "b"), "--model", str(tiny_model), "--out", str(parquet), "--workers", "1") == 1
    assert "2 already" in capsys.readouterr().out and not journal.exists()
    assert by_path(read_results(parquet)) == by_path(read_results(out))


def test_bad_model_output_or_other_models_results_exit_2(tiny_model, waveform_model, clips, tmp_path, capsys):
    out = str(tmp_path / "r.jsonl")
    assert score(str(clips / "clip00.wav"), "--model", str(tiny_model), "--out", out) == 0
    assert score(str(clips / "clip02.wav"), "--model", str(waveform_model), "--out", out) == 2
    assert "another model" in capsys.readouterr().err
    assert score(str(clips), "--model", str(tmp_path / "none.onnx"), "--out", out) == 2
    assert score(str(clips), "--model", str(tiny_model), "--out", str(tmp_path / "r.csv")) == 2
    assert "output must end in" in capsys.readouterr().err


CRASH_HOOK = """
import os
import edge_ser.recognizer as recognizer

_predict = recognizer.Recognizer.predict


def predict(self, audio, *args, **kwargs):
    if "clip05" in str(audio):
        os._exit(3)  # as a segfault in a native decoder would end the process
    return _predict(self, audio, *args, **kwargs)


recognizer.Recognizer.predict = predict
"""


@pytest.mark.parametrize("engine", [[], ["--ray"]], ids=["pool", "ray"])
def test_a_worker_that_dies_is_recorded_and_the_run_goes_on(tiny_model, clips, tmp_path, engine):
    """A file that kills its process every time: one WorkerCrash row, every other file scored (on
    Ray: its batch retried once, given up, then its files one per task)."""
    reference = tmp_path / "reference.jsonl"
    assert score(str(clips), "--model", str(tiny_model), "--out", str(reference), "--workers", "1") == 1
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CRASH_HOOK)  # every process of the run, workers included, loads it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "r.jsonl"
    code = [sys.executable, "-m", "edge_ser.cli", "score", str(clips), "--model", str(tiny_model), "--out", str(out)]
    done = subprocess.run(
        [*code, "--workers", "2", "--no-progress", *engine], capture_output=True, text=True, env=env, timeout=170
    )
    assert done.returncode == 1, done.stderr[-2000:]
    rows, expected = by_path(read_results(out)), by_path(read_results(reference))
    crashed = rows.pop(str(clips / "b" / "clip05.wav"))
    assert crashed["error_type"] == "WorkerCrash" and crashed["label"] is None
    del expected[str(clips / "b" / "clip05.wav")]
    assert rows == expected  # every other file scored exactly as by one process


def test_ray_gives_exactly_the_single_process_rows(tiny_model, clips, tmp_path):
    """Local Ray, two actors, reading the manifest itself: the rows of one process, errors included."""
    paths = expand_inputs([str(clips)])
    manifest = tmp_path / "m.csv"
    manifest.write_text("path\n" + "".join(f"{os.path.relpath(p, tmp_path)}\n" for p in paths))  # relative
    single = tmp_path / "single.parquet"
    assert score(str(manifest), "--model", str(tiny_model), "--out", str(single), "--workers", "1") == 1
    on_ray = tmp_path / "ray.parquet"
    code = [sys.executable, "-m", "edge_ser.cli", "score", str(manifest), "--model", str(tiny_model)]
    code += ["--out", str(on_ray), "--workers", "2", "--no-progress", "--ray"]
    done = subprocess.run(code, capture_output=True, text=True, timeout=170)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "scored 14 files (1 errors" in done.stdout
    rows = by_path(read_results(single))
    assert sorted(rows) == sorted(paths) and by_path(read_results(on_ray)) == rows


@pytest.fixture
def ray_head():
    """A Ray cluster that ``ray start`` runs on this machine (two CPUs) for the test's duration."""
    import socket

    from benchmarks.scale_out import ray_cluster

    if not Path(sys.executable).with_name("ray").exists():
        pytest.skip("the ray command is missing (the scale extra is not installed)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with ray_cluster(2, port):
        yield


def test_ray_beside_a_running_cluster_starts_its_own_and_auto_joins_it(tiny_model, clips, tmp_path, ray_head):
    """``--ray`` alone starts a new local Ray even where ``ray start`` runs one (Ray's default would join
    that one and refuse a CPU count); ``--ray auto`` uses the running one. Both give one process's rows."""
    single = tmp_path / "single.jsonl"
    assert score(str(clips), "--model", str(tiny_model), "--out", str(single), "--workers", "1") == 1
    rows = by_path(read_results(single))
    for engine, says in (["--ray"], "Started a local Ray instance"), (["--ray", "auto"], "Connecting to existing"):
        out = tmp_path / f"{len(engine)}.jsonl"
        code = [sys.executable, "-m", "edge_ser.cli", "score", str(clips), "--model", str(tiny_model)]
        done = subprocess.run(
            [*code, "--out", str(out), "--workers", "2", "--no-progress", *engine],
            capture_output=True, text=True, timeout=170,
        )  # fmt: skip
        assert done.returncode == 1 and says in done.stderr, done.stderr[-2000:]
        assert by_path(read_results(out)) == rows
