"""The Python examples in README.md and edge_ser/__init__.py run as written (in a folder holding the files
they name), so the docs keep saying what the code does."""

import json
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
    """The README's speed paragraph quotes the run benchmarks/results.py recorded (RESULTS.json, the data behind
    RESULTS.md): each model's median total per 3 s, AudioResNet FP32's and `english`'s ratio to it, and the run's
    time, so a regenerated RESULTS.md cannot leave stale figures behind."""
    results = json.loads((ROOT / "benchmarks" / "RESULTS.json").read_text())
    entries = {(e["name"], e["precision"]): e for e in results["entries"]}
    (speed,) = [p for p in (ROOT / "README.md").read_text().split("\n\n") if p.startswith("**Speed.**")]
    speed = " ".join(speed.split())

    def total(name: str, precision: str) -> str:
        return f"{entries[(name, precision)]['bench']['latency_ms']['total']['p50']:.2f}"

    for name in ("english", "chinese", "english-small", "chinese-small", "english-base", "chinese-base"):
        precision = "fp32" if name in ("english", "chinese") else "int8"
        assert f"`{name}` {total(name + ' (shipped)', precision)} ms" in speed, name
    assert f"against {total('audio_resnet (ravdess)', 'fp32')} ms for the seed AudioResNet FP32" in speed
    ratio = entries[("english (shipped)", "fp32")]["speedup"]["audio_resnet"][0]
    assert f"(`english` {ratio:.2f}x as fast)" in speed
    day, clock = results["machine"]["date"].removesuffix(" UTC").split()
    assert f"{day}T{clock}Z" in speed
    family, model = results["machine"]["cpu"].split("(family ")[1].split(";")[0].split(" model ")
    assert f"family {family} model {model}" in speed  # the CPU the figures came from


def test_readme_speed_figures_of_the_earlier_cpu_are_those_of_its_table():
    """The README's figures for the AVX2-only EPYC are those of the RESULTS.json kept from that run."""
    kept = json.loads((ROOT / "benchmarks" / "results" / "results-2026-12-04-zen3.json").read_text())
    entries = {(e["name"], e["precision"]): e for e in kept["entries"]}
    (speed,) = [p for p in (ROOT / "README.md").read_text().split("\n\n") if p.startswith("**Speed.**")]
    speed = " ".join(speed.split())
    english, chinese = (
        entries[(f"{n} (shipped)", "fp32")]["bench"]["latency_ms"]["total"]["p50"] for n in ("english", "chinese")
    )
    ratio = entries[("english (shipped)", "fp32")]["speedup"]["audio_resnet"][0]
    assert f"gave `english` {english:.2f} ms and `chinese` {chinese:.2f} ms, `english` {ratio:.2f}x as fast" in speed
    day, clock = kept["machine"]["date"].removesuffix(" UTC").split()
    assert f"{day}T{clock}Z" in speed
    assert "family 25 model 1," in speed and "family 25 model 1;" in kept["machine"]["cpu"]
