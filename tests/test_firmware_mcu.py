"""The microcontroller build: `edge-ser export --c` of the shipped models, cross-compiled for
Cortex-M4F and run under QEMU (mps2-an386) on a golden clip generated here.

The generated model is taken from edge_ser/assets at test time and the golden outputs are
computed by ONNX Runtime at test time, so a re-trained model is checked as it ships.
Tolerances (docs/firmware.md): on the features numpy computes, the C model's logits are within
0.01 of ONNX Runtime's on the INT8 graph the C code computes (its integer kernels reproduce it; the
rest is float rounding); from the clip through the float-only C front-end, the top class is that
of the shipped file (FP32 for `english`) and the logits within 0.25 of the INT8 graph's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import voiced
from firmware_build import build, export_c, mcu_run, onnx_logits, printed

MODEL_ALONE = 0.01
END_TO_END = 0.25


@pytest.mark.parametrize("model", ["english-adaptive", "english"])  # functionals_mlp, edge_cnn
def test_generated_model_on_cortex_m4(model: str, tmp_path: Path) -> None:
    clip = (voiced(3.0, seed=11) * 32767).astype(np.int16)
    got = mcu_run(model, tmp_path, clip)
    ref = got["reference"]
    assert got["golden_logits"].shape == ref.shape
    assert np.abs(got["golden_logits"] - ref).max() <= MODEL_ALONE, (got["golden_logits"], ref)
    assert got["golden_logits"].argmax() == ref.argmax()
    assert got["logits"].argmax() == ref.argmax() == got["shipped"].argmax()
    assert np.abs(got["logits"] - ref).max() <= END_TO_END, (got["logits"], ref)
    assert got["instructions_model"] > 0 and got["stack_bytes"] > 0
    assert got["objects"]["esr_model.o"]["bss"] == got["summary"]["arena_bytes"] or (
        got["objects"]["esr_model.o"]["bss"] >= got["summary"]["arena_bytes"]
    )


@pytest.mark.parametrize("model", ["english-adaptive", "english"])
def test_generated_model_on_the_host(model: str, tmp_path: Path) -> None:
    """The same program built for the host under ASan + UBSan: the kernels' portable C paths (no SIMD)
    and the double-precision front-end."""
    clip = (voiced(3.0, seed=12) * 32767).astype(np.int16)
    gen = tmp_path / "gen"
    _, features, contract, _ = export_c(model, gen, clip)
    program = build(tmp_path / "host", "model-check", GEN=str(gen)) / "model_check"
    done = subprocess.run([str(program)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = printed(done.stdout)
    ref = onnx_logits(gen / "esr_model.onnx", contract, features)
    golden, logits = np.array(lines["golden_logits"], float), np.array(lines["logits"], float)
    assert np.abs(golden - ref).max() <= MODEL_ALONE and golden.argmax() == ref.argmax()
    assert np.abs(logits - ref).max() <= END_TO_END and logits.argmax() == ref.argmax()


def test_export_refuses_what_it_cannot_compile(tmp_path: Path) -> None:
    """A graph with operators or patterns the generator does not cover is a clear error, not C that
    computes something else (the shipped `chinese` has static-QDQ convolutions)."""
    done = subprocess.run(
        [sys.executable, "-m", "edge_ser.cli", "export", "--c", "chinese", "--out", str(tmp_path / "gen")],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "C exporter does not support" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "gen" / "esr_model.c").exists()
