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


def test_relative_links_resolve():
    """Every relative link in the README, docs/, RESULTS.md and the model cards names a file of the checkout."""
    files = [ROOT / "README.md", ROOT / "benchmarks" / "RESULTS.md", *(ROOT / "docs").glob("*.md")]
    files += (ROOT / "edge_ser" / "assets").glob("*.md")
    broken = []
    for doc in files:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            path = target.split("#")[0]
            if path and not re.match(r"[a-z]+:", path) and not (doc.parent / path).exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert len(files) > 10
    assert not broken, broken


def test_readme_speed_figures_are_those_of_results():
    """The README's speed paragraph quotes benchmarks/RESULTS.md's one run: each model's median total per 3 s,
    AudioResNet FP32's and `english`'s ratio to it, so a regenerated RESULTS.md cannot leave stale figures behind."""
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    totals, ratio = {}, None
    for row in results.splitlines():
        cells = [c.strip() for c in row.split("|")]
        if len(cells) > 11 and cells[2] in ("FP32", "INT8"):
            totals[(cells[1], cells[2])] = cells[6].split("/")[0].strip()
            if cells[1] == "english (shipped)":
                ratio = cells[11].split("/")[0].strip()
    (speed,) = [p for p in (ROOT / "README.md").read_text().split("\n\n") if p.startswith("**Speed.**")]
    speed = " ".join(speed.split())
    for name in ("english", "chinese", "english-small", "chinese-small", "english-base", "chinese-base"):
        precision = "FP32" if name in ("english", "chinese") else "INT8"
        assert f"`{name}` {totals[(name + ' (shipped)', precision)]} ms" in speed, name
    assert f"against {totals[('audio_resnet (ravdess)', 'FP32')]} ms for the seed AudioResNet FP32" in speed
    assert f"(`english` {ratio}x as fast)" in speed
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", results).group(0)[:10] in speed
