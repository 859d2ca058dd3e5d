"""The preprocess steps of a policy (``normalize``, ``discretize``, ``tile_code``,
``one_hot``), numpy only; :mod:`rlbudget.policy.model` imports them from here.

The discretizer and the tile coder compute in float32 with the operation order of the C
export (:mod:`rlbudget.export.c`), so the two agree bit for bit, and no core needs a
``double``: per dimension one subtraction and one multiplication by a float32 scale
computed once (no divide), then integers only::

    u    = (x - low) * scale          # float32, each operation rounded to float32
    cell = clip(floor(u), 0, top)     # NaN → 0

A discretizer's ``scale`` is ``bins / (high - low)`` and ``top`` is ``bins - 1``: the bin is
``cell``. A tile coder's ``scale`` is ``tilings * tiles_per_dim / (high - low)`` (``u`` counts
``1 / tilings`` of a tile) and ``top`` is ``tilings * tiles_per_dim``; the tile of tiling ``t``
(offset by ``t / tilings`` of a tile) is ``(cell + t) // tilings``. That equals
``clip(floor((x - low) / width + t / tilings), 0, tiles_per_dim)`` for real numbers, since
``floor((u + t) / T) = floor((floor(u) + t) / T)`` for whole ``t ≥ 0`` and ``T > 0``, and
clipping ``floor(u)`` to ``[0, T * tiles_per_dim]`` first clips every tile to
``[0, tiles_per_dim]``. Only the rounding differs from the float64 formula of earlier
versions (``(x - low) / width``): an observation within about one float32 step of a tile or
bin boundary may fall on its other side. ``x == high`` is such a boundary (a normalize clip
puts observations there often): it lands in the last cell, or one below where the rounded
scale makes ``(high - low) * scale`` fall short of ``top``, as the float64 formula also did
(more often). ``scale`` is computed from the stored ``low``,
``high`` and counts, so ``policy.json`` is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rlbudget.policy.kernels import Array, Document, document, float32_fields


def grid_cells(x: Array, low: Array, scale: Array, top: Array) -> Array:
    """``clip(floor((x - low) * scale), 0, top)`` per dimension as int64, the arithmetic in
    float32 (NaN → 0), exactly as the C export: ``[batch, dims]`` in, ``[batch, dims]`` out.

    ``top`` (whole numbers) is compared as float32 first and as an integer after, so a
    ``top`` that float32 cannot hold exactly still bounds the cell.
    """
    top = np.asarray(top, dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN are clipped below
        u = (x.astype(np.float32) - low) * scale
        limit = top.astype(np.float32)
        cell = np.where(u >= limit, limit, np.where(u >= 0, u, np.float32(0)))
    return np.minimum(cell.astype(np.int64), top)  # truncation: floor, cell ≥ 0


@dataclass(frozen=True, eq=False)
class Normalize:
    """VecNormalize's observation transform."""

    mean: Array
    var: Array
    clip: float = 10.0
    eps: float = 1e-8
    kind: str = field(default="normalize", init=False)

    def __post_init__(self) -> None:
        float32_fields(self, "mean", "var")

    def document(self, prefix: str) -> Document:
        return document(prefix, {"kind": self.kind, "clip": self.clip, "eps": self.eps},
                        {"mean": self.mean, "var": self.var})  # fmt: skip

    def apply(self, x: Array) -> Array:
        z = (x.astype(np.float32) - self.mean) / np.sqrt(self.var + np.float32(self.eps))
        out: Array = np.clip(z, -self.clip, self.clip).astype(np.float32)
        return out


@dataclass(frozen=True, eq=False)
class Discretize:
    """Uniform bins per dimension over [low, high] (values outside go to the end bins)."""

    low: Array
    high: Array
    bins: tuple[int, ...]
    kind: str = field(default="discretize", init=False)

    def __post_init__(self) -> None:
        float32_fields(self, "low", "high")

    @property
    def states(self) -> int:
        return int(np.prod(self.bins))

    @property
    def scale(self) -> Array:
        """``bins / (high - low)`` in float32: bins per unit of the observation."""
        with np.errstate(over="ignore", divide="ignore"):
            out: Array = np.asarray(self.bins, dtype=np.float32) / (self.high - self.low)
        return out

    def document(self, prefix: str) -> Document:
        return document(prefix, {"kind": self.kind, "bins": list(self.bins)},
                        {"low": self.low, "high": self.high})  # fmt: skip

    def apply(self, x: Array) -> Array:
        idx = grid_cells(x, self.low, self.scale, np.asarray(self.bins) - 1)
        state: Array = np.ravel_multi_index(tuple(idx.T), self.bins).astype(np.int64)
        return state


@dataclass(frozen=True, eq=False)
class TileCode:
    """``tilings`` grids, each offset by ``t / tilings`` of a tile, over [low, high].

    Feature index of tiling ``t``: ``t * per_tiling + cell`` where ``cell`` is the
    row-major index of the tile among ``(tiles_per_dim + 1) ** dims``; with
    ``hash_size`` the index is taken modulo it after mixing with a fixed odd
    multiplier (deterministic, the same in the C export). The arithmetic: the module's
    docstring.
    """

    low: Array
    high: Array
    tilings: int
    tiles_per_dim: int
    hash_size: int | None = None
    kind: str = field(default="tile_code", init=False)

    def __post_init__(self) -> None:
        float32_fields(self, "low", "high")

    @property
    def per_tiling(self) -> int:
        return int((self.tiles_per_dim + 1) ** len(self.low))

    @property
    def features(self) -> int:
        return self.hash_size or self.tilings * self.per_tiling

    @property
    def top(self) -> int:
        """The largest cell, in ``1 / tilings`` of a tile: ``tilings * tiles_per_dim``."""
        return self.tilings * self.tiles_per_dim

    @property
    def scale(self) -> Array:
        """``tilings * tiles_per_dim / (high - low)`` in float32: ``1 / tilings`` of a tile
        per unit of the observation."""
        with np.errstate(over="ignore", divide="ignore"):
            out: Array = np.float32(self.top) / (self.high - self.low)
        return out

    def document(self, prefix: str) -> Document:
        fields = {"kind": self.kind, "tilings": self.tilings,
                  "tiles_per_dim": self.tiles_per_dim, "hash_size": self.hash_size}  # fmt: skip
        return document(prefix, fields, {"low": self.low, "high": self.high})

    def apply(self, x: Array) -> Array:
        cells = grid_cells(x, self.low, self.scale, np.full(len(self.low), self.top))
        shape = (self.tiles_per_dim + 1,) * len(self.low)
        out = np.empty((x.shape[0], self.tilings), dtype=np.int64)
        for t in range(self.tilings):
            tile = (cells + t) // self.tilings  # [batch, dims], each in 0..tiles_per_dim
            out[:, t] = t * self.per_tiling + np.ravel_multi_index(tuple(tile.T), shape)
        if self.hash_size:
            out = (out * 2654435761) % (2**32) % self.hash_size
        return out


@dataclass(frozen=True, eq=False)
class OneHot:
    """Discrete observation → float32 one-hot vector of length ``n``."""

    n: int
    kind: str = field(default="one_hot", init=False)

    def document(self, prefix: str) -> Document:
        return {"kind": self.kind, "n": self.n}, {}

    def apply(self, x: Array) -> Array:
        return np.eye(self.n, dtype=np.float32)[x.astype(np.int64)]


Preprocess = Normalize | Discretize | TileCode | OneHot
