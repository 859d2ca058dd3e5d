"""Env steps to a target: from scratch, from a teacher (BC, DAgger), and fine-tuning.

    python benchmarks/prior_knowledge.py [--seeds 0 1 2] [--out benchmarks/results/prior]
    python benchmarks/prior_knowledge.py --merge OUT0 OUT1 OUT2 --out OUT   # seeds run apart

Each row trains through :func:`rlbudget.train.train_run` (the early stop of ``rlbudget
train``: a screen of up to 100 episodes, then fresh episodes whose 95 % lower confidence
bound must reach the target) and reports the env steps at which it stopped, the median over
seeds. Rows screen their policy every 1,000 env steps (``dagger-250``: every 250; the
Pendulum imitation rows: every 200, their round length), so steps to target are known to
within that.

- Imitation (CartPole-v1, Pendulum-v1), teachers the RL Zoo models in ``../shared/zoo``
  (the steps that trained them are not counted). The target is the teacher's return within
  5 %, measured *paired*: student and teacher play the same start states (episode i
  seeded alike), and the run stops when the 95 % lower bound of the student's mean
  measured against the teacher's reaches the teacher's mean less 5 %
  (:class:`rlbudget.agents.imitation.TeacherBar`, ``train``'s own rule for bc/dagger).
  From scratch, measured by the same paired rule against the same teacher: Sarsa(λ) on
  CartPole (the plan's fastest learner there), ``lean-sac`` on Pendulum (rlbudget's SAC,
  4,000 steps to −200 in ``benchmarks/continuous_training.py``).
- Fine-tuning (CartPole-v1 with ``force_mag`` 10 → 6, i.e. ``--env-kwargs '{"attributes":
  {"force_mag": 6.0}}'``, target 475): Sarsa(λ) from scratch on the changed physics against
  Sarsa(λ) started (``--init``) from the same seed's from-scratch policy on the default
  physics, with its tuned hyperparameters and with ``epsilon`` 0 (fine-tuning greedily:
  the start policy already acts well, and random pushes are what it has to unlearn less).

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
GREEDY = {"epsilon": 0.0}  # the fine-tune row that does not explore at random
PAIRED = "teacher −5 % (paired)"


def teacher_mean(env_id: str, teacher: Path) -> float:
    """The teacher's mean return over 100 episodes (seed 999), for the table."""
    from rlbudget.agents.prior import load_teacher
    from rlbudget.profile.evaluate import evaluate

    return evaluate(load_teacher(teacher, env_id), env_id, episodes=100, seed=999).return_mean


def train(algorithm: str, env_id: str, seed: int, steps: int, target: float | None, out: Path,
          eval_every: int = 1_000, overrides: dict[str, Any] | None = None,
          against: Path | None = None, **prior: Any) -> dict[str, Any]:  # fmt: skip
    """One run to the target; its summary (steps, wall time, why it stopped).

    :param against: a teacher to measure a from-scratch run against, paired (the stop rule
        of bc/dagger, :class:`rlbudget.agents.imitation.TeacherBar`), instead of ``target``.
    """
    from rlbudget.agents.prior import PAIRED_TARGET, check_prior
    from rlbudget.env_kwargs import env_kwargs_applied
    from rlbudget.train import resolve, train_run

    env_kwargs = prior.pop("env_kwargs", None)
    with env_kwargs_applied(env_id, env_kwargs):
        settings = resolve(algorithm, env_id, env_steps=steps, min_return=target, seed=seed,
                           overrides=overrides)  # fmt: skip
    settings = check_prior(settings, teacher=prior.get("teacher"), demos=None,
                           init=prior.get("init"), env_kwargs=env_kwargs)  # fmt: skip
    if against is not None:  # the trainer ignores the teacher; train_run's stop rule uses it
        settings = dataclasses.replace(settings, teacher=str(against), target_return=None,
                                       target_from=PAIRED_TARGET)  # fmt: skip
    # one evaluation grid for every row (train's default is n_timesteps / 20: 10k steps for
    # a 200k budget would round a from-scratch run up to the next 10k)
    settings = dataclasses.replace(settings, eval_every=eval_every)
    t0 = time.perf_counter()
    result = train_run(settings, out)
    check = result.target_check
    return {"algorithm": algorithm, "env": env_id, "seed": seed, "steps": result.steps,
            "stopped_by": result.stopped_by, "last_eval": result.last_eval,
            "confirmed_mean": None if check is None else check.mean,
            "confirmed_lower_95": None if check is None else check.lower_95,
            "wall_s": time.perf_counter() - t0, "run_dir": str(out)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "prior")
    rows = ["cartpole", "dagger-250", "scratch", "pendulum", "pendulum-scratch", "finetune"]
    ap.add_argument("--rows", nargs="+", default=rows)
    ap.add_argument("--pendulum-steps", type=int, default=10_000)
    ap.add_argument("--pendulum-scratch-cap", type=int, default=30_000)
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

    cartpole, pendulum = ZOO / "ppo-CartPole-v1", ZOO / "sac-Pendulum-v1"
    for seed in args.seeds:
        run = args.out / f"s{seed}"
        if "cartpole" in args.rows:
            mean = teacher_mean("CartPole-v1", cartpole)
            for algo in ("dagger", "bc"):
                r = train(algo, "CartPole-v1", seed, 20_000, None, run / f"cartpole-{algo}",
                          teacher=str(cartpole))  # fmt: skip
                record({**r, "case": f"CartPole-v1 {algo} (Zoo PPO teacher)", "target": PAIRED,
                        "teacher_return": mean})  # fmt: skip
        if "dagger-250" in args.rows:
            r = train("dagger", "CartPole-v1", seed, 20_000, None, run / "cartpole-dagger-250",
                      eval_every=250, overrides=FINE, teacher=str(cartpole))  # fmt: skip
            record({**r, "case": "CartPole-v1 dagger, 250-step rounds (Zoo PPO teacher)",
                    "target": PAIRED})  # fmt: skip
        if "scratch" in args.rows:
            r = train("sarsa-lambda", "CartPole-v1", seed, 200_000, None, run / "cartpole-sl",
                      against=cartpole)  # fmt: skip
            record({**r, "case": "CartPole-v1 from scratch (sarsa-lambda)", "target": PAIRED})
        if "pendulum" in args.rows:
            mean = teacher_mean("Pendulum-v1", pendulum)
            for algo in ("dagger", "bc"):
                r = train(algo, "Pendulum-v1", seed, args.pendulum_steps, None,
                          run / f"pendulum-{algo}", eval_every=200,
                          teacher=str(pendulum))  # fmt: skip
                record({**r, "case": f"Pendulum-v1 {algo} (Zoo SAC teacher)", "target": PAIRED,
                        "teacher_return": mean})  # fmt: skip
        if "pendulum-scratch" in args.rows:
            r = train("lean-sac", "Pendulum-v1", seed, args.pendulum_scratch_cap, None,
                      run / "pendulum-lean-sac", against=pendulum)  # fmt: skip
            record({**r, "case": "Pendulum-v1 from scratch (lean-sac)", "target": PAIRED})
        if "finetune" in args.rows:
            source = run / "cartpole-sl" / "policy"
            if not source.is_dir():  # the default-physics policy this seed starts from
                train("sarsa-lambda", "CartPole-v1", seed, 200_000, None, run / "cartpole-sl",
                      against=cartpole)  # fmt: skip
            arms = (("fine-tuned (--init)", str(source), None, "init"),
                    ("fine-tuned (--init, epsilon 0)", str(source), GREEDY, "init-greedy"),
                    ("from scratch", None, None, "scratch"))  # fmt: skip
            for name, init, overrides, slug in arms:
                r = train("sarsa-lambda", "CartPole-v1", seed, args.finetune_cap, 475.0,
                          run / f"finetune-{slug}", overrides=overrides, init=init,
                          env_kwargs=FINE_TUNE)  # fmt: skip
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
        target = rs[0]["target"]
        target = f"{target:.1f}" if isinstance(target, float) else target
        print(f"| {case} | {target} | {statistics.median(steps):,.0f} "
              f"({', '.join(f'{s:,}' for s in steps)}) | {reached}/{len(rs)} | "
              f"{statistics.median(r['wall_s'] for r in rs):.0f} |")  # fmt: skip


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
