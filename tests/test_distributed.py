"""Training under ``torchrun``: batches sharded per rank, and a real two-process gloo run that resumes a
single-process run, trains like one process and writes one checkpoint -- on a generated corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_train import make_corpus, write_manifest

import models.training.cli
import models.training.loop
from edge_ser.frontend import FrontEnd, Normalization
from models.data.batches import TrainBatches
from models.data.features import load_features

ROOT = Path(__file__).resolve().parents[1]


def test_ranks_split_every_batch_between_them(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "toy", per_speaker=3, speakers=3)  # 18 utterances
    table = load_features(corpus, FrontEnd(kind="mfcc", n_mfcc=13), tmp_path / "cache")
    targets = {"emotion": np.arange(len(corpus.utterances))}  # target = utterance index

    def batches(rank: int, world: int) -> list[list[int]]:
        b = TrainBatches(table, np.arange(18), targets, Normalization("utterance"), 8000)
        b.shard = (rank, world)
        out = [batch.targets["emotion"].tolist() for batch in b.epoch(8, np.random.default_rng(3))]
        assert len(out) == b.n_batches(8)
        return out

    single = batches(0, 1)
    assert [len(b) for b in single] == [8, 8, 2]
    parts = [batches(r, 2) for r in range(2)]
    assert [len(b) for b in parts[0]] == [4, 4]  # a last batch of two cannot feed two ranks two each
    for k in range(2):
        assert sorted(parts[0][k] + parts[1][k]) == sorted(single[k])


def _two_ranks(rank: int, init: str, out: str) -> None:
    """One rank of :func:`test_averaged_gradients_are_the_whole_batch_gradient`."""
    import torch
    import torch.distributed as dist

    from models.training import distributed

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    unused = torch.nn.Linear(2, 2)  # a head no rank used: keeps no gradient, as in one process
    model.append(unused)
    x, y = torch.linspace(-1, 1, 24).reshape(8, 3), torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    torch.nn.functional.cross_entropy(model[:3](x[rank::2]), y[rank::2]).backward()
    distributed.average_gradients(model)
    torch.save([None if p.grad is None else p.grad for p in model.parameters()], f"{out}.{rank}")
    dist.destroy_process_group()


def test_averaged_gradients_are_the_whole_batch_gradient(tmp_path: Path) -> None:
    import torch
    import torch.multiprocessing as mp

    mp.start_processes(_two_ranks, args=(f"file://{tmp_path / 'rendezvous'}", str(tmp_path / "g")), nprocs=2)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    x, y = torch.linspace(-1, 1, 24).reshape(8, 3), torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    torch.nn.functional.cross_entropy(model(x), y).backward()
    for rank in range(2):
        grads = torch.load(tmp_path / f"g.{rank}")
        assert grads[-2:] == [None, None]
        for g, p in zip(grads, model.parameters()):
            torch.testing.assert_close(g, p.grad)


def test_torchrun_gloo_resumes_a_run_and_trains_like_one_process(tmp_path: Path, monkeypatch) -> None:
    corpus = make_corpus(tmp_path / "toy", per_speaker=4, speakers=5)
    manifest = write_manifest(corpus, tmp_path / "toy.csv")
    args = ["--arch", "pcnn", "--dataset", "csv", "--data", str(manifest), "--folds", "0", "--epochs", "6"]
    args += ["--batch-size", "8", "--window", "0.5", "--hop", "0.25", "--lr", "3e-3", "--patience", "0"]
    args += ["--no-progress", "--cache-dir", str(tmp_path / "cache"), "--threads", "1"]

    single = tmp_path / "single"
    assert models.training.cli.main([*args, "--out", str(single)]) == 0

    class Interrupt(Exception):
        pass

    real_save = models.training.loop.save_tensors

    def save_then_stop(path, data):  # one process trains the first epoch, then is "killed"
        real_save(path, data)
        raise Interrupt

    run = tmp_path / "ddp"
    monkeypatch.setattr(models.training.loop, "save_tensors", save_then_stop)
    with pytest.raises(Interrupt):
        models.training.cli.main([*args, "--out", str(run)])
    monkeypatch.undo()
    (fold,) = [p.parent for p in run.rglob("state.pt")]

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "models.train", *args, "--out", str(run), "--resume", "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming after epoch 1" in done.stderr
    assert done.stdout.count("wrote ") == 1  # rank 1 prints nothing

    assert sorted(p.relative_to(run) for p in run.rglob("model.pt")) == [fold.relative_to(run) / "model.pt"]
    assert not list(run.rglob("state.pt")) and (fold / "confusion.png").exists()
    report = json.loads((run / "report.json").read_text())
    metrics = json.loads((fold / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["history"]] == [1, 2, 3, 4, 5, 6]
    reference = json.loads((single / "report.json").read_text())
    ua, ua_single = report["summary"]["ua_mean"], reference["summary"]["ua_mean"]
    assert ua > 0.75 and ua_single > 0.75  # tones vs. noise: chance is 0.5
    assert all(np.isfinite(r["loss"]) for r in metrics["history"])
