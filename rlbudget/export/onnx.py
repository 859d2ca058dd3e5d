"""A Policy as one ONNX graph, ``policy.onnx``: preprocess, body and head included.

Input ``obs``: float32 ``[batch, *observation_shape]`` (a Discrete observation: int64
``[batch]``, the state index). Output ``action``: int64 ``[batch]`` for discrete actions,
float32 ``[batch, *action_shape]`` for Box actions. Opset 17, IR version 8 (any
onnxruntime from 1.13 on runs it); the policy's provenance, spaces and pipeline are in the
model's ``metadata_props``. What the graph computes, and how it matches
:meth:`~rlbudget.policy.model.Policy.act`:

- preprocess: ``normalize`` (Sub, Div by the float32 ``sqrt(var + eps)``, Clip), ``one_hot``
  (OneHot), ``discretize`` and ``tile_code`` in float32 as numpy computes them (one Sub and
  one Mul by a float32 scale per dimension, then integers), ending in
  int64 state / active-feature indices (``tile_code`` hashing too): **exact**.
- ``mlp``: MatMul, Add and the activation in float32, **within 1e-5** (onnxruntime sums in
  another order; its Tanh/Sigmoid are approximations good to ~1e-7).
- float16 ``mlp`` (``compress.fp16``): ``W`` and ``b`` are float16 initializers (half the
  bytes) cast to float32 inside the graph; the input and each hidden activation are rounded
  to float16 by a Cast pair, the sums run in float32, as numpy does. No float16 kernel is
  needed (onnxruntime's CPU provider lacks several). **Within ~1e-3**: a sum that lands
  near the midpoint of two halves may round the other way when summed in another order,
  and the next layer carries that one half-step on.
- ``mlp_int8``: an integer graph, not QDQ. The input quantization is numpy's (float32
  division, round half away from zero in float64); each layer is ``MatMulInteger`` (int8 ×
  int8 → int32, the input zero point as its ``a_zero_point``) plus the int32 bias, then the
  gemmlowp requantization in int64 arithmetic (``SaturatingRoundingDoublingHighMul`` as a
  floor division of an offset-to-positive product, ``RoundingDivideByPOT`` as a division of
  the magnitude), the clamp, and the tanh/sigmoid table as a Gather. **Bit-exact** with
  the numpy int8 path. A QDQ graph (Dequantize → MatMul → Quantize) would round the
  requantization in float and half to even, one step off now and then; exactness costs a
  few int64 elementwise ops per layer on vectors as wide as the layer.
- a float or int8 weight matrix that is mostly zeros (``compress.prune``) is a Constant
  holding a sparse tensor (values + int64 positions) when that is smaller: a smaller file,
  the same dense compute.
- ``table`` (Gather) and ``packed_table`` (unpacked to an int64 action per state,
  Gather): exact. Tile-coded ``linear`` (Gather the active rows, ReduceSum): exact with
  int8/int16 ``W`` (int32 sums), float sums within 1e-5 (summation order). ``linear`` on
  features (MatMul): within 1e-5; an int8/int16 ``W`` stays int8/int16 in the file and is
  cast and scaled in the graph, as numpy does.
- ``cnn`` / ``cnn_int8``: Conv (``group`` for depthwise), MaxPool, AveragePool, then the
  features flattened channels last and the dense layers above; int8 as ConvInteger and
  the same exact requantization, **bit-exact** (:mod:`rlbudget.export.onnx_conv`).
- heads: ArgMax (the first largest, as numpy), Max/Min (``clip``), Tanh·half_span + mid
  (within 1e-6); after an int8 output, ``tanh_rescale`` is a table of its 256 results per
  dimension (GatherElements), exact, as in the C export.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlbudget import __version__
from rlbudget.errors import PolicyError
from rlbudget.export.onnx_conv import conv_graph
from rlbudget.export.single_file import write_single_file
from rlbudget.policy.model import (
    CNN,
    MLP,
    Array,
    Discretize,
    Linear,
    Normalize,
    OneHot,
    PackedTable,
    Policy,
    QDense,
    QuantizedMLP,
    Table,
    TileCode,
    dequantize,
)

FILENAME = "policy.onnx"
OPSET = 17
IR_VERSION = 8  # the IR version of opset 17 (onnx.helper.VERSION_TABLE)
MISSING_EXTRA = "ONNX export needs the onnx extra: pip install 'rlbudget[onnx]'"

# ONNX TensorProto element types (onnx.TensorProto.FLOAT, ...), fixed by the ONNX spec;
# spelled here so that the graph builder needs no onnx import to name them.
FLOAT, INT8, INT16, INT32, INT64, FLOAT16, DOUBLE = 1, 3, 5, 6, 7, 10, 11
ELEMENT_TYPES = {"float32": FLOAT, "int8": INT8, "int16": INT16, "int32": INT32,
                 "int64": INT64, "float16": FLOAT16, "float64": DOUBLE}  # fmt: skip
ACTIVATION_OPS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}


@dataclass(frozen=True)
class OnnxExportResult:
    """What :func:`export_onnx` wrote: the file, its size, the opset and the graph's size."""

    files: tuple[Path, ...]
    file_bytes: int
    opset: int
    nodes: int

    def to_dict(self) -> dict[str, Any]:
        return {"files": [str(f) for f in self.files], "file_bytes": self.file_bytes,
                "opset": self.opset, "nodes": self.nodes}  # fmt: skip


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise PolicyError(MISSING_EXTRA) from None
    return onnx


def _fail(message: str) -> PolicyError:
    return PolicyError(f"export_onnx: {message}")


@dataclass(frozen=True)
class _Tensor:
    """A value in the graph being built: its name, element type and rank; ``int8`` names
    the int8 tensor (and its scale, zero point) that a dequantized float value came from."""

    name: str
    dtype: int
    rank: int
    int8: tuple[str, float, int] | None = None


class _Graph:
    """Collects nodes and initializers; every value gets a fresh name."""

    def __init__(self, onnx: Any) -> None:
        self.onnx = onnx
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.count = 0
        self.small: dict[tuple[str, tuple[int, ...], bytes], str] = {}

    def _name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value: Any, hint: str = "c", dtype: Any = None) -> str:
        """An initializer holding ``value`` (an array or a number, as ``dtype``); a small
        constant already in the graph is reused."""
        array = np.asarray(value, dtype=dtype)
        key = (str(array.dtype), array.shape, array.tobytes()) if array.size <= 4 else None
        if key is not None and key in self.small:
            return self.small[key]
        name = self._name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        if key is not None:
            self.small[key] = name
        return name

    def weights(self, W: Array, hint: str) -> str:
        """A weight matrix; mostly zeros (a pruned layer), it is a Constant node holding a
        sparse tensor (the nonzero values and their int64 flat positions) when that takes
        fewer bytes. Its output is dense: the runtime expands it at load time, so the
        saving is in the file, not in the compute. (A sparse *initializer* would have a
        sparse type, which MatMul does not take.)"""
        stored = np.flatnonzero(W.view(f"u{W.itemsize}"))  # bit patterns: -0.0 is kept
        if len(stored) * (W.itemsize + 8) >= W.nbytes:
            return self.const(W, hint)
        values = self.onnx.numpy_helper.from_array(W.ravel()[stored], "values")
        positions = self.onnx.numpy_helper.from_array(stored.astype(np.int64), "positions")
        sparse = self.onnx.helper.make_sparse_tensor(values, positions, W.shape)
        return self.op("Constant", hint=hint, sparse_value=sparse)

    def op(self, op_type: str, *inputs: str, hint: str = "", **attrs: Any) -> str:
        out = self._name(hint or op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def cast(self, x: _Tensor, dtype: int) -> _Tensor:
        if x.dtype == dtype:
            return x
        return _Tensor(self.op("Cast", x.name, to=dtype), dtype, x.rank)


# --- preprocess -----------------------------------------------------------------------------


def _normalize(g: _Graph, x: _Tensor, step: Normalize) -> _Tensor:
    std = np.sqrt(step.var + np.float32(step.eps))  # exactly numpy's float32 divisor
    x = g.cast(x, FLOAT)
    z = g.op("Div", g.op("Sub", x.name, g.const(step.mean, "mean")), g.const(std, "std"))
    clip = np.float32(step.clip)
    out = g.op("Clip", z, g.const(-clip, "clip_low"), g.const(clip, "clip_high"), hint="norm")
    return _Tensor(out, FLOAT, x.rank)


def _grid(g: _Graph, x: _Tensor, low: Array, scale: Array, top: Array) -> str:
    """``clip(floor((x - low) * scale), 0, top)`` per dimension, the arithmetic in float32 as
    :func:`~rlbudget.policy.preprocess.grid_cells` (float32 → int64)."""
    x = g.cast(x, FLOAT)
    u = g.op("Mul", g.op("Sub", x.name, g.const(low, "low")), g.const(scale, "scale"))
    top = np.asarray(top, dtype=np.int64)
    clipped = g.op("Min", g.op("Max", u, g.const(np.float32(0), "zero")),
                   g.const(top.astype(np.float32), "top"))  # fmt: skip
    cell = g.op("Cast", g.op("Floor", clipped), to=INT64)
    return g.op("Min", cell, g.const(top, "top_int"))


def _row_major(g: _Graph, cells: str, strides: Array, axis: int) -> str:
    """Row-major index of the int64 ``cells`` along ``axis``."""
    weighted = g.op("Mul", cells, g.const(strides, "strides", np.int64))
    return g.op("ReduceSum", weighted, g.const([axis], "axis", np.int64), keepdims=0)


def _strides(shape: tuple[int, ...]) -> Array:
    """Row-major strides of ``shape`` in elements (``np.ravel_multi_index``'s weights)."""
    return np.array([int(np.prod(shape[d + 1 :])) for d in range(len(shape))], dtype=np.int64)


def _discretize(g: _Graph, x: _Tensor, step: Discretize) -> _Tensor:
    """State index: ``clip(floor((x - low) * scale), 0, bins - 1)`` per dimension in float32,
    as :meth:`Discretize.apply` does, then the row-major index."""
    cells = _grid(g, x, step.low, step.scale, np.asarray(step.bins) - 1)
    return _Tensor(_row_major(g, cells, _strides(step.bins), 1), INT64, 1)


def _tile_code(g: _Graph, x: _Tensor, step: TileCode) -> _Tensor:
    """Active feature per tiling, ``[batch, tilings]``: the cells in ``1 / tilings`` of a tile
    (float32), then over a new tiling axis ``(cell + t) / tilings`` in integers, and
    :meth:`TileCode.apply`'s row-major index and hash."""
    cells = _grid(g, x, step.low, step.scale, np.full(len(step.low), step.top))
    offsets = np.arange(step.tilings, dtype=np.int64).reshape(-1, 1)  # [tilings, 1]
    shifted = g.op("Add", g.op("Unsqueeze", cells, g.const([1], "axis", np.int64)),
                   g.const(offsets, "offsets"))  # fmt: skip
    tiles = g.op("Div", shifted, g.const(np.int64(step.tilings), "tilings"))  # ≥ 0: floor
    shape = (step.tiles_per_dim + 1,) * len(step.low)
    first = np.arange(step.tilings, dtype=np.int64) * step.per_tiling
    out = g.op("Add", _row_major(g, tiles, _strides(shape), 2), g.const(first, "first_feature"))
    if step.hash_size:
        mixed = g.op("Mod", g.op("Mul", out, g.const(2654435761, "mix", np.int64)),
                     g.const(2**32, "two32", np.int64))  # fmt: skip
        out = g.op("Mod", mixed, g.const(step.hash_size, "hash_size", np.int64))
    return _Tensor(out, INT64, 2)


def _one_hot(g: _Graph, x: _Tensor, step: OneHot) -> _Tensor:
    x = g.cast(x, INT64)
    out = g.op("OneHot", x.name, g.const([step.n], "depth", np.int64),
               g.const([0.0, 1.0], "one_hot_values", np.float32), axis=-1)  # fmt: skip
    return _Tensor(out, FLOAT, x.rank + 1)


# --- bodies --------------------------------------------------------------------------------


def _features(x: _Tensor, body: str) -> None:
    if x.rank != 2 or x.dtype == INT64:
        raise _fail(f"a {body} body needs a float feature vector per observation; this "
                    "preprocess gives an index (add one_hot, or use a table)")  # fmt: skip


def _activate(g: _Graph, y: str, activation: str) -> str:
    return g.op(ACTIVATION_OPS[activation], y) if activation in ACTIVATION_OPS else y


def _round_half(g: _Graph, y: str) -> str:
    """float32 → nearest float16 → float32 (numpy's cast: round to nearest even)."""
    return g.op("Cast", g.op("Cast", y, to=FLOAT16), to=FLOAT)


def _mlp(g: _Graph, x: _Tensor, body: MLP) -> _Tensor:
    _features(x, body.kind)
    y = g.cast(x, FLOAT).name
    half = body.half
    if half:
        y = _round_half(g, y)
    for i, layer in enumerate(body.layers):
        W, b = g.weights(layer.W, f"W{i}"), g.const(layer.b, f"b{i}")
        if half:  # float16 in the file, float32 sums (MLP._apply_half)
            W, b = g.op("Cast", W, to=FLOAT), g.op("Cast", b, to=FLOAT)
        y = _activate(g, g.op("Add", g.op("MatMul", y, W), b), layer.activation)
        if half and i < len(body.layers) - 1:
            y = _round_half(g, y)
    return _Tensor(y, FLOAT, 2)


def _quantize_input(g: _Graph, x: str, scale: float, zero_point: int) -> str:
    """:func:`~rlbudget.policy.model.quantize_input`: float32 division, clamp to ±512 (NaN
    → -512), round half away from zero in float64, add the zero point, saturate."""
    v = g.op("Div", x, g.const(np.float32(scale), "input_scale"))
    low = g.const(np.float32(-512), "minus_512")
    v = g.op("Where", g.op("GreaterOrEqual", v, low), v, low)
    v = g.op("Cast", g.op("Min", v, g.const(np.float32(512), "plus_512")), to=DOUBLE)
    half = g.const(0.5, "half", np.float64)
    rounded = g.op("Mul", g.op("Sign", v), g.op("Floor", g.op("Add", g.op("Abs", v), half)))
    q = g.op("Add", rounded, g.const(float(zero_point), "input_zero_point", np.float64))
    q = g.op("Clip", q, g.const(-128.0, "q_min", np.float64), g.const(127.0, "q_max", np.float64))
    return g.op("Cast", q, to=INT8, hint="q")


def _requantize(g: _Graph, acc: str, layer: QDense) -> str:
    """TFLite's ``MultiplyByQuantizedMultiplier`` per channel, exact in int64:

    - left shift (``2**max(shift, 0)``), saturated to int32;
    - ``SaturatingRoundingDoublingHighMul`` = ``floor((a·m + 2**30) / 2**31)`` (gemmlowp's
      truncation with its sign-dependent nudge rounds half up); ``|a·m| < 2**62``, so adding
      ``2**62`` makes the dividend positive and the division a floor;
    - ``RoundingDivideByPOT`` by ``e = max(-shift, 0)`` = ``sign(x) · ((|x| + 2**e div 2)
      div 2**e)``, half away from zero.

    The file holds the int32 multipliers and int8 shifts, as the policy does; the powers of
    two are computed from the shifts in the graph (constant-folded by the runtime).
    """
    if layer.requantize == "high_word":
        return _requantize_high_word(g, acc, layer)
    shift = g.op("Cast", g.const(layer.shift, "shift", np.int8), to=INT64)
    zero, two = g.const(0, "zero", np.int64), g.const(2, "two", np.int64)
    a = g.op("Cast", acc, to=INT64)
    if (layer.shift > 0).any():
        left = g.op("Pow", two, g.op("Max", shift, zero))
        a = g.op("Clip", g.op("Mul", a, left), g.const(-(2**31), "int32_min", np.int64),
                 g.const(2**31 - 1, "int32_max", np.int64))  # fmt: skip
    multiplier = g.op("Cast", g.const(layer.multiplier, "multiplier", np.int32), to=INT64)
    nudged = g.op("Add", g.op("Mul", a, multiplier), g.const(2**62 + 2**30, "nudge", np.int64))
    two31 = g.const(2**31, "two31", np.int64)
    high = g.op("Sub", g.op("Div", nudged, two31), two31)
    pot = g.op("Pow", two, g.op("Max", g.op("Neg", shift), zero))
    magnitude = g.op("Div", g.op("Add", g.op("Abs", high), g.op("Div", pot, two)), pot)
    return g.op("Mul", g.op("Sign", high), magnitude)


def _requantize_high_word(g: _Graph, acc: str, layer: QDense) -> str:
    """:func:`~rlbudget.policy.model.rounded_high_mul` per channel, exact in int64: with
    ``n = 31 - shift`` (33 to 62), ``floor((a·m + 2**(n-1)) / 2**n)``; ``|a·m| < 2**62``, so
    adding ``2**62`` (a multiple of ``2**n``) makes the dividend positive and the division a
    floor, and ``2**(62 - n)`` is taken off after it. The powers of two are computed from
    the int8 shifts in the graph, as :func:`_requantize` does."""
    shift = g.op("Cast", g.const(layer.shift, "shift", np.int8), to=INT64)
    two, one = g.const(2, "two", np.int64), g.const(1, "one", np.int64)
    n = g.op("Sub", g.const(31, "thirty_one", np.int64), shift)
    pot, half = g.op("Pow", two, n), g.op("Pow", two, g.op("Sub", n, one))
    top = g.const(2**62, "two62", np.int64)
    multiplier = g.op("Cast", g.const(layer.multiplier, "multiplier", np.int32), to=INT64)
    product = g.op("Mul", g.op("Cast", acc, to=INT64), multiplier)
    quotient = g.op("Div", g.op("Add", g.op("Add", product, top), half), pot)
    return g.op("Sub", quotient, g.op("Div", top, pot))


def _dequantize(g: _Graph, q: str, scale: float, zero_point: int) -> str:
    """:func:`~rlbudget.policy.model.dequantize`: ``float32(q - zero_point) * scale``."""
    shifted = g.op("Sub", g.op("Cast", q, to=INT32), g.const(zero_point, "zp", np.int32))
    return g.op("Mul", g.op("Cast", shifted, to=FLOAT), g.const(np.float32(scale), "scale"))


def _mlp_int8(g: _Graph, x: _Tensor, body: QuantizedMLP, int8_input: bool = False) -> _Tensor:
    """The int8 layers on the float input ``x`` (quantized first), or on ``x`` already int8
    (``int8_input``: a ``cnn_int8`` body's features)."""
    _features(x, body.kind)
    first = body.layers[0]
    q = x.name if int8_input else _quantize_input(g, g.cast(x, FLOAT).name, first.input_scale,
                                                  first.input_zero_point)  # fmt: skip
    for i, layer in enumerate(body.layers):
        acc = g.op("MatMulInteger", q, g.weights(layer.W.astype(np.int8), f"W{i}"),
                   g.const(layer.input_zero_point, "in_zp", np.int8))  # fmt: skip
        acc = g.op("Add", acc, g.const(layer.b, f"b{i}", np.int32), hint="acc")
        if layer.float_output:
            y = g.op("Mul", g.op("Cast", acc, to=FLOAT), g.const(layer.dequant_scale, "dq"))
            return _Tensor(y, FLOAT, 2)
        y = g.op("Add", _requantize(g, acc, layer),
                 g.const(layer.output_zero_point, "out_zp", np.int64))  # fmt: skip
        y = g.op("Clip", y, g.const(layer.clamp_low, "lo", np.int64),
                 g.const(127, "hi", np.int64))  # fmt: skip
        if layer.lut is None:
            q = g.op("Cast", y, to=INT8, hint="q")
        else:
            index = g.op("Add", y, g.const(128, "lut_offset", np.int64))
            q = g.op("Gather", g.const(layer.lut, f"lut{i}", np.int8), index, axis=0, hint="q")
    scale, zero_point = body.layers[-1].out_quant
    return _Tensor(_dequantize(g, q, scale, zero_point), FLOAT, 2, (q, scale, zero_point))


def _index(g: _Graph, x: _Tensor, body: str) -> _Tensor:
    if x.rank != 1:
        raise _fail(f"a {body} body needs a state index per observation (a Discrete "
                    "observation or a discretize preprocess)")  # fmt: skip
    return g.cast(x, INT64)


def _linear(g: _Graph, x: _Tensor, body: Linear) -> _Tensor:
    quantized = body.scale is not None
    W = g.const(body.W, "W")
    if x.dtype == INT64 and x.rank == 2:  # tile indices: sum the active rows
        rows = g.op("Gather", W, x.name, axis=0)
        if quantized:  # exact int32 sums, as Linear.apply
            rows = g.op("Cast", rows, to=INT32)
        summed = g.op("Add", g.op("ReduceSum", rows, g.const([1], "axis", np.int64), keepdims=0),
                      g.const(body.b, "b"))  # fmt: skip
        if quantized:
            summed = g.op("Mul", g.op("Cast", summed, to=FLOAT), g.const(body.scale, "scale"))
        return _Tensor(summed, FLOAT, 2)
    _features(x, body.kind)
    b = g.const(body.b, "b")
    if quantized:  # W·scale and b·scale in float32, as Linear.apply
        scale = g.const(body.scale, "scale")
        W = g.op("Mul", g.op("Cast", W, to=FLOAT), scale)
        b = g.op("Mul", g.op("Cast", b, to=FLOAT), scale)
    return _Tensor(g.op("Add", g.op("MatMul", g.cast(x, FLOAT).name, W), b), FLOAT, 2)


def _body(g: _Graph, x: _Tensor, policy: Policy) -> _Tensor:
    body = policy.body
    if isinstance(body, MLP):
        return _mlp(g, x, body)
    if isinstance(body, QuantizedMLP):
        return _mlp_int8(g, x, body)
    if isinstance(body, Table):
        values = g.const(body.values, "values")
        return _Tensor(g.op("Gather", values, _index(g, x, body.kind).name, axis=0), FLOAT, 2)
    if isinstance(body, PackedTable):
        actions = g.const(body.actions(), "actions", np.int64)
        return _Tensor(g.op("Gather", actions, _index(g, x, body.kind).name, axis=0), INT64, 1)
    if isinstance(body, Linear):
        return _linear(g, x, body)
    if isinstance(body, CNN):  # the convolutions (onnx_conv.py), then the dense layers
        features = _Tensor(conv_graph(g, x.name, body, _quantize_input, _requantize),
                           INT8 if body.int8 else FLOAT, 2)  # fmt: skip
        if isinstance(body.dense, QuantizedMLP):
            return _mlp_int8(g, features, body.dense, int8_input=True)
        assert isinstance(body.dense, MLP)
        return _mlp(g, features, body.dense)
    if getattr(body, "kind", None) == "cascade":  # a per-decision branch: an If per row
        raise _fail("a cascade's branch (the full body runs only where the small one is not "
                    "confident) is not exported to ONNX; export it as C (--format c), or "
                    "export the full policy")  # fmt: skip
    raise _fail(f"body kind {getattr(body, 'kind', type(body).__name__)!r} is not supported; "
                "the ONNX export handles mlp, mlp_int8, table, packed_table, linear, cnn, "
                "cnn_int8")  # fmt: skip


# --- head and model ------------------------------------------------------------------------


def _head(g: _Graph, y: _Tensor, policy: Policy) -> str:
    head, discrete = policy.head, policy.action_space.kind == "discrete"
    if head.kind == "argmax":
        if not discrete:
            raise _fail("an argmax head needs discrete actions")
        return g.op("ArgMax", y.name, axis=-1, keepdims=0)
    if y.dtype == INT64:  # action indices from a packed table
        return y.name
    if discrete:
        raise _fail(f"head {head.kind!r} on discrete actions; expected argmax")
    if head.kind == "identity" or head.low is None or head.high is None:
        return y.name
    if head.kind == "clip":
        low = g.op("Max", y.name, g.const(head.low, "low"))
        return g.op("Min", low, g.const(head.high, "high"))
    if head.kind == "tanh_rescale" and y.int8 is not None:
        # an int8 output takes 256 values per dimension: a table of the head's results
        # (numpy's, bit for bit; the C export reads the same table)
        q, scale, zero_point = y.int8
        levels = dequantize(np.arange(-128, 128), scale, zero_point)[:, None]
        table = head.apply(np.repeat(levels, len(head.half_span), axis=1))  # [256, dims]
        index = g.op("Add", g.op("Cast", q, to=INT64), g.const(128, "lut_offset", np.int64))
        return g.op("GatherElements", g.const(table, "head_table"), index, axis=0)
    squashed = g.op("Mul", g.op("Tanh", y.name), g.const(head.half_span, "half_span"))
    return g.op("Add", squashed, g.const(head.mid, "mid"))


def _metadata(policy: Policy) -> dict[str, str]:
    summary = policy.summary()
    pipeline = " -> ".join([*summary["preprocess"], summary["body"], summary["head"]])
    return {
        "rlbudget.version": __version__,
        "rlbudget.pipeline": pipeline,
        "rlbudget.provenance": json.dumps(summary["provenance"], sort_keys=True, default=str),
        "rlbudget.observation_space": json.dumps(summary["observation_space"]),
        "rlbudget.action_space": json.dumps(summary["action_space"]),
    }


def build_model(policy: Policy) -> Any:
    """The ONNX ``ModelProto`` of ``policy`` (see the module docstring), checked with
    ``onnx.checker.check_model(full_check=True)``.

    :raises PolicyError: the onnx extra is missing, or a part the ONNX export does not
        support.
    """
    onnx = _import_onnx()
    helper = onnx.helper
    g = _Graph(onnx)
    obs, act = policy.observation_space, policy.action_space
    if obs.kind == "discrete":
        x = _Tensor("obs", INT64, 1)
        obs_info = helper.make_tensor_value_info("obs", INT64, ["batch"])
    else:
        x = _Tensor("obs", FLOAT, 1 + len(obs.shape))
        obs_info = helper.make_tensor_value_info("obs", FLOAT, ["batch", *obs.shape])
    steps = {"normalize": _normalize, "discretize": _discretize, "tile_code": _tile_code,
             "one_hot": _one_hot}  # fmt: skip
    for step in policy.preprocess:
        if step.kind not in steps:
            raise _fail(f"preprocess kind {step.kind!r} is not supported")
        x = steps[step.kind](g, x, step)  # type: ignore[operator]
    action = _head(g, _body(g, x, policy), policy)
    g.nodes.append(helper.make_node("Identity", [action], ["action"]))
    if act.kind == "discrete":
        action_info = helper.make_tensor_value_info("action", INT64, ["batch"])
    else:
        action_info = helper.make_tensor_value_info("action", FLOAT, ["batch", *act.shape])
    metadata = _metadata(policy)
    graph = helper.make_graph(g.nodes, "rlbudget_policy", [obs_info], [action_info],
                              g.initializers, doc_string=metadata["rlbudget.pipeline"])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="rlbudget",
                              producer_version=__version__)  # fmt: skip
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(policy: Policy, out_dir: str | os.PathLike[str]) -> OnnxExportResult:
    """Write ``policy.onnx`` (preprocess, body and head in one graph) to ``out_dir``.

    ``out_dir`` is created if needed; ``policy.onnx`` is written to a temporary file there
    and renamed into place, so a kill never leaves a half-written file.

    :param policy: any policy whose parts the ONNX export supports (module docstring).
    :param out_dir: the folder to write to.
    :returns: the file written, its size in bytes, the opset and the number of nodes.
    :raises PolicyError: the onnx extra is missing (``pip install 'rlbudget[onnx]'``), or a
        part the ONNX export does not support.
    :raises RlbudgetError: ``out_dir`` cannot be created or written.
    """
    model = build_model(policy)
    data = model.SerializeToString()
    path = write_single_file(out_dir, FILENAME, data)
    return OnnxExportResult((path,), len(data), OPSET, len(model.graph.node))


def onnx_runner(path: str | os.PathLike[str]) -> Callable[[Any], Array]:
    """One onnxruntime session of ``policy.onnx`` (CPU, one thread), as a function from a
    batch of observations to the actions :meth:`Policy.act` returns for it.

    :raises PolicyError: onnxruntime is missing (the onnx extra).
    """
    try:
        import onnxruntime  # type: ignore[import-untyped]
    except ImportError:
        raise PolicyError(MISSING_EXTRA) from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options,
                                           providers=["CPUExecutionProvider"])  # fmt: skip
    feed = session.get_inputs()[0]
    dtype = np.int64 if feed.type == "tensor(int64)" else np.float32

    def run(obs: Any) -> Array:
        out: Array = session.run(["action"], {feed.name: np.asarray(obs, dtype=dtype)})[0]
        return out

    return run


def run_onnx(path: str | os.PathLike[str], obs: Any) -> Array:
    """Actions for a batch of observations from ``policy.onnx`` (:func:`onnx_runner`).

    :raises PolicyError: onnxruntime is missing (the onnx extra).
    """
    out: Array = onnx_runner(path)(obs)
    return out
