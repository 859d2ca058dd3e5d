"""Decision latency at batch 1: SB3 ``predict`` vs rlbudget's numpy ``Policy.act`` (fp32 and
int8), the C export (fp32 and int8) called through ctypes, and onnxruntime (fp32 and int8).

Run: python benchmarks/decision_latency.py [--calls 5000] [--repeats 5] [--png latency.png]

Two policies, untrained (latency does not depend on the weights' values): PPO 64-64 tanh
on CartPole-v1 (discrete, argmax head) and SAC 256-256 relu on Pendulum-v1 (Box,
tanh_rescale head). Each is converted in-process with ``from_model``; both sides then act
on the same observations, one at a time, in one process with one torch thread, after a
warm-up. Prints a Markdown table: the median over ``--repeats`` of the mean µs per
decision, and the speed-ups over SB3. The C columns build the policy's C export (and its
int8 quantization, calibrated on the same observations) as a shared library with the host
compiler (``-std=c99 -O3``, :class:`rlbudget.export.host.HostPolicy`) and time one ctypes
call per decision, the call's own overhead included; the ONNX columns run the exported
graph in onnxruntime with one thread (the deployed runtimes of
:func:`rlbudget.profile.latency.deployed_actor`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def per_call_us(fn: Callable[[Any], Any], obs: np.ndarray, repeats: int) -> float:
    for o in obs[:100]:  # warm-up
        fn(o)
    means = []
    for _ in range(repeats):
        t = time.perf_counter()
        for o in obs:
            fn(o)
        means.append((time.perf_counter() - t) / len(obs) * 1e6)
    return statistics.median(means)


COLUMNS = (
    "SB3 predict",
    "numpy fp32",
    "numpy int8",
    "C fp32",
    "C int8",
    "onnxruntime fp32",
    "onnxruntime int8",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--png", type=Path, default=None, help="bar chart of the table")
    args = parser.parse_args()

    import torch
    from stable_baselines3 import PPO, SAC

    from rlbudget.compress.quantize import quantize_int8
    from rlbudget.envs import make_env
    from rlbudget.profile.latency import deployed_actor
    from rlbudget.sb3.convert import from_model

    torch.set_num_threads(1)
    cases = [
        ("PPO 64-64 tanh", "CartPole-v1", PPO, {"net_arch": [64, 64]}),
        ("SAC 256-256 relu", "Pendulum-v1", SAC, {"net_arch": [256, 256]}),
    ]
    head = " | ".join(f"{c} (µs)" for c in COLUMNS)
    print(f"| policy | {head} | speed-up over SB3: numpy / C int8 / ONNX int8 | numpy agrees "
          "with SB3 |")  # fmt: skip
    print("|---|" + "---|" * (len(COLUMNS) + 2))
    rng = np.random.default_rng(0)
    results: dict[str, dict[str, float]] = {}
    for label, env_id, cls, kwargs in cases:
        env = make_env(env_id)
        model = cls("MlpPolicy", env, policy_kwargs=kwargs, seed=0, device="cpu")
        policy = from_model(model)
        space = env.observation_space
        low = np.maximum(space.low, -5.0)
        high = np.minimum(space.high, 5.0)
        obs = rng.uniform(low, high, size=(args.calls, *space.shape)).astype(np.float32)
        int8 = quantize_int8(policy, obs)
        times = {"SB3 predict": per_call_us(lambda o, m=model: m.predict(o, deterministic=True),
                                            obs, args.repeats)}  # fmt: skip
        for name, p, fmt in (("numpy fp32", policy, "numpy"), ("numpy int8", int8, "numpy"),
                             ("C fp32", policy, "c"), ("C int8", int8, "c"),
                             ("onnxruntime fp32", policy, "onnx"),
                             ("onnxruntime int8", int8, "onnx")):  # fmt: skip
            with deployed_actor(p, fmt) as act:
                times[name] = per_call_us(act, obs, args.repeats)
        results[label] = times
        theirs = np.stack([model.predict(o, deterministic=True)[0] for o in obs[:1000]])
        mine = np.stack([np.asarray(policy.act(o)) for o in obs[:1000]])
        agree = (
            f"{np.mean(theirs == mine):.1%}"
            if mine.dtype.kind == "i"
            else f"max |Δ| {np.abs(theirs - mine).max():.1e}"
        )
        sb3 = times["SB3 predict"]
        speedups = " / ".join(f"{sb3 / times[k]:.0f}×"
                              for k in ("numpy fp32", "C int8", "onnxruntime int8"))  # fmt: skip
        print(f"| {label} | " + " | ".join(f"{times[c]:.2f}" for c in COLUMNS)
              + f" | {speedups} | {agree} |", flush=True)  # fmt: skip
    if args.png:
        plot(results, args.png)
        print(f"\nwrote {args.png}")


def plot(results: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.5))
    for ax, (label, times) in zip(np.atleast_1d(axes), results.items(), strict=True):
        ax.barh(list(COLUMNS)[::-1], [times[c] for c in COLUMNS][::-1], color="tab:blue")
        ax.set_xscale("log")
        ax.set_xlabel("µs per decision (log)")
        ax.set_title(label)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
