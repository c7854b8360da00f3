"""``edge-ser train`` (also ``python -m models.train``): train and evaluate an architecture on a corpus, fold by fold.

The command line is parsed into a :class:`~models.training.config.RunConfig` and handed to
:func:`models.training.train`, which the Python API calls directly. For every fold of the chosen protocol
the trainer fits normalization statistics on the fold's training utterances, trains on random fixed-length
crops, selects the epoch with the best validation UA and evaluates it on whole test utterances as the
runtime does (:mod:`models.training.loop`). ``--resume`` picks an interrupted run up at its last finished
epoch, with identical results.

    python -m models.train --arch pcnn --dataset casia --data ../shared/datasets/casia --out runs/x

``--model`` is the old name of ``--arch`` (deprecated: in ``edge-ser predict``, ``--model`` is a shipped model).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_ser.errors import EdgeSERError

from ..arch.heads import PRIMARY
from ..arch.registry import ARCHITECTURES
from ..data.augment import Augment
from ..data.batches import PADS
from ..data.features import DEFAULT_CACHE_DIR
from . import distill, distributed
from .config import RunConfig, TrainConfig
from .ensemble import EnsembleConfig
from .report import REPORT
from .run import train


class _DeprecatedAlias(argparse.Action):
    """Stores the value like the option it stands for, with a note that this name is going away."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None):
        print(f"{parser.prog}: {option} is deprecated, use --{self.dest}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _parse_aux(items: Sequence[str], option: str = "--aux") -> dict[str, float]:
    aux = {}
    for item in items:
        name, _, weight = item.partition("=")
        if not name or name == PRIMARY:
            raise ValueError(f"bad {option} {item!r}: expected NAME=WEIGHT with NAME an utterance field such as gender")
        aux[name] = float(weight) if weight else 1.0
    return aux


def _parse_backbone(text: str | None) -> dict[str, Any]:
    """``--backbone``: a JSON object of the backbone's keyword arguments."""
    if not text:
        return {}
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--backbone takes a JSON object, e.g. '{{\"depth\": 1}}': {exc}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"--backbone takes a JSON object, e.g. '{{\"depth\": 1}}', got {text!r}")
    return spec


def _parse_range(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    lo, _, hi = text.partition(":")
    return float(lo), float(hi or lo)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` options to ``parser`` (the ``edge-ser`` CLI mounts this as ``edge-ser train``)."""
    add = parser.add_argument
    arch = parser.add_mutually_exclusive_group(required=True)
    arch.add_argument("--arch", choices=sorted(ARCHITECTURES), help="architecture to train")
    alias = {"dest": "arch", "choices": sorted(ARCHITECTURES), "action": _DeprecatedAlias, "help": argparse.SUPPRESS}
    arch.add_argument("--model", **alias)  # the old name, kept working
    add("--dataset", required=True, help="corpus name, as models.data.corpora.load_corpus knows it (e.g. casia)")
    add("--data", required=True, help="corpus root directory")
    add("--out", required=True, help="run directory (fold subdirectories, report.json)")
    add("--protocol", default="default", help="evaluation protocol for models.data.protocols.make_folds (e.g. loso)")
    add("--folds", help="run only these folds: comma-separated indices or names")
    add(
        "--final",
        action="store_true",
        help="train one model on all utterances for exactly --epochs epochs (no validation, no test)",
    )
    add(
        "--aux",
        nargs="*",
        default=[],
        metavar="NAME=WEIGHT",
        help="auxiliary heads from utterance fields with their loss weights, e.g. gender=0.3 speaker=0.1",
    )
    add(
        "--adversarial",
        nargs="*",
        default=[],
        metavar="NAME=WEIGHT",
        help="auxiliary heads trained through a gradient reversal, so the embedding hides what they predict, "
        "e.g. speaker=0.1 (extra corpora's speakers count as classes too)",
    )
    add("--frontend", help="front-end override as JSON (FrontEnd.to_dict() form); default: the model's own")
    add(
        "--backbone",
        help="the backbone's keyword arguments as JSON, e.g. '{\"depth\": 1}' (edge_cnn without its residual blocks)",
    )
    add(
        "--init",
        metavar="RUN_DIR",
        help="start each fold from the weights of the same fold in this finished run (same corpus, protocol and "
        "seed; same architecture and heads): fine-tuning, e.g. on another front-end",
    )
    add("--epochs", type=int, default=30)
    add("--batch-size", type=int, default=32)
    add("--lr", type=float, default=1e-3)
    add("--weight-decay", type=float, default=1e-4)
    add("--patience", type=int, default=10, help="early-stopping patience in epochs (0: off)")
    add("--seed", type=int, default=0)
    add("--window", type=float, default=3.0, help="analysis window in seconds (training crop and evaluation)")
    add("--hop", type=float, default=1.0, help="hop between evaluation windows in seconds")
    add("--crop", type=float, help="training crop in seconds (default: --window)")
    add("--min-seconds", type=float, default=0.25, help="shortest input the exported model accepts")
    add("--pad", choices=PADS, default="repeat", help="how crops of short utterances are filled")
    add(
        "--transcript-max",
        type=float,
        metavar="SECONDS",
        help="transcript (CTC) heads train on whole utterances up to this long (default: all)",
    )
    add("--noise-snr", metavar="LO[:HI]", help="additive white noise at an SNR (dB) drawn from LO..HI")
    add("--gain-db", type=float, default=0.0, help="random gain within +-DB")
    add("--shift", type=float, default=0.0, help="random time shift up to +-SECONDS")
    add("--speed", metavar="F1,F2,...", help="speed perturbation factors, e.g. 0.9,1.0,1.1")
    add(
        "--pitch",
        metavar="S1,S2,...",
        help="pitch shifts in semitones, e.g. --pitch=-3,3 (tempo kept; cached copies and teacher views)",
    )
    add(
        "--noise-views",
        metavar="SNR1,SNR2,...",
        help="white noise at these SNRs in dB, e.g. 10,20, as cached copies each with its own teacher views "
        "(--noise-snr draws fresh noise every step, and its crops keep the clean clip's teacher targets)",
    )
    add("--aug-prob", type=float, default=0.5, help="chance of each waveform augmentation per example")
    add("--time-mask", type=int, default=0, help="SpecAugment: widest time mask in frames")
    add("--freq-mask", type=int, default=0, help="SpecAugment: widest frequency mask in feature bins")
    add("--masks", type=int, default=2, help="SpecAugment: masks of each kind per example")
    add(
        "--freq-warp",
        type=float,
        default=0.0,
        help="stretch band features' frequency axis by a factor within 1 +- this (vocal tract length "
        "perturbation on log-mel), with chance --aug-prob",
    )
    add(
        "--speaker-swap",
        type=float,
        default=0.0,
        metavar="P",
        help="chance per example that its voice offset (its speaker's mean normalized feature minus its corpus' "
        "mean) is swapped for another training speaker's",
    )
    add("--label-smoothing", type=float, default=0.0, help="label smoothing of every head's cross-entropy")
    add("--mixup", type=float, default=0.0, metavar="ALPHA", help="mixup with Beta(ALPHA, ALPHA) weights (0: off)")
    add(
        "--ema",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="validate and keep an exponential moving average of the weights with this decay per step (0: off)",
    )
    add(
        "--normalization",
        choices=("global", "utterance", "speaker"),
        default="global",
        help="feature normalization: training-set statistics, each window's own, or each speaker's own "
        "(test speakers: all their test utterances, the transductive upper bound of adaptation)",
    )
    add(
        "--teacher",
        metavar="ENCODER[:BLOCK]",
        help="distil from a Whisper teacher's pooled block features, e.g. whisper-tiny.en:2 (without :BLOCK, the "
        "encoder's middle block; models.training.distill; cache them first with python -m models.teachers.cache)",
    )
    add("--distill-temperature", type=float, default=4.0, help="temperature of the teacher's soft labels")
    add("--distill-soft", type=float, default=1.0, help="weight of the soft-label loss")
    add("--distill-features", type=float, default=1.0, help="weight of the teacher-feature regression loss")
    add(
        "--distill-frames",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="weight of a frame-level loss: the student's frames regress the teacher's frames of the same block "
        "(cache them with python -m models.teachers.cache --frames); 0: off",
    )
    add(
        "--distill-heads",
        choices=distill.HEADS,
        default="own",
        help="what the teacher heads that give soft labels fit on: the corpus' own training speakers, or all "
        "training utterances including --extra-corpus ones (each clip still labelled by a head that never heard it)",
    )
    add(
        "--distill-standardize",
        choices=distill.STANDARDIZE,
        default="training",
        help="the teacher's features standardized with the fold's training statistics, or each training speaker with "
        "its own (targets without the speaker's offset, as a speaker-adaptive student gets them)",
    )
    add(
        "--transfer",
        nargs="*",
        default=[],
        metavar="NAME=ROOT",
        help="with --teacher: other corpora whose audio joins as a transfer set (teacher losses only), "
        "e.g. casia=../shared/datasets/casia emodb=../shared/datasets/emodb",
    )
    add("--transfer-weight", type=float, default=1.0, help="weight of the transfer set's teacher losses")
    add(
        "--ensemble-teacher",
        nargs="+",
        metavar="RUN",
        help="finished runs of the same corpus and protocol whose same fold teaches the student their averaged "
        "probabilities on its own crops (models.training.ensemble)",
    )
    add("--ensemble-weight", type=float, default=1.0, help="weight of the ensemble teacher's loss")
    add("--ensemble-temperature", type=float, default=2.0, help="temperature of the ensemble teacher's probabilities")
    add(
        "--extra-corpus",
        nargs="*",
        default=[],
        metavar="NAME=ROOT",
        help="other corpora whose utterances join every fold's training part as labelled data, relabelled to "
        "this corpus' classes (models.data.label_map: RAVDESS calm -> neutral; Emo-DB boredom and classes this "
        "corpus lacks are left out); validation and test stay this corpus' own, "
        "e.g. ravdess=../shared/datasets/ravdess",
    )
    add("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    add("--threads", type=int, help="torch CPU threads")
    add("--cache-dir", default=str(DEFAULT_CACHE_DIR), help="feature cache directory")
    add("--no-progress", action="store_true", help="no progress bars")
    add("--resume", action="store_true", help="continue an interrupted run in --out")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """How every fold trains, from the parsed options."""
    augment = Augment(
        noise_snr=_parse_range(args.noise_snr),
        gain_db=args.gain_db,
        shift=args.shift,
        speeds=tuple(float(s) for s in args.speed.split(",")) if args.speed else (),
        pitches=tuple(float(s) for s in args.pitch.split(",")) if args.pitch else (),
        noises=tuple(float(s) for s in args.noise_views.split(",")) if args.noise_views else (),
        prob=args.aug_prob,
        time_mask=args.time_mask,
        freq_mask=args.freq_mask,
        n_masks=args.masks,
        freq_warp=args.freq_warp,
        speaker_swap=args.speaker_swap,
    )
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        patience=args.patience,
        seed=args.seed,
        crop_seconds=args.crop,
        window_seconds=args.window,
        hop_seconds=args.hop,
        min_seconds=args.min_seconds,
        pad=args.pad,
        transcript_max_seconds=args.transcript_max,
        augment=augment,
        label_smoothing=args.label_smoothing,
        mixup=args.mixup,
        ema=args.ema,
        normalization=args.normalization,
        adversarial=tuple(_parse_aux(args.adversarial, "--adversarial")),
        backbone=_parse_backbone(args.backbone),
        init=args.init,
        distill=distill.DistillConfig(
            args.teacher,
            temperature=args.distill_temperature,
            soft_weight=args.distill_soft,
            feature_weight=args.distill_features,
            frame_weight=args.distill_frames,
            heads=args.distill_heads,
            standardize=args.distill_standardize,
            transfer_weight=args.transfer_weight,
        )
        if args.teacher
        else None,
        ensemble=EnsembleConfig(tuple(args.ensemble_teacher), args.ensemble_weight, args.ensemble_temperature)
        if args.ensemble_teacher
        else None,
        device=args.device,
        progress=not args.no_progress,
    )


def _parse_corpora(items: Sequence[str], option: str = "--transfer") -> list[tuple[str, str]]:
    pairs = [tuple(item.split("=", 1)) for item in items]
    bad = [item for item, pair in zip(items, pairs) if len(pair) != 2 or not all(pair)]
    if bad:
        raise ValueError(f"bad {option} {bad[0]!r}: expected NAME=ROOT, e.g. casia=../shared/datasets/casia")
    return pairs  # type: ignore[return-value]


def run_config_from_args(args: argparse.Namespace) -> RunConfig:
    """The whole run, from the parsed options."""
    return RunConfig(
        arch=args.arch,
        dataset=args.dataset,
        data=args.data,
        out=args.out,
        training=config_from_args(args),
        protocol=args.protocol,
        folds=args.folds,
        final=args.final,
        aux={**_parse_aux(args.aux), **_parse_aux(args.adversarial, "--adversarial")},
        frontend=json.loads(args.frontend) if args.frontend else None,
        cache_dir=args.cache_dir,
        resume=args.resume,
        threads=args.threads,
        transfer=dict(_parse_corpora(args.transfer)),
        extra=dict(_parse_corpora(args.extra_corpus, "--extra-corpus")),
    )


def run(args: argparse.Namespace) -> int:
    """Run ``edge-ser train`` with parsed ``args``; returns the exit status."""
    try:
        distributed.setup(args)
        report = train(run_config_from_args(args))
    except (ValueError, OSError, EdgeSERError) as exc:
        print(f"edge-ser train: error: {exc}", file=sys.stderr)
        return 2
    summary = report.summary or {}
    means = [k[: -len("_mean")] for k in summary if k.endswith("_mean")]
    if means:
        print(", ".join(f"{k} {summary[k + '_mean']:.1%} ± {summary.get(k + '_std', 0.0):.1%}" for k in means))
    print(f"wrote {Path(args.out) / REPORT}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.train", description=__doc__.splitlines()[0])
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
