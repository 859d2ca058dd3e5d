"""What rlbudget's SB3 path costs over plain Stable-Baselines3 at equal settings.

Run: python benchmarks/sb3_overhead.py [--runs 5] [--sac-steps 3000] [--ppo-steps 50000]
     [--algos sac,ppo] [--profile sac]

The same algorithm, env, seed, hyperparameters (RL Zoo's, as ``rlbudget.train.resolve``
gives them: :func:`rlbudget.sb3.training.model_kwargs` builds SB3's arguments for both
sides), replay capacity, one torch thread and step count, trained two ways:

- **plain**: ``SAC("MlpPolicy", env, ...).learn(N)`` on ``DummyVecEnv([Monitor(gym.make(id))]
  × n_envs)`` (VecNormalize where the Zoo normalizes), nothing else;
- **rlbudget**: ``rlbudget.train.train_run`` (what ``rlbudget train`` runs): its
  evaluations, NaN/inf checks, checkpoints, RSS sampling, metrics.csv, curve.png, the policy
  folder. The target return is set out of reach (``min_return`` 1e9) so that every scheduled
  evaluation runs and the run ends at N steps like the plain one: the worst case of a run
  with a target (one that reaches it stops early instead);
- **no curve**: the same with ``train_run(curve=False)``: curve.png left out (drawn later
  from the folder by ``rlbudget.train.draw_curve``), the rest as above.

Each run is a fresh Python process (torch, SB3 and gymnasium imported before the clock
starts, on both sides); the clock runs from building the model (plain) or calling
``train_run`` (rlbudget) to the end. Runs are interleaved in rounds (plain, rlbudget, no
curve; the next round in rotated order, so that no side always runs first); each rlbudget
run is divided by the plain run of its round, and the table gives the median of those
ratios with their range (min–max over the rounds), for wall time and for process CPU time
(less sensitive to a shared machine's load than wall time), and the load average before
and after. "same policy" says whether every rlbudget run's weights equal the plain run's
bit for bit (rlbudget's wrappers must not change what SB3 learns).

``--parts ALGO`` runs rlbudget's side once and prints the process time of each piece it
adds (curve.png, screens, the exploration column, checkpoints, weight checks), timed
without a profiler. ``--profile ALGO`` instead runs rlbudget's side once under cProfile
(CPU time) and prints the entries with the most cumulative time: overall, then rlbudget's
own and SB3's callbacks and wrappers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CASES = {  # algorithm → env (RL Zoo's tuned entries)
    "sac": "Pendulum-v1",
    "ppo": "CartPole-v1",
}
UNREACHABLE = 1e9
SIDES = ("plain", "rlbudget", "no curve")


def _settings(algo: str, steps: int, seed: int) -> Any:
    from rlbudget.train import resolve

    return resolve(algo, CASES[algo], env_steps=steps, min_return=UNREACHABLE, seed=seed)


def _digest(policy: Any) -> str:
    import hashlib

    h = hashlib.sha256()
    arrays = policy.arrays()
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(arrays[name].tobytes())
    return h.hexdigest()[:16]


def plain(algo: str, steps: int, seed: int) -> dict[str, Any]:
    """SB3 alone, with the settings rlbudget resolves (no callback, no evaluation)."""
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from rlbudget.sb3.convert import from_model
    from rlbudget.sb3.training import SB3Config, algorithm_class, model_kwargs

    s = _settings(algo, steps, seed)
    cfg = SB3Config(algo, steps, seed, dict(s.hyperparameters), s.n_envs, 1, s.replay_capacity)
    cls = algorithm_class(algo)
    torch.set_num_threads(1)
    start, cpu0 = time.perf_counter(), time.process_time()
    env: Any = DummyVecEnv([lambda: Monitor(gym.make(s.env_id))] * s.n_envs)
    vecnorm = None
    if s.hyperparameters.get("normalize"):
        env = vecnorm = VecNormalize(env, gamma=float(s.hyperparameters.get("gamma", 0.99)))
    shape = env.action_space.shape
    n_actions = int(np.prod(shape)) if shape else None
    model = cls("MlpPolicy", env, seed=seed, device="cpu", verbose=0,
                **model_kwargs(cfg, n_actions))  # fmt: skip
    model.learn(steps, progress_bar=False)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {"wall_s": wall, "cpu_s": cpu, "steps": int(model.num_timesteps),
            "digest": _digest(from_model(model, vecnorm))}  # fmt: skip


def through_rlbudget(algo: str, steps: int, seed: int, curve: bool = True) -> dict[str, Any]:
    """``rlbudget.train.train_run`` with the same settings."""
    from rlbudget.policy import load_policy
    from rlbudget.train import train_run

    s = _settings(algo, steps, seed)
    run_dir = Path(tempfile.mkdtemp()) / "run"
    start, cpu0 = time.perf_counter(), time.process_time()
    result = train_run(s, run_dir, curve=curve)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {"wall_s": wall, "cpu_s": cpu, "steps": result.steps,
            "digest": _digest(load_policy(run_dir / "policy"))}  # fmt: skip


def _child(side: str, algo: str, steps: int, seed: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", side, "--algo", algo, "--steps", str(steps),
         "--seed", str(seed)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def profile(algo: str, steps: int, seed: int) -> None:
    import cProfile
    import pstats

    import stable_baselines3  # noqa: F401  (imported before profiling, as in the timing)
    import torch  # noqa: F401

    prof = cProfile.Profile(time.process_time)  # CPU time: other processes' load left out
    prof.enable()
    r = through_rlbudget(algo, steps, seed)
    prof.disable()
    print(f"{algo} on {CASES[algo]}, {steps:,} steps through train_run: {r['wall_s']:.1f} s wall")
    stats = pstats.Stats(prof).sort_stats("cumulative")
    stats.print_stats(12)
    stats.print_stats(r"rlbudget|callbacks|vec_env|monitor", 30)


def parts(algo: str, steps: int, seed: int) -> None:
    """rlbudget's side once, with the process time of each piece rlbudget adds (no
    profiler: cProfile inflates Python-heavy code several-fold)."""
    import collections
    import functools

    import stable_baselines3  # noqa: F401  (imported before the clock, as in the timing)
    import torch  # noqa: F401

    import rlbudget.agents.common as common
    import rlbudget.profile.evaluate as evaluate
    import rlbudget.sb3.training as training
    import rlbudget.train.loop as loop

    spent: dict[str, float] = collections.defaultdict(float)
    calls: collections.Counter[str] = collections.Counter()

    def timed(owner: Any, name: str, label: str) -> None:
        f = getattr(owner, name)

        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.process_time()
            try:
                return f(*args, **kwargs)
            finally:
                spent[label] += time.process_time() - t
                calls[label] += 1

        setattr(owner, name, wrapper)

    for owner, name, label in (
        (loop, "write_curve", "curve.png"), (evaluate, "evaluate", "screens"),
        (training, "_exploration", "exploration column"),
        (training, "model_checkpoint", "checkpoint: build"),
        (common.Checkpoint, "save", "checkpoint: write"),
        (training, "check_finite", "weight checks"),
    ):  # fmt: skip
        timed(owner, name, label)
    r = through_rlbudget(algo, steps, seed)
    print(f"{algo} on {CASES[algo]}, {steps:,} steps through train_run: {r['cpu_s']:.2f} s CPU, "
          f"{r['wall_s']:.1f} s wall (load average {_load()})")  # fmt: skip
    for label, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {label}: {seconds:.3f} s CPU in {calls[label]} calls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds of runs per algorithm")
    parser.add_argument("--sac-steps", type=int, default=3000)
    parser.add_argument("--ppo-steps", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--algos", default="sac,ppo")
    parser.add_argument("--profile", choices=sorted(CASES), default=None)
    parser.add_argument("--parts", choices=sorted(CASES), default=None,
                        help="time each piece rlbudget adds, without a profiler")  # fmt: skip
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--algo", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps_of = {"sac": args.sac_steps, "ppo": args.ppo_steps}
    if args.child:
        import stable_baselines3  # noqa: F401  (before the clock, on both sides)
        import torch  # noqa: F401

        if args.child == "plain":
            result = plain(args.algo, args.steps, args.seed)
        else:
            result = through_rlbudget(args.algo, args.steps, args.seed,
                                      curve=args.child == "rlbudget")  # fmt: skip
        print(json.dumps(result))
        return
    if args.profile:
        profile(args.profile, steps_of[args.profile], args.seed)
        return
    if args.parts:
        parts(args.parts, steps_of[args.parts], args.seed)
        return
    print(f"load average before: {_load()}")
    print(
        "| algorithm (env, steps) | runs | plain SB3 wall s (median) | side | wall ratio, "
        "median (min–max) | CPU ratio, median (min–max) | same policy |"
    )
    print("|---|---|---|---|---|---|---|", flush=True)
    for algo in args.algos.split(","):
        steps = steps_of[algo]
        rounds = []
        for i in range(args.runs):
            order = SIDES[i % len(SIDES) :] + SIDES[: i % len(SIDES)]
            got = {side: _child(side, algo, steps, args.seed) for side in order}
            assert all(r["steps"] == steps for r in got.values()), got
            rounds.append(got)
            print(f"  round {i + 1} ({_load()}): " + json.dumps(  # every run, for the record
                {side: {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
                 for side, r in got.items()}), flush=True)  # fmt: skip
        plain_wall = statistics.median(r["plain"]["wall_s"] for r in rounds)
        for side in SIDES[1:]:
            walls = [r[side]["wall_s"] / r["plain"]["wall_s"] for r in rounds]
            cpus = [r[side]["cpu_s"] / r["plain"]["cpu_s"] for r in rounds]
            same = all(r[side]["digest"] == r["plain"]["digest"] for r in rounds)
            print(f"| {algo} ({CASES[algo]}, {steps:,}) | {args.runs} | {plain_wall:.1f} "
                  f"| {side} | {_spread(walls)} | {_spread(cpus)} | {'yes' if same else 'no'} |",
                  flush=True)  # fmt: skip
    print(f"load average after: {_load()}")


def _spread(ratios: list[float]) -> str:
    return f"**{statistics.median(ratios):.3f}** ({min(ratios):.3f}–{max(ratios):.3f})"


def _load() -> str:
    import os

    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
