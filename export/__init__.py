"""Export side of edge-ser: trained checkpoints to self-describing ONNX files (FP32, INT8), model cards, C99.

The Python API under ``edge-ser export``::

    from export import ExportConfig, export

    report = export(ExportConfig(checkpoint="runs/x/fold", out="model.onnx", int8=True, data="corpus/root"))

The names are imported on first use, so ``import export.quantize`` does not load torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_API = {"export": "pipeline", "ExportConfig": "pipeline", "ExportReport": "pipeline"}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(f"{__name__}.{_API[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
