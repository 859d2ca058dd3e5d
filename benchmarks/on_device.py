"""Learning on the device after deployment: the exported C learner adapts, the frozen policy
does not.

Run: python benchmarks/on_device.py [--png on_device.png] [--scenarios frozenlake mountaincar]
                                    [--emulate]

Each scenario trains a built-in agent (rlbudget's own trainer, default hyperparameters of
``rlbudget/data/hyperparams/``), exports it with ``export --format c --learn``
(:func:`rlbudget.export.learn.export_learner`), compiles it for this host and drives it
through ctypes (:class:`rlbudget.export.host_learn.HostLearner`): the "device". Then the
physics change, and the device keeps acting (``rlb_policy_act_explore``) and learning
(``rlb_policy_learn``) in the changed env. Every ``eval_every`` steps the device's greedy
policy (``rlb_policy_act``) is evaluated on fresh episodes of the changed env, next to the
frozen policy (the same export without learning, which is the policy as shipped).

- **frozenlake**: Q-learning on FrozenLake-v1 (slippery, the default), learner in Q16.16
  (an M0+ has no FPU). After deployment the ice is no longer slippery (``is_slippery=False``,
  an env kwarg): the slippery policy's careful moves (it steps away from holes to let the
  slip carry it) now walk into walls forever. Target return 1.0: without slips the goal is
  always reached.
- **mountaincar**: tile-coded Sarsa(λ) on MountainCar-v0, learner in float32 (an M4F).
  After deployment the engine pushes the other way: ``force`` 0.001 → −0.001 (its wires
  swapped in a repair; :func:`engine` sets ``env.unwrapped.force``, for which gymnasium's
  MountainCar has no kwarg). Target return: the frozen policy's own mean return on the
  original physics. (A merely weaker engine, 0.0008, was tried first: in a 40,000-step trial the
  learner levelled off near −160, the frozen policy at −165, below a target the weaker
  engine may not allow.)

"Recovered" is the first evaluation whose mean return is at least the target minus 10 % of
its magnitude (90 % of a positive target; for MountainCar's negative returns, at most 10 %
more steps than the target's). ``--emulate`` adds the FrozenLake learner's emulated cost on
an M0+ (RP2040 at 133 MHz, and the same cycles at 48 MHz for a SAMD21-class part): the
state's RAM (exact) and the update's cycles (unicorn, :mod:`rlbudget.emulate.learn`).

Prints a Markdown table; ``--png`` plots return over device steps.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlbudget.agents.learner import learn_params
from rlbudget.export.host_learn import HostLearner
from rlbudget.policy import Policy


@dataclass(frozen=True)
class Scenario:
    name: str
    env_id: str
    train: Callable[[], Policy]
    dtype: str
    original: Callable[[], Any]  # the env the policy was trained for
    changed: Callable[[], Any]  # the env after deployment
    change: str  # in words
    target: float | None  # None: the frozen policy's return on the original physics
    steps: int
    eval_every: int
    eval_episodes: int
    epsilon: float | None = None  # the learner's, when not the training config's


def _frozenlake() -> Policy:
    from rlbudget.agents.tabular import TabularConfig, train_tabular

    return train_tabular("FrozenLake-v1", TabularConfig(n_timesteps=50_000)).policy


def _mountaincar() -> Policy:
    from rlbudget.agents.linear import SarsaLambdaConfig, train_sarsa_lambda

    cfg = SarsaLambdaConfig(n_timesteps=50_000, gamma=1.0, epsilon=0.0)
    return train_sarsa_lambda("MountainCar-v0", cfg).policy


def engine(force: float) -> Any:
    """MountainCar-v0 with ``force`` instead of 0.001 (set on the unwrapped env)."""
    env = gym.make("MountainCar-v0")
    env.unwrapped.force = force  # type: ignore[attr-defined]
    return env


SCENARIOS = {
    "frozenlake": Scenario(
        "frozenlake", "FrozenLake-v1", _frozenlake, "q16.16",
        lambda: gym.make("FrozenLake-v1"), lambda: gym.make("FrozenLake-v1", is_slippery=False),
        "is_slippery True → False", 1.0, 6_000, 250, 20, epsilon=0.1,
    ),
    "mountaincar": Scenario(
        "mountaincar", "MountainCar-v0", _mountaincar, "float32",
        lambda: gym.make("MountainCar-v0"), lambda: engine(-0.001),
        "engine force 0.001 → −0.001", None, 20_000, 1_000, 10,
    ),
}  # fmt: skip


def mean_return(env: Any, act: Callable[[Any], int], episodes: int, seed: int) -> float:
    total = 0.0
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
    return total / episodes


def run(s: Scenario, folder: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    policy = s.train()
    train_s = time.perf_counter() - t0
    params = learn_params(policy, **({} if s.epsilon is None else {"epsilon": s.epsilon}))
    device = HostLearner(policy, params, s.dtype, folder / s.name)
    frozen = HostLearner(policy, params, s.dtype, folder / f"{s.name}-frozen")

    def obs_of(o: Any) -> Any:
        return [o] if np.ndim(o) == 0 else o

    before = mean_return(s.original(), lambda o: frozen.act(obs_of(o)), s.eval_episodes, 10**6)
    target = before if s.target is None else s.target
    goal = target - 0.1 * abs(target)
    evaluate = s.changed()
    curve = [(0, mean_return(evaluate, lambda o: device.act(obs_of(o)), s.eval_episodes, 10**6))]
    frozen_after = curve[0][1]
    env = s.changed()
    obs, _ = env.reset(seed=1)
    a = device.act_explore(obs_of(obs))
    t1 = time.perf_counter()
    for step in range(1, s.steps + 1):
        obs2, reward, terminated, truncated, _ = env.step(a)
        a = device.learn(obs_of(obs), a, float(reward), obs_of(obs2), terminated)
        obs = obs2
        if terminated or truncated:
            device.end_episode()
            obs, _ = env.reset()
            a = device.act_explore(obs_of(obs))
        if step % s.eval_every == 0:
            r = mean_return(evaluate, lambda o: device.act(obs_of(o)), s.eval_episodes, 10**6)
            curve.append((step, r))
    learn_s = time.perf_counter() - t1
    recovered = next((step for step, r in curve if r >= goal), None)
    return {"scenario": s, "target": target, "goal": goal, "before": before,
            "frozen_after": frozen_after, "curve": curve, "recovered": recovered,
            "final": curve[-1][1], "train_s": train_s, "learn_s": learn_s,
            "ram": device.export.ram_bytes, "params": params}  # fmt: skip


def emulated_m0plus() -> list[str]:
    """The FrozenLake learner's state and update cost on an M0+ (emulated)."""
    from rlbudget.agents.tabular import TabularConfig, train_tabular
    from rlbudget.devices import get_device
    from rlbudget.emulate.learn import emulate_update
    from rlbudget.export.learn import learner_size

    policy = train_tabular("FrozenLake-v1", TabularConfig(n_timesteps=50_000)).policy
    params = learn_params(policy, epsilon=0.1)
    env = gym.make("FrozenLake-v1", is_slippery=False)
    rng = np.random.default_rng(0)
    obs, rewards, dones = [], [], []
    o, _ = env.reset(seed=0)
    for _ in range(300):  # a random walk on the lake: the states a learner visits
        o2, r, te, tr, _ = env.step(int(rng.integers(4)))
        obs.append([o])
        rewards.append(float(r))
        dones.append(te)
        o = env.reset()[0] if te or tr else o2
    obs.append([o])
    rp2040 = get_device("rp2040")
    lines = []
    for dtype in ("q16.16", "float32"):
        e = emulate_update(policy, params, dtype, rp2040, obs, rewards, dones)
        at48 = e.cycles_max / 48e6
        lines.append(f"| FrozenLake Q-learning, {dtype} | {learner_size(policy).ram_bytes} B | "
                     f"{e.cycles_mean:,.0f} / {e.cycles_max:,} | {e.latency_s * 1e6:.1f} µs | "
                     f"{at48 * 1e6:.1f} µs |")  # fmt: skip
    return lines


def plot(results: list[dict[str, Any]], path: str) -> None:
    from rlbudget import charts

    fig, axes = charts.figure(5 * len(results), 3.4, ncols=len(results))
    axes = np.atleast_1d(axes)
    for ax, res in zip(axes, results, strict=True):
        s = res["scenario"]
        steps, returns = zip(*res["curve"], strict=True)
        ax.plot(steps, returns, marker="o", ms=3, label="learning on the device (C)")
        ax.axhline(res["frozen_after"], color="grey", ls="--", label="frozen policy")
        ax.axhline(res["goal"], color="green", ls=":", label="90 % of the target")
        ax.set_title(f"{s.env_id}: {s.change}", fontsize=9)
        ax.set_xlabel("device steps after the change")
        ax.set_ylabel("greedy return")
        ax.legend(fontsize=7)
    charts.save(fig, Path(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    ap.add_argument("--png", default=None)
    ap.add_argument("--emulate", action="store_true")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.scenarios:
            results.append(run(SCENARIOS[name], Path(tmp)))
    print(
        "| scenario | change | learner | target | frozen: before → after | device after "
        "learning | steps to 90 % | learner RAM | host s (train / learn) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        s, p = r["scenario"], r["params"]
        rec = f"{r['recovered']:,}" if r["recovered"] is not None else f"not in {s.steps:,}"
        print(f"| {s.env_id} | {s.change} | {p.algorithm} {s.dtype}, α {p.alpha:g}, ε "
              f"{p.epsilon:g} | {r['target']:.3g} | {r['before']:.3g} → {r['frozen_after']:.3g}"
              f" | {r['final']:.3g} | {rec} | {r['ram']:,} B | {r['train_s']:.0f} / "
              f"{r['learn_s']:.0f} |")  # fmt: skip
    for r in results:
        print(
            f"\n{r['scenario'].env_id} curve (step: greedy return): "
            + ", ".join(f"{st}: {v:.3g}" for st, v in r["curve"])
        )
    if args.emulate:
        print(
            "\n| M0+ learner (emulated) | state RAM | cycles mean / max | RP2040 133 MHz (max) "
            "| 48 MHz (max) |\n|---|---|---|---|---|"
        )
        print("\n".join(emulated_m0plus()))
    if args.png:
        plot(results, args.png)
        print(f"\nwrote {args.png}")


if __name__ == "__main__":
    main()
