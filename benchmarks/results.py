"""Regenerates ``benchmarks/RESULTS.md`` and its Pareto plot: every shipped model and seed run, FP32 and INT8.

    python benchmarks/results.py [RUN_DIR...] [--record-only] [--records benchmarks/results/runs]
        [--data-root ../shared/datasets] [--data NAME=PATH ...] [--out benchmarks/RESULTS.md]
        [--plot benchmarks/pareto.png] [--threads 1] [--runs 300] [--reuse]

Two steps. **Record**: each RUN_DIR (a finished ``edge-ser train`` run) has every fold exported to
FP32 and INT8 (calibrated on that fold's training speakers) and both files scored on the fold's test
speakers through ``edge_ser.Recognizer``; those scores, the run's report and the fold configs go to
a small committed record, ``benchmarks/results/runs/<run>.json`` (no weights), so runs trained in
different sessions add up. **Measure**: every recorded speaker-independent run becomes an FP32 and an
INT8 row: UA/WA are mean ± std over folds of the ONNX scores; parameters, MACs, size, latency, cold
start and memory are ``edge-ser bench`` figures of the first fold's graph, timed now. A recorded run
``<corpus>-random-<arch>`` supplies the labelled random-split column (speakers shared; the seed
papers' protocol), unless ``--reproductions`` (``benchmarks/seed_reproductions.py``'s JSON) holds a finished run of
that corpus and architecture trained to convergence on that protocol: its test UA is shown instead. Shipped
models are benched too; their UA is the fold mean their contract records.
``--reuse`` keeps folds an earlier call exported to ``--work``. All timings come from one run on one
machine, which the report names.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import cpu_name, emit, one_core
from edge_ser import Recognizer, bench
from edge_ser.contract import fold_score_key
from edge_ser.model import SHIPPED, resolve, shipped_models
from export.records import export_fold, mean_std, record_run

PRECISIONS = ("fp32", "int8")
RECORDS = Path("benchmarks/results/runs")
REPRODUCTIONS = Path("benchmarks/results/seed-reproductions.json")


def converged_random_split(path: Path) -> dict[tuple[str, str], float]:
    """``{(corpus, arch): test UA}`` of the finished seed reproductions in ``path`` (none if it is missing)."""
    if not path.is_file():
        return {}
    runs = json.loads(path.read_text()).values()
    return {(r["dataset"], r["arch"]): r["test_ua"] / 100 for r in runs if r.get("finished") and r.get("dataset")}


PUBLISHED = {  # the seed papers' own figures; their hardware is not stated
    "audio_resnet": "0.13 M params / 3.35 ms",
    "spectrogram_resnet": "0.39 M params / 1.72 ms",
}


def bench_files(record: dict[str, Any], data: str, work: Path) -> tuple[Path, str]:
    """The first fold's INT8 file (FP32 beside it) to time, and where its graph came from.

    When the run's exports are not at hand (the run was trained on another day), the same graph is
    exported again from the recorded config with re-initialised weights and the recorded number of
    float layers: latency, size and MACs do not depend on the weights' values.
    """
    name, fold = next(iter(record["folds"].items()))
    first = work / record["run"] / f"{name}.onnx"
    if first.is_file() and first.with_suffix(".fp32.onnx").is_file():
        return first, "fold checkpoint"
    from models.arch.registry import build_model
    from models.training.checkpoint import save_checkpoint

    rebuilt = work / record["run"] / "rebuilt" / f"{name}.onnx"
    if not (rebuilt.is_file() and rebuilt.with_suffix(".fp32.onnx").is_file()):
        print(f"results: re-exporting the graph of {record['run']}/{name}", file=sys.stderr)
        rebuilt.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            save_checkpoint(tmp, build_model(fold["config"]), fold["config"])
            chosen = fold["parity"]
            export_fold(Path(tmp), data, rebuilt, chosen.get("int8_float_layers"), chosen.get("int8_scheme", "static"))
    return rebuilt, "same graph, re-initialised weights"


def run_entries(
    record: dict[str, Any],
    path: Path,
    data: str,
    work: Path,
    options: argparse.Namespace,
    converged: dict[tuple[str, str], float],
) -> list[dict[str, Any]]:
    """FP32 and INT8 entries of one recorded run (read from ``path``): fold-mean ONNX UA/WA plus bench
    figures of fold 1's graph; ``converged``: :func:`converged_random_split`'s random-split UAs."""
    report, folds = record["report"], record["folds"]
    parity = [f["parity"] for f in folds.values()]
    dataset = report["dataset"]
    random_record = path.with_name(path.name.replace(f"{dataset}-", f"{dataset}-random-", 1))
    random_ua = converged.get((dataset, report["arch"]))
    if random_ua is None and random_record != path and random_record.is_file():
        random_ua = json.loads(random_record.read_text())["report"]["summary"]["ua_mean"]
    first, graph = bench_files(record, data, work)
    entries = []
    for precision in PRECISIONS:
        entries.append(
            {
                "name": f"{report['arch']} ({dataset})",
                "arch": report["arch"],
                "corpus": dataset,
                "precision": precision,
                "protocol": report["protocol"],
                "ua": mean_std([p[f"{precision}_ua"] for p in parity]),
                "wa": mean_std([p[f"{precision}_wa"] for p in parity]),
                "ua_per_fold": {name: f["parity"][f"{precision}_ua"] for name, f in folds.items()},
                "fp32_int8_top1_agreement": mean_std([p["fp32_int8_top1_agreement"] for p in parity]),
                "random_split_ua": random_ua if precision == "fp32" else None,
                "int8_float_layers": [p.get("int8_float_layers") for p in parity] if precision == "int8" else None,
                "int8_scheme": [p.get("int8_scheme", "static") for p in parity] if precision == "int8" else None,
                "published": PUBLISHED.get(report["arch"]),
                "command": report.get("command"),
                "timed_graph": graph,
                "bench": bench_file(first.with_suffix(".fp32.onnx") if precision == "fp32" else first, options),
            }
        )
    return entries


def shipped_entries(options: argparse.Namespace) -> list[dict[str, Any]]:
    """Shipped models, benched as installed; UA is the speaker-independent fold mean their contract records, of
    the recipe's fold models exported as the file is (FP32 or INT8, :func:`edge_ser.contract.fold_score_key`)."""
    entries = []
    for name in [n for n in shipped_models() if n in SHIPPED]:
        rec = Recognizer(name)
        cv = (rec.contract.provenance or {}).get("cross_validation") or {}
        key = fold_score_key(rec.contract.provenance or {})  # the fold models of the kind the file is
        ua = {"mean": cv[f"{key}_mean"], "std": cv.get(f"{key}_std", 0.0), "n": cv.get("folds", 0)} if cv else None
        entries.append(
            {
                "name": f"{name} (shipped)",
                "arch": rec.contract.name,
                "corpus": rec.contract.provenance.get("dataset"),
                "precision": _precision(name, rec.contract.provenance),
                "protocol": cv.get("protocol"),
                "ua": ua,
                "wa": None,
                "random_split_ua": None,
                "published": None,
                "command": rec.contract.provenance.get("command"),
                "bench": bench_file(resolve(name), options),
            }
        )
    return entries


def _precision(name: str, provenance: dict[str, Any]) -> str:
    """``int8`` or ``fp32`` from the file name; a base-tier file records its variant (FP16 weights are fp32 compute)."""
    variant = provenance.get("variant")
    if variant is not None:
        return "int8" if variant.startswith("int8") else {"fp16w": "fp16w"}.get(variant, "fp32")
    return "int8" if "int8" in resolve(name).name else "fp32"


def bench_file(path: Path, options: argparse.Namespace) -> dict[str, Any]:
    """A placeholder for ``path``'s figures, which :func:`measure` fills for all entries in one run."""
    return {"path": str(path)}


def measure(entries: list[dict[str, Any]], options: argparse.Namespace) -> None:
    """``edge-ser bench`` figures of every entry's file, all timed in one interleaved run."""
    paths = list(dict.fromkeys(e["bench"]["path"] for e in entries))
    print(f"results: benchmarking {len(paths)} files, interleaved", file=sys.stderr)
    args = argparse.Namespace(
        seconds=options.seconds, threads=options.threads, runs=options.runs, warmup=20, fresh=bench.FRESH_RUNS
    )
    with one_core():
        figures = bench.bench_models([Recognizer(p, threads=options.threads) for p in paths], args)
    by_path = dict(zip(paths, figures))
    for e in entries:
        e["bench"] = by_path[e["bench"]["path"]]


BASELINES = ("audio_resnet", "spectrogram_resnet")  # the seed architectures the ratio columns compare with


def speedups(entries: list[dict[str, Any]]) -> None:
    """``entry["speedup"][arch]``: ``(wall, cpu)``, that seed architecture's FP32 total p50 over this entry's,
    on the same corpus (the same number of classes), from the same run; wall-clock and CPU time."""
    for e in entries:
        e["speedup"] = {}
        for arch in BASELINES:
            base = [b for b in entries if b["arch"] == arch and b["precision"] == "fp32" and b["corpus"] == e["corpus"]]
            if base:
                e["speedup"][arch] = [
                    base[0]["bench"][clock]["total"]["p50"] / e["bench"][clock]["total"]["p50"]
                    for clock in ("latency_ms", "cpu_ms")
                ]


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower latency, higher UA), by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def machine() -> dict[str, Any]:
    """CPU model, cores and the versions that shape the figures."""
    import numpy
    import onnxruntime

    versions = {"python": platform.python_version(), "numpy": numpy.__version__, "onnxruntime": onnxruntime.__version__}
    for module in ("torch", "onnx"):
        with contextlib.suppress(ImportError):
            versions[module] = __import__(module).__version__
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "versions": versions,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _pct(stat: dict[str, float] | None) -> str:
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}" if stat else "n/a"


def render(
    entries: list[dict[str, Any]], host: dict[str, Any], command: str, plot: str | None, note: str | None = None
) -> list[str]:
    """RESULTS.md: how it was measured, one comparison table, the Pareto front per corpus, published figures."""
    b0 = entries[0]["bench"] if entries else {"seconds": 3, "threads": 1, "runs": 0}
    versions = ", ".join(f"{k} {v}" for k, v in host["versions"].items())
    head = [
        "model",
        "precision",
        "params",
        "MAC/s",
        "size KiB",
        "total ms p50/p90/p99",
        "front-end ms p50",
        "inference ms p50",
        "RTF",
        "total CPU ms p50",
        "× faster than AudioResNet FP32 (wall / CPU)",
        "× faster than SpectrogramResNet FP32 (wall / CPU)",
        "cold start ms (process / in-process)",
        "peak RSS MiB",
        "UA % (speaker-indep.)",
        "WA %",
        "folds",
        "FP32/INT8 top-1 agree %",
        "UA % random split",
        "published (paper)",
    ]
    lines = [
        "# edge-ser results",
        "",
        f"Measured in one run on {host['cpu']} ({host['cores']} cores), {host['os']}; {versions}; {host['date']}.",
        f"Latency: `edge-ser bench` on {b0['seconds']:g} s of audio, {b0['threads']} thread, {b0['runs']} runs after "
        "warm-up, every file in turn call by call (ratios from one run), pinned to one core of a machine shared with "
        "other jobs: wall-clock figures include time slices lost to them, the CPU-time column (this thread's) does "
        "not; RTF = total p50 / audio duration. "
        "UA/WA: the ONNX files scored through `edge_ser.Recognizer` on "
        "each speaker-independent fold's test speakers, mean ± std over folds. The random-split column (speakers "
        "shared between training and test, the seed papers' protocol; torch scores of one 80/20 fold: the runs "
        "trained to convergence in results/seed-reproductions.md where there is one, else 12 epochs) is not "
        "comparable with the speaker-independent one.",
        "",
        f"Regenerate: `{command}`",
        "",
        "| " + " | ".join(head) + " |",
        "|---|---|" + "---:|" * (len(head) - 3) + "---|",
    ]
    for e in entries:
        b = e["bench"]
        lat = b["latency_ms"]
        agree = e.get("fp32_int8_top1_agreement")
        cells = [
            e["name"],
            e["precision"].upper(),
            f"{b['parameters']:,}",
            bench.si(b["macs_per_second"]),
            f"{b['size_bytes'] / 1024:.0f}",
            " / ".join(f"{lat['total'][q]:.2f}" for q in ("p50", "p90", "p99")),
            f"{lat['frontend']['p50']:.2f}",
            f"{lat['inference']['p50']:.2f}",
            f"{b['rtf']:.4f}",
            f"{b['cpu_ms']['total']['p50']:.2f}",
            *(" / ".join(f"{v:.2f}" for v in e["speedup"][a]) if a in e.get("speedup", {}) else "" for a in BASELINES),
            f"{b['cold_start_ms']:.0f} / {b['in_process_ms']:.0f}",
            f"{b['peak_rss_mb']:.0f}",
            _pct(e["ua"]),
            _pct(e["wa"]),
            str(e["ua"]["n"]) if e["ua"] else "",
            f"{100 * agree['mean']:.1f}" if agree and e["precision"] == "int8" else "",
            f"{100 * e['random_split_ua']:.1f}" if e.get("random_split_ua") is not None else "",
            e["published"] or "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Pareto front (UA vs total p50 latency, per corpus)", ""]
    for corpus in sorted({e["corpus"] for e in entries if e["ua"]}):
        group = [e for e in entries if e["corpus"] == corpus and e["ua"]]
        front = pareto([(e["bench"]["latency_ms"]["total"]["p50"], e["ua"]["mean"]) for e in group])
        names = ", ".join(f"{group[i]['name']} {group[i]['precision'].upper()}" for i in front)
        lines.append(f"- {corpus}: {names}")
    if plot:
        lines += ["", f"![UA vs latency]({plot})"]
    shipped = [e for e in entries if e["name"].endswith("(shipped)")]
    lines += [
        "",
        "## Notes",
        "",
        *([f"- {note}"] if note else []),
        "- Shipped models: " + (", ".join(e["name"] for e in shipped) if shipped else "none yet."),
        "- INT8 files: static INT8 (QDQ, per-channel weights) with the fewest of 1-3 leading weight layers in float "
        "that reaches 98% top-1 agreement with FP32 on the fold's validation audio plus speed-perturbed and noisy "
        "copies, else whichever of those, dynamic INT8 and INT8 weights with 16-bit activations agrees best there "
        "(per fold: `int8_scheme` and `int8_float_layers` in RESULTS.json).",
        "- Timed graphs: a run's first fold as exported when it was recorded, or, for runs trained in an earlier "
        "session, the same graph exported from the recorded config with re-initialised weights (latency, size and "
        "MACs do not depend on weight values): "
        + ", ".join(f"{e['name']}: {e['timed_graph']}" for e in entries[::2] if e.get("timed_graph"))
        + ".",
        "- Published seed figures (AudioResNet 0.13M params / 3.35 ms, SpectrogramResNet 0.39M / 1.72 ms) come "
        "from the papers, whose hardware is not stated; P-CNN's paper gives no latency.",
        "- Training commands: " + "; ".join(f"{e['name']}: `{e['command']}`" for e in entries[::2] if e["command"]),
    ]
    return lines


def draw(entries: list[dict[str, Any]], path: Path) -> None:
    """UA vs p50 latency, marker area proportional to file size, Pareto front per corpus."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = dict(zip(sorted({e["corpus"] for e in entries}), ("tab:blue", "tab:red", "tab:green", "tab:purple")))
    for corpus, color in colors.items():
        group = [e for e in entries if e["corpus"] == corpus and e["ua"]]
        xy = [(e["bench"]["latency_ms"]["total"]["p50"], 100 * e["ua"]["mean"]) for e in group]
        for e, (x, y) in zip(group, xy):
            marker = "s" if e["precision"] == "int8" else "o"
            ax.scatter(x, y, s=e["bench"]["size_bytes"] / 4096, c=color, marker=marker, alpha=0.6, edgecolors="k")
            ax.annotate(f"{e['arch']} {e['precision']}", (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
        front = [xy[i] for i in pareto([(x, y) for x, y in xy])]
        if front:
            ax.step(*zip(*front), where="post", color=color, linewidth=1, label=f"{corpus} Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("total latency p50 per 3 s of audio (ms, log scale)")
    ax.set_ylabel("UA % (speaker-independent, mean over folds)")
    ax.set_title("edge-ser: accuracy vs latency (circle FP32, square INT8; area ~ file size)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="*", type=Path, metavar="RUN_DIR", help="finished train runs to record")
    parser.add_argument("--records", type=Path, default=RECORDS, help="where run records live (committed)")
    parser.add_argument("--record-only", action="store_true", help="record the RUN_DIRs; measure nothing else")
    parser.add_argument("--no-export", action="store_true", help="record the runs' reports only (no ONNX scores)")
    parser.add_argument("--data-root", default="../shared/datasets", help="corpus folders, <root>/<dataset>")
    parser.add_argument("--data", nargs="*", default=[], metavar="NAME=PATH", help="a corpus' location, overriding")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/RESULTS.md"))
    parser.add_argument("--plot", type=Path, default=Path("benchmarks/pareto.png"))
    parser.add_argument("--work", type=Path, default=Path("runs/results-onnx"), help="where exported files go")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=300, help="timed calls per model")
    parser.add_argument("--note", help="a line for the report's notes (e.g. what else ran on the machine)")
    parser.add_argument(
        "--reproductions",
        type=Path,
        default=REPRODUCTIONS,
        help="seed reproductions trained to convergence (their random-split UA replaces the 12-epoch records')",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="keep folds already exported to --work by this script (else re-export)"
    )
    args = parser.parse_args(argv)
    places = dict(item.split("=", 1) for item in args.data)

    def location(dataset: str) -> str:
        return places.get(dataset, os.path.join(args.data_root, dataset))

    for run in args.run_dirs:
        dataset = json.loads((run / "report.json").read_text())["dataset"]
        path = record_run(run, location(dataset), args.work, args.records, args.reuse, export=not args.no_export)
        print(f"results: recorded {path}")
    if args.record_only:
        return 0
    host = machine()
    entries = shipped_entries(args)
    converged = converged_random_split(args.reproductions)
    for path in sorted(args.records.glob("*.json")):
        record = json.loads(path.read_text())
        if record["report"]["protocol"] != "random" and record["folds"]:
            entries += run_entries(record, path, location(record["report"]["dataset"]), args.work, args, converged)
    if not entries:
        parser.error(f"nothing to measure: no shipped model and no run recorded in {args.records}")
    measure(entries, args)
    speedups(entries)
    command = shlex.join(["python", "benchmarks/results.py", *(argv if argv is not None else sys.argv[1:])])
    draw(entries, args.plot)
    plot_link = os.path.relpath(args.plot, args.out.parent)
    emit(render(entries, host, command, plot_link, args.note), args.out)
    args.out.with_suffix(".json").write_text(json.dumps({"machine": host, "entries": entries}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
