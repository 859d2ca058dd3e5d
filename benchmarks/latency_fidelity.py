"""How far are plan's latency estimates from emulation, and the fit that closes the gap
(issue 16, items 1 and 6).

Run: python benchmarks/latency_fidelity.py [--fit] [--cache FILE] [--devices ...]

**The grid** (fixed; weights random and seeded, no training needed):

- MLP, fp32 and int8 (``compress -m int8``): CartPole-v1 (4 → 2, tanh hidden layers,
  argmax: PPO's shape) and Pendulum-v1 (3 → 1 Box, relu, tanh_rescale: SAC's) × hidden
  16-16, 32-32, 64-64, 128-128, 256-256, 32-32-32, 64-64-64.
- Linear policies on the normalized observation (ARS), fp32 and int16 weights:
  Pendulum-v1, Acrobot-v1, MountainCar-v0, CartPole-v1, MountainCarContinuous-v0.
- Tables, a value table (``table-q``) and its packed greedy actions (``table-packed``):
  FrozenLake-v1 (16 states, 4 actions), Taxi-v4 (500, 6), Blackjack-v1 (704, 2),
  MountainCar-v0 (8×8 bins), CartPole-v1 (3×5×6×7), Acrobot-v1 (4^6), and two synthetic
  [-1, 1]^d boxes with 3 actions, Box3 (6^3) and Box5 (4^5), for the dimensions between.
- Tile coding (Sarsa(λ)'s body) with fp32, int16 and int8 weights: MountainCar-v0 (2 dims,
  8 tiles, 3 actions, not hashed), CartPole-v1 (4 dims, 6 tiles, 2 actions) and
  Acrobot-v1 (6 dims, 6 tiles, 3 actions), both hashed into 4096, × 4, 8, 16, 32 tilings.

× the devices (default rp2040: Cortex-M0+, stm32f103: M3, nrf52840 and stm32f446: M4F,
teensy-4: M7, rp2350: M33F, arduino-uno: AVR ATmega328P in simavr where this rlbudget
has ``rlbudget.emulate.avr``; a body whose image does not fit the Uno's 32 KiB flash or
2 KiB SRAM is left out there).

**The split** (fixed): fit on MLP 16-16, 64-64, 256-256, 32-32-32, on the tables of
FrozenLake, Taxi, MountainCar, CartPole, Acrobot, the linear policies of Pendulum, Acrobot and
MountainCar, and on the tile coders (MountainCar 4, 16),
(CartPole 8, 32), (Acrobot 4, 16); the other cells are held out.

For every cell and device it prints plan's typical latency for a body of that shape
(:func:`rlbudget.costs.inference`) and its range, profile's typical estimate of the policy
itself (:func:`rlbudget.profile.latency.estimate_target`), the emulated mean
(:func:`rlbudget.emulate.emulate_policy`: the C export at -O2, every action checked
against numpy) and emulated ÷ plan, and whether plan's range covers the emulated mean.

``--fit`` fits :mod:`rlbudget.fitted`'s model per core on the fit half (least squares on
the relative error, non-negative: a negative coefficient is dropped and the rest refitted),
sets each core's range to cover every cell with a margin (:data:`MARGIN`), writes
``rlbudget/data/cycles/fitted.yaml``, then prints the table with the new model.

Emulation is per core build: the M4F cycles serve every M4F device (zero wait states, see
``data/cycles/flash.yaml``) and the M7's are the M4F build's × the factor in
``data/cycles/cortex-m7.yaml``, as :func:`~rlbudget.emulate.emulate_policy` computes them.
Cycle counts are nearly independent of the data (fixed loops, no data-dependent branches
in the integer kernels), except software float on the M0+ and libm's tanhf: a few
observations per cell suffice (``--observations``, default 8, drawn uniformly over the
observation space, seeded). Needs arm-none-eabi-gcc and ``pip install "rlbudget[emulate]"``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rlbudget import costs
from rlbudget.compress.quantize import quantize_int8
from rlbudget.compress.tabular import pack_table, quantize_linear
from rlbudget.devices import Device, get_device
from rlbudget.emulate import EmulatedLatency, emulate_policy, emulated_core, unavailable
from rlbudget.envs import SpaceSpec, env_spec
from rlbudget.fitted import core_key, cycles_of, features, load_fitted
from rlbudget.policy import (
    MLP,
    Dense,
    Discretize,
    Head,
    Linear,
    Normalize,
    Policy,
    Table,
    TileCode,
)
from rlbudget.profile.latency import estimate_target, policy_shape

DEVICES = "rp2040,stm32f103,nrf52840,stm32f446,teensy-4,rp2350,arduino-uno"
MARGIN = 1.2
"""The range's margin beyond the worst emulated cell, each way: data-dependent software
float and tanhf on observations the grid did not draw, and flash wait states a cache miss
would add (``miss_bound_cycles``)."""
TARGET = 1.5
FITTED_YAML = Path(str(resources.files("rlbudget") / "data" / "cycles" / "fitted.yaml"))


@dataclass(frozen=True)
class Cell:
    """One body of the grid: how to build the policy, and plan's body of the same shape."""

    name: str
    split: str  # fit | holdout
    make: Callable[[], Policy]
    plan: Callable[[Device], tuple[costs.Body, str]]  # plan's body and its dtype


def spaces(env: str) -> tuple[SpaceSpec, SpaceSpec]:
    """An env's spaces; ``Box<d>``: a synthetic [-1, 1]^d observation, 3 actions."""
    if env.startswith("Box"):
        d = int(env[3:])
        box = SpaceSpec("box", (d,), None, (-1.0,) * d, (1.0,) * d, "float32")
        return box, SpaceSpec("discrete", (), 3, None, None, "int64")
    s = env_spec(env, measure_steps=0)
    return s.observation, s.action


def space_obs(policy: Policy, n: int, seed: int = 0) -> np.ndarray:
    s = policy.observation_space
    rng = np.random.default_rng(seed)
    if s.kind == "discrete":
        return rng.integers(0, s.n or 1, n)
    low = np.clip(np.nan_to_num(np.asarray(s.low, np.float64), neginf=-3), -3, 3)
    high = np.clip(np.nan_to_num(np.asarray(s.high, np.float64), posinf=3), -3, 3)
    return rng.uniform(low, high, (n, s.dim)).astype(np.float32)


# --- MLPs ---------------------------------------------------------------------------------

MLP_ENVS = {"CartPole-v1": "tanh", "Pendulum-v1": "relu"}
MLP_HIDDEN = ((16, 16), (32, 32), (64, 64), (128, 128), (256, 256), (32, 32, 32), (64, 64, 64))
MLP_FIT = ((16, 16), (64, 64), (256, 256), (32, 32, 32))


def mlp_policy(env: str, hidden: tuple[int, ...]) -> Policy:
    obs, act = spaces(env)
    activation = MLP_ENVS[env]
    outputs = act.n if act.kind == "discrete" and act.n else act.dim
    widths = [obs.dim, *hidden, outputs]
    rng = np.random.default_rng(sum(hidden))
    layers = tuple(Dense((rng.standard_normal((a, b)) * a**-0.5).astype(np.float32),
                         (0.1 * rng.standard_normal(b)).astype(np.float32),
                         activation if i < len(hidden) else "identity")
                   for i, (a, b) in enumerate(pairwise(widths)))  # fmt: skip
    head = (Head("argmax") if act.kind == "discrete"
            else Head("tanh_rescale", np.asarray(act.low), np.asarray(act.high)))  # fmt: skip
    return Policy(obs, act, (), MLP(layers), head, {"env": env})


def mlp_cell(env: str, hidden: tuple[int, ...], dtype: str) -> Cell:
    def make() -> Policy:
        p = mlp_policy(env, hidden)
        return quantize_int8(p, space_obs(p, 500, seed=1)) if dtype == "int8" else p

    def plan(device: Device) -> tuple[costs.Body, str]:
        obs, act = spaces(env)
        return costs.mlp_body(obs, act, list(hidden), MLP_ENVS[env], dtype, device.fpu), dtype

    split = "fit" if hidden in MLP_FIT else "holdout"
    name = "-".join(map(str, hidden))
    return Cell(f"mlp {name} {dtype} {env.split('-')[0]}", split, make, plan)


# --- tables -------------------------------------------------------------------------------

TABLE_ENVS: dict[str, tuple[int, ...] | None] = {
    "FrozenLake-v1": None, "Taxi-v4": None, "Blackjack-v1": None,
    "MountainCar-v0": (8, 8), "Box3": (6, 6, 6), "CartPole-v1": (3, 5, 6, 7),
    "Box5": (4,) * 5, "Acrobot-v1": (4,) * 6,
}  # fmt: skip
TABLE_FIT = ("FrozenLake-v1", "Taxi-v4", "MountainCar-v0", "CartPole-v1", "Acrobot-v1")


def table_policy(env: str) -> Policy:
    obs, act = spaces(env)
    bins = TABLE_ENVS[env]
    pre: tuple[Discretize, ...] = ()
    states = obs.n or 1
    if bins is not None:
        low = np.clip(np.asarray(obs.low, np.float64), -3, 3)
        high = np.clip(np.asarray(obs.high, np.float64), -3, 3)
        pre = (Discretize(low, high, bins),)
        states = int(np.prod(bins))
    q = np.random.default_rng(4).standard_normal((states, act.n or 1)).astype(np.float32)
    return Policy(obs, act, pre, Table(q), Head("argmax"), {"env": env})


def table_cell(env: str, packed: bool) -> Cell:
    def make() -> Policy:
        p = table_policy(env)
        return pack_table(p) if packed else p

    def plan(device: Device) -> tuple[costs.Body, str]:
        obs, act = spaces(env)
        bins = TABLE_ENVS[env]
        states = int(np.prod(bins)) if bins else obs.n or 1
        return costs.table_body(states, act.n or 1, obs, None, packed=packed), "uint8"

    split = "fit" if env in TABLE_FIT else "holdout"
    return Cell(f"table-{'packed' if packed else 'q'} {env.split('-')[0]}", split, make, plan)


# --- linear (ARS) -------------------------------------------------------------------------

LINEAR_ENVS = ("Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "CartPole-v1",
               "MountainCarContinuous-v0")  # fmt: skip
LINEAR_FIT = ("Pendulum-v1", "Acrobot-v1", "MountainCar-v0")


def linear_policy(env: str) -> Policy:
    obs, act = spaces(env)
    rng = np.random.default_rng(7)
    outputs = act.n if act.kind == "discrete" and act.n else act.dim
    norm = Normalize(rng.standard_normal(obs.dim), rng.uniform(0.5, 2.0, obs.dim))
    body = Linear((0.5 * rng.standard_normal((obs.dim, outputs))).astype(np.float32),
                  (0.1 * rng.standard_normal(outputs)).astype(np.float32))  # fmt: skip
    head = (Head("argmax") if act.kind == "discrete"
            else Head("clip", np.asarray(act.low), np.asarray(act.high)))  # fmt: skip
    return Policy(obs, act, (norm,), body, head, {"env": env})


def linear_cell(env: str, dtype: str) -> Cell:
    def make() -> Policy:
        p = linear_policy(env)
        return p if dtype == "fp32" else quantize_linear(p, dtype)

    def plan(device: Device) -> tuple[costs.Body, str]:
        obs, act = spaces(env)
        return costs.linear_body(obs, act, 4 if dtype == "fp32" else 2), dtype

    split = "fit" if env in LINEAR_FIT else "holdout"
    return Cell(f"linear {dtype} {env.split('-')[0]}", split, make, plan)


# --- tile coding --------------------------------------------------------------------------

TILE_ENVS = {"MountainCar-v0": 8, "CartPole-v1": 6, "Acrobot-v1": 6}  # tiles per dim
TILINGS = (4, 8, 16, 32)
TILE_FIT = {("MountainCar-v0", 4), ("MountainCar-v0", 16), ("CartPole-v1", 8),
            ("CartPole-v1", 32), ("Acrobot-v1", 4), ("Acrobot-v1", 16)}  # fmt: skip
HASH_SIZE = 4096


def tile_policy(env: str, tilings: int) -> Policy:
    obs, act = spaces(env)
    low = np.clip(np.asarray(obs.low, np.float64), -3, 3)
    high = np.clip(np.asarray(obs.high, np.float64), -3, 3)
    tiles = TILE_ENVS[env]
    full = tilings * (tiles + 1) ** obs.dim
    tc = TileCode(low, high, tilings, tiles, HASH_SIZE if full > HASH_SIZE else None)
    rng = np.random.default_rng(6)
    body = Linear(rng.standard_normal((tc.features, act.n or 1)).astype(np.float32),
                  rng.standard_normal(act.n or 1).astype(np.float32))  # fmt: skip
    return Policy(obs, act, (tc,), body, Head("argmax"), {"env": env})


def tile_cell(env: str, tilings: int, dtype: str) -> Cell:
    def make() -> Policy:
        p = tile_policy(env, tilings)
        return p if dtype == "fp32" else quantize_linear(p, dtype)

    def plan(device: Device) -> tuple[costs.Body, str]:
        obs, act = spaces(env)
        params = {"tilings": tilings, "tiles_per_dim": TILE_ENVS[env], "hash_size": HASH_SIZE}
        return costs.tile_coding_body(obs, act.n or 1, params, device.fpu, dtype), dtype

    split = "fit" if (env, tilings) in TILE_FIT else "holdout"
    return Cell(f"tile {tilings}x{TILE_ENVS[env]} {dtype} {env.split('-')[0]}", split, make,
                plan)  # fmt: skip


def grid() -> list[Cell]:
    return [
        *(mlp_cell(e, w, d) for d in ("fp32", "int8") for e in MLP_ENVS for w in MLP_HIDDEN),
        *(linear_cell(e, d) for d in ("fp32", "int16") for e in LINEAR_ENVS),
        *(table_cell(e, p) for p in (False, True) for e in TABLE_ENVS),
        *(tile_cell(e, t, d) for d in ("fp32", "int16", "int8") for e in TILE_ENVS
          for t in TILINGS),
    ]  # fmt: skip


# --- emulation ----------------------------------------------------------------------------


def build_of(device: Device) -> tuple[str, float]:
    """The emulated build of ``device`` and the factor on its count (M7: × the dual-issue
    factor of the M4F build); ``avr`` for an AVR device."""
    if device.core.startswith("AVR"):
        return "avr", 1.0
    return emulated_core(device) or ("", 1.0)


def avr_reason(device: Device) -> str | None:
    """Why the AVR ``device`` cannot be emulated here, or None (rlbudget.emulate.avr)."""
    if importlib.util.find_spec("rlbudget.emulate.avr") is None:
        return "this rlbudget has no AVR emulation (rlbudget.emulate.avr)"
    reason: str | None = importlib.import_module("rlbudget.emulate.avr").missing_tools()
    return reason


def emulate_one(policy: Policy, device: Device, obs: np.ndarray) -> EmulatedLatency | None:
    """Emulated latency of ``policy`` on ``device``; None where the image does not fit an
    AVR part (its 2 KiB SRAM or 32 KiB flash)."""
    if build_of(device)[0] != "avr":
        return emulate_policy(policy, device, obs)
    avr = importlib.import_module("rlbudget.emulate.avr")  # merged with issue 16 item 2
    try:
        e: EmulatedLatency = avr.emulate_avr(policy, device, obs)
    except avr.DoesNotFit:
        return None
    return e


def emulate_grid(cells: list[Cell], devices: list[Device], n_obs: int,
                 cache: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """``cache[cell][build]`` = emulated cycles (mean, min, max) of the cell on that core
    build, emulated once per build on the first device of it (None: it does not fit);
    filled where missing."""
    builds: dict[str, Device] = {}
    for d in devices:
        builds.setdefault(build_of(d)[0], d)
    for cell in cells:
        policy = None
        for build, d in builds.items():
            if build in cache.get(cell.name, {}):
                continue
            policy = policy or cell.make()
            start = time.perf_counter()
            e = emulate_one(policy, d, space_obs(policy, n_obs))
            factor = build_of(d)[1]
            if e is None:
                cache.setdefault(cell.name, {})[build] = None
                print(f"  [{cell.name} on {build}: does not fit]", file=sys.stderr)
                continue
            cache.setdefault(cell.name, {})[build] = [e.cycles_mean / factor,
                                                      e.cycles_min / factor,
                                                      e.cycles_max / factor]  # fmt: skip
            print(f"  [{cell.name} on {build}: {e.cycles_mean / factor:,.0f} cycles, "
                  f"{e.counted}/{e.observations} counted, {time.perf_counter() - start:.1f} s]",
                  file=sys.stderr, flush=True)  # fmt: skip
    return cache


def emulated_cycles(cache: dict[str, Any], cell: Cell, device: Device) -> float | None:
    """The cell's emulated mean cycles on ``device`` (None: it does not fit there)."""
    build, factor = build_of(device)
    got = cache[cell.name][build]
    return None if got is None else float(got[0]) * factor


# --- the fit ------------------------------------------------------------------------------


def nnls_relative(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares on the relative error: min Σ ((x·c − y) / y)²."""
    a, b = x / y[:, None], np.ones(len(y))
    free = [j for j in range(x.shape[1]) if np.any(x[:, j])]
    while True:
        c = np.zeros(x.shape[1])
        c[free] = np.linalg.lstsq(a[:, free], b, rcond=None)[0]
        if not free or c[free].min() >= 0:
            return c
        free.remove(free[int(np.argmin(c[free]))])


def fit(cells: list[Cell], devices: list[Device], cache: dict[str, Any]) -> dict[str, Any]:
    """Coefficients per core and model from the fit half; ranges from every cell."""
    cores: dict[str, Any] = {}
    shapes = [(c, policy_shape(c.make())) for c in cells]
    for d in devices:
        key = core_key(d)
        if key is None or key in cores:
            continue
        rows = [(c, s, emulated_cycles(cache, c, d)) for c, s in shapes if s is not None]
        known = [(c, s, y) for c, s, y in rows if y is not None]
        models: dict[str, dict[str, float]] = {}
        for model in sorted({s.model for _, s, _ in known}):
            names = features(model)
            fit_rows = [(s, y) for c, s, y in known if s.model == model and c.split == "fit"]
            if not fit_rows:  # e.g. no fit cell of this kind fits an AVR part
                continue
            x = np.array([[float(s.counts[k]) for k in names] for s, _ in fit_rows])
            coef = nnls_relative(x, np.array([y for _, y in fit_rows]))
            models[model] = {k: float(f"{v:.4g}") for k, v in zip(names, coef, strict=True)}
        ratios: dict[str, list[float]] = {"fit": [], "holdout": []}
        for c, s, y in known:
            if s.model in models:
                ratios[c.split].append(y / cycles_of(models[s.model], s))
        every = ratios["fit"] + ratios["holdout"]
        low = float(np.floor(min(min(every), 1.0) / MARGIN * 100) / 100)
        high = float(np.ceil(max(max(every), 1.0) * MARGIN * 100) / 100)
        fidelity = {k: [round(min(v), 3), round(max(v), 3)] for k, v in ratios.items() if v}
        cores[key] = {"emulated_on": d.id, "fitted": datetime.date.today().isoformat(),
                      "cells": len(every), "range": [low, high], "models": models,
                      "fidelity": fidelity}  # fmt: skip
    return cores


def versions(devices: list[Device]) -> str:
    from importlib.metadata import version

    def first_line(cmd: list[str]) -> str:
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return (run.stdout or run.stderr).splitlines()[0]

    out = (f"{first_line(['arm-none-eabi-gcc', '--version'])}; unicorn {version('unicorn')}; "
           f"capstone {version('capstone')}")  # fmt: skip
    if any(build_of(d)[0] == "avr" for d in devices):
        out += f"; {first_line(['avr-gcc', '--version'])}; libsimavr (Debian libsimavr-dev)"
    return out


def write_fitted(cores: dict[str, Any], devices: list[Device]) -> None:
    doc = {
        "source": (f"python benchmarks/latency_fidelity.py --fit, "
                   f"{datetime.date.today().isoformat()}: the grid in that file's docstring, "
                   "emulated by rlbudget.emulate (Cortex-M: policy.c at -O2, cycles from "
                   "data/cycles/<core>.yaml, zero wait states except cortex-m3, emulated on the "
                   "stm32f103 with its 2 flash wait states counted (no cache); AVR: "
                   "avr-gcc -Os, simavr)"),
        "toolchain": versions(devices),
        "split": ("fit: MLP 16-16/64-64/256-256/32-32-32 (CartPole tanh, Pendulum relu); linear "
                  "Pendulum, Acrobot, MountainCar; tables FrozenLake, Taxi, MountainCar, CartPole, "
                  "Acrobot; "
                  "tile coders MountainCar 4/16, CartPole 8/32, Acrobot 4/16 tilings. Holdout: "
                  "MLP 32-32/128-128/64-64-64; linear CartPole, MountainCarContinuous; tables "
                  "Blackjack, Box3, Box5; tile coders MountainCar 8/32, CartPole 4/16, "
                  "Acrobot 8/32"),
        "method": ("least squares on the relative error, non-negative coefficients; range = "
                   f"typical × [low, high] covering every grid cell (fit and holdout) "
                   f"with a ×{MARGIN:g} margin each way; fidelity: emulated ÷ typical, "
                   "min and max over the fit and the holdout cells"),
        "cores": {**load_fitted()["cores"], **cores},  # a core not refitted keeps its entry
    }  # fmt: skip
    header = (
        "# Cycles per decision fitted to emulation (rlbudget.fitted). Written by\n"
        "# python benchmarks/latency_fidelity.py --fit; do not edit by hand.\n"
    )
    text = yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True)
    FITTED_YAML.write_text(header + text, encoding="utf-8")
    load_fitted.cache_clear()


# --- the table ----------------------------------------------------------------------------


def report(cells: list[Cell], devices: list[Device], cache: dict[str, Any]) -> dict[str, Any]:
    """Print the fidelity table; return emulated ÷ plan per split and the cells outside
    plan's range."""
    print(
        "| body | split | device | plan typical µs (range) | profile µs | emulated µs "
        "(cycles) | emulated ÷ plan | in range |"
    )
    print("|---|---|---|---|---|---|---|---|")
    out: dict[str, Any] = {"fit": [], "holdout": [], "outside": 0}
    for cell in cells:
        policy = cell.make()
        for d in devices:
            cycles = emulated_cycles(cache, cell, d)
            if cycles is None:
                print(f"| {cell.name} | {cell.split} | {d.id} | – | – | does not fit | – | – |")
                continue
            body, dtype = cell.plan(d)
            plan = costs.inference(body, dtype, d, policy.observation_space).latency_s
            prof, _ = estimate_target(policy, d)
            seconds = cycles / d.clock_hz
            r = seconds / plan.typical
            out[cell.split].append(r)
            inside = plan.low <= seconds <= plan.high
            out["outside"] += not inside
            flag = "" if 1 / TARGET <= r <= TARGET else " **×**"
            print(
                f"| {cell.name} | {cell.split} | {d.id} | {plan.typical * 1e6:,.1f} "
                f"({plan.low * 1e6:,.1f}–{plan.high * 1e6:,.1f}) | {prof.typical * 1e6:,.1f} "
                f"| {seconds * 1e6:,.1f} ({cycles:,.0f}) | {r:.2f}{flag} | "
                f"{'yes' if inside else '**no**'} |"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--observations", type=int, default=8)
    parser.add_argument("--devices", default=DEVICES)
    parser.add_argument("--fit", action="store_true", help="refit and write fitted.yaml")
    parser.add_argument("--cache", type=Path, help="JSON of emulated cycles: read, extended, "
                        "written (a refit without re-emulating)")  # fmt: skip
    parser.add_argument("--only", default="", help="cells whose name contains this")
    args = parser.parse_args(argv)
    devices = [get_device(d) for d in args.devices.split(",")]
    if args.devices == DEVICES:  # the default: leave out what this machine cannot emulate
        for d in [d for d in devices if build_of(d)[0] == "avr" and avr_reason(d)]:
            print(f"leaving out {d.id}: {avr_reason(d)}", file=sys.stderr)
            devices.remove(d)
    for d in devices:
        reason = avr_reason(d) if build_of(d)[0] == "avr" else unavailable(d)
        if reason:
            print(f"cannot emulate {d.id}: {reason}", file=sys.stderr)
            return 2
    cells = [c for c in grid() if args.only in c.name]
    cache = json.loads(args.cache.read_text()) if args.cache and args.cache.exists() else {}
    emulate_grid(cells, devices, args.observations, cache)
    if args.cache:
        args.cache.write_text(json.dumps(cache, indent=1), encoding="utf-8")
    if args.fit:
        write_fitted(fit(cells, devices, cache), devices)
    out = report(cells, devices, cache)
    print()
    for split in ("fit", "holdout"):
        r = out[split]
        if r:
            worst = max(max(r), 1 / min(r))
            print(f"{split}: {len(r)} cells, emulated ÷ plan {min(r):.2f}–{max(r):.2f}, "
                  f"worst ×{worst:.2f} (target ×{TARGET:g})")  # fmt: skip
    print(f"outside plan's range: {out['outside']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
