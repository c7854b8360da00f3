"""Microcontroller figures of the shipped models exported with `edge-ser export --c`.

For each model: cross-compiled for Cortex-M4F (arm-none-eabi-gcc -O2, hard float) with the
float-only C front-end, run under QEMU mps2-an386 with -icount (one virtual nanosecond per
instruction; the 25 MHz timer's ticks are converted to instructions with a calibration loop of
known length) on the first 3 s of examples/english.wav (16-bit samples read in place from flash).
Records flash (code + const data of the model, its kernels and the front-end), static RAM (the
model's arena, the front-end's workspace, and the whole program's .data + .bss and reserved stack
from arm-none-eabi-size), peak stack (painted), instructions for the front-end and for the model,
and the agreement with ONNX Runtime.

    python benchmarks/firmware_mcu.py [--models english english-adaptive firmware/models/english-stream.onnx]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from firmware_build import mcu_run  # noqa: E402

from benchmarks.report import cpu_name  # noqa: E402
from edge_ser.audio import load_audio  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["english", "english-adaptive", "firmware/models/english-stream.onnx"]
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "firmware_mcu.json")
    args = parser.parse_args(argv)
    x, _ = load_audio(ROOT / "examples" / "english.wav", target_rate=16000)
    clip = np.clip(np.round(x[:48000] * 32768), -32768, 32767).astype(np.int16)
    results = {}
    for model in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            got = mcu_run(str(ROOT / model) if model.endswith(".onnx") else model, Path(tmp), clip)
        obj, sections = got["objects"], got["sections"]
        name = Path(model).stem
        frontend = ("frontend.o", "rfft.o", "kiss_fft.o", "kiss_fftr.o")
        results[name] = {
            "input_shape": got["summary"]["input_shape"],
            "flash_bytes": {
                "model": obj["esr_model.o"]["text"] + obj["esr_model.o"]["data"] + obj["esr_nn.o"]["text"],
                "weights": got["summary"]["weight_bytes"],
                "frontend": sum(obj[o]["text"] + obj[o]["data"] for o in frontend),
                "model_and_frontend": sum(obj[o]["text"] + obj[o]["data"] for o in obj),
            },
            "static_ram_bytes": {
                "model_arena": got["summary"]["arena_bytes"],
                "frontend_workspace": got["frontend_workspace_bytes"],
                "program_data_bss": sections[".data"] + sections[".bss"],
                "stack_reserved": sections[".stack"],
                "total": sections[".data"] + sections[".bss"] + sections[".stack"],
            },
            "peak_stack_bytes": got["stack_bytes"],
            "instructions_per_3s": {
                "frontend": got["instructions_frontend"],
                "model": got["instructions_model"],
                "total": got["instructions_frontend"] + got["instructions_model"],
            },
            "quantization": got["summary"]["quantization"],
            "max_abs_logit_diff_vs_onnxruntime_int8_graph": {
                "model_on_numpy_features": float(np.abs(got["golden_logits"] - got["reference"]).max()),
                "c_frontend_and_model": float(np.abs(got["logits"] - got["reference"]).max()),
            },
            "max_abs_logit_diff_vs_shipped_file": float(np.abs(got["logits"] - got["shipped"]).max()),
            "same_top_class_as_shipped_file": bool(got["logits"].argmax() == got["shipped"].argmax()),
        }
        print(name, json.dumps(results[name]), flush=True)
    record = {
        "command": "python benchmarks/firmware_mcu.py " + " ".join(argv or sys.argv[1:]),
        "machine": cpu_name(),
        "target": "Cortex-M4F (QEMU 7.2 mps2-an386, -icount shift=0), arm-none-eabi-gcc -O2",
        "clip": "examples/english.wav, first 3 s at 16 kHz, int16 read in place from flash (not counted in RAM)",
        "models": results,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
