"""Env steps and wall time to a return target per hidden width: the source of the
``steps`` figures in ``rlbudget/data/widths.yaml`` that the planner reads
(:mod:`rlbudget.plan.widths`).

Plain Stable-Baselines3 SAC (RL Zoo's Pendulum-v1 settings, ``net_arch`` [w, w]), one torch
thread, evaluated every ``--every`` env steps on ``--episodes`` deterministic episodes;
"steps to target" is the first evaluation whose mean return reaches ``--target``.

Usage (from the repository root):

    python benchmarks/plan_widths.py                           # 256, 64, 32, 16 × seeds 0-2
    python benchmarks/plan_widths.py --widths 64 256 --seeds 0 --max-steps 8000
"""

from __future__ import annotations

import argparse
import statistics
import time


def steps_to_target(
    width: int, seed: int, *, target: float, every: int, episodes: int, max_steps: int
) -> tuple[int | None, float]:
    """(env steps at the first evaluation reaching ``target`` or None, training seconds)."""
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3 import SAC

    torch.set_num_threads(1)
    env = gym.make("Pendulum-v1")
    model = SAC("MlpPolicy", env, learning_rate=1e-3, seed=seed, verbose=0,
                policy_kwargs={"net_arch": [width, width]})  # fmt: skip
    eval_env = gym.make("Pendulum-v1")
    trained_s = 0.0
    while model.num_timesteps < max_steps:
        start = time.perf_counter()
        model.learn(every, reset_num_timesteps=False)
        trained_s += time.perf_counter() - start
        returns = []
        for ep in range(episodes):
            obs, _ = eval_env.reset(seed=10_000 + ep)
            done, total = False, 0.0
            while not done:
                action, _ = model.predict(obs, deterministic=True)
                obs, reward, term, trunc, _ = eval_env.step(action)
                total += float(reward)
                done = term or trunc
            returns.append(total)
        if float(np.mean(returns)) >= target:
            return int(model.num_timesteps), trained_s
    return None, trained_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 64, 32, 16])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--target", type=float, default=-200.0)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=12_000)
    args = parser.parse_args()
    print("| width | seed | steps to target | training s | steps/s |")
    print("|---|---|---|---|---|")
    summary = {}
    for width in args.widths:
        found = []
        for seed in args.seeds:
            steps, seconds = steps_to_target(
                width, seed, target=args.target, every=args.every, episodes=args.episodes,
                max_steps=args.max_steps,
            )  # fmt: skip
            done = steps if steps is not None else args.max_steps
            print(f"| {width}-{width} | {seed} | {steps if steps else f'> {args.max_steps}'} | "
                  f"{seconds:.1f} | {done / seconds:.0f} |", flush=True)  # fmt: skip
            found.append(steps)
        reached = [s for s in found if s is not None]
        summary[width] = (statistics.median(reached) if reached else None, len(reached))
    print()
    for width, (median, n) in summary.items():
        print(f"{width}-{width}: median steps to {args.target:g} = {median} "
              f"({n}/{len(args.seeds)} seeds reached it)")  # fmt: skip


if __name__ == "__main__":
    main()
