"""``python -m export.drop_relus MODEL.onnx ...``: rewrite FP32 files in place without their redundant ``Relu`` nodes.

:func:`export.quantize.drop_redundant_relus` removes the ``Relu`` nodes that the quantizer's zero-based ranges
leave on values that cannot be negative (``relu(x) == x`` exactly there, so every output stays the same, and
ONNX Runtime runs fewer kernels and fuses more convolutions with their ``Relu``). ``export.quantize.to_float``
applies it to every new FP32-of-INT8 file; this command rewrites files built before it. The model's metadata
(its contract) is kept; a file whose outputs would change on a random input is left as it is and reported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx

from edge_ser.model import session_options

from .quantize import drop_redundant_relus


def _outputs(model: onnx.ModelProto, feed_shape: tuple[int, ...]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), session_options(1), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal(feed_shape).astype(np.float32)
    return session.run(None, {session.get_inputs()[0].name: x})


def rewrite(path: Path) -> tuple[int, int]:
    """Drop ``path``'s redundant ``Relu`` nodes in place: (Relu nodes before, after)."""
    model = onnx.load(str(path))
    pruned = drop_redundant_relus(model)
    count = [sum(n.op_type == "Relu" for n in m.graph.node) for m in (model, pruned)]
    if count[1] == count[0]:
        return count[0], count[1]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value if d.dim_value > 0 else (1 if i == 0 else 300) for i, d in enumerate(dims))
    if not all(np.array_equal(a, b) for a, b in zip(_outputs(model, shape), _outputs(pruned, shape))):
        raise RuntimeError(f"{path}: dropping its Relu nodes would change its outputs; left as it is")
    onnx.save(pruned, str(path))
    return count[0], count[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    args = parser.parse_args(argv)
    status = 0
    for path in args.models:
        try:
            before, after = rewrite(path)
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        print(f"{path}: {before} Relu node(s), {after} after; {path.stat().st_size:,} bytes")
    return status


if __name__ == "__main__":
    sys.exit(main())
