"""Does a trained fold depend on how its training crops were padded? (diagnostic for issue 7)

Scores one trained fold's test utterances three ways: as ``edge-ser train`` and the runtime do
(unpadded analysis windows), and whole, cropped or padded to the training crop length with zeros
and with repetition. A model that is only good when its test input is padded like its training
crops has learned the padding (its length is the utterance's duration), not the speech.

    python benchmarks/padding_check.py runs/RUN/FOLD [--data-root ../shared/datasets]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from edge_ser.frontend import FrontEnd, Normalization
from models.data import corpora, protocols
from models.data.batches import crop
from models.data.labels import head_targets
from models.training.checkpoint import load_checkpoint
from models.training.config import TrainConfig
from models.training.corpus_data import prepare_data
from models.training.evaluate import eval_inputs, head_scores, predict
from models.training.run import select_folds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fold_dir", type=Path)
    parser.add_argument("--data-root", type=Path, default=Path("../shared/datasets"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, config = load_checkpoint(args.fold_dir)
    training = config["training"]
    corpus = corpora.load_corpus(training["dataset"], args.data_root / training["dataset"])
    frontend = FrontEnd.from_dict(config["frontend"])
    window = config["window"]  # cut the test utterances into the fold's own analysis windows
    cfg = TrainConfig(
        window_seconds=window["seconds"], hop_seconds=window["hop_seconds"], min_seconds=window["min_seconds"]
    )
    data = prepare_data(corpus, frontend, cfg, None)
    folds = protocols.make_folds(corpus, training["protocol"], seed=training.get("seed", 0))
    ((_, fold),) = select_folds(folds, training["fold"])
    test = np.asarray(fold.test, dtype=np.int64)
    norm = Normalization.from_dict(config["normalization"])
    targets = head_targets(corpus, config["labels"])
    frames = frontend.num_frames(round(training["crop_seconds"] * frontend.sample_rate))
    rng = np.random.default_rng(0)
    views = {"analysis windows (as trained/runtime)": eval_inputs(data.inputs, data.windows, test, norm)}
    for pad in ("zero", "repeat"):
        views[f"whole, {pad}-padded to the crop"] = [
            [norm(crop(data.inputs[int(i)], frames, rng, pad)).astype(np.float32)] for i in test
        ]
    print(f"{args.fold_dir} (trained with --pad {training['pad']} --crop {training['crop_seconds']})")
    for name, inputs in views.items():
        print(f"  {name}: UA {head_scores(predict(model, inputs), targets, test)['emotion']['ua']:.1%}")


if __name__ == "__main__":
    main()
