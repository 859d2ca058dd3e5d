"""Decision rules: (Budget, EnvSpec) → a ranked, explained Plan.

The planner enumerates one candidate per compatible algorithm (and, for MLPs,
narrower shapes when the tuned one does not fit), estimates what each costs on
the target and on the training host, checks every figure against the budget with
the safety margin, and ranks the candidates by explicit rules. Each rule has an
id and a sentence (:data:`RULES`); the sentences that fired for an option are its
``reasons``.

Estimates and their assumptions (all labelled ``estimated`` in the output):

- **Weights.** int8 MLP: 1 B per weight + 4 B int32 bias + 4 B per-channel scale
  per output; fp32: 4 B per parameter. Tabular deployment: the packed greedy
  action table, ⌈log2 |A|⌉ bits per state. Tile-coded linear: one weight per
  feature and action, int16 without an FPU, fp32 with one.
- **Working RAM.** The largest pair of live activation buffers plus input and
  output (TFLite Micro's arena rule), in the deployed dtype, plus int32
  accumulators for one layer.
- **Flash.** Weights + code: :data:`CODE_BYTES` per body kind (our C export;
  measured sizes replace this in ``rlbudget profile``).
- **Latency/energy.** :func:`rlbudget.devices.estimate_latency` (invoke overhead
  + layers × per-layer overhead + MACs / throughput), plus cycles for tanh and
  preprocessing; energy = active power × latency. A range, because the same
  model on the same chip varies up to ~3× between software stacks.
- **Training.** Env steps from the tuned hyperparameters' ``n_timesteps``
  (what RL Zoo or the source budgets to reach the threshold); host time from the
  algorithm's measured throughput on this machine class plus any env step cost
  above CartPole's (spread over on-policy env workers when the cost is measured,
  not when ``task.env_step_cost`` declares a real env); RAM = process baseline
  + 16 B per trained parameter (weights, gradients, Adam moments) + replay
  buffer (at most the run's env steps, capped by ``training.ram``); energy = time ×
  busy cores × the ``host`` device's active power per core.

A figure passes when ``estimate × (1 + margin) ≤ limit``; ``fits`` means every
checked figure passes (inference, device capacity and training).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from itertools import pairwise
from typing import Any

from rlbudget import units
from rlbudget.budget import Budget
from rlbudget.devices import Device, Range, estimate_energy, estimate_latency, get_device
from rlbudget.envs import EnvSpec, SpaceSpec
from rlbudget.errors import PlanError
from rlbudget.hyperparams import AlgorithmInfo, Hyperparams, algorithms, get_hyperparams

SCHEMA = "rlbudget.plan/1"

# Code bytes of the deployed runtime per body kind: our C export (no TFLM interpreter).
# Estimate: a table lookup with a discretizer ≈1 KiB of Thumb-2; a tile coder ≈2 KiB;
# a dense int8 MLP with requantization and a tanh LUT ≈4 KiB. `profile` measures the real size.
CODE_BYTES = {"table": 1024, "linear": 2048, "mlp": 4096}
# Host process baselines (REFERENCE.md: an SB3 process ≈311 MiB RSS, a numpy policy ≈27 MiB;
# training adds gymnasium, optimiser state and rollout buffers — estimate).
BASE_TRAIN_RAM = {"builtin": 120 * 2**20, "sb3": 450 * 2**20, "none": 450 * 2**20}
# REFERENCE.md: raw CartPole-v1 step ≈52k steps/s; measured algorithm throughputs include it.
REFERENCE_STEP_S = 1 / 52_000
# Cycles per activation outside the MACs. tanh: int8 LUT ≈8 cycles; tanhf ≈100 cycles with an
# FPU (17–25 ns on the host is ≈60–100 cycles), ≈600 without (soft-float). Estimates.
TANH_CYCLES = {"int8": 8.0, "fp32": 100.0, "fp32-soft": 600.0}
# Low-dimensional limits: a uniform grid over more dims explodes; tile coding hashes up to ~8.
MAX_TABULAR_BOX_DIMS = 4
MAX_TILE_CODING_DIMS = 8
MAX_TABLE_STATES = 2**24
NARROW_WIDTHS = (64, 32, 16, 8)
# An env step at or above this is "expensive" (a robot, a slow simulator).
EXPENSIVE_STEP_S = 1e-3


@dataclass(frozen=True)
class Rule:
    """A decision rule: an id a user can grep for and the sentence that explains it."""

    id: str
    text: str


RULES = {
    r.id: r
    for r in (
        Rule("spaces", "Only algorithms that support the env's observation and action spaces."),
        Rule(
            "discrete-obs",
            "Discrete observations: a table is exact and tiny, so tabular methods come first.",
        ),
        Rule(
            "mcu-small",
            "MCU-class device or tight RAM/flash: tabular and tile-coded linear policies come "
            "first; an int8 MLP only if it fits with the margin.",
        ),
        Rule(
            "8-bit",
            "8-bit core: no 32-bit MAC and no int8 NN kernels, so MLPs are not planned; "
            "tabular or linear only.",
        ),
        Rule(
            "headroom",
            "MPU/GPU/host with room to spare: an MLP policy (PPO/A2C/DQN for discrete actions, "
            "SAC/TD3 for continuous) learns the most robust policy.",
        ),
        Rule(
            "continuous-actions",
            "Box actions: SAC/TD3 (off-policy, squashed/deterministic actors) are the tuned "
            "choice; ARS gives a linear policy for the smallest devices.",
        ),
        Rule(
            "expensive-env",
            "Expensive environment: model-based and sample-efficient off-policy methods rank "
            "above on-policy ones.",
        ),
        Rule("not-yet", "Not yet supported by rlbudget's trainers: shown, never ranked first."),
        Rule(
            "replay-ram",
            "Training RAM bounds the replay buffer: capacity × bytes per transition.",
        ),
        Rule(
            "feasible-steps",
            "Training time × throughput bounds the env steps; options needing more are marked.",
        ),
        Rule("int8", "Latency/energy/memory limits: deploy int8 (4× smaller than fp32)."),
        Rule("narrow", "The tuned network does not fit: narrower layers are tried."),
        Rule("cores", "Training cores set the number of parallel envs."),
        Rule("fits", "Options that fit every limit with the margin rank first."),
    )
}


@dataclass(frozen=True)
class Check:
    """One figure against one limit: ``estimate × (1 + margin) ≤ limit``."""

    limit: str
    unit: str
    estimate: float
    with_margin: float
    limit_value: float | None
    status: str  # PASS, FAIL, NOT CHECKED
    source: str = "estimated"

    @property
    def ratio(self) -> float:
        """with_margin / limit (> 1 fails); 0 when not checked."""
        if self.limit_value is None or self.limit_value <= 0:
            return 0.0
        return self.with_margin / self.limit_value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Estimates:
    """What an option costs. Inference figures are for the target device, training for the host."""

    parameters: int
    weight_bytes: int
    activation_bytes: int
    ram_bytes: int
    flash_bytes: int
    macs: int
    latency_s: Range
    energy_j: Range
    env_steps: int
    train_time_s: float
    train_ram_bytes: int
    train_energy_j: float
    replay_capacity: int | None = None
    replay_bytes: int | None = None
    bytes_per_transition: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # ranges become {low, typical, high}


@dataclass(frozen=True)
class Option:
    """One ranked recommendation."""

    paradigm: str
    algorithm: str
    label: str
    library: str
    trainable: bool
    network: dict[str, Any]
    deploy_dtype: str
    deploy_format: str
    hyperparams: dict[str, Any]
    hyperparams_source: str
    hyperparams_tuned: bool
    estimates: Estimates
    checks: tuple[Check, ...]
    reasons: tuple[str, ...]
    score: float
    rank: int = 0

    @property
    def fits(self) -> bool:
        return all(c.status != "FAIL" for c in self.checks)

    @property
    def worst(self) -> Check | None:
        """The check nearest to (or furthest over) its limit."""
        checked = [c for c in self.checks if c.status != "NOT CHECKED"]
        return max(checked, key=lambda c: c.ratio) if checked else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "paradigm": self.paradigm,
            "algorithm": self.algorithm,
            "label": self.label,
            "library": self.library,
            "trainable": self.trainable,
            "fits": self.fits,
            "score": self.score,
            "network": self.network,
            "deploy": {"dtype": self.deploy_dtype, "format": self.deploy_format},
            "hyperparams": {
                "params": self.hyperparams,
                "source": self.hyperparams_source,
                "tuned": self.hyperparams_tuned,
            },
            "estimates": self.estimates.to_dict(),
            "checks": [c.to_dict() for c in self.checks],
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Context:
    """Facts about the budget and env that the rules read."""

    device_class: str
    mcu: bool
    eight_bit: bool
    tight_memory: bool
    expensive_env: bool
    expensive_why: str
    step_cost_s: float | None
    step_cost_source: str
    cores: int
    target_return: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """A ranked list of options with the rules that decided them."""

    budget: Budget
    env: EnvSpec
    context: Context
    options: tuple[Option, ...]
    excluded: tuple[tuple[str, str], ...] = field(default=())

    @property
    def best(self) -> Option | None:
        """The first option if it fits and is trainable, else None."""
        first = self.options[0] if self.options else None
        return first if first is not None and first.fits and first.trainable else None

    @property
    def fits(self) -> bool:
        return self.best is not None

    def binding(self) -> dict[str, Any] | None:
        """When nothing fits: the limit that binds on the closest option, and by how much."""
        if self.fits:
            return None
        candidates = [o for o in self.options if o.trainable and o.worst is not None]
        if not candidates:
            return None
        closest = min(candidates, key=lambda o: o.worst.ratio if o.worst else math.inf)
        worst = closest.worst
        assert worst is not None and worst.limit_value is not None
        over = worst.with_margin - worst.limit_value
        return {
            "option": closest.label,
            "limit": worst.limit,
            "unit": worst.unit,
            "needed_with_margin": worst.with_margin,
            "limit_value": worst.limit_value,
            "over_by": over,
            "over_by_ratio": worst.ratio - 1.0,
            "message": _binding_message(closest, worst, self.budget.margin),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "fits": self.fits,
            "recommended": self.best.label if self.best else None,
            "budget": self.budget.to_dict(),
            "env": self.env.to_dict(),
            "context": self.context.to_dict(),
            "rules": {r.id: r.text for r in RULES.values()},
            "options": [o.to_dict() for o in self.options],
            "excluded": [{"algorithm": a, "reason": why} for a, why in self.excluded],
            "binding": self.binding(),
        }


def _binding_message(option: Option, check: Check, margin: float) -> str:
    fmt = _formatter(check.unit)
    assert check.limit_value is not None
    return (
        f"nothing fits: {check.limit} binds — the closest option ({option.label}) needs "
        f"{fmt(check.estimate)}, {fmt(check.with_margin)} with the {margin:.0%} margin, "
        f"over the {fmt(check.limit_value)} limit by {fmt(check.with_margin - check.limit_value)} "
        f"({check.ratio - 1:.0%})"
    )


def _formatter(unit: str) -> Any:
    return {
        "bytes": units.format_bytes,
        "s": units.format_time,
        "J": units.format_energy,
        "steps": units.format_count,
    }.get(unit, lambda v: f"{v:g}")


# --- estimating one candidate -------------------------------------------------------------


@dataclass(frozen=True)
class _Body:
    """What the deployed body looks like: enough to count bytes, MACs and cycles."""

    kind: str  # table, linear, mlp
    parameters: int
    weight_bytes: int
    activation_bytes: int
    macs: int
    layers: int
    extra_cycles: float
    network: dict[str, Any]


def _table_body(states: int, n_actions: int, obs: SpaceSpec, bins: int | None) -> _Body:
    bits = max(1, math.ceil(math.log2(n_actions)))
    weight_bytes = math.ceil(states * bits / 8)
    # Discretizing a Box observation: a multiply, floor and clamp per dimension (≈30 cycles).
    extra = 20.0 + (30.0 * obs.dim if obs.kind == "box" else 0.0)
    network: dict[str, Any] = {
        "body": "table",
        "states": states,
        "actions": n_actions,
        "bits_per_entry": bits,
    }
    if bins is not None:
        network["bins_per_dim"] = bins
    return _Body("table", states * n_actions, weight_bytes, 4 * obs.dim + 8, 0, 0, extra, network)


def _linear_tile_body(obs: SpaceSpec, n_actions: int, hp: Hyperparams, fpu: bool) -> _Body:
    tilings = int(hp.params.get("tilings", 8))
    tiles = int(hp.params.get("tiles_per_dim", 8))
    hash_size = int(hp.params.get("hash_size", 4096))
    per_tiling = (tiles + 1) ** obs.dim
    features = min(tilings * per_tiling, hash_size)
    dtype_bytes = 4 if fpu else 2
    params = features * n_actions
    # Per tiling: scale and floor each dim, combine into an index/hash (≈25 cycles per dim).
    extra = tilings * (25.0 * obs.dim + 10.0)
    network = {
        "body": "linear",
        "features": "tile-coding",
        "tilings": tilings,
        "tiles_per_dim": tiles,
        "hash_size": hash_size if tilings * per_tiling > hash_size else None,
        "weights": params,
    }
    return _Body(
        "linear", params, params * dtype_bytes, 4 * (obs.dim + tilings + n_actions),
        tilings * n_actions, 1, extra, network,
    )  # fmt: skip


def _linear_policy_body(obs: SpaceSpec, act: SpaceSpec, dtype_bytes: int) -> _Body:
    outputs = act.n if act.kind == "discrete" and act.n is not None else act.dim
    params = obs.dim * outputs + outputs + 2 * obs.dim  # W, b, observation mean/std
    network = {"body": "linear", "features": "normalized observation", "shape": [obs.dim, outputs]}
    return _Body(
        "linear", params, params * dtype_bytes, 4 * (obs.dim + outputs),
        obs.dim * outputs, 1, 10.0 * obs.dim, network,
    )  # fmt: skip


def extra_cycles(nonlinear: int, inputs: int, dtype: str, fpu: bool) -> float:
    """Cycles of a decision outside the MACs: each tanh/sigmoid (:data:`TANH_CYCLES`) and
    ≈ 20 per input value (normalization, quantization)."""
    key = "int8" if dtype == "int8" else ("fp32" if fpu else "fp32-soft")
    return nonlinear * TANH_CYCLES[key] + 20.0 * inputs


def _mlp_body(
    obs: SpaceSpec, act: SpaceSpec, hidden: Sequence[int], activation: str, dtype: str, fpu: bool
) -> _Body:
    outputs = act.n if act.kind == "discrete" and act.n is not None else act.dim
    inputs = obs.n if obs.kind == "discrete" and obs.n is not None else obs.dim  # one-hot
    widths = [inputs, *hidden, outputs]
    weights = sum(a * b for a, b in pairwise(widths))
    biases = sum(widths[1:])
    macs = weights
    if dtype == "int8":
        weight_bytes = weights + 4 * biases + 4 * biases  # int8 W, int32 bias, per-channel scale
        act_bytes = 1
    else:
        weight_bytes = 4 * (weights + biases)
        act_bytes = 4
    live_pair = max(a + b for a, b in pairwise(widths))
    activation_bytes = live_pair * act_bytes + 4 * max(widths[1:])  # + int32 accumulators
    n_tanh = sum(hidden) if activation == "tanh" else 0
    extra = extra_cycles(n_tanh, inputs, dtype, fpu)
    network = {
        "body": "mlp",
        "shape": widths,
        "hidden": list(hidden),
        "activation": activation,
        "parameters": weights + biases,
    }
    return _Body(
        "mlp", weights + biases, weight_bytes, activation_bytes, macs, len(widths) - 1, extra,
        network,
    )  # fmt: skip


@dataclass(frozen=True)
class _Candidate:
    info: AlgorithmInfo
    hp: Hyperparams
    body: _Body
    dtype: str
    fmt: str
    label: str
    reasons: tuple[str, ...]
    score: float
    params: dict[str, Any]


def training_ram_bytes(library: str, parameters: int, *, table: bool = False) -> int:
    """Host RAM of a training process before any replay buffer: the library's process
    baseline plus 16 B per trained parameter (weights, gradients, two Adam moments; a
    table: 4 B per value)."""
    base = BASE_TRAIN_RAM.get(library, BASE_TRAIN_RAM["none"])
    return base + parameters * (4 if table else 16)


def mlp_parameters(obs: SpaceSpec, act: SpaceSpec, hidden: Sequence[int]) -> int:
    """Parameters of the deployed MLP (weights and biases; Discrete observations one-hot)."""
    return _mlp_body(obs, act, hidden, "relu", "fp32", True).parameters


@dataclass(frozen=True)
class Replay:
    """A replay buffer's size, and the [replay-ram] sentence that explains it."""

    capacity: int
    bytes_per_transition: int
    note: str

    @property
    def bytes(self) -> int:
        return self.capacity * self.bytes_per_transition


def bytes_per_transition(
    obs: SpaceSpec, act: SpaceSpec, *, optimize_memory_usage: bool = False
) -> int:
    """Bytes one transition takes in Stable-Baselines3's ``ReplayBuffer``.

    Its arrays: observations and next_observations in the observation space's dtype
    (Discrete: one int64), actions (Discrete: one int64; Box: float32 per element, SB3
    casts float64 down), and float32 rewards, dones and timeouts.
    ``optimize_memory_usage`` drops next_observations (the next row holds them).

    >>> from rlbudget.envs import SpaceSpec
    >>> pendulum = SpaceSpec("box", (3,), None, None, None, "float32")
    >>> torque = SpaceSpec("box", (1,), None, None, None, "float32")
    >>> bytes_per_transition(pendulum, torque)  # 2 × 3 × 4 + 4 + 3 × 4
    40
    """
    import numpy as np

    obs_bytes = obs.dim * np.dtype(obs.dtype).itemsize if obs.kind == "box" else 8
    act_bytes = 4 * act.dim if act.kind == "box" else 8
    return (1 if optimize_memory_usage else 2) * obs_bytes + act_bytes + 3 * 4


def replay_buffer(
    wanted: int,
    steps: int,
    obs: SpaceSpec,
    act: SpaceSpec,
    *,
    other_ram_bytes: int,
    ram_bytes: int | None,
    margin: float,
    optimize_memory_usage: bool = False,
) -> Replay:
    """The replay capacity for a run of ``steps`` env steps: the tuned ``buffer_size``
    (``wanted``), at most ``steps`` (SB3's 1M default would mostly sit empty), and at most
    what fits in 90 % of ``training.ram / (1 + margin)`` after ``other_ram_bytes`` (the
    process, weights and optimizer state). The planner and ``rlbudget train`` both use it.
    """
    per = bytes_per_transition(obs, act, optimize_memory_usage=optimize_memory_usage)
    capacity = min(wanted, max(steps, 1))
    if ram_bytes is None:
        return Replay(capacity, per, (
            f"[replay-ram] replay buffer {units.format_count(capacity)} transitions × {per} B "
            f"= {units.format_bytes(capacity * per)}; set training.ram to bound it"
        ))  # fmt: skip
    room = int((ram_bytes / (1 + margin) - other_ram_bytes) * 0.9)
    by_ram = max(room // per, 0)
    if by_ram < capacity:
        return Replay(by_ram, per, (
            f"[replay-ram] replay buffer capped at {units.format_count(by_ram)} transitions × "
            f"{per} B = {units.format_bytes(by_ram * per)} to fit training.ram "
            f"({units.format_bytes(ram_bytes)}) with the margin"
        ))  # fmt: skip
    return Replay(capacity, per, (
        f"[replay-ram] replay buffer {units.format_count(capacity)} transitions × {per} B = "
        f"{units.format_bytes(capacity * per)}"
    ))  # fmt: skip


def _limit_check(
    name: str, unit: str, estimate: float, limit: float | None, margin: float
) -> Check:
    with_margin = estimate * (1 + margin)
    if limit is None:
        return Check(name, unit, estimate, with_margin, None, "NOT CHECKED")
    return Check(
        name, unit, estimate, with_margin, limit, "PASS" if with_margin <= limit else "FAIL"
    )


def _estimate(
    cand: _Candidate, budget: Budget, env: EnvSpec, ctx: Context
) -> tuple[Estimates, tuple[Check, ...], tuple[str, ...]]:
    device = budget.device
    body = cand.body
    flash = body.weight_bytes + CODE_BYTES[body.kind]
    obs_bytes = 4 * (env.observation.dim if env.observation.kind == "box" else 1)
    ram = body.activation_bytes + obs_bytes
    latency = estimate_latency(
        device, macs=body.macs, layers=body.layers, dtype=cand.dtype, extra_cycles=body.extra_cycles
    )
    energy = estimate_energy(device, latency)

    notes: list[str] = []
    steps = int(cand.hp.n_timesteps / max(cand.info.sample_efficiency, 1.0))
    # Env time beyond what the measured throughput already includes (a CartPole step).
    excess = max(0.0, (ctx.step_cost_s or 0.0) - REFERENCE_STEP_S)
    parallel = 1
    if cand.info.library == "sb3" and not cand.info.off_policy:
        parallel = max(1, min(ctx.cores, int(cand.params.get("n_envs", 1))))
    # A simulated env's cost spreads over worker processes; a declared real step (a robot)
    # does not.
    env_workers = parallel if ctx.step_cost_source.startswith("measured") else 1
    per_step = 1.0 / cand.info.host_steps_per_s + excess / env_workers
    train_time = steps * per_step
    busy_cores = parallel

    replay_capacity = replay_bytes = per_transition = None
    train_ram = training_ram_bytes(cand.info.library, body.parameters, table=body.kind == "table")
    if cand.info.replay_buffer:
        replay = replay_buffer(
            int(cand.params.get("buffer_size", 1_000_000)), steps, env.observation, env.action,
            other_ram_bytes=train_ram, ram_bytes=budget.training.ram_bytes, margin=budget.margin,
        )  # fmt: skip
        notes.append(replay.note)
        replay_capacity, per_transition = replay.capacity, replay.bytes_per_transition
        replay_bytes = replay.bytes
        train_ram += replay_bytes
    train_energy = train_time * busy_cores * get_device("host").active_power_w

    t = budget.training
    feasible = None
    if t.time_s is not None:
        feasible = int(t.time_s / (1 + budget.margin) / per_step)
        if feasible < steps:
            notes.append(
                f"[feasible-steps] {units.format_time(t.time_s)} of training at "
                f"≈{units.format_count(1 / per_step)} steps/s allows "
                f"≈{units.format_count(feasible)} env steps with the margin; this option "
                f"typically needs "
                f"{units.format_count(steps)}"
            )
    m = budget.margin
    inf = budget.inference
    checks = (
        _limit_check("inference.ram", "bytes", ram, inf.ram_bytes, m),
        _limit_check("inference.flash", "bytes", flash, inf.flash_bytes, m),
        _limit_check("inference.latency", "s", latency.typical, inf.latency_s, m),
        _limit_check("inference.energy", "J", energy.typical, inf.energy_j, m),
        _limit_check("device.sram", "bytes", ram, device.sram_bytes, m),
        _limit_check("device.flash", "bytes", flash, device.flash_bytes, m),
        _limit_check("training.env_steps", "steps", steps, t.env_steps, m),
        _limit_check("training.time", "s", train_time, t.time_s, m),
        _limit_check("training.ram", "bytes", train_ram, t.ram_bytes, m),
        _limit_check("training.energy", "J", train_energy, t.energy_j, m),
    )
    est = Estimates(
        parameters=body.parameters,
        weight_bytes=body.weight_bytes,
        activation_bytes=body.activation_bytes,
        ram_bytes=ram,
        flash_bytes=flash,
        macs=body.macs,
        latency_s=latency,
        energy_j=energy,
        env_steps=steps,
        train_time_s=train_time,
        train_ram_bytes=train_ram,
        train_energy_j=train_energy,
        replay_capacity=replay_capacity,
        replay_bytes=replay_bytes,
        bytes_per_transition=per_transition,
    )
    return est, checks, tuple(notes)


# --- rules -------------------------------------------------------------------------------


def _context(budget: Budget, env: EnvSpec, compatible: Sequence[AlgorithmInfo]) -> Context:
    device = budget.device
    mcu = device.device_class in ("mcu", "mcu-accel")
    inf = budget.inference
    tight = (inf.ram_bytes is not None and inf.ram_bytes <= 64 * 1024) or (
        inf.flash_bytes is not None and inf.flash_bytes <= 256 * 1024
    )
    step_cost: float | None = budget.task.env_step_cost_s
    step_source = "task.env_step_cost"
    if step_cost is None:
        step_cost, step_source = env.step_cost_s, "measured on this host"
    why = ""
    if budget.task.env_step_cost_s is not None and budget.task.env_step_cost_s >= EXPENSIVE_STEP_S:
        why = f"task.env_step_cost is {units.format_time(budget.task.env_step_cost_s)} per step"
    elif budget.training.env_steps is not None:
        model_free = [
            get_hyperparams(a.id, env.env_id).n_timesteps
            for a in compatible
            if not a.model_based and a.trainable
        ]
        if model_free and budget.training.env_steps < 0.5 * min(model_free):
            why = (
                f"training.env_steps ({units.format_count(budget.training.env_steps)}) is under "
                f"half of what the cheapest model-free option typically needs "
                f"({units.format_count(min(model_free))})"
            )
    target = budget.task.min_return
    if target is None:
        target = env.reward_threshold
    return Context(
        device_class=device.device_class,
        mcu=mcu,
        eight_bit=_word_bits(device) == 8,
        tight_memory=tight,
        expensive_env=bool(why),
        expensive_why=why,
        step_cost_s=step_cost,
        step_cost_source=step_source,
        cores=budget.training.cores or 1,
        target_return=target,
    )


def _word_bits(device: Device) -> int:
    bits = getattr(device, "word_bits", None)
    if isinstance(bits, int):
        return bits
    return 8 if "avr" in device.core.lower() else 32


def _compatible(info: AlgorithmInfo, env: EnvSpec) -> str | None:
    """None if the algorithm can handle the env's spaces, else the reason it cannot."""
    obs, act = env.observation, env.action
    if obs.kind not in info.observations:
        return f"needs {' or '.join(info.observations)} observations; {env.env_id} has {obs.kind}"
    if act.kind not in info.actions:
        return f"needs {' or '.join(info.actions)} actions; {env.env_id} has {act.kind}"
    if _is_tabular(info) and obs.kind == "box" and obs.dim > MAX_TABULAR_BOX_DIMS:
        return (
            f"a uniform grid over {obs.dim} observation dims is too large "
            f"(tabular needs ≤ {MAX_TABULAR_BOX_DIMS})"
        )
    if info.id == "sarsa-lambda" and obs.dim > MAX_TILE_CODING_DIMS:
        return f"tile coding needs ≤ {MAX_TILE_CODING_DIMS} observation dims, not {obs.dim}"
    return None


def _is_tabular(info: AlgorithmInfo) -> bool:
    """Tabular bodies: the tabular family and Dyna-Q (tabular, model-based)."""
    return info.family == "tabular" or info.id == "dyna-q"


def _rule(rule_id: str, detail: str = "") -> str:
    text = RULES[rule_id].text
    return f"[{rule_id}] {detail or text}"


def _score(info: AlgorithmInfo, env: EnvSpec, ctx: Context, body: _Body) -> tuple[float, list[str]]:
    """Preference from the rules (higher first) and the sentences that fired."""
    score = 0.0
    reasons: list[str] = []
    small = body.kind in ("table", "linear")
    if env.observation.kind == "discrete" and body.kind == "table":
        score += 3
        reasons.append(_rule("discrete-obs"))
    if ctx.mcu or ctx.tight_memory:
        if small:
            score += 2
            reasons.append(_rule("mcu-small"))
        else:
            score -= 1
            reasons.append(
                _rule("mcu-small", "MCU-class or tight memory: an int8 MLP only if it fits.")
            )
    elif body.kind == "mlp":
        score += 2
        reasons.append(_rule("headroom"))
    elif body.kind == "table" and env.observation.kind == "box":
        score -= 1  # a discretized grid is a last resort when an MLP fits comfortably
    if env.action.kind == "box":
        if info.id in ("sac", "td3"):
            score += 1
            reasons.append(_rule("continuous-actions"))
        elif info.id == "ars" and (ctx.mcu or ctx.tight_memory):
            score += 0.5
            reasons.append(_rule("continuous-actions"))
    elif info.id == "ppo" and body.kind == "mlp":
        score += 0.5  # the most robust discrete-action default in RL Zoo
    if info.id == "sarsa-lambda":
        score += 0.5  # tile coding generalizes across a Box observation; a grid does not
    if ctx.expensive_env:
        if info.model_based:
            score += 3
        elif info.off_policy:
            score += 1.5
        else:
            score -= 1
        reasons.append(
            _rule(
                "expensive-env",
                f"Expensive env ({ctx.expensive_why}): "
                + RULES["expensive-env"].text[len("Expensive environment: ") :],
            )
        )
    if not info.trainable:
        reasons.append(_rule("not-yet"))
    return score, reasons


def _candidates(
    budget: Budget, env: EnvSpec, ctx: Context, info: AlgorithmInfo
) -> list[_Candidate]:
    hp = get_hyperparams(info.id, env.env_id)
    params = dict(hp.params)
    device = budget.device
    obs, act = env.observation, env.action
    n_actions = act.n if act.kind == "discrete" and act.n is not None else 0
    read_as = f" Observations: {obs.note}." if obs.note else ""
    base_reasons = [
        _rule("spaces", f"{info.id} handles {obs.kind} observations and {act.kind} actions "
              f"({info.description}){read_as}")
    ]  # fmt: skip
    if info.library == "sb3" and not info.off_policy and ctx.cores > 1:
        n_envs = int(params.get("n_envs", 1))
        base_reasons.append(
            _rule("cores", f"training.cores = {ctx.cores}: {min(ctx.cores, n_envs)} env "
                  f"worker process(es) for {n_envs} env(s).")
        )  # fmt: skip

    bodies: list[tuple[_Body, str, str, str, list[str]]] = []  # body, dtype, fmt, label, reasons
    fmt_small = "c" if ctx.mcu else "numpy"
    if _is_tabular(info):
        if obs.kind == "discrete" and obs.n is not None:
            states, bins = obs.n, None
        else:
            bins = int(params.get("bins", 8))
            states = bins**obs.dim
        if states > MAX_TABLE_STATES:
            return []
        body = _table_body(states, n_actions, obs, bins)
        grid = f" {bins}^{obs.dim} grid" if bins else ""
        bodies.append((body, "uint8", fmt_small, f"{info.id} table{grid}", []))
    elif info.id == "sarsa-lambda":
        body = _linear_tile_body(obs, n_actions, hp, device.fpu)
        dtype = "fp32" if device.fpu else "int16"
        bodies.append((body, dtype, fmt_small, f"sarsa-lambda tile coding ({dtype})", []))
    elif info.family == "linear":
        dtype = "fp32" if device.fpu or not ctx.mcu else "int16"
        body = _linear_policy_body(obs, act, 4 if dtype == "fp32" else 2)
        bodies.append((body, dtype, fmt_small, f"{info.id} linear ({dtype})", []))
    else:
        if ctx.eight_bit:
            return []
        hidden = [int(w) for w in params.get("net_arch", [64, 64])]
        default_act = "tanh" if info.id in ("ppo", "a2c") else "relu"
        activation = str(params.get("activation_fn", default_act))
        fmt = "c" if ctx.mcu else ("onnx" if device.device_class == "gpu" else "numpy")
        # Preference order; the planner keeps the first that fits (see make_plan).
        # MCUs deploy int8 only; elsewhere fp32 first, int8 when fp32 does not fit.
        dtypes = ("int8",) if ctx.mcu else ("fp32", "int8")
        shape = "-".join(map(str, hidden))
        shapes = [hidden] + [[w] * len(hidden) for w in NARROW_WIDTHS if w < max(hidden)]
        for widths in shapes:
            for dtype in dtypes:
                reasons: list[str] = []
                if dtype == "int8":
                    reasons.append(
                        _rule("int8", "MCU: deploy int8 (4× smaller than fp32, integer kernels).")
                        if ctx.mcu
                        else _rule("int8", "fp32 does not fit the limits: deploy int8.")
                    )
                if widths is not hidden:
                    name = "-".join(map(str, widths))
                    reasons.append(
                        _rule("narrow", f"The tuned {shape} network does not fit: "
                              f"{name} is the widest that does.")
                    )  # fmt: skip
                body = _mlp_body(obs, act, widths, activation, dtype, device.fpu)
                label = f"{info.id} mlp {'-'.join(map(str, widths))} {dtype}"
                bodies.append((body, dtype, fmt, label, reasons))

    out: list[_Candidate] = []
    for body, dtype, fmt, label, extra in bodies:
        score, reasons = _score(info, env, ctx, body)
        if body.kind == "mlp":
            params_out = {**params, "net_arch": body.network["hidden"]}
        else:
            params_out = dict(params)
        out.append(
            _Candidate(info, hp, body, dtype, fmt, label,
                       tuple(base_reasons + reasons + extra), score, params_out)
        )  # fmt: skip
    return out


def make_plan(budget: Budget, env: EnvSpec | str | None = None) -> Plan:
    """Rank every compatible algorithm for ``budget`` on ``env``.

    :param budget: a loaded :class:`~rlbudget.budget.Budget`.
    :param env: an :class:`EnvSpec`, a gymnasium id (overrides ``task.env``), or None for
        ``task.env``.
    :raises PlanError: no env given anywhere.
    """
    if not isinstance(env, EnvSpec):
        from rlbudget.envs import env_spec

        env_id = env or budget.task.env_id
        if not env_id:
            raise PlanError(
                f"{budget.source or 'budget'}: no environment: set task.env in the budget "
                "or pass --env (for example --env CartPole-v1)"
            )
        env = env_spec(env_id)
    infos = list(algorithms().values())
    excluded: list[tuple[str, str]] = []
    compatible: list[AlgorithmInfo] = []
    for info in infos:
        why = _compatible(info, env)
        if why is None:
            compatible.append(info)
        else:
            excluded.append((info.id, f"[spaces] {why}"))
    ctx = _context(budget, env, compatible)

    options: list[Option] = []
    for info in compatible:
        if not info.trainable and not ctx.expensive_env:
            excluded.append(
                (info.id, "[not-yet] deep model-based; listed only when the env is expensive")
            )
            continue
        cands = _candidates(budget, env, ctx, info)
        if not cands:
            if ctx.eight_bit and not _is_tabular(info):
                why = f"[8-bit] {RULES['8-bit'].text}"
            else:
                why = f"[spaces] a table here would have over {MAX_TABLE_STATES:,} states"
            excluded.append((info.id, why))
            continue
        evaluated = []
        for cand in cands:
            est, checks, notes = _estimate(cand, budget, env, ctx)
            evaluated.append((cand, est, checks, notes))
        # MLPs: candidates come in preference order (tuned shape first, fp32 before int8
        # off-MCU, then narrower). Keep the first that fits; if none does, the first.
        if len(evaluated) > 1:
            fitting = [e for e in evaluated if all(c.status != "FAIL" for c in e[2])]
            evaluated = fitting[:1] or evaluated[:1]
        for cand, est, checks, notes in evaluated:
            options.append(
                Option(
                    paradigm="model-based" if cand.info.model_based else cand.body.kind.replace(
                        "table", "tabular"),
                    algorithm=cand.info.id,
                    label=cand.label,
                    library=cand.info.library,
                    trainable=cand.info.trainable,
                    network=cand.body.network,
                    deploy_dtype=cand.dtype,
                    deploy_format=cand.fmt,
                    hyperparams=cand.params,
                    hyperparams_source=cand.hp.source,
                    hyperparams_tuned=cand.hp.tuned,
                    estimates=est,
                    checks=checks,
                    reasons=cand.reasons + notes,
                    score=cand.score,
                )
            )  # fmt: skip

    def key(o: Option) -> tuple[int, int, float, float, int, str]:
        return (
            0 if o.fits else 1,
            0 if o.trainable else 1,
            -o.score,
            o.estimates.train_time_s,
            o.estimates.flash_bytes,
            o.label,
        )

    ranked = sorted(options, key=key)
    final = []
    for i, o in enumerate(ranked, start=1):
        reasons = o.reasons
        if o.fits:
            reasons = (*reasons, _rule("fits"))
        final.append(replace(o, rank=i, reasons=reasons))
    return Plan(budget, env, ctx, tuple(final), tuple(excluded))


def save_plan(plan: Plan, path: str | os.PathLike[str]) -> None:
    """Write the plan as YAML (atomically); ``rlbudget train PLAN.yaml`` reads it."""
    import yaml

    from rlbudget.fileio import atomic_write_text

    text = yaml.safe_dump(plan.to_dict(), sort_keys=False, allow_unicode=True, width=100)
    atomic_write_text(path, text)
