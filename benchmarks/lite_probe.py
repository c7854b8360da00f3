"""Where WhisperLite loses the teacher's knowledge: a linear probe on each stage's pooled embedding.

    python benchmarks/lite_probe.py --init runs/lite/tiny-ce --data ../shared/datasets/ravdess

Per stage -- the teacher's block 1 on Whisper's own log-mel (cached pooled features), the uncompressed student
(numpy front-end + mel adapter + token pairs, full rank, all 1,536 units), the compressed student at its SVD
initialization, the distilled student -- each clip's mean+std pooled embedding (whole clip, one pass), then per
RAVDESS fold a standardized logistic regression, ``C`` chosen on the fold's validation speakers, refit on training
only and scored on its test speakers (UA). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.arch.whisper_lite import WhisperLite  # noqa: E402
from models.data.corpora import load_corpus  # noqa: E402
from models.data.protocols import make_folds  # noqa: E402
from models.teachers.probe import fit  # noqa: E402
from models.training import lite  # noqa: E402
from models.training.checkpoint import load_tensors  # noqa: E402
from models.training.metrics import scores  # noqa: E402


def embed(model: WhisperLite, corpus) -> np.ndarray:
    model.eval()
    rows = []
    with torch.no_grad():
        for i in range(len(corpus.utterances)):
            x = lite._wave(corpus, i)[: int(lite.WINDOW * lite.RATE)]
            rows.append(model(torch.from_numpy(lite.FRONTEND(x).astype(np.float32))[None])[0].numpy())
    return np.stack(rows).astype(np.float64)


def probe(x: np.ndarray, y: np.ndarray, folds) -> list[float]:
    out = []
    for fold in folds:
        tr, va, te = (np.asarray(p) for p in (fold.train, fold.val, fold.test))
        mean, std = x[tr].mean(0), x[tr].std(0) + 1e-8
        z = (x - mean) / std
        best = max((scores(y[va], fit(z[tr], y[tr], c).predict(z[va]), 8)["ua"], c) for c in (0.01, 0.1, 1.0))
        out.append(100 * scores(y[te], fit(z[tr], y[tr], best[1]).predict(z[te]), 8)["ua"])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--init", required=True, help="a distill output folder")
    p.add_argument("--data", required=True)
    p.add_argument("--encoder", default="whisper-tiny.en")
    p.add_argument("--compressed-only", action="store_true", help="only the SVD-initialized and distilled stages")
    args = p.parse_args()
    torch.set_num_threads(1)
    corpus = load_corpus("ravdess", args.data)
    folds = make_folds(corpus)
    y = np.array([corpus.emotions.index(u.emotion) for u in corpus.utterances])
    from models.teachers.cache import teacher_features

    stages = {}
    if not args.compressed_only:
        stages["teacher block 1 (Whisper log-mel, 50 tokens/s)"] = teacher_features(corpus, args.encoder).block(1)
    init = Path(args.init)
    backbone = json.loads((init / "backbone.json").read_text())
    backbone.pop("pair", None)
    backbone["max_tokens"] = lite.student_tokens(int(lite.WINDOW * lite.RATE), backbone.get("pool", 2))
    if not args.compressed_only:
        casia = {n: load_corpus(n, str(Path(args.data).parent / n)) for n in ("casia", "emodb")}
        waves = lite._sample_waves(casia, lite.transfer_plan(casia), 200, 0)
        full = lite.build_student(args.encoder, waves, stem_ranks=(None, None), rank=None, ffn=1536, max_tokens=150)
        stages["uncompressed student (numpy log-mel + adapter, token pairs)"] = embed(full, corpus)
    for label, name in (("compressed, SVD init", "init.pt"), ("compressed, distilled", "student.pt")):
        model = WhisperLite(**backbone)
        state = load_tensors(init / name)
        kept = min(len(model.positions), len(state["positions"]))
        state["positions"] = torch.cat([state["positions"][:kept], model.positions[kept:]])
        for key in ("embedding_shift", "embedding_scale"):
            state[key] = getattr(model, key)
        model.load_state_dict(state)
        stages[label] = embed(model, corpus)
    print("| stage | " + " | ".join(f.name for f in folds) + " | mean |")
    print("|---|" + "---:|" * (len(folds) + 1))
    for label, x in stages.items():
        ok = np.isfinite(x).all(axis=1)
        x = np.where(ok[:, None], x, 0.0)
        uas = probe(x, y, folds)
        print(f"| {label} | " + " | ".join(f"{u:.1f}" for u in uas) + f" | **{np.mean(uas):.1f}** |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
