"""Deployed bytes of int8 MLP policies against their float32 parents.

Run: python benchmarks/int8_size.py [--widths 64,64]

For each net (hidden widths, activation, observation and action sizes; random He-like
weights, calibrated on 2,000 Gaussian observations of a Box space), the float32 policy and
its ``int8`` quantization (:func:`rlbudget.compress.quantize.quantize_int8`) are measured
two ways:

- **C object**: ``rlbudget export --format c``'s ``policy.c`` compiled as the Cortex-M
  size measurement does (:func:`rlbudget.export.arm.cortex_m_sizes`: ``arm-none-eabi-gcc
  -Os``, ``-ffunction-sections -fdata-sections``), ``.text`` (code, ``.rodata``) plus
  ``.data``, for Cortex-M0+ and M4F;
- **policy file**: the size of ``policy.safetensors`` on disk (every array, with the
  safetensors header of ≈ 60 B per array), as ``save_policy`` writes it;
- **arrays**: the bytes of every array the policy holds
  (:func:`rlbudget.compress.policy_bytes`, the "bytes" ``rlbudget compress`` reports).

The int8 policy is :func:`quantize_int8`'s default: one weight scale per layer, one tanh
table shared by the tanh layers and stored as its 17 knots (``rlbudget compress -m int8``
keeps a table per layer instead where the shared one costs action agreement), and, in the
file, its arrays packed into one per dtype (schema 2). The ratio is float32 bytes over
int8 bytes. Needs ``arm-none-eabi-gcc`` (Debian:
``gcc-arm-none-eabi``); without it the C columns are blank.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from itertools import pairwise
from pathlib import Path

import numpy as np

from rlbudget.compress import policy_bytes
from rlbudget.compress.quantize import quantize_int8
from rlbudget.envs import SpaceSpec
from rlbudget.export.arm import cortex_m_sizes
from rlbudget.export.c import export_c
from rlbudget.policy import MLP, Dense, Head, Policy, save_policy

NETS = [  # (activation, observation dim, action dim, discrete actions)
    ("tanh", 4, 2, True),
    ("relu", 4, 2, True),
    ("tanh", 8, 4, True),
    ("tanh", 3, 1, False),
    ("relu", 3, 1, False),
    ("tanh", 17, 6, False),
    ("relu", 17, 6, False),
]


def make_policy(widths: list[int], activation: str, obs: int, act: int, discrete: bool,
                seed: int = 0) -> Policy:  # fmt: skip
    rng = np.random.default_rng(seed)
    sizes = [obs, *widths, act]
    layers = []
    for i, (n_in, n_out) in enumerate(pairwise(sizes)):
        w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        b = (0.1 * rng.standard_normal(n_out)).astype(np.float32)
        layers.append(Dense(w, b, activation if i < len(sizes) - 2 else "identity"))
    big = 1e30
    obs_space = SpaceSpec("box", (obs,), None, (-big,) * obs, (big,) * obs, "float32")
    if discrete:
        act_space = SpaceSpec("discrete", (), act, None, None, "int64")
        head = Head("argmax")
    else:
        act_space = SpaceSpec("box", (act,), None, (-1.0,) * act, (1.0,) * act, "float32")
        head = Head("clip", np.full(act, -1.0, np.float32), np.full(act, 1.0, np.float32))
    return Policy(obs_space, act_space, (), MLP(tuple(layers)), head, {"transforms": []})


def c_bytes(policy: Policy, tmp: Path) -> dict[str, int]:
    folder = tmp / "c"
    export_c(policy, folder)
    sizes = cortex_m_sizes(folder)
    return {} if sizes is None else {t: s.text + s.data for t, s in sizes.items()}


def file_bytes(policy: Policy, tmp: Path) -> int:
    folder = save_policy(policy, tmp / "pol")
    return (folder / "policy.safetensors").stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", default="64,64", help="hidden widths (default 64,64)")
    args = parser.parse_args(argv)
    widths = [int(v) for v in args.widths.split(",")]
    rng = np.random.default_rng(1)
    print(
        "| net | C fp32 M0+ / M4F (B) | C int8 M0+ / M4F (B) | C ratio M0+ / M4F "
        "| file fp32 (B) | file int8 (B) | file ratio | arrays fp32 → int8 (B) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for activation, obs, act, discrete in NETS:
        parent = make_policy(widths, activation, obs, act, discrete)
        calib = (rng.standard_normal((2000, obs)) * rng.uniform(0.05, 3.0, obs)).astype(np.float32)
        child = quantize_int8(parent, calib)
        row = []
        with tempfile.TemporaryDirectory() as t1, tempfile.TemporaryDirectory() as t2:
            fc, qc = c_bytes(parent, Path(t1)), c_bytes(child, Path(t2))
            ff, qf = file_bytes(parent, Path(t1)), file_bytes(child, Path(t2))
        name = (f"{'-'.join(map(str, widths))} {activation}, obs {obs}, "
                f"{'discrete' if discrete else 'box'} {act}")  # fmt: skip
        row.append(name)
        if fc:
            row += [" / ".join(f"{v:,}" for v in fc.values()),
                    " / ".join(f"{v:,}" for v in qc.values()),
                    " / ".join(f"{fc[t] / qc[t]:.2f}×" for t in fc)]  # fmt: skip
        else:
            row += ["", "", ""]
        row += [f"{ff:,}", f"{qf:,}", f"{ff / qf:.2f}×"]
        fa, qa = policy_bytes(parent), policy_bytes(child)
        row.append(f"{fa:,} → {qa:,} ({fa / qa:.2f}×)")
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
