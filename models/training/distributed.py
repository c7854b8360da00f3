"""Data-parallel training under ``torchrun``: the same ``edge-ser train`` command on N processes.

    torchrun --nproc_per_node 2 -m edge_ser train --arch edge_cnn --dataset casia --data ... --out runs/x

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`setup` joins the process group
(gloo on CPU, NCCL on GPU, one GPU per process). Then:

- every rank builds the same batches (same seeded order) and trains on its share of each one
  (:func:`shard`), so the global batch stays ``--batch-size`` and the number of steps, the
  learning-rate schedule and the effective batch are those of one process;
- after each backward pass :func:`average_gradients` averages the gradients over the ranks in one
  all-reduce (what DistributedDataParallel does, but after the whole step's backward: a step with
  transcript heads runs two forward passes, which DDP's wrapper does not allow) together with the
  batch-norm running statistics; parameters start from rank 0's;
- validation and test utterances are split over the ranks and their predictions gathered
  (:func:`predict`), and the training losses averaged (:func:`average`), so every rank computes
  the same metrics and stops at the same epoch;
- only rank 0 writes files (:func:`is_main`, checked where checkpoints and reports are written); the
  others read rank 0's state when resuming, so ``--out`` must be on a shared file system across
  machines. Ranks other than 0 print nothing, their uncaught errors excepted.

Batch-norm statistics within a step are per rank (as with DDP without SyncBatchNorm), and random
crops and augmentation differ from one process' draws, so results equal a single process' within
training noise, not bit for bit. Without torchrun every function here does nothing.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
import traceback
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

_synced: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process writes files: always, unless it is a rank other than 0 under torchrun."""
    return rank() == 0


def shard() -> tuple[int, int]:
    """``(rank, world size)``: this process' part of every batch (``TrainBatches.shard``)."""
    return rank(), world_size()


def setup(args: argparse.Namespace) -> None:
    """Join torchrun's process group when launched by it (``WORLD_SIZE`` > 1): pick the backend and this
    rank's device, and keep ranks other than 0 quiet. Does nothing otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or dist.is_initialized():
        return
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    gpu = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    if gpu:
        torch.cuda.set_device(local_rank)
        args.device = f"cuda:{local_rank}"
    dist.init_process_group("nccl" if gpu else "gloo")
    atexit.register(dist.destroy_process_group)
    if dist.get_rank() != 0:
        args.no_progress = True
        quiet = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
        sys.stdout = sys.stderr = quiet
        sys.excepthook = lambda *exc: traceback.print_exception(*exc, file=sys.__stderr__)


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. computing the feature cache), then the others (reading it)."""
    if active() and not is_main():
        dist.barrier()
    try:
        yield
    finally:
        if active() and is_main():
            dist.barrier()


def average_gradients(model: torch.nn.Module) -> None:
    """Average the gradients and floating-point buffers (batch-norm statistics) of ``model`` over the
    ranks, in one all-reduce; a parameter keeps no gradient only if it has none on every rank."""
    if not active():
        return
    if model not in _synced:  # as DDP does at construction: every rank starts from rank 0's weights
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)
        _synced.add(model)
    params = list(model.parameters())
    buffers = [b for b in model.buffers() if b.is_floating_point()]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    has_grad = torch.tensor([float(p.grad is not None) for p in params], device=params[0].device)
    flat = torch.cat([*(t.reshape(-1).float() for t in [*grads, *buffers]), has_grad])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for k, tensor in enumerate([*grads, *buffers]):
        n = tensor.numel()
        tensor.copy_(flat[offset : offset + n].view_as(tensor))
        offset += n
        if k < len(params) and params[k].grad is None and flat[-len(params) + k] > 0:
            params[k].grad = tensor


def average(values: Mapping[str, float]) -> dict[str, float]:
    """Each value averaged over the ranks (e.g. an epoch's mean losses)."""
    if not active() or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return {k: float(v) / world_size() for k, v in zip(keys, t.tolist())}


def predict(model: torch.nn.Module, inputs: Sequence[Any], device: Any, **kwargs: Any) -> dict[str, np.ndarray]:
    """:func:`models.training.evaluate.predict` with the utterances split over the ranks and the probabilities
    gathered back in order: every rank gets all of them."""
    from .evaluate import predict as predict_all

    if not active():
        return predict_all(model, inputs, device, **kwargs)
    r, n = rank(), world_size()
    part = predict_all(model, list(inputs[r::n]), device, **kwargs)
    parts: list[Any] = [None] * n
    dist.all_gather_object(parts, part)
    out = {}
    for name in parts[0]:
        rows = np.empty((len(inputs), parts[0][name].shape[1]), dtype=parts[0][name].dtype)
        for k, p in enumerate(parts):
            rows[k::n] = p[name]
        out[name] = rows
    return out
