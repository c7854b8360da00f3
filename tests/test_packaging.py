"""The runtime stays small and clean: exact dependencies, no torch or onnx at import time, a wheel with
``edge_ser`` alone, and dependencies pointing one way (runtime <- training <- export <- benchmarks)."""

import ast
import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("edge_ser", "models", "export", "benchmarks")  # each may import only itself and those before it
RUNTIME_THIRD_PARTY = {"numpy", "onnxruntime", "soundfile"}
LAZY_THIRD_PARTY = {"pyarrow", "ray", "tqdm"}  # optional (the scale extra, tqdm): imported only inside functions


def test_runtime_dependencies_are_exactly_three():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    deps = [line.split(">")[0].split("=")[0].strip() for line in cfg["options"]["install_requires"].split("\n")]
    assert sorted(d for d in deps if d) == sorted(RUNTIME_THIRD_PARTY)
    assert "torch==2.13.0" in cfg["options.extras_require"]["train"]
    assert "python_speech_features" in cfg["options.extras_require"]["dev"]  # the front-end's parity tests


def test_import_does_not_pull_torch_or_onnx():
    code = (
        "import sys, edge_ser, edge_ser.score; "
        "heavy = ('torch', 'onnx', 'onnxruntime', 'scipy', 'soundfile', 'pyarrow', 'ray'); "
        "bad = [m for m in heavy if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def imports(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, at module level or inside functions."""
    nodes = ast.walk(ast.parse(path.read_text(), str(path)))
    return {name for node in nodes if isinstance(node, (ast.Import, ast.ImportFrom)) for name in imports_of(node)}


def eager_imports(path: Path) -> set[str]:
    """Top-level modules imported when ``path`` itself is imported (not inside a function)."""
    names, todo = set(), list(ast.parse(path.read_text(), str(path)).body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= imports_of(node)
        todo.extend(ast.iter_child_nodes(node))
    return names


def imports_of(node: ast.Import | ast.ImportFrom) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name.split(".")[0] for alias in node.names}
    return {node.module.split(".")[0]} if node.level == 0 and node.module else set()


def test_dependencies_point_one_way():
    wrong = []
    for rank, layer in enumerate(LAYERS):
        for path in sorted((ROOT / layer).rglob("*.py")):
            for name in imports(path) & set(LAYERS[rank + 1 :]):
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
            if layer == "edge_ser":
                third_party = imports(path) - set(sys.stdlib_module_names) - {"edge_ser"}
                wrong += [
                    f"{path.relative_to(ROOT)} imports {n}"
                    for n in (third_party - RUNTIME_THIRD_PARTY - LAZY_THIRD_PARTY)
                    | (eager_imports(path) & LAZY_THIRD_PARTY)
                ]
    assert wrong == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(out),
        str(ROOT),
    ]
    subprocess.run(command, check=True, capture_output=True, cwd=out)
    (path,) = out.glob("edge_ser-*.whl")
    return path


def test_wheel_holds_edge_ser_and_its_models_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"edge_ser"}
    assert {"edge_ser/assets/english.onnx", "edge_ser/assets/chinese.onnx"} <= set(names)
    assert "edge_ser/bench.py" in names  # `edge-ser bench` works on the runtime install


def test_ci_runs_the_readme_test_command_last():
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```bash\n")[1:]]
    setup = [b for b in blocks if b.startswith("python3 -m venv")]
    assert len(setup) == 2, "the README has exactly two set-up commands"
    ci_lines = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci_lines[-1] == setup[1]
