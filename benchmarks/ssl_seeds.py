"""The SSL seed systems on a frozen Whisper encoder, on our speaker-independent folds.

    python benchmarks/ssl_seeds.py --encoder whisper-tiny.en --corpus ravdess=../shared/datasets/ravdess \
        --json benchmarks/results/ssl-ravdess.json --out benchmarks/results/ssl-seeds.md

Systems (``models.teachers.ssl_heads``): ``ssl`` (weighted sum of blocks, pooling, linear emotion head),
``mtlser`` (seed 001: + CTC transcript and speaker heads) and ``ctc_fusion`` (seed 002: + a phonetic BiGRU trained
with CTC, fused into the emotion head). Per fold: trained on the training speakers, the epoch chosen by UA on the
fold's validation part (training speakers only), scored on the test speakers. Transcripts: RAVDESS characters,
CASIA pinyin syllables (``models.data.transcripts``); the speaker head's classes are the fold's training speakers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

TRANSCRIPTS = {"ravdess": "chars", "casia": "syllables", "emodb": "chars"}


def batches(idx: np.ndarray, frames, size: int, rng: np.random.Generator | None):
    order = rng.permutation(idx) if rng is not None else idx
    for b in range(0, len(order), size):
        part = order[b : b + size]
        lengths = np.array([frames.offsets[i + 1] - frames.offsets[i] for i in part])
        x = np.zeros((len(part), lengths.max(), *frames.frames.shape[1:]), np.float32)
        for k, i in enumerate(part):
            x[k, : lengths[k]] = frames[i]
        yield part, torch.from_numpy(x), torch.from_numpy(lengths)


def run_fold(system, frames, targets, fold, n_emotions, vocab, epochs, seed):
    from models.teachers.ssl_heads import FrozenEncoderHeads, ctc
    from models.training.metrics import scores

    train = np.array([i for i in fold.train if frames.ok[i]])
    val = np.array([i for i in fold.val if frames.ok[i]])
    test = np.array([i for i in fold.test if frames.ok[i]])
    speakers = sorted({targets["speaker"][i] for i in train})
    spk = {s: k for k, s in enumerate(speakers)}
    rows = np.concatenate([np.arange(frames.offsets[i], frames.offsets[i + 1]) for i in train])[::7]
    sample = torch.from_numpy(frames.frames[rows].astype(np.float32))
    mean, std = sample.mean(0), sample.std(0) + 1e-5  # per state and channel, training speakers only
    torch.manual_seed(seed)
    model = FrozenEncoderHeads(
        system, frames.frames.shape[1], frames.frames.shape[2], n_emotions, len(vocab), len(spk), mean=mean, std=std
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    y = targets["emotion"]

    def evaluate(idx):
        model.eval()
        pred = []
        with torch.no_grad():
            for _, x, n in batches(idx, frames, 32, None):
                pred.append(model(x, n)["emotion"].argmax(1).numpy())
        return scores(y[idx], np.concatenate(pred), n_emotions)["ua"]

    best, best_state, curve = -1.0, None, []
    for epoch in range(epochs):
        model.train()
        rng = np.random.default_rng([seed, epoch])
        for part, x, n in batches(train, frames, 16, rng):
            out = model(x, n)
            loss = torch.nn.functional.cross_entropy(out["emotion"], torch.from_numpy(y[part]))
            if "transcript" in out:
                rows = [targets["tokens"][i] for i in part]
                tl = torch.tensor([len(r) for r in rows])
                tt = _pad(rows)
                loss = loss + 0.3 * ctc(out["transcript"], n, tt, tl)
            if "speaker" in out:
                loss = loss + 0.1 * torch.nn.functional.cross_entropy(
                    out["speaker"], torch.tensor([spk[targets["speaker"][i]] for i in part])
                )
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        ua = evaluate(val)
        curve.append(ua)
        if ua > best:
            best, best_state = ua, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return {"val": best, "test": evaluate(test), "curve": curve}


def _pad(rows):
    width = max(1, max(len(r) for r in rows))
    out = torch.zeros(len(rows), width, dtype=torch.long)
    for k, r in enumerate(rows):
        out[k, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def main(argv: list[str] | None = None) -> int:
    from models.data import transcripts as ctc_tokens
    from models.data.corpora import load_corpus
    from models.data.protocols import make_folds
    from models.teachers.cache import teacher_frames
    from models.teachers.ssl_heads import SYSTEMS

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoder", default="whisper-base")
    p.add_argument("--corpus", required=True, help="NAME=ROOT")
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    p.add_argument("--out", type=Path, help="Markdown file; this corpus' section is replaced or appended")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    name, _, root = args.corpus.partition("=")
    corpus = load_corpus(name, root)
    folds = make_folds(corpus, "default", seed=args.seed)
    frames = teacher_frames(corpus, args.encoder, progress=False)
    head = TRANSCRIPTS.get(corpus.name, "chars")
    vocab = ["<blank>", *sorted({t for u in corpus.utterances for t in (ctc_tokens.tokens(head, u) or [])})]
    index = {t: k for k, t in enumerate(vocab)}
    targets = {
        "emotion": np.array([corpus.emotions.index(u.emotion) for u in corpus.utterances]),
        "speaker": [u.speaker for u in corpus.utterances],
        "tokens": [[index[t] for t in (ctc_tokens.tokens(head, u) or [])] for u in corpus.utterances],
    }
    results: dict = {}
    for system in args.systems:
        results[system] = {}
        for fold in folds:
            t0 = time.time()
            r = run_fold(system, frames, targets, fold, len(corpus.emotions), vocab, args.epochs, args.seed)
            results[system][fold.name] = r
            print(
                f"{system} {fold.name}: val {100 * r['val']:.1f} test {100 * r['test']:.1f} ({time.time() - t0:.0f} s)",
                flush=True,
            )
    command = "python benchmarks/ssl_seeds.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.json:
        args.json.write_text(json.dumps({"encoder": args.encoder, "corpus": name, "results": results}, indent=1) + "\n")
    if args.out:
        lines = [
            f"## {name} ({args.encoder}, {len(folds)} folds, {args.epochs} epochs, transcripts: {head})",
            "",
            "| system | " + " | ".join(f.name for f in folds) + " | mean ± std |",
            "|---|" + "---:|" * (len(folds) + 1),
        ]
        for system, per in results.items():
            ua = [100 * per[f.name]["test"] for f in folds]
            lines.append(
                f"| {system} | " + " | ".join(f"{u:.1f}" for u in ua) + f" | **{np.mean(ua):.1f}** ± {np.std(ua):.1f} |"
            )
        lines += ["", f"Command: `{command}`", ""]
        text = "\n".join(lines)
        from benchmarks.report import replace_section

        head_md = "# SSL seed systems on a frozen Whisper encoder (UA %, speaker-independent test folds)\n\n"
        replace_section(args.out, head_md, name, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
