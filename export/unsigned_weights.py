"""``python -m export.unsigned_weights MODEL.onnx ...``: rewrite dynamic-INT8 files in place with UINT8 weights.

Each ``MatMulInteger``'s INT8 weights become UINT8 plus 128 (and its zero points with them): the same integers
wherever ONNX Runtime's INT8 kernel was exact, and exact on x86 CPUs with AVX2 but no VNNI too, where that kernel
saturates (:func:`export.quantize.unsigned_weights` says why). The model's metadata (its contract and card) is
kept. :mod:`export.base_variants` writes its dynamic-INT8 variants this way; this command converts files built
before it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import onnx

from .quantize import unsigned_weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for path in args.models:
        model, changed = unsigned_weights(onnx.load(str(path)))
        if changed:
            onnx.save(model, str(path))
        print(f"{path}: {changed} MatMulInteger node(s) now read UINT8 weights")
    return 0


if __name__ == "__main__":
    sys.exit(main())
