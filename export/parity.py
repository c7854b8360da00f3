"""Parity checks that an exported file behaves like the trained model.

- torch vs ONNX Runtime FP32 logits on the same input (max absolute difference);
- FP32 vs INT8, and waveform-in vs feature-in: top-1 agreement and UA of each file on an
  evaluation set, both run through :class:`edge_ser.Recognizer` exactly as an app would.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from edge_ser import Recognizer
from edge_ser.errors import EdgeSERError
from edge_ser.model import OnnxModel


def logits_diff(module: nn.Module, onnx_path: str | os.PathLike, inputs: Sequence[np.ndarray]) -> float:
    """Largest |torch - ONNX Runtime| over every head's logits and every input."""
    session = OnnxModel(onnx_path).session
    worst = 0.0
    with torch.no_grad():
        for x in inputs:
            batch = np.asarray(x, np.float32)[None]
            ref = module(torch.from_numpy(batch))
            got = session.run(None, {session.get_inputs()[0].name: batch})
            worst = max(worst, *(float(np.abs(r.numpy() - g).max()) for r, g in zip(ref, got)))
    return worst


def evaluate(path: str | os.PathLike, audio: Sequence[Any], labels: Sequence[str]) -> dict[str, Any]:
    """Predictions of the file at ``path`` on ``audio`` through the runtime, with UA/WA against ``labels``."""
    from models.training.metrics import scores

    rec = Recognizer(path)
    results = rec.predict_batch(audio, on_error="return")
    ok = [i for i, r in enumerate(results) if not isinstance(r, EdgeSERError)]
    index = {label: k for k, label in enumerate(rec.labels)}
    pred = np.array([index.get(results[i].label, 0) for i in ok])
    true = np.array([index[labels[i]] for i in ok])
    metric = scores(true, pred, len(rec.labels))
    return {"predictions": pred, "failed": len(results) - len(ok), "ua": metric["ua"], "wa": metric["wa"]}


def agreement(a: dict[str, Any], b: dict[str, Any]) -> float:
    return float(np.mean(a["predictions"] == b["predictions"])) if len(a["predictions"]) else float("nan")
