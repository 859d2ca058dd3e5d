"""Early stop vs fresh episodes: do runs "stopped by target" meet the target afterwards?

Run: python benchmarks/early_stop.py [--seeds 10] [--fresh 1000] [--label after]
Before/after: run it once with this checkout on PYTHONPATH and once with main's.

For each task and seed, ``rlbudget train``'s own loop (:func:`rlbudget.train.train_run`,
default hyperparameters, the env's ``reward_threshold`` as target) trains a built-in
agent. Every run that stopped by target is then measured on ``--fresh`` episodes that
training never saw (seed 1,000,000 + seed), and counted as a miss when that mean is below
the target. The cost columns count env steps: training, and the episodes spent on
evaluations during training (screens and confirmations), from the evaluations' own lengths.

Prints a Markdown table, one row per task.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rlbudget.profile.evaluate as evaluation
from rlbudget.envs import env_spec
from rlbudget.policy import load_policy
from rlbudget.train import resolve, train_run

FRESH_SEED = 1_000_000


@dataclass(frozen=True)
class Task:
    algorithm: str
    env_id: str


TASKS = (Task("q-learning", "FrozenLake-v1"), Task("q-learning", "Taxi-v4"))


class EvalSteps:
    """Counts the env steps of every evaluation made through rlbudget.profile.evaluate."""

    def __init__(self) -> None:
        self.steps = 0
        self.original = evaluation.evaluate

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.original(*args, **kwargs)
        self.steps += round(result.length_mean * result.episodes)
        return result


def one_run(task: Task, seed: int, fresh: int, folder: Path) -> dict[str, Any]:
    spec = env_spec(task.env_id, measure_steps=0)
    settings = resolve(task.algorithm, task.env_id, reward_threshold=spec.reward_threshold,
                       seed=seed)  # fmt: skip
    counter = EvalSteps()
    evaluation.evaluate = counter  # train_run imports it at call time
    try:
        run = train_run(settings, folder / f"{task.env_id}-{seed}")
    finally:
        evaluation.evaluate = counter.original
    row = {"stopped": run.stopped_by, "steps": run.steps, "eval_steps": counter.steps,
           "wall_s": run.wall_s, "target": settings.target_return, "fresh": None}  # fmt: skip
    if run.stopped_by == "target":
        policy = load_policy(run.run_dir / "policy")
        row["fresh"] = evaluation.evaluate(policy, task.env_id, episodes=fresh,
                                           seed=FRESH_SEED + seed).return_mean  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--fresh", type=int, default=1000, help="fresh episodes per stopped run")
    parser.add_argument("--label", default="", help="a name for this checkout (before/after)")
    args = parser.parse_args()
    print(f"| code | task | target | runs | stopped by target | missed on {args.fresh} fresh "
          "ep. | fresh mean of stopped runs (min) | training steps (mean) | evaluation "
          "steps (mean) | wall s (mean) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for task in TASKS:
            t0 = time.perf_counter()
            rows = [one_run(task, seed, args.fresh, Path(tmp)) for seed in range(args.seeds)]
            stopped = [r for r in rows if r["stopped"] == "target"]
            missed = [r for r in stopped if r["fresh"] < r["target"]]
            fresh = [r["fresh"] for r in stopped]
            fresh_txt = f"{statistics.fmean(fresh):.3f} ({min(fresh):.3f})" if fresh else "–"
            print(f"| {args.label} | {task.algorithm} {task.env_id} | {rows[0]['target']:g} "
                  f"| {len(rows)} | {len(stopped)} | {len(missed)} | {fresh_txt} "
                  f"| {statistics.fmean(r['steps'] for r in rows):,.0f} "
                  f"| {statistics.fmean(r['eval_steps'] for r in rows):,.0f} "
                  f"| {(time.perf_counter() - t0) / len(rows):.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
