"""How far are plan's and profile's latency estimates from emulation? (issue 16, first version)

Run: python benchmarks/latency_fidelity.py [--observations 100] [--devices rp2040,nrf52840]

For a few bodies (a 4-64-64-2 tanh MLP in fp32 and int8, a CartPole table, a MountainCar
tile coder in fp32 and int16) on Cortex-M0+ (rp2040) and M4F (nrf52840) by default, prints
``plan``'s typical latency (the cost model on a body of the same shape,
:func:`rlbudget.costs.inference`), ``profile``'s typical estimate
(:func:`rlbudget.profile.latency.estimate_target`, and its range), the emulated mean
(:func:`rlbudget.emulate.emulate_policy`: the C export at -O2, every action checked against
numpy) and emulated ÷ estimate. It measures only: the cost model is not changed here.

Observations are drawn uniformly over the observation space (seeded), not visited ones, so
that the benchmark needs no trained policy; data-dependent paths (software float, tanh)
may differ a little from a policy's own states. Needs arm-none-eabi-gcc and
``pip install "rlbudget[emulate]"``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from itertools import pairwise

import numpy as np

from rlbudget import costs
from rlbudget.compress.quantize import quantize_int8
from rlbudget.compress.tabular import quantize_linear
from rlbudget.devices import get_device
from rlbudget.emulate import emulate_policy, unavailable
from rlbudget.envs import env_spec
from rlbudget.policy import MLP, Dense, Discretize, Head, Linear, Policy, Table, TileCode
from rlbudget.profile.latency import estimate_target


def space_obs(policy: Policy, n: int, seed: int = 0) -> np.ndarray:
    s = policy.observation_space
    low = np.clip(np.nan_to_num(np.asarray(s.low, np.float64), neginf=-3), -3, 3)
    high = np.clip(np.nan_to_num(np.asarray(s.high, np.float64), posinf=3), -3, 3)
    return np.random.default_rng(seed).uniform(low, high, (n, s.dim)).astype(np.float32)


def mlp_policy() -> Policy:
    s = env_spec("CartPole-v1", measure_steps=0)
    rng = np.random.default_rng(0)
    widths = [4, 64, 64, 2]
    layers = tuple(Dense((rng.standard_normal((a, b)) * a**-0.5).astype(np.float32),
                         (0.1 * rng.standard_normal(b)).astype(np.float32),
                         "tanh" if i < 2 else "identity")
                   for i, (a, b) in enumerate(pairwise(widths)))  # fmt: skip
    return Policy(s.observation, s.action, (), MLP(layers), Head("argmax"), {"env": "CartPole-v1"})


def table_policy() -> Policy:
    s = env_spec("CartPole-v1", measure_steps=0)
    disc = Discretize(np.array([-2.4, -3, -0.21, -3]), np.array([2.4, 3, 0.21, 3]), (3, 5, 6, 7))
    q = np.random.default_rng(4).standard_normal((3 * 5 * 6 * 7, 2)).astype(np.float32)
    return Policy(s.observation, s.action, (disc,), Table(q), Head("argmax"),
                  {"env": "CartPole-v1"})  # fmt: skip


def tiles_policy() -> Policy:
    s = env_spec("MountainCar-v0", measure_steps=0)
    tc = TileCode(np.array([-1.2, -0.07]), np.array([0.6, 0.07]), 8, 8, None)
    rng = np.random.default_rng(6)
    body = Linear(rng.standard_normal((tc.features, 3)).astype(np.float32),
                  rng.standard_normal(3).astype(np.float32))  # fmt: skip
    return Policy(s.observation, s.action, (tc,), body, Head("argmax"), {"env": "MountainCar-v0"})


def plan_typical(name: str, policy: Policy, device_id: str) -> float | None:
    """plan's typical latency for a body of this shape (None where plan has no such body)."""
    device = get_device(device_id)
    obs, act = policy.observation_space, policy.action_space
    if name.startswith("mlp"):
        dtype = "int8" if name.endswith("int8") else "fp32"
        body = costs.mlp_body(obs, act, [64, 64], "tanh", dtype, device.fpu)
    elif name == "table":
        body, dtype = costs.table_body(3 * 5 * 6 * 7, 2, obs, None), "int8"
    else:
        params = {"tilings": 8, "tiles_per_dim": 8, "hash_size": 1 << 20}
        body = costs.tile_coding_body(obs, 3, params, device.fpu)
        dtype = "fp32" if device.fpu else "int16"
    return costs.inference(body, dtype, device, obs).latency_s.typical


def bodies() -> dict[str, Callable[[], Policy]]:
    mlp = mlp_policy()
    calib = space_obs(mlp, 500, seed=1)
    return {
        "mlp 64-64 fp32": lambda: mlp,
        "mlp 64-64 int8": lambda: quantize_int8(mlp, calib),
        "table (CartPole 3x5x6x7)": table_policy,
        "tile coding 8x8 fp32": tiles_policy,
        "tile coding 8x8 int16": lambda: quantize_linear(tiles_policy(), "int16"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--observations", type=int, default=100)
    parser.add_argument("--devices", default="rp2040,nrf52840")
    args = parser.parse_args(argv)
    devices = args.devices.split(",")
    for d in devices:
        reason = unavailable(get_device(d))
        if reason:
            print(f"cannot emulate {d}: {reason}", file=sys.stderr)
            return 2
    print(
        "| body | device | plan typical µs | profile typical µs (range) | emulated mean µs "
        "(cycles) | emulated ÷ plan | emulated ÷ profile |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, make in bodies().items():
        policy = make()
        obs = space_obs(policy, args.observations)
        for d in devices:
            device = get_device(d)
            start = time.perf_counter()
            e = emulate_policy(policy, device, obs)
            est, _ = estimate_target(policy, device)
            plan = plan_typical(name, policy, d)
            plan_txt = "–" if plan is None else f"{plan * 1e6:,.1f}"
            ratio_plan = "–" if plan is None else f"{e.seconds_mean / plan:.2f}"
            print(f"| {name} | {d} ({device.core}, {device.clock_hz / 1e6:g} MHz) | {plan_txt} | "
                  f"{est.typical * 1e6:,.1f} ({est.low * 1e6:,.1f}–{est.high * 1e6:,.1f}) | "
                  f"{e.seconds_mean * 1e6:,.1f} ({e.cycles_mean:,.0f}) | {ratio_plan} | "
                  f"{e.seconds_mean / est.typical:.2f} |", flush=True)  # fmt: skip
            print(
                f"  [{name} on {d}: {e.counted}/{e.observations} counted, "
                f"{time.perf_counter() - start:.1f} s]",
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
