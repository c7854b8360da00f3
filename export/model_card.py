"""A Markdown model card written next to each exported model."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_ser import Recognizer
from edge_ser.bench import cpu_description
from edge_ser.contract import fold_score_key

LICENCES = {
    "ravdess": "RAVDESS, CC BY-NC-SA 4.0 (Livingstone & Russo, 2018): this model inherits the non-commercial "
    "restriction and the share-alike terms.",
    "casia": "CASIA Chinese emotional speech corpus; no terms of use come with the copy used here: research and "
    "evaluation use only.",
    "emodb": "Emo-DB (Burkhardt et al., Interspeech 2005), free for research use.",
}


def latency_ms(path: str | os.PathLike, seconds: float = 3.0, runs: int = 50) -> float:
    """Median time of ``Recognizer.predict`` on ``seconds`` of audio, one thread."""
    rec = Recognizer(path, threads=1)
    x = (0.1 * np.random.default_rng(0).standard_normal(int(seconds * rec.sample_rate))).astype(np.float32)
    for _ in range(5):
        rec.predict(x, sample_rate=rec.sample_rate)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        rec.predict(x, sample_rate=rec.sample_rate)
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def fold_table(report: dict[str, Any] | None) -> list[str]:
    if not report or not report.get("folds"):
        return ["No per-fold report was found beside the checkpoint."]
    lines = ["| fold | UA | WA | test utterances |", "|---|---:|---:|---:|"]
    for name, fold in report["folds"].items():
        test = (fold.get("test") or {}).get("emotion")
        if test:
            lines.append(f"| {name} | {100 * test['ua']:.1f} | {100 * test['wa']:.1f} | {fold.get('n_test', '')} |")
    summary = report.get("summary")
    if summary:
        lines.append(
            f"| **mean ± std** | **{100 * summary['ua_mean']:.1f} ± {100 * summary['ua_std']:.1f}** | "
            f"{100 * summary['wa_mean']:.1f} ± {100 * summary['wa_std']:.1f} | |"
        )
    return lines


def onnx_fold_table(cv: dict[str, Any] | None, shipped: str) -> list[str]:
    """Per-fold UA of the fold models as exported ONNX FP32 and INT8 (from ``provenance.cross_validation``), the
    mean of the kind the shipped file is (``shipped``, see :func:`edge_ser.contract.fold_score_key`) in bold."""
    if not cv or "int8_ua_mean" not in cv:
        return []
    lines = [
        "",
        f"Exported fold models scored through `edge_ser.Recognizer` (run `{cv['run']}`):",
        "",
        "| fold | PyTorch UA | ONNX FP32 UA | ONNX INT8 UA | FP32/INT8 top-1 agreement |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, f in cv["per_fold"].items():
        lines.append(
            f"| {name} | {100 * f['ua']:.1f} | {100 * f['fp32_ua']:.1f} | {100 * f['int8_ua']:.1f} | "
            f"{100 * f['fp32_int8_top1_agreement']:.1f} |"
        )
    means = []  # FP32 then INT8, the shipped kind's in bold
    for key in ("fp32_ua", "int8_ua"):
        cell = f"{100 * cv[key + '_mean']:.1f} ± {100 * cv[key + '_std']:.1f}" if key + "_mean" in cv else ""
        means.append(f"**{cell}**" if key == shipped and cell else cell)
    lines.append(f"| **mean ± std** | | {means[0]} | {means[1]} | |")
    return lines


def error_lines(report: dict[str, Any] | None, labels: tuple[str, ...]) -> list[str]:
    """Where each fold's checkpoint goes wrong on its test speakers (from the run report's confusion matrices):
    the class it gave most often and that class's share of the speaker's utterances, and the class it recognized
    worst. A share far above one class's would show a per-speaker bias, which a speaker profile can correct."""
    folds = {
        name: np.asarray(f["test"]["emotion"]["confusion"])
        for name, f in ((report or {}).get("folds") or {}).items()
        if "confusion" in ((f.get("test") or {}).get("emotion") or {})
    }
    folds = {name: m for name, m in folds.items() if m.shape == (len(labels), len(labels)) and m.sum()}
    if not folds:
        return []
    lines = [
        "",
        "### Where the errors go",
        "Per fold, the class the checkpoint gave its test speakers most often, with its share of their utterances "
        "beside that class's share of their true labels, and the class it recognized worst (its recall).",
        "",
        "| fold | most predicted | share of the predictions | share of the true labels | worst recognized | recall |",
        "|---|---|---:|---:|---|---:|",
    ]
    for name, m in folds.items():
        given, support = m.sum(axis=0), m.sum(axis=1)
        recall = np.where(support > 0, np.diag(m) / np.maximum(support, 1), np.inf)
        top, worst = int(np.argmax(given)), int(np.argmin(recall))
        lines.append(
            f"| {name} | {labels[top]} | {100 * given[top] / m.sum():.0f} % | {100 * support[top] / m.sum():.0f} % | "
            f"{labels[worst]} | {100 * recall[worst]:.0f} % |"
        )
    total = sum(folds.values())
    lines += [
        "",
        "Confusion summed over the folds (rows: true class, columns: predicted):",
        "",
        "| true \\ predicted | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
        *(f"| {t} | " + " | ".join(str(int(v)) for v in row) + " |" for t, row in zip(labels, total)),
    ]
    return lines


def adaptation_section(contract: Any) -> list[str]:
    """How to use a model trained for speaker adaptation, and what it gains as a profile fills."""
    if contract.adaptation != "speaker":
        return []
    lines = [
        "",
        "## Speaker adaptation",
        "This model was trained with each speaker's own feature statistics (`--normalization speaker`). Give it a "
        "profile of its user: `Recognizer(model, profile=SpeakerProfile(min_utterances=1, prior=3))`; each "
        "utterance is then normalized with the statistics of the ones heard before it. Without a profile it uses "
        "the training set's statistics, which is what the ONNX columns above measure; the PyTorch column uses all "
        "of a test speaker's files at once (the transductive bound, which no device has).",
    ]
    ev = contract.provenance.get("adaptation_eval")
    if ev:
        names = {"non_adapted": "non-adapted", "all": "all previous", "transductive": "transductive"}
        keys = [k for k in ev["ua_mean"] if k != "non_adapted"]
        lines += [
            "",
            f"Causal evaluation on the same speaker-independent folds (`benchmarks/adaptation.py`, run `{ev['run']}`, "
            f"prior {ev['prior']:g}): UA % after the profile heard k utterances of the test speaker (mean ± std over "
            f"{ev['folds']} folds, FP32).",
            "",
            "| " + " | ".join(names.get(k, f"k={k}") for k in keys) + " |",
            "|" + "---:|" * len(keys),
            "| " + " | ".join(f"{100 * ev['ua_mean'][k]:.1f} ± {100 * ev['ua_std'][k]:.1f}" for k in keys) + " |",
        ]
    return lines


def extra_corpora_lines(report: dict[str, Any] | None) -> list[str]:
    """Card lines for the other corpora whose relabelled utterances joined training, each with its terms."""
    names = ((report or {}).get("training") or {}).get("extra_corpora") or ()
    return [
        f"- Also trained on {name}, relabelled to this model's classes ([docs/multi-corpus.md]"
        f"(../../docs/multi-corpus.md)). {LICENCES.get(name, 'Terms: see the corpus.')}"
        for name in names
    ]


def write_card(
    model_path: str | os.PathLike, parity: dict[str, Any], report: dict[str, Any] | None, extra: dict[str, Any]
) -> Path:
    """Write ``<model>.md`` and return its path."""
    model_path = Path(model_path)
    rec = Recognizer(model_path)
    c = rec.contract
    dataset = str(c.provenance.get("dataset") or "unknown")
    protocol = c.provenance.get("protocol") or "see the run report"
    lines = [
        f"# {c.name}",
        "",
        *header_lines(model_path, bool(extra.get("int8")), extra.get("machine", "this machine")),
        "",
        "## Outputs",
        *[f"- `{h.name}`: {', '.join(h.labels)}" for h in c.heads],
        "",
        "## Training data and licence",
        f"- Dataset: {dataset}. {LICENCES.get(dataset, '')}",
        (
            "- Trained on every utterance of the corpus (all speakers), with the recipe whose speaker-independent "
            "folds are below."
            if c.provenance.get("fold") == "final"
            else f"- Protocol: {protocol}; fold `{c.provenance.get('fold')}`."
        ),
        *extra_corpora_lines(report),
        f"- Command: `{c.provenance.get('command') or 'not recorded'}`",
        f"- Commit: {c.provenance.get('commit') or 'unknown'}; exported {c.provenance.get('created')}.",
        "",
        "## Speaker-independent results (checkpoint, PyTorch)",
        *fold_table(report),
        *onnx_fold_table(c.provenance.get("cross_validation"), fold_score_key(c.provenance)),
        *error_lines(report, c.heads[0].labels),
        *adaptation_section(c),
        "",
        "## Export parity",
        "```json",
        json.dumps(parity, indent=2),
        "```",
        "",
        "## Known limitations",
        "- Acted emotions from a few speakers of one language; accuracy on spontaneous speech, other languages, "
        "children, far-field or noisy microphones is unknown and likely lower.",
        f"- Analysis window {c.window_seconds:g} s: longer audio is averaged over windows, which blurs emotion changes "
        "(use `predict_segments` for a timeline).",
        "- Emotion categories are the corpus' acted ones; scores are not calibrated probabilities.",
    ]
    card = model_path.with_suffix(".md")
    card.write_text("\n".join(lines) + "\n")
    return card


def machine() -> str:
    """The building machine as cards name it: the CPU as ``edge-ser bench`` names it (model, family, instruction
    sets) and its core count."""
    return f"{cpu_description()}, {os.cpu_count()} cores"


def header_lines(model_path: str | os.PathLike, int8: bool, machine: str = "this machine") -> list[str]:
    """The card's first lines: the file (size, parameters, precision, input) and its latency measured now."""
    model_path = Path(model_path)
    c = Recognizer(model_path).contract
    return [
        f"File `{model_path.name}`: {model_path.stat().st_size:,} bytes, {c.parameters:,} parameters, "
        f"{_precision(c.provenance) if int8 else 'FP32'}, "
        f"{'waveform in (front-end inside the graph)' if c.frontend_in_graph else c.input_kind + ' in'}.",
        f"Latency: {latency_ms(model_path):.2f} ms median for 3 s of audio through `edge_ser.Recognizer` "
        f"(one thread, front-end included; {machine}).",
    ]


def _precision(provenance: dict[str, Any]) -> str:
    """How the INT8 file was quantized, from the choice the export recorded (and the export rule's variant of it,
    when :func:`export.ship.apply_export_rule` replaced the file)."""
    rule = provenance.get("export", {}).get("variant")
    if rule == "fp32":
        if provenance.get("export", {}).get("source") == "fp32":
            return "FP32, the checkpoint's own export (the export rule's choice, see Variants)"
        return "FP32 graph of the INT8 export's weights (the export rule's choice, see Variants)"
    if rule is not None:
        return f"the export rule's `{rule}` variant of the INT8 export (see Variants)"
    chosen = provenance.get("int8", {})
    scheme = {
        "static": "static INT8 (QDQ, per-channel weights)",
        "dynamic": "dynamic INT8 (ConvInteger)",
        "a16w8": "INT8 weights (QDQ, per channel) with 16-bit activations",
    }.get(chosen.get("scheme", "static"), "INT8")
    return f"{scheme}, {chosen.get('float_layers', 0)} leading weight layers in float"
