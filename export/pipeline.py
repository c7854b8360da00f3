"""Exporting a trained checkpoint (``edge-ser export`` as a function): ONNX FP32 and INT8, parity with torch,
a model card.

    from export import ExportConfig, export

    report = export(ExportConfig(checkpoint="runs/x/ZhaoZuoxiang", out="zh.onnx", int8=True,
                                 data="../shared/datasets/casia"))
    print(report.parity["int8_ua"], report.card)

With ``data`` (the corpus the checkpoint was trained on), INT8 calibration uses training speakers of the
checkpoint's fold and parity is measured on its test speakers. With ``int8`` the INT8 file is written at
``out`` and the FP32 one beside it as ``<name>.fp32.onnx``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_ser import Recognizer
from edge_ser.contract import ModelContract
from edge_ser.errors import ModelError
from edge_ser.windows import plan
from models.arch.heads import PRIMARY

from . import parity
from .model_card import latency_ms, machine, write_card
from .onnx_export import example_input, export_module, make_contract, provenance_from, to_onnx

if TYPE_CHECKING:
    from models.arch.heads import SERModel
    from models.data.corpora import Utterance


def _load(checkpoint: str) -> tuple[SERModel, dict[str, Any]]:
    from models.training.checkpoint import CONFIG, WEIGHTS, load_checkpoint

    directory = Path(checkpoint)
    for name in (CONFIG, WEIGHTS):
        if not (directory / name).is_file():
            raise ModelError(f"{directory}: not a checkpoint (no {name})")
    try:
        return load_checkpoint(directory)
    except (KeyError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{directory}: checkpoint config does not fit its weights ({exc})") from None


def _split(
    config: dict[str, Any], data: str, protocol: str, seed: int
) -> tuple[list[Utterance], list[Utterance], list[Utterance]]:
    """(calibration utterances from the fold's training part, its validation utterances -- unseen by the
    weights, so INT8 settings are chosen on them --, evaluation utterances from its test speakers)."""
    from models.data.corpora import load_corpus
    from models.data.protocols import make_folds

    training = config.get("training", {})
    corpus = load_corpus(training["corpus"], data)
    utts = corpus.utterances
    if training.get("fold") == "final":
        order = np.random.default_rng(seed).permutation(len(utts))
        return [utts[i] for i in order], [], []
    folds = {f.name: f for f in make_folds(corpus, protocol, seed=training.get("seed", 0))}
    fold = folds.get(training.get("fold"))
    if fold is None:
        raise ModelError(f"fold {training.get('fold')!r} is not in protocol {protocol!r} of {corpus.name}")
    train = [utts[i] for i in np.random.default_rng(seed).permutation(fold.train)]
    return train, [utts[i] for i in fold.val], [utts[i] for i in fold.test]


def _windows(contract: ModelContract, signal: np.ndarray) -> list[np.ndarray]:
    """Model inputs of ``signal`` cut into analysis windows as the runtime cuts them."""
    window = int(contract.window_seconds * contract.sample_rate)
    hop = int(contract.hop_seconds * contract.sample_rate)
    return [contract.model_input(signal[s:e]) for s, e in plan(len(signal), window, hop)]


def _calibration_inputs(contract: ModelContract, utterances: list[Utterance], count: int) -> list[np.ndarray]:
    from edge_ser.audio import load_audio

    inputs = []
    for utt in utterances[:count]:
        inputs += _windows(contract, load_audio(utt.path, target_rate=contract.sample_rate)[0])
    return inputs


SELECTION_SPEEDS = (0.85, 1.15)
SELECTION_SNR_DB = 10.0


def _selection_inputs(contract: ModelContract, utterances: list[Utterance]) -> list[np.ndarray]:
    """Windows of the validation utterances, and of speed-perturbed (0.85, 1.15) and noisy (10 dB SNR)
    copies: the model is as unsure of those as of an unseen speaker, which the plain validation
    utterances (training speakers) do not show -- on a CASIA P-CNN fold, static INT8 agreed with FP32
    on 100% of them, on 96.7% of these windows and on 91.7% of the test speaker's utterances
    (benchmarks/results/int8-variants-casia-pcnn.md)."""
    from edge_ser.audio import load_audio
    from models.data.augment import add_noise, speed_perturb

    rng = np.random.default_rng(0)
    inputs = []
    for utt in utterances:
        signal, _ = load_audio(utt.path, target_rate=contract.sample_rate)
        for x in [
            signal,
            *(speed_perturb(signal, f) for f in SELECTION_SPEEDS),
            add_noise(signal, SELECTION_SNR_DB, rng),
        ]:
            inputs += _windows(contract, x)
    return inputs


def kept_heads(available: list[str], keep_aux: list[str] | None) -> list[str]:
    """The heads an export keeps, in the model's order: emotion, plus every auxiliary head
    (``--keep-aux``), the named ones (``--keep-aux gender chars``) or none (no flag)."""
    if keep_aux is None:
        return [PRIMARY]
    unknown = sorted(set(keep_aux) - set(available))
    if unknown:
        raise ModelError(f"--keep-aux: the model has no head {', '.join(unknown)} (it has {', '.join(available)})")
    return [h for h in available if h == PRIMARY or not keep_aux or h in keep_aux]


@dataclass(frozen=True)
class ExportConfig:
    """What ``edge-ser export CHECKPOINT`` writes; the fields are its options (see :mod:`export.cli`).

    ``keep_aux``: None keeps only the emotion head, ``()`` every head, else the named auxiliary heads.
    ``scheme``/``float_layers``: the INT8 scheme and float layers (default: chosen on validation audio).
    ``cv_record``/``adaptation_record``: run records whose per-fold results go into the contract and card;
    ``command``: the command that reproduces the file (default: the training command)."""

    checkpoint: str | Path
    out: str | Path
    int8: bool = False
    waveform_in: bool = False
    keep_aux: tuple[str, ...] | None = None
    data: str | Path | None = None
    protocol: str = "default"
    calibration: int = 300
    float_layers: int | None = None
    scheme: str | None = None
    name: str | None = None
    cv_record: str | Path | None = None
    adaptation_record: str | Path | None = None
    command: str | None = None


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote (the model file and its card) and its parity report: torch vs ONNX logits, and
    with ``data`` FP32 (and INT8) UA/WA on the fold's test speakers, INT8 scheme, sizes and latency."""

    model: Path
    card: Path
    parity: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``edge-ser export`` prints."""
        return {"model": str(self.model), "card": str(self.card), "parity": self.parity}


def export(config: ExportConfig) -> ExportReport:
    """Export ``config.checkpoint`` as ``config.out`` (see :class:`ExportConfig`) and return what it wrote."""
    model, model_config = _load(str(config.checkpoint))
    heads = kept_heads(list(model.head_names), None if config.keep_aux is None else list(config.keep_aux))
    protocol = model_config.get("training", {}).get("protocol") or config.protocol
    provenance = {**provenance_from(model_config, str(config.checkpoint)), "protocol": protocol}
    if config.command:
        provenance["command"] = config.command
    cv_report = None
    if config.cv_record:
        cv_report, provenance["cross_validation"] = cross_validation(config.cv_record)
    if config.adaptation_record:
        provenance["adaptation_eval"] = adaptation_summary(config.adaptation_record)
    contract = make_contract(model_config, heads, config.waveform_in, provenance, config.name)
    module = export_module(model, contract)
    out = Path(config.out)
    fp32 = out.with_suffix(".fp32.onnx") if config.int8 else out
    to_onnx(module, contract, fp32)

    calibration, validation, evaluation = ([], [], [])
    if config.data:
        calibration, validation, evaluation = _split(model_config, str(config.data), protocol, seed=0)
    probe = [example_input(contract, s)[0].numpy() for s in (0.5, 1.0, 3.0)]
    if calibration:
        probe += _calibration_inputs(contract, calibration, 5)
    report: dict[str, Any] = {"torch_vs_onnx_fp32_max_abs_logit_diff": parity.logits_diff(module, fp32, probe)}

    if config.int8:
        if not calibration:
            raise ModelError("--int8 needs --data: calibration uses real audio from the training speakers")
        from .quantize import quantize_int8

        inputs = _calibration_inputs(contract, calibration, config.calibration)
        selection = _selection_inputs(contract, validation) if validation else None
        quantize_int8(fp32, out, inputs, contract, config.float_layers, selection, config.scheme)
        chosen = Recognizer(out).contract.provenance["int8"]
        report.update(
            int8_scheme=chosen["scheme"],
            int8_float_layers=chosen["float_layers"],
            fp32_bytes=fp32.stat().st_size,
            int8_bytes=out.stat().st_size,
            fp32_latency_ms_3s=latency_ms(fp32),
            int8_latency_ms_3s=latency_ms(out),
        )

    if evaluation:
        audio = [u.path for u in evaluation]
        labels = [u.emotion for u in evaluation]
        reference = parity.evaluate(fp32, audio, labels)
        report.update(evaluation_utterances=len(audio), fp32_ua=reference["ua"], fp32_wa=reference["wa"])
        if config.int8:
            quant = parity.evaluate(out, audio, labels)
            report.update(
                int8_ua=quant["ua"], int8_wa=quant["wa"], fp32_int8_top1_agreement=parity.agreement(reference, quant)
            )
        if contract.frontend_in_graph:
            with tempfile.TemporaryDirectory() as tmp:
                plain = make_contract(model_config, heads, False, contract.provenance, contract.name)
                feature_in = to_onnx(export_module(model, plain), plain, Path(tmp) / "features.onnx")
                report["waveform_in_vs_feature_in_top1_agreement"] = parity.agreement(
                    reference, parity.evaluate(feature_in, audio, labels)
                )
    card = write_card(
        out, report, cv_report or _run_report(str(config.checkpoint)), {"int8": config.int8, "machine": machine()}
    )
    return ExportReport(model=out, card=card, parity=report)


def cross_validation(record_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(run report, contract summary) of a run record: torch and ONNX FP32/INT8 UA per fold, and means."""
    try:
        record = json.loads(Path(record_path).read_text())
        report, folds = record["report"], record["folds"]
        summary = report["summary"]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{record_path}: not a run record ({exc})") from None
    per_fold = {
        name: {
            "ua": report["folds"][name]["test"]["emotion"]["ua"],
            **{k: fold["parity"][k] for k in ("fp32_ua", "int8_ua", "fp32_int8_top1_agreement") if k in fold["parity"]},
        }
        for name, fold in folds.items()
    }
    cv = {
        "run": record["run"],
        "protocol": report["protocol"],
        "folds": len(per_fold),
        "ua_mean": summary["ua_mean"],
        "ua_std": summary["ua_std"],
        "wa_mean": summary["wa_mean"],
        "per_fold": per_fold,
    }
    for key in ("fp32_ua", "int8_ua"):
        scores = [f[key] for f in per_fold.values() if key in f]
        if scores and len(scores) == len(per_fold):
            cv.update({f"{key}_mean": float(np.mean(scores)), f"{key}_std": float(np.std(scores))})
    return report, cv


def adaptation_summary(record_path: Path) -> dict[str, Any]:
    """Mean UA over folds per adaptation budget (utterances heard) of a ``benchmarks/adaptation.py`` record."""
    try:
        record = json.loads(Path(record_path).read_text())
        folds = record["folds"]
        keys = [k for k in next(iter(folds.values())) if all(k in f for f in folds.values())]
        return {
            "run": record["run"],
            "prior": float(record.get("prior") or 0.0),
            "folds": len(folds),
            "ua_mean": {k: float(np.mean([f[k] for f in folds.values()])) for k in keys},
            "ua_std": {k: float(np.std([f[k] for f in folds.values()])) for k in keys},
        }
    except (OSError, ValueError, KeyError, StopIteration, TypeError) as exc:
        raise ModelError(f"{record_path}: not an adaptation record ({exc})") from None


def _run_report(checkpoint: str) -> dict[str, Any] | None:
    path = Path(checkpoint).parent / "report.json"
    return json.loads(path.read_text()) if path.is_file() else None
