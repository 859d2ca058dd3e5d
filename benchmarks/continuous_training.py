"""Continuous control in seconds (issue 18): wall time and env steps to a target return
for rlbudget's lean-sac / lean-td3 at 64-64 and 256-256, plain SB3 SAC, and RLtools, in
one run.

Run: python benchmarks/continuous_training.py [--seeds 3] [--envs Pendulum-v1]
     [--trainers lean-sac-64,...] [--cap-s 300] [--png continuous.png]

Targets: Pendulum-v1 −200, MountainCarContinuous-v0 90. The rule is the same for every
trainer: every ``EVAL_EVERY`` env steps (at the next episode end for rlbudget's trainers)
the deterministic policy is evaluated over ``EVAL_EPISODES`` seeded episodes on a separate
env, and the first evaluation whose mean reaches the target stops the run. Wall time is
training time only: the clock stops during evaluations (RLtools' own figures are training
time too) and RLtools' C++ compilation is not counted. One thread everywhere (torch,
MKL). A run that does not reach the target within ``--cap-s`` seconds or the step cap is
shown as not reached, with the time and steps it had.

- ``lean-sac-64`` … ``lean-td3-256``: :func:`rlbudget.agents.offpolicy.train_offpolicy`
  with ``lean-sac.yaml``/``lean-td3.yaml``'s settings for the env, at two layers of 64 or
  256 units; for the 64-64 runs that reach the target, the policy goes through
  ``rlbudget compress -m int8``'s pipeline and the int8 policy's return retention over 50
  paired episodes is kept.
- ``sb3-sac``: plain ``SAC("MlpPolicy", env)`` with the RL Zoo's settings for the env
  (Pendulum: learning_rate 1e-3, 256-256; MountainCar: the Zoo's tuned entry, gSDE).
- ``rltools`` / ``rltools-mkl``: RLtools' Python interface (``pip install rltools``,
  ``rltools[mkl]``), its SAC defaults (64-64-64 MLP, batch 100), each in a subprocess
  (RLtools refuses MKL in a process that imported torch); said why when it cannot run.

Prints a Markdown table (median over seeds, and each seed): wall time to the target without
and then with the evaluations, CPU time (on a shared host, what the run would take alone:
one thread), steps/s by wall and by CPU time; ``--png`` a chart;
``--json`` keeps every run's figures as they come, ``--from-json`` redraws from them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TARGETS = {"Pendulum-v1": -200.0, "MountainCarContinuous-v0": 90.0}
STEP_CAP = {"Pendulum-v1": 20_000, "MountainCarContinuous-v0": 50_000}
EVAL_EVERY = {"Pendulum-v1": 1_000, "MountainCarContinuous-v0": 5_000}
EVAL_EPISODES = 10
INT8_EPISODES = 50
OVERRIDES: dict[str, Any] = {}  # --set KEY=VALUE: lean trainers' hyperparameters (YAML values)
LEAN = ("lean-sac-64", "lean-td3-64", "lean-sac-256", "lean-td3-256")
TRAINERS = (*LEAN, "sb3-sac", "rltools", "rltools-mkl")


@dataclass
class Result:
    trainer: str
    env: str
    seed: int
    reached: bool
    steps: int
    train_s: float  # wall time without evaluations
    note: str = ""
    int8_ratio: float | None = None  # int8 return retention (64-64 lean runs)
    eval_s: float = 0.0  # wall time of the evaluations (train_s + eval_s: the whole run)
    cpu_s: float = 0.0  # process CPU time of training, evaluations out (a shared host's
    # fairer figure: with one thread it is the wall time the run would take alone)

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.train_s if self.train_s > 0 else 0.0


class Clock:
    """Wall and CPU time with the evaluations taken out (and kept: ``paused``)."""

    def __init__(self) -> None:
        self.start, self.cpu_start = time.perf_counter(), time.process_time()
        self.paused, self.cpu_paused = 0.0, 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def cpu(self) -> float:
        return time.process_time() - self.cpu_start - self.cpu_paused

    def evaluate(self, fn: Callable[[], float]) -> float:
        t, c = time.perf_counter(), time.process_time()
        try:
            return fn()
        finally:
            self.paused += time.perf_counter() - t
            self.cpu_paused += time.process_time() - c


def _score(policy: Any, env_id: str, seed: int, episodes: int = EVAL_EPISODES) -> float:
    from rlbudget.profile.evaluate import evaluate

    return float(evaluate(policy, env_id, episodes=episodes, seed=seed + 10_000).return_mean)


def run_lean(name: str, env_id: str, seed: int, cap_s: float) -> Result:
    from rlbudget.agents.offpolicy import OffPolicyConfig, train_offpolicy
    from rlbudget.hyperparams import get_hyperparams

    algo, width = name.rsplit("-", 1)
    params = {**get_hyperparams(algo, env_id).params, "net_arch": [int(width)] * 2, **OVERRIDES}
    cfg = OffPolicyConfig(algorithm=algo, n_timesteps=STEP_CAP[env_id], seed=seed, **params)
    target, every = TARGETS[env_id], EVAL_EVERY[env_id]
    state: dict[str, Any] = {"next": every, "reached": False, "policy": None, "last": None}
    clock = Clock()

    def on_episode(ep: Any, current: Callable[[], Any]) -> bool:
        if ep.step >= state["next"]:
            state["next"] = (ep.step // every + 1) * every
            policy = current()
            state["last"] = clock.evaluate(lambda: _score(policy, env_id, seed))
            if state["last"] >= target:
                state["reached"], state["policy"] = True, policy
                return True
        return clock.elapsed() >= cap_s

    result = train_offpolicy(env_id, cfg, on_episode=on_episode)
    out = Result(name, env_id, seed, state["reached"], result.steps, clock.elapsed(),
                 _last(state["last"]), eval_s=clock.paused, cpu_s=clock.cpu())  # fmt: skip
    if state["reached"] and width == "64":
        out.int8_ratio = int8_ratio(state["policy"], env_id, seed)
    return out


def _last(score: float | None) -> str:
    return "no evaluation yet" if score is None else f"last eval {score:.0f}"


def int8_ratio(policy: Any, env_id: str, seed: int) -> float:
    """What ``rlbudget compress -m int8`` keeps: the int8 policy's return as a part of the
    float policy's (:func:`~rlbudget.compress.pipeline.return_drop`'s rule, so 0.95 is a 5 %
    loss whatever the sign of the returns), over the same ``INT8_EPISODES`` episodes."""
    from rlbudget.compress.pipeline import compress

    return float(compress(policy, "int8", env_id, episodes=INT8_EPISODES, seed=seed + 1).retention)


def run_sb3(env_id: str, seed: int, cap_s: float) -> Result:
    import gymnasium as gym
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    from rlbudget.sb3.convert import from_model

    torch.set_num_threads(1)
    zoo: dict[str, Any] = {"learning_rate": 1e-3}  # RL Zoo sac.yml, Pendulum-v1
    if env_id == "MountainCarContinuous-v0":
        zoo = {"learning_rate": 3e-4, "buffer_size": 50_000, "batch_size": 512,
               "ent_coef": 0.1, "train_freq": 32, "gradient_steps": 32, "gamma": 0.9999,
               "tau": 0.01, "learning_starts": 0, "use_sde": True,
               "policy_kwargs": {"log_std_init": -3.67, "net_arch": [64, 64]}}  # fmt: skip
    target, every = TARGETS[env_id], EVAL_EVERY[env_id]
    clock = Clock()
    model = SAC("MlpPolicy", gym.make(env_id), seed=seed, device="cpu", verbose=0, **zoo)
    state: dict[str, Any] = {"next": every, "reached": False, "last": None}

    class Rule(BaseCallback):
        def _on_step(self) -> bool:
            if model.num_timesteps >= state["next"]:
                state["next"] += every
                state["last"] = clock.evaluate(lambda: _score(from_model(model), env_id, seed))
                if state["last"] >= target:
                    state["reached"] = True
                    return False
            return clock.elapsed() < cap_s

    model.learn(STEP_CAP[env_id], callback=Rule())
    return Result("sb3-sac", env_id, seed, state["reached"], int(model.num_timesteps),
                  clock.elapsed(), _last(state["last"]), eval_s=clock.paused,
                  cpu_s=clock.cpu())  # fmt: skip


def run_rltools(name: str, env_id: str, seed: int, cap_s: float) -> Result:
    """In a subprocess (see the module docstring); a failure becomes the row's note."""
    env = dict(os.environ)
    if name == "rltools":
        env["RL_TOOLS_DISABLE_MKL"] = "1"
    cmd = [sys.executable, __file__, "--rltools-worker", name, env_id, str(seed), str(cap_s)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=cap_s + 900)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return Result(name, env_id, seed, False, 0, 0.0, f"could not run: {why[:200]}")
    return Result(**json.loads(lines[-1]))


def rltools_worker(name: str, env_id: str, seed: int, cap_s: float) -> None:
    import gymnasium as gym
    import numpy as np
    from rltools import SAC

    if name == "rltools-mkl":
        from importlib.metadata import PackageNotFoundError, version

        try:
            version("mkl")
        except PackageNotFoundError:
            raise SystemExit("the mkl extra is not installed: pip install 'rltools[mkl]'") from None

    def factory() -> Any:
        e = gym.wrappers.RescaleAction(gym.make(env_id), -1.0, 1.0)
        e.reset(seed=seed)
        return e

    sac = SAC(factory, STEP_LIMIT=STEP_CAP[env_id], interface_name=name.replace("-", "_"),
              enable_evaluation=False)  # fmt: skip
    state = sac.State(seed)
    target, every = TARGETS[env_id], EVAL_EVERY[env_id]
    clock = Clock()

    def score() -> float:
        ev = factory()
        total = 0.0
        for episode in range(EVAL_EPISODES):
            obs, _ = ev.reset(seed=seed + 10_000 + episode)
            done = False
            while not done:
                action = state.action(np.asarray(obs, np.float32))
                obs, r, terminated, truncated, _ = ev.step(action)
                total += float(r)
                done = terminated or truncated
        return total / EVAL_EPISODES

    steps, reached, last = 0, False, None
    while steps < STEP_CAP[env_id] and clock.elapsed() < cap_s:
        finished = state.step()
        steps += 1
        if steps % every == 0:
            last = clock.evaluate(score)
            if last >= target:
                reached = True
                break
        if finished:
            break
    result = Result(name, env_id, seed, reached, steps, clock.elapsed(), _last(last),
                    eval_s=clock.paused, cpu_s=clock.cpu())  # fmt: skip
    print(json.dumps(asdict(result)))


def run(name: str, env_id: str, seed: int, cap_s: float) -> Result:
    if name in LEAN:
        return run_lean(name, env_id, seed, cap_s)
    if name == "sb3-sac":
        return run_sb3(env_id, seed, cap_s)
    return run_rltools(name, env_id, seed, cap_s)


def table(results: list[Result]) -> str:
    rows = ["| trainer | env | reached | env steps (median) | wall s to target (median) | "
            "+ evaluations s | CPU s to target (median) | steps/s (wall; CPU) | "
            "int8 return kept | per seed (wall s, steps) |",
            "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    keys = dict.fromkeys((r.trainer, r.env) for r in results)
    for trainer, env in keys:
        rs = [r for r in results if r.trainer == trainer and r.env == env]
        ok = [r for r in rs if r.reached]
        steps = f"{statistics.median(r.steps for r in ok):,.0f}" if ok else "–"
        wall = f"{statistics.median(r.train_s for r in ok):.1f}" if ok else "–"
        ran = [r.steps_per_s for r in rs if r.steps]
        sps = statistics.median(ran) if ran else 0.0
        cpu_rates = [r.steps / r.cpu_s for r in rs if r.steps and r.cpu_s > 0]
        cpu_sps = f"{statistics.median(cpu_rates):,.0f}" if cpu_rates else "–"
        evals = f"{statistics.median(r.eval_s for r in ok):.1f}" if ok else "–"
        cpu = f"{statistics.median(r.cpu_s for r in ok):.1f}" if ok else "–"
        ratios = [r.int8_ratio for r in rs if r.int8_ratio is not None]
        int8 = f"{statistics.median(ratios):.3f}" if ratios else "–"
        each = "; ".join(f"{r.train_s:.1f}, {r.steps:,}" if r.reached
                         else f"not reached ({r.train_s:.0f} s, {r.steps:,}; {r.note})"
                         for r in rs)  # fmt: skip
        rows.append(f"| {trainer} | {env} | {len(ok)}/{len(rs)} | {steps} | {wall} | {evals} | "
                    f"{cpu} | {sps:,.0f}; {cpu_sps} | {int8} | {each} |")  # fmt: skip
    return "\n".join(rows)


def chart(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(dict.fromkeys(r.env for r in results))
    fig, axes = plt.subplots(1, len(envs), figsize=(6 * len(envs), 3.5), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        names = list(dict.fromkeys(r.trainer for r in results if r.env == env))
        for i, name in enumerate(names):
            rs = [r for r in results if r.env == env and r.trainer == name]
            for r in rs:
                ax.scatter(r.train_s, i, marker="o" if r.reached else "x",
                           color="C0" if r.reached else "C3")  # fmt: skip
        ax.set_yticks(range(len(names)), names)
        ax.set_xscale("log")
        ax.set_xlabel(f"training wall s to {TARGETS[env]:g} (x: not reached)")
        ax.set_title(env)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--rltools-worker":
        name, env_id, seed, cap = sys.argv[2:6]
        rltools_worker(name, env_id, int(seed), float(cap))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds from this one on")
    parser.add_argument("--envs", default="Pendulum-v1", help="comma-separated")
    parser.add_argument("--trainers", default=",".join(TRAINERS), help="comma-separated")
    parser.add_argument("--cap-s", type=float, default=300.0, help="per run, training seconds")
    parser.add_argument("--png", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write every run's figures")
    parser.add_argument("--from-json", default=None,
                        help="no runs: the table (and --png) of --json files: a,b")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a lean hyperparameter for every run: batch_size=128")  # fmt: skip
    args = parser.parse_args()
    import yaml

    for item in args.set:
        key, _, value = item.partition("=")
        OVERRIDES[key] = yaml.safe_load(value)
    results: list[Result] = []
    if args.from_json is not None:
        results = [Result(**r) for f in args.from_json.split(",")
                   for r in json.loads(Path(f).read_text())]  # fmt: skip
        args.envs = ""
    for env_id in filter(None, args.envs.split(",")):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for name in args.trainers.split(","):
                r = run(name, env_id, seed, args.cap_s)
                results.append(r)
                print(json.dumps(asdict(r)), flush=True)
                if args.json is not None:
                    args.json.write_text(json.dumps([asdict(x) for x in results], indent=1))
    print(table(results))
    if args.png is not None:
        chart(results, args.png)


if __name__ == "__main__":
    main()
