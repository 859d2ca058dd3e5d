"""Exploration bonuses on sparse rewards: env steps to target with and without the bonus.

Run: nice python benchmarks/exploration.py [--seeds 0 1 2] [--sarsa-steps 50000]
     [--sb3-algo ppo] [--sb3-steps 20000] [--mc-target -130] [--mcc-target 90]
     [--eval-every 2000] [--beta 0.5] [--rnd-coef 1.0] [--only sarsa|sb3] [--png out.png]
     [--arms off on] [--from-json OUT.jsonl ...]

Two pairs, each seed with and without the bonus, in the same run:

- **MountainCar-v0, Sarsa(λ)** with its tuned hyperparameters (``sarsa-lambda.yaml``),
  ``bonus_coef`` 0 against ``--beta`` (the count bonus on the active tiles,
  :func:`rlbudget.agents.linear.count_bonus`);
- **MountainCarContinuous-v0, SB3 ``--sb3-algo``** (RL Zoo's tuned settings), ``rnd_coef``
  0 against ``--rnd-coef`` (Random Network Distillation, :mod:`rlbudget.sb3.rnd`).

Each run goes through ``rlbudget train``'s own loop (:func:`rlbudget.train.train_run`)
with the target as ``task.min_return``: every ``--eval-every`` steps the greedy policy is
screened on 100 episodes, and the run stops when a confirmation's 95 % lower bound reaches
the target. "Steps to target" is the step of that stop; a run that never stops by target
counts as its whole budget, marked "≥" (the median is then a lower bound). The default
MountainCar-v0 target, −130, is ``benchmarks/time_to_threshold.py``'s; pass ``--mc-target
-110`` for the env's reward threshold.

Prints one JSON line per run, then a Markdown table (per seed, the median of each arm and
the ratio bonus/no bonus), and draws the PNG (steps to target per seed, both arms). On a
shared machine, split the runs over processes (``--seeds 1 --arms on``) and make the
table from their outputs with ``--from-json``.
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

from rlbudget.train import resolve, train_run

PAIRS = {
    "sarsa": ("MountainCar-v0", "sarsa-lambda", "bonus_coef"),
    "sb3": ("MountainCarContinuous-v0", None, "rnd_coef"),
}


def one_run(env_id: str, algo: str, key: str, coef: float, target: float, seed: int,
            steps: int, eval_every: int, folder: Path) -> dict[str, Any]:  # fmt: skip
    settings = resolve(algo, env_id, env_steps=steps, min_return=target, seed=seed,
                       overrides={key: coef})  # fmt: skip
    settings = replace(settings, eval_every=eval_every)
    t0 = time.perf_counter()
    run = train_run(settings, folder / f"{algo}-{key}-{coef:g}-{seed}")
    return {
        "env": env_id, "algo": algo, key: coef, "bonus": coef > 0, "seed": seed,
        "steps": run.steps, "reached": run.stopped_by == "target",
        "last_eval": run.last_eval, "wall_s": round(time.perf_counter() - t0, 1),
    }  # fmt: skip


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: one row per env and seed, then the medians and their ratio."""

    def cell(r: dict[str, Any]) -> str:
        return f"{r['steps']:,}" if r["reached"] else f"≥ {r['steps']:,} (not reached)"

    out = ["| env (algorithm) | seed | without bonus | with bonus |", "|---|---|---|---|"]
    for env in dict.fromkeys(r["env"] for r in rows):
        mine = [r for r in rows if r["env"] == env]
        algo = mine[0]["algo"]
        for seed in dict.fromkeys(r["seed"] for r in mine):
            arms = [[r for r in mine if r["seed"] == seed and r["bonus"] == b] for b in (0, 1)]
            off, on = (cell(a[0]) if a else "—" for a in arms)
            out.append(f"| {env} ({algo}) | {seed} | {off} | {on} |")
        if {r["bonus"] for r in mine} != {False, True}:
            continue
        med = {b: statistics.median(r["steps"] for r in mine if r["bonus"] == b) for b in (0, 1)}
        n = {b: sum(r["reached"] for r in mine if r["bonus"] == b) for b in (0, 1)}
        k = {b: sum(r["bonus"] == b for r in mine) for b in (0, 1)}
        out.append(
            f"| {env} ({algo}) | **median** | **{med[0]:,.0f}** ({n[0]}/{k[0]} reached) | "
            f"**{med[1]:,.0f}** ({n[1]}/{k[1]} reached); ratio {med[1] / med[0]:.2f} |"
        )
    return out


def draw(rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(dict.fromkeys(r["env"] for r in rows))
    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 3.6), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        mine = [r for r in rows if r["env"] == env]
        for x, bonus in enumerate((False, True)):
            arm = [r for r in mine if r["bonus"] == bonus]
            for r in arm:
                face = "C0" if r["reached"] else "none"
                marker = "o" if r["reached"] else "^"
                ax.scatter(x, r["steps"], marker=marker, facecolors=face, edgecolors="C0")
            if arm:
                ax.hlines(statistics.median(r["steps"] for r in arm), x - 0.25, x + 0.25, "C3")
        ax.set_xticks([0, 1], ["no bonus", "bonus"])
        ax.set_xlim(-0.6, 1.6)
        ax.set_title(f"{env} ({mine[0]['algo']})", fontsize=9)
        ax.set_ylabel("env steps to target (▲ not reached)")
    fig.suptitle("Steps to target per seed; red: median", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", choices=sorted(PAIRS), nargs="+", default=sorted(PAIRS))
    ap.add_argument("--sarsa-steps", type=int, default=50_000)
    ap.add_argument("--sb3-algo", default="ppo")
    ap.add_argument("--sb3-steps", type=int, default=20_000)
    ap.add_argument("--mc-target", type=float, default=-130.0)
    ap.add_argument("--mcc-target", type=float, default=90.0)
    ap.add_argument("--eval-every", type=int, default=2_000)
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--rnd-coef", type=float, default=1.0)
    ap.add_argument("--arms", choices=["off", "on"], nargs="+", default=["off", "on"])
    ap.add_argument("--from-json", nargs="+", default=[],
                    help="only print the table and draw the PNG from these files of JSON lines "
                    "(the runs' output, e.g. of runs split over processes)")  # fmt: skip
    ap.add_argument("--png", default="exploration.png")
    args = ap.parse_args()
    rows = [json.loads(line) for path in args.from_json
            for line in Path(path).read_text().splitlines() if line.startswith("{")]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            env_id, algo, key = PAIRS[name]
            algo = algo or args.sb3_algo
            coef = args.beta if name == "sarsa" else args.rnd_coef
            target = args.mc_target if name == "sarsa" else args.mcc_target
            steps = args.sarsa_steps if name == "sarsa" else args.sb3_steps
            for seed in args.seeds if not args.from_json else []:
                for c in [c for c, arm in ((0.0, "off"), (coef, "on")) if arm in args.arms]:
                    rows.append(one_run(env_id, algo, key, c, target, seed, steps,
                                        args.eval_every, Path(tmp)))  # fmt: skip
                    print(json.dumps(rows[-1]), flush=True)
    print()
    print("\n".join(summary(rows)))
    if args.png:
        draw(rows, args.png)
        print(f"\nwrote {args.png}")


if __name__ == "__main__":
    main()
