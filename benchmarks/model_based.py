"""PETS (with its distilled policy) vs SAC: env steps and wall time to a target return.

Run: nice python benchmarks/model_based.py [--env Pendulum-v1] [--target -200]
     [--seeds 0 1] [--pets-steps 3000] [--sac-steps 20000] [--eval-every 200]

Each seed trains both algorithms through ``rlbudget train``'s own loop
(:func:`rlbudget.train.train_run`) with their hyperparameter files (PETS:
``data/hyperparams/pets.yaml``; SAC: RL Zoo's tuned settings in ``sac.yaml``), the target
as ``task.min_return``: the loop screens the deployed policy (PETS: the distilled student,
not the planner) on 100 episodes every ``--eval-every`` steps (SAC: every 1,000, its
default grid) and stops when a confirmation's 95 % lower bound reaches the target. The
table gives the env steps and wall time at that stop (a run that never stops by target
shows its budget with "not reached").

For PETS it also gives the planner's return (mean of its last 5 training episodes,
from summary.json), the student's on 100 fresh episodes, and the student quantized to int8
(``rlbudget.compress.quantize.quantize_int8``, calibrated on the states it visits) on the
same episodes; "kept" is planner return / int8 return (returns are negative: ≥ 0.95 means
the int8 policy is at most 5 % worse than the planner).

Prints a Markdown table, one row per (algorithm, seed), and the mean over seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rlbudget.policy import load_policy
from rlbudget.profile.evaluate import evaluate
from rlbudget.train import resolve, train_run

FRESH_SEED = 1_000_000


def visited(policy: Any, env_id: str, steps: int, seed: int) -> np.ndarray:
    """Observations the policy visits (int8 calibration)."""
    from rlbudget.envs import make_env

    env = make_env(env_id)
    obs, _ = env.reset(seed=seed)
    out = []
    for _ in range(steps):
        out.append(np.asarray(obs, np.float32))
        obs, _, terminated, truncated, _ = env.step(policy.act(obs))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.stack(out)


def one_run(algo: str, env_id: str, target: float, seed: int, steps: int, eval_every: int,
            folder: Path) -> dict[str, Any]:  # fmt: skip
    settings = resolve(algo, env_id, env_steps=steps, min_return=target, seed=seed)
    if algo == "pets":
        settings = replace(settings, eval_every=eval_every)
    t0 = time.perf_counter()
    run = train_run(settings, folder / f"{algo}-{seed}")
    row: dict[str, Any] = {
        "algo": algo, "seed": seed, "steps": run.steps, "wall_s": time.perf_counter() - t0,
        "reached": run.stopped_by == "target",
    }  # fmt: skip
    if algo == "pets":
        from rlbudget.compress.quantize import quantize_int8

        summary = json.loads((folder / f"{algo}-{seed}" / "summary.json").read_text())
        policy = load_policy(folder / f"{algo}-{seed}" / "policy")
        int8 = quantize_int8(policy, visited(policy, env_id, 2000, seed))
        row["planner"] = summary["extra"]["planner_return_last5"]
        row["student"] = evaluate(policy, env_id, episodes=100, seed=FRESH_SEED).return_mean
        row["int8"] = evaluate(int8, env_id, episodes=100, seed=FRESH_SEED).return_mean
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="Pendulum-v1")
    ap.add_argument("--target", type=float, default=-200.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--pets-steps", type=int, default=3000)
    ap.add_argument("--sac-steps", type=int, default=20000)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--algos", nargs="+", default=["pets", "sac"])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for algo in args.algos:
                steps = args.pets_steps if algo == "pets" else args.sac_steps
                rows.append(one_run(algo, args.env, args.target, seed, steps, args.eval_every,
                                    Path(tmp)))  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    print(f"\n{args.env}, target {args.target:g}\n")
    print(
        "| algorithm | seed | env steps to target | wall s | planner return | "
        "student return | int8 return | kept (planner/int8) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        steps = f"{r['steps']:,}" if r["reached"] else f"not reached in {r['steps']:,}"
        extra = ["", "", "", ""]
        if r["algo"] == "pets":
            kept = r["planner"] / r["int8"] if r["planner"] is not None and r["int8"] else None
            extra = [f"{r['planner']:.1f}" if r["planner"] is not None else "-",
                     f"{r['student']:.1f}", f"{r['int8']:.1f}",
                     f"{kept:.2f}" if kept is not None else "-"]  # fmt: skip
        print(
            f"| {r['algo']} | {r['seed']} | {steps} | {r['wall_s']:.0f} | "
            + " | ".join(extra)
            + " |"
        )
    for algo in args.algos:
        mine = [r for r in rows if r["algo"] == algo]
        reached = [r for r in mine if r["reached"]]
        if reached:
            print(f"\n{algo}: {len(reached)}/{len(mine)} reached; mean steps "
                  f"{statistics.mean(r['steps'] for r in reached):,.0f}, mean wall "
                  f"{statistics.mean(r['wall_s'] for r in reached):.0f} s")  # fmt: skip
        else:
            print(f"\n{algo}: 0/{len(mine)} reached")


if __name__ == "__main__":
    main()
