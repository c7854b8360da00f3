"""Builds the host C code in firmware/ for the tests (skipping only when no C toolchain exists)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

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
