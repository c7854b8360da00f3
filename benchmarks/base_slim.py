"""Slimmer base-tier encoders (feed-forward pruning, token pooling): fold UA of the probe and latency, per config.

    python benchmarks/base_slim.py chinese-base CONFIG [CONFIG ...] [--data-root ../shared/datasets]
        [--work runs/slim] [--runs 30] [--out benchmarks/results/base-slim.md]

A CONFIG is ``keepF`` (keep the fraction F of every block's feed-forward units), ``poolK`` (average frame pairs
after the stem, K=0, or after block K) or both joined by ``+``, e.g. ``keep0.5+pool1``; ``full`` is the shipped
encoder. Per config the FP32 encoder (PyTorch) embeds every utterance of the recipe's corpus (each clip whole, at
most the runtime's window, as the runtime scores it); the head is chosen and fit per fold on training speakers
only, exactly as ``python -m export.base_tier`` does (:func:`models.teachers.probe.choose_c`, then
:func:`export.base_tier.fit_head` on train + validation), and scored on the fold's test speakers. The importance
statistics of the pruning come from :func:`models.teachers.slim.importance_files` (never the recipe's corpus).
Latency: each config exported with a head fit on every speaker (timing only), in the shipped variant
(``int8d-stem``), beside the shipped file, all through ``edge_ser.Recognizer`` in one interleaved run (one thread,
3 s of audio). Features and statistics are cached under ``--work``.

    python benchmarks/base_slim.py chinese-base CONFIG [CONFIG ...] --runtime [--base-work runs/base]

cross-validates each config as the ship command would (every fold's file through the runtime, causal adaptation).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_ser.model import ASSETS, SHIPPED  # noqa: E402
from export.base_tier import RECIPES, WINDOW, clip_waves, export_base, fit_adapted, fit_head, space  # noqa: E402

CONFIG = re.compile(r"^(?:full|(?:keep(?P<keep>0?\.\d+|1(?:\.0)?))?\+?(?:pool(?P<pool>\d))?)$")


def parse(config: str) -> tuple[float, int | None]:
    """``(fraction of feed-forward units kept, pool_after)`` of a CONFIG string."""
    m = CONFIG.match(config)
    if not m or config in ("", "+"):
        raise SystemExit(f"bad config {config!r}: use full, keepF, poolK or keepF+poolK")
    return float(m["keep"] or 1.0), None if m["pool"] is None else int(m["pool"])


def slim_encoder(base, recipe, keep: float, pool: int | None, data_root: str, work: Path):
    """A copy of ``base`` pruned to ``keep`` (statistics cached in ``work``) and its trunk pooled after ``pool``."""
    from models.teachers.base_tier import trunk
    from models.teachers.slim import importance_statistics, prune_layers

    teacher = copy.deepcopy(base)
    if keep < 1.0:
        cache = work / f"{recipe.encoder}-stats-pool{pool}.npz"
        if cache.exists():
            with np.load(cache) as z:
                stats = [(z[f"abs{i}"], z[f"mean{i}"]) for i in range(recipe.block)]
        else:
            stats = importance_statistics(trunk(teacher, recipe.block, pool), data_root, recipe.dataset, WINDOW)
            np.savez(cache, **{f"{k}{i}": a for i, pair in enumerate(stats) for k, a in zip(("abs", "mean"), pair)})
        prune_layers(list(teacher.encoder.layers)[: recipe.block], stats, keep)
    return teacher, trunk(teacher, recipe.block, pool)


def features(module, files: list[str], cache: Path) -> np.ndarray:
    """Every file's embedding through ``module`` (cut to the window), cached; NaN rows for unreadable files."""
    from models.teachers.base_tier import embed_waves

    if not cache.exists():
        np.save(cache, embed_waves(module, clip_waves(files)))
    return np.load(cache)


def probe_folds(x: np.ndarray, corpus) -> dict[str, float]:
    """Per fold, the test speakers' UA of the head chosen and fit as ``export.base_tier.cross_validate`` does."""
    from models.data.protocols import make_folds
    from models.teachers.probe import choose_fold_c
    from models.training.metrics import scores

    y = np.array([corpus.emotions.index(u.emotion) for u in corpus.utterances])
    speakers = np.array([u.speaker for u in corpus.utterances])
    ok = np.isfinite(x).all(1)
    n = len(corpus.emotions)
    out = {}
    for fold in make_folds(corpus, "default", seed=0):
        test = np.asarray(fold.test)
        xs = np.where(ok[:, None], x, 0.0)
        c, train, val = choose_fold_c(xs, y, speakers, fold, n, ok)
        rest = np.concatenate([train, val])
        mean, std, coef, intercept = fit_head(xs[rest], y[rest], c)
        logits = ((xs[test] - mean) / std) @ coef.T + intercept
        out[fold.name] = scores(y[test], logits.argmax(1), n)["ua"]
    return out


def main(argv: list[str] | None = None) -> int:
    from export.base_variants import latency_table, make_variant
    from models.data.corpora import load_corpus
    from models.teachers.whisper import load_encoder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(RECIPES))
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--work", type=Path, default=Path("runs/slim"))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--runtime", action="store_true", help="cross-validate through the runtime instead")
    parser.add_argument("--base-work", type=Path, default=Path("runs/base"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    recipe = RECIPES[args.name]
    if args.runtime:
        return runtime(args, recipe)
    work = args.work / args.name
    work.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(recipe.dataset, str(Path(args.data_root) / recipe.dataset))
    files = [str(Path(corpus.root) / u.path) for u in corpus.utterances]
    base = load_encoder(recipe.encoder, recipe.block)
    results, paths = {}, {}
    for config in args.configs:
        keep, pool = parse(config)
        teacher, module = slim_encoder(base, recipe, keep, pool, args.data_root, work)
        x = features(module, files, work / f"{config}.features.npy")
        ua = probe_folds(x, corpus)
        mean = float(np.mean(list(ua.values())))
        results[config] = {"keep": keep, "pool_after": pool, "folds": ua, "ua_mean": mean}
        print(f"{config}: UA {100 * mean:.1f} " + " ".join(f"{100 * v:.1f}" for v in ua.values()), flush=True)
        if not args.no_latency:
            ok = np.isfinite(x).all(1)
            y = np.array([corpus.emotions.index(u.emotion) for u in corpus.utterances])
            speakers = np.array([u.speaker for u in corpus.utterances])
            fp32 = work / f"{config}.torch.onnx"
            export_base(
                teacher,
                recipe.block,
                fit_head(x[ok], y[ok], 0.1),
                list(corpus.emotions),
                f"slim-{config}",
                {},
                fp32,
                fit_adapted(x[ok], y[ok], speakers[ok], 0.1),
                space(recipe),
                pool_after=pool,
            )
            paths[config] = make_variant(fp32, "int8d-stem", [], work / f"{config}.int8d-stem.onnx")
    if paths:
        paths = {"shipped": ASSETS / SHIPPED[args.name], **paths}
        for v, r in latency_table(paths, runs=args.runs).items():
            print(f"latency {v}: {r['ms']:.2f} ms, {r['bytes']:,} B", flush=True)
            if v in results:
                results[v]["latency_ms"], results[v]["bytes"] = r["ms"], r["bytes"]
            else:
                results["shipped-latency"] = r
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


def runtime(args, recipe) -> int:
    """Each config cross-validated as ``python -m export.base_tier`` would ship it (fold files in ``fp32``, ``int8d``,
    ``int8d-stem`` through ``edge_ser.Recognizer``; causal adaptation of the ``int8d-stem`` files), cached under
    ``--base-work`` where the ship command finds them."""
    import dataclasses

    from export.base_tier import adaptation_folds, cross_validate, folds_dir, load_teacher
    from models.data.corpora import load_corpus

    corpus = load_corpus(recipe.dataset, str(Path(args.data_root) / recipe.dataset))
    for config in args.configs:
        keep, pool = parse(config)
        r = dataclasses.replace(recipe, ffn_keep=keep, pool_after=pool, variants=("fp32", "int8d", "int8d-stem"))
        work = folds_dir(args.name, r, args.base_work)
        work.mkdir(parents=True, exist_ok=True)
        cv = cross_validate(args.name, r, corpus, load_teacher(r, args.data_root, work), work)
        adapted = adaptation_folds(args.name, r, corpus, "int8d-stem", work)
        for v in r.variants:
            print(f"{config} {v}: UA {100 * np.mean([f[v] for f in cv['folds'].values()]):.1f}")
        k20 = 100 * np.mean([a["20"] for a in adapted.values()])
        print(f"{config} int8d-stem adapted k=20: UA {k20:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
