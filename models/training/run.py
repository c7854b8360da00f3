"""A training run: an architecture trained and evaluated fold by fold on a corpus (``edge-ser train`` as a function).

    from models.training import RunConfig, TrainConfig, train

    report = train(RunConfig(arch="edge_cnn", dataset="casia", data="../shared/datasets/casia", out="runs/x",
                             training=TrainConfig(epochs=20, label_smoothing=0.1)))
    print(report.ua, report.folds["ZhaoZuoxiang"].best_epoch)

Every fold goes into ``out/<fold name>/`` (:func:`models.training.loop.train_fold`); ``out/report.json``
gets mean +- std over folds, the command and the corpus' skipped files (:class:`TrainReport`).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge_ser.frontend import FrontEnd

from ..arch.registry import get_architecture
from ..data import corpora, protocols
from . import distributed
from .checkpoint import jsonable, write_json
from .config import FoldPlan, RunConfig, Split, TrainConfig
from .corpus_data import CorpusData, prepare_data
from .loop import FoldResult, finished_fold, train_fold
from .report import REPORT, TrainReport, skipped_summary, summarize_folds


@dataclass
class PreparedRun:
    """What a run trains on, before any fold trains: the corpus data, the ``(index, fold)`` plans, the settings
    as every checkpoint records them, the heads and the protocol's name; ``others``: the protocol's folds that
    ``--folds`` left out (another process may train them into the same folder)."""

    data: CorpusData
    folds: list[tuple[int, FoldPlan]]
    cfg: TrainConfig
    aux: dict[str, float]
    protocol: str
    others: list[tuple[int, FoldPlan]] = field(default_factory=list)


def train(run: RunConfig) -> TrainReport:
    """Train ``run`` (all folds of its protocol, or one final model) and return the report it wrote."""
    plan = prepare_run(run)
    return train_folds(
        plan.data,
        plan.folds,
        arch=run.arch,
        aux=plan.aux,
        cfg=plan.cfg,
        out=run.out,
        resume=run.resume,
        command=run.command,
        dataset=run.dataset,
        protocol=plan.protocol,
        others=plan.others,
    )


def prepare_run(run: RunConfig) -> PreparedRun:
    """Load the corpora and plan the folds of ``run`` (what :func:`train` trains, and
    :func:`models.training.loop.evaluate_unfinished` scores)."""
    if run.threads:
        torch.set_num_threads(run.threads)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    cfg = replace(run.training, patience=0) if run.final else run.training
    spec = get_architecture(run.arch)
    aux = {**spec.required_heads, **dict(run.aux)}
    frontend = FrontEnd.from_dict(dict(run.frontend) if run.frontend is not None else spec.frontend)
    corpus = corpora.load_corpus(run.dataset, str(run.data))
    if run.transfer and cfg.distill is None:
        raise ValueError("--transfer needs --teacher (the transfer set learns only the teacher's losses)")
    transfer = [corpora.load_corpus(name, str(root)) for name, root in run.transfer.items()]
    extra = [corpora.load_corpus(name, str(root)) for name, root in run.extra.items()]
    for option, others in (("--transfer", transfer), ("--extra-corpus", extra)):
        roots = [c.root for c in (corpus, *others)]
        if len(set(roots)) != len(roots):
            raise ValueError(f"{option} must name other corpora than the training corpus, each once")
    if cfg.distill is not None:  # the names go into every checkpoint's settings; the roots stay in RunConfig
        cfg = replace(cfg, distill=replace(cfg.distill, transfer=tuple(run.transfer)))
    if extra:
        cfg = replace(cfg, extra_corpora=tuple(run.extra))
    with distributed.main_first():  # rank 0 computes the feature cache, the other ranks read it
        data = prepare_data(corpus, frontend, cfg, run.cache_dir, transfer, extra)
    others: list[tuple[int, FoldPlan]] = []
    if run.final:
        protocol = "final"
        folds: list[tuple[int, FoldPlan]] = [(0, Split("final", tuple(range(len(data.corpus.utterances))), (), ()))]
    else:
        protocol = protocols.default_protocol(corpus.name) if run.protocol == "default" else run.protocol
        plan = protocols.make_folds(corpus, protocol, seed=cfg.seed)
        chosen = select_folds(plan, run.folds)
        folds = [(i, with_training(fold, data.extra_train)) for i, fold in chosen]
        trained = {i for i, _ in chosen}
        others = [(i, with_training(fold, data.extra_train)) for i, fold in enumerate(plan) if i not in trained]
    return PreparedRun(data, folds, cfg, aux, protocol, others)


def train_folds(
    data: CorpusData,
    folds: Sequence[tuple[int, FoldPlan]],
    *,
    arch: str,
    aux: Mapping[str, float],
    cfg: TrainConfig,
    out: str | Path,
    resume: bool = False,
    command: str | None = None,
    dataset: str | None = None,
    protocol: str | None = None,
    others: Sequence[tuple[int, FoldPlan]] = (),
) -> TrainReport:
    """Train every ``(index, fold)`` into ``out/<fold name>/`` and write ``out/report.json``.

    The report also counts the folds of ``others`` (the protocol's folds not trained here) that are already
    finished in ``out`` with the same settings, in the protocol's order: two processes that train a run's folds
    between them (``--folds 0,1`` and ``--folds 2,3`` into one folder) leave a report of every fold, whichever
    finishes last. A fold finished with other settings is left out of it."""
    out = Path(out)
    command = command if command is not None else invocation()
    extra: dict[str, Any] = {k: v for k, v in (("dataset", dataset), ("protocol", protocol)) if v is not None}
    meta = {"command": command, **extra}
    trained = {
        i: train_fold(
            data, fold, fold_index=i, arch=arch, aux=aux, cfg=cfg, out_dir=out / fold.name, resume=resume, meta=meta
        )
        for i, fold in folds
    }
    results = [r for _, r in sorted({**_finished_elsewhere(out, others, cfg), **trained}.items())]
    summary, aux_summary = summarize_folds(results)
    report = TrainReport(
        command=command,
        arch=arch,
        aux=dict(aux),
        dataset=dataset,
        protocol=protocol,
        corpus={
            "name": data.corpus.name,
            "utterances": len(data.corpus.utterances),
            "skipped": skipped_summary(getattr(data.corpus, "skipped", ())),
        },
        frontend=data.inputs.frontend.to_dict(),
        training=jsonable(cfg.to_dict()),
        folds={r.fold: replace(r, history=[]) for r in results},  # as report.json: curves stay in metrics.json
        summary=summary,
        seconds_per_epoch=float(np.mean([r.seconds_per_epoch for r in results if r.seconds_per_epoch]))
        if results
        else None,
        aux_summary=aux_summary,
        path=out / REPORT,
    )
    write_json(out / REPORT, report.to_dict())
    return report


def _finished_elsewhere(out: Path, others: Sequence[tuple[int, FoldPlan]], cfg: TrainConfig) -> dict[int, FoldResult]:
    """The folds of ``others`` already finished in ``out`` with the settings ``cfg`` (by index)."""
    found = {}
    for i, fold in others:
        try:
            result = finished_fold(out / fold.name, fold=fold, cfg=cfg)
        except ValueError:  # finished with other settings: not this run's
            continue
        if result is not None:
            found[i] = result
    return found


def select_folds(folds: Sequence[FoldPlan], spec: str | None) -> list[tuple[int, FoldPlan]]:
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


def with_training(fold: FoldPlan, extra: Sequence[int]) -> FoldPlan:
    """``fold`` with the utterances ``extra`` (other corpora's, see ``CorpusData.extra_train``) added to its
    training part; validation and test are unchanged, so they stay the corpus' own speakers."""
    if not extra:
        return fold
    return Split(fold.name, (*fold.train, *extra), tuple(fold.val), tuple(fold.test))


def invocation() -> str:
    """This process' command line as a user would type it (``edge-ser train ...``): ``python -m edge_ser[.cli]``
    (also under torchrun) is ``edge-ser``, whose arguments start with the subcommand; ``python -m models.train``'s
    have none."""
    script = Path(sys.argv[0])
    program = script.name
    if program.endswith(".py"):
        program = "edge-ser" if script.parent.name == "edge_ser" else "python -m models.train"
    return " ".join([program, *(shlex.quote(a) for a in sys.argv[1:])])
