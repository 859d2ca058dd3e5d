"""Time to threshold: rlbudget's built-in agents vs Stable-Baselines3, in one run.

Run: python benchmarks/time_to_threshold.py [--cap-s 300] [--seed 0] [--png out.png]

Each task trains until the greedy (deterministic) policy's mean return over 100
evaluation episodes on a separate env reaches the threshold, checked every
``check`` env steps, or until the time cap. Evaluation time is excluded from
the training wall time for both sides. SB3 runs with one torch thread and the
RL Zoo hyperparameters where the Zoo has them for the env (else SB3's defaults);
rlbudget runs with its defaults from rlbudget/data/hyperparams/.

Prints a Markdown table: wall time and env steps to threshold, steps/s, and the
size of the trained policy (rlbudget: the policy's arrays; SB3: the float32
parameters of ``model.policy``, actor and critic, as saved in its zip). rlbudget's
row also gives the deployed form and its size: a table packed to its greedy actions
(``pack_table``: lossless, the same action in every state) or tile-coding weights in
int16 (``quantize_linear``), with the deployed policy's return over the same 100
evaluation episodes; "smaller" compares that deployed size with SB3's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlbudget.agents.common import TrainResult
from rlbudget.agents.linear import SarsaLambdaConfig, train_sarsa_lambda
from rlbudget.agents.tabular import TabularConfig, train_tabular
from rlbudget.compress.tabular import pack_table, policy_bytes, quantize_linear
from rlbudget.envs import make_env
from rlbudget.hyperparams import get_hyperparams
from rlbudget.profile.evaluate import evaluate

EVAL_EPISODES = 100


@dataclass
class Task:
    env_id: str
    threshold: float
    check: int  # env steps between evaluations
    builtin: str
    sb3: str


TASKS = [
    Task("FrozenLake-v1", 0.70, 2_500, "q-learning", "ppo"),
    Task("Taxi-v4", 7.5, 10_000, "q-learning", "ppo"),
    Task("MountainCar-v0", -130.0, 5_000, "sarsa-lambda", "dqn"),
]


@dataclass
class Outcome:
    reached: bool
    steps: int
    train_s: float
    policy_bytes: int
    final_return: float
    deployed: str = ""  # rlbudget only: how the policy is deployed
    deployed_bytes: int = 0
    deployed_return: float = float("nan")


class Clock:
    """Training time with evaluation time taken out."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.excluded = 0.0

    def exclude(self, fn: Callable[[], float]) -> float:
        t = time.perf_counter()
        value = fn()
        self.excluded += time.perf_counter() - t
        return value

    @property
    def train_s(self) -> float:
        return time.perf_counter() - self.start - self.excluded


def run_builtin(task: Task, cap_s: float, seed: int) -> Outcome:
    hp = get_hyperparams(task.builtin, task.env_id)
    clock = Clock()
    state: dict[str, Any] = {"next": task.check, "ret": float("-inf"), "reached": False}

    def on_episode(ep: Any, current: Callable[[], Any]) -> bool:
        if clock.train_s > cap_s:
            return True
        if ep.step >= state["next"]:
            state["next"] = (ep.step // task.check + 1) * task.check
            result = clock.exclude(
                lambda: (
                    evaluate(
                        current(), task.env_id, episodes=EVAL_EPISODES, seed=seed + 1
                    ).return_mean
                )
            )
            state["ret"] = result
            if result >= task.threshold:
                state["reached"] = True
                return True
        return False

    params = dict(hp.params)
    result: TrainResult
    if task.builtin == "sarsa-lambda":
        params["lam"] = params.pop("lambda")
        cfg = SarsaLambdaConfig(**params, n_timesteps=10_000_000, seed=seed)
        result = train_sarsa_lambda(task.env_id, cfg, on_episode=on_episode)
    else:
        keys = {"alpha", "gamma", "epsilon_start", "epsilon_end", "epsilon_decay_fraction"}
        # The tuned n_timesteps sets the exploration schedule; training may run longer.
        cfg_t = TabularConfig(algorithm=task.builtin, n_timesteps=hp.n_timesteps, seed=seed,
                              **{k: v for k, v in params.items() if k in keys})  # fmt: skip
        result = train_tabular(task.env_id, cfg_t, on_episode=on_episode)
    trained = result.policy
    if task.builtin == "sarsa-lambda":
        deployed, how = quantize_linear(trained, "int16"), "int16 weights"
    else:
        deployed = pack_table(trained)
        how = f"packed {deployed.provenance['transforms'][-1]['bits']}-bit actions"
    # The same evaluation episodes as the last check (seed + 1).
    ret = evaluate(deployed, task.env_id, episodes=EVAL_EPISODES, seed=seed + 1).return_mean
    return Outcome(state["reached"], result.steps, clock.train_s, policy_bytes(trained),
                   state["ret"], how, policy_bytes(deployed), ret)  # fmt: skip


def sb3_kwargs(algo: str, env_id: str) -> tuple[dict[str, Any], int]:
    """RL Zoo hyperparameters as SB3 keyword arguments (schedules made constant)."""
    hp = get_hyperparams(algo, env_id)
    kwargs: dict[str, Any] = {}
    net_arch = None
    for k, v in hp.params.items():
        if k in ("n_envs", "normalize", "policy", "activation_fn"):
            continue
        if k == "net_arch":
            net_arch = list(v)
            continue
        if isinstance(v, str) and v.startswith("lin_"):
            v = float(v[4:])
        kwargs[k] = v
    if net_arch is not None:
        kwargs["policy_kwargs"] = {"net_arch": net_arch}
    return kwargs, int(hp.params.get("n_envs", 1)) if hp.tuned else 1


def run_sb3(task: Task, cap_s: float, seed: int) -> Outcome:
    import torch
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    kwargs, n_envs = sb3_kwargs(task.sb3, task.env_id)
    venv = make_vec_env(lambda: make_env(task.env_id), n_envs=n_envs, seed=seed)
    cls = {"ppo": PPO, "dqn": DQN}[task.sb3]
    model = cls("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **kwargs)
    clock = Clock()
    state: dict[str, Any] = {"next": task.check, "ret": float("-inf"), "reached": False}

    def sb3_eval() -> float:
        env = make_env(task.env_id)
        obs, _ = env.reset(seed=seed + 1)
        returns = []
        for _ in range(EVAL_EPISODES):
            total, done = 0.0, False
            while not done:
                action, _ = model.predict(obs, deterministic=True)
                obs, r, term, trunc, _ = env.step(int(action))
                total += float(r)
                done = term or trunc
            returns.append(total)
            obs, _ = env.reset()
        return float(np.mean(returns))

    class Stop(BaseCallback):  # type: ignore[misc]
        def _on_step(self) -> bool:
            if clock.train_s > cap_s:
                return False
            if self.num_timesteps >= state["next"]:
                state["next"] = (self.num_timesteps // task.check + 1) * task.check
                state["ret"] = clock.exclude(sb3_eval)
                if state["ret"] >= task.threshold:
                    state["reached"] = True
                    return False
            return True

    model.learn(total_timesteps=10_000_000, callback=Stop())
    size = sum(p.numel() * p.element_size() for p in model.policy.parameters())
    return Outcome(state["reached"], model.num_timesteps, clock.train_s, int(size), state["ret"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cap-s", type=float, default=300.0, help="time cap per run (s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(
        "| env | threshold | side | algorithm | reached | env steps | train s | steps/s "
        "| policy bytes | deployed as | deployed bytes | deployed return | speed-up | smaller |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for task in TASKS:
        ours = run_builtin(task, args.cap_s, args.seed)
        theirs = run_sb3(task, args.cap_s, args.seed)
        for side, algo, o in (("rlbudget", task.builtin, ours), ("SB3", task.sb3, theirs)):
            # If SB3 did not reach the threshold, its time is only the cap: a lower bound.
            at_least = "" if theirs.reached else "≥ "
            speed = f"{at_least}{theirs.train_s / ours.train_s:.0f}×" if side == "rlbudget" else ""
            small = (
                f"{theirs.policy_bytes / ours.deployed_bytes:.0f}×" if side == "rlbudget" else ""
            )
            deployed = (
                f"{o.deployed} | {o.deployed_bytes:,} | {o.deployed_return:.3g}"
                if o.deployed
                else "float32 | | "
            )
            print(
                f"| {task.env_id} | {task.threshold:g} | {side} | {algo} | "
                f"{'yes' if o.reached else f'no ({o.final_return:.3g})'} | {o.steps:,} | "
                f"{o.train_s:.2f} | {o.steps / max(o.train_s, 1e-9):,.0f} | {o.policy_bytes:,} "
                f"| {deployed} | {speed} | {small} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
