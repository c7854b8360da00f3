"""The Python examples in README.md and edge_ser/__init__.py run as written (in a folder holding the files
they name), so the docs keep saying what the code does."""

import re
import shutil
from pathlib import Path

import pytest
import soundfile as sf
from conftest import voiced

import edge_ser

ROOT = Path(__file__).resolve().parents[1]


def examples() -> list[tuple[str, str]]:
    readme = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    package = re.findall(r"::\n\n((?:    .*\n|\n)+)", edge_ser.__doc__)
    found = [(f"README.md #{i + 1}", code) for i, code in enumerate(readme)]
    found += [
        (f"edge_ser/__init__.py #{i + 1}", "\n".join(line[4:] for line in code.splitlines()))
        for i, code in enumerate(package)
    ]
    return found


def test_the_docs_have_examples():
    assert len(examples()) >= 3


@pytest.mark.parametrize("where,code", examples(), ids=[w for w, _ in examples()])
def test_example_runs(where, code, tmp_path, monkeypatch, tiny_model, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(tiny_model, tmp_path / "model.onnx")
    sf.write(tmp_path / "hello.wav", voiced(2.0), 16000)
    exec(compile(code, where, "exec"), {})
    assert "Traceback" not in capsys.readouterr().err
