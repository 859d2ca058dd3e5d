"""Parallel collection on several cores (issue 22, item 3): wall time to the target on an
env whose step costs 1 ms, with ``training.cores`` 2 against 1.

Run:
  python benchmarks/parallel.py                 # PPO on SlowCartPole-v1 (1 ms), seeds 0 1 2
  python benchmarks/parallel.py --seeds 0 1 --step-cost 2ms --spin
  python benchmarks/parallel.py --overhead      # the IPC figures of rlbudget/data/parallel.yaml
  python benchmarks/parallel.py --overhead --write

Each run is ``rlbudget train``'s own loop (:func:`rlbudget.train.train_run`): PPO with the
RL Zoo's CartPole-v1 hyperparameters (8 envs), ``rlbudget.step_cost:SlowCartPole-v1``
(CartPole-v1 whose step takes ``--step-cost`` in all: slept, or spun on the CPU with
``--spin``), target 475 confirmed as ``train`` confirms it, ``task.env_step_cost``
declared. ``training.cores`` 1 runs everything in one process pinned to one CPU; 2 lets
rlbudget put the envs and the evaluation episodes in worker processes, pinned to two CPUs.
Each run is a fresh process (``--one``); the runs of a seed follow one another, never
overlap. Wall time to target is the run's own ``wall_s`` (setup, training, evaluations).

Prints a Markdown table (one row per seed, the ratio, the load average before and after)
and writes ``docs/parallel.png`` (wall time per seed, 1 vs 2 cores) and
``docs/parallel.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ENV = "rlbudget.step_cost:SlowCartPole-v1"
ROOT = Path(__file__).resolve().parents[1]


def one(cores: int, seed: int, step_cost_s: float, spin: bool, time_s: float) -> dict[str, Any]:
    """One training run in this process, pinned to ``cores`` CPUs."""
    import rlbudget.step_cost  # noqa: F401  (registers SlowCartPole-v1)
    from rlbudget.env_kwargs import env_kwargs_applied
    from rlbudget.train import train_run
    from rlbudget.train.settings import resolve

    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cpus[:cores])  # the workers inherit it
    kwargs = {"step_cost_s": step_cost_s, "spin": spin}
    with env_kwargs_applied(ENV, kwargs):
        settings = resolve("ppo", ENV, cores=cores, env_step_cost_s=step_cost_s, seed=seed,
                           time_s=time_s, env_steps=100_000, reward_threshold=475.0,
                           overrides={"n_envs": 8, "n_steps": 32, "batch_size": 256,
                                      "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20,
                                      "ent_coef": 0.0, "learning_rate": "lin_0.001",
                                      "clip_range": "lin_0.2"})  # fmt: skip
    settings = dataclasses.replace(settings, env_kwargs=kwargs)
    with tempfile.TemporaryDirectory() as d:
        r = train_run(settings, Path(d) / "run")
    return {"cores": cores, "seed": seed, "stopped_by": r.stopped_by, "steps": r.steps,
            "wall_s": r.wall_s, "env_workers": settings.env_workers,
            "eval_workers": settings.eval_workers, "parallel": settings.parallel}  # fmt: skip


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def overhead(write: bool) -> None:
    """Measure the IPC figures rlbudget.parallel decides by, on plain CartPole-v1 (≈ 20 µs
    a step): a vectorized step's round trip per worker, a worker's start, an evaluation
    episode's round trip."""
    import numpy as np
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rlbudget.envs import make_env
    from rlbudget.policy.model import Head
    from rlbudget.profile.evaluate import EvalWorkers, episode_seeds, evaluate
    from rlbudget.sb3.vecenv import grouped_vec_env

    n = 3000
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 2, (n, 2))
    one_env = DummyVecEnv([lambda: Monitor(make_env("CartPole-v1", guard=False))])
    one_env.reset()
    t = time.perf_counter()
    for a in actions:
        one_env.step(a[:1])
    single = (time.perf_counter() - t) / n
    grouped_vec_env("CartPole-v1", (1, 1)).close()  # the forkserver up, as in a run
    t = time.perf_counter()
    venv = grouped_vec_env("CartPole-v1", (1, 1))
    venv.reset()
    start = (time.perf_counter() - t) / 2
    t = time.perf_counter()
    for a in actions:
        venv.step(a)
    vec = (time.perf_counter() - t) / n
    venv.close()
    ipc = max(0.0, (vec - single) / 2)

    from tests.factories import env_policy, random_mlp  # a small MLP, as trained policies

    policy = env_policy("CartPole-v1", (), random_mlp([4, 64, 64, 2]), Head("argmax"))
    seeds = episode_seeds(0, 200)
    t = time.perf_counter()
    serial = evaluate(policy, "CartPole-v1", seeds=seeds)
    per_episode = (time.perf_counter() - t) / len(seeds)
    with EvalWorkers("CartPole-v1", 2) as pool:
        evaluate(policy, "CartPole-v1", seeds=seeds[:4], workers=pool)  # started
        t = time.perf_counter()
        evaluate(policy, "CartPole-v1", seeds=seeds, workers=pool)
        parallel = (time.perf_counter() - t) / len(seeds)
    episode = max(0.0, 2 * parallel - per_episode)
    figures = {
        "ipc_step_s": float(f"{ipc:.3g}"),
        "worker_start_s": float(f"{start:.3g}"),
        "episode_ipc_s": float(f"{episode:.3g}"),
        "source": (f"python benchmarks/parallel.py --overhead, {time.strftime('%d %B %Y')}, "
                   f"{os.cpu_count()}-core x86-64 shared with other jobs (load {load()}); "
                   f"CartPole-v1 step {single * 1e6:.0f} µs in one process, a 2-worker "
                   f"vectorized step {vec * 1e6:.0f} µs; an evaluation episode "
                   f"{per_episode * 1e3:.2f} ms here (mean length "
                   f"{serial.length_mean:.0f}), {parallel * 1e3:.2f} ms per episode in 2 "
                   "workers"),
    }  # fmt: skip
    import yaml

    text = ("# What worker processes cost (rlbudget.parallel): an IPC round trip per worker\n"
            "# and vectorized step, one worker's start, an evaluation episode's round trip.\n"
            + yaml.safe_dump(figures, sort_keys=False, allow_unicode=True, width=88))  # fmt: skip
    print(text)
    if write:
        (ROOT / "rlbudget" / "data" / "parallel.yaml").write_text(text, encoding="utf-8")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = sorted({r["seed"] for r in rows})
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.38
    for k, cores in enumerate((1, 2)):
        walls = [next(r["wall_s"] for r in rows if r["seed"] == s and r["cores"] == cores)
                 for s in seeds]  # fmt: skip
        ax.bar([i + (k - 0.5) * width for i in range(len(seeds))], walls, width,
               label=f"training.cores = {cores}")  # fmt: skip
    ax.set_xticks(range(len(seeds)), [f"seed {s}" for s in seeds])
    ax.set_ylabel("wall time to target (s)")
    ax.set_title("PPO on CartPole-v1 with a 1 ms env step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--step-cost", default="1ms")
    ap.add_argument("--spin", action="store_true", help="spin on the CPU instead of sleeping")
    ap.add_argument("--time", default="15min", help="training.time of each run")
    ap.add_argument("--overhead", action="store_true")
    ap.add_argument("--write", action="store_true", help="--overhead: write the data file")
    ap.add_argument("--one", nargs=2, type=int, metavar=("CORES", "SEED"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "parallel"))
    args = ap.parse_args()
    from rlbudget import units

    cost, time_s = units.parse_time(args.step_cost), units.parse_time(args.time)
    if args.overhead:
        overhead(args.write)
        return
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], cost, args.spin, time_s)))
        return
    rows, before = [], load()
    for seed in args.seeds:
        for cores in (1, 2):
            cmd = [
                sys.executable,
                __file__,
                "--one",
                str(cores),
                str(seed),
                "--step-cost",
                args.step_cost,
                "--time",
                args.time,
                *(["--spin"] if args.spin else []),
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    after = load()
    print("| seed | 1 core: wall s (steps, stopped by) | 2 cores: wall s (steps, stopped by) "
          "| speed-up |\n|---|---|---|---|")  # fmt: skip
    ratios = []
    for seed in args.seeds:
        a, b = (next(r for r in rows if r["seed"] == seed and r["cores"] == c) for c in (1, 2))
        ratios.append(a["wall_s"] / b["wall_s"])
        print(
            f"| {seed} | {a['wall_s']:.1f} ({a['steps']:,}, {a['stopped_by']}) | "
            f"{b['wall_s']:.1f} ({b['steps']:,}, {b['stopped_by']}) | ×{ratios[-1]:.2f} |"
        )
    total = sum(r["wall_s"] for r in rows if r["cores"] == 1) / sum(
        r["wall_s"] for r in rows if r["cores"] == 2
    )
    print(f"\nspeed-up: ×{total:.2f} in total wall time, median per seed "
          f"×{statistics.median(ratios):.2f}; load average (1, 5, 15 min) before {before}, "
          f"after {after}; {'spun' if args.spin else 'slept'} {args.step_cost} per step; "
          f"2 cores: {rows[1]['parallel']}")  # fmt: skip
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(
        {"rows": rows, "load_before": before, "load_after": after, "spin": args.spin,
         "step_cost": args.step_cost}, indent=1))  # fmt: skip
    plot(rows, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
