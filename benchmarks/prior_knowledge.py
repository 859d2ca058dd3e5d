"""Env steps to a target: from scratch, from a teacher (BC, DAgger), and fine-tuning.

    python benchmarks/prior_knowledge.py [--seeds 0 1 2] [--out benchmarks/results/prior]
    python benchmarks/prior_knowledge.py --merge OUT0 OUT1 OUT2 --out OUT   # seeds run apart

Each row trains through :func:`rlbudget.train.train_run` (the early stop of ``rlbudget
train``: a 100-episode screen, then fresh episodes whose 95 % lower confidence bound must
reach the target) and reports the env steps at which it stopped, the median over seeds.
Every row screens its policy every 1,000 env steps, so steps to target are known to within
1,000; the row ``dagger-250`` (DAgger with 250-step rounds of 250 Adam steps) is screened
every 250.

- Imitation (CartPole-v1, Pendulum-v1): the target is the teacher's mean return over 100
  episodes minus 5 % of its magnitude; the teachers are the RL Zoo models in
  ``../shared/zoo`` (the steps that trained them are not counted). From scratch:
  Sarsa(λ) on CartPole (the plan's fastest learner here); on Pendulum SAC is too slow on
  this shared CPU to run to the target (README: 27 steps per CPU second), so the row
  gives RL Zoo's tuned budget for it (20k steps), marked as not measured.
- Fine-tuning (CartPole-v1 with ``force_mag`` 10 → 6, i.e. ``--env-kwargs '{"attributes":
  {"force_mag": 6.0}}'``): Sarsa(λ) from scratch on the changed physics against Sarsa(λ)
  started (``--init``) from the same seed's from-scratch policy on the default physics.

Writes ``OUT/results.json`` and ``OUT/prior_knowledge.png`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT.parent / "shared" / "zoo"
FINE_TUNE = {"attributes": {"force_mag": 6.0}}
FINE = {"round_steps": 250, "updates": 250}  # the dagger-250 row: screened every 250 steps
ZOO_SAC_PENDULUM_STEPS = 20_000  # RL Zoo hyperparams/sac.yml, Pendulum-v1: n_timesteps


def teacher_target(env_id: str, teacher: Path) -> tuple[float, float]:
    """The teacher's mean return over 100 episodes, and the target 5 % below it."""
    from rlbudget.agents.prior import load_teacher
    from rlbudget.profile.evaluate import evaluate

    mean = evaluate(load_teacher(teacher, env_id), env_id, episodes=100, seed=999).return_mean
    return mean, mean - 0.05 * abs(mean)


def train(algorithm: str, env_id: str, seed: int, steps: int, target: float, out: Path,
          eval_every: int = 1_000, overrides: dict[str, Any] | None = None,
          **prior: Any) -> dict[str, Any]:  # fmt: skip
    """One run to the target; its summary (steps, wall time, why it stopped)."""
    from rlbudget.agents.prior import check_prior
    from rlbudget.env_kwargs import env_kwargs_applied
    from rlbudget.train import resolve, train_run

    env_kwargs = prior.pop("env_kwargs", None)
    with env_kwargs_applied(env_id, env_kwargs):
        settings = resolve(algorithm, env_id, env_steps=steps, min_return=target, seed=seed,
                           overrides=overrides)  # fmt: skip
    settings = check_prior(settings, teacher=prior.get("teacher"), demos=None,
                           init=prior.get("init"), env_kwargs=env_kwargs)  # fmt: skip
    # one evaluation grid for every row (train's default is n_timesteps / 20: 10k steps for
    # a 200k budget would round a from-scratch run up to the next 10k)
    settings = dataclasses.replace(settings, eval_every=eval_every)
    t0 = time.perf_counter()
    result = train_run(settings, out)
    return {"algorithm": algorithm, "env": env_id, "seed": seed, "steps": result.steps,
            "stopped_by": result.stopped_by, "last_eval": result.last_eval,
            "wall_s": time.perf_counter() - t0, "run_dir": str(out)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "prior")
    rows = ["cartpole", "dagger-250", "scratch", "pendulum", "finetune"]
    ap.add_argument("--rows", nargs="+", default=rows)
    ap.add_argument("--pendulum-steps", type=int, default=20_000)
    ap.add_argument(
        "--finetune-cap",
        type=int,
        default=200_000,
        help="env steps after which the fine-tune rows stop (not reached: the cap)",
    )
    ap.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        help="table and chart of these runs' results.json (seeds run as separate processes)",
    )
    args = ap.parse_args(argv)
    if args.merge:
        latest = {(r["case"], r["seed"]): r for d in args.merge
                  for r in json.loads((d / "results.json").read_text())}  # fmt: skip
        merged = list(latest.values())  # a later run of the same case and seed replaces it
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(merged, indent=1))
        table(merged)
        chart(merged, args.out / "prior_knowledge.png")
        return 0
    if not ZOO.is_dir():
        print(f"the RL Zoo teachers are not here ({ZOO} is missing)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    path = args.out / "results.json"

    def record(row: dict[str, Any]) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        path.write_text(json.dumps(rows, indent=1))

    for seed in args.seeds:
        run = args.out / f"s{seed}"
        if "cartpole" in args.rows:
            mean, target = teacher_target("CartPole-v1", ZOO / "ppo-CartPole-v1")
            for algo in ("dagger", "bc"):
                r = train(algo, "CartPole-v1", seed, 20_000, target, run / f"cartpole-{algo}",
                          teacher=str(ZOO / "ppo-CartPole-v1"))  # fmt: skip
                record({**r, "case": f"CartPole-v1 {algo} (Zoo PPO teacher)", "target": target,
                        "teacher_return": mean})  # fmt: skip
        if "dagger-250" in args.rows:
            mean, target = teacher_target("CartPole-v1", ZOO / "ppo-CartPole-v1")
            r = train("dagger", "CartPole-v1", seed, 20_000, target,
                      run / "cartpole-dagger-250", eval_every=250, overrides=FINE,
                      teacher=str(ZOO / "ppo-CartPole-v1"))  # fmt: skip
            record({**r, "case": "CartPole-v1 dagger, 250-step rounds (Zoo PPO teacher)",
                    "target": target, "teacher_return": mean})  # fmt: skip
        if "scratch" in args.rows:
            _, target = teacher_target("CartPole-v1", ZOO / "ppo-CartPole-v1")
            r = train("sarsa-lambda", "CartPole-v1", seed, 200_000, target, run / "cartpole-sl")
            record({**r, "case": "CartPole-v1 from scratch (sarsa-lambda)", "target": target})
        if "pendulum" in args.rows:
            mean, target = teacher_target("Pendulum-v1", ZOO / "sac-Pendulum-v1")
            for algo in ("dagger", "bc"):
                r = train(algo, "Pendulum-v1", seed, args.pendulum_steps, target,
                          run / f"pendulum-{algo}",
                          teacher=str(ZOO / "sac-Pendulum-v1"))  # fmt: skip
                record({**r, "case": f"Pendulum-v1 {algo} (Zoo SAC teacher)", "target": target,
                        "teacher_return": mean})  # fmt: skip
        if "finetune" in args.rows:
            source = run / "cartpole-sl" / "policy"
            if not source.is_dir():  # the default-physics policy this seed starts from
                train("sarsa-lambda", "CartPole-v1", seed, 200_000, 475.0, run / "cartpole-sl")
            for name, init in (("fine-tuned (--init)", str(source)), ("from scratch", None)):
                slug = "scratch" if init is None else "init"
                r = train("sarsa-lambda", "CartPole-v1", seed, args.finetune_cap, 475.0,
                          run / f"finetune-{slug}", init=init, env_kwargs=FINE_TUNE)  # fmt: skip
                record({**r, "case": f"CartPole-v1 force_mag 6, {name}", "target": 475.0})
    table(rows)
    chart(rows, args.out / "prior_knowledge.png")
    return 0


def table(rows: list[dict[str, Any]]) -> None:
    cases: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        cases.setdefault(r["case"], []).append(r)
    print("| case | target | env steps to target (median; per seed) | reached | wall s (median) |")
    print("|---|---|---|---|---|")
    for case, rs in cases.items():
        steps = [r["steps"] for r in rs]
        reached = sum(r["stopped_by"] == "target" for r in rs)
        print(f"| {case} | {rs[0]['target']:.1f} | {statistics.median(steps):,.0f} "
              f"({', '.join(f'{s:,}' for s in steps)}) | {reached}/{len(rs)} | "
              f"{statistics.median(r['wall_s'] for r in rs):.0f} |")  # fmt: skip
    if any(r["env"] == "Pendulum-v1" for r in rows):
        print(f"| Pendulum-v1 from scratch (SAC) | — | {ZOO_SAC_PENDULUM_STEPS:,} (RL Zoo's "
              "tuned budget, not measured here) | — | — |")  # fmt: skip


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases: dict[str, list[int]] = {}
    reached: dict[str, bool] = {}
    for r in rows:
        cases.setdefault(r["case"], []).append(r["steps"])
        reached[r["case"]] = reached.get(r["case"], True) and r["stopped_by"] == "target"
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(cases) + 1.5))
    names = list(cases)
    colors = ["tab:blue" if reached[n] else "lightgrey" for n in names]
    ax.barh(names, [statistics.median(v) for v in cases.values()], color=colors)
    for i, v in enumerate(cases.values()):
        ax.plot(v, [i] * len(v), "k.", label="seeds" if i == 0 else None)
    ax.set_xscale("log")
    ax.set_xlabel("env steps to target (median bar, seeds as dots; grey: not reached, the cap)")
    ax.invert_yaxis()
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
