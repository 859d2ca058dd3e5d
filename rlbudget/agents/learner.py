"""Learning on the device: the numpy reference of the exported learner's arithmetic.

``rlbudget export POLICY --format c --learn`` (:mod:`rlbudget.export.learn`) writes a C
learner beside ``rlb_policy_act``; this module computes the same thing, operation for
operation, so that a test can demand both agree bit for bit after every step. The built-in
trainers use its update rules when their ``precision`` is ``float32`` or ``q16.16``.

Two number formats (``dtype``):

- ``float32``: every operation rounded to float32 (one operation per C statement, so no
  contraction or excess precision); values are clamped to ``±LIMIT`` after each update
  and a reward to ``±LIMIT`` on entry (NaN → 0), so no value overflows or becomes NaN.
- ``q16.16``: signed 32-bit fixed point with 16 fraction bits (``v / 65536``, range
  ±32768, step 1.5e-5), for cores without an FPU. Saturating: ``add(a, b) = sat(a + b)``,
  ``mul(a, b) = sat((a · b) >> 16)`` (64-bit product, arithmetic shift: floor), where
  ``sat`` clamps to ``[INT32_MIN, INT32_MAX]``. A float becomes Q16.16 by
  ``sat(trunc(x · 65536))`` in float32 (NaN → 0), and goes back as ``float32(v) · 2^-16``.

The updates (Sutton & Barto 2018), written with those operations:

- ``table`` (Q-learning §6.5, SARSA §6.4): ``target = r`` (``done``) or
  ``r + γ · max_b Q(s', b)`` (Q-learning) / ``r + γ · Q(s', a')`` (SARSA);
  ``Q(s, a) ← Q(s, a) + α · (target − Q(s, a))``.
- ``tiles`` (Sarsa(λ) with replacing traces, §12.7): ``Q(s, a)`` is the sum, tiling by
  tiling in order, of ``w[f_t, a]``; ``δ = r − Q(s, a)``, ``z[f, a] = 1``, and unless
  ``done`` ``δ += γ · Q(s', a')``; ``w ← w + (α · δ) · z`` and ``z ← (γλ) · z`` (every
  weight), or ``z ← 0`` when ``done``.

``learn`` first draws the next action ``a'`` from ``s'`` (ε-greedy, before the update, as
the trainers do), then updates, and returns ``a'``. ε-greedy draws from xorshift32
(Marsaglia 2003: ``x ^= x << 13; x ^= x >> 17; x ^= x << 5``): one draw ``x``, and if
``x < ⌊ε · 2^32⌋`` a second draw picks the action as ``x2 % n_actions``; else the greedy
action (the first largest value, numpy's argmax).

The learner's state is one block of 32-bit little-endian words, the C struct and the
``STATE.bin`` dump alike (:func:`read_state`): a header of 8 words (magic ``RLBL``,
format version, dtype code, fingerprint of the shipped policy's values, number of values,
number of traces, learn calls since reset, RNG state), the values (row-major
``[states, actions]`` or ``[features, actions]``), then the traces.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlbudget.errors import PolicyError
from rlbudget.policy.model import Array, Discretize, Linear, Policy, Table, TileCode

DTYPES = ("float32", "q16.16")
FRAC_BITS = 16
ONE = 1 << FRAC_BITS
LIMIT = np.float32(1e30)  # float32 values are clamped to ±LIMIT: sums of them stay finite
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MAGIC = 0x4C424C52  # "RLBL" as little-endian bytes
VERSION = 1
HEADER_WORDS = 8
ALGORITHMS = ("q-learning", "sarsa", "sarsa-lambda")


# --- the arithmetic ---------------------------------------------------------------------------


def sat(x: Any) -> Any:
    """int64 values clamped to int32's range (still int64)."""
    return np.clip(np.asarray(x, dtype=np.int64), INT32_MIN, INT32_MAX)


def _wide(x: Any) -> Any:
    """A Q16.16 scalar as a Python int, an array as int64: room for any sum or product."""
    return x.astype(np.int64) if isinstance(x, np.ndarray) and x.ndim else int(x)


def _sat(x: Any) -> Any:
    """A wide value clamped to int32's range: an int32 array, or a Python int."""
    if isinstance(x, np.ndarray):
        return sat(x).astype(np.int32)
    return INT32_MAX if x > INT32_MAX else INT32_MIN if x < INT32_MIN else x


def to_fixed(x: Any) -> Any:
    """``sat(trunc(float32(x) · 65536))`` as int32, NaN → 0 (the C ``rlb_to_fixed``)."""
    with np.errstate(over="ignore", invalid="ignore"):
        v = np.asarray(x, dtype=np.float32) * np.float32(ONE)
        v = np.where(np.isnan(v), np.float32(0), v)
        v = np.clip(v, np.float32(-(2.0**31)), np.float32(2.0**31))
        out = np.trunc(v).astype(np.int64)
    return sat(out).astype(np.int32)


def to_float(v: Array) -> Array:
    """Q16.16 → float32: ``float32(v) · 2^-16`` (exact below 2^24 in magnitude)."""
    out: Array = np.asarray(v).astype(np.float32) * np.float32(2.0**-FRAC_BITS)
    return out


class Arithmetic:
    """``add``, ``sub``, ``mul`` and ``clamp`` in ``float32`` or saturating ``q16.16``, on
    numpy scalars or arrays (float32, or int32 values computed in int64)."""

    def __init__(self, dtype: str) -> None:
        if dtype not in DTYPES:
            raise PolicyError(f"unknown learner dtype '{dtype}'; use {' or '.join(DTYPES)}")
        self.dtype = dtype
        self.fixed = dtype == "q16.16"
        self.np_dtype = np.int32 if self.fixed else np.float32

    def value(self, x: Any) -> Any:
        """A float (reward, hyperparameter, shipped value) in this format."""
        if self.fixed:
            return to_fixed(x)
        with np.errstate(invalid="ignore"):
            v = np.asarray(x, dtype=np.float32)
            v = np.where(np.isnan(v), np.float32(0), v)
        return self.clamp(v)

    def clamp(self, v: Any) -> Any:
        if self.fixed:
            return _sat(v)
        return np.minimum(np.maximum(v, -LIMIT), LIMIT).astype(np.float32)

    def add(self, a: Any, b: Any) -> Any:
        if self.fixed:
            return _sat(_wide(a) + _wide(b))
        return np.float32(a) + np.asarray(b, dtype=np.float32)

    def sub(self, a: Any, b: Any) -> Any:
        if self.fixed:
            return _sat(_wide(a) - _wide(b))
        return np.float32(a) - np.asarray(b, dtype=np.float32)

    def mul(self, a: Any, b: Any) -> Any:
        if self.fixed:
            return _sat((_wide(a) * _wide(b)) >> FRAC_BITS)
        return np.float32(a) * np.asarray(b, dtype=np.float32)

    def total(self, values: Array) -> Any:
        """The sum of ``values`` in order (float32: one rounding per addition; q16.16:
        exact in 64 bits, saturated once)."""
        if self.fixed:
            return _sat(np.asarray(values, dtype=np.int64).sum(axis=0))
        acc = np.zeros(values.shape[1:], dtype=np.float32)
        for row in values:
            acc = acc + row
        return acc

    def to_float(self, v: Array) -> Array:
        return to_float(v) if self.fixed else np.asarray(v, dtype=np.float32)


@dataclass(frozen=True)
class Rates:
    """α, γ and γλ in the learner's format (γλ: the float32 product, then converted)."""

    alpha: Any
    gamma: Any
    gamma_lambda: Any

    @classmethod
    def of(cls, ar: Arithmetic, alpha: float, gamma: float, lam: float = 0.0) -> Rates:
        gl = np.float32(gamma) * np.float32(lam)
        return cls(ar.value(alpha), ar.value(gamma), ar.value(gl))


def table_update(ar: Arithmetic, rates: Rates, q: Array, s: int, a: int, reward: float,
                 s2: int, a2: int, done: bool, *, q_learning: bool) -> None:  # fmt: skip
    """Q-learning's or SARSA's update of ``q[s, a]`` in place (the module docstring)."""
    r = ar.value(reward)
    q_sa = q[s, a]
    if done:
        target = r
    else:
        q2 = q[s2].max() if q_learning else q[s2, a2]
        target = ar.add(r, ar.mul(rates.gamma, q2))
    delta = ar.sub(target, q_sa)
    q[s, a] = ar.clamp(ar.add(q_sa, ar.mul(rates.alpha, delta)))


def tiles_update(ar: Arithmetic, rates: Rates, w: Array, z: Array, f: Array, a: int,
                 reward: float, f2: Array, a2: int, done: bool) -> None:  # fmt: skip
    """Sarsa(λ)'s update of the weights ``w`` and traces ``z`` in place (replacing traces;
    ``z`` is cleared when ``done``)."""
    delta = ar.sub(ar.value(reward), ar.total(w[f, a]))
    z[f, a] = ONE if ar.fixed else np.float32(1)
    if not done:
        delta = ar.add(delta, ar.mul(rates.gamma, ar.total(w[f2, a2])))
    w[...] = ar.clamp(ar.add(w, ar.mul(ar.mul(rates.alpha, delta), z)))
    if done:
        z[...] = 0
    else:
        z[...] = ar.mul(rates.gamma_lambda, z)


def exported_precision(
    precision: str, algorithm: str, supported: tuple[str, ...]
) -> Arithmetic | None:
    """A trainer's ``precision``: None for float64, else the learner's arithmetic.

    :raises TrainingError: an unknown precision, or one the algorithm has no learner for.
    """
    from rlbudget.errors import TrainingError

    if precision == "float64":
        return None
    if precision not in DTYPES:
        raise TrainingError(f"precision '{precision}': use float64, {' or '.join(DTYPES)}")
    if algorithm not in supported:
        raise TrainingError(f"precision '{precision}' is the on-device learner's, which runs "
                            f"{', '.join(ALGORITHMS)}; train {algorithm} in float64")  # fmt: skip
    return Arithmetic(precision)


# --- what is learned, and with which hyperparameters ----------------------------------------


@dataclass(frozen=True)
class LearnParams:
    """The learner's hyperparameters and where they came from (``source``)."""

    algorithm: str
    alpha: float
    gamma: float
    lam: float
    epsilon: float
    seed: int
    source: str

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise PolicyError(f"the on-device learner runs {', '.join(ALGORITHMS)}, not "
                              f"'{self.algorithm}'; train with one of them")  # fmt: skip
        for name in ("alpha", "gamma", "lam", "epsilon"):
            v = getattr(self, name)
            if not (0.0 <= v <= 1.0):
                raise PolicyError(f"learner {name} = {v} is outside [0, 1]; set it in 0..1")


def learn_params(policy: Policy, **overrides: float) -> LearnParams:
    """The hyperparameters in the policy's provenance (the run's config), with overrides.

    :raises PolicyError: the policy was not trained by a built-in tabular or Sarsa(λ) agent
        and no override gives what is missing.
    """
    prov = policy.provenance
    hp = dict(prov.get("hyperparameters") or {})
    algorithm = str(hp.get("algorithm", prov.get("algorithm", "")))
    if prov.get("algorithm") == "sarsa-lambda":
        algorithm = "sarsa-lambda"
    if algorithm and algorithm not in ALGORITHMS:  # before "no hyperparameters": say why
        raise PolicyError(f"the on-device learner runs {', '.join(ALGORITHMS)}, not "
                          f"'{algorithm}'; train with one of them")  # fmt: skip
    hp.update({k: v for k, v in overrides.items() if v is not None})
    missing = [k for k in ("alpha", "gamma") if k not in hp]
    if missing or not algorithm:
        raise PolicyError("the policy's provenance has no learner hyperparameters (it was not "
                          "trained by a built-in tabular or sarsa-lambda agent); retrain it "
                          "with rlbudget train")  # fmt: skip
    eps = hp.get("epsilon", hp.get("epsilon_end")) or 0.0
    where = f"policy provenance hyperparameters ({prov.get('source', '?')}, {algorithm})"
    if overrides:
        where += "; overridden: " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    return LearnParams(algorithm, float(hp["alpha"]), float(hp["gamma"]),
                       float(hp.get("lam", 0.0)), float(eps), int(hp.get("seed", 0)),
                       where)  # fmt: skip


def shipped_values(policy: Policy) -> tuple[str, Array]:
    """(``"table"`` or ``"tiles"``, the float32 values the learner starts from).

    :raises PolicyError: the policy is not a float table (Discrete or discretized
        observations) nor a float tile-coded linear body with a zero bias.
    """
    body, pre = policy.body, policy.preprocess
    if policy.action_space.kind != "discrete" or policy.head.kind != "argmax":
        raise PolicyError("the on-device learner needs discrete actions and an argmax head")
    if isinstance(body, Table) and body.values.dtype == np.float32:
        if pre == () and policy.observation_space.kind == "discrete":
            return "table", body.values
        if len(pre) == 1 and isinstance(pre[0], Discretize):
            return "table", body.values
    if (
        isinstance(body, Linear)
        and body.scale is None
        and len(pre) == 1
        and (isinstance(pre[0], TileCode))
    ):
        if np.any(body.b != 0):
            raise PolicyError("a tile-coded linear body with a nonzero bias cannot learn on "
                              "the device (Sarsa(lambda) has no bias); zero it")  # fmt: skip
        return "tiles", body.W
    raise PolicyError(f"the on-device learner supports a float32 table (Discrete or discretize) "
                      f"or tile_code -> float linear; this policy is "
                      f"{' -> '.join([*(p.kind for p in pre), body.kind])}")  # fmt: skip


def fingerprint(values: Array) -> int:
    """CRC-32 of the shipped values (float32 bytes, little-endian) and their shape: the
    dump names the policy it belongs to."""
    shape = np.asarray(values.shape, dtype="<u4").tobytes()
    return zlib.crc32(np.ascontiguousarray(values, dtype="<f4").tobytes() + shape)


def seed_state(seed: int) -> int:
    """xorshift32's start: the seed mixed with the golden ratio, never 0."""
    return (int(seed) ^ 0x9E3779B9) & 0xFFFFFFFF or 0x9E3779B9


def epsilon_threshold(epsilon: float) -> int:
    """⌊ε · 2^32⌋, at most 2^32 − 1: a draw below it explores."""
    return min(int(epsilon * 2.0**32), 2**32 - 1)


# --- the learner ------------------------------------------------------------------------------


class Learner:
    """The exported learner in numpy: the same state and the same arithmetic as the C."""

    def __init__(self, policy: Policy, params: LearnParams, dtype: str) -> None:
        self.kind, values = shipped_values(policy)
        if (self.kind == "tiles") != (params.algorithm == "sarsa-lambda"):
            raise PolicyError(f"algorithm '{params.algorithm}' does not fit a {self.kind} "
                              "policy (sarsa-lambda learns tile-coded weights; q-learning and "
                              "sarsa learn tables)")  # fmt: skip
        self.policy, self.params, self.ar = policy, params, Arithmetic(dtype)
        self.fingerprint = fingerprint(values)
        self.shipped = np.asarray(self.ar.value(values), dtype=self.ar.np_dtype)
        self.n_actions = int(values.shape[1])
        self.rates = Rates.of(self.ar, params.alpha, params.gamma, params.lam)
        self.eps = epsilon_threshold(params.epsilon)
        self.reset()

    def reset(self) -> None:
        """Back to the shipped policy: values, zero traces, the RNG's seed, 0 steps."""
        self.values = self.shipped.copy()
        self.traces = np.zeros_like(self.values) if self.kind == "tiles" else None
        self.rng = seed_state(self.params.seed)
        self.steps = 0

    def features(self, obs: Any) -> Any:
        """The table row (int) or the active tile per tiling (int64 array)."""
        x = np.asarray(obs, dtype=np.float32).reshape(1, -1)
        if self.kind == "tiles":
            return self.policy.preprocess[0].apply(x)[0]
        if self.policy.preprocess:
            return int(self.policy.preprocess[0].apply(x)[0])
        n = int(self.values.shape[0])
        v = x[0, 0]
        return 0 if not v >= 0 else min(int(v), n - 1)  # the C export's rlb_state

    def q(self, f: Any) -> Any:
        """The action values at ``f``, in the learner's format."""
        return self.values[f] if self.kind == "table" else self.ar.total(self.values[f])

    def next_random(self) -> int:
        x = self.rng
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.rng = x
        return x

    def act(self, obs: Any) -> int:
        return int(np.argmax(self.q(self.features(obs))))

    def act_explore(self, obs: Any) -> int:
        return self.explore(self.features(obs))

    def explore(self, f: Any) -> int:
        if self.next_random() < self.eps:
            return self.next_random() % self.n_actions
        return int(np.argmax(self.q(f)))

    def end_episode(self) -> None:
        """An episode ended without ``done`` (truncation): clear the traces."""
        if self.traces is not None:
            self.traces[...] = 0

    def learn(self, obs: Any, action: int, reward: float, next_obs: Any, done: bool) -> int:
        """One update from ``(obs, action, reward, next_obs, done)``; returns the next action
        (ε-greedy at ``next_obs``, drawn before the update). An action outside
        ``0..n_actions-1`` updates nothing."""
        return self.update(self.features(obs), action, reward, self.features(next_obs), done)

    def update(self, f: Any, action: int, reward: float, f2: Any, done: bool) -> int:
        """:meth:`learn` from the features of ``obs`` and ``next_obs`` (:meth:`features`)."""
        a2 = self.explore(f2)
        if not 0 <= action < self.n_actions:
            return a2
        self.steps = min(self.steps + 1, 2**32 - 1)
        if self.kind == "table":
            q_learning = self.params.algorithm == "q-learning"
            table_update(self.ar, self.rates, self.values, f, action, reward, f2, a2, done,
                         q_learning=q_learning)  # fmt: skip
        else:
            assert self.traces is not None
            tiles_update(self.ar, self.rates, self.values, self.traces, f, action, reward, f2,
                         a2, done)  # fmt: skip
        return a2

    # --- the state as bytes ------------------------------------------------------------------

    def header(self) -> Array:
        n_traces = 0 if self.traces is None else self.traces.size
        return np.array([MAGIC, VERSION, DTYPES.index(self.ar.dtype), self.fingerprint,
                         self.values.size, n_traces, self.steps, self.rng],
                        dtype="<u4")  # fmt: skip

    def dump(self) -> bytes:
        """The state as the C struct holds it (and ``rlb_policy_state`` hands out)."""
        parts = [self.header().tobytes(), self.values.astype("<" + self.values.dtype.str[1:])
                 .tobytes()]  # fmt: skip
        if self.traces is not None:
            parts.append(self.traces.astype("<" + self.traces.dtype.str[1:]).tobytes())
        return b"".join(parts)


# --- reading a dump back ----------------------------------------------------------------------


@dataclass(frozen=True)
class LearnedState:
    """A learner's dump, checked against the policy it was exported from."""

    policy: Policy  # the policy with the learned values
    dtype: str
    steps: int  # learn calls since the last reset (saturates at 2^32 - 1)

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "steps": self.steps}


def read_state(data: bytes, policy: Policy, where: str = "STATE.bin") -> LearnedState:
    """The policy with the values of a learner's dump (the layout: the module docstring).

    :param where: the file's name, for messages.
    :raises PolicyError: the bytes are not a learner state of this version, are truncated or
        longer, belong to another policy (fingerprint, sizes), or hold a float value that is
        NaN, infinite or beyond ``±LIMIT``.
    """
    from rlbudget.compress import with_transform

    kind, shipped = shipped_values(policy)
    if len(data) < 4 * HEADER_WORDS:
        raise PolicyError(
            f"{where}: {len(data)} bytes is too short for a learner state "
            f"(a {4 * HEADER_WORDS}-byte header first); copy the whole dump"
        )
    magic, version, code, print_, n_values, n_traces, steps, _ = (
        int(v) for v in np.frombuffer(data[: 4 * HEADER_WORDS], dtype="<u4"))  # fmt: skip
    if magic != MAGIC:
        raise PolicyError(f"{where}: not a learner state (it does not start with 'RLBL'); "
                          "save the bytes rlb_policy_state() gives")  # fmt: skip
    if version != VERSION or code >= len(DTYPES):
        raise PolicyError(f"{where}: learner state version {version}, dtype code {code}; this "
                          f"rlbudget reads version {VERSION}, dtype 0 or 1")  # fmt: skip
    if print_ != fingerprint(shipped):
        raise PolicyError(f"{where}: the state belongs to another policy (fingerprint "
                          f"{print_:08x}, this policy's is {fingerprint(shipped):08x}); pass "
                          "the policy folder it was exported from")  # fmt: skip
    traces = shipped.size if kind == "tiles" else 0
    if n_values != shipped.size or n_traces != traces:
        raise PolicyError(f"{where}: {n_values} values and {n_traces} traces; the policy has "
                          f"{shipped.size} and {traces}")  # fmt: skip
    expected = 4 * (HEADER_WORDS + n_values + n_traces)
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than the state"
        raise PolicyError(f"{where}: {state} ({len(data):,} bytes, expected {expected:,}); "
                          "copy the whole dump")  # fmt: skip
    dtype = DTYPES[code]
    raw = data[4 * HEADER_WORDS : 4 * (HEADER_WORDS + n_values)]
    if dtype == "q16.16":
        values = to_float(np.frombuffer(raw, dtype="<i4"))
    else:
        values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        bad = ~np.isfinite(values) | (np.abs(values) > LIMIT)
        if bad.any():
            raise PolicyError(f"{where}: value {int(np.argmax(bad))} is {values[bad][0]}, "
                              "which the learner never writes; the dump is corrupt")  # fmt: skip
    values = values.reshape(shipped.shape)
    body = policy.body
    new_body = Table(values) if kind == "table" else Linear(values, body.b)  # type: ignore[union-attr]
    child = Policy(policy.observation_space, policy.action_space, policy.preprocess, new_body,
                   policy.head, policy.provenance)  # fmt: skip
    out = with_transform(policy, child, "import-state", dtype=dtype, learn_steps=steps)
    return LearnedState(out, dtype, steps)
