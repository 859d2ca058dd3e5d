"""Decision latency at batch 1: SB3 ``predict`` vs rlbudget's numpy ``Policy.act`` and the C
export (fp32 and int8) called through ctypes.

Run: python benchmarks/decision_latency.py [--calls 5000] [--repeats 5]

Two policies, untrained (latency does not depend on the weights' values): PPO 64-64 tanh
on CartPole-v1 (discrete, argmax head) and SAC 256-256 relu on Pendulum-v1 (Box,
tanh_rescale head). Each is converted in-process with ``from_model``; both sides then act
on the same observations, one at a time, in one process with one torch thread, after a
warm-up. Prints a Markdown table: the median over ``--repeats`` of the mean µs per
decision, and the speed-ups over SB3. The C columns build the policy's C export (and its
int8 quantization, calibrated on the same observations) as a shared library with the host
compiler (``-std=c99 -O2``, :class:`rlbudget.export.host.HostPolicy`) and time one ctypes
call per decision, the call's own overhead included.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch
    from stable_baselines3 import PPO, SAC

    from rlbudget.agents.sb3_convert import from_model
    from rlbudget.compress.quantize import quantize_int8
    from rlbudget.envs import make_env
    from rlbudget.export.host import HostPolicy

    torch.set_num_threads(1)
    cases = [
        ("PPO 64-64 tanh", "CartPole-v1", PPO, {"net_arch": [64, 64]}),
        ("SAC 256-256 relu", "Pendulum-v1", SAC, {"net_arch": [256, 256]}),
    ]
    print("| policy | env | SB3 predict (µs) | numpy act (µs) | C fp32 (µs) | C int8 (µs) "
          "| speed-up numpy / C fp32 / C int8 | numpy agrees with SB3 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for label, env_id, cls, kwargs in cases:
        env = make_env(env_id)
        model = cls("MlpPolicy", env, policy_kwargs=kwargs, seed=0, device="cpu")
        policy = from_model(model)
        space = env.observation_space
        low = np.maximum(space.low, -5.0)
        high = np.minimum(space.high, 5.0)
        obs = rng.uniform(low, high, size=(args.calls, *space.shape)).astype(np.float32)
        sb3 = per_call_us(lambda o, m=model: m.predict(o, deterministic=True), obs, args.repeats)
        ours = per_call_us(policy.act, obs, args.repeats)
        with tempfile.TemporaryDirectory() as tmp:
            c_fp32 = HostPolicy(policy, Path(tmp) / "fp32")
            c_int8 = HostPolicy(quantize_int8(policy, obs), Path(tmp) / "int8")
            fp32_us = per_call_us(c_fp32.act, obs, args.repeats)
            int8_us = per_call_us(c_int8.act, obs, args.repeats)
        theirs = np.stack([model.predict(o, deterministic=True)[0] for o in obs[:1000]])
        mine = np.stack([np.asarray(policy.act(o)) for o in obs[:1000]])
        agree = (
            f"{np.mean(theirs == mine):.1%}"
            if mine.dtype.kind == "i"
            else f"max |Δ| {np.abs(theirs - mine).max():.1e}"
        )
        speedups = " / ".join(f"{sb3 / t:.0f}×" for t in (ours, fp32_us, int8_us))
        print(
            f"| {label} | {env_id} | {sb3:.1f} | {ours:.1f} | {fp32_us:.2f} | {int8_us:.2f} "
            f"| {speedups} | {agree} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
