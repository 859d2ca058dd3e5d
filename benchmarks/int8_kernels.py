"""Emulated cycles per multiply-accumulate of int8 MLPs on Cortex-M0+, M4F and M7 (issue 16.4).

Run: python benchmarks/int8_kernels.py [--observations 10] [--widths 64,64 256,256]

For each net (CartPole's 4 observations and 2 actions, tanh hidden layers, seeded random
weights quantized by :func:`rlbudget.compress.quantize.quantize_int8` on 500 observations
drawn uniformly over [-2, 2]), the C export is emulated on rp2040 (Cortex-M0+), nrf52840
(Cortex-M4F) and teensy-4 (Cortex-M7: the M4F build's count × the CoreMark/MHz factor) by
:func:`rlbudget.emulate.emulate_policy` (every action checked against numpy). Printed: the
mean cycles of a whole decision (input quantization, every layer, requantization, tanh,
argmax), the cycles per MAC (that figure ÷ the body's MACs), and the decision's time at
168 MHz against RLtools' best measured 64-64 float MLP on a 168 MHz Cortex-M4F, 293 µs
(docs/REFERENCE: "Measured against peers and emulators"). Needs arm-none-eabi-gcc and
``pip install "rlbudget[emulate]"``.
"""

from __future__ import annotations

import argparse
import sys
from itertools import pairwise

import numpy as np

from rlbudget.compress.quantize import quantize_int8
from rlbudget.devices import get_device
from rlbudget.emulate import emulate_policy, unavailable
from rlbudget.envs import env_spec
from rlbudget.policy import MLP, Dense, Head, Policy

DEVICES = ("rp2040", "nrf52840", "teensy-4")
RLTOOLS_US, RLTOOLS_HZ = 293.0, 168e6
"""RLtools' 64-64 float MLP on a 168 MHz Cortex-M4F (the figure issue 16.4 names)."""


def cartpole_mlp(widths: list[int], seed: int = 0) -> Policy:
    s = env_spec("CartPole-v1", measure_steps=0)
    rng = np.random.default_rng(seed)
    sizes = [4, *widths, 2]
    layers = tuple(Dense((rng.standard_normal((a, b)) * a**-0.5).astype(np.float32),
                         (0.1 * rng.standard_normal(b)).astype(np.float32),
                         "tanh" if i < len(sizes) - 2 else "identity")
                   for i, (a, b) in enumerate(pairwise(sizes)))  # fmt: skip
    return Policy(s.observation, s.action, (), MLP(layers), Head("argmax"), {"env": "CartPole-v1"})


def observations(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-2, 2, (n, 4)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--observations", type=int, default=10)
    parser.add_argument("--widths", nargs="+", default=["64,64", "256,256"])
    parser.add_argument("--devices", default=",".join(DEVICES))
    args = parser.parse_args(argv)
    devices = args.devices.split(",")
    for d in devices:
        reason = unavailable(get_device(d))
        if reason:
            print(f"cannot emulate {d}: {reason}", file=sys.stderr)
            return 2
    print("| net | MACs | core | cycles per decision | cycles per MAC | µs at 168 MHz "
          "| RLtools 293 µs ÷ this |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for spec in args.widths:
        widths = [int(v) for v in spec.split(",")]
        policy = quantize_int8(cartpole_mlp(widths), observations(500, 1))
        macs = policy.body.macs()
        for d in devices:
            device = get_device(d)
            e = emulate_policy(policy, device, observations(args.observations, 2))
            us = e.cycles_mean / RLTOOLS_HZ * 1e6
            print(f"| 4-{'-'.join(map(str, widths))}-2 tanh int8 | {macs:,} | {device.core} "
                  f"({d}) | {e.cycles_mean:,.0f} | {e.cycles_mean / macs:.2f} | {us:,.1f} "
                  f"| {RLTOOLS_US / us:.2f}× |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
