"""Time architecture and front-end variants of a trained run's network before training them: random weights.

    python -m benchmarks.arch_speed [--base benchmarks/results/ship/ship-english-cv.json] \
        [--variant NAME=JSON ...] [--runs 300] [--out benchmarks/results/arch-speed.md]

Each variant is the base record's first fold config with JSON overrides merged in (``frontend`` and
``backbone`` key by key, anything else replaced), e.g. ``mel32='{"frontend": {"n_mels": 32}}'`` or
``depth1='{"backbone": {"depth": 1}}'``. Every variant is built with re-initialised weights (latency does not
depend on their values), exported to FP32 ONNX with its emotion head, and timed with the shipped model named by
``--reference`` in one interleaved ``edge-ser bench`` run (front-end + inference per 3 s, one thread): which
variant is worth a rule and its training runs, measured before the runs.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.report import pinned_section
from edge_ser import Recognizer
from edge_ser.bench import measure_latency

BASE = Path(__file__).resolve().parent / "results" / "ship" / "ship-english-cv.json"
HEAD = "# Architecture variants timed before training (`python -m benchmarks.arch_speed`)\n"


def variant_config(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in; a front-end of another width gets a neutral normalization of that
    width (timing does not depend on its values)."""
    config = copy.deepcopy(base)
    for key, value in overrides.items():
        if key in ("frontend", "backbone") and isinstance(value, dict):
            config[key] = {**(config.get(key) or {}), **value}
        else:
            config[key] = value
    if config["frontend"] != base["frontend"]:
        from edge_ser.frontend import FrontEnd

        width = FrontEnd.from_dict(config["frontend"]).n_features
        config["normalization"] = {"mode": "global", "mean": [0.0] * width, "std": [1.0] * width}
    return config


def export_variant(config: dict[str, Any], out: Path) -> Path:
    """The FP32 ONNX file (emotion head only) of ``config`` with freshly initialised weights."""
    from export.pipeline import ExportConfig, export
    from models.arch.registry import build_model, count_parameters
    from models.training.checkpoint import save_checkpoint

    model = build_model(config)
    config = {**config, "parameters": count_parameters(model)}
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(tmp, model, config)
        return Path(export(ExportConfig(checkpoint=tmp, out=out)).model)


def table(names: list[str], parameters: list[int], results: list[dict[str, Any]]) -> list[str]:
    """CPU time of the bench thread (time slices lost to other processes left out) and wall time, medians;
    ratios against the first row's CPU time."""
    ref = results[0]["cpu_ms"]["total"]["p50"]
    lines = [
        "| variant | parameters | front-end CPU ms | inference CPU ms | total CPU ms | × the first row's"
        " | total wall ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, n, r in zip(names, parameters, results):
        c, w = r["cpu_ms"], r["latency_ms"]
        lines.append(
            f"| {name} | {n:,} | {c['frontend']['p50']:.3f} | {c['inference']['p50']:.3f} "
            f"| {c['total']['p50']:.3f} | {c['total']['p50'] / ref:.2f} | {w['total']['p50']:.3f} |"
        )
    return lines


def measure(base: dict[str, Any], variants: dict[str, dict[str, Any]], reference: str, runs: int) -> list[str]:
    """Export every variant and time them with ``reference`` in one interleaved bench run; the report's lines."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Recognizer(reference).path]
        for name, overrides in variants.items():
            print(f"arch_speed: exporting {name}", file=sys.stderr)
            paths.append(str(export_variant(variant_config(base, overrides), Path(tmp) / f"v{len(paths)}.onnx")))
        parameters = [Recognizer(p).contract.parameters for p in paths]
        results = measure_latency(paths, threads=1, seconds=3.0, runs=runs, warmup=20)
    names = [f"`{reference}` (shipped)", *(f"{n}: `{json.dumps(o)}`" if o else n for n, o in variants.items())]
    return [
        f"One interleaved `edge-ser bench` run, {runs} calls each, 3 s of audio, one thread; variants exported with"
        " re-initialised weights (FP32, emotion head only). Medians; total is a whole `predict` call.",
        "",
        *table(names, parameters, results),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=BASE, help="a run record (its first fold's config)")
    parser.add_argument("--reference", default="english", help="a shipped model timed alongside")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=JSON", help="config overrides")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--out", type=Path, help="the report's Markdown file (dated sections)")
    args = parser.parse_args(argv)
    base = next(iter(json.loads(args.base.read_text())["folds"].values()))["config"]
    variants: dict[str, dict[str, Any]] = {f"as in `{args.base.name}`": {}}
    for item in args.variant:
        name, _, text = item.partition("=")
        try:
            variants[name] = json.loads(text)
        except json.JSONDecodeError as exc:
            parser.error(f"--variant {name}: not JSON ({exc})")
    pinned_section(
        "Architecture variants, random weights",
        lambda: measure(base, variants, args.reference, args.runs),
        args.out,
        HEAD,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
