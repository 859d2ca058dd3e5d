"""Contextual bandits on the command line: ``rlbudget bandit-data`` (a synthetic logged
data set with known optimum), and the bandit halves of ``evaluate --data`` (off-policy
estimates) and ``train`` (an algorithm of ``rlbudget/data/bandits.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rlbudget.cli import common
from rlbudget.cli.common import JsonOpt, handles_errors

if TYPE_CHECKING:
    from rlbudget.budget import Budget, Task, TrainingLimits

ContextOpt = Annotated[
    str | None,
    typer.Option(
        "--context",
        help="With --data: the context columns, comma-separated (default: the budget's "
        "task.context or the policy's, else x0, x1, ...).",
        show_default=False,
    ),
]


@handles_errors
def bandit_data(
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="File to write: .csv or .parquet.", show_default=False),
    ],
    rows: Annotated[int, typer.Option("--rows", "-n", min=1, help="Logged decisions.")] = 10_000,
    features: Annotated[int, typer.Option("--features", min=1, help="Context size d.")] = 5,
    actions: Annotated[int, typer.Option("--actions", min=2, help="Arms K.")] = 4,
    noise: Annotated[float, typer.Option("--noise", min=0, help="Reward noise (std).")] = 0.5,
    problem_seed: Annotated[
        int, typer.Option("--problem-seed", min=0, help="Seed of θ (the problem).")
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the decisions.")] = 0,
    uniform: Annotated[
        float,
        typer.Option(
            "--uniform",
            help="Share of uniform exploration in the logging policy "
            "(the smallest propensity is uniform/K).",
        ),
    ] = 0.2,
    json_out: JsonOpt = False,
) -> None:
    """Write a synthetic logged bandit data set whose optimal policy is known.

    Contexts uniform in [-1, 1]^d, rewards linear per arm plus Gaussian noise, logged by
    a softmax policy with known propensities. Prints the optimal and the logging policy's
    values: the ground truth for train --data and evaluate --data. The same problem is the
    one-step env rlbudget.bandits.env:LinearBandit-v0.

    Example: rlbudget bandit-data -o logs.csv --rows 20000 && rlbudget train --algo dr
    --data logs.csv -o runs/dr
    """
    from rlbudget.bandits.synthetic import write_synthetic

    truth = write_synthetic(
        output,
        rows,
        features=features,
        actions=actions,
        noise=noise,
        problem_seed=problem_seed,
        seed=seed,
        uniform=uniform,
    )
    if json_out:
        common.print_json(truth)
        return
    common.out.print(
        f"{output}: {rows:,} decisions, {features} context columns x0..x{features - 1}, "
        f"{actions} actions; optimal policy value {truth['optimal_value']:.4f}, logging "
        f"policy value {truth['logging_value']:.4f}"
    )


def evaluate_data(
    policy: Path, data: Path, *, context: str | None, clip: float | None, json_out: bool
) -> None:
    """``rlbudget evaluate POLICY --data FILE``: IPS, SNIPS and DR estimates with 95 %
    intervals."""
    from rlbudget.bandits.ope import evaluate_on_data
    from rlbudget.policy import load_policy

    names = None if context is None else [c.strip() for c in context.split(",")]
    result = evaluate_on_data(load_policy(policy), str(data), context=names, clip=clip)
    if json_out:
        common.print_json(result.to_dict())
        return
    from rich.table import Table

    t = Table(title=f"Off-policy value of {policy} on {data} ({result.rows:,} logged rows)")
    for col in ("estimator", "value", "95 % interval"):
        t.add_column(col, justify="left" if col == "estimator" else "right")
    for e in result.estimates:
        t.add_row(e.estimator.upper(), f"{e.value:.4f}", f"[{e.low:.4f}, {e.high:.4f}]")
    common.out.print(t)
    common.out.print(
        f"the policy agrees with {result.matched:,} logged actions (effective sample size "
        f"{result.effective_rows:,.0f}); the logging policy's mean reward: "
        f"{result.logged_value:.4f}"
        + (f"; weights clipped at {result.clip:g}" if result.clip is not None else "")
    )


@dataclass(frozen=True)
class BanditChoice:
    """What ``train`` trains: the algorithm, the task and training limits (from the budget
    or the plan) and the plan option's hyperparameters."""

    algo: str
    task: Task | None
    training: TrainingLimits | None
    params: dict[str, Any]


def bandit_choice(
    algo: str | None, plan_file: Path | None, option: int, budget: Budget | None
) -> BanditChoice | None:
    """The bandit ``train`` should train (``--algo``, or the plan's option), else None."""
    from rlbudget.bandits.learners import is_bandit_algorithm

    if algo is not None:
        if not is_bandit_algorithm(algo):
            return None
        if budget is None:
            return BanditChoice(algo, None, None, {})
        return BanditChoice(algo, budget.task, budget.training, {})
    if plan_file is None:
        return None
    from rlbudget.errors import PlanError
    from rlbudget.plan import load_plan

    saved = load_plan(plan_file)
    try:
        choice = saved.choose(option)
    except PlanError as exc:
        raise PlanError(f"{plan_file}: {exc}") from None
    if not is_bandit_algorithm(choice.algorithm):
        return None
    return BanditChoice(choice.algorithm, saved.task, saved.training, dict(choice.params))


def train(
    chosen: BanditChoice,
    output: Path | None,
    *,
    env: str | None,
    data: Path | None,
    context: str | None,
    steps: int | None,
    time_s: float | None,
    seed: int,
    overrides: dict[str, Any] | None,
    gym_packages: list[str],
    json_out: bool,
) -> None:
    """``rlbudget train`` of a bandit: the run folder, then one line or JSON. The command
    line's env, data, context, steps and time come first, then the task's and the training
    limits'."""
    from rlbudget.bandits.train import train_bandit
    from rlbudget.train import prepare_run_dir

    algo, task, limits = chosen.algo, chosen.task, chosen.training
    if limits is not None:
        steps = steps if steps is not None else limits.env_steps
        time_s = time_s if time_s is not None else limits.time_s
    env = env or (task.env_id if task is not None else None)
    if data is None and task is not None and task.data is not None:
        data = Path(task.data)
    names = [c.strip() for c in context.split(",")] if context is not None else None
    if names is None and task is not None and task.context:
        names = list(task.context)
    source = env or (data.stem if data is not None else "data")
    run_dir = prepare_run_dir(
        output or Path("runs") / f"{algo}-{source}-s{seed}", say=None if json_out else common.say
    )
    run = train_bandit(
        algo,
        run_dir,
        env_id=env,
        data=data,
        context=names,
        steps=steps,
        time_s=time_s,
        seed=seed,
        overrides={**chosen.params, **(overrides or {})},
        gym_packages=gym_packages,
    )
    if json_out:
        common.print_json(run.to_dict())
        return
    regret = (
        "" if run.cumulative_regret is None else f", cumulative regret {run.cumulative_regret:.1f}"
    )
    common.out.print(
        f"{algo} on {run.trained_on}: {run.decisions:,} decisions, mean reward "
        f"{run.mean_reward:.4f}{regret} in {run.wall_s:.2f} s → {run.policy_dir}"
    )
