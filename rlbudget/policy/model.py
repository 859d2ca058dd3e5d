"""The framework-free policy: preprocess → body → head, numpy only.

Every stage of rlbudget speaks this one representation. A policy is
plain data: components are frozen dataclasses holding numpy arrays, and
:meth:`Policy.act` is the reference runtime that C, ONNX and SB3's ``predict``
are checked against.

Components (``kind`` is the name used in ``policy.json``):

- preprocess, applied in order: ``normalize`` (VecNormalize: ``clip((x - mean) /
  sqrt(var + eps), ±clip)``), ``discretize`` (uniform bins per dimension, clipped,
  → one state index, row-major), ``tile_code`` (``tilings`` offset grids of
  ``tiles_per_dim`` over ``[low, high]``, optionally hashed into ``hash_size``
  features → one active feature index per tiling), ``one_hot`` (Discrete → float
  vector).
- body: ``mlp`` (dense layers ``x @ W + b`` then activation), ``mlp_int8`` (the same with
  int8 weights and activations, integer-only as TFLite Micro: :class:`QuantizedMLP`),
  ``table`` (values indexed by state: ``[states, actions]``), ``packed_table`` (a table's
  greedy actions,
  ``bits`` bits per state, or only some states' with a default for the rest, see
  :class:`PackedTable`), ``linear`` (``x @ W + b`` on float
  features, or the sum of the rows of ``W`` at active tile indices, plus ``b``; ``W`` may
  be int8/int16 with an int32 ``b`` and a float ``scale`` per output).
- head: ``argmax`` (discrete), ``clip`` (to the action bounds), ``tanh_rescale``
  (squashed output rescaled to the bounds), ``identity`` (a ``packed_table`` already
  gives the action index).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rlbudget.envs import SpaceSpec

ACTIVATIONS = ("identity", "relu", "tanh", "sigmoid")
QUANTIZATION_ARRAYS = ("scale", "w_scale", "multiplier", "shift", "lut")
"""Array names (last part) that hold quantization constants, not learned parameters."""
SPARSE_INDEX_ARRAYS = ("indices", "indptr")
"""Array names (last part) of a sparse W's positions (``policy.safetensors``), not parameters."""
Array = NDArray[Any]


def _dense(x: Array, W: Array, b: Array) -> Array:
    """``x @ W + b`` for a batch ``x`` of shape [batch, inputs], one row at a time.

    Every row goes through BLAS's vector-matrix product, whatever the batch size, so
    ``act(obs)`` (see :meth:`MLP.apply`) and ``act(batch)[i]`` agree to the last bit; a
    plain ``x @ W`` takes the matrix-matrix kernel for a batch, which sums in another
    order. A test pins this on every body kind.
    """
    out: Array = np.matmul(x.astype(np.float32, copy=False)[:, None, :], W)[:, 0, :] + b
    return out


def _activate(x: Array, name: str) -> Array:
    if name == "relu":
        return np.maximum(x, 0, dtype=x.dtype)
    if name == "tanh":
        return np.asarray(np.tanh(x))
    if name == "sigmoid":
        return (1.0 / (1.0 + np.exp(-x))).astype(x.dtype)
    return x


def _activate_in_place(x: Array, name: str) -> None:
    """:func:`_activate` writing into ``x`` (the same values; no new arrays)."""
    if name == "relu":
        np.maximum(x, 0, out=x)
    elif name == "tanh":
        np.tanh(x, out=x)
    elif name == "sigmoid":
        x[...] = _activate(x, name)


def _f32(obj: object, *names: str) -> None:
    """Store the named array fields as float32 (what the C export computes with)."""
    for name in names:
        value = getattr(obj, name)
        if value is not None:
            object.__setattr__(obj, name, np.asarray(value, dtype=np.float32))


# --- preprocess ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Normalize:
    """VecNormalize's observation transform."""

    mean: Array
    var: Array
    clip: float = 10.0
    eps: float = 1e-8
    kind: str = field(default="normalize", init=False)

    def __post_init__(self) -> None:
        _f32(self, "mean", "var")

    def apply(self, x: Array) -> Array:
        z = (x.astype(np.float32) - self.mean) / np.sqrt(self.var + np.float32(self.eps))
        out: Array = np.clip(z, -self.clip, self.clip).astype(np.float32)
        return out


@dataclass(frozen=True, eq=False)
class Discretize:
    """Uniform bins per dimension over [low, high] (values outside are clipped)."""

    low: Array
    high: Array
    bins: tuple[int, ...]
    kind: str = field(default="discretize", init=False)

    def __post_init__(self) -> None:
        _f32(self, "low", "high")

    @property
    def states(self) -> int:
        return int(np.prod(self.bins))

    def apply(self, x: Array) -> Array:
        bins = np.asarray(self.bins)
        scaled = (x.astype(np.float64) - self.low) / (self.high - self.low) * bins
        idx = np.clip(np.floor(scaled), 0, bins - 1).astype(np.int64)
        state: Array = np.ravel_multi_index(tuple(idx.T), self.bins).astype(np.int64)
        return state


@dataclass(frozen=True, eq=False)
class TileCode:
    """``tilings`` grids, each offset by ``t / tilings`` of a tile, over [low, high].

    Feature index of tiling ``t``: ``t * per_tiling + cell`` where ``cell`` is the
    row-major index of the tile among ``(tiles_per_dim + 1) ** dims``; with
    ``hash_size`` the index is taken modulo it after mixing with a fixed odd
    multiplier (deterministic, the same in the C export).
    """

    low: Array
    high: Array
    tilings: int
    tiles_per_dim: int
    hash_size: int | None = None
    kind: str = field(default="tile_code", init=False)

    def __post_init__(self) -> None:
        _f32(self, "low", "high")

    @property
    def per_tiling(self) -> int:
        return int((self.tiles_per_dim + 1) ** len(self.low))

    @property
    def features(self) -> int:
        return self.hash_size or self.tilings * self.per_tiling

    def apply(self, x: Array) -> Array:
        width = (self.high - self.low) / self.tiles_per_dim
        scaled = (x.astype(np.float64) - self.low) / width  # [batch, dims], tiles
        dims = len(self.low)
        shape = (self.tiles_per_dim + 1,) * dims
        out = np.empty((x.shape[0], self.tilings), dtype=np.int64)
        for t in range(self.tilings):
            cell = np.floor(scaled + t / self.tilings).astype(np.int64)
            cell = np.clip(cell, 0, self.tiles_per_dim)
            out[:, t] = t * self.per_tiling + np.ravel_multi_index(tuple(cell.T), shape)
        if self.hash_size:
            out = (out * 2654435761) % (2**32) % self.hash_size
        return out


@dataclass(frozen=True, eq=False)
class OneHot:
    """Discrete observation → float32 one-hot vector of length ``n``."""

    n: int
    kind: str = field(default="one_hot", init=False)

    def apply(self, x: Array) -> Array:
        return np.eye(self.n, dtype=np.float32)[x.astype(np.int64)]


Preprocess = Normalize | Discretize | TileCode | OneHot

# --- bodies -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Dense:
    """One dense layer: ``activation(x @ W + b)``, W of shape [inputs, outputs].

    ``W`` and ``b`` are float32, or float16 (see :class:`MLP`). ``W`` is always held
    dense in memory, zeros included; ``policy.safetensors`` stores a mostly-zero ``W`` in
    CSR form when that takes fewer bytes (:mod:`rlbudget.policy.io`).
    """

    W: Array
    b: Array
    activation: str = "identity"


@dataclass(frozen=True, eq=False)
class MLP:
    """Dense layers in order. Every ``W`` and ``b`` of one MLP has the same dtype.

    float16 (``rlbudget.compress.fp16``) stores halves and computes in float32: the body
    input is rounded to float16; each layer computes ``float32(x) @ float32(W) +
    float32(b)`` and its activation in float32 and rounds the result to float16, as a
    device holding activations in half precision would; the last layer's float32 result
    goes to the head unrounded. The C export does the same roundings.
    """

    layers: tuple[Dense, ...]
    kind: str = field(default="mlp", init=False)

    @property
    def half(self) -> bool:
        """Whether the weights are float16."""
        return bool(self.layers[0].W.dtype == np.float16)

    def apply(self, x: Array) -> Array:
        if self.half:
            return self._apply_half(x)
        if x.shape[0] == 1:
            # One observation: the same vector-matrix products as _dense's batch path,
            # without its reshaping (a decision on the host is a few microseconds).
            y = x[0].astype(np.float32, copy=False)
            for layer in self.layers:
                y = np.dot(y, layer.W)
                y += layer.b
                _activate_in_place(y, layer.activation)
            out: Array = y[None]
            return out
        for layer in self.layers:
            x = _activate(_dense(x, layer.W, layer.b), layer.activation)
        return x

    def _apply_half(self, x: Array) -> Array:
        """float16 weights (see the class docstring); one path for any batch size."""
        y = x.astype(np.float16).astype(np.float32)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            z = _dense(y, layer.W.astype(np.float32), layer.b.astype(np.float32))
            y = _activate(z, layer.activation)
            if i < last:
                y = y.astype(np.float16).astype(np.float32)
        return y


@dataclass(frozen=True, eq=False)
class Table:
    """Values per (state, action): ``values[state]`` gives the action values."""

    values: Array
    kind: str = field(default="table", init=False)

    def apply(self, x: Array) -> Array:
        return np.asarray(self.values[x.astype(np.int64)])


@dataclass(frozen=True, eq=False)
class PackedTable:
    """A table's greedy actions, ``bits`` bits per state, packed LSB first.

    Entry ``i`` of ``packed`` is bits ``i*bits … i*bits + bits - 1`` of the byte stream
    read as one little-endian bit string: ``packed[i*bits // 8]`` holds its lowest bit at
    position ``i*bits % 8``. ``bits ≤ 8``, so one entry spans at most two bytes. The body
    outputs the action index itself (head ``identity``).

    Dense (``stored`` is None): entry ``s`` is the action of state ``s``.

    Sparse (``rlbudget.compress.tabular.drop_unvisited``): only some states keep their
    own action; every other state acts ``default``. ``stored`` is a bitmap, one bit per
    state, LSB first (bit ``s % 8`` of byte ``s // 8``); ``packed`` holds the actions of
    the states whose bit is set, in state order, so state ``s``'s entry is its *rank*,
    the number of set bits before it. ``rank[k]`` counts the set bits before state
    ``64 k`` (uint16, or uint32 from 65,536 stored states), so a lookup reads one rank
    and popcounts at most eight bitmap bytes: constant time, as the C export does.
    """

    packed: Array
    bits: int
    states: int
    stored: Array | None = None
    rank: Array | None = None
    default: int = 0
    kind: str = field(default="packed_table", init=False)

    RANK_BLOCK = 64
    """States per ``rank`` entry (eight bitmap bytes)."""

    @property
    def entries(self) -> int:
        """Actions held in ``packed``: every state's, or (sparse) the stored states'."""
        if self.stored is None:
            return self.states
        return int(np.unpackbits(self.stored, bitorder="little")[: self.states].sum())

    def _entry(self, i: Array) -> Array:
        """Entries ``i`` of ``packed`` (int64 indices) as int64 actions."""
        off = i * self.bits
        padded = np.append(self.packed, np.zeros(2, np.uint8)).astype(np.int64)  # may be empty
        word = padded[off >> 3] | (padded[(off >> 3) + 1] << 8)
        out: Array = (word >> (off & 7)) & ((1 << self.bits) - 1)
        return out

    def actions(self) -> Array:
        """Every state's action (unpacked; the default filled in where none is stored),
        as int64."""
        entries = self.entries
        bits = np.unpackbits(self.packed, bitorder="little")[: entries * self.bits]
        weights = 1 << np.arange(self.bits, dtype=np.int64)
        own: Array = bits.reshape(entries, self.bits).astype(np.int64) @ weights
        if self.stored is None:
            return own
        mask = np.unpackbits(self.stored, bitorder="little")[: self.states].astype(bool)
        out = np.full(self.states, self.default, dtype=np.int64)
        out[mask] = own
        return out

    def apply(self, x: Array) -> Array:
        s = x.astype(np.int64)
        if self.stored is None or self.rank is None:
            return self._entry(s)
        stored = self.stored.astype(np.int64)
        byte = stored[s >> 3]
        own = ((byte >> (s & 7)) & 1).astype(bool)
        # rank(s) = rank[s // 64] + set bits of the whole bytes of its block before s's
        # byte + set bits of s's byte below s: what the C export computes.
        r = self.rank.astype(np.int64)[s >> 6] + _POPCOUNT8[byte & ((1 << (s & 7)) - 1)]
        first = (s >> 6) << 3
        for k in range(self.RANK_BLOCK // 8 - 1):
            i = first + k
            r += np.where(i < s >> 3, _POPCOUNT8[stored[np.minimum(i, len(stored) - 1)]], 0)
        out: Array = np.where(own, self._entry(np.where(own, r, 0)), self.default)
        return out


_POPCOUNT8 = np.array([bin(v).count("1") for v in range(256)], dtype=np.int64)
"""Set bits of each byte value."""


@dataclass(frozen=True, eq=False)
class Linear:
    """``x @ W + b`` on float features, or ``W[active].sum() + b`` on tile indices.

    Quantized: ``W`` int8/int16 and ``b`` int32 in units of ``scale`` (one float per
    output); tile sums are then exact integers, multiplied by ``scale`` at the end.
    """

    W: Array
    b: Array
    scale: Array | None = None
    kind: str = field(default="linear", init=False)

    def __post_init__(self) -> None:
        _f32(self, "scale")

    def apply(self, x: Array) -> Array:
        if self.scale is not None:
            if np.issubdtype(x.dtype, np.integer):
                acc = self.W[x].sum(axis=1, dtype=np.int32) + self.b  # exact: C does the same
                scaled: Array = acc.astype(np.float32) * self.scale
                return scaled
            return _dense(x, self.W.astype(np.float32) * self.scale,
                          self.b.astype(np.float32) * self.scale)  # fmt: skip
        if np.issubdtype(x.dtype, np.integer):
            summed: Array = self.W[x].sum(axis=1) + self.b
            return summed
        return _dense(x, self.W, self.b)


# --- int8 dense layers (integer-only, as TFLite Micro / gemmlowp) -----------------------

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
LUT_OUTPUT = {"tanh": (1.0 / 128, 0), "sigmoid": (1.0 / 256, -128)}
"""Output (scale, zero point) of an int8 tanh / sigmoid lookup table, as TFLite fixes them."""


def odd_half(lut: Array) -> Array | None:
    """The upper half ``lut[128:]`` of a 256-entry int8 table that is odd, or None.

    Odd: ``lut[128 - k] == -lut[128 + k]`` for k in 1..127, ``lut[128] == 0`` and
    ``lut[0] == -lut[255]`` (a tanh table whose input and output zero points are 0). Such a
    table is stored and exported as its 128 entries for inputs 0..127:
    :func:`odd_table` rebuilds it.
    """
    half = np.asarray(lut[128:])
    return half if np.array_equal(odd_table(half), lut) else None


def odd_table(half: Array) -> Array:
    """The 256-entry table (inputs -128..127) of an odd function from its entries for
    inputs 0..127; input -128 reads as -127 (``-half[127]``)."""
    h = np.asarray(half).astype(np.int16)
    out: Array = np.concatenate([-h[127:128], -h[:0:-1], h]).astype(np.int8)
    return out


def saturating_rounding_doubling_high_mul(a: Array, b: Array) -> Array:
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` on int32 values held in int64.

    ``(a * b + nudge) / 2**31`` with C's truncating division; the nudge is ``2**30`` for a
    non-negative product and ``1 - 2**30`` for a negative one.
    """
    ab = a.astype(np.int64) * b.astype(np.int64)
    t = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(t >= 0, t >> 31, -((-t) >> 31))  # truncates toward zero, as C's '/'
    out: Array = np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)
    return out


def rounding_divide_by_pot(x: Array, exponent: Array) -> Array:
    """gemmlowp's ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded half away from zero."""
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    out: Array = (x >> exponent) + (remainder > threshold)
    return out


def multiply_by_quantized_multiplier(x: Array, multiplier: Array, shift: Array) -> Array:
    """TFLite's ``MultiplyByQuantizedMultiplier``: ``x * multiplier * 2**(shift - 31)``, rounded.

    A left shift (``shift > 0``) saturates to int32 here and in the C export (TFLite leaves
    the overflow undefined).
    """
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = np.clip(x.astype(np.int64) << left, INT32_MIN, INT32_MAX)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def quantize_input(x: Array, scale: float, zero_point: int) -> Array:
    """Float32 values → int8: ``clamp(round(x / scale) + zero_point, -128, 127)``.

    ``x / scale`` is one float32 division; it is clamped to ±512 (NaN → -512) before the
    rounding, half away from zero (C's ``lroundf``). The C export does exactly this.
    """
    v = x.astype(np.float32) / np.float32(scale)
    v = np.minimum(np.where(v >= -512, v, np.float32(-512)), np.float32(512)).astype(np.float64)
    rounded = np.sign(v) * np.floor(np.abs(v) + 0.5)
    out: Array = np.clip(rounded + zero_point, -128, 127).astype(np.int8)
    return out


def dequantize(q: Array, scale: float, zero_point: int) -> Array:
    """int8 → float32: ``(q - zero_point) * scale`` in float32 (strictly increasing in q)."""
    out: Array = (q.astype(np.int32) - zero_point).astype(np.float32) * np.float32(scale)
    return out


@dataclass(frozen=True, eq=False)
class QDense:
    """One int8 dense layer, computed as TFLite Micro's per-channel fully connected op.

    ``acc[j] = sum_i (x[i] - input_zero_point) * W[i, j] + b[j]`` (int32), then
    ``y = clamp(multiply_by_quantized_multiplier(acc, multiplier[j], shift[j])
    + output_zero_point, lo, 127)`` with ``lo = output_zero_point`` for relu (folded into the
    clamp) and -128 otherwise; tanh / sigmoid then map ``y`` through ``lut[y + 128]``.

    ``W`` holds symmetric per-output-channel weights (``W_float ≈ W * w_scale[j]``), ``b`` the
    bias in units of ``input_scale * w_scale[j]``; ``multiplier``/``shift`` encode
    ``input_scale * w_scale[j] / output_scale``. ``output_scale``/``output_zero_point``
    describe the dense output (before a lookup table); :attr:`out_quant` is what the next
    layer receives: for tanh / sigmoid, the table's output ``lut_output`` (scale, zero
    point), calibrated on the activations seen; a policy written before that field
    existed has TFLite's fixed ones (:data:`LUT_OUTPUT`).

    ``float_output`` (the last layer of a policy whose head reads floats: argmax, clip,
    identity): no requantization to int8; the int32 accumulator is dequantized per channel,
    ``float32(acc[j]) * dequant_scale[j]`` with ``dequant_scale = float32(input_scale) *
    w_scale`` (float32), so the head sees every step of the accumulator, not 256 levels.
    ``multiplier``/``shift``/``output_*`` are then unused. An 8-bit output can flip an
    argmax between near-equal action values (Q-values differ by far less than their range).
    """

    W: Array
    b: Array
    w_scale: Array
    multiplier: Array
    shift: Array
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    activation: str = "identity"
    lut: Array | None = None
    float_output: bool = False
    lut_output: tuple[float, int] | None = None

    def __post_init__(self) -> None:
        _f32(self, "w_scale")
        object.__setattr__(self, "input_scale", float(np.float32(self.input_scale)))
        object.__setattr__(self, "output_scale", float(np.float32(self.output_scale)))
        if self.lut_output is not None:
            scale, zp = self.lut_output
            object.__setattr__(self, "lut_output", (float(np.float32(scale)), int(zp)))

    @property
    def dequant_scale(self) -> Array:
        """Per-channel float32 scale of the int32 accumulator (``float_output``)."""
        out: Array = np.float32(self.input_scale) * self.w_scale
        return out

    @property
    def out_quant(self) -> tuple[float, int]:
        """(scale, zero point) of the layer's int8 output, after any lookup table."""
        if self.activation in LUT_OUTPUT:
            scale, zp = self.lut_output or LUT_OUTPUT[self.activation]
            return float(np.float32(scale)), zp
        return self.output_scale, self.output_zero_point

    @property
    def clamp_low(self) -> int:
        return max(-128, self.output_zero_point) if self.activation == "relu" else -128

    def apply(self, x: Array) -> Array:
        """int8 [batch, in] → int8 [batch, out] (float32 with ``float_output``); int64
        arithmetic emulates C's int32 exactly."""
        acc = (x.astype(np.int64) - self.input_zero_point) @ self.W.astype(np.int64)
        acc = acc + self.b.astype(np.int64)
        if self.float_output:
            dequantized: Array = acc.astype(np.float32) * self.dequant_scale
            return dequantized
        y = multiply_by_quantized_multiplier(acc, self.multiplier.astype(np.int64),
                                             self.shift.astype(np.int64))  # fmt: skip
        y = np.clip(y + self.output_zero_point, self.clamp_low, 127)
        out: Array = y.astype(np.int8) if self.lut is None else self.lut[y + 128]
        return out


@dataclass(frozen=True, eq=False)
class QuantizedMLP:
    """An int8 MLP: float input quantized with the first layer's input scale, int8 layers,
    the last layer's int8 output dequantized to float32 for the head.

    With an int8 last layer, ``argmax`` of the dequantized output equals ``argmax`` of the
    int8 output (dequantizing is strictly increasing); a ``float_output`` last layer hands
    the head float32 values, as the C export does.
    """

    layers: tuple[QDense, ...]
    kind: str = field(default="mlp_int8", init=False)

    def apply_int(self, x: Array) -> Array:
        """Float32 body input → the last layer's output: int8, or float32 with
        ``float_output`` (dequantized int32 accumulators)."""
        first = self.layers[0]
        q = quantize_input(x, first.input_scale, first.input_zero_point)
        for layer in self.layers:
            q = layer.apply(q)
        return q

    def apply(self, x: Array) -> Array:
        y = self.apply_int(x)
        if self.layers[-1].float_output:
            return y
        return dequantize(y, *self.layers[-1].out_quant)


Body = MLP | QuantizedMLP | Table | PackedTable | Linear

# --- heads --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Head:
    """``argmax``, ``clip`` or ``tanh_rescale`` (both to [low, high]), or ``identity``."""

    kind: str
    low: Array | None = None
    high: Array | None = None
    half_span: Array = field(init=False, repr=False)
    mid: Array = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _f32(self, "low", "high")
        if self.low is not None and self.high is not None:
            # tanh_rescale as tanh(y) · half_span + mid, in float32 (the C export's order).
            half_span = (self.high - self.low) * np.float32(0.5)
            object.__setattr__(self, "half_span", half_span)
            object.__setattr__(self, "mid", self.low + half_span)

    def apply(self, y: Array) -> Array:
        # Written for speed on one observation (ufuncs in place; np.clip and
        # np.issubdtype cost microseconds on tiny arrays), with the same float32
        # operations, in the same order, as the C export.
        if self.kind == "argmax":
            best: Array = y.argmax(axis=-1).astype(np.int64, copy=False)
            return best
        if y.dtype.kind in "iu":  # action indices from a packed table
            return y.astype(np.int64, copy=False)
        low, high = self.low, self.high
        if self.kind == "identity" or low is None or high is None:
            return y.astype(np.float32, copy=False)
        if self.kind == "clip":
            clipped: Array = np.minimum(np.maximum(y, low), high, dtype=np.float32)
            return clipped
        squashed: Array = np.tanh(y, dtype=np.float32)  # tanh_rescale: [-1, 1] → [low, high]
        squashed *= self.half_span
        squashed += self.mid
        return squashed


HEADS = ("argmax", "clip", "tanh_rescale", "identity")

# --- the policy ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Policy:
    """Observation in, action out. ``provenance`` says where it came from."""

    observation_space: SpaceSpec
    action_space: SpaceSpec
    preprocess: tuple[Preprocess, ...]
    body: Body
    head: Head
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def act(self, obs: Any) -> Any:
        """Actions for one observation (→ int or float32 array) or a batch (→ array).

        A batch has one more leading dimension than the observation space.
        """
        x = np.asarray(obs)
        single = x.ndim == len(self.observation_space.shape)
        if single:
            x = x[None]
        for step in self.preprocess:
            x = step.apply(x)
        actions = self.head.apply(self.body.apply(x))
        if not single:
            return actions
        return int(actions[0]) if self.action_space.kind == "discrete" else actions[0]

    # Counting feeds plan and profile.

    def arrays(self) -> dict[str, Array]:
        """Every array by the name it has in ``policy.safetensors``."""
        from rlbudget.policy.io import to_document

        return to_document(self)[1]

    @property
    def parameters(self) -> int:
        """Learned numbers in the body (weights, biases, table entries; a packed table: one
        action per state, or, sparse, its stored actions plus the default; quantization
        scales are not counted; a W stored as CSR: its stored weights, not their
        positions)."""
        if isinstance(self.body, PackedTable):
            return self.body.entries + (self.body.stored is not None)
        return sum(
            v.size
            for k, v in self.arrays().items()
            if k.startswith("body.")
            and k.rsplit(".", 1)[1] not in (*QUANTIZATION_ARRAYS, *SPARSE_INDEX_ARRAYS)
        )

    def bytes_by_dtype(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for v in self.arrays().values():
            out[str(v.dtype)] = out.get(str(v.dtype), 0) + int(v.nbytes)
        return out

    @property
    def macs(self) -> int:
        """Multiply-accumulates per decision as the C export runs it (a table lookup: 0;
        tile-coded linear: adds; a float layer stored sparse, see
        :func:`~rlbudget.policy.io.sparse_weights`: its stored weights only)."""
        from rlbudget.policy.io import sparse_weights

        body = self.body
        if isinstance(body, QuantizedMLP):
            return sum(int(layer.W.size) for layer in body.layers)
        if isinstance(body, MLP):
            total = 0
            for layer in body.layers:
                csr = sparse_weights(layer.W)
                total += int(layer.W.size) if csr is None else len(csr["values"])
            return total
        if isinstance(body, Linear):
            tiles = next((p for p in self.preprocess if isinstance(p, TileCode)), None)
            outputs = int(body.W.shape[1])
            return tiles.tilings * outputs if tiles else int(body.W.size)
        return 0

    @property
    def buffer_bytes(self) -> int:
        """Working buffers for one decision: the largest pair of live activations (fp32: 4 B
        each, int8: 1 B)."""
        body = self.body
        if isinstance(body, MLP | QuantizedMLP):
            widths = [int(body.layers[0].W.shape[0])] + [int(la.W.shape[1]) for la in body.layers]
            width_bytes = 1 if isinstance(body, QuantizedMLP) else 4
            arena = width_bytes * max(a + b for a, b in pairwise(widths))
            if isinstance(body, QuantizedMLP) and body.layers[-1].float_output:
                arena += 4 * widths[-1]  # the dequantized float32 output
            return arena
        obs = 4 * self.observation_space.dim
        if isinstance(body, Linear):
            tiles = next((p for p in self.preprocess if isinstance(p, TileCode)), None)
            feats = 8 * tiles.tilings if tiles else 0
            return obs + feats + 4 * int(body.W.shape[1])
        if isinstance(body, PackedTable):
            return obs + 8
        return obs + 8 + 4 * int(body.values.shape[-1])

    def summary(self) -> dict[str, Any]:
        """Structure, sizes, MACs, spaces and provenance as JSON-ready data."""
        from rlbudget.policy.io import to_document

        doc, arrays = to_document(self)
        shapes = {k: list(v.shape) for k, v in arrays.items()}
        by_dtype = self.bytes_by_dtype()
        return {
            "observation_space": doc["observation_space"],
            "action_space": doc["action_space"],
            "preprocess": [p["kind"] for p in doc["preprocess"]],
            "body": self.body.kind,
            "head": self.head.kind,
            "arrays": shapes,
            "parameters": self.parameters,
            "bytes_by_dtype": by_dtype,
            "bytes": sum(by_dtype.values()),
            "macs": self.macs,
            "buffer_bytes": self.buffer_bytes,
            "provenance": dict(self.provenance),
        }
