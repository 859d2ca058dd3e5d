"""Replay memory: what one transition costs, how many fit in ``training.ram``, and a
compact buffer that stores them in less.

**Storage** (:class:`Storage`, the hyperparameters ``replay_storage`` and
``replay_compress``, or the budget's ``training.replay``):

- ``float32`` (default): Stable-Baselines3's own ``ReplayBuffer``, unchanged (observations
  in the space's dtype, float32 actions, rewards, dones and timeouts). SB3's
  ``optimize_memory_usage=true`` drops next_observations there; SB3 refuses it together
  with ``handle_timeout_termination``, so rlbudget turns that off (a time-limit truncation
  then counts as a termination: the bias SB3's docs warn of).
- ``float16``: observations and Box actions as IEEE half floats (rounding error ≤ 2⁻¹¹
  relative; an observation beyond ±65504 is stored as ±65504, not inf); rewards stay
  float32; done and timeout flags one byte each.
- ``uint8``: each observation dimension quantized to 256 levels between the space's bounds
  (``x ≈ low + q × scale``, ``scale = (high − low) / 255``, error ≤ scale / 2); refused for an
  unbounded dimension. Box actions as float16, rewards float32, flags one byte.
- ``replay_compress=zstd|lz4`` (any storage; needs ``pip install 'rlbudget[replay]'``):
  transitions are stored in chunks of :data:`CHUNK` rows; a full chunk is byte-shuffled and
  compressed as one block, every field of it (obs, next_obs, action, reward, flags). Inside
  a chunk, next_obs is the next row's obs shifted by one row, so the compressor stores it
  almost for free, and a time-limit truncation keeps its true next observation (what SB3's
  ``optimize_memory_usage`` cannot). Sampling decompresses the chunks a batch touches.

**Size** (:func:`transition_bytes`, :func:`replay_buffer`): the bytes of each part of a
transition for a storage, and the capacity that fits in 90 % of ``training.ram / (1 +
margin)`` after the rest of the training process (:func:`rlbudget.costs.training_ram_bytes`:
the library's baseline, weights, gradients, Adam moments). The planner, ``rlbudget train``
(SB3 and lean-sac/lean-td3) use these two functions. A compressed transition's size
depends on the data; the estimate assumes next_obs and the flags compress to nothing and
the rest not at all, and the buffer also holds a byte cap (the same room): past it, it
drops its oldest chunks, so RAM stays bounded whatever the data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from rlbudget import units
from rlbudget.envs import SpaceSpec
from rlbudget.errors import PlanError, TrainingError

STORAGES = ("float32", "float16", "uint8")
COMPRESSORS = ("none", "zstd", "lz4")
PACKAGES = {"zstd": "zstandard", "lz4": "lz4"}
CHUNK = 64  # rows per compressed chunk (Pendulum float16: 1.3 KB; benchmarks/replay_memory.py)
F16_MAX = float(np.finfo(np.float16).max)  # 65504: beyond it float16 would store inf
ROOM = 0.9  # share of the RAM left after the process that the buffer may take


@dataclass(frozen=True)
class Storage:
    """How a replay buffer stores transitions (see the module docstring)."""

    dtype: str = "float32"
    compress: str = "none"
    optimize_memory_usage: bool = False  # SB3's own trick, float32 without compression only

    @property
    def compact(self) -> bool:
        """Whether rlbudget's :class:`CompactReplay` holds it (else SB3's ReplayBuffer)."""
        return self.dtype != "float32" or self.compress != "none"

    @property
    def label(self) -> str:
        extra = "" if self.compress == "none" else f"+{self.compress}"
        return f"{self.dtype}{extra}" + (" (optimize_memory_usage)" * self.optimize_memory_usage)

    @classmethod
    def parse(cls, text: str, where: str = "training.replay") -> Storage:
        """``"float16+zstd"`` → Storage("float16", "zstd").

        >>> Storage.parse("uint8+lz4")
        Storage(dtype='uint8', compress='lz4', optimize_memory_usage=False)

        :raises PlanError: one line naming ``where`` and the values it takes.
        """
        dtype, plus, compress = str(text).partition("+")
        if plus and not compress:
            raise PlanError(f"{where}: {text!r} names no compression after '+'; write "
                            f"{dtype}+zstd, {dtype}+lz4 or {dtype}")  # fmt: skip
        return cls.of(dtype, compress or "none", False, where)

    @classmethod
    def of(cls, dtype: Any, compress: Any, optimize: Any, where: str) -> Storage:
        """Checked values. :raises PlanError: a value it does not take, named."""
        if dtype not in STORAGES:
            raise PlanError(f"{where}: replay storage {dtype!r} is not one rlbudget takes; "
                            f"write {', '.join(STORAGES)}")  # fmt: skip
        if compress not in COMPRESSORS:
            raise PlanError(f"{where}: replay compression {compress!r} is not one rlbudget "
                            f"takes; write {', '.join(COMPRESSORS)}")  # fmt: skip
        storage = cls(str(dtype), str(compress), bool(optimize))
        if storage.optimize_memory_usage and storage.compact:
            raise PlanError(
                f"{where}: optimize_memory_usage is SB3's float32 buffer's trick; with "
                f"replay_storage={dtype}, replay_compress={compress} drop it (compression "
                "already shares next_obs with the next row, and keeps time-limit truncations)"
            )
        return storage

    def check(self, obs: SpaceSpec, where: str) -> None:
        """Refuse what this storage cannot hold: Discrete observations (compact storage),
        unbounded ones (uint8). :raises PlanError: one line naming ``where``."""
        if self.compact and obs.kind != "box":
            raise PlanError(f"replay_storage={self.dtype}, replay_compress={self.compress}: "
                            f"{where} has Discrete observations (one index each, nothing to "
                            "compact); use replay_storage=float32")  # fmt: skip
        if self.dtype == "uint8" and obs.dtype != "uint8":
            quantizer(obs, where)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], default: Storage | None = None) -> Storage:
        """The storage a run's hyperparameters ask for (``replay_storage``,
        ``replay_compress``, ``optimize_memory_usage``), each defaulting to ``default``'s."""
        base = default or cls()
        return cls.of(params.get("replay_storage", base.dtype),
                      params.get("replay_compress", base.compress),
                      params.get("optimize_memory_usage", base.optimize_memory_usage),
                      "hyperparameters")  # fmt: skip


# --- what a transition costs --------------------------------------------------------------


@dataclass(frozen=True)
class TransitionBytes:
    """Bytes of each part of one stored transition (``parts``), uncompressed
    (``stored``) and as estimated in memory (``estimate``: after compression)."""

    parts: dict[str, int]
    estimate: float

    @property
    def stored(self) -> int:
        return sum(self.parts.values())

    def describe(self) -> str:
        shown = ", ".join(f"{k} {v}" for k, v in self.parts.items())
        return f"{shown} B"


def _obs_bytes(obs: SpaceSpec, storage: Storage) -> int:
    if obs.kind != "box":
        return 8  # one int64 index (SB3); compact storage refuses Discrete observations
    if obs.dtype == "uint8" or not storage.compact:
        return obs.dim * int(np.dtype(obs.dtype).itemsize)
    return obs.dim * {"float32": 4, "float16": 2, "uint8": 1}[storage.dtype]


def _action_bytes(act: SpaceSpec, storage: Storage) -> int:
    if act.kind != "box":
        return 8 if not storage.compact else int(np.dtype(_index_dtype(act.n or 2)).itemsize)
    return act.dim * (4 if storage.dtype == "float32" else 2)


def _index_dtype(n: int) -> np.dtype[Any]:
    return np.dtype(np.min_scalar_type(max(n - 1, 0)))


def transition_bytes(
    obs: SpaceSpec, act: SpaceSpec, storage: Storage | None = None
) -> TransitionBytes:
    """What one transition costs in a buffer of ``storage`` (default: SB3's float32).

    >>> from rlbudget.envs import SpaceSpec
    >>> pendulum = SpaceSpec("box", (3,), None, (-1.0, -1.0, -8.0), (1.0, 1.0, 8.0), "float32")
    >>> torque = SpaceSpec("box", (1,), None, (-2.0,), (2.0,), "float32")
    >>> transition_bytes(pendulum, torque).stored  # SB3: 2 × 3 × 4 + 4 + 3 × 4
    40
    >>> b = transition_bytes(pendulum, torque, Storage("float16", "zstd"))
    >>> b.stored, b.estimate  # 2 × 3 × 2 + 2 + 4 + 1 + 1; zstd: obs + action + reward
    (20, 12.0)
    """
    storage = storage or Storage()
    o = _obs_bytes(obs, storage)
    flag = 1 if storage.compact else 4
    parts = {"obs": o, "next_obs": 0 if storage.optimize_memory_usage else o,
             "action": _action_bytes(act, storage), "reward": 4, "done": flag,
             "timeout": flag}  # fmt: skip
    estimate = float(sum(parts.values()))
    if storage.compress != "none":  # next_obs is the next row's obs; the flags mostly 0
        estimate -= parts["next_obs"] + parts["done"] + parts["timeout"]
    return TransitionBytes(parts, estimate)


@dataclass(frozen=True)
class Replay:
    """A replay buffer's size, and the [replay-ram] sentence that explains it."""

    capacity: int
    bytes_per_transition: int  # as estimated in memory (rounded up)
    note: str
    storage: Storage = Storage()
    max_bytes: int | None = None  # the compact buffer's byte cap (None: no training.ram)

    @property
    def bytes(self) -> int:
        return self.capacity * self.bytes_per_transition


def replay_buffer(
    wanted: int,
    steps: int,
    obs: SpaceSpec,
    act: SpaceSpec,
    *,
    other_ram_bytes: int,
    ram_bytes: int | None,
    margin: float,
    storage: Storage | None = None,
) -> Replay:
    """The replay capacity for a run of ``steps`` env steps: the tuned ``buffer_size``
    (``wanted``), at most ``steps`` (SB3's 1M default would mostly sit empty), and at most
    what fits in 90 % of ``training.ram / (1 + margin)`` after ``other_ram_bytes`` (the
    process, weights and optimizer state), at ``storage``'s bytes per transition. The
    planner and ``rlbudget train`` both use it.
    """
    storage = storage or Storage()
    cost = transition_bytes(obs, act, storage)
    per = max(1, math.ceil(cost.estimate))
    how = f"{per} B ({storage.label}: {cost.describe()}"
    how += f", ≈{per} B compressed)" if storage.compress != "none" else ")"
    capacity = min(wanted, max(steps, 1))
    if ram_bytes is None:
        return Replay(capacity, per, (
            f"[replay-ram] replay buffer {units.format_count(capacity)} transitions × {how} "
            f"= {units.format_bytes(capacity * per)}; set training.ram to bound it"
        ), storage)  # fmt: skip
    room = max(int((ram_bytes / (1 + margin) - other_ram_bytes) * ROOM), 0)
    by_ram = room // per
    if by_ram < capacity:
        compact = Storage("float16", "zstd")
        hint = ""
        if storage != compact:
            more = room // max(1, math.ceil(transition_bytes(obs, act, compact).estimate))
            hint = f"; training.replay: float16+zstd would fit ≈{units.format_count(more)}"
        return Replay(by_ram, per, (
            f"[replay-ram] {units.format_count(by_ram)} transitions fit in training.ram "
            f"({units.format_bytes(ram_bytes)}) with the margin: replay buffer capped there, "
            f"× {how} = {units.format_bytes(by_ram * per)}{hint}"
        ), storage, room)  # fmt: skip
    return Replay(capacity, per, (
        f"[replay-ram] replay buffer {units.format_count(capacity)} transitions × {how} = "
        f"{units.format_bytes(capacity * per)}; {units.format_count(by_ram)} would fit in "
        "training.ram"
    ), storage, room)  # fmt: skip


# --- the compact buffer -------------------------------------------------------------------


class Batch(NamedTuple):
    """Sampled transitions as float32 arrays ([batch, …]; Discrete actions as int64)."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray  # [batch]
    next_obs: np.ndarray
    done: np.ndarray  # [batch], 0/1
    timeout: np.ndarray  # [batch], 0/1


def codec(name: str) -> tuple[Any, Any]:
    """(compress, decompress) functions of ``name``; one line naming the extra if its
    package is missing."""
    try:
        if name == "zstd":
            import zstandard

            c, d = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()
            return c.compress, d.decompress
        import lz4.block  # type: ignore[import-untyped]

        return (lambda b: lz4.block.compress(b, store_size=True)), lz4.block.decompress
    except ImportError:
        raise PlanError(f"replay_compress={name} needs the {PACKAGES[name]} package: pip install "
                        "'rlbudget[replay]' (or replay_compress=none)") from None  # fmt: skip


class CompactReplay:
    """A ring buffer of transitions in :class:`Storage`'s form (numpy only).

    Transitions are numbered as they come; the buffer holds the newest ``capacity`` of them
    (compressed: whole chunks, and no more than ``max_bytes``). :meth:`gather` returns the
    ones at positions ``0 … size − 1`` (oldest first) as float32. One transition is one
    packed record (numpy structured dtype, :attr:`row_bytes` bytes); a compressed chunk is
    its records' bytes transposed (byte ``j`` of every row together, as blosc's shuffle),
    so next_obs's bytes repeat obs's one row later and the compressor finds them.
    """

    def __init__(self, obs: SpaceSpec, act: SpaceSpec, capacity: int, storage: Storage,
                 max_bytes: int | None = None, where: str = "the env") -> None:  # fmt: skip
        storage.check(obs, where)
        self.storage, self.capacity, self.max_bytes = storage, max(1, int(capacity)), max_bytes
        self.obs_shape, self.obs_dim = obs.shape, obs.dim
        self.discrete = act.kind != "box"
        self.act_dim = 1 if self.discrete else act.dim
        self.low = self.inv_scale = self.scale = None
        obs_dtype: Any = np.float32 if storage.dtype == "float32" else np.float16
        if obs.dtype == "uint8":  # pixels: already one byte
            obs_dtype = np.uint8
        elif storage.dtype == "uint8":
            self.low, self.scale = quantizer(obs, where)
            self.inv_scale = np.where(self.scale > 0, 1.0 / np.maximum(self.scale, 1e-30), 0.0)
            obs_dtype = np.uint8
        act_dtype: Any = np.float32 if storage.dtype == "float32" else np.float16
        if self.discrete:
            act_dtype = _index_dtype(act.n or 2)
        self.record = np.dtype([("obs", obs_dtype, (self.obs_dim,)),
                                ("next_obs", obs_dtype, (self.obs_dim,)),
                                ("action", act_dtype, (self.act_dim,)), ("reward", np.float32),
                                ("done", np.uint8), ("timeout", np.uint8)])  # fmt: skip
        self.total = 0  # transitions ever added
        self.oldest = 0  # number of the oldest one held
        self.compressed = storage.compress != "none"
        self.blobs: dict[int, bytes] = {}
        self.blob_bytes = 0
        if self.compressed:
            self.chunk = max(1, min(CHUNK, self.capacity // 8))
            self.compress, self.decompress = codec(storage.compress)
        else:
            self.chunk = self.capacity
        self.rows = np.zeros(self.chunk, self.record)  # the ring, or the chunk being filled

    @property
    def size(self) -> int:
        return self.total - self.oldest

    @property
    def row_bytes(self) -> int:
        return self.record.itemsize

    @property
    def nbytes(self) -> int:
        """Bytes the stored transitions take: the records' array and the compressed chunks."""
        return self.rows.nbytes + self.blob_bytes

    # -- adding ------------------------------------------------------------------------

    def _encode_obs(self, x: Any) -> np.ndarray:
        flat: np.ndarray = np.asarray(x, np.float32).reshape(-1, self.obs_dim)
        if self.inv_scale is None:
            if self.record["obs"].base == np.float16:  # saturate (a copy), as uint8 does
                saturated: np.ndarray = np.clip(flat, -F16_MAX, F16_MAX)
                return saturated
            return flat
        q: np.ndarray = np.rint((flat - self.low) * self.inv_scale)
        return np.clip(q, 0, 255, out=q)

    def add(self, obs: Any, next_obs: Any, action: Any, reward: Any, done: Any,
            timeout: Any) -> None:  # fmt: skip
        """Add transitions: one, or a batch (leading dimension: envs)."""
        o, o2 = self._encode_obs(obs), self._encode_obs(next_obs)
        n = len(o)
        action = np.asarray(action).reshape(n, self.act_dim)
        reward, done, timeout = (np.asarray(v).reshape(n) for v in (reward, done, timeout))
        for i in range(n):
            self._make_room()
            self.rows[self.total % self.chunk] = (o[i], o2[i], action[i], reward[i], done[i],
                                                  timeout[i])  # fmt: skip
            self.total += 1
            if self.compressed and self.total % self.chunk == 0:
                self._seal(self.total // self.chunk - 1)

    def _make_room(self) -> None:
        if not self.compressed:
            self.oldest = max(self.oldest, self.total + 1 - self.capacity)
            return
        # Full: the oldest chunk goes. At a chunk's start, also while past the byte cap
        # (so it is passed by at most the one chunk's compressed block sealed last).
        cap = math.inf if self.max_bytes is None or self.total % self.chunk else self.max_bytes
        while self.blobs and (self.size >= self.capacity or self.nbytes > cap):
            first = self.oldest // self.chunk
            self.blob_bytes -= len(self.blobs.pop(first))
            self.oldest = (first + 1) * self.chunk

    def _seal(self, chunk_id: int) -> None:
        """Compress the chunk just filled, its bytes transposed."""
        planes = self.rows.view(np.uint8).reshape(self.chunk, self.row_bytes).T
        blob = self.compress(planes.tobytes())
        self.blobs[chunk_id] = blob
        self.blob_bytes += len(blob)

    # -- reading -----------------------------------------------------------------------

    def records(self, t: np.ndarray) -> np.ndarray:
        """The stored records of transitions numbered ``t`` (structured array)."""
        if not self.compressed:
            held: np.ndarray = self.rows[t % self.chunk]
            return held
        out = np.empty(len(t), self.record)
        ids, rows = t // self.chunk, t % self.chunk
        hot = ids == self.total // self.chunk
        out[hot] = self.rows[rows[hot]]
        cold = np.flatnonzero(~hot)
        if len(cold):
            need, which = np.unique(ids[cold], return_inverse=True)
            raw = b"".join([self.decompress(self.blobs[int(c)]) for c in need])
            planes = np.frombuffer(raw, np.uint8).reshape(len(need), self.row_bytes, self.chunk)
            picked = planes[which[:, None], np.arange(self.row_bytes), rows[cold][:, None]]
            out[cold] = np.ascontiguousarray(picked).view(self.record).ravel()
        return out

    def gather(self, positions: Any) -> Batch:
        """The transitions at ``positions`` (0 = the oldest held), decoded to float32."""
        rec = self.records(self.oldest + np.asarray(positions, np.int64))
        action = rec["action"].astype(np.int64 if self.discrete else np.float32)
        return Batch(self._decode_obs(rec["obs"]), action, rec["reward"].astype(np.float32),
                     self._decode_obs(rec["next_obs"]), rec["done"].astype(np.float32),
                     rec["timeout"].astype(np.float32))  # fmt: skip

    def _decode_obs(self, q: np.ndarray) -> np.ndarray:
        x: np.ndarray = q.astype(np.float32)
        if self.scale is not None:
            x = (self.low + x * self.scale).astype(np.float32)
        return x.reshape(-1, *self.obs_shape)

    # -- checkpoints -------------------------------------------------------------------

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Everything held as its records' bytes, oldest first (a checkpoint's arrays)."""
        rec = self.records(np.arange(self.oldest, self.total))
        records = rec.view(np.uint8).reshape(self.size, self.row_bytes)
        counters = np.array([self.total, self.oldest], np.int64)
        return {f"{prefix}counters": counters, f"{prefix}records": records}

    def load(self, arrays: Mapping[str, Any], prefix: str) -> None:
        """Restore :meth:`arrays` into a buffer built with the same settings: the same
        transitions at the same numbers, so sampling goes on as it would have.

        :raises TrainingError: the arrays are missing or were written for other settings.
        """
        counters, records = arrays.get(f"{prefix}counters"), arrays.get(f"{prefix}records")
        total = oldest = -1
        if counters is not None and np.shape(counters) == (2,):
            total, oldest = (int(v) for v in np.asarray(counters))
        shape = (total - oldest, self.row_bytes)
        if (records is None or not 0 <= oldest <= total or total - oldest > self.capacity
                or np.shape(records) != shape
                or np.asarray(records).dtype != np.uint8):  # fmt: skip
            raise TrainingError(
                f"the checkpoint's replay buffer ('{prefix}records' "
                f"{list(np.shape(records)) if records is not None else 'missing'}) does not "
                f"fit this run's {self.storage.label} buffer of {self.capacity} transitions "
                f"({self.row_bytes} B each): it was written with other replay settings or is "
                "corrupt; train afresh without --resume")  # fmt: skip
        saved = np.ascontiguousarray(records, np.uint8).view(self.record)
        self.total = self.oldest = oldest
        self.blobs, self.blob_bytes = {}, 0
        for i in range(total - oldest):
            self.rows[self.total % self.chunk] = saved[i, 0]
            self.total += 1
            if self.compressed and self.total % self.chunk == 0:
                self._seal(self.total // self.chunk - 1)


def quantizer(obs: SpaceSpec, where: str = "the env") -> tuple[np.ndarray, np.ndarray]:
    """(low, scale) per dimension of uint8 storage: ``x ≈ low + q × scale``.

    :raises PlanError: an unbounded dimension, named.
    """
    low = np.asarray(obs.low if obs.low is not None else [-np.inf] * obs.dim, np.float64)
    high = np.asarray(obs.high if obs.high is not None else [np.inf] * obs.dim, np.float64)
    span = high.ravel() - low.ravel()
    bad = np.flatnonzero(~np.isfinite(span) | (span > 1e30))
    if len(bad):
        dims = ", ".join(str(int(i)) for i in bad[:6])
        raise PlanError(f"replay_storage=uint8 needs bounded observations; {where}'s dimension"
                        f"{'s' if len(bad) > 1 else ''} {dims} "
                        f"{'are' if len(bad) > 1 else 'is'} unbounded; use "
                        "replay_storage=float16")  # fmt: skip
    return low.ravel().astype(np.float32), (span / 255.0).astype(np.float32)
