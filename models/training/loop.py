"""Training one fold, in named steps: prepare, epoch (train + validate), evaluate, write.

For a fold the trainer fits normalization statistics on the fold's training utterances, trains on random
fixed-length crops, selects the epoch with the best validation UA (early stopping; the test part is never
looked at), and evaluates the selected weights on whole test utterances the way :class:`edge_ser.Recognizer`
will run the exported model. The fold directory gets ``model.pt`` + ``config.json`` (a loadable checkpoint),
``metrics.json`` and ``confusion.png``. ``resume`` picks an interrupted fold up at its last finished epoch
(``state.pt``), with identical results: every epoch's randomness is derived from (seed, fold, epoch) alone.

:func:`train_fold` runs the steps in order:

- :func:`prepare_fold`: labels, targets, normalization, the model, teacher targets, optimizer, batches;
- :func:`restore_state` / :func:`save_state`: the fold's progress in ``state.pt`` (for ``resume``);
- :func:`train_epoch` then :func:`validate`, once per epoch until early stopping;
- :func:`evaluate_fold`: the best epoch's weights on the test utterances;
- :func:`write_fold`: the checkpoint, ``metrics.json`` and the confusion matrix.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from edge_ser.frontend import Normalization

from ..arch.heads import IGNORE, PRIMARY, SERModel
from ..arch.registry import build_model, count_parameters, default_config
from ..data import transcripts
from ..data.batches import Batch, TrainBatches
from ..data.features import Norms, fit_normalization, normalization_for
from ..data.labels import head_labels, head_targets
from . import distill, distributed, ensemble, metrics
from .checkpoint import CONFIG, jsonable, load_tensors, save_checkpoint, save_tensors, warm_start, write_json
from .config import ABSENT_WHEN_OFF, FoldPlan, TrainConfig
from .corpus_data import CorpusData, samples, speaker_normalization, voices
from .evaluate import eval_inputs, head_scores, transcribe
from .losses import batch_loss

STATE = "state.pt"
METRICS = "metrics.json"

EpochRecord = dict[str, float]  # epoch, lr, the mean of each loss part, val_ua, seconds


class Progress(TypedDict):
    """How far a fold got (saved in ``state.pt`` with the weights, so a resumed fold continues exactly)."""

    epoch: int
    best_ua: float
    best_epoch: int
    bad_epochs: int
    history: list[EpochRecord]


@dataclass
class FoldResult:
    """What a fold reports (``metrics.json``; report.json holds it without ``history``).

    ``test``: :func:`models.training.metrics.scores` per head (``token_error_rate`` for a transcript head),
    absent when the fold has no test part; ``best_val_ua`` is None without a validation part."""

    fold: str
    n_train: int
    n_val: int
    n_test: int
    best_epoch: int
    epochs_run: int
    best_val_ua: float | None
    seconds_per_epoch: float | None
    history: list[EpochRecord] = field(default_factory=list)
    test: dict[str, dict[str, Any]] | None = None

    def to_dict(self, history: bool = True) -> dict[str, Any]:
        out = asdict(self)
        if not history:
            del out["history"]
        if self.test is None:
            del out["test"]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FoldResult:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class FoldRun:
    """One fold in training: what :func:`prepare_fold` builds, the later steps read and update."""

    name: str
    index: int
    arch: str
    cfg: TrainConfig
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    labels: dict[str, list[str]]
    targets: dict[str, np.ndarray]
    norm: Norms
    config: dict[str, Any]  # the model's config, saved with its weights
    device: torch.device
    model: SERModel
    teacher: distill.Targets | None
    projector: torch.nn.Module | None
    transfer: list[tuple[TrainBatches, distill.Targets]]  # transfer-set batches and their teacher targets
    frame_teacher: distill.FrameTeacher | None  # frame-level teacher targets (``--distill-frames``)
    ensemble: ensemble.EnsembleTeacher | None  # finished runs' same fold as a teacher (``--ensemble-teacher``)
    optimizer: torch.optim.Optimizer
    averaged: AveragedModel | None  # the weights' moving average (``cfg.ema``), which validation scores
    scheduler: torch.optim.lr_scheduler.LRScheduler
    batches: TrainBatches
    val_inputs: list[list[np.ndarray]] | None
    identity: str  # what a saved state must match to be resumed
    progress: Progress
    best_state: dict[str, torch.Tensor]

    @property
    def stopped_early(self) -> bool:
        """Whether validation UA has not improved for ``patience`` epochs."""
        patience = self.cfg.patience
        return self.val_inputs is not None and bool(patience) and self.progress["bad_epochs"] >= patience


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _epoch_seed(seed: int, fold_index: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, fold_index, epoch + 1]).generate_state(1)[0])


def _log(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def _check_functionals(cfg: TrainConfig) -> None:
    """Options that have no meaning on one row of utterance statistics are refused, not ignored."""
    if cfg.normalization == "utterance":
        raise ValueError("the functionals front-end gives one row per window: use global or speaker normalization")
    if cfg.augment.on_features:
        raise ValueError("SpecAugment masks need frames; the functionals front-end gives one row per window")


def _training_settings(cfg: TrainConfig) -> dict[str, Any]:
    """The settings that decide a fold's weights (not where or how visibly it runs)."""
    return {k: v for k, v in cfg.to_dict().items() if k not in ("device", "progress")}


def same_settings(saved: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether training settings ``saved`` (from a checkpoint's JSON) are ``current``'s: a setting added since
    (absent from ``saved``, also inside ``augment`` and ``distill``) counts at its default, and no extra corpora is
    the same whether recorded as an empty list (runs of the first ``--extra-corpus`` version) or not at all;
    entries that are not settings (the command, the fold, ...) are ignored."""
    off = TrainConfig()
    defaults = jsonable({**{k: getattr(off, k) for k in ABSENT_WHEN_OFF}, **_training_settings(off)})

    def filled(settings: Mapping[str, Any]) -> dict[str, Any]:
        out = jsonable({**defaults, **settings})
        out["augment"] = {**defaults["augment"], **(out["augment"] or {})}
        if isinstance(out["distill"], dict) and "teacher" in out["distill"]:
            out["distill"] = {**jsonable(distill.DistillConfig(out["distill"]["teacher"]).to_dict()), **out["distill"]}
        return {k: out.get(k) for k in {*defaults, *current}}

    return filled(saved) == filled(current)


def train_fold(
    data: CorpusData,
    fold: FoldPlan,
    *,
    fold_index: int,
    arch: str,
    aux: Mapping[str, float],
    cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    on_epoch_end: Callable[[int, EpochRecord], None] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> FoldResult:
    """Train one fold into ``out_dir`` and return its results (also written to ``metrics.json``).

    ``fold`` has index tuples ``train``, ``val`` (may be empty: then the last epoch is kept)
    and ``test`` (may be empty: no test metrics). ``on_epoch_end(epoch, record)`` is called
    after each epoch's state is saved. ``meta`` (command, protocol, ...) is recorded in the
    checkpoint's ``training`` section, where export and model cards read it.
    """
    out_dir = Path(out_dir)
    if resume:
        finished = finished_fold(out_dir, fold=fold, cfg=cfg)
        if finished is not None:
            return finished
    protocol = (meta or {}).get("protocol")
    run = prepare_fold(data, fold, fold_index=fold_index, arch=arch, aux=aux, cfg=cfg, protocol=protocol)
    restore_state(run, out_dir=out_dir, resume=resume)
    for epoch in range(run.progress["epoch"], cfg.epochs):
        if run.stopped_early:
            break
        start = time.perf_counter()
        record = train_epoch(run, epoch=epoch)
        improved = validate(run, record=record, epoch=epoch)
        record["seconds"] = time.perf_counter() - start
        run.progress["epoch"] = epoch + 1
        run.progress["history"].append(record)
        save_state(run, out_dir=out_dir)
        val = f" val UA {record['val_ua']:.1%}{' *' if improved else ''}" if "val_ua" in record else ""
        _log(
            f"{run.name} epoch {epoch + 1}/{cfg.epochs} loss {record.get('loss', float('nan')):.4f}{val}"
            f" ({record['seconds']:.1f} s)"
        )
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, record)
    results = evaluate_fold(run, data=data)
    write_fold(run, results, corpus_name=data.corpus.name, out_dir=out_dir, meta=meta)
    return results


def evaluate_unfinished(
    data: CorpusData,
    fold: FoldPlan,
    *,
    fold_index: int,
    arch: str,
    aux: Mapping[str, float],
    cfg: TrainConfig,
    out_dir: str | Path,
    protocol: str | None = None,
) -> FoldResult | None:
    """A fold still training in ``out_dir`` (a ``state.pt`` saved with these settings, no ``metrics.json``): its
    best epoch so far, as chosen by validation, scored on the test part; nothing is written. None when the fold
    has no state (not started, or finished). ``protocol``: the run's, which a warm-started run (``cfg.init``)
    needs."""
    out_dir = Path(out_dir)
    if (out_dir / METRICS).exists() or not (out_dir / STATE).exists():
        return None
    run = prepare_fold(data, fold, fold_index=fold_index, arch=arch, aux=aux, cfg=cfg, protocol=protocol)
    restore_state(run, out_dir=out_dir, resume=True)
    return evaluate_fold(run, data=data)


def finished_fold(out_dir: Path, *, fold: FoldPlan, cfg: TrainConfig) -> FoldResult | None:
    """The results of a fold already finished in ``out_dir`` with the same settings (None if unfinished);
    a finished fold trained otherwise is refused."""
    if not ((out_dir / METRICS).exists() and (out_dir / CONFIG).exists()):
        return None
    saved = json.loads((out_dir / CONFIG).read_text()).get("training", {})
    if not same_settings(saved, _training_settings(cfg)) or saved.get("fold") != fold.name:
        raise ValueError(f"{out_dir} is a finished fold trained with other settings; rerun without --resume")
    return FoldResult.from_dict(json.loads((out_dir / METRICS).read_text()))


def prepare_fold(
    data: CorpusData,
    fold: FoldPlan,
    *,
    fold_index: int,
    arch: str,
    aux: Mapping[str, float],
    cfg: TrainConfig,
    protocol: str | None = None,
) -> FoldRun:
    """Everything a fold trains with: head labels and targets from its training part, normalization
    statistics, a freshly seeded model (or, with ``cfg.init``, the weights of the same fold of another run of
    ``protocol``), the teacher's targets, optimizer, schedule and batches."""
    corpus, frontend = data.corpus, data.inputs.frontend
    if frontend.kind == "functionals":
        _check_functionals(cfg)
    train_idx, val_idx, test_idx = (np.asarray(s, dtype=np.int64) for s in (fold.train, fold.val, fold.test))
    labels = head_labels(corpus, train_idx, aux)
    targets = head_targets(corpus, labels)
    normalization, per_utterance = _fold_normalization(data, cfg, train_idx, val_idx, test_idx)
    config, model, device = _fold_model(
        data, cfg, arch, aux, labels, normalization, fold=(fold.name, fold_index), protocol=protocol
    )
    teacher, projector, frame_teacher = _fold_teachers(data, cfg, model, train_idx, targets, labels, device)
    members = None
    if cfg.ensemble is not None:
        members = ensemble.fold_ensemble(
            cfg.ensemble,
            corpus=corpus.name,
            protocol=protocol,
            fold=fold.name,
            frontend=frontend,
            normalization=normalization,
            labels=labels[PRIMARY],
            device=device,
        )
    trainable = [
        *model.parameters(),
        *(projector.parameters() if projector is not None else ()),
        *(frame_teacher.projector.parameters() if frame_teacher is not None else ()),
    ]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    norm = per_utterance or normalization
    batches = TrainBatches(
        data.inputs,
        train_idx,
        targets,
        norm,
        samples(cfg.crop, frontend.sample_rate),
        cfg.augment,
        data.waves,
        cfg.pad,
        None if cfg.transcript_max_seconds is None else samples(cfg.transcript_max_seconds, frontend.sample_rate),
        data.views,
        voices(data),
    )
    batches.shard = distributed.shard()
    val_inputs = eval_inputs(data.inputs, data.windows, val_idx, norm) if len(val_idx) else None
    settings = _training_settings(cfg)
    identity = json.dumps(jsonable({"config": config, "training": settings, "fold": [train_idx, val_idx]}))
    return FoldRun(
        name=fold.name,
        index=fold_index,
        arch=arch,
        cfg=cfg,
        train_idx=train_idx,
        val_idx=val_idx,
        test_idx=test_idx,
        labels=labels,
        targets=targets,
        norm=norm,
        config=config,
        device=device,
        model=model,
        teacher=teacher,
        projector=projector,
        transfer=transfer_sources(data, train_idx, targets[PRIMARY], len(labels[PRIMARY]), normalization, cfg),
        frame_teacher=frame_teacher,
        ensemble=members,
        optimizer=optimizer,
        averaged=AveragedModel(model, multi_avg_fn=_warmed_up_ema(cfg.ema), use_buffers=True) if cfg.ema else None,
        scheduler=scheduler,
        batches=batches,
        val_inputs=val_inputs,
        identity=identity,
        progress={"epoch": 0, "best_ua": -1.0, "best_epoch": 0, "bad_epochs": 0, "history": []},
        best_state=_snapshot(model),
    )


def _fold_normalization(
    data: CorpusData, cfg: TrainConfig, train_idx: np.ndarray, val_idx: np.ndarray, test_idx: np.ndarray
) -> tuple[Normalization, Norms | None]:
    """The normalization the model file records (each input's own for ``utterance``, else the training part's
    statistics), and for ``speaker`` normalization each utterance's own speaker statistics, which training uses."""
    if cfg.normalization == "utterance":
        return Normalization("utterance"), None
    normalization = fit_normalization(data.inputs, train_idx)
    if cfg.normalization == "speaker":
        return normalization, speaker_normalization(data, train_idx, val_idx, test_idx)
    return normalization, None


def _fold_model(
    data: CorpusData,
    cfg: TrainConfig,
    arch: str,
    aux: Mapping[str, float],
    labels: dict[str, list[str]],
    normalization: Normalization,
    *,
    fold: tuple[str, int],
    protocol: str | None,
) -> tuple[dict[str, Any], SERModel, torch.device]:
    """The model's config (saved with its weights), and the model on its device: seeded for ``fold`` (its name and
    index), or with ``cfg.init`` the weights of the same fold of another run of ``protocol``."""
    fold_name, fold_index = fold
    frontend = data.inputs.frontend
    config = default_config(arch, {h: len(v) for h, v in labels.items()}, aux, frontend.to_dict(), cfg.backbone)
    if cfg.adversarial:
        config["adversarial"] = list(cfg.adversarial)
    config.update(
        labels=labels,
        normalization=normalization.to_dict(),
        window={"seconds": cfg.window_seconds, "hop_seconds": cfg.hop_seconds, "min_seconds": cfg.min_seconds},
    )
    device = resolve_device(cfg.device)
    torch.manual_seed(_epoch_seed(cfg.seed, fold_index, -1))
    model = build_model(config).to(device)
    if cfg.init:
        warm_start(model, cfg.init, corpus=data.corpus.name, protocol=protocol, fold=fold_name, seed=cfg.seed)
    if cfg.pad == "zero" and not model.masks_padding:
        raise ValueError(
            f"--pad zero needs a backbone that leaves the padding out (edge_cnn); {arch} would learn the padding's "
            "length (the utterance's duration) as a cue: use --pad repeat"
        )
    config["parameters"] = count_parameters(model)
    return config, model, device


def _fold_teachers(
    data: CorpusData,
    cfg: TrainConfig,
    model: SERModel,
    train_idx: np.ndarray,
    targets: dict[str, np.ndarray],
    labels: dict[str, list[str]],
    device: torch.device,
) -> tuple[distill.Targets | None, torch.nn.Module | None, distill.FrameTeacher | None]:
    """When the run distills: the teacher's targets for the fold's training part (cross-fitted soft labels and
    pooled features), the projection of the student's embedding onto those features, and the frame-level targets
    (``--distill-frames``). Built after the model, in this order, so a seed gives the same weights as before."""
    if cfg.distill is None:
        return None, None, None
    # a speaker-adaptive student (per-speaker normalization) always gets the teacher's side per speaker too
    teacher_cfg = replace(cfg.distill, standardize="speaker") if cfg.normalization == "speaker" else cfg.distill
    teacher = distill.fold_targets(
        data.corpus,
        train_idx,
        targets[PRIMARY],
        len(labels[PRIMARY]),
        teacher_cfg,
        cfg.teacher_views,
        cfg.seed,
        extra=data.extra_sources,
    )
    projector = torch.nn.Linear(model.backbone.embedding_dim, teacher.dim).to(device)
    frame_teacher = None
    if cfg.distill.frame_weight > 0:
        frame_teacher = frame_teacher_for(data, model, train_idx, targets[PRIMARY], cfg, device)
    return teacher, projector, frame_teacher


def frame_teacher_for(
    data: CorpusData, model: SERModel, train_idx: np.ndarray, y: np.ndarray, cfg: TrainConfig, device: torch.device
) -> distill.FrameTeacher:
    """The fold's frame-level teacher targets (:func:`models.training.distill.fold_frame_targets`) and a fresh
    projection from the backbone's frame channels (``frame_dim``, what CTC heads read) to the teacher's width."""
    assert cfg.distill is not None
    if not hasattr(model.backbone, "frames"):
        raise ValueError("--distill-frames needs a backbone with frame output (edge_cnn, stream_net, whisper_lite)")
    targets = distill.fold_frame_targets(data.corpus, train_idx, y, cfg.distill, data.extra_sources)
    return distill.FrameTeacher(targets, torch.nn.Linear(model.backbone.frame_dim, targets.dim).to(device))


def _warmed_up_ema(decay: float) -> Callable[..., None]:
    """The moving average's update with ``decay`` warmed up as ``min(decay, (1 + n) / (10 + n))`` after ``n``
    updates (as TensorFlow's ExponentialMovingAverage with ``num_updates``): a fixed decay kept the random
    initial weights in the average for hundreds of steps, and on RAVDESS (about 23 steps an epoch) the averaged
    model of a 0.99 decay still scored chance after five epochs and 22 % after eleven."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        steps = float(n)
        get_ema_multi_avg_fn(min(decay, (1.0 + steps) / (10.0 + steps)))(averaged, current, n)

    return update


def _snapshot(model: SERModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def restore_state(run: FoldRun, *, out_dir: Path, resume: bool) -> None:
    """With ``resume``, continue from ``out_dir/state.pt`` if it was saved with the same settings;
    otherwise start afresh (an old state is removed)."""
    path = out_dir / STATE
    if not (resume and path.exists()):
        path.unlink(missing_ok=True)
        return
    saved = load_tensors(path)
    if not same_identity(saved["identity"], run.identity):
        raise ValueError(f"{path} was saved with other settings; rerun without --resume")
    run.model.load_state_dict(saved["model"])
    if run.projector is not None:
        run.projector.load_state_dict(saved["projector"])
    if run.frame_teacher is not None:
        run.frame_teacher.projector.load_state_dict(saved["frame_projector"])
    run.optimizer.load_state_dict(saved["optimizer"])
    if run.averaged is not None:
        run.averaged.load_state_dict(saved["averaged"])
    run.scheduler.load_state_dict(saved["scheduler"])
    run.progress, run.best_state = saved["progress"], saved["best"]
    _log(f"{run.name}: resuming after epoch {run.progress['epoch']}")


def same_identity(saved: str, current: str) -> bool:
    """Whether a state saved with identity ``saved`` continues the fold ``current``: the same model config and
    fold, and the same training settings (:func:`same_settings`)."""
    old, new = json.loads(saved), json.loads(current)
    rest = [k for k in {*old, *new} if k != "training"]
    return all(old.get(k) == new.get(k) for k in rest) and same_settings(old["training"], new["training"])


def save_state(run: FoldRun, *, out_dir: Path) -> None:
    """The fold's weights, optimizer, schedule, progress and best weights so far, in ``out_dir/state.pt``."""
    save_tensors(
        out_dir / STATE,
        {
            "identity": run.identity,
            "model": run.model.state_dict(),
            "projector": run.projector.state_dict() if run.projector is not None else None,
            "frame_projector": run.frame_teacher.projector.state_dict() if run.frame_teacher is not None else None,
            "optimizer": run.optimizer.state_dict(),
            "averaged": run.averaged.state_dict() if run.averaged is not None else None,
            "scheduler": run.scheduler.state_dict(),
            "progress": run.progress,
            "best": run.best_state,
        },
    )


def transfer_sources(
    data: CorpusData,
    train_idx: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    normalization: Normalization,
    cfg: TrainConfig,
) -> list[tuple[TrainBatches, distill.Targets]]:
    """Per transfer corpus, its training batches (cropped, augmented and normalized like the fold's own) and the
    fold's teacher targets for it (:func:`models.training.distill.transfer_targets`); none without ``--transfer``."""
    if cfg.distill is None or not data.transfer:
        return []
    if cfg.normalization != "global":
        raise ValueError("a transfer set needs --normalization global (its speakers have no statistics of their own)")
    sources = []
    crop = samples(cfg.crop, data.inputs.frontend.sample_rate)
    for other in data.transfer:
        targets = distill.transfer_targets(
            data.corpus, train_idx, y, n_classes, cfg.distill, cfg.teacher_views, other.corpus, data.extra_sources
        )
        rows = np.flatnonzero(~np.isnan(targets.features["clean"]).any(axis=1))
        if len(rows) < 2 * distributed.shard()[1]:  # too few for one batch: its stream would never yield
            raise ValueError(f"transfer corpus {other.corpus.name!r} has {len(rows)} utterances the teacher read")
        batches = TrainBatches(
            other.inputs,
            rows,
            {},
            normalization,
            crop,
            cfg.augment,
            other.waves,
            cfg.pad,
            views=other.views,
            voices=voices(other),
        )
        batches.shard = distributed.shard()
        sources.append((batches, targets))
    return sources


def transfer_stream(
    sources: list[tuple[TrainBatches, distill.Targets]], batch_size: int, seed: list[int]
) -> Iterator[tuple[Batch, distill.Targets]] | None:
    """Endless transfer-set batches for one epoch, the transfer corpora taking turns (None without sources);
    seeded per epoch, so a resumed fold draws the same ones."""
    if not sources:
        return None

    def endless(k: int) -> Iterator[tuple[Batch, distill.Targets]]:
        batches, targets = sources[k]
        rng = np.random.default_rng([*seed, k])
        while True:
            for batch in batches.epoch(batch_size, rng):
                yield batch, targets

    streams = [endless(k) for k in range(len(sources))]
    return (next(streams[step % len(streams)]) for step in itertools.count())


def train_epoch(run: FoldRun, *, epoch: int) -> EpochRecord:
    """One pass over the fold's training batches (0-based ``epoch``); the record of its mean losses."""
    cfg, model, device = run.cfg, run.model, run.device
    rng = np.random.default_rng([cfg.seed, run.index, epoch])
    torch.manual_seed(_epoch_seed(cfg.seed, run.index, epoch))
    model.train()
    n_batches = run.batches.n_batches(cfg.batch_size)
    totals: dict[str, float] = {}
    bar = tqdm(
        run.batches.epoch(cfg.batch_size, rng),
        total=n_batches,
        leave=False,
        disable=not cfg.progress,
        desc=f"{run.name} epoch {epoch + 1}/{cfg.epochs}",
    )
    transfer = transfer_stream(run.transfer, cfg.batch_size, seed=[cfg.seed, run.index, epoch, 1])
    for batch in bar:
        loss, parts = batch_loss(
            model,
            batch,
            cfg=cfg,
            device=device,
            rng=rng,
            teacher=run.teacher,
            projector=run.projector,
            transfer=next(transfer) if transfer is not None else None,
            frame_teacher=run.frame_teacher,
            ensemble=run.ensemble,
        )
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(model)
        if run.projector is not None:
            distributed.average_gradients(run.projector)
        if run.frame_teacher is not None:
            distributed.average_gradients(run.frame_teacher.projector)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        run.optimizer.step()
        if run.averaged is not None:
            run.averaged.update_parameters(model)
        values = {key: float(value.detach()) for key, value in {"loss": loss, **parts}.items()}
        for key, value in values.items():
            totals[key] = totals.get(key, 0.0) + value
        bar.set_postfix(loss=f"{values['loss']:.3f}")
    record: EpochRecord = {"epoch": epoch + 1, "lr": run.scheduler.get_last_lr()[0]}
    record.update({k: v / max(n_batches, 1) for k, v in distributed.average(totals).items()})
    run.scheduler.step()
    return record


def validate(run: FoldRun, *, record: EpochRecord, epoch: int) -> bool:
    """Score the epoch on the validation part (into ``record``) and keep its weights if they are the best
    so far (always, without a validation part); whether they were."""
    improved = True
    scored = run.model if run.averaged is None else run.averaged.module
    if run.val_inputs is not None:
        scores = head_scores(distributed.predict(scored, run.val_inputs, run.device), run.targets, run.val_idx)
        record["val_ua"] = scores[PRIMARY]["ua"]
        improved = record["val_ua"] > run.progress["best_ua"]
    if improved:
        run.best_state = _snapshot(scored)
        run.progress.update(best_ua=record.get("val_ua", -1.0), best_epoch=epoch + 1, bad_epochs=0)
    else:
        run.progress["bad_epochs"] += 1
    return improved


def evaluate_fold(run: FoldRun, *, data: CorpusData) -> FoldResult:
    """Load the best epoch's weights and score them on the fold's test utterances (whole, as the runtime does)."""
    run.model.load_state_dict(run.best_state)
    history, progress = run.progress["history"], run.progress
    results = FoldResult(
        fold=run.name,
        n_train=len(run.train_idx),
        n_val=len(run.val_idx),
        n_test=len(run.test_idx),
        best_epoch=progress["best_epoch"],
        epochs_run=progress["epoch"],
        best_val_ua=progress["best_ua"] if run.val_inputs is not None else None,
        seconds_per_epoch=float(np.mean([r["seconds"] for r in history])) if history else None,
        history=history,
    )
    if not len(run.test_idx):
        return results
    test_idx, targets = run.test_idx, run.targets
    probs = distributed.predict(run.model, eval_inputs(data.inputs, data.windows, test_idx, run.norm), run.device)
    results.test = head_scores(probs, targets, test_idx)
    if run.model.ctc_heads:
        whole = [
            normalization_for(run.norm, int(i))(data.inputs[int(i)]).astype(np.float32, copy=False) for i in test_idx
        ]
        for name, hypotheses in transcribe(run.model, whole, run.device).items():
            pairs = [(row[row != IGNORE].tolist(), h) for row, h in zip(targets[name][test_idx], hypotheses)]
            pairs = [(r, h) for r, h in pairs if r]
            results.test[name] = {
                "token_error_rate": transcripts.error_rate(*zip(*pairs)) if pairs else None,
                "utterances": len(pairs),
            }
    return results


def write_fold(
    run: FoldRun, results: FoldResult, *, corpus_name: str, out_dir: Path, meta: Mapping[str, Any] | None = None
) -> None:
    """The checkpoint (weights + config with its training record), ``metrics.json`` and ``confusion.png``;
    the resumable state is removed."""
    config, progress = run.config, run.progress
    config["training"] = {
        **run.cfg.to_dict(),
        **(meta or {}),
        "corpus": corpus_name,
        "fold": run.name,
        "best_epoch": progress["best_epoch"],
        "epochs_run": progress["epoch"],
    }
    config["metrics"] = results.test or {}
    save_checkpoint(out_dir, run.model, config)
    write_json(out_dir / METRICS, results.to_dict())
    if results.test is not None:
        cm = np.asarray(results.test[PRIMARY]["confusion"])
        title = f"{run.arch} {corpus_name} {run.name}"
        metrics.plot_confusion(cm, run.labels[PRIMARY], out_dir / "confusion.png", title)
    (out_dir / STATE).unlink(missing_ok=True)
