"""A contextual bandit in ``rlbudget run``: the two places where a bandit differs from an
RL job, called by :mod:`rlbudget.run`'s own stages (no second pipeline).

- **train**: :func:`~rlbudget.bandits.train.train_bandit` into ``OUT/train`` (online in the
  task's one-step env, or from ``task.data``), recorded as the
  :class:`~rlbudget.train.folder.TrainSummary` every run records. Its
  ``last_eval_return`` is the policy's value: from logged data, the DR off-policy
  estimate on those logs (:mod:`rlbudget.bandits.ope`); online, the mean reward of the
  decisions made while learning.
- **compress and profile with logged data only**: no env to play episodes in, so the
  compression gate (episode returns of the compressed against the trained policy) cannot
  be held and only the trained policy is a candidate; the profile's return check is the
  DR estimate against ``task.min_return`` (:func:`with_off_policy_value`).

With a one-step env the stages run as for any env: an episode is one decision.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlbudget.limits import check

if TYPE_CHECKING:
    from rlbudget.bandits.ope import OffPolicyValue
    from rlbudget.budget import Budget
    from rlbudget.plan import PlanChoice
    from rlbudget.policy.model import Policy
    from rlbudget.profile.verdict import ProfileReport
    from rlbudget.train.folder import TrainSummary

LOGGED_PREFIX = "logged data "  # a plan's env id for logged data (rlbudget.bandits.plan)
NO_ENV = ("only logged data (task.data), no env: the compression gate compares episode "
          "returns, so the trained policy is the only candidate; its value is the DR "
          "off-policy estimate on the logs")  # fmt: skip


def is_bandit_choice(plan: PlanChoice) -> bool:
    """Whether ``run``'s plan choice is a bandit algorithm (rlbudget/data/bandits.yaml)."""
    from rlbudget.bandits.learners import is_bandit_algorithm

    return is_bandit_algorithm(plan.algorithm)


def episode_env(plan: PlanChoice) -> str | None:
    """The env episodes can be played in: the plan's, None for logged data only."""
    return None if plan.env.startswith(LOGGED_PREFIX) else plan.env


def train_stage(budget: Budget, plan: PlanChoice, seed: int, run_dir: Path) -> TrainSummary:
    """Train the plan's bandit into ``run_dir`` with the budget's task and training limits
    (a folder without ``summary.json`` is a killed training: it starts over)."""
    from rlbudget.bandits.train import train_bandit

    done = run_dir / "summary.json"
    if done.is_file():  # killed after training, before the stage was recorded
        return _summary(json.loads(done.read_text(encoding="utf-8")), budget)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    task, limits = budget.task, budget.training
    run = train_bandit(plan.algorithm, run_dir, env_id=episode_env(plan), data=task.data,
                       context=task.context, steps=limits.env_steps, time_s=limits.time_s,
                       seed=seed, overrides=plan.params)  # fmt: skip
    return _summary(run.to_dict(), budget)


def _summary(run: dict[str, Any], budget: Budget) -> TrainSummary:
    from rlbudget.bandits.learners import algorithms
    from rlbudget.policy import load_policy
    from rlbudget.train.folder import TrainSummary

    value, extra = run["mean_reward"], dict(run)
    online = bool(algorithms()[run["algorithm"]]["online"])
    if not online:
        ope = off_policy_value(load_policy(run["policy_dir"]), budget)
        value = ope.estimate("dr").value
        extra["off_policy_value"] = ope.to_dict()
    wall = float(run["wall_s"])
    return TrainSummary(
        run_dir=str(Path(run["policy_dir"]).parent), algorithm=run["algorithm"],
        env=run["trained_on"], seed=int(run["seed"]),
        stopped_by="steps" if online else "data", steps=int(run["decisions"]),
        episodes=int(run["decisions"]) if online else 0, wall_s=wall,
        steps_per_s=run["decisions"] / wall if wall > 0 else 0.0,
        target_return=budget.task.min_return, last_eval_return=float(value), extra=extra,
    )  # fmt: skip


def profile_bandit(policy: Policy, budget: Budget, algorithm: str, *, fmt: str,
                   env_id: str | None, episodes: int, seed: int,
                   policy_name: str) -> ProfileReport:  # fmt: skip
    """:func:`~rlbudget.profile.verdict.profile` of a bandit policy: without an env, the
    value is the DR estimate (:func:`with_off_policy_value`); under ``inference.learn``,
    the online learner's state and update are added (:func:`with_learner`), as plan
    counts them (the learner itself is not exported as C)."""
    from rlbudget.profile.verdict import profile

    frozen = budget
    if budget.inference.learn:  # profile's own learner is the RL one (export --learn)
        frozen = replace(budget, inference=replace(budget.inference, learn=False))
    prof = profile(policy, frozen, fmt=fmt, env_id=env_id, episodes=episodes, seed=seed,
                   policy_name=policy_name)  # fmt: skip
    if env_id is None:
        prof = with_off_policy_value(prof, policy, budget)
    return with_learner(prof, policy, budget, algorithm) if budget.inference.learn else prof


def with_learner(prof: ProfileReport, policy: Policy, budget: Budget,
                 algorithm: str) -> ProfileReport:  # fmt: skip
    """``prof`` with the on-device learner of ``algorithm`` added: its state to RAM, its
    exploration score and update (estimated, float32) to each decision's latency and
    energy (:func:`~rlbudget.bandits.plan.learning_cost`)."""
    from rlbudget.bandits.plan import learning_cost, learning_latency
    from rlbudget.costs import estimate_energy
    from rlbudget.devices import Range
    from rlbudget.limits import check_budget
    from rlbudget.profile.verdict import memory_checks

    arms = int(policy.action_space.n or 0)
    learn = learning_cost(algorithm, policy.observation_space.dim, arms)
    extra = learning_latency(budget.device, learn)
    memory = replace(prof.footprint, ram_bytes=prof.footprint.ram_bytes + learn.ram_bytes,
                     ram_how=f"{prof.footprint.ram_how}; + {learn.ram_bytes:,} B of "
                     f"{algorithm}'s learner state (A⁻¹, b, θ per arm, float32)")  # fmt: skip
    energy = estimate_energy(budget.device, extra)
    adds = {"inference.latency": extra.typical, "inference.energy": energy.typical}
    how = (f"; + {algorithm}'s exploration score and update, estimated: {learn.macs:,} "
           "MACs in float32 (rlbudget.bandits.plan.learning_cost)")  # fmt: skip
    new = {c.limit: c for c in memory_checks(memory, budget)}
    for c in prof.checks:
        if c.limit in adds and c.figure is not None:
            new[c.limit] = check_budget(c.limit, c.figure + adds[c.limit], budget,
                                        source="estimated", how=c.how + how)  # fmt: skip
    checks = tuple(new.get(c.limit, c) for c in prof.checks)
    latency, joules = prof.target_latency, prof.energy
    return replace(prof, footprint=memory, checks=checks,
                   target_latency=Range(latency.low + extra.low, latency.typical
                                        + extra.typical, latency.high + extra.high),
                   energy=Range(joules.low + energy.low, joules.typical + energy.typical,
                                joules.high + energy.high),
                   notes=(*prof.notes, f"inference.learn: each decision also pays"
                          f"{how[1:]}"))  # fmt: skip


def off_policy_value(policy: Policy, budget: Budget) -> OffPolicyValue:
    """IPS, SNIPS and DR estimates of ``policy`` on the budget's ``task.data``."""
    from rlbudget.bandits.ope import evaluate_on_data

    assert budget.task.data is not None
    return evaluate_on_data(policy, str(budget.task.data), context=budget.task.context)


def with_off_policy_value(prof: ProfileReport, policy: Policy, budget: Budget) -> ProfileReport:
    """``prof`` (profiled without an env) with its return check replaced by the DR estimate
    of ``policy`` on ``task.data`` against ``task.min_return`` (NOT CHECKED without one)."""
    ope = off_policy_value(policy, budget)
    dr = ope.estimate("dr")
    how = (f"DR off-policy estimate on {ope.rows:,} logged rows of {ope.data} (95 % interval "
           f"[{dr.low:.4f}, {dr.high:.4f}]; the policy agrees with {ope.matched:,} logged "
           "actions); the rows it was trained on, so an optimistic estimate")  # fmt: skip
    value = check("task.min_return", dr.value, budget.task.min_return, budget.margin,
                  source="estimated", how=how)  # fmt: skip
    checks = tuple(value if c.limit == "task.min_return" else c for c in prof.checks)
    notes = tuple(n for n in prof.notes if not n.startswith("no env"))  # "not checked"
    return replace(prof, checks=checks, notes=(*notes, NO_ENV))
