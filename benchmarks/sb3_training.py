"""Time to CartPole-v1 500: rlbudget's PPO defaults (RL Zoo hyperparameters) vs plain
``PPO("MlpPolicy", env)``, in one run.

Run: python benchmarks/sb3_training.py [--cap-s 240] [--seed 0] [--png sb3.png]

Both sides use the same stop rule as ``rlbudget train``: the greedy numpy policy
(``from_model``) over 100 episodes on a separate env, evaluated every 5,000 env steps,
at or above 500 at two evaluations in a row; one torch thread; evaluation time is
included in the wall time on both sides (as in summary.json). rlbudget's side is
``rlbudget.train.train_run`` itself; the plain side is SB3's defaults (one env,
n_steps 2048, lr 3e-4, 64-64 tanh) driven by the same rule in a callback.

Prints a Markdown table: env steps, wall s, reached?
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

ENV = "CartPole-v1"
TARGET = 500.0
EVAL_EVERY = 5_000
EVAL_EPISODES = 100


def rlbudget_defaults(cap_s: float, seed: int) -> tuple[int, float, bool]:
    from rlbudget.train import resolve, train_run

    settings = resolve("ppo", ENV, min_return=TARGET, time_s=cap_s, seed=seed)
    settings = type(settings)(**{**settings.__dict__, "eval_every": EVAL_EVERY})
    run = train_run(settings, Path(tempfile.mkdtemp()) / "run")
    return run.steps, run.wall_s, run.stopped_by == "target"


def plain_sb3(cap_s: float, seed: int) -> tuple[int, float, bool]:
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from rlbudget.profile.evaluate import evaluate
    from rlbudget.sb3.convert import from_model

    torch.set_num_threads(1)
    start = time.perf_counter()
    model = PPO("MlpPolicy", gym.make(ENV), seed=seed, device="cpu", verbose=0)
    state: dict[str, Any] = {"next": EVAL_EVERY, "evals": [], "reached": False}

    class Rule(BaseCallback):
        def _on_step(self) -> bool:
            if time.perf_counter() - start >= cap_s:
                return False
            if model.num_timesteps >= state["next"]:
                state["next"] += EVAL_EVERY
                r = evaluate(from_model(model), ENV, episodes=EVAL_EPISODES, seed=seed + 10_000)
                state["evals"].append(r.return_mean)
                if len(state["evals"]) >= 2 and min(state["evals"][-2:]) >= TARGET:
                    state["reached"] = True
                    return False
            return True

    model.learn(10_000_000, callback=Rule())
    return int(model.num_timesteps), time.perf_counter() - start, bool(state["reached"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cap-s", type=float, default=240.0, help="time cap per side, seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", type=Path, default=None, help="bar chart of the wall times")
    args = parser.parse_args()
    rows = [
        ("rlbudget PPO defaults (RL Zoo: 8 envs, n_steps 32, lin_1e-3)",
         rlbudget_defaults(args.cap_s, args.seed)),
        ('plain PPO("MlpPolicy", env) (SB3 defaults)', plain_sb3(args.cap_s, args.seed)),
    ]  # fmt: skip
    print(f"CartPole-v1 to {TARGET:g} (two evaluations of {EVAL_EPISODES} episodes in a row, "
          f"every {EVAL_EVERY:,} steps), seed {args.seed}, cap {args.cap_s:g} s\n")  # fmt: skip
    print("| run | env steps | wall s | reached? |")
    print("|---|---:|---:|---|")
    for name, (steps, wall, reached) in rows:
        print(f"| {name} | {steps:,} | {wall:.1f} | {'yes' if reached else 'no'} |")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 2.2))
        ax.barh([name.split(" (")[0] for name, _ in rows][::-1],
                [r[1] for _, r in rows][::-1], color="tab:blue")  # fmt: skip
        ax.set_xlabel(f"wall time to CartPole-v1 {TARGET:g} (s)")
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    main()
