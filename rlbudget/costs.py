"""One cost model: what a policy body costs on a device, and what training it costs.

``plan`` sizes each option with it, ``profile`` estimates the target latency of a real
policy with it, ``distill`` sizes students with it and ``train`` bounds replay buffers
with it (:mod:`rlbudget.replay`). Every figure here is an *estimate* (profile measures what
can be measured).

**A body** (:class:`Body`): parameters, weight bytes, working-RAM bytes, MACs, dense
layers and the cycles outside the MACs, from :func:`table_body`, :func:`tile_coding_body`,
:func:`linear_body` or :func:`mlp_body`.

- **Weights.** int8 MLP, as ``rlbudget compress -m int8`` stores it (per-tensor scales,
  the default): 1 B per weight + 2 B per output (int16 bias) + one odd tanh table shared
  by the tanh layers, stored as its 17 knots (17 B); the per-layer scalars (multiplier,
  shift, zero points) count with the code. fp32: 4 B per parameter. Tabular: the packed
  greedy action table, ⌈log2 |A|⌉ bits per state. Tile-coded linear: one weight per
  feature and action, int16 without an FPU, fp32 with one.
- **Working RAM.** The largest pair of live activation buffers plus input and output
  (TFLite Micro's arena rule), in the deployed dtype, plus int32 accumulators for one
  layer, plus the observation.
- **Flash.** Weights + code: :data:`CODE_BYTES` per body kind (our C export).

**Latency** on a device (:func:`inference`). On the cores that can be emulated (Cortex-M0+,
M3, M4F, M7, M33; AVR) each body carries its :class:`~rlbudget.fitted.Shape` and is priced
by the model fitted to emulation of rlbudget's own C export (:mod:`rlbudget.fitted`,
``data/cycles/fitted.yaml``): cycles / clock, range typical × the core's fitted factors.
Elsewhere, and for a body the fit does not cover (float16, a sparse table), the per-MAC
model (:func:`estimate_latency`)::

    latency = invoke_overhead + layers × layer_overhead
              + MACs / (clock × MACs per cycle for the dtype) + extra_cycles / clock

with the device's published or estimated figures. Published numbers for the same model on
the same chip vary up to ~3× between software stacks, so that estimate is a
:class:`~rlbudget.devices.Range`: ``low = typical / SPREAD``, ``high = typical × SPREAD``
with ``SPREAD = 1.75`` (high/low ≈ 3×). **Energy** per decision = active power × latency.

Where the model is weak: a published measurement gives ≈1 ms for a 33×20×10×4 int8 MLP
(900 MACs) on an 80 MHz Cortex-M4F, about twenty times what our C export takes there (the
fitted model: 4,098 cycles, 51 µs). The published figure probably includes an interpreter,
I/O or unoptimized kernels; for a stack like that, treat the estimate as a lower bound and let
``rlbudget profile`` measure.

**Training** on the host: RAM = process baseline + 16 B per trained parameter (weights,
gradients, Adam moments) + the replay buffer (:func:`rlbudget.replay.replay_buffer`);
energy = CPU time × the ``host`` device's active power per busy core
(:func:`host_energy_j`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from rlbudget.devices import Device, Range, get_device
from rlbudget.envs import SpaceSpec
from rlbudget.fitted import (
    Shape,
    fitted_latency,
    linear_shape,
    mlp_shape,
    table_shape,
    tile_shape,
)

SPREAD = 1.75
# Code bytes of the deployed runtime per body kind: our C export (no TFLM interpreter).
# Estimate: a table lookup with a discretizer ≈1 KiB of Thumb-2; a tile coder ≈2 KiB;
# a dense int8 MLP with requantization and a tanh LUT ≈4 KiB. `profile` measures the real size.
CODE_BYTES = {"table": 1024, "linear": 2048, "mlp": 4096}
# An int8 tanh table as compress/quantize.py stores it: one, shared by every tanh layer, as
# its 17 knots (rlbudget.policy.knots.KNOTS; the odd half, 128 B, only where the knots
# would stray more than one step from the exact table).
TANH_TABLE_BYTES = 17
# Host process baselines (measured on a 2-core x86 host: an SB3 process ≈311 MiB RSS, a numpy
# policy ≈27 MiB; training adds gymnasium, optimiser state and rollout buffers — estimate).
BASE_TRAIN_RAM = {"builtin": 120 * 2**20, "sb3": 450 * 2**20, "none": 450 * 2**20}
# Cycles per activation outside the MACs. tanh: int8 LUT ≈8 cycles; tanhf ≈100 cycles with an
# FPU (17–25 ns on the host is ≈60–100 cycles), ≈600 without (soft-float). Estimates.
TANH_CYCLES = {"int8": 8.0, "fp32": 100.0, "fp32-soft": 600.0}


@dataclass(frozen=True)
class Body:
    """What a deployed body costs: enough to count bytes, MACs and cycles."""

    kind: str  # table, linear, mlp
    parameters: int
    weight_bytes: int
    activation_bytes: int
    macs: int
    layers: int
    extra_cycles: float
    network: dict[str, Any]
    shape: Shape | None = None  # what the fitted model reads (rlbudget.fitted); None: no fit


def extra_cycles(nonlinear: int, inputs: int, dtype: str, fpu: bool) -> float:
    """Cycles of a decision outside the MACs: each tanh/sigmoid (:data:`TANH_CYCLES`) and
    ≈ 20 per input value (normalization, quantization)."""
    key = "int8" if dtype == "int8" else ("fp32" if fpu else "fp32-soft")
    return nonlinear * TANH_CYCLES[key] + 20.0 * inputs


def table_body(
    states: int, n_actions: int, obs: SpaceSpec, bins: int | None, *, packed: bool = True
) -> Body:
    """A packed greedy action table over ``states`` (a ``bins``-per-dim grid for a Box);
    ``packed=False``: the value table itself (its latency only; the bytes stay packed)."""
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
    shape = table_shape(obs.dim if obs.kind == "box" else 0, n_actions, packed)
    return Body("table", states * n_actions, weight_bytes, 4 * obs.dim + 8, 0, 0, extra, network,
                shape)  # fmt: skip


def tile_coding_body(
    obs: SpaceSpec, n_actions: int, params: Mapping[str, Any], fpu: bool, dtype: str | None = None
) -> Body:
    """A tile-coded linear body (``tilings``, ``tiles_per_dim``, ``hash_size`` in ``params``),
    weights in ``dtype`` (fp32, int16 or int8; by default fp32 with an FPU, else int16)."""
    tilings = int(params.get("tilings", 8))
    tiles = int(params.get("tiles_per_dim", 8))
    hash_size = int(params.get("hash_size", 4096))
    per_tiling = (tiles + 1) ** obs.dim
    features = min(tilings * per_tiling, hash_size)
    dtype = dtype or ("fp32" if fpu else "int16")
    dtype_bytes = {"fp32": 4, "int16": 2, "int8": 1}[dtype]
    n = features * n_actions
    # Per tiling: scale and floor each dim, combine into an index/hash (≈25 cycles per dim).
    extra = tilings * (25.0 * obs.dim + 10.0)
    network = {
        "body": "linear",
        "features": "tile-coding",
        "tilings": tilings,
        "tiles_per_dim": tiles,
        "hash_size": hash_size if tilings * per_tiling > hash_size else None,
        "weights": n,
    }
    shape = tile_shape(tilings, obs.dim, n_actions, dtype)
    return Body(
        "linear", n, n * dtype_bytes, 4 * (obs.dim + tilings + n_actions),
        tilings * n_actions, 1, extra, network, shape,
    )  # fmt: skip


def linear_body(obs: SpaceSpec, act: SpaceSpec, dtype_bytes: int) -> Body:
    """A linear policy over the normalized observation (ARS)."""
    outputs = act.n if act.kind == "discrete" and act.n is not None else act.dim
    n = obs.dim * outputs + outputs + 2 * obs.dim  # W, b, observation mean/std
    network = {"body": "linear", "features": "normalized observation", "shape": [obs.dim, outputs]}
    shape = linear_shape(obs.dim, outputs, {4: "fp32", 2: "int16", 1: "int8"}[dtype_bytes])
    return Body(
        "linear", n, n * dtype_bytes, 4 * (obs.dim + outputs),
        obs.dim * outputs, 1, 10.0 * obs.dim, network, shape,
    )  # fmt: skip


def mlp_body(
    obs: SpaceSpec, act: SpaceSpec, hidden: Sequence[int], activation: str, dtype: str, fpu: bool
) -> Body:
    """A dense MLP (Discrete observations one-hot), deployed in ``dtype`` (int8 or fp32)."""
    outputs = act.n if act.kind == "discrete" and act.n is not None else act.dim
    inputs = obs.n if obs.kind == "discrete" and obs.n is not None else obs.dim  # one-hot
    widths = [inputs, *hidden, outputs]
    weights = sum(a * b for a, b in pairwise(widths))
    biases = sum(widths[1:])
    if dtype == "int8":  # int8 W, int16 bias, one shared tanh table (compress -m int8)
        table = TANH_TABLE_BYTES if activation == "tanh" and hidden else 0
        weight_bytes = weights + 2 * biases + table
        act_bytes = 1
    else:
        weight_bytes = 4 * (weights + biases)
        act_bytes = 4
    live_pair = max(a + b for a, b in pairwise(widths))
    activation_bytes = live_pair * act_bytes + 4 * max(widths[1:])  # + int32 accumulators
    n_tanh = sum(hidden) if activation == "tanh" else 0
    extra = extra_cycles(n_tanh, inputs, dtype, fpu)
    # A Box action is squashed by a tanh head (SAC, TD3); PPO's clip head costs less.
    squash = outputs if act.kind == "box" else 0
    shape = mlp_shape(widths, n_tanh + squash, dtype) if dtype in ("fp32", "int8") else None
    network = {
        "body": "mlp",
        "shape": widths,
        "hidden": list(hidden),
        "activation": activation,
        "parameters": weights + biases,
    }
    return Body(
        "mlp", weights + biases, weight_bytes, activation_bytes, weights, len(widths) - 1, extra,
        network, shape,
    )  # fmt: skip


def mlp_parameters(obs: SpaceSpec, act: SpaceSpec, hidden: Sequence[int]) -> int:
    """Parameters of the deployed MLP (weights and biases; Discrete observations one-hot)."""
    return mlp_body(obs, act, hidden, "relu", "fp32", True).parameters


def estimate_latency(
    device: Device, *, macs: int, layers: int, dtype: str = "int8", extra_cycles: float = 0.0
) -> Range:
    """Seconds per decision on ``device`` (see the module docstring for the model).

    :param macs: multiply-accumulates per decision.
    :param layers: dense layers (each pays the per-layer overhead); 0 for a table lookup.
    :param dtype: the deployed arithmetic (int8, int16, fp16, fp32).
    :param extra_cycles: work outside the MACs (activations, preprocessing, lookups).
    """
    typical = (
        device.invoke_overhead_s
        + layers * device.layer_overhead_s
        + macs / device.macs_per_second(dtype)
        + extra_cycles / device.clock_hz
    )
    return Range(typical / SPREAD, typical, typical * SPREAD)


def estimate_energy(device: Device, latency: Range) -> Range:
    """Joules per decision: active power × latency."""
    return latency * device.active_power_w


@dataclass(frozen=True)
class Inference:
    """One decision of a body on a device: flash, working RAM, latency and energy."""

    flash_bytes: int
    ram_bytes: int
    latency_s: Range
    energy_j: Range


def inference(body: Body, dtype: str, device: Device, obs: SpaceSpec) -> Inference:
    """What ``body`` deployed in ``dtype`` costs on ``device`` (see the module docstring)."""
    flash = body.weight_bytes + CODE_BYTES[body.kind]
    ram = body.activation_bytes + 4 * (obs.dim if obs.kind == "box" else 1)
    fitted = fitted_latency(device, body.shape)
    if fitted is not None:
        latency = fitted.latency_s
    else:
        latency = estimate_latency(device, macs=body.macs, layers=body.layers, dtype=dtype,
                                   extra_cycles=body.extra_cycles)  # fmt: skip
    return Inference(flash, ram, latency, estimate_energy(device, latency))


def host_energy_j(cpu_s: float) -> float:
    """Joules of ``cpu_s`` CPU seconds on the host: the ``host`` device's active power per
    busy core."""
    return cpu_s * get_device("host").active_power_w


def training_ram_bytes(library: str, parameters: int, *, table: bool = False) -> int:
    """Host RAM of a training process before any replay buffer: the library's process
    baseline plus 16 B per trained parameter (weights, gradients, two Adam moments; a
    table: 4 B per value)."""
    base = BASE_TRAIN_RAM.get(library, BASE_TRAIN_RAM["none"])
    return base + parameters * (4 if table else 16)
