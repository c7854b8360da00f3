"""Error of the C front-end (firmware/) against edge_ser.frontend, double and float-only builds.

For every shipped model's front-end and normalization: the largest absolute difference, after
normalization, over one analysis window of each example clip and of real recordings (the
first N clips of each corpus). The double build is the host default; the float-only build
(-DESR_FLOAT_ONLY) is what a single-precision microcontroller runs.

    python benchmarks/firmware_frontend.py [--data-root ../shared/datasets] [--clips 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from firmware_build import build, c_features, contract_json  # noqa: E402

from benchmarks.report import cpu_name  # noqa: E402
from edge_ser.audio import load_audio  # noqa: E402
from edge_ser.contract import ModelContract  # noqa: E402
from edge_ser.model import resolve, shipped_models  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--clips", type=int, default=5, help="clips per corpus")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "firmware_frontend.json")
    args = parser.parse_args(argv)
    clips = sorted((ROOT / "examples").glob("*.wav"))
    for corpus, pattern in (("casia", "**/*.flac"), ("ravdess", "**/*.flac"), ("emodb", "*.flac")):
        clips += sorted((args.data_root / corpus).glob(pattern))[: args.clips]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tools = {
            "double": build(tmp / "double", SANITIZE="0") / "esr_features",
            "float_only": build(tmp / "float", SANITIZE="0", FLOAT_ONLY="1") / "esr_features",
        }
        results = {}
        models = {resolve(name).name: name for name in reversed(shipped_models())}  # one name per file
        for file_name in sorted(models):
            name = models[file_name]
            text = contract_json(resolve(name))
            contract = ModelContract.from_json(text)
            if contract.frontend.kind == "waveform":  # raw samples in: no front-end to compare
                continue
            errors = {build_name: 0.0 for build_name in tools}
            for clip in clips:
                x, _ = load_audio(clip, target_rate=contract.sample_rate)
                x = x[: int(contract.window_seconds * contract.sample_rate)]
                ref = contract.normalize(contract.frontend(x))
                for build_name, tool in tools.items():
                    err = float(np.abs(c_features(tool, text, x, tmp) - ref).max())
                    errors[build_name] = max(errors[build_name], err)
            results[name] = {"frontend": contract.frontend.kind, **errors}
            print(name, results[name], flush=True)
    record = {
        "command": "python benchmarks/firmware_frontend.py " + " ".join(argv or sys.argv[1:]),
        "machine": cpu_name(),
        "clips": [str(c.relative_to(c.parents[1])) for c in clips],
        "max_abs_error_after_normalization": results,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
