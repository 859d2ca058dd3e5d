"""The framework-free policy: preprocess → body → head, numpy only.

Every stage of rlbudget speaks this one representation (DESIGN.md). A policy is
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
- body: ``mlp`` (dense layers ``x @ W + b`` then activation), ``table`` (values
  indexed by state: ``[states, actions]``), ``packed_table`` (a table's greedy actions,
  ``bits`` bits per state, see :class:`PackedTable`), ``linear`` (``x @ W + b`` on float
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
Array = NDArray[Any]


def _dense(x: Array, W: Array, b: Array) -> Array:
    """``x @ W + b`` with each row summed in the same order whatever the batch size.

    BLAS picks different kernels for one row and for many, so ``act(obs)`` and
    ``act(batch)[i]`` would differ in the last bit; einsum's own loop does not.
    """
    out: Array = np.einsum("bi,ij->bj", x.astype(np.float32), W) + b
    return out


def _activate(x: Array, name: str) -> Array:
    if name == "relu":
        return np.maximum(x, 0, dtype=x.dtype)
    if name == "tanh":
        return np.asarray(np.tanh(x))
    if name == "sigmoid":
        return (1.0 / (1.0 + np.exp(-x))).astype(x.dtype)
    return x


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
    """One dense layer: ``activation(x @ W + b)``, W of shape [inputs, outputs]."""

    W: Array
    b: Array
    activation: str = "identity"


@dataclass(frozen=True, eq=False)
class MLP:
    layers: tuple[Dense, ...]
    kind: str = field(default="mlp", init=False)

    def apply(self, x: Array) -> Array:
        for layer in self.layers:
            x = _activate(_dense(x, layer.W, layer.b), layer.activation)
        return x


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

    The action of state ``s`` is bits ``s*bits … s*bits + bits - 1`` of the byte stream
    ``packed`` read as one little-endian bit string: ``packed[s*bits // 8]`` holds its
    lowest bit at position ``s*bits % 8``. ``bits ≤ 8``, so one action spans at most two
    bytes. The body outputs the action index itself (head ``identity``).
    """

    packed: Array
    bits: int
    states: int
    kind: str = field(default="packed_table", init=False)

    def actions(self) -> Array:
        """Every state's action (unpacked), as int64."""
        bits = np.unpackbits(self.packed, bitorder="little")[: self.states * self.bits]
        weights = 1 << np.arange(self.bits, dtype=np.int64)
        out: Array = bits.reshape(self.states, self.bits).astype(np.int64) @ weights
        return out

    def apply(self, x: Array) -> Array:
        off = x.astype(np.int64) * self.bits
        padded = np.append(self.packed, np.uint8(0)).astype(np.int64)
        word = padded[off >> 3] | (padded[(off >> 3) + 1] << 8)
        out: Array = (word >> (off & 7)) & ((1 << self.bits) - 1)
        return out


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


Body = MLP | Table | PackedTable | Linear

# --- heads --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Head:
    """``argmax``, ``clip`` or ``tanh_rescale`` (both to [low, high]), or ``identity``."""

    kind: str
    low: Array | None = None
    high: Array | None = None

    def __post_init__(self) -> None:
        _f32(self, "low", "high")

    def apply(self, y: Array) -> Array:
        if self.kind == "argmax":
            best: Array = np.argmax(y, axis=-1).astype(np.int64)
            return best
        if np.issubdtype(y.dtype, np.integer):  # action indices from a packed table
            return y.astype(np.int64)
        if self.kind == "identity" or self.low is None or self.high is None:
            return y.astype(np.float32)
        if self.kind == "clip":
            return np.clip(y, self.low, self.high).astype(np.float32)
        squashed = (np.tanh(y) + 1.0) * 0.5  # tanh_rescale: [-1, 1] → [low, high]
        scaled: Array = (self.low + squashed * (self.high - self.low)).astype(np.float32)
        return scaled


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
        action per state; quantization scales are not counted)."""
        if isinstance(self.body, PackedTable):
            return self.body.states
        return sum(
            v.size for k, v in self.arrays().items() if k.startswith("body.") and k != "body.scale"
        )

    def bytes_by_dtype(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for v in self.arrays().values():
            out[str(v.dtype)] = out.get(str(v.dtype), 0) + int(v.nbytes)
        return out

    @property
    def macs(self) -> int:
        """Multiply-accumulates per decision (a table lookup: 0; tile-coded linear: adds)."""
        body = self.body
        if isinstance(body, MLP):
            return sum(int(layer.W.size) for layer in body.layers)
        if isinstance(body, Linear):
            tiles = next((p for p in self.preprocess if isinstance(p, TileCode)), None)
            outputs = int(body.W.shape[1])
            return tiles.tilings * outputs if tiles else int(body.W.size)
        return 0

    @property
    def buffer_bytes(self) -> int:
        """Working buffers for one decision in fp32: the largest pair of live activations."""
        body = self.body
        if isinstance(body, MLP):
            widths = [int(body.layers[0].W.shape[0])] + [int(la.W.shape[1]) for la in body.layers]
            return 4 * max(a + b for a, b in pairwise(widths))
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
