"""The edge-ser command line: output formats and exit codes."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import voiced

from edge_ser import Recognizer
from edge_ser.cli import main


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, voiced(1.7), 16000)
    other = tmp_path / "other.flac"
    sf.write(other, voiced(0.6, seed=4), 16000)
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    return str(good), str(other), str(bad)


def test_predict_text_lines(tiny_model, files, capsys):
    good, other, _ = files
    assert main(["predict", "--model", str(tiny_model), good, other]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(good + "\t") and "gender=" in lines[0]


def test_bad_file_reports_and_continues(tiny_model, files, capsys):
    good, other, bad = files
    assert main(["predict", "--model", str(tiny_model), bad, good, str(bad) + ".missing", other]) == 1
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 2
    header, *errors = captured.err.strip().splitlines()
    assert (
        header
        == "edge-ser: model tiny (trained on none (untrained test model); 4 emotions: angry, happy, neutral, sad)"
    )
    assert len(errors) == 2 and all(e.startswith("edge-ser: error: ") for e in errors)
    assert "Traceback" not in captured.err


def test_predict_json_and_segments(tiny_model, files, capsys):
    good, _, bad = files
    assert main(["predict", "--model", str(tiny_model), "--json", good, bad]) == 1
    first, second = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert first["file"] == good and first["label"] in first["scores"]
    assert abs(sum(first["scores"].values()) - 1) < 1e-6
    assert second["type"] == "AudioError" and "not a readable audio file" in second["error"]
    assert main(["predict", "--model", str(tiny_model), "--json", "--segments", good]) == 0
    record = json.loads(capsys.readouterr().out)
    assert [s["start"] for s in record["segments"]] == [0.0, 0.5, 0.7]


def test_bad_model_exits_2(tmp_path, files, capsys):
    assert main(["predict", "--model", str(tmp_path / "none.onnx"), files[0]]) == 2
    assert "not found" in capsys.readouterr().err


def test_info(tiny_model, capsys):
    assert main(["info", str(tiny_model)]) == 0
    out = capsys.readouterr().out
    assert "84 parameters" in out and "head        emotion: angry, happy, neutral, sad" in out
    assert f"{tiny_model.stat().st_size:,} bytes" in out
    assert "evaluation  none recorded in the file" in out and "language    not recorded" in out
    assert main(["info", "--json", str(tiny_model)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["contract"]["heads"][1]["labels"] == ["female", "male"]


def test_console_entry_point_runs(tiny_model, files):
    proc = subprocess.run(
        [sys.executable, "-m", "edge_ser", "predict", "--model", str(tiny_model), files[0], files[2]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stdout.count("\n") == 1 and "Traceback" not in proc.stderr


def test_silence_line(tiny_model, tmp_path, capsys):
    sf.write(tmp_path / "quiet.wav", np.zeros(16000, np.float32), 16000)
    assert main(["predict", "--model", str(tiny_model), str(tmp_path / "quiet.wav")]) == 0
    assert capsys.readouterr().out.strip().endswith("\tsilence")


def test_output_into_a_closed_pipe_is_not_a_traceback(tiny_model):
    import subprocess
    import sys

    code = f"from edge_ser.cli import main; raise SystemExit(main(['info', {str(tiny_model)!r}]))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the child (still importing) writes, like `| head -0`
    assert proc.wait(timeout=60) == 2
    assert proc.stderr.read().decode().splitlines() == ["edge-ser: error: output closed early (broken pipe)"]


# -- issue 21: never a traceback; the model it used; progress; a readable info --------------------------


def run_cli(*args, shell_suffix="", env=None, timeout=120):
    """``python -m edge_ser ARGS`` in a shell (for redirections such as ``> /dev/full``)."""
    import os
    import shlex

    command = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "edge_ser", *args)) + shell_suffix
    return subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def one_line(stderr: bytes) -> str:
    lines = [line for line in stderr.decode("ascii", "replace").splitlines() if not line.startswith("edge-ser: model")]
    assert len(lines) == 1 and "Traceback" not in lines[0], stderr
    return lines[0]


def test_a_full_disk_or_closed_stdout_is_one_line(tiny_model, files):
    proc = run_cli("predict", "--model", str(tiny_model), files[0], shell_suffix=" > /dev/full")
    assert proc.returncode == 2 and "No space left on device" in one_line(proc.stderr)
    proc = run_cli("predict", "--model", str(tiny_model), files[0], shell_suffix=" >&-")
    assert proc.returncode == 2 and "standard output is closed" in one_line(proc.stderr)
    proc = run_cli("info", str(tiny_model), shell_suffix=" > /dev/full")
    assert proc.returncode == 2 and "No space left on device" in one_line(proc.stderr)


def test_ctrl_c_exits_130_quietly(tiny_model, files):
    import signal

    command = [sys.executable, "-m", "edge_ser", "predict", "--model", str(tiny_model), *[files[0]] * 5000]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()  # it is working through the files
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert [line for line in err.decode().splitlines() if not line.startswith("edge-ser: model")] == []


def test_ascii_terminal_and_names_that_are_not_utf8(tiny_model, tmp_path):
    import os

    name = os.fsencode(tmp_path) + b"/\xe4\xb8\xad \xff.wav"
    with open(name, "wb") as f:
        sf.write(f, voiced(1.0), 16000, format="WAV")
    for extra in ([], ["--json"]):
        proc = run_cli(
            "predict", "--model", str(tiny_model), *extra, os.fsdecode(name), env={"PYTHONIOENCODING": "ascii"}
        )
        assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr
        proc.stdout.decode("ascii")
        if extra:
            assert json.loads(proc.stdout)["file"] == os.fsdecode(name)


def test_profile_in_a_missing_directory_fails_before_any_work(tiny_model, files, tmp_path, capsys):
    profile = tmp_path / "no" / "such" / "dir" / "user.json"
    assert main(["predict", "--model", str(tiny_model), "--profile", str(profile), files[0]]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "no directory" in captured.err


def test_a_profile_holding_infinity_is_one_line(tmp_path, files):
    profile = tmp_path / "user.json"
    profile.write_text(
        '{"format": "edge-ser-speaker-profile", "version": 1, "min_utterances": Infinity, "utterances": 0}'
    )
    proc = run_cli("predict", "--model", "chinese-adaptive", "--profile", str(profile), files[0])
    assert proc.returncode == 2 and "not a speaker profile" in one_line(proc.stderr)


def test_a_model_that_fails_at_inference_exits_2(tmp_path, files):
    from onnx import numpy_helper
    from tiny_models import build_graph, count_parameters, make_contract, save

    from edge_ser.contract import ModelContract

    contract = make_contract()
    graph = build_graph(contract)
    weights = graph.graph.initializer[0]
    weights.CopyFrom(
        numpy_helper.from_array(np.full(numpy_helper.to_array(weights).shape, np.nan, np.float32), weights.name)
    )
    contract = ModelContract.from_dict({**contract.to_dict(), "parameters": count_parameters(graph)})
    path = save(graph, tmp_path / "nan.onnx", contract.to_metadata())
    proc = run_cli("predict", "--model", str(path), files[0], files[1])
    assert proc.returncode == 2 and "returned NaN" in one_line(proc.stderr)
    assert proc.stdout == b""


def test_it_says_which_model_and_language_it_used(files, capsys):
    assert main(["predict", "--model", "chinese", files[0]]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("edge-ser: model edge-ser-chinese (Chinese (Mandarin); trained on casia; 6 emotions")
    assert main(["predict", "--json", files[0]]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["model"], record["language"]) == ("edge-ser-english", "English")


def test_info_is_for_people_and_json_for_machines(capsys):
    assert main(["info", "english"]) == 0
    out = capsys.readouterr().out
    assert "language    English (trained on ravdess)" in out
    cv = Recognizer("english").contract.provenance["cross_validation"]  # the card, whatever model is shipped
    ua = f"UA {100 * cv['ua_mean']:.1f} ± {100 * cv['ua_std']:.1f} %"
    assert f"evaluation  {cv['protocol']}, {cv['folds']} speaker-independent folds: {ua}" in out
    for fold, scores in cv["per_fold"].items():
        assert any(line.split()[:2] == [fold, f"{100 * scores['ua']:.1f}"] for line in out.splitlines())
    assert max(len(line) for line in out.splitlines()) < 160
    assert main(["info", "--json", "english"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["language"] == "English" and info["contract"]["provenance"]["cross_validation"]["folds"] == 5


def test_progress_line_on_request(tiny_model, files):
    good, other, _ = files
    proc = run_cli("predict", "--progress", "--model", str(tiny_model), good, other)
    err = proc.stderr.decode()
    assert proc.returncode == 0 and "[1/2] good.wav" in err and "[2/2] other.flac" in err
    assert err.endswith("\r\x1b[K")  # cleared at the end
    assert proc.stdout.count(b"\n") == 2 and b"\r" not in proc.stdout
    proc = run_cli("predict", "--model", str(tiny_model), good, other)  # not a terminal: off by default
    assert b"\r" not in proc.stderr


def test_ctrl_c_swallowed_by_the_decoder_still_ends_the_run(tiny_model, files, monkeypatch, capsys):
    """soundfile's cffi callbacks swallow a KeyboardInterrupt (the file then fails to decode): the run must stop."""
    from edge_ser import cli
    from edge_ser.errors import AudioError
    from edge_ser.recognizer import Recognizer

    calls = []

    def interrupted_decode(self, path, *args, **kwargs):
        calls.append(path)
        cli._INTERRUPTED.set()  # what the SIGINT handler records before its exception is swallowed
        raise AudioError(f"{path}: not a readable audio file")

    monkeypatch.setattr(Recognizer, "predict", interrupted_decode)
    try:
        assert cli.main(["predict", "--model", str(tiny_model), files[0], files[0], files[0]]) == 130
    finally:
        cli._INTERRUPTED.clear()
    assert len(calls) == 1 and "not a readable" not in capsys.readouterr().err
