"""A student that keeps part of the teacher: WhisperLite (``models.arch.whisper_lite``) recovered by frame-level
distillation, then trained per fold with labels.

    python -m models.training.lite distill --encoder whisper-tiny.en \
        --corpus casia=../shared/datasets/casia emodb=../shared/datasets/emodb --out runs/lite/tiny
    python -m models.training.lite finetune --init runs/lite/tiny --dataset ravdess \
        --data ../shared/datasets/ravdess --out runs/lite/ravdess [--folds 0,1]

``distill`` builds the student from the teacher's first block (:func:`models.arch.whisper_lite.from_teacher`: the
mel adapter and the feed-forward units kept are chosen on the distillation audio) and trains it, as DistilHuBERT
does, to regress the teacher's block output frame by frame (L1 minus log-sigmoid of the cosine, per token;
teacher frames averaged in pairs to the student's 25 tokens per second) on random 3 s crops. The distillation
audio must leave out the test speakers of every fold it serves: :func:`transfer_plan` keeps a target corpus'
fold to its training speakers, and the default (other corpora only) serves every fold of the target at once.

``finetune``, per fold: a standardized logistic-regression head on the distilled student's pooled embeddings
(``C`` chosen on the fold's validation speakers) starts a joint fine-tuning on the fold's training speakers:
cross-entropy plus the same frame loss onto the teacher's frames of those clips. The epoch is selected by
validation UA only; the test speakers are scored once, at the end. Each fold is a standard checkpoint
(``edge-ser export`` exports it, with the numpy ``logmel`` front-end in the contract). Resumable: finished
folds and distillation epochs are kept.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edge_ser.audio import load_audio
from edge_ser.errors import EdgeSERError
from edge_ser.frontend import FrontEnd
from edge_ser.windows import plan

from ..arch.heads import PRIMARY
from ..arch.registry import build_model, count_parameters, default_config, get_architecture
from ..arch.whisper_lite import WhisperLite, ffn_importance, from_teacher, macs_per_window, mel_adapter
from ..data.corpora import Corpus, load_corpus
from ..data.features import utterance_path
from ..data.protocols import Fold, make_folds
from . import metrics
from .checkpoint import load_tensors, save_checkpoint, save_tensors, write_json

FRONTEND = FrontEnd.from_dict(get_architecture("whisper_lite").frontend)
RATE = 16000
TOKEN = 640  # samples per student token (and per pair of teacher frames)
CROP = 3.0  # distillation crops
# The runtime analysis window: every RAVDESS and CASIA clip fits one 6 s window, so a clip is scored whole, as
# the head was fit (the base tier's choice); fine-tuning crops are as long (the shortest clip of a batch).
WINDOW, HOP, MIN = 6.0, 3.0, 0.25
BLOCK = 1  # the teacher block the student keeps and regresses


def frame_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """DistilHuBERT's loss per token, averaged over ``(..., dim)`` rows: mean |s - t| - log sigmoid(cos(s, t)),
    shifted by ``log sigmoid(1)`` so that it is zero when ``student`` equals ``teacher`` and positive otherwise."""
    l1 = (student - teacher).abs().mean(dim=-1)
    cos = F.cosine_similarity(student, teacher, dim=-1)
    return (l1 - F.logsigmoid(cos)).mean() + F.logsigmoid(torch.tensor(1.0))


def pooled_loss(student: torch.Tensor, teacher: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """MSE between the mean+std pooled student and teacher tokens ``(batch, tokens, d)``, each standardized with
    the teacher's statistics ``shift``/``scale`` ``(2d,)``: every pooled dimension (what the teacher's probe
    reads) counts alike, where the frame loss is dominated by the largest ones."""

    def pooled(x: torch.Tensor) -> torch.Tensor:
        return (torch.cat([x.mean(dim=1), x.std(dim=1, unbiased=False)], dim=1) - shift) / scale

    return F.mse_loss(pooled(student), pooled(teacher))


def student_tokens(samples: int, pool: int = 2) -> int:
    """Tokens WhisperLite (averaging ``pool`` frames) makes from ``samples`` samples through :data:`FRONTEND`."""
    frames = FRONTEND.analysis_frames(samples)
    return ((frames - 1) // 2 + 1) // pool


def transfer_plan(
    corpora: dict[str, Corpus], target: str | None = None, fold: Fold | None = None
) -> dict[str, np.ndarray]:
    """Utterance indices per corpus that distillation may hear when it serves ``fold`` of corpus ``target``:
    every utterance of the other corpora and only the fold's training part of the target (never its
    validation or test speakers)."""
    plan_: dict[str, np.ndarray] = {}
    for name, corpus in corpora.items():
        if name == target:
            if fold is None:
                raise ValueError(f"distillation on {target}, the target corpus, needs its fold")
            keep = np.asarray(fold.train, dtype=np.int64)
            test = {corpus.utterances[i].speaker for i in fold.test}
            if any(corpus.utterances[i].speaker in test for i in keep):
                raise EdgeSERError(f"fold {fold.name}: a test speaker is in its training part")
            plan_[name] = keep
        else:
            plan_[name] = np.arange(len(corpus.utterances))
    return plan_


@dataclass
class Clip:
    features: np.ndarray  # (frames, 80) float32
    target: np.ndarray | None  # (tokens, d) float16: teacher block frames averaged in pairs
    samples: int
    label: int


def _wave(corpus: Corpus, i: int) -> np.ndarray:
    return load_audio(str(utterance_path(corpus, corpus.utterances[i])), target_rate=RATE)[0]


def load_clips(corpus: Corpus, indices: Sequence[int], encoder: str | None, cache: Path) -> list[Clip]:
    """Features (cached per corpus in ``cache``) and, with ``encoder``, the teacher's block frames in pairs."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"feats-{corpus.name}.npz"
    if path.exists():
        with np.load(path) as z:
            flat, offsets, samples = z["flat"], z["offsets"], z["samples"]
    else:
        rows, lengths = [], []
        for i in range(len(corpus.utterances)):
            x = _wave(corpus, i)[: 30 * RATE]
            rows.append(FRONTEND(x).astype(np.float32) if len(x) >= 2 * TOKEN else np.zeros((0, 80), np.float32))
            lengths.append(len(x))
        offsets = np.zeros(len(rows) + 1, np.int64)
        offsets[1:] = np.cumsum([len(r) for r in rows])
        flat, samples = np.concatenate(rows), np.array(lengths)
        np.savez(path, flat=flat, offsets=offsets, samples=samples)
    targets = None if encoder is None else block_targets(corpus, encoder, cache)
    out = []
    for i in indices:
        i = int(i)
        feats = flat[offsets[i] : offsets[i + 1]]
        if len(feats) == 0:
            continue
        label = corpus.emotions.index(corpus.utterances[i].emotion)
        out.append(Clip(feats, None if targets is None else targets[i], int(samples[i]), label))
        if targets is not None and len(targets[i]) == 0:
            out.pop()
    return out


def _pairs(f: np.ndarray) -> np.ndarray:
    n = len(f) // 2 * 2
    return f[:n].astype(np.float32).reshape(n // 2, 2, -1).mean(axis=1).astype(np.float16)


def block_targets(corpus: Corpus, encoder: str, cache: Path) -> list[np.ndarray]:
    """Per utterance, the teacher's block-:data:`BLOCK` frames averaged in pairs ``(tokens, d)`` float16 (empty
    for an unreadable clip), cached in ``cache``: taken from the full frame cache of
    :func:`models.teachers.cache.teacher_frames` where it exists, else computed with the encoder cut after the
    block (cheaper, and a fraction of the disk)."""
    from ..teachers.cache import DEFAULT_TEACHER_CACHE
    from ..teachers.whisper import get_spec, load_encoder

    path = cache / f"targets-{encoder}-b{BLOCK}-{corpus.name}.npz"
    if not path.exists():
        spec = get_spec(encoder)
        full = DEFAULT_TEACHER_CACHE.expanduser() / f"{encoder}-{spec.sha256[:12]}" / f"{corpus.name}-frames"
        rows = []
        if full.is_dir():
            from ..teachers.cache import teacher_frames

            frames = teacher_frames(corpus, encoder, progress=False)
            rows = [_pairs(frames[i][:, BLOCK]) for i in range(len(corpus.utterances))]
            del frames
        else:
            teacher = load_encoder(encoder, blocks=BLOCK)
            for i in range(len(corpus.utterances)):
                try:
                    x = _wave(corpus, i)[: 30 * RATE]
                except EdgeSERError:
                    x = np.zeros(0, np.float32)
                if len(x) < 2 * TOKEN:
                    rows.append(np.zeros((0, spec.d_model), np.float16))
                    continue
                with torch.inference_mode():
                    rows.append(_pairs(teacher(torch.from_numpy(np.ascontiguousarray(x))[None])[BLOCK][0].numpy()))
        lengths = np.array([len(r) for r in rows])
        np.savez(path, flat=np.concatenate(rows), lengths=lengths)
    with np.load(path) as z:
        flat, lengths = z["flat"], z["lengths"]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(lengths))]


def batches(clips: list[Clip], size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffled batches of clips of similar length (the crop is the shortest clip's, at most :data:`CROP`)."""
    order = rng.permutation(len(clips))
    out = []
    for g in range(0, len(order), 16 * size):
        group = sorted(order[g : g + 16 * size], key=lambda k: clips[k].samples)
        out += [group[b : b + size] for b in range(0, len(group), size) if len(group[b : b + size]) >= 2]
    return [out[k] for k in rng.permutation(len(out))]


def crop_batch(
    clips: list[Clip], members: list[int], rng: np.random.Generator, crop: float = CROP, pool: int = 2
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """``(features (b, frames, 80), teacher tokens (b, tokens, d) or None, labels)`` of aligned random crops
    of at most ``crop`` seconds, for a student averaging ``pool`` (even) frames per token."""
    group = pool // 2  # teacher pairs per student token
    n_tok = min(int(crop * RATE) // TOKEN, *(min(clips[k].samples // TOKEN, _targets(clips[k])) for k in members))
    n_tok = max(n_tok // group * group, group)
    samples = n_tok * TOKEN
    n_frames = FRONTEND.analysis_frames(samples)
    tokens = min(n_tok // group, student_tokens(samples, pool))
    xs, ts = [], []
    for k in members:
        c = clips[k]
        room = min(c.samples // TOKEN - n_tok, _targets(c) - tokens * group, (len(c.features) - n_frames) // 4)
        s = int(rng.integers(0, max(room, 0) + 1))
        x = c.features[4 * s : 4 * s + n_frames]
        if len(x) < n_frames:
            x = np.pad(x, ((0, n_frames - len(x)), (0, 0)), mode="edge")
        xs.append(x)
        if c.target is not None:
            t = c.target[s : s + tokens * group].astype(np.float32)
            if len(t) < tokens * group:
                t = np.pad(t, ((0, tokens * group - len(t)), (0, 0)), mode="edge")
            ts.append(t.reshape(tokens, group, -1).mean(axis=1))
    target = torch.from_numpy(np.stack(ts)) if ts else None
    return torch.from_numpy(np.stack(xs)), target, torch.tensor([clips[k].label for k in members])


def _targets(c: Clip) -> int:
    return len(c.target) if c.target is not None else 10**9


def fit_adapter(clips_waves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The mel adapter (:func:`models.arch.whisper_lite.mel_adapter`) fit on these waves' frames."""
    from ..teachers.whisper import WhisperLogMel

    logmel = WhisperLogMel()
    xs, ys = [], []
    for w in clips_waves:
        feats = FRONTEND(w).astype(np.float64)
        feats = np.maximum(feats, feats.max() - 8 * math.log(10))
        with torch.no_grad():
            mel = logmel(torch.from_numpy(w.astype(np.float32))[None])[0].T.numpy()
        n = min(len(feats), len(mel) - 1)
        xs.append(feats[:n])
        ys.append(mel[1 : n + 1])  # Whisper's frame t+1 is centred 40 samples from ours t
    return mel_adapter(np.concatenate(xs), np.concatenate(ys))


def build_student(encoder: str, waves: list[np.ndarray], **kwargs) -> WhisperLite:
    """WhisperLite from ``encoder``'s first block: adapter and kept FFN units chosen on ``waves``."""
    from ..teachers.whisper import load_encoder

    teacher = load_encoder(encoder, blocks=BLOCK)
    layer = teacher.encoder.layers[0]
    captured = []
    hook = layer.fc1.register_forward_hook(lambda m, i, o: captured.append(i[0][0]))
    with torch.no_grad():
        for w in waves:
            teacher(torch.from_numpy(w.astype(np.float32))[None])
    hook.remove()
    importance = ffn_importance(layer.fc1, layer.fc2, torch.cat(captured))
    return from_teacher(teacher.encoder, adapter=fit_adapter(waves), importance=importance, **kwargs)


def _sample_waves(corpora: dict[str, Corpus], plan_: dict[str, np.ndarray], count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    pool = [(n, int(i)) for n, idx in plan_.items() for i in idx]
    pick = rng.choice(len(pool), size=min(count, len(pool)), replace=False)
    waves = []
    for k in pick:
        n, i = pool[int(k)]
        w = _wave(corpora[n], i)[: int(CROP * RATE)]
        if len(w) >= 2 * TOKEN:
            waves.append(w)
    return waves


def _log(out: Path, message: str) -> None:
    print(message, flush=True)
    with open(out / "log.txt", "a") as f:
        f.write(message + "\n")


def distill(args: argparse.Namespace) -> None:
    """Stage 1: frame-level distillation on the transfer audio (resumable per epoch)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    corpora = {n: load_corpus(n, r) for n, _, r in (c.partition("=") for c in args.corpus)}
    plan_ = transfer_plan(corpora)
    state_path = out / "state.pt"
    torch.manual_seed(args.seed)
    if state_path.exists():
        state = load_tensors(state_path)
        student = WhisperLite(**json.loads((out / "backbone.json").read_text()))
        student.load_state_dict(state["model"])
    else:
        state = None
        sizes = {k: v for k, v in (("pool", args.pool), ("rank", args.rank), ("ffn", args.ffn)) if v is not None}
        if args.stem_ranks:
            sizes["stem_ranks"] = tuple(args.stem_ranks)
        student = build_student(args.encoder, _sample_waves(corpora, plan_, 200, args.seed), **sizes)
        student_cfg = _backbone_config(student)
        (out / "backbone.json").write_text(json.dumps(student_cfg))
        save_tensors(out / "init.pt", student.state_dict())
    clips = [c for n, idx in plan_.items() for c in load_clips(corpora[n], idx, args.encoder, Path(args.cache))]
    opt = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * len(batches(clips, args.batch, np.random.default_rng(0)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=0.1)
    start = 0
    if state is not None:
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start = int(state["epoch"])
    _log(out, f"distill: {len(clips)} clips, {count_parameters(student)} params, {macs_per_window(student)} MAC/3s")
    for epoch in range(start, args.epochs):
        rng = np.random.default_rng([args.seed, epoch])
        student.train()
        total, t0 = [], time.time()
        for members in batches(clips, args.batch, rng):
            x, t, _ = crop_batch(clips, members, rng, CROP, student.pool)
            y = student.tokens(x)
            k = min(y.shape[1], t.shape[1])
            loss = frame_loss(y[:, :k], t[:, :k])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 5.0)
            opt.step()
            sched.step()
            total.append(loss.item())
        save_tensors(
            state_path,
            {"model": student.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "epoch": epoch + 1},
        )
        _log(out, f"epoch {epoch + 1}: frame loss {np.mean(total):.4f} ({time.time() - t0:.0f} s)")
    save_tensors(out / "student.pt", student.state_dict())


def _backbone_config(student: WhisperLite) -> dict:
    return {
        "width": student.width,
        "heads": student.block.attn.heads,
        "stem_ranks": [student.conv1.rank, student.conv2.rank],
        "rank": student.block.attn.q.rank,
        "ffn": student.block.fc1.out_features,
        "max_tokens": student.positions.shape[0],
        "pool": student.pool,
    }


def window_inputs(corpus: Corpus, indices: Sequence[int]) -> list[list[np.ndarray]]:
    """Each utterance's runtime analysis windows as features (3 s windows, 1 s hop)."""
    out = []
    for i in indices:
        x = _wave(corpus, int(i))
        spans = plan(len(x), int(WINDOW * RATE), int(HOP * RATE))
        out.append([FRONTEND(x[s:e]).astype(np.float32) for s, e in spans if e - s >= int(MIN * RATE)])
    return out


def _ua(model, inputs: list[list[np.ndarray]], y: np.ndarray, n: int) -> dict:
    from .evaluate import predict

    probs = predict(model, inputs)[PRIMARY]
    return metrics.scores(y, probs.argmax(axis=1), n)


def _embeddings(model, inputs: list[list[np.ndarray]]) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.stack(
            [np.mean([model.embed(torch.from_numpy(w)[None])[0].numpy() for w in wins], 0) for wins in inputs]
        )


def finetune_fold(args: argparse.Namespace, corpus: Corpus, fold: Fold, out: Path) -> dict:
    """Stage 2 for one fold: logistic-regression head on the distilled student, then joint fine-tuning."""
    from ..teachers.probe import fit

    init = Path(args.init)
    backbone = json.loads((init / "backbone.json").read_text())
    backbone["max_tokens"] = student_tokens(int(WINDOW * RATE), backbone.get("pool", 2))
    config = default_config("whisper_lite", {PRIMARY: len(corpus.emotions)}, frontend=FRONTEND.to_dict())
    config["backbone"] = backbone
    config["dropout"] = args.dropout
    model = build_model(config)
    state = load_tensors(init / "student.pt")
    for name in ("embedding_shift", "embedding_scale"):  # set below, from the fold's training speakers
        state[name] = getattr(model.backbone, name)
    table = model.backbone.positions.clone()  # the window's length; the rows distillation used are kept
    kept = min(len(table), len(state["positions"]))
    table[:kept] = state["positions"][:kept]
    state["positions"] = table
    model.backbone.load_state_dict(state)
    n = len(corpus.emotions)
    labels = np.array([corpus.emotions.index(u.emotion) for u in corpus.utterances])
    val_in, test_in = window_inputs(corpus, fold.val), window_inputs(corpus, fold.test)
    train_in = window_inputs(corpus, fold.train)
    y_tr, y_val, y_te = labels[list(fold.train)], labels[list(fold.val)], labels[list(fold.test)]
    raw_tr, raw_val = _embeddings(model, train_in), _embeddings(model, val_in)
    # A floor at the median spread: dimensions that hardly vary would turn small changes of the backbone during
    # fine-tuning into large swings of the head's input (fine-tuning then diverged within two epochs).
    mean, std = raw_tr.mean(0), np.maximum(raw_tr.std(0), np.median(raw_tr.std(0)))
    with torch.no_grad():  # the embedding is standardized inside the model, the head sees unit-scale inputs
        model.backbone.embedding_shift.copy_(torch.from_numpy(mean.astype(np.float32)))
        model.backbone.embedding_scale.copy_(torch.from_numpy(std.astype(np.float32)))
    e_tr, e_val = (raw_tr - mean) / std, (raw_val - mean) / std
    best_c, best_ua = None, -1.0
    for c in (0.01, 0.1, 1.0):
        clf = fit(e_tr, y_tr, c)
        ua = metrics.scores(y_val, clf.predict(e_val), n)["ua"]
        if ua > best_ua:
            best_c, best_ua, best_clf = c, ua, clf
    head = model.heads[PRIMARY]
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(best_clf.coef_.astype(np.float32)))
        head.bias.copy_(torch.from_numpy(best_clf.intercept_.astype(np.float32)))
    history = [{"epoch": 0, "val_ua": best_ua, "c": best_c}]
    _log(out.parent, f"{fold.name}: probe head C={best_c} val UA {100 * best_ua:.1f}")
    teacher = args.frame_weight > 0 or args.pooled_weight > 0
    clips = load_clips(corpus, fold.train, args.encoder if teacher else None, Path(args.cache))
    if teacher:  # statistics of the teacher's pooled tokens over the training clips
        pooled = np.stack([np.concatenate([c.target.mean(0), c.target.std(0)]).astype(np.float64) for c in clips])
        p_shift = torch.from_numpy(pooled.mean(0).astype(np.float32))
        p_scale = torch.from_numpy(np.maximum(pooled.std(0), 1e-3 * pooled.std(0).max()).astype(np.float32))
    params = [
        {"params": model.backbone.parameters(), "lr": args.lr},
        {"params": model.heads.parameters(), "lr": args.head_lr},
    ]
    opt = torch.optim.AdamW(params, weight_decay=1e-4)
    steps = args.epochs * len(batches(clips, args.batch, np.random.default_rng(0)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, [args.lr, args.head_lr], total_steps=steps, pct_start=0.1)
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    best_epoch = 0
    for epoch in range(args.epochs):
        rng = np.random.default_rng([args.seed, epoch, 7])
        model.train()
        t0, losses = time.time(), []
        for members in batches(clips, args.batch, rng):
            x, t, y = crop_batch(clips, members, rng, WINDOW, model.backbone.pool)
            frames = model.backbone.tokens(x)
            logits = model.heads[PRIMARY](model.dropout(model.backbone.embed_frames(frames.transpose(1, 2))))
            loss = F.cross_entropy(logits, y, label_smoothing=0.1)
            if t is not None:
                k = min(frames.shape[1], t.shape[1])
                loss = loss + args.frame_weight * frame_loss(frames[:, :k], t[:, :k])
                if args.pooled_weight > 0:
                    loss = loss + args.pooled_weight * pooled_loss(frames[:, :k], t[:, :k], p_shift, p_scale)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        ua = _ua(model, val_in, y_val, n)["ua"]
        history.append({"epoch": epoch + 1, "val_ua": ua, "loss": float(np.mean(losses))})
        _log(
            out.parent,
            f"{fold.name} epoch {epoch + 1}: loss {np.mean(losses):.3f} val UA {100 * ua:.1f}"
            f" ({time.time() - t0:.0f} s)",
        )
        if ua > best_ua:
            best_ua, best_epoch = ua, epoch + 1
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    test = _ua(model, test_in, y_te, n)
    config.update(
        {
            "labels": {PRIMARY: list(corpus.emotions)},
            "window": {"seconds": WINDOW, "hop_seconds": HOP, "min_seconds": MIN},
            "normalization": {"mode": "none"},
            "parameters": count_parameters(model),
            "macs_per_3s": macs_per_window(model.backbone),
            "training": {
                "corpus": corpus.name,
                "fold": fold.name,
                "seed": args.seed,
                "normalization": "none",
                "best_epoch": best_epoch,
                "recipe": "models.training.lite",
                "init": str(init),
                "epochs": args.epochs,
                "lr": args.lr,
                "frame_weight": args.frame_weight,
                "pooled_weight": args.pooled_weight,
                "dropout": args.dropout,
            },
            "metrics": test,
        }
    )
    save_checkpoint(out, model, config)
    result = {"fold": fold.name, "val_ua": best_ua, "best_epoch": best_epoch, "test": test, "history": history}
    write_json(out / "metrics.json", result)
    _log(out.parent, f"{fold.name}: best epoch {best_epoch} val UA {100 * best_ua:.1f} test UA {100 * test['ua']:.1f}")
    return result


def finetune(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(args.dataset, args.data)
    folds = make_folds(corpus, "default", seed=args.seed)
    wanted = [folds[int(k)] for k in args.folds.split(",")] if args.folds else folds
    for fold in wanted:
        target = out / fold.name
        if (target / "metrics.json").exists():
            _log(out, f"{fold.name}: done, skipped")
            continue
        torch.manual_seed(args.seed)
        finetune_fold(args, corpus, fold, target)
    done = [
        json.loads((out / f.name / "metrics.json").read_text())
        for f in folds
        if (out / f.name / "metrics.json").exists()
    ]
    write_json(
        out / "summary.json",
        {
            "folds": {d["fold"]: d["test"]["ua"] for d in done},
            "mean_ua": float(np.mean([d["test"]["ua"] for d in done])),
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.training.lite", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("distill", help="frame-level distillation of WhisperLite on transfer audio")
    d.add_argument("--corpus", nargs="+", required=True, help="NAME=ROOT of the transfer corpora")
    d.add_argument("--epochs", type=int, default=12)
    d.add_argument("--lr", type=float, default=1e-3)
    d.add_argument("--pool", type=int, choices=(2, 4), help="stem frames averaged per token (default 2)")
    d.add_argument("--stem-ranks", type=int, nargs=2, help="ranks of the two stem convolutions")
    d.add_argument("--rank", type=int, help="rank of the attention projections")
    d.add_argument("--ffn", type=int, help="feed-forward units kept")
    f = sub.add_parser("finetune", help="per-fold training of a distilled WhisperLite")
    f.add_argument("--init", required=True, help="a distill output folder")
    f.add_argument("--dataset", required=True)
    f.add_argument("--data", required=True)
    f.add_argument("--folds", help="comma-separated fold indices (default: all)")
    f.add_argument("--epochs", type=int, default=15)
    f.add_argument("--lr", type=float, default=2e-5)
    f.add_argument("--head-lr", type=float, default=1e-4)
    f.add_argument("--frame-weight", type=float, default=1.0)
    f.add_argument("--pooled-weight", type=float, default=0.0, help="weight of the standardized pooled loss")
    f.add_argument("--dropout", type=float, default=0.0)
    for q in (d, f):
        q.add_argument("--encoder", default="whisper-tiny.en")
        q.add_argument("--out", required=True)
        q.add_argument("--batch", type=int, default=32)
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--threads", type=int, default=1)
        q.add_argument("--cache", default="runs/lite/cache")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    {"distill": distill, "finetune": finetune}[args.command](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
