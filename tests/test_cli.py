"""The edge-ser command line: output formats and exit codes."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import voiced

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
    errors = captured.err.strip().splitlines()
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
    assert "parameters  84" in out and "head        emotion: angry, happy, neutral, sad" in out
    assert f"{tiny_model.stat().st_size:,} bytes" in out
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
    assert proc.wait(timeout=60) == 0 and b"Traceback" not in proc.stderr.read()
