"""``edge-ser export --c MODEL --out DIR``: an edge-ser ONNX model as dependency-free C99 for microcontrollers.

The graph is evaluated once in numpy at the model's analysis-window shape (batch 1), which
folds every constant computation (shapes, reshaped biases, batch-norm factors) and gives each
remaining tensor a static shape; each remaining node becomes one call into the kernels of
``firmware/mcu/esr_nn.c``. Weights stay 8-bit ``const`` arrays (flash); convolutions and matrix
products run in integers (uint8/int8 operands, int32 sums): ``DynamicQuantizeLinear`` +
``ConvInteger``/``MatMulInteger`` as the dynamic INT8 export writes them, and QDQ ``Gemm``
(``QuantizeLinear`` -> ``DequantizeLinear`` activations times ``DequantizeLinear`` int8 weights)
fused into one integer kernel. Every activation lives in one static arena whose offsets are
planned here from the tensors' lifetimes (elementwise nodes work in place); there is no heap.
Unsupported operators or patterns raise :class:`ModelError` naming them.

An FP32 graph (the shipped ``english`` is the FP32 graph of its INT8 weights) is first quantized
as the project's dynamic INT8 scheme does it (``export.quantize.quantize_dynamic_int8``), which for
dequantized INT8 weights gives back the same 8-bit weights.

Writes ``DIR/esr_model.c``, ``DIR/esr_model.h`` (sizes, the contract's front-end and
normalization, labels) and ``DIR/esr_model.onnx`` (the INT8 graph the C code computes), and
returns a summary (flash bytes of weights, arena bytes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from edge_ser.contract import ModelContract
from edge_ser.errors import ModelError
from edge_ser.model import resolve

_CTYPE = {np.float32: "float", np.uint8: "uint8_t", np.int8: "int8_t", np.int32: "int32_t"}


@dataclass
class Value:
    """A tensor of the graph: a constant (``const``), a weight read by a fused kernel, or an activation."""

    name: str
    data: np.ndarray  # the value numpy computed for the probe input (gives dtype and shape)
    const: bool = False
    buffer: int | None = None  # activation buffer id (aliases share one)
    quantized_weight: tuple[np.ndarray, np.ndarray, np.ndarray, int] | None = None  # DequantizeLinear(w, s, zp, axis)
    # a Transpose / Pad only a DynamicQuantizeLinear reads, folded into it: (base activation, transposed, pad_l, pad_r)
    view: tuple[Value, bool, int, int] | None = None


@dataclass
class Buffer:
    nbytes: int
    first: int
    last: int
    offset: int = 0


@dataclass
class Program:
    values: dict[str, Value] = field(default_factory=dict)
    buffers: list[Buffer] = field(default_factory=list)
    # (node index, C call, values read, values written, scratch buffer ids)
    calls: list[tuple[int, str, list[str], list[str], list[int]]] = field(default_factory=list)
    consts: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)  # C name -> (ctype, data)


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _dynamic_quantize(x: np.ndarray) -> tuple[np.ndarray, np.float32, np.uint8]:
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = np.float32(1.0 if hi == lo else (hi - lo) / 255.0)
    zp = np.uint8(np.clip(np.rint(0 - lo / scale), 0, 255))
    return np.clip(np.rint(x / scale) + zp, 0, 255).astype(np.uint8), scale, zp


def _conv_integer(x: np.ndarray, w: np.ndarray, xz: int, wz: int, a: dict[str, Any]) -> np.ndarray:
    """Reference ConvInteger (NC[H]W, groups) in int32, used for shapes and the probe run."""
    one_d = x.ndim == 3
    if one_d:
        x, w = x[:, :, None, :], w[:, :, None, :]
    pads = list(a.get("pads", [0] * (2 if one_d else 4)))
    if one_d:
        pads = [0, pads[0], 0, pads[1]]
    strides = list(a.get("strides", [1, 1]))
    strides = [1, strides[0]] if one_d else strides
    dil = list(a.get("dilations", [1, 1]))
    dil = [1, dil[0]] if one_d else dil
    group = a.get("group", 1)
    xi = x.astype(np.int32) - xz
    wi = w.astype(np.int32) - wz
    xi = np.pad(xi, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    n, c, h, wd = xi.shape
    m, cg, kh, kw = wi.shape
    oh = (h - dil[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (wd - dil[1] * (kw - 1) - 1) // strides[1] + 1
    out = np.zeros((n, m, oh, ow), np.int32)
    mg = m // group
    for g in range(group):
        xs = xi[:, g * cg : (g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                y0, x0 = i * dil[0], j * dil[1]
                patch = xs[:, :, y0 : y0 + strides[0] * oh : strides[0], x0 : x0 + strides[1] * ow : strides[1]]
                out[:, g * mg : (g + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, wi[g * mg : (g + 1) * mg, :, i, j])
    return out[:, :, 0, :] if one_d else out


class _Builder:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.graph = model.graph
        self.p = Program()
        self.uses: dict[str, list[int]] = {}
        for i, node in enumerate(self.graph.node):
            for name in node.input:
                self.uses.setdefault(name, []).append(i)
        self.outputs = [o.name for o in self.graph.output]
        self.alias_src: dict[str, str] = {}
        self.skip: set[int] = set()  # nodes fused into an earlier kernel
        self.epilogue_reads: list[Value] = []
        self.epilogue_residual: Value | None = None
        self.epilogue_writes: list[str] = []
        self.ranges: dict[str, Value] = {}  # activation -> its (min, max) tracked by the kernel that wrote it
        for init in self.graph.initializer:
            self.p.values[init.name] = Value(init.name, numpy_helper.to_array(init), const=True)

    # -- values and buffers -------------------------------------------------------------
    def v(self, name: str) -> Value:
        if name not in self.p.values:
            raise ModelError(f"tensor {name!r} is used before it is computed")
        return self.p.values[name]

    def new(self, name: str, data: np.ndarray, index: int) -> Value:
        self.p.buffers.append(Buffer(max(int(data.nbytes), 1), index, index))
        val = Value(name, data, buffer=len(self.p.buffers) - 1)
        self.p.values[name] = val
        return val

    def alias(self, name: str, data: np.ndarray, of: Value) -> Value:
        if name != of.name:
            self.alias_src[name] = of.name
        val = Value(name, data, buffer=of.buffer)
        self.p.values[name] = val
        return val

    def in_place(self, name: str, data: np.ndarray, src: Value, index: int) -> Value:
        """The output takes the input's buffer when the input dies here and has the same size."""
        if src.buffer is None:
            return self.new(name, data, index)
        sharing = [n for n, v in self.p.values.items() if v.buffer == src.buffer]
        last_use = max((u for n in sharing for u in self.uses.get(n, [])), default=index)
        buf = self.p.buffers[src.buffer]
        if last_use <= index and not set(sharing) & set(self.outputs) and buf.nbytes == data.nbytes:
            val = Value(name, data, buffer=src.buffer)  # a new value in the same memory, not an alias
            self.p.values[name] = val
            return val
        return self.new(name, data, index)

    def const(self, data: np.ndarray, hint: str) -> str:
        data = np.ascontiguousarray(data)
        dtype = {np.dtype(t): t for t in _CTYPE}.get(data.dtype)
        if dtype is None:
            data, dtype = data.astype(np.float32), np.float32
        cname = f"k{len(self.p.consts)}_{''.join(c if c.isalnum() else '_' for c in hint)[-40:]}"
        self.p.consts[cname] = (_CTYPE[dtype], data.reshape(-1))
        return cname

    def ptr(self, val: Value) -> str:
        ctype = _CTYPE[val.data.dtype.type]
        return f"(({ctype} *)(void *)(esr_arena + OFF{val.buffer}))"

    def call(
        self, index: int, text: str, reads: list[Value], writes: list[str] | None = None, scratch: tuple[int, ...] = ()
    ) -> None:
        written = list(self.graph.node[index].output) if writes is None else writes
        self.p.calls.append((index, text, [r.name for r in reads], written, list(scratch)))

    def scratch(self, nbytes: int, index: int) -> int:
        """A buffer that lives only during one call (kernel workspace)."""
        self.p.buffers.append(Buffer(max(nbytes, 4), index, index))
        return len(self.p.buffers) - 1

    # -- the graph ------------------------------------------------------------------------
    def run(self, inputs: dict[str, np.ndarray]) -> None:
        for name, data in inputs.items():
            self.new(name, data, -1)
        for index, node in enumerate(self.graph.node):
            if index in self.skip:
                continue
            ins = [self.v(n) if n else None for n in node.input]
            if all(i is None or i.const for i in ins) and node.op_type != "DequantizeLinear":
                outs = self.fold(node, [i.data if i else None for i in ins])
                for name, data in zip(node.output, outs):
                    self.p.values[name] = Value(name, np.asarray(data), const=True)
                continue
            getattr(self, f"op_{node.op_type}", self.unsupported)(index, node, ins, _attrs(node))
        self.prune()

    def unsupported(self, index: int, node: onnx.NodeProto, ins: list[Value], a: dict[str, Any]) -> None:
        raise ModelError(f"the C exporter does not support {node.op_type} ({node.name or node.output[0]})")

    def fold(self, node: onnx.NodeProto, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        """Constant-fold a node whose inputs are all constants."""
        a, op = _attrs(node), node.op_type
        if op == "Reshape":
            shape = [d if d != 0 else xs[0].shape[i] for i, d in enumerate(xs[1].tolist())]
            return [xs[0].reshape(shape)]
        if op == "Unsqueeze":
            axes = xs[1].tolist() if len(xs) > 1 else a["axes"]
            out = xs[0]
            for ax in sorted(axes):
                out = np.expand_dims(out, ax)
            return [out]
        if op == "Gather":
            return [np.take(xs[0], xs[1], axis=a.get("axis", 0))]
        if op == "Slice":
            starts, ends = xs[1].tolist(), xs[2].tolist()
            axes = xs[3].tolist() if len(xs) > 3 and xs[3] is not None else list(range(len(starts)))
            steps = xs[4].tolist() if len(xs) > 4 and xs[4] is not None else [1] * len(starts)
            sl = [slice(None)] * xs[0].ndim
            for s, e, ax, st in zip(starts, ends, axes, steps):
                sl[ax] = slice(s, e, st)
            return [xs[0][tuple(sl)]]
        if op == "Concat":
            return [np.concatenate([x for x in xs if x is not None], axis=a["axis"])]
        if op in ("Mul", "Add", "Sub", "Div"):
            f = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide}[op]
            return [f(xs[0], xs[1]).astype(xs[0].dtype)]
        if op == "Cast":
            return [xs[0].astype(onnx.helper.tensor_dtype_to_np_dtype(a["to"]))]
        if op == "Transpose":
            return [np.transpose(xs[0], a.get("perm"))]
        if op == "Shape":
            return [np.array(xs[0].shape, np.int64)]
        raise ModelError(f"the C exporter cannot fold constant {op} ({node.name or node.output[0]})")

    # -- shape-only nodes (no code) --------------------------------------------------------
    def op_Shape(self, index, node, ins, a):
        self.p.values[node.output[0]] = Value(node.output[0], np.array(ins[0].data.shape, np.int64), const=True)

    def _reshape(self, index, node, ins, data):
        src = ins[0]
        if src.name in self.outputs:
            raise ModelError("a graph output that is reshaped again is not supported")
        self.alias(node.output[0], data, src)

    def op_Reshape(self, index, node, ins, a):
        self._reshape(index, node, ins, self.fold(node, [ins[0].data, ins[1].data])[0])

    def op_Unsqueeze(self, index, node, ins, a):
        self._reshape(index, node, ins, self.fold(node, [i.data for i in ins])[0])

    def op_Flatten(self, index, node, ins, a):
        ax = a.get("axis", 1)
        x = ins[0].data
        self._reshape(index, node, ins, x.reshape(int(np.prod(x.shape[:ax])), -1))

    # -- quantization -------------------------------------------------------------------
    def _folds_into_dql(self, index: int, after_transpose: bool = False) -> bool:
        """Whether node ``index`` (a Transpose of the last two axes or a zero Pad of the last axis of a batch-1
        3-D tensor) can be folded into the DynamicQuantizeLinear that alone reads it (maybe through a Pad)."""
        node = self.graph.node[index]
        if node.output[0] in self.outputs:
            return False
        x = self.p.values.get(node.input[0])
        if not after_transpose and (x is None or x.const or x.data.ndim != 3 or x.data.shape[0] != 1):
            return False
        if node.op_type == "Transpose":
            if list(_attrs(node).get("perm", [2, 1, 0])) != [0, 2, 1] or x.view is not None:
                return False
        elif node.op_type == "Pad":
            if self._last_axis_pads(node) is None or (
                x is not None and x.view is not None and (x.view[2] or x.view[3])
            ):
                return False
        else:
            return False
        users = self.uses.get(node.output[0], [])
        if len(users) != 1:
            return False
        nxt = self.graph.node[users[0]]
        return nxt.op_type == "DynamicQuantizeLinear" or (
            nxt.op_type == "Pad" and self._folds_into_dql(users[0], node.op_type == "Transpose")
        )

    def _last_axis_pads(self, node: onnx.NodeProto) -> tuple[int, int] | None:
        """(left, right) of a constant-zero Pad of a 3-D tensor's last axis only, else None."""
        a = _attrs(node)
        mode = a.get("mode", b"constant")
        if mode not in (b"constant", "constant") or len(node.input) < 2:
            return None
        pads = self.p.values.get(node.input[1])
        value = self.p.values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        axes = node.input[3] if len(node.input) > 3 else ""
        if pads is None or not pads.const or axes or pads.data.size != 6:
            return None
        if value is not None and (not value.const or float(value.data) != 0.0):
            return None
        p = [int(v) for v in pads.data.reshape(-1)]
        if p[0] or p[1] or p[3] or p[4] or p[2] < 0 or p[5] < 0:
            return None
        return p[2], p[5]

    def op_Transpose(self, index, node, ins, a):
        x = ins[0]
        if self._folds_into_dql(index):
            self.p.values[node.output[0]] = Value(
                node.output[0], np.ascontiguousarray(np.transpose(x.data, (0, 2, 1))), view=(x, True, 0, 0)
            )
            return
        self._transpose(index, node, x, a)

    def op_Pad(self, index, node, ins, a):
        x = ins[0]
        if not self._folds_into_dql(index):
            raise ModelError("Pad is supported as a zero padding of the last axis that a DynamicQuantizeLinear reads")
        left, right = self._last_axis_pads(node)
        base, transposed = (x.view[0], x.view[1]) if x.view is not None else (x, False)
        data = np.pad(x.data, ((0, 0), (0, 0), (left, right)))
        self.p.values[node.output[0]] = Value(node.output[0], data, view=(base, transposed, left, right))

    def op_DynamicQuantizeLinear(self, index, node, ins, a):
        x = ins[0]
        q, scale, zp = _dynamic_quantize(x.data)
        yq = self.new(node.output[0], q, index)
        ys = self.new(node.output[1], np.array(scale, np.float32), index)
        yz = self.new(node.output[2], np.array(zp, np.uint8), index)
        if x.view is not None:  # Transpose / Pad folded in: quantized straight from the base activation
            base, transposed, left, right = x.view
            rows, cols = x.data.shape[1], x.data.shape[2] - left - right
            rng = self.ranges.get(base.name)
            self.call(
                index,
                f"esr_dynamic_quantize_rows({self.ptr(base)}, {rows}, {cols}, {int(transposed)}, {left}, {right}, "
                f"{self.ptr(rng) if rng is not None else '0'}, {self.ptr(yq)}, {self.ptr(ys)}, {self.ptr(yz)});",
                [base] + ([rng] if rng is not None else []),
            )
            return
        rng = self.ranges.get(x.name)
        if rng is not None:
            self.call(
                index,
                f"esr_dynamic_quantize_ranged({self.ptr(x)}, {x.data.size}, {self.ptr(rng)}, {self.ptr(yq)}, "
                f"{self.ptr(ys)}, {self.ptr(yz)});",
                [x, rng],
            )
            return
        self.call(
            index,
            f"esr_dynamic_quantize({self.ptr(x)}, {x.data.size}, {self.ptr(yq)}, {self.ptr(ys)}, {self.ptr(yz)});",
            [x],
        )

    def op_QuantizeLinear(self, index, node, ins, a):
        x, s, z = ins[0], ins[1], ins[2] if len(ins) > 2 else None
        if not (s.const and (z is None or z.const)) or s.data.size != 1:
            raise ModelError("QuantizeLinear needs one constant scale and zero point")
        zdata = z.data if z is not None else np.uint8(0)
        lo, hi = (-128, 127) if zdata.dtype == np.int8 else (0, 255)
        q = np.clip(np.rint(x.data / s.data) + zdata.astype(np.int32), lo, hi).astype(zdata.dtype)
        y = self.new(node.output[0], q, index)
        fn = "esr_quantize_s8" if zdata.dtype == np.int8 else "esr_quantize_u8"
        self.call(index, f"{fn}({self.ptr(x)}, {x.data.size}, {_f(s.data)}, {int(zdata)}, {self.ptr(y)});", [x])

    def op_DequantizeLinear(self, index, node, ins, a):
        x, s, z = ins[0], ins[1], ins[2] if len(ins) > 2 else None
        zdata = z.data if z is not None else np.zeros((), x.data.dtype)
        axis = a.get("axis", 1)
        if x.const:  # a weight or bias: left quantized for the fused kernel that reads it
            if x.data.dtype == np.int32:  # int32 bias: float constant (bias only, a few values)
                shape = [1] * x.data.ndim
                if s.data.size > 1:
                    shape[axis] = -1
                data = ((x.data.astype(np.float64) - zdata.reshape(shape)) * s.data.reshape(shape)).astype(np.float32)
                self.p.values[node.output[0]] = Value(node.output[0], data, const=True)
                return
            shape = [1] * x.data.ndim
            if s.data.size > 1:
                shape[axis] = -1
            data = (
                (x.data.astype(np.float32) - zdata.reshape(shape).astype(np.float32)) * s.data.reshape(shape)
            ).astype(np.float32)
            self.p.values[node.output[0]] = Value(
                node.output[0], data, const=True, quantized_weight=(x.data, s.data, zdata, axis)
            )
            return
        if s.data.size != 1:
            raise ModelError("per-channel DequantizeLinear of activations is not supported")
        y = self.new(node.output[0], ((x.data.astype(np.float32) - zdata) * s.data).astype(np.float32), index)
        fn = "esr_dequantize_s8" if x.data.dtype == np.int8 else "esr_dequantize_u8"
        self.call(index, f"{fn}({self.ptr(x)}, {x.data.size}, {_f(s.data)}, {int(zdata)}, {self.ptr(y)});", [x])
        y.source = (x, s, zdata)  # type: ignore[attr-defined]

    # -- integer kernels ------------------------------------------------------------------
    def _only_consumer(self, name: str, op: str) -> int | None:
        users = self.uses.get(name, [])
        if len(users) == 1 and name not in self.outputs and self.graph.node[users[0]].op_type == op:
            return users[0]
        return None

    def _epilogue(
        self, out: str, channels: int, residual_shape: tuple[int, ...] | None = None
    ) -> tuple[Value, np.ndarray | None, bool, str, list[int], Value | None] | None:
        """Cast -> Mul(scale) -> Add(per-channel constant bias) [-> Add(residual activation)] [-> Relu] after an
        integer kernel (as the dynamic INT8 export writes it), to fuse into the kernel:
        y = float(acc) * scale + bias[c] [+ residual]. A residual (of ``residual_shape``, the kernel's output shape)
        is fused only where the kernel takes one."""
        cast = self._only_consumer(out, "Cast")
        if cast is None:
            return None
        mul = self._only_consumer(self.graph.node[cast].output[0], "Mul")
        if mul is None:
            return None
        operands = [n for n in self.graph.node[mul].input if n != self.graph.node[cast].output[0]]
        scale = self.p.values.get(operands[0]) if len(operands) == 1 else None
        if scale is None or scale.data.size != 1 or scale.data.dtype != np.float32:
            return None
        fused, final, bias, res = [cast, mul], self.graph.node[mul].output[0], None, None
        add = self._only_consumer(final, "Add")
        if add is not None:
            other = [n for n in self.graph.node[add].input if n != final]
            val = self.p.values.get(other[0]) if len(other) == 1 else None
            if val is not None and val.const and val.data.size == channels:
                bias = val.data.astype(np.float32).reshape(-1)
                fused.append(add)
                final = self.graph.node[add].output[0]
        add = self._only_consumer(final, "Add") if residual_shape else None
        if add is not None:
            other = [n for n in self.graph.node[add].input if n != final]
            val = self.p.values.get(other[0]) if len(other) == 1 else None
            if (
                val is not None
                and not val.const
                and val.view is None
                and val.buffer is not None
                and val.data.shape == tuple(residual_shape)
            ):
                res = val
                fused.append(add)
                final = self.graph.node[add].output[0]
        relu = self._only_consumer(final, "Relu")
        if relu is not None:
            fused.append(relu)
            final = self.graph.node[relu].output[0]
        return scale, bias, relu is not None, final, fused, res

    def _dies_at(self, val: Value, index: int) -> bool:
        """Whether nothing after node ``index`` reads ``val``'s buffer (so an output may take it)."""
        sharing = [n for n, v in self.p.values.items() if v.buffer == val.buffer]
        last_use = max((u for n in sharing for u in self.uses.get(n, [])), default=index)
        return last_use <= index and not set(sharing) & set(self.outputs)

    def _quantized_later(self, name: str) -> bool:
        """Whether a DynamicQuantizeLinear reads ``name`` (directly or through a Transpose / Pad folded into it)."""
        for user in self.uses.get(name, []):
            op = self.graph.node[user].op_type
            if op == "DynamicQuantizeLinear" or (op in ("Pad", "Transpose") and self._folds_into_dql(user)):
                return True
        return False

    def _fused_output(self, index, acc: np.ndarray, channel_axis: int, epilogue) -> tuple[Value, str]:
        """The kernel's output value and its epilogue arguments (scale pointer, bias, relu, range)."""
        if epilogue is None:
            raise ModelError(
                f"{self.graph.node[index].op_type} {self.graph.node[index].name!r} is not followed by "
                "Cast -> Mul(scale), the dequantization the C exporter fuses"
            )
        scale, bias, relu, final, fused, res = epilogue
        shape = [1] * acc.ndim
        shape[channel_axis] = -1
        y = acc.astype(np.float32) * scale.data
        if bias is not None:
            y = y + bias.reshape(shape)
        if res is not None:
            y = res.data.reshape(y.shape) + y
        if relu:
            y = np.maximum(y, 0)
        self.skip.update(fused)
        self.epilogue_reads = [] if scale.const else [scale]
        self.epilogue_residual = res
        if res is not None:  # the output takes the residual's memory when the residual dies here
            last = max(fused)
            val = self.in_place(final, y.astype(np.float32), res, last)
            self.epilogue_reads.append(res)
        else:
            val = self.new(final, y.astype(np.float32), index)
        sptr = self.ptr(scale) if not scale.const else self.const(scale.data.reshape(1), "scale")
        bname = self.const(bias, "bias") if bias is not None else "0"
        rptr = "0"
        if self._quantized_later(final):
            # the kernel tracks the output's range (including 0) for the dynamic quantization that reads it
            rng = np.array([min(float(y.min()), 0.0), max(float(y.max()), 0.0)], np.float32)
            self.ranges[final] = self.new(final + "#range", rng, index)
            self.epilogue_writes = [self.ranges[final].name]
            rptr = self.ptr(self.ranges[final])
        else:
            self.epilogue_writes = []
        return val, f"{sptr}, {bname}, {int(relu)}, {rptr}"

    def _packed(self, rows: np.ndarray, hint: str) -> tuple[str, int]:
        """(M, K) uint8 weights for the GEMM kernel: K padded to a multiple of 4 and M to a multiple of 2
        with zeros, bytes reordered 0,2,1,3 in each group of 4 (UXTB16 then unpacks pairs of consecutive
        weights), and each pair of rows interleaved group by group, so one pointer walks both; returns
        the C name and the padded K."""
        m, k = rows.shape
        kp, mp = (k + 3) // 4 * 4, (m + 1) // 2 * 2
        padded = np.zeros((mp, kp), np.uint8)
        padded[:m, :k] = rows
        groups = padded.reshape(mp, kp // 4, 4)[:, :, [0, 2, 1, 3]]
        packed = groups.reshape(mp // 2, 2, kp // 4, 4).transpose(0, 2, 1, 3).reshape(-1)
        return self.const(packed, hint), kp

    def op_ConvInteger(self, index, node, ins, a):
        x, w, xz, wz = ins[0], ins[1], ins[2], ins[3] if len(ins) > 3 else None
        if not w.const or (wz is not None and (not wz.const or wz.data.size != 1)) or w.data.dtype != np.uint8:
            raise ModelError("ConvInteger needs constant uint8 weights with one zero point")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise ModelError("ConvInteger with auto_pad is not supported")
        wzv = int(wz.data) if wz is not None else 0
        xzv = int(xz.data)
        acc = _conv_integer(x.data, w.data, xzv, wzv, a)
        one_d = x.data.ndim == 3
        xs = x.data.shape if not one_d else (x.data.shape[0], x.data.shape[1], 1, x.data.shape[2])
        ws = w.data.shape if not one_d else (w.data.shape[0], w.data.shape[1], 1, w.data.shape[2])
        ys = acc.shape if not one_d else (acc.shape[0], acc.shape[1], 1, acc.shape[2])
        pads = list(a.get("pads", [0] * (2 if one_d else 4)))
        pads = [0, pads[0], 0, pads[1]] if one_d else pads
        strides = list(a.get("strides", [1, 1]))
        strides = [1, strides[0]] if one_d else strides
        dilated = any(d != 1 for d in a.get("dilations", [1]))
        group = a.get("group", 1)
        depthwise = group == xs[1] and ws[1] == 1 and ws[0] % xs[1] == 0  # one input channel per group
        if one_d and depthwise:
            self._depthwise_1d(index, node, x, xz, w, wzv, acc, a, pads[1], pads[3])
            return
        if dilated:
            raise ModelError("ConvInteger with dilation is supported for 1-D depthwise convolutions only")
        if not one_d and (pads[0] != pads[2] or pads[1] != pads[3]):  # (1-D: the kernel takes the left pad)
            raise ModelError("2-D ConvInteger with asymmetric padding is not supported")
        if not depthwise and group != 1:
            raise ModelError("grouped ConvInteger is supported for depthwise (group == channels) only")
        residual = None if depthwise else acc.shape
        y, epilogue = self._fused_output(index, acc, 1, self._epilogue(node.output[0], ws[0], residual))
        xzp = f"{self.ptr(xz)}[0]" if not xz.const else str(xzv)
        geometry = (
            f"{xs[1]}, {xs[2]}, {xs[3]}, {ws[0]}, {ws[2]}, {ws[3]}, {strides[0]}, {strides[1]}, {pads[0]}, {pads[1]}, "
            f"{ys[2]}, {ys[3]}"
        )
        if depthwise:  # (2-D depthwise, the stem of a 1-channel input)
            wname = self.const(w.data, node.input[1])
            plane = self.scratch((xs[2] + 2 * pads[0]) * (xs[3] + 2 * pads[1]), index)
            self.call(
                index,
                f"esr_conv_depthwise_u8({self.ptr(x)}, {xzp}, {wname}, {wzv}, {geometry}, {epilogue}, {self.ptr(y)}, "
                f"esr_arena + OFF{plane});",
                [x, xz, *self.epilogue_reads],
                [y.name, *self.epilogue_writes],
                (plane,),
            )
            return
        wname, kp = self._packed(w.data.reshape(ws[0], -1), node.input[1])
        work = self.scratch(2 * 2 * kp + 16, index)
        fn, res_arg = "esr_conv_gemm_u8", ""
        if self.epilogue_residual is not None:
            fn, res_arg = "esr_conv_gemm_res_u8", f"{self.ptr(self.epilogue_residual)}, "
        self.call(
            index,
            f"{fn}({self.ptr(x)}, {xzp}, {wname}, {kp}, {wzv}, {geometry}, {epilogue}, {res_arg}{self.ptr(y)}, "
            f"(int16_t *)(void *)(esr_arena + OFF{work}));",
            [x, xz, *self.epilogue_reads],
            [y.name, *self.epilogue_writes],
            (work,),
        )

    def _depthwise_1d(
        self, index, node, x: Value, xz: Value, w: Value, wzv: int, acc: np.ndarray, a, pad_l: int, pad_r: int
    ) -> None:
        """1-D depthwise ConvInteger (padding, dilation, stride) with its fused epilogue; when a
        DynamicQuantizeLinear alone reads the result, it is fused too (the kernel writes the quantized output,
        in the input's memory when the input dies here), so the float output never exists."""
        c, t = x.data.shape[1], x.data.shape[2]
        m, _, k = w.data.shape
        ot = acc.shape[2]
        if k > 16:
            raise ModelError("1-D depthwise ConvInteger with more than 16 taps is not supported")
        ep = self._epilogue(node.output[0], m)
        if ep is None:
            raise ModelError(
                f"ConvInteger {node.name!r} is not followed by Cast -> Mul(scale), the dequantization fused"
            )
        scale, bias, relu, final, fused, _ = ep
        y = acc.astype(np.float32) * scale.data
        if bias is not None:
            y = y + bias.reshape(1, -1, 1)
        if relu:
            y = np.maximum(y, 0)
        y = y.astype(np.float32)
        sptr = self.ptr(scale) if not scale.const else self.const(scale.data.reshape(1), "scale")
        bname = self.const(bias, "bias") if bias is not None else "0"
        wname = self.const(w.data, node.input[1])
        xzp = f"{self.ptr(xz)}[0]" if not xz.const else str(int(xz.data))
        row = "0"
        scratch: tuple[int, ...] = ()
        if pad_l or pad_r:
            scratch = (self.scratch(pad_l + t + pad_r, index),)
            row = f"esr_arena + OFF{scratch[0]}"
        geometry = (
            f"{c}, {t}, {pad_l}, {pad_r}, {row}, {m}, {k}, {a.get('dilations', [1])[0]}, {a.get('strides', [1])[0]}, "
            f"{ot}"
        )
        reads = [x, xz] + ([] if scale.const else [scale])
        head = f"esr_conv1d_depthwise_u8({self.ptr(x)}, {xzp}, {wname}, {wzv}, {geometry}, {sptr}, {bname}, {int(relu)}"
        dql = self._only_consumer(final, "DynamicQuantizeLinear")
        self.skip.update(fused)
        if dql is not None:
            self.skip.add(dql)
            out = self.graph.node[dql].output
            q, qs, qz = _dynamic_quantize(y)
            if m == c and ot <= t and self._dies_at(x, index):
                yq = Value(out[0], q, buffer=x.buffer)
                self.p.values[out[0]] = yq
            else:
                yq = self.new(out[0], q, index)
            ys = self.new(out[1], np.array(qs, np.float32), index)
            yz = self.new(out[2], np.array(qz, np.uint8), index)
            self.call(
                index,
                f"{head}, 0, 0, {self.ptr(yq)}, {self.ptr(ys)}, {self.ptr(yz)});",
                reads,
                [yq.name, ys.name, yz.name],
                scratch,
            )
            return
        val = self.new(final, y, index)
        rptr, writes = "0", [final]
        if self._quantized_later(final):
            rng = np.array([min(float(y.min()), 0.0), max(float(y.max()), 0.0)], np.float32)
            self.ranges[final] = self.new(final + "#range", rng, index)
            rptr = self.ptr(self.ranges[final])
            writes.append(self.ranges[final].name)
        self.call(index, f"{head}, {rptr}, {self.ptr(val)}, 0, 0, 0);", reads, writes, scratch)

    def op_MatMulInteger(self, index, node, ins, a):
        x, w, xz, wz = ins[0], ins[1], ins[2], ins[3] if len(ins) > 3 else None
        if not w.const or w.data.ndim != 2 or (wz is not None and wz.data.size != 1) or w.data.dtype != np.uint8:
            raise ModelError("MatMulInteger needs a constant 2-D uint8 weight with one zero point")
        wzv = int(wz.data) if wz is not None else 0
        rows, k, n = int(np.prod(x.data.shape[:-1])), w.data.shape[0], w.data.shape[1]
        acc = ((x.data.astype(np.int32) - int(xz.data)) @ (w.data.astype(np.int32) - wzv)).astype(np.int32)
        y, epilogue = self._fused_output(index, acc, acc.ndim - 1, self._epilogue(node.output[0], n))
        wname, kp = self._packed(np.ascontiguousarray(w.data.T), node.input[1])
        work = self.scratch(2 * 2 * kp + 16, index)
        self.call(
            index,
            f"esr_matmul_gemm_u8({self.ptr(x)}, {self.ptr(xz)}[0], {rows}, {k}, {wname}, {kp}, {wzv}, {n}, "
            f"{epilogue}, {self.ptr(y)}, (int16_t *)(void *)(esr_arena + OFF{work}));",
            [x, xz, *self.epilogue_reads],
            [y.name, *self.epilogue_writes],
            (work,),
        )

    def op_Gemm(self, index, node, ins, a):
        x, w = ins[0], ins[1]
        bias = ins[2] if len(ins) > 2 else None
        src = getattr(x, "source", None)
        if w.quantized_weight is None or src is None or a.get("transA", 0) or a.get("alpha", 1.0) != 1.0:
            raise ModelError("Gemm is supported as QDQ: quantized activations times int8 weights (no transA/alpha)")
        wq, ws, wz, axis = w.quantized_weight
        trans_b = a.get("transB", 0)
        wk = wq.T if trans_b else wq  # (K, N)
        n_out = wk.shape[1]
        scale = np.broadcast_to(ws.astype(np.float32), (n_out,)) if ws.size > 1 else np.full(n_out, ws, np.float32)
        zero = np.broadcast_to(wz.astype(np.int32), (n_out,)) if wz.size > 1 else np.full(n_out, int(wz), np.int32)
        beta = a.get("beta", 1.0)
        b = np.zeros(n_out, np.float32) if bias is None else np.broadcast_to(bias.data * beta, (n_out,))
        xq, xs, xz = src
        y = self.new(node.output[0], (x.data @ (w.data.T if trans_b else w.data) + b).astype(np.float32), index)
        if np.any(zero != zero[0]):
            raise ModelError("Gemm weights with different zero points per channel are not supported")
        wname = self.const(np.ascontiguousarray(wk.astype(np.int8)), node.input[1])
        sname = self.const(np.asarray(scale, np.float32) * np.float32(xs.data), node.input[1] + "_scale")
        bname = self.const(np.asarray(b, np.float32), node.input[1] + "_bias")
        self.call(
            index,
            f"esr_gemm_s8({self.ptr(xq)}, {int(xz)}, {x.data.shape[0]}, {wk.shape[0]}, {wname}, {int(zero[0])}, "
            f"{n_out}, {sname}, {bname}, {self.ptr(y)});",
            [xq],
        )

    # -- float kernels --------------------------------------------------------------------
    def _binary(self, index, node, ins, op):
        x, other = ins
        out = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide}[op](x.data, other.data)
        out = out.astype(np.float32)
        if out.size == 1 and x.data.size == 1 and other.data.size == 1:
            y = self.new(node.output[0], out, index)
        else:
            y = (
                self.in_place(node.output[0], out, x, index)
                if x.data.shape == out.shape
                else self.new(node.output[0], out, index)
            )
        a_shape = np.broadcast_shapes(x.data.shape, out.shape)
        nd = max(len(out.shape), 1)
        strides = [_strides(x.data, out.shape), _strides(other.data, out.shape)]
        args = []
        for val in (x, other):
            if val.const:
                args.append(self.const(val.data.astype(np.float32), node.input[len(args)]))
            else:
                args.append(self.ptr(val))
        shape = ", ".join(map(str, out.shape or (1,)))
        sa, sb = (", ".join(map(str, s or [0])) for s in strides)
        reads = [v for v in (x, other) if not v.const]
        contiguous = _strides(out, out.shape)
        if strides[0] == contiguous and strides[1] in (contiguous, [0] * len(contiguous)):
            step = 1 if strides[1] == contiguous and out.size > 1 else 0
            self.call(
                index, f"esr_binary_flat({_OPS[op]}, {args[0]}, {args[1]}, {step}, {self.ptr(y)}, {out.size});", reads
            )
            return
        del a_shape
        rows_b = _strides(np.empty(out.shape[:-1] + (1,), np.float32), out.shape) if out.ndim else None
        if strides[0] == contiguous and out.ndim and strides[1] == rows_b and not other.const:
            n = out.shape[-1]
            self.call(
                index,
                f"esr_binary_rows({_OPS[op]}, {args[0]}, {args[1]}, {out.size // n}, {n}, {self.ptr(y)});",
                reads,
            )
            return
        self.call(
            index,
            f"{{ static const int32_t shape[] = {{{shape}}}, sa[] = {{{sa}}}, sb[] = {{{sb}}}; "
            f"esr_binary({_OPS[op]}, {args[0]}, sa, {args[1]}, sb, {self.ptr(y)}, shape, {nd}); }}",
            reads,
        )

    def op_Mul(self, index, node, ins, a):
        self._binary(index, node, ins, "Mul")

    def op_Add(self, index, node, ins, a):
        self._binary(index, node, ins, "Add")

    def op_Sub(self, index, node, ins, a):
        self._binary(index, node, ins, "Sub")

    def op_Div(self, index, node, ins, a):
        self._binary(index, node, ins, "Div")

    def op_Pow(self, index, node, ins, a):
        x, e = ins
        if not e.const or e.data.size != 1 or float(e.data) != 2.0:
            raise ModelError("Pow is supported with the constant exponent 2 (as x * x, as ONNX Runtime computes it)")
        self._binary(index, node, [x, x], "Mul")

    def op_Sqrt(self, index, node, ins, a):
        self._unary(index, node, ins, "esr_sqrt", np.sqrt(ins[0].data))

    def op_Clip(self, index, node, ins, a):
        x = ins[0]
        bounds = [ins[i] if len(ins) > i else None for i in (1, 2)]
        if any(b is not None and not b.const for b in bounds):
            raise ModelError("Clip is supported with constant bounds")
        lo = float(bounds[0].data) if bounds[0] is not None else float(a.get("min", -np.inf))
        hi = float(bounds[1].data) if bounds[1] is not None else float(a.get("max", np.inf))
        y = self.in_place(node.output[0], np.clip(x.data, lo, hi).astype(np.float32), x, index)
        lo_c = _f(lo) if np.isfinite(lo) else "-HUGE_VALF"
        hi_c = _f(hi) if np.isfinite(hi) else "HUGE_VALF"
        self.call(index, f"esr_clip({self.ptr(x)}, {x.data.size}, {lo_c}, {hi_c}, {self.ptr(y)});", [x])

    def op_Concat(self, index, node, ins, a):
        vals = [v for v in ins if v is not None]
        if any(v.view is not None for v in vals) or any(v.data.dtype != np.float32 for v in vals):
            raise ModelError("Concat is supported on float activations")
        axis = a["axis"] % vals[0].data.ndim
        data = np.concatenate([v.data for v in vals], axis=axis).astype(np.float32)
        y = self.new(node.output[0], data, index)
        rows = int(np.prod(data.shape[:axis]))
        out_cols, at = int(np.prod(data.shape[axis:])), 0
        parts = []
        for v in vals:
            cols = int(np.prod(v.data.shape[axis:]))
            src = self.const(v.data, node.name or "concat") if v.const else self.ptr(v)
            parts.append(f"esr_copy_rows({src}, {rows}, {cols}, {cols}, {self.ptr(y)} + {at}, {out_cols});")
            at += cols
        self.call(index, "{ " + " ".join(parts) + " }", [v for v in vals if not v.const])

    def op_Cast(self, index, node, ins, a):
        x = ins[0]
        if onnx.helper.tensor_dtype_to_np_dtype(a["to"]) != np.float32 or x.data.dtype != np.int32:
            raise ModelError("only Cast int32 -> float is supported")
        y = self.in_place(node.output[0], x.data.astype(np.float32), x, index)
        self.call(index, f"esr_cast_i32_f32({self.ptr(x)}, {x.data.size}, {self.ptr(y)});", [x])

    def _unary(self, index, node, ins, fn, data):
        x = ins[0]
        y = self.in_place(node.output[0], data.astype(np.float32), x, index)
        self.call(index, f"{fn}({self.ptr(x)}, {x.data.size}, {self.ptr(y)});", [x])

    def op_Relu(self, index, node, ins, a):
        self._unary(index, node, ins, "esr_relu", np.maximum(ins[0].data, 0))

    def op_Tanh(self, index, node, ins, a):
        self._unary(index, node, ins, "esr_tanh", np.tanh(ins[0].data))

    def op_Sigmoid(self, index, node, ins, a):
        self._unary(index, node, ins, "esr_sigmoid", 1.0 / (1.0 + np.exp(-ins[0].data)))

    def _pool(self, index, node, ins, a, is_max: bool) -> None:
        x = ins[0]
        if x.data.ndim != 4 or x.data.shape[0] != 1:
            raise ModelError(f"{node.op_type} is supported on (1, C, H, W) tensors")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or any(d != 1 for d in a.get("dilations", [1])):
            raise ModelError(f"{node.op_type} with auto_pad or dilation is not supported")
        kh, kw = a["kernel_shape"]
        sh, sw = a.get("strides", [1, 1])
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if pads[0] != pads[2] or pads[1] != pads[3]:
            raise ModelError(f"{node.op_type} with asymmetric padding is not supported")
        _, c, h, w = x.data.shape
        rounding = np.ceil if a.get("ceil_mode", 0) else np.floor
        oh = int(rounding((h + pads[0] + pads[2] - kh) / sh)) + 1
        ow = int(rounding((w + pads[1] + pads[3] - kw) / sw)) + 1
        count_pad = int(a.get("count_include_pad", 0))
        out = np.zeros((1, c, oh, ow), np.float32)
        for oy in range(oh):
            for ox in range(ow):
                y0, x0 = oy * sh - pads[0], ox * sw - pads[1]
                win = x.data[0, :, max(y0, 0) : min(y0 + kh, h), max(x0, 0) : min(x0 + kw, w)]
                if is_max:
                    out[0, :, oy, ox] = win.max(axis=(1, 2))
                else:
                    rows = min(y0 + kh, h + pads[2]) - max(y0, -pads[0])
                    cols = min(x0 + kw, w + pads[3]) - max(x0, -pads[1])
                    count = rows * cols if count_pad else win.shape[1] * win.shape[2]
                    out[0, :, oy, ox] = win.sum(axis=(1, 2)) / count
        y = self.new(node.output[0], out, index)
        self.call(
            index,
            f"esr_pool2d({self.ptr(x)}, {c}, {h}, {w}, {kh}, {kw}, {sh}, {sw}, {pads[0]}, {pads[1]}, {oh}, {ow}, "
            f"{int(is_max)}, {count_pad}, {self.ptr(y)});",
            [x],
        )

    def op_MaxPool(self, index, node, ins, a):
        if len(node.output) > 1 and node.output[1]:
            raise ModelError("MaxPool with indices is not supported")
        self._pool(index, node, ins, a, is_max=True)

    def op_AveragePool(self, index, node, ins, a):
        self._pool(index, node, ins, a, is_max=False)

    def op_GlobalAveragePool(self, index, node, ins, a):
        x = ins[0]
        outer, r = int(np.prod(x.data.shape[:2])), int(np.prod(x.data.shape[2:]))
        data = x.data.mean(axis=tuple(range(2, x.data.ndim)), keepdims=True).astype(np.float32)
        y = self.new(node.output[0], data, index)
        self.call(index, f"esr_reduce({self.ptr(x)}, {outer}, {r}, 1, 1, {self.ptr(y)});", [x])

    def op_Softmax(self, index, node, ins, a):
        x = ins[0]
        axis = a.get("axis", -1) % x.data.ndim
        if axis != x.data.ndim - 1:
            raise ModelError("Softmax is supported over the last axis only")
        n = x.data.shape[-1]
        self._unary_rows(index, node, x, _softmax(x.data, -1), f"esr_softmax({{x}}, {x.data.size // n}, {n}, {{y}});")

    def _unary_rows(self, index, node, x, data, template):
        y = self.in_place(node.output[0], data.astype(np.float32), x, index)
        self.call(index, template.format(x=self.ptr(x), y=self.ptr(y)), [x])

    def op_BatchNormalization(self, index, node, ins, a):
        x, g, b, mean, var = ins
        eps = a.get("epsilon", 1e-5)
        k = (g.data / np.sqrt(var.data + eps)).astype(np.float32)
        c = (b.data - mean.data * k).astype(np.float32)
        shape = [1, -1] + [1] * (x.data.ndim - 2)
        data = x.data * k.reshape(shape) + c.reshape(shape)
        channels = x.data.shape[1]
        inner = int(np.prod(x.data.shape[2:]))
        kn, cn = self.const(k, node.input[1] + "_k"), self.const(c, node.input[2] + "_c")
        self._unary_rows(
            index,
            node,
            x,
            data,
            f"esr_channel_affine({{x}}, {x.data.shape[0]}, {channels}, {inner}, {kn}, {cn}, {{y}});",
        )

    def _reduce(self, index, node, ins, a, mean: bool):
        x = ins[0]
        axes = ins[1].data.tolist() if len(ins) > 1 and ins[1] is not None else a.get("axes")
        keep = a.get("keepdims", 1)
        if axes is None or len(axes) != 1:
            raise ModelError("Reduce over exactly one axis is supported")
        ax = axes[0] % x.data.ndim
        data = (x.data.mean if mean else x.data.sum)(axis=ax, keepdims=bool(keep)).astype(np.float32)
        outer, r, inner = int(np.prod(x.data.shape[:ax])), x.data.shape[ax], int(np.prod(x.data.shape[ax + 1 :]))
        y = self.new(node.output[0], data, index)
        self.call(index, f"esr_reduce({self.ptr(x)}, {outer}, {r}, {inner}, {int(mean)}, {self.ptr(y)});", [x])

    def op_ReduceSum(self, index, node, ins, a):
        self._reduce(index, node, ins, a, mean=False)

    def op_ReduceMean(self, index, node, ins, a):
        self._reduce(index, node, ins, a, mean=True)

    def _transpose(self, index, node, x: Value, a) -> None:
        perm = a.get("perm", list(reversed(range(x.data.ndim))))
        data = np.transpose(x.data, perm)
        y = self.new(node.output[0], np.ascontiguousarray(data), index)
        src_strides = _strides(x.data, x.data.shape)
        st = ", ".join(str(src_strides[p]) for p in perm)
        shape = ", ".join(map(str, data.shape))
        self.call(
            index,
            f"{{ static const int32_t shape[] = {{{shape}}}, st[] = {{{st}}}; "
            f"esr_transpose({self.ptr(x)}, st, {self.ptr(y)}, shape, {data.ndim}); }}",
            [x],
        )

    # -- liveness -------------------------------------------------------------------------
    def prune(self) -> None:
        """Drop calls whose results nobody reads, then set each buffer's lifetime from the calls."""
        needed = {self.root(n) for n in self.outputs}
        kept = []
        for call in reversed(self.p.calls):
            if not needed.intersection(call[3]):
                continue
            kept.append(call)
            needed.update(self.root(n) for n in call[2])
        kept.reverse()
        self.p.calls = kept
        for buf in self.p.buffers:
            buf.first, buf.last = 10**9, -(10**9)
        for step, (_, _, reads, writes, scratch) in enumerate(kept):
            ids = [self.p.values[n].buffer for n in [*reads, *writes] if n in self.p.values] + scratch
            for b in ids:
                if b is not None:
                    buf = self.p.buffers[b]
                    buf.first, buf.last = min(buf.first, step), max(buf.last, step)
        for name in self.outputs:
            self.p.buffers[self.p.values[name].buffer].last = len(kept)
        for inp in self.graph.input:
            if inp.name in self.p.values and self.p.values[inp.name].buffer is not None:
                self.p.buffers[self.p.values[inp.name].buffer].first = -1

    def root(self, name: str) -> str:
        while name in self.alias_src:
            name = self.alias_src[name]
        return name


_OPS = {"Mul": "ESR_MUL", "Add": "ESR_ADD", "Sub": "ESR_SUB", "Div": "ESR_DIV"}


def _f(x: np.ndarray | float) -> str:
    return f"{float(np.float32(x)):.9g}f"


def _strides(x: np.ndarray, out_shape: tuple[int, ...]) -> list[int]:
    """Element strides of ``x`` broadcast to ``out_shape`` (0 along broadcast axes)."""
    shape = (1,) * (len(out_shape) - x.ndim) + tuple(x.shape)
    strides, step = [0] * len(out_shape), 1
    for i in reversed(range(len(out_shape))):
        strides[i] = step if shape[i] != 1 else 0
        step *= shape[i]
    return strides


def _plan(buffers: list[Buffer]) -> int:
    """Greedy first-fit offsets (largest first) for buffers whose lifetimes overlap; returns the arena size."""
    placed: list[Buffer] = []
    for buf in sorted((b for b in buffers if b.first <= b.last), key=lambda b: -b.nbytes):
        offset = 0
        for other in sorted(
            (o for o in placed if not (o.last < buf.first or buf.last < o.first)), key=lambda o: o.offset
        ):
            if offset + buf.nbytes <= other.offset:
                break
            offset = max(offset, (other.offset + other.nbytes + 15) // 16 * 16)
        buf.offset = offset
        placed.append(buf)
    return max((b.offset + b.nbytes for b in placed), default=0)


def _c_array(ctype: str, name: str, data: np.ndarray) -> str:
    if ctype == "float":
        items = [f"{float(v):.9g}f" for v in data.tolist()]
    else:
        items = [str(int(v)) for v in data.tolist()]
    body = ",\n".join(", ".join(items[i : i + 16]) for i in range(0, len(items), 16))
    return f"static const {ctype} {name}[{max(len(items), 1)}] __attribute__((aligned(4))) = {{\n{body or '0'}\n}};\n"


def _fe_workspace_estimate(contract: ModelContract, samples: int) -> int:
    """An upper bound of esr_fe_get_sizes().workspace_bytes for a 32-bit, float-only build."""
    fe = contract.frontend
    n, bins, frames = fe.n_fft, fe.n_fft // 2 + 1, fe.analysis_frames(samples)
    width = fe.n_mfcc + fe.n_mels if fe.kind == "functionals" else 0
    fft = 16 + 8 + 4 * 64 + 8 * (n // 2) + 8 * (n // 2 * 3 // 2)
    tables = 8 * bins + 4 * n + 4 * fe.frame_length + 4 * bins + 8 * fe.n_mels + 8 * bins + 4 * fe.n_mels * fe.n_mfcc
    return fft + tables + 4 * frames * width + 4 * frames + 16 * 16 + 1024


def model_input_shape(contract: ModelContract) -> tuple[int, ...]:
    """The graph input of one analysis window (batch 1)."""
    n = int(round(contract.window_seconds * contract.sample_rate))
    if contract.input_kind == "waveform":
        return (1, n)
    return (1, contract.frontend.num_frames(n), contract.frontend.n_features)


def _float_weight_layers(proto: onnx.ModelProto) -> bool:
    """Whether the graph has Conv/MatMul/Gemm layers with float weights and no QDQ quantization."""
    inits = {i.name: i for i in proto.graph.initializer}
    ops = {n.op_type for n in proto.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear"}:
        return False
    return any(
        n.op_type in ("Conv", "MatMul", "Gemm")
        and len(n.input) > 1
        and n.input[1] in inits
        and inits[n.input[1]].data_type == onnx.TensorProto.FLOAT
        for n in proto.graph.node
    )


def integer_graph(path: Path) -> tuple[onnx.ModelProto, str]:
    """The graph the C model computes: the file itself when it is INT8, or for an FP32 graph (such as one
    whose weights are dequantized INT8 ones, export.quantize.to_float) ONNX Runtime's dynamic quantization
    of it (export.quantize.quantize_dynamic_int8: 8-bit weights, activations quantized per call)."""
    proto = onnx.load(str(path))
    if not _float_weight_layers(proto):
        return proto, "as shipped"
    import tempfile

    from .quantize import quantize_dynamic_int8

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dynamic.onnx"
        quantize_dynamic_int8(path, out)
        quantized = onnx.load(str(out))
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(proto.metadata_props)
    return quantized, "dynamic INT8 of the FP32 graph (export.quantize.quantize_dynamic_int8)"


def generate(model: str | Path, seconds: float | None = None) -> tuple[str, str, dict[str, Any], onnx.ModelProto]:
    """C source and header for ``model`` (a path or shipped name) at windows of ``seconds``
    (default: the contract's analysis window); a summary; and the INT8 graph the C code computes."""
    path = resolve(model)
    proto, quantization = integer_graph(path)
    meta = {p.key: p.value for p in proto.metadata_props}
    contract = ModelContract.from_json(meta["edge_ser.contract"])
    if contract.input_kind != "features" or contract.frontend_in_graph:
        raise ModelError("the C exporter takes feature-input models (the front-end runs in C)")
    samples = int(round((seconds or contract.window_seconds) * contract.sample_rate))
    frames = contract.frontend.num_frames(samples)
    shape = (1, frames, contract.frontend.n_features)
    probe = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    builder = _Builder(proto)
    builder.run({contract.input_name: probe})
    p = builder.p
    arena = _plan(p.buffers)
    out_names = [h.output for h in contract.heads if h.kind == "classification"]
    primary = contract.heads[0]
    in_val, out_val = p.values[contract.input_name], p.values[primary.output]
    if out_val.data.size != len(primary.labels):
        raise ModelError("the primary head's output does not have one value per label")
    weights = sum(d.nbytes for _, d in p.consts.values())
    src = [
        f"/* Generated by `edge-ser export --c` from {path.name}: do not edit. */\n",
        '#include <math.h>\n\n#include "esr_model.h"\n#include "esr_nn.h"\n\n',
    ]
    for b_index, buf in enumerate(p.buffers):
        if buf.first <= buf.last:
            src.append(f"#define OFF{b_index} {buf.offset}u\n")
    src.append("\nstatic uint8_t esr_arena[ESR_MODEL_ARENA_BYTES] __attribute__((aligned(16)));\n\n")
    for cname, (ctype, data) in p.consts.items():
        src.append(_c_array(ctype, cname, data))
    src.append("\nfloat *esr_model_input(void) { return " + builder.ptr(in_val) + "; }\n\n")
    src.append(
        "#ifdef ESR_PROFILE /* a hook after each kernel: per-layer instruction counts */\n"
        "void esr_step(int k);\n#define ESR_STEP(k) esr_step(k)\n#else\n#define ESR_STEP(k) ((void)0)\n#endif\n\n"
    )
    src.append("const float *esr_model_run(void) {\n")
    for step, (index, text, *_) in enumerate(p.calls):
        src.append(f"    {text} /* {builder.graph.node[index].op_type} */\n    ESR_STEP({step});\n")
    src.append(f"    return {builder.ptr(out_val)};\n}}\n")
    fe = contract.frontend
    labels = ", ".join(json.dumps(label) for label in primary.labels)
    norm = contract.normalization
    mean = ", ".join(_f(m) for m in norm.mean) if norm.mode == "global" else "0"
    std = ", ".join(_f(s) for s in norm.std) if norm.mode == "global" else "1"
    kinds = {
        "mfcc": "ESR_FE_MFCC",
        "logmel": "ESR_FE_LOGMEL",
        "logspec": "ESR_FE_LOGSPEC",
        "functionals": "ESR_FE_FUNCTIONALS",
    }
    windows = {"rect": "ESR_WIN_RECT", "hamming": "ESR_WIN_HAMMING", "hann": "ESR_WIN_HANN"}
    header = f"""/* Generated by `edge-ser export --c` from {path.name}: do not edit. */
#ifndef ESR_MODEL_H
#define ESR_MODEL_H

#include <stdint.h>

#include "esr_frontend.h"

#define ESR_MODEL_NAME {json.dumps(contract.name)}
#define ESR_MODEL_SAMPLES {samples}u          /* samples per analysis window */
#define ESR_MODEL_SAMPLE_RATE {contract.sample_rate}
#define ESR_MODEL_ROWS {shape[1]}u             /* feature rows (frames) per window */
#define ESR_MODEL_FEATURES {shape[2]}u         /* features per row */
#define ESR_MODEL_INPUT_FLOATS {in_val.data.size}u
#define ESR_MODEL_OUTPUTS {out_val.data.size}u
#define ESR_MODEL_ARENA_BYTES {max(arena, 16)}u
#define ESR_MODEL_WEIGHT_BYTES {weights}u
#define ESR_MODEL_NORMALIZE {int(norm.mode == "global")}
#define ESR_MODEL_LABELS {{{labels}}}
#define ESR_MODEL_FRONTEND_INIT {{{kinds[fe.kind]}, {fe.sample_rate}, {fe.win_length!r}, {fe.hop_length!r}, \\
    {fe.n_fft}, {windows[fe.window]}, {fe.preemph!r}, {fe.n_mels}, {fe.low_freq!r}, {float(fe.high_freq or 0.0)!r}, \\
    {fe.n_mfcc}, {fe.lifter!r}, {int(fe.append_energy)}}}
#define ESR_MODEL_MEAN {{{mean}}}
#define ESR_FE_WORKSPACE_ESTIMATE {_fe_workspace_estimate(contract, samples)}u /* 32-bit float build, with slack */
#define ESR_MODEL_STD {{{std}}}

/* The input tensor (ESR_MODEL_INPUT_FLOATS floats, normalized features) inside the arena. */
float *esr_model_input(void);
/* Run the model on the input; returns the primary head's ESR_MODEL_OUTPUTS values (logits). */
const float *esr_model_run(void);

#endif
"""
    summary = {
        "model": path.name,
        "quantization": quantization,
        "input_shape": list(shape),
        "weight_bytes": weights,
        "arena_bytes": arena,
        "calls": len(p.calls),
        "outputs": out_names,
    }
    return "".join(src), header, summary, proto


def write_c(model: str | Path, out_dir: str | Path, seconds: float | None = None) -> dict[str, Any]:
    """Write ``esr_model.c`` and ``esr_model.h`` for ``model`` into ``out_dir``, with ``esr_model.onnx``: the
    INT8 graph they compute (the reference for checking them); returns the summary."""
    source, header, summary, graph = generate(model, seconds)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "esr_model.c").write_text(source)
    (out / "esr_model.h").write_text(header)
    onnx.save(graph, str(out / "esr_model.onnx"))
    return summary
