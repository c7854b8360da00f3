"""Builds the host C code in firmware/ for the tests (skipping only when no C toolchain exists)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"


def need_toolchain(*tools: str) -> None:
    missing = [t for t in ("make", "cc", *tools) if shutil.which(t) is None]
    if missing:
        pytest.skip(f"C toolchain not installed: {', '.join(missing)}")


def build(out: Path, *targets: str, **options: str) -> Path:
    """``make`` the host targets into ``out`` (ASan + UBSan unless options say otherwise)."""
    need_toolchain()
    args = ["make", "-s", "-C", str(FIRMWARE), f"BUILD={out}", f"PYTHON={sys.executable}"]
    args += [f"{k}={v}" for k, v in {"SANITIZE": "1", **options}.items()]
    done = subprocess.run([*args, *targets], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def contract_json(model: Path) -> str:
    """The contract JSON stored in a model's metadata (what the C code reads)."""
    meta = {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
    return meta["edge_ser.contract"]


def c_features(
    tool: Path, contract: str | dict, samples: np.ndarray, tmp: Path, normalize: bool = True, rate: int | None = None
) -> np.ndarray:
    """Run esr_features on float32 samples; returns its (rows, features) output."""
    text = contract if isinstance(contract, str) else json.dumps(contract)
    (tmp / "contract.json").write_text(text)
    np.asarray(samples, np.float32).tofile(tmp / "x.f32")
    args = [str(tool), str(tmp / "contract.json"), str(tmp / "x.f32"), str(tmp / "y.f32")]
    args += ["--normalize"] * normalize + ([f"--rate={rate}"] if rate else [])
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows, width = map(int, done.stdout.split())
    return np.fromfile(tmp / "y.f32", np.float32).reshape(rows, width)


def export_c(model: str, gen: Path, clip: np.ndarray, seconds: float = 3.0) -> tuple[dict, np.ndarray, Any, Path]:
    """``edge-ser export --c`` of ``model`` into ``gen`` plus ``gen/esr_clip.h``: ``clip`` (int16 at the
    model's rate) and the normalized features numpy computes for it. Returns the export's summary,
    those features, the contract and the model's path."""
    from edge_ser.contract import ModelContract
    from edge_ser.model import resolve

    done = subprocess.run(
        [sys.executable, "-m", "edge_ser.cli", "export", "--c", model, "--out", str(gen), "--c-seconds", str(seconds)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    path = resolve(model)
    contract = ModelContract.from_json(contract_json(path))
    features = contract.normalize(contract.frontend(clip.astype(np.float32) / 32768.0))
    with open(gen / "esr_clip.h", "w") as f:
        f.write(f"#define ESR_CLIP_SAMPLES {len(clip)}u\n")
        f.write(f"static const short esr_clip[] = {{{','.join(map(str, clip.tolist()))}}};\n")
        f.write(f"static const float esr_clip_features[] = {{{','.join(f'{v:.9g}f' for v in features.ravel())}}};\n")
    return json.loads(done.stdout), features, contract, path


def onnx_logits(model_file: Path, contract: Any, features: np.ndarray) -> np.ndarray:
    """ONNX Runtime's primary-head output for one window of features."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    return session.run([contract.primary.output], {contract.input_name: features[None]})[0][0].astype(float)


def printed(output: str) -> dict[str, list[str]]:
    """The test program's lines (golden_logits, logits, ticks) by their first word."""
    return {line.split()[0]: line.split()[1:] for line in output.splitlines() if line.strip()}


def mcu_run(model: str, work: Path, clip: np.ndarray, seconds: float = 3.0) -> dict:
    """``edge-ser export --c`` for ``model``, cross-compiled with ``clip`` (int16, at the model's rate)
    and the features numpy computes for it, run under QEMU mps2-an386 with -icount; returns what the
    target printed (logits on the golden features, logits from the C front-end, tick counts) plus
    ONNX Runtime's logits on the golden features (of the INT8 graph the C code computes, and of the
    shipped file) and the build's sizes."""
    need_toolchain("arm-none-eabi-gcc", "qemu-system-arm")
    gen, out = work / "gen", work / "build"
    summary, features, contract, path = export_c(model, gen, clip, seconds)
    make = ["make", "-s", "-f", str(FIRMWARE / "mcu" / "Makefile"), f"GEN={gen}", f"BUILD={out}"]
    done = subprocess.run(make, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    qemu = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting", "-icount", "shift=0"]
    done = subprocess.run([*qemu, "-kernel", str(out / "model.elf")], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = printed(done.stdout + done.stderr)  # semihosting writes to stderr when stdout is not a terminal
    ticks = dict(item.split("=") for item in lines["ticks"])
    per_tick = int(ticks["calib_instructions"]) / int(ticks["calib"])
    objects = {}
    for line in (out / "objects.txt").read_text().splitlines()[1:]:
        text_, data, bss, *_, name = line.split()
        objects[Path(name).name] = {"text": int(text_), "data": int(data), "bss": int(bss)}
    sections = {}
    for line in (out / "sections.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    return {
        "summary": summary,
        "sections": sections,  # arm-none-eabi-size -A of the linked program: .text, .data, .bss, .stack, ...
        "golden_logits": np.array(lines["golden_logits"], float),
        "logits": np.array(lines["logits"], float),
        "reference": onnx_logits(gen / "esr_model.onnx", contract, features),  # the INT8 graph the C code computes
        "shipped": onnx_logits(path, contract, features),  # the shipped file (FP32 for an FP32 model)
        "instructions_frontend": round(int(ticks["frontend"]) * per_tick),
        "instructions_model": round(int(ticks["model"]) * per_tick),
        "stack_bytes": int(ticks["stack"]),
        "frontend_workspace_bytes": int(ticks["fe_workspace"]),
        "objects": objects,
    }
