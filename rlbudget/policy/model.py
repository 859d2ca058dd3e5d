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
  vector); they live in :mod:`rlbudget.policy.preprocess` (float32 arithmetic, as the C export).
- body: ``mlp`` (dense layers ``x @ W + b`` then activation), ``mlp_int8`` (the same with
  int8 weights and activations, integer-only as TFLite Micro: :class:`QuantizedMLP`),
  ``cnn`` / ``cnn_int8`` (convolutions and pooling over an image, then an ``mlp`` /
  ``mlp_int8``: :mod:`rlbudget.policy.conv`),
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
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

import numpy as np

from rlbudget.envs import SpaceSpec
from rlbudget.policy.cascade import Cascade
from rlbudget.policy.conv import CNN, Conv
from rlbudget.policy.int8 import (
    INT32_MAX,
    INT32_MIN,
    LUT_OUTPUT,
    REQUANTIZE,
    QDense,
    QuantizedMLP,
    dequantize,
    multiply_by_quantized_multiplier,
    odd_half,
    odd_table,
    quantize_input,
    rounded_high_mul,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)
from rlbudget.policy.kernels import (
    ACTIVATIONS,
    QUANTIZATION_ARRAYS,
    SPARSE_INDEX_ARRAYS,
    Array,
    Document,
    activate,
    activate_in_place,
    affine,
    document,
    float32_fields,
    stored_weight_count,
    stored_weights,
)
from rlbudget.policy.preprocess import Discretize, Normalize, OneHot, Preprocess, TileCode

# The int8 body and the shared array names live in their own modules; the policy's
# users import every part from here.
__all__ = [
    "ACTIVATIONS",
    "CNN",
    "HEADS",
    "INT32_MAX",
    "INT32_MIN",
    "LUT_OUTPUT",
    "MLP",
    "QUANTIZATION_ARRAYS",
    "REQUANTIZE",
    "SPARSE_INDEX_ARRAYS",
    "Array",
    "Body",
    "Cascade",
    "Conv",
    "Dense",
    "Discretize",
    "Head",
    "Linear",
    "Normalize",
    "OneHot",
    "PackedTable",
    "Policy",
    "Preprocess",
    "QDense",
    "QuantizedMLP",
    "Table",
    "TileCode",
    "dequantize",
    "multiply_by_quantized_multiplier",
    "odd_half",
    "odd_table",
    "quantize_input",
    "rounded_high_mul",
    "rounding_divide_by_pot",
    "saturating_rounding_doubling_high_mul"
]  # fmt: skip

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

    @property
    def parameters(self) -> int:
        """Weights (stored ones, for a CSR layer) and biases."""
        return sum(stored_weight_count(la.W) + int(la.b.size) for la in self.layers)

    def macs(self) -> int:
        """Multiply-accumulates per decision as the C export runs it: a layer stored as CSR
        (:func:`~rlbudget.policy.kernels.sparse_weights`) only its stored weights."""
        return sum(stored_weight_count(la.W) for la in self.layers)

    def document(self, prefix: str) -> Document:
        arrays: dict[str, Array] = {}
        layers = []
        for i, la in enumerate(self.layers):
            W, w_arrays = stored_weights(f"{prefix}.{i}.W", la.W)
            arrays.update(w_arrays)
            arrays[f"{prefix}.{i}.b"] = la.b
            layers.append({"activation": la.activation, "W": W, "b": f"{prefix}.{i}.b"})
        return {"kind": self.kind, "layers": layers}, arrays

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
                activate_in_place(y, layer.activation)
            out: Array = y[None]
            return out
        for layer in self.layers:
            x = activate(affine(x, layer.W, layer.b), layer.activation)
        return x

    def _apply_half(self, x: Array) -> Array:
        """float16 weights (see the class docstring); one path for any batch size."""
        y = x.astype(np.float16).astype(np.float32)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            z = affine(y, layer.W.astype(np.float32), layer.b.astype(np.float32))
            y = activate(z, layer.activation)
            if i < last:
                y = y.astype(np.float16).astype(np.float32)
        return y


@dataclass(frozen=True, eq=False)
class Table:
    """Values per (state, action): ``values[state]`` gives the action values."""

    values: Array
    kind: str = field(default="table", init=False)

    @property
    def parameters(self) -> int:
        return int(self.values.size)

    def macs(self) -> int:
        return 0  # a lookup

    def document(self, prefix: str) -> Document:
        return document(prefix, {"kind": self.kind}, {"values": self.values})

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

    @property
    def parameters(self) -> int:
        """One action per state, or (sparse) the stored actions plus the default."""
        return self.entries + (self.stored is not None)

    def macs(self) -> int:
        return 0  # a lookup

    def document(self, prefix: str) -> Document:
        fields: dict[str, Any] = {"kind": self.kind, "bits": self.bits, "states": self.states}
        if self.stored is None or self.rank is None:
            return document(prefix, fields, {"packed": self.packed})
        entry, arrays = document(prefix, fields, {"packed": self.packed, "stored": self.stored,
                                                  "rank": self.rank})  # fmt: skip
        return {**entry, "default": self.default}, arrays

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
        float32_fields(self, "scale")

    @property
    def parameters(self) -> int:
        """Weights and biases (the quantization ``scale`` not)."""
        return int(self.W.size + self.b.size)

    def macs(self, tilings: int | None = None) -> int:
        """Multiply-accumulates per decision; on tile indices (``tilings`` active
        features), one add per tiling and output."""
        return tilings * int(self.W.shape[1]) if tilings else int(self.W.size)

    def document(self, prefix: str) -> Document:
        return document(prefix, {"kind": self.kind},
                        {"W": self.W, "b": self.b, "scale": self.scale})  # fmt: skip

    def apply(self, x: Array) -> Array:
        if self.scale is not None:
            if np.issubdtype(x.dtype, np.integer):
                acc = self.W[x].sum(axis=1, dtype=np.int32) + self.b  # exact: C does the same
                scaled: Array = acc.astype(np.float32) * self.scale
                return scaled
            return affine(x, self.W.astype(np.float32) * self.scale,
                          self.b.astype(np.float32) * self.scale)  # fmt: skip
        if np.issubdtype(x.dtype, np.integer):
            summed: Array = self.W[x].sum(axis=1) + self.b
            return summed
        return affine(x, self.W, self.b)


Body = MLP | QuantizedMLP | Table | PackedTable | Linear | Cascade | CNN

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
        float32_fields(self, "low", "high")
        if self.low is not None and self.high is not None:
            # tanh_rescale as tanh(y) · half_span + mid, in float32 (the C export's order).
            half_span = (self.high - self.low) * np.float32(0.5)
            object.__setattr__(self, "half_span", half_span)
            object.__setattr__(self, "mid", self.low + half_span)

    def document(self, prefix: str) -> Document:
        bounds = {"low": self.low, "high": self.high}
        given = self.low is not None and self.high is not None
        return document(prefix, {"kind": self.kind}, bounds if given else {})

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

    # Counting feeds plan and profile; each part knows its own arrays and counts.

    def parts(self) -> list[tuple[str, Preprocess | Body | Head]]:
        """The parts in order, each with the prefix of its array names."""
        return [*((f"preprocess.{i}", p) for i, p in enumerate(self.preprocess)),
                ("body", self.body), ("head", self.head)]  # fmt: skip

    def arrays(self) -> dict[str, Array]:
        """Every array by the name it has in ``policy.safetensors``."""
        named = (part.document(prefix)[1] for prefix, part in self.parts())
        return {name: np.ascontiguousarray(a) for arrays in named for name, a in arrays.items()}

    @property
    def parameters(self) -> int:
        """Learned numbers in the body (weights, biases, table entries; a packed table: one
        action per state, or, sparse, its stored actions plus the default; quantization
        scales are not counted; a W stored as CSR: its stored weights, not their
        positions)."""
        return self.body.parameters

    def bytes_by_dtype(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for v in self.arrays().values():
            out[str(v.dtype)] = out.get(str(v.dtype), 0) + int(v.nbytes)
        return out

    @property
    def macs(self) -> int:
        """Multiply-accumulates per decision as the C export runs it (a table lookup: 0;
        tile-coded linear: adds; a float layer stored sparse, see
        :func:`~rlbudget.policy.kernels.sparse_weights`: its stored weights only)."""
        if isinstance(self.body, Linear):
            return self.body.macs(self._tilings())
        return self.body.macs()

    def _tilings(self) -> int | None:
        """Active features of a tile-coding preprocess (one per tiling), else None."""
        tiles = next((p for p in self.preprocess if isinstance(p, TileCode)), None)
        return tiles.tilings if tiles else None

    @property
    def buffer_bytes(self) -> int:
        """Working buffers for one decision: the largest pair of live activations (fp32: 4 B
        each, int8: 1 B)."""
        body = self.body
        if isinstance(body, CNN):
            return body.buffer_bytes()
        if isinstance(body, Cascade):  # one body at a time, then the chosen output
            parts = [replace(self, body=b).buffer_bytes for b in (*body.small, body.full)]
            return max(parts) + 4 * int(body.small[0].layers[-1].W.shape[1]) * len(body.small)
        if isinstance(body, MLP | QuantizedMLP):
            widths = [int(body.layers[0].W.shape[0])] + [int(la.W.shape[1]) for la in body.layers]
            width_bytes = 1 if isinstance(body, QuantizedMLP) else 4
            arena = width_bytes * max(a + b for a, b in pairwise(widths))
            if isinstance(body, QuantizedMLP) and body.layers[-1].float_output:
                arena += 4 * widths[-1]  # the dequantized float32 output
            return arena
        obs = 4 * self.observation_space.dim
        if isinstance(body, Linear):
            return obs + 8 * (self._tilings() or 0) + 4 * int(body.W.shape[1])
        if isinstance(body, PackedTable):
            return obs + 8
        return obs + 8 + 4 * int(body.values.shape[-1])

    def summary(self) -> dict[str, Any]:
        """Structure, sizes, MACs, spaces and provenance as JSON-ready data."""
        by_dtype = self.bytes_by_dtype()
        return {
            "observation_space": self.observation_space.to_dict(),
            "action_space": self.action_space.to_dict(),
            "preprocess": [p.kind for p in self.preprocess],
            "body": self.body.kind,
            "head": self.head.kind,
            "arrays": {k: list(v.shape) for k, v in self.arrays().items()},
            "parameters": self.parameters,
            "bytes_by_dtype": by_dtype,
            "bytes": sum(by_dtype.values()),
            "macs": self.macs,
            "buffer_bytes": self.buffer_bytes,
            "provenance": dict(self.provenance),
        }
