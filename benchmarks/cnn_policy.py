"""An SB3 ``CnnPolicy`` (NatureCNN) as a framework-free policy: sizes, agreement and the
int8 C/ONNX exactness, and the decision latency of every deployed format on this host.

An untrained PPO ``CnnPolicy`` on Atari's observation (84×84 grayscale, 4 stacked frames,
channels last as gymnasium's ``FrameStackObservation`` gives them; 6 actions), converted
in-process; int8 calibrated on random images (no Atari env is installed here: the figures
are of the conversion and the runtimes, not of a trained agent's return). Latency: batch 1,
one thread, mean per call, median of ``--repeats`` passes over ``--calls`` images.

    python benchmarks/cnn_policy.py --calls 300 --repeats 3 --check 1000
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

import gymnasium as gym
import numpy as np

SHAPE = (84, 84, 4)
ACTIONS = 6


class Frames(gym.Env[np.ndarray, int]):
    """Random 84×84×4 uint8 frames, 6 actions."""

    observation_space = gym.spaces.Box(0, 255, SHAPE, np.uint8)
    action_space = gym.spaces.Discrete(ACTIONS)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:  # type: ignore[type-arg]
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:  # type: ignore[type-arg]
        return self.observation_space.sample(), 0.0, False, False, {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--check", type=int, default=1000, help="frames compared")
    parser.add_argument("--calibration", type=int, default=500, help="int8 calibration frames")
    args = parser.parse_args()
    n = args.check

    import torch
    from decision_latency import per_call_us  # this folder is on sys.path when run as a script
    from stable_baselines3 import PPO

    from rlbudget.compress.quantize_conv import quantize_cnn
    from rlbudget.export.host import HostPolicy
    from rlbudget.export.onnx import export_onnx, run_onnx
    from rlbudget.profile.latency import deployed_actor
    from rlbudget.sb3.convert import from_model

    torch.set_num_threads(1)
    model = PPO("CnnPolicy", Frames(), n_steps=8, batch_size=8, seed=0, device="cpu")
    policy = from_model(model)
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, (max(args.calls, n, args.calibration), *SHAPE), dtype=np.uint8)
    int8 = quantize_cnn(policy, obs[: args.calibration])
    theirs = model.predict(obs[:n], deterministic=True)[0]
    print(f"NatureCNN PPO on {SHAPE} uint8, {ACTIONS} actions (untrained)")
    for name, p in (("fp32", policy), ("int8", int8)):
        s = p.summary()
        print(f"  {name}: {s['parameters']:,} parameters, {s['bytes']:,} B of arrays, "
              f"{s['macs']:,} MACs, {s['buffer_bytes']:,} B of activation buffers")  # fmt: skip
    ours, mine = policy.act(obs[:n]), int8.act(obs[:n])
    print(f"  numpy fp32 agrees with SB3 predict on {np.mean(ours == theirs):.1%} of {n:,} "
          "random frames")  # fmt: skip
    print(f"  numpy int8 agrees with numpy fp32 on {np.mean(mine == ours):.1%}")
    with tempfile.TemporaryDirectory() as tmp:
        host = HostPolicy(int8, f"{tmp}/c")
        c = np.array([host.act(o) for o in obs[:n]])
        print(f"  C int8 equals numpy int8 on {np.sum(c == mine):,} of {n:,}")
        onnx = run_onnx(export_onnx(int8, f"{tmp}/onnx").files[0], obs[:n].astype(np.float32))
        print(f"  ONNX int8 equals numpy int8 on {np.sum(onnx == mine):,} of {n:,}", flush=True)
    timed = obs[: args.calls]
    times = {"SB3 predict": per_call_us(lambda o: model.predict(o, deterministic=True), timed,
                                        args.repeats)}  # fmt: skip
    for label, p, fmt in (("numpy fp32", policy, "numpy"), ("numpy int8", int8, "numpy"),
                          ("C fp32", policy, "c"), ("C int8", int8, "c"),
                          ("onnxruntime fp32", policy, "onnx"),
                          ("onnxruntime int8", int8, "onnx")):  # fmt: skip
        with deployed_actor(p, fmt) as act:
            times[label] = per_call_us(act, timed, args.repeats)
    print("| " + " | ".join(times) + " |")
    print("|" + "---|" * len(times))
    print("| " + " | ".join(f"{v:,.0f} µs" for v in times.values()) + " |")


if __name__ == "__main__":
    main()
