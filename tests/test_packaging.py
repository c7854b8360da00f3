"""The runtime stays small: exact dependencies, and no torch or onnx at import time."""

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_runtime_dependencies_are_exactly_the_four():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    deps = [line.split(">")[0].split("=")[0].strip() for line in cfg["options"]["install_requires"].split("\n")]
    assert sorted(d for d in deps if d) == ["numpy", "onnxruntime", "python_speech_features", "soundfile"]
    assert "torch==2.13.0" in cfg["options.extras_require"]["train"]


def test_import_does_not_pull_torch_or_onnx():
    code = (
        "import sys, edge_ser; "
        "bad = [m for m in ('torch', 'onnx', 'onnxruntime', 'scipy', 'soundfile') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```bash\n")[1:]]
    setup = [b for b in blocks if b.startswith("python3 -m venv")]
    assert len(setup) == 2, "the README has exactly two set-up commands"
    ci_lines = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci_lines[-1] == setup[1]
