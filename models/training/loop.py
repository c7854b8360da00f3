"""``edge-ser train``: train and evaluate a seed architecture on a corpus, fold by fold.

For every fold of the chosen protocol the trainer fits normalization statistics on the
fold's training utterances, trains on random fixed-length crops, selects the epoch with the
best validation UA (early stopping; the test part is never looked at), and evaluates the
selected weights on whole test utterances the way :class:`edge_ser.Recognizer` will run the
exported model. Each fold directory gets ``model.pt`` + ``config.json`` (a loadable
checkpoint), ``metrics.json`` and ``confusion.png``; the run directory gets ``report.json``
with mean +- std over folds, the exact command and the corpus' skipped files. ``--resume``
picks an interrupted run up at its last finished epoch, with identical results: every
epoch's randomness is derived from (seed, fold, epoch) alone.

    python -m models.train --model pcnn --dataset casia --data ../shared/datasets/casia --out runs/x
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from edge_ser.errors import EdgeSERError
from edge_ser.frontend import FrontEnd, Normalization

from ..arch.heads import IGNORE, PRIMARY, SERModel
from ..arch.registry import ARCHITECTURES, build_model, count_parameters, default_config, get_architecture
from ..data import transcripts
from ..data.augment import Augment
from ..data.batches import PADS, TrainBatches, WholeView
from ..data.features import (
    DEFAULT_CACHE_DIR,
    FeatureTable,
    WindowTable,
    fit_normalization,
    load_features,
    load_windows,
    normalization_for,
)
from . import distill, distributed
from .checkpoint import CONFIG, jsonable, load_tensors, save_checkpoint, save_tensors, write_json
from .evaluate import eval_inputs, transcribe

STATE = "state.pt"
METRICS = "metrics.json"
REPORT = "report.json"


@dataclass(frozen=True)
class TrainConfig:
    """Everything about how a fold is trained and evaluated (recorded in every checkpoint).

    ``patience``: epochs without a better validation UA before stopping (0: never stop early).
    ``label_smoothing``: for every head's cross-entropy; ``mixup``: the Beta(a, a) parameter of
    mixup on model inputs and targets (0: off). ``normalization``: ``global`` (training-set
    statistics), ``utterance`` (each window's own mean and std: removes speaker and channel
    offsets, see :class:`edge_ser.frontend.Normalization`) or ``speaker`` (each speaker's own
    statistics, see :func:`speaker_normalization`).
    ``crop_seconds``: training crop length (default: the analysis window); transcript (CTC) heads
    instead train on whole utterances up to ``transcript_max_seconds`` (default: all, see
    :class:`models.data.batches.WholeView`). ``window_seconds``,
    ``hop_seconds``, ``min_seconds``: the runtime analysis window used for evaluation and
    stored for export.
    """

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 10
    grad_clip: float = 5.0
    seed: int = 0
    crop_seconds: float | None = None
    window_seconds: float = 3.0
    hop_seconds: float = 1.0
    min_seconds: float = 0.25
    pad: str = "repeat"
    transcript_max_seconds: float | None = None
    augment: Augment = field(default_factory=Augment)
    label_smoothing: float = 0.0
    mixup: float = 0.0
    normalization: str = "global"
    distill: distill.DistillConfig | None = None
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("need epochs >= 1 and batch_size >= 2")
        if self.normalization not in ("global", "utterance", "speaker"):
            raise ValueError("normalization must be global, utterance or speaker")
        if not 0 <= self.label_smoothing < 1 or self.mixup < 0:
            raise ValueError("need 0 <= label_smoothing < 1 and mixup >= 0")
        if self.pad not in PADS:
            raise ValueError(f"pad must be one of {PADS}")
        if self.transcript_max_seconds is not None and self.transcript_max_seconds <= 0:
            raise ValueError("transcript_max_seconds must be positive")
        if not 0 < self.min_seconds <= self.window_seconds or not 0 < self.hop_seconds <= self.window_seconds:
            raise ValueError("need 0 < min_seconds <= window_seconds and 0 < hop_seconds <= window_seconds")
        if self.distill is not None:
            if self.mixup:
                raise ValueError("distillation and mixup cannot be combined (mixed inputs have no teacher target)")
            unknown = [s for s in self.augment.speeds if float(s) not in distill.SPEED_VIEWS]
            if unknown:
                raise ValueError(f"with --teacher, speeds must be among {sorted(distill.SPEED_VIEWS)}: {unknown}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["augment"] = self.augment.to_dict()
        d["distill"] = self.distill.to_dict() if self.distill else None
        return d

    @property
    def teacher_views(self) -> tuple[str, ...]:
        """The cached teacher views distillation reads: clean, and one per speed factor trained on."""
        return tuple(dict.fromkeys(["clean", *(distill.SPEED_VIEWS[float(s)] for s in self.augment.speeds)]))

    @property
    def crop(self) -> float:
        return self.crop_seconds or self.window_seconds


class Split(NamedTuple):
    """A fold-like split (``models.data.protocols.Fold`` has the same fields)."""

    name: str
    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]


@dataclass
class CorpusData:
    """A corpus with its cached model inputs, evaluation windows and, if needed, waveforms."""

    corpus: Any
    inputs: FeatureTable
    windows: WindowTable
    waves: FeatureTable | None


def _check_functionals(cfg: TrainConfig) -> None:
    """Options that have no meaning on one row of utterance statistics are refused, not ignored."""
    if cfg.normalization == "utterance":
        raise ValueError("the functionals front-end gives one row per window: use global or speaker normalization")
    if cfg.augment.on_features:
        raise ValueError("SpecAugment masks need frames; the functionals front-end gives one row per window")


def _samples(seconds: float, rate: int) -> int:
    return round(seconds * rate)  # as the Recognizer converts the contract's window


def prepare_data(corpus: Any, frontend: FrontEnd, cfg: TrainConfig, cache_dir: str | Path | None = None) -> CorpusData:
    """Load (or compute and cache) everything training and evaluation read from the corpus."""
    inputs = load_features(corpus, frontend, cache_dir, cfg.progress)
    rate = frontend.sample_rate
    windows = load_windows(
        corpus, inputs, _samples(cfg.window_seconds, rate), _samples(cfg.hop_seconds, rate), cfg.progress
    )
    waves = None
    if cfg.augment.on_waveform and frontend.kind != "waveform":
        waves = load_features(corpus, FrontEnd(kind="waveform", sample_rate=rate), cache_dir, cfg.progress)
    return CorpusData(corpus, inputs, windows, waves)


def speaker_normalization(
    data: CorpusData, train_idx: np.ndarray, val_idx: np.ndarray, test_idx: np.ndarray
) -> dict[int, Normalization]:
    """Per-speaker statistics for every utterance of a fold (``--normalization speaker``).

    Training and validation speakers use their own utterances outside the test part; a test
    speaker uses all of their test utterances -- the transductive upper bound of on-device
    adaptation (the runtime only ever has the utterances heard before; see ``SpeakerProfile``).
    """
    speakers = [u.speaker for u in data.corpus.utterances]
    out: dict[int, Normalization] = {}
    for part in (np.concatenate([train_idx, val_idx]), test_idx):
        groups: dict[str, list[int]] = {}
        for i in part:
            groups.setdefault(speakers[int(i)], []).append(int(i))
        for members in groups.values():
            stats = fit_normalization(data.inputs, members)
            out.update(dict.fromkeys(members, stats))
    return out


def head_labels(corpus: Any, train: Iterable[int], aux: Iterable[str]) -> dict[str, list[str]]:
    """Label set of every head: the corpus' emotions, each aux field's values among ``train``, and
    for a transcript (CTC) head its token vocabulary among ``train`` (blank first)."""
    labels = {PRIMARY: [str(e) for e in corpus.emotions]}
    train = list(train)
    for name in aux:
        if transcripts.is_ctc(name):
            labels[name] = transcripts.vocabulary(name, [corpus.utterances[i] for i in train])
            if len(labels[name]) < 2:
                raise ValueError(f"transcript head {name!r}: no training utterance has a {name} transcript")
            continue
        values = {getattr(corpus.utterances[i], name, None) for i in train}
        values = sorted(str(v) for v in values if v not in (None, ""))
        if len(values) < 2:
            raise ValueError(f"aux head {name!r}: training utterances have {len(values)} distinct {name} value(s)")
        labels[name] = values
    return labels


def head_targets(corpus: Any, labels: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Class index of every utterance for every head; -100 where the label is unknown or unseen.
    A transcript head gets a token matrix instead (:func:`models.data.transcripts.targets`)."""
    out = {}
    for name, values in labels.items():
        if transcripts.is_ctc(name):
            out[name] = transcripts.targets(name, corpus.utterances, values)
            continue
        index = {v: k for k, v in enumerate(values)}
        out[name] = np.array([index.get(str(getattr(u, name, None)), IGNORE) for u in corpus.utterances], np.int64)
    return out


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _epoch_seed(seed: int, fold_index: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, fold_index, epoch + 1]).generate_state(1)[0])


def _log(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def head_scores(
    probs: dict[str, np.ndarray], targets: dict[str, np.ndarray], indices: np.ndarray
) -> dict[str, dict[str, Any]]:
    """``models.training.metrics.scores`` of every head over the ``indices`` whose label is known."""
    from . import metrics

    out = {}
    for name, p in probs.items():
        y = targets[name][indices]
        known = y != IGNORE
        if known.any():
            out[name] = jsonable(metrics.scores(y[known], p[known].argmax(axis=1), p.shape[1]))
    return out


def train_fold(
    data: CorpusData,
    fold: Any,
    fold_index: int,
    arch: str,
    aux: dict[str, float],
    cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one fold into ``out_dir`` and return its results (also written to ``metrics.json``).

    ``fold`` has index tuples ``train``, ``val`` (may be empty: then the last epoch is kept)
    and ``test`` (may be empty: no test metrics). ``on_epoch_end(epoch, record)`` is called
    after each epoch's state is saved. ``meta`` (command, protocol, ...) is recorded in the
    checkpoint's ``training`` section, where export and model cards read it.
    """
    out_dir = Path(out_dir)
    settings = {k: v for k, v in cfg.to_dict().items() if k not in ("device", "progress")}
    if resume and (out_dir / METRICS).exists() and (out_dir / CONFIG).exists():
        saved = json.loads((out_dir / CONFIG).read_text()).get("training", {})
        defaults = jsonable(TrainConfig().to_dict())  # settings added since that fold was trained
        if {k: saved.get(k, defaults[k]) for k in settings} != jsonable(settings) or saved.get("fold") != fold.name:
            raise ValueError(f"{out_dir} is a finished fold trained with other settings; rerun without --resume")
        return json.loads((out_dir / METRICS).read_text())
    corpus, frontend = data.corpus, data.inputs.frontend
    if frontend.kind == "functionals":
        _check_functionals(cfg)
    train_idx, val_idx, test_idx = (np.asarray(s, dtype=np.int64) for s in (fold.train, fold.val, fold.test))
    labels = head_labels(corpus, train_idx, aux)
    targets = head_targets(corpus, labels)
    per_utterance = None
    if cfg.normalization == "utterance":
        normalization = Normalization("utterance")
    else:
        normalization = fit_normalization(data.inputs, train_idx)
        if cfg.normalization == "speaker":
            per_utterance = speaker_normalization(data, train_idx, val_idx, test_idx)
    config = default_config(arch, {h: len(v) for h, v in labels.items()}, aux, frontend.to_dict())
    config.update(
        labels=labels,
        normalization=normalization.to_dict(),
        window={"seconds": cfg.window_seconds, "hop_seconds": cfg.hop_seconds, "min_seconds": cfg.min_seconds},
    )
    device = resolve_device(cfg.device)
    torch.manual_seed(_epoch_seed(cfg.seed, fold_index, -1))
    model = build_model(config).to(device)
    if cfg.pad == "zero" and not model.masks_padding:
        raise ValueError(
            f"--pad zero needs a backbone that leaves the padding out (edge_cnn); {arch} would learn the padding's "
            "length (the utterance's duration) as a cue: use --pad repeat"
        )
    config["parameters"] = count_parameters(model)
    teacher, projector = None, None
    if cfg.distill is not None:
        teacher = distill.fold_targets(
            corpus, train_idx, targets[PRIMARY], len(labels[PRIMARY]), cfg.distill, cfg.teacher_views, cfg.seed
        )
        projector = torch.nn.Linear(model.backbone.embedding_dim, teacher.dim).to(device)
    trainable = [*model.parameters(), *(projector.parameters() if projector is not None else ())]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    batches = TrainBatches(
        data.inputs,
        train_idx,
        targets,
        per_utterance or normalization,
        _samples(cfg.crop, frontend.sample_rate),
        cfg.augment,
        data.waves,
        cfg.pad,
        None if cfg.transcript_max_seconds is None else _samples(cfg.transcript_max_seconds, frontend.sample_rate),
    )
    batches.shard = distributed.shard()
    norm = per_utterance or normalization
    val_inputs = eval_inputs(data.inputs, data.windows, val_idx, norm) if len(val_idx) else None
    identity = json.dumps(jsonable({"config": config, "training": settings, "fold": [train_idx, val_idx]}))
    progress: dict[str, Any] = {"epoch": 0, "best_ua": -1.0, "best_epoch": 0, "bad_epochs": 0, "history": []}
    best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if resume and (out_dir / STATE).exists():
        saved = load_tensors(out_dir / STATE)
        if saved["identity"] != identity:
            raise ValueError(f"{out_dir / STATE} was saved with other settings; rerun without --resume")
        model.load_state_dict(saved["model"])
        if projector is not None:
            projector.load_state_dict(saved["projector"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        progress, best_state = saved["progress"], saved["best"]
        _log(f"{fold.name}: resuming after epoch {progress['epoch']}")
    else:
        (out_dir / STATE).unlink(missing_ok=True)

    n_batches = batches.n_batches(cfg.batch_size)
    for epoch in range(progress["epoch"], cfg.epochs):
        if val_inputs is not None and cfg.patience and progress["bad_epochs"] >= cfg.patience:
            break
        start = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, fold_index, epoch])
        torch.manual_seed(_epoch_seed(cfg.seed, fold_index, epoch))
        model.train()
        totals: dict[str, float] = {}
        bar = tqdm(
            batches.epoch(cfg.batch_size, rng),
            total=n_batches,
            leave=False,
            disable=not cfg.progress,
            desc=f"{fold.name} epoch {epoch + 1}/{cfg.epochs}",
        )
        for batch in bar:
            x, lengths = torch.from_numpy(batch.inputs).to(device), torch.from_numpy(batch.lengths).to(device)
            t = {h: torch.from_numpy(v).to(device) for h, v in batch.targets.items()}
            if cfg.mixup:
                loss, parts = _mixup_step(model, x, t, lengths, cfg, rng)
            elif teacher is not None:
                loss, parts = _distill_step(model, projector, teacher, batch, x, t, lengths, cfg)
            else:
                loss, parts = model.loss(model(x, lengths), t, cfg.label_smoothing, model.frame_lengths(lengths))
            if batch.whole is not None:
                whole_loss, whole_parts = _transcript_loss(model, batch.whole, device)
                loss, parts = loss + whole_loss, {**parts, **whole_parts}
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(model)
            if projector is not None:
                distributed.average_gradients(projector)
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            values = {key: float(value.detach()) for key, value in {"loss": loss, **parts}.items()}
            for key, value in values.items():
                totals[key] = totals.get(key, 0.0) + value
            bar.set_postfix(loss=f"{values['loss']:.3f}")
        record: dict[str, Any] = {"epoch": epoch + 1, "lr": scheduler.get_last_lr()[0]}
        record.update({k: v / max(n_batches, 1) for k, v in distributed.average(totals).items()})
        scheduler.step()
        improved = True
        if val_inputs is not None:
            scores = head_scores(distributed.predict(model, val_inputs, device), targets, val_idx)
            record["val_ua"] = scores[PRIMARY]["ua"]
            improved = record["val_ua"] > progress["best_ua"]
        if improved:
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            progress.update(best_ua=record.get("val_ua", -1.0), best_epoch=epoch + 1, bad_epochs=0)
        else:
            progress["bad_epochs"] += 1
        record["seconds"] = time.perf_counter() - start
        progress["epoch"] = epoch + 1
        progress["history"].append(record)
        save_tensors(
            out_dir / STATE,
            {
                "identity": identity,
                "model": model.state_dict(),
                "projector": projector.state_dict() if projector is not None else None,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "progress": progress,
                "best": best_state,
            },
        )
        val = f" val UA {record['val_ua']:.1%}{' *' if improved else ''}" if "val_ua" in record else ""
        _log(
            f"{fold.name} epoch {epoch + 1}/{cfg.epochs} loss {record.get('loss', float('nan')):.4f}{val}"
            f" ({record['seconds']:.1f} s)"
        )
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, record)

    model.load_state_dict(best_state)
    history = progress["history"]
    results: dict[str, Any] = {
        "fold": fold.name,
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "n_test": len(test_idx),
        "best_epoch": progress["best_epoch"],
        "epochs_run": progress["epoch"],
        "best_val_ua": progress["best_ua"] if val_inputs is not None else None,
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in history])) if history else None,
        "history": history,
    }
    if len(test_idx):
        probs = distributed.predict(model, eval_inputs(data.inputs, data.windows, test_idx, norm), device)
        results["test"] = head_scores(probs, targets, test_idx)
        if model.ctc_heads:
            whole = [
                normalization_for(norm, int(i))(data.inputs[int(i)]).astype(np.float32, copy=False) for i in test_idx
            ]
            for name, hypotheses in transcribe(model, whole, device).items():
                pairs = [(row[row != IGNORE].tolist(), h) for row, h in zip(targets[name][test_idx], hypotheses)]
                pairs = [(r, h) for r, h in pairs if r]
                results["test"][name] = {
                    "token_error_rate": transcripts.error_rate(*zip(*pairs)) if pairs else None,
                    "utterances": len(pairs),
                }
    config["training"] = {
        **cfg.to_dict(),
        **(meta or {}),
        "corpus": corpus.name,
        "fold": fold.name,
        "best_epoch": progress["best_epoch"],
        "epochs_run": progress["epoch"],
    }
    config["metrics"] = results.get("test", {})
    save_checkpoint(out_dir, model, config)
    write_json(out_dir / METRICS, results)
    if "test" in results:
        from . import metrics

        cm = np.asarray(results["test"][PRIMARY]["confusion"])
        metrics.plot_confusion(cm, labels[PRIMARY], out_dir / "confusion.png", f"{arch} {corpus.name} {fold.name}")
    (out_dir / STATE).unlink(missing_ok=True)
    return results


def _transcript_loss(
    model: SERModel, whole: WholeView, device: torch.device
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted CTC losses of the transcript heads on the batch's whole utterances (and each part)."""
    x, lengths = torch.from_numpy(whole.inputs).to(device), torch.from_numpy(whole.lengths).to(device)
    names = tuple(whole.targets)
    logits = dict(zip(names, model.outputs(x, names, lengths)))
    targets = {h: torch.from_numpy(v).to(device) for h, v in whole.targets.items()}
    return model.loss(logits, targets, frame_lengths=model.frame_lengths(lengths))


def _distill_step(
    model: SERModel,
    projector: torch.nn.Module,
    teacher: distill.Targets,
    batch: Any,
    x: torch.Tensor,
    t: dict[str, torch.Tensor],
    lengths: torch.Tensor,
    cfg: TrainConfig,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The usual losses plus the teacher's: soft labels on the emotion logits, features from the embedding."""
    outputs, embedding = model.outputs_and_embedding(x, model.head_names, lengths)
    logits = dict(zip(model.head_names, outputs))
    loss, parts = model.loss(logits, t, cfg.label_smoothing, model.frame_lengths(lengths))
    soft, feats = (torch.from_numpy(a).to(x.device) for a in teacher.lookup(batch.index, batch.speeds))
    d = cfg.distill
    parts["teacher_soft"] = distill.soft_label_loss(logits[PRIMARY], soft, d.temperature)
    parts["teacher_features"] = distill.feature_loss(projector(embedding), feats)
    loss = loss + d.soft_weight * parts["teacher_soft"] + d.feature_weight * parts["teacher_features"]
    return loss, parts


def _mixup_step(
    model: SERModel,
    x: torch.Tensor,
    t: dict[str, torch.Tensor],
    lengths: torch.Tensor,
    cfg: TrainConfig,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss on a mixup batch: inputs mixed with a shuffled copy (audio where either has audio),
    losses against both targets."""
    lam = float(rng.beta(cfg.mixup, cfg.mixup))
    perm = torch.from_numpy(rng.permutation(len(x))).to(x.device)
    lengths = torch.maximum(lengths, lengths[perm])
    logits = model(lam * x + (1.0 - lam) * x[perm], lengths)
    frames = model.frame_lengths(lengths)
    loss_a, parts_a = model.loss(logits, t, cfg.label_smoothing, frames)
    loss_b, parts_b = model.loss(logits, {h: v[perm] for h, v in t.items()}, cfg.label_smoothing, frames)
    parts = {h: lam * parts_a[h] + (1.0 - lam) * parts_b[h] for h in parts_a}
    return lam * loss_a + (1.0 - lam) * loss_b, parts


def skipped_summary(skipped: Any) -> Any:
    """The corpus' skipped files as counts (the list itself may be long)."""
    if isinstance(skipped, int):
        return {"total": skipped}
    if isinstance(skipped, dict):
        counts = {str(k): (len(v) if isinstance(v, (list, tuple, set)) else v) for k, v in skipped.items()}
        return {"total": sum(v for v in counts.values() if isinstance(v, int)), "by_reason": counts}
    items = list(skipped or ())
    reasons: dict[str, int] = {}
    for item in items:
        if isinstance(item, (list, tuple)) and len(item) >= 2:
            reasons[str(item[1])] = reasons.get(str(item[1]), 0) + 1
    return {"total": len(items), **({"by_reason": reasons} if reasons else {})}


def select_folds(folds: Sequence[Any], spec: str | None) -> list[tuple[int, Any]]:
    """``(index, fold)`` pairs chosen by ``--folds``: comma-separated indices or fold names."""
    if not spec:
        return list(enumerate(folds))
    names = {f.name: i for i, f in enumerate(folds)}
    chosen = []
    for part in spec.split(","):
        part = part.strip()
        if part in names:
            chosen.append(names[part])
        elif part.isdigit() and int(part) < len(folds):
            chosen.append(int(part))
        else:
            raise ValueError(f"no fold {part!r}; there are {len(folds)}: {', '.join(names)}")
    return [(i, folds[i]) for i in dict.fromkeys(chosen)]


def invocation() -> str:
    """This process' command line as a user would type it (``edge-ser train ...``)."""
    program = Path(sys.argv[0]).name
    program = "python -m models.train" if program.endswith(".py") else program
    return " ".join([program, *(shlex.quote(a) for a in sys.argv[1:])])


def train_folds(
    data: CorpusData,
    folds: Sequence[tuple[int, Any]],
    arch: str,
    aux: dict[str, float],
    cfg: TrainConfig,
    out: str | Path,
    resume: bool = False,
    command: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train every ``(index, fold)`` into ``out/<fold name>/`` and write ``out/report.json``."""
    from . import metrics

    out = Path(out)
    command = command if command is not None else invocation()
    meta = {"command": command, **(extra or {})}
    results = [train_fold(data, fold, i, arch, aux, cfg, out / fold.name, resume, meta=meta) for i, fold in folds]
    tested = [r for r in results if "test" in r]
    report = {
        "command": command,
        "arch": arch,
        "aux": aux,
        **(extra or {}),
        "corpus": {
            "name": data.corpus.name,
            "utterances": len(data.corpus.utterances),
            "skipped": skipped_summary(getattr(data.corpus, "skipped", ())),
        },
        "frontend": data.inputs.frontend.to_dict(),
        "training": cfg.to_dict(),
        "folds": {r["fold"]: {k: v for k, v in r.items() if k != "history"} for r in results},
        "summary": jsonable(metrics.summarize([r["test"][PRIMARY] for r in tested])) if tested else None,
        "seconds_per_epoch": float(np.mean([r["seconds_per_epoch"] for r in results if r["seconds_per_epoch"]]))
        if results
        else None,
    }
    for head in sorted({h for r in tested for h in r["test"] if h != PRIMARY}):
        per_fold = [r["test"][head] for r in tested if head in r["test"]]
        if transcripts.is_ctc(head):
            rates = [f["token_error_rate"] for f in per_fold if f["token_error_rate"] is not None]
            summary = {"token_error_rate_mean": float(np.mean(rates)), "token_error_rate_std": float(np.std(rates))}
            report.setdefault("aux_summary", {})[head] = summary if rates else None
            continue
        report.setdefault("aux_summary", {})[head] = jsonable(metrics.summarize(per_fold))
    write_json(out / REPORT, report)
    return report


def _parse_aux(items: Sequence[str]) -> dict[str, float]:
    aux = {}
    for item in items:
        name, _, weight = item.partition("=")
        if not name or name == PRIMARY:
            raise ValueError(f"bad --aux {item!r}: expected NAME=WEIGHT with NAME an utterance field such as gender")
        aux[name] = float(weight) if weight else 1.0
    return aux


def _parse_range(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    lo, _, hi = text.partition(":")
    return float(lo), float(hi or lo)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` options to ``parser`` (the ``edge-ser`` CLI mounts this as ``edge-ser train``)."""
    add = parser.add_argument
    add("--model", required=True, choices=sorted(ARCHITECTURES), help="architecture to train")
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
    add("--frontend", help="front-end override as JSON (FrontEnd.to_dict() form); default: the model's own")
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
    add("--aug-prob", type=float, default=0.5, help="chance of each waveform augmentation per example")
    add("--time-mask", type=int, default=0, help="SpecAugment: widest time mask in frames")
    add("--freq-mask", type=int, default=0, help="SpecAugment: widest frequency mask in feature bins")
    add("--masks", type=int, default=2, help="SpecAugment: masks of each kind per example")
    add("--label-smoothing", type=float, default=0.0, help="label smoothing of every head's cross-entropy")
    add("--mixup", type=float, default=0.0, metavar="ALPHA", help="mixup with Beta(ALPHA, ALPHA) weights (0: off)")
    add(
        "--normalization",
        choices=("global", "utterance", "speaker"),
        default="global",
        help="feature normalization: training-set statistics, each window's own, or each speaker's own "
        "(test speakers: all their test utterances, the transductive upper bound of adaptation)",
    )
    add(
        "--teacher",
        metavar="ENCODER:BLOCK",
        help="distil from a Whisper teacher's pooled block features, e.g. whisper-tiny.en:2 (models.training.distill; "
        "cache them first with python -m models.teachers.cache)",
    )
    add("--distill-temperature", type=float, default=4.0, help="temperature of the teacher's soft labels")
    add("--distill-soft", type=float, default=1.0, help="weight of the soft-label loss")
    add("--distill-features", type=float, default=1.0, help="weight of the teacher-feature regression loss")
    add("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    add("--threads", type=int, help="torch CPU threads")
    add("--cache-dir", default=str(DEFAULT_CACHE_DIR), help="feature cache directory")
    add("--no-progress", action="store_true", help="no progress bars")
    add("--resume", action="store_true", help="continue an interrupted run in --out")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    augment = Augment(
        noise_snr=_parse_range(args.noise_snr),
        gain_db=args.gain_db,
        shift=args.shift,
        speeds=tuple(float(s) for s in args.speed.split(",")) if args.speed else (),
        prob=args.aug_prob,
        time_mask=args.time_mask,
        freq_mask=args.freq_mask,
        n_masks=args.masks,
    )
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        patience=0 if args.final else args.patience,
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
        normalization=args.normalization,
        distill=distill.DistillConfig(
            args.teacher,
            temperature=args.distill_temperature,
            soft_weight=args.distill_soft,
            feature_weight=args.distill_features,
        )
        if args.teacher
        else None,
        device=args.device,
        progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``edge-ser train`` with parsed ``args``; returns the exit status."""
    try:
        distributed.setup(args)
        if args.threads:
            torch.set_num_threads(args.threads)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        cfg = config_from_args(args)
        spec = get_architecture(args.model)
        aux = {**spec.required_heads, **_parse_aux(args.aux)}
        frontend = FrontEnd.from_dict(json.loads(args.frontend) if args.frontend else spec.frontend)
        from ..data import corpora

        corpus = corpora.load_corpus(args.dataset, args.data)
        with distributed.main_first():  # rank 0 computes the feature cache, the other ranks read it
            data = prepare_data(corpus, frontend, cfg, args.cache_dir)
        if args.final:
            protocol = "final"
            folds = [(0, Split("final", tuple(range(len(corpus.utterances))), (), ()))]
        else:
            from ..data import protocols

            protocol = protocols.default_protocol(corpus.name) if args.protocol == "default" else args.protocol
            folds = select_folds(protocols.make_folds(corpus, protocol, seed=args.seed), args.folds)
        extra = {"dataset": args.dataset, "protocol": protocol}
        report = train_folds(data, folds, args.model, aux, cfg, args.out, args.resume, extra=extra)
    except (ValueError, OSError, EdgeSERError) as exc:
        print(f"edge-ser train: error: {exc}", file=sys.stderr)
        return 2
    summary = report.get("summary") or {}
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
