"""Emulated cycles of exported policies on the ATmega328P (Arduino Uno), and plan's estimate.

Run: python benchmarks/avr_latency.py [--observations 100]

For each policy below, the C export is linked for the ATmega328P (``avr-gcc -Os``, the
tables in flash as ``__flash``) and run cycle-accurately in simavr on the first
``--observations`` observations (uniform over the env's bounds, clipped to ±5, and seeded),
every action checked against numpy (:func:`rlbudget.emulate.avr.emulate_avr`). It prints
the min / mean / max cycles, the mean in ms at 16 MHz, cycles per MAC (MLPs), the image's
flash and static SRAM (whole image, ``avr-size``) and ``profile``'s estimate
(:func:`rlbudget.profile.latency.estimate_target`) with emulated ÷ estimate.

Policies: CartPole's discretized table (3 × 5 × 6 × 7 bins, float32 values), 64-64 tanh
MLPs on CartPole in float32 and int8, and MountainCar's tile coder (8 tilings of 16 × 16
tiles, 2,312 features, int16 weights: 13.5 KiB, the issue's Sarsa(λ) case).

Needs avr-gcc, avr-libc, libsimavr-dev and a host C compiler (the README's toolchain block).
"""

from __future__ import annotations

import argparse
import sys
from itertools import pairwise

import numpy as np

from rlbudget.compress.quantize import quantize_int8
from rlbudget.compress.tabular import quantize_linear
from rlbudget.devices import get_device
from rlbudget.emulate.avr import emulate_avr, missing_tools
from rlbudget.envs import env_spec
from rlbudget.policy import MLP, Dense, Head, Policy
from rlbudget.policy.model import Discretize, Linear, Normalize, Table, TileCode
from rlbudget.profile.latency import estimate_target


def _spaces(env: str):  # type: ignore[no-untyped-def]
    s = env_spec(env, measure_steps=0)
    return s.observation, s.action


def observations(env: str, n: int) -> np.ndarray:
    obs, _ = _spaces(env)
    low = np.clip(np.nan_to_num(np.asarray(obs.low), neginf=-5.0), -5, 5)
    high = np.clip(np.nan_to_num(np.asarray(obs.high), posinf=5.0), -5, 5)
    return np.random.default_rng(1).uniform(low, high, (n, obs.dim)).astype(np.float32)


def cartpole_table() -> Policy:
    o, a = _spaces("CartPole-v1")
    disc = Discretize(np.array([-2.4, -3, -0.21, -3]), np.array([2.4, 3, 0.21, 3]), (3, 5, 6, 7))
    q = np.random.default_rng(4).standard_normal((3 * 5 * 6 * 7, 2)).astype(np.float32)
    return Policy(o, a, (disc,), Table(q), Head("argmax"), {"env": "CartPole-v1"})


def cartpole_mlp() -> Policy:
    o, a = _spaces("CartPole-v1")
    rng = np.random.default_rng(0)
    sizes = [4, 64, 64, 2]
    layers = tuple(
        Dense((rng.standard_normal((m, n)) / np.sqrt(m)).astype(np.float32),
              (0.1 * rng.standard_normal(n)).astype(np.float32), "tanh" if i < 2 else "identity")
        for i, (m, n) in enumerate(pairwise(sizes))
    )  # fmt: skip
    norm = Normalize(np.zeros(4), np.array([1.0, 4.0, 0.04, 4.0]), clip=10.0)
    return Policy(o, a, (norm,), MLP(layers), Head("argmax"), {"env": "CartPole-v1"})


def mountaincar_tiles() -> Policy:
    o, a = _spaces("MountainCar-v0")
    tc = TileCode(np.array([-1.2, -0.07]), np.array([0.6, 0.07]), 8, 16, None)
    rng = np.random.default_rng(6)
    body = Linear(rng.standard_normal((tc.features, 3)).astype(np.float32),
                  rng.standard_normal(3).astype(np.float32))  # fmt: skip
    policy = Policy(o, a, (tc,), body, Head("argmax"), {"env": "MountainCar-v0"})
    return quantize_linear(policy, "int16")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--observations", type=int, default=100)
    args = parser.parse_args(argv)
    reason = missing_tools()
    if reason is not None:
        print(f"cannot emulate AVR: {reason}", file=sys.stderr)
        return 2
    device = get_device("arduino-uno")
    mlp = cartpole_mlp()
    cases = [
        ("CartPole table (discretize, 630 × 2 fp32)", cartpole_table(), "CartPole-v1"),
        ("64-64 tanh MLP fp32", mlp, "CartPole-v1"),
        ("64-64 tanh MLP int8", quantize_int8(mlp, observations("CartPole-v1", 500)),
         "CartPole-v1"),
        ("MountainCar tile coder 8 × 16², int16", mountaincar_tiles(), "MountainCar-v0"),
    ]  # fmt: skip
    print(
        "| policy | cycles min / mean / max | ms at 16 MHz | cycles/MAC | flash B | "
        "SRAM B | profile's estimate | emulated ÷ estimate |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, policy, env in cases:
        e = emulate_avr(policy, device, observations(env, args.observations))
        flash, sram = (int(e.how.split(f"{k} ")[1].split(" B")[0].replace(",", ""))
                       for k in ("flash", "static SRAM"))  # fmt: skip
        estimate = estimate_target(policy, device)[0].typical
        per_mac = f"{e.cycles_mean / policy.macs:.0f}" if isinstance(policy.body, MLP) or (
            policy.body.kind == "mlp_int8") else "—"  # fmt: skip
        print(f"| {name} | {e.cycles_min:,} / {e.cycles_mean:,.0f} / {e.cycles_max:,} | "
              f"{e.seconds_mean * 1e3:.3f} | {per_mac} | {flash:,} | {sram:,} | "
              f"{estimate * 1e3:.3f} ms | {e.seconds_mean / estimate:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
