"""``rlbudget train``: options in, :func:`rlbudget.train.run_settings` and
:func:`rlbudget.train.train_run` called, progress and the outcome printed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rlbudget.cli import common
from rlbudget.cli.bandit_commands import ContextOpt
from rlbudget.cli.common import GymPackageOpt, JsonOpt, handles_errors, option_value
from rlbudget.errors import RlbudgetError
from rlbudget.fileio import is_empty_dir

if TYPE_CHECKING:
    from rlbudget.train import RunResult, RunSettings


@handles_errors
def train(
    plan_file: Annotated[
        Path | None,
        typer.Argument(
            help="A plan written by 'rlbudget plan -o plan.yaml' (or use --algo).",
            show_default=False,
        ),
    ] = None,
    option: Annotated[int, typer.Option("--option", min=1, help="Which plan option.")] = 1,
    algo: Annotated[str | None, typer.Option("--algo", help="Algorithm id (see plan).")] = None,
    env: Annotated[str | None, typer.Option("--env", help="Gymnasium id.")] = None,
    budget: Annotated[
        Path | None, typer.Option("--budget", help="Budget whose training limits apply.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed for the agent and the env.")] = 0,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Run folder (default runs/ALGO-ENV-sSEED)."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue a stopped run exactly, from RUN_DIR/checkpoint."),
    ] = None,
    tensorboard: Annotated[
        Path | None,
        typer.Option(
            "--tensorboard",
            help="Also log TensorBoard scalars to this folder (SB3: its own logger; "
            "pip install 'rlbudget[tensorboard]').",
            show_default=False,
        ),
    ] = None,
    steps: Annotated[
        str | None,
        typer.Option(
            "--steps",
            "-n",
            metavar="<count>",
            help="Env steps to train for, e.g. 20k or 1.5M (overrides training.env_steps and "
            "the tuned n_timesteps).",
        ),
    ] = None,
    time: Annotated[
        str | None,
        typer.Option(
            "--time",
            metavar="<duration>",
            help="Wall-clock limit, e.g. 10m, 90s or 1h (overrides training.time).",
        ),
    ] = None,
    hyperparams: Annotated[
        list[str] | None,
        typer.Option(
            "--hyperparams",
            "-p",
            metavar="<key=value>",
            help="Replace one tuned hyperparameter, e.g. -p learning_rate=3e-4 -p "
            "net_arch=[64,64]; repeat for each key. VALUE is read as YAML (a number, "
            "true/false, a list); an unknown key is refused.",
        ),
    ] = None,
    teacher: Annotated[
        str | None,
        typer.Option(
            "--teacher",
            metavar="<policy>",
            help="bc/dagger: the policy to imitate: a policy folder, an SB3 .zip or "
            "an RL Zoo folder (read as 'rlbudget import' reads it; nothing is "
            "unpickled). Default: the budget's task.teacher.",
            show_default=False,
        ),
    ] = None,
    demos: Annotated[
        str | None,
        typer.Option(
            "--demos",
            metavar="<file.npz>",
            help="bc/dagger: recorded transitions, an .npz with observations, "
            "actions, rewards, terminations, truncations (or minari:DATASET_ID). "
            "Default: the budget's task.demos.",
            show_default=False,
        ),
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            metavar="<policy>",
            help="Warm start: begin from this policy folder (same spaces): a table "
            "(and grid) for tabular agents, tile coder and weights for sarsa-lambda.",
            show_default=False,
        ),
    ] = None,
    env_kwargs: Annotated[
        str | None,
        typer.Option(
            "--env-kwargs",
            metavar="<json>",
            help="gymnasium.make kwargs as JSON, e.g. '{\"g\": 5.0}' for "
            'Pendulum-v1; {"attributes": {"force_mag": 8.0}} sets physics a '
            "constructor lacks. Default: the budget's task.env_kwargs.",
            show_default=False,
        ),
    ] = None,
    gym_package: GymPackageOpt = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar (or progress lines).")
    ] = False,
    json_out: JsonOpt = False,
    curve: Annotated[
        bool,
        typer.Option(
            "--curve/--no-curve",
            help="Draw curve.png at the end (importing matplotlib costs about a second; "
            "rlbudget.train.draw_curve(RUN_DIR) draws it later).",
        ),
    ] = True,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Logged bandit decisions (.csv/.parquet) for --algo ips "
            "or dr (default: the budget's task.data).",
            show_default=False,
        ),
    ] = None,
    context: ContextOpt = None,
) -> None:
    """Train within the budget's training limits: a built-in agent (tabular, Sarsa(lambda),
    ARS) or Stable-Baselines3 (ppo, a2c, dqn, sac, td3; qrdqn, tqc, trpo with
    pip install 'rlbudget[contrib]'), or a contextual bandit (epsilon-greedy, softmax,
    linucb, thompson in a one-step env; ips, dr from logged decisions with --data).

    Stops at training.env_steps (else the tuned step count), at training.time, or when the
    greedy policy reaches the target return on a separate evaluation env (a 100-episode
    screen, then fresh episodes whose 95 % lower bound must reach it). NaN/inf from the
    env stops training with the step named (exit 2). SB3 runs take
    their torch threads from training.cores and size the replay buffer from training.ram.
    The run folder holds policy/ (numpy, no torch needed), config.yaml, metrics.csv,
    summary.json, curve.png (not with --no-curve) and checkpoint/; metrics.csv grows as
    episodes finish. When stderr is not a terminal (CI, nohup, tee), progress is printed as
    plain lines every 10 s instead of a bar.

    Examples:

      rlbudget train --algo q-learning --env FrozenLake-v1 -o runs/frozenlake

      rlbudget train --algo ppo --env CartPole-v1 --budget budgets/esp32-cartpole.yaml

      rlbudget plan budgets/rp2040-frozenlake.yaml -o plan.yaml && rlbudget train plan.yaml

      rlbudget train --algo sac --env Pendulum-v1 --steps 20k --time 10m -p learning_rate=1e-3

      rlbudget train --algo dagger --env CartPole-v1 --teacher zoo/ppo-CartPole-v1 --steps 5k

      rlbudget train --algo sarsa-lambda --env CartPole-v1 --init runs/a/policy --env-kwargs
      '{"attributes": {"force_mag": 6.0}}'

      rlbudget train --algo dr --data logs.csv -o runs/dr
    """
    from rlbudget import units
    from rlbudget.env_kwargs import parse_env_kwargs
    from rlbudget.envs import import_gym_packages
    from rlbudget.errors import PlanError
    from rlbudget.train import load_settings, parse_hyperparams, prepare_run_dir, run_settings

    import_gym_packages(gym_package or ())
    if resume is not None:
        given = (plan_file, algo, env, budget, output, steps, time, hyperparams, teacher, demos,
                 init, env_kwargs)  # fmt: skip
        if any(v is not None for v in given):
            raise PlanError(
                "--resume continues a run with the settings in its config.yaml; "
                "give only the run folder (rlbudget train --resume RUN_DIR)"
            )
        settings = load_settings(resume)
        _finish(settings, resume, quiet=quiet, json_out=json_out, resume=True,
                tensorboard=tensorboard, curve=curve)  # fmt: skip
        return
    loaded = None
    if budget is not None:
        from rlbudget.budget import load_budget

        loaded = load_budget(budget)
    from rlbudget.cli import bandit_commands

    chosen = bandit_commands.bandit_choice(algo, plan_file, option, loaded)
    if chosen is not None:  # a contextual bandit (rlbudget.bandits)
        bandit_commands.train(
            chosen, output, env=env, data=data, context=context,
            steps=None if steps is None else option_value(units.parse_count, steps, "--steps"),
            time_s=None if time is None else option_value(units.parse_time, time, "--time"),
            seed=seed, overrides=parse_hyperparams(hyperparams) if hyperparams else None,
            gym_packages=gym_package or [], json_out=json_out,
        )  # fmt: skip
        return
    settings = run_settings(
        algo, env, plan=plan_file, option=option, budget=loaded, seed=seed,
        env_steps=None if steps is None else option_value(units.parse_count, steps, "--steps"),
        time_s=None if time is None else option_value(units.parse_time, time, "--time"),
        overrides=parse_hyperparams(hyperparams) if hyperparams else None,
        env_steps_from="--steps", teacher=teacher, demos=demos, init=init,
        env_kwargs=parse_env_kwargs(env_kwargs, "--env-kwargs"),
    )  # fmt: skip
    show = not quiet and not json_out
    wanted = output or Path("runs") / f"{settings.algorithm}-{settings.env_id}-s{seed}"
    created = not wanted.exists()
    run_dir = prepare_run_dir(wanted, say=common.say if show else None)
    if show:
        from rlbudget.render import render_train_start

        render_train_start(common.err, settings)
    try:
        _finish(settings, run_dir, quiet=quiet, json_out=json_out, resume=False,
                tensorboard=tensorboard, curve=curve)  # fmt: skip
    except RlbudgetError:
        if created and is_empty_dir(run_dir):  # refused before it began: train_run cleared it
            run_dir.rmdir()
        raise


def _finish(
    settings: RunSettings, run_dir: Path, *, quiet: bool, json_out: bool, resume: bool,
    tensorboard: Path | None = None, curve: bool = True,
) -> None:  # fmt: skip
    """Run the training with a progress bar, print the outcome, exit 130/143 on a signal."""
    result = _train(settings, run_dir, show=not quiet and not json_out, resume=resume,
                    tensorboard=tensorboard, curve=curve)  # fmt: skip
    if json_out:
        common.print_json(result.to_dict())
    else:
        from rlbudget.render import render_train_result

        render_train_result(common.out, result)
    if result.stopped_by in ("SIGINT", "SIGTERM"):
        common.err.print(
            f"interrupted: policy and checkpoint saved in {run_dir}; "
            f"continue with: rlbudget train --resume {run_dir}"
        )
        raise typer.Exit(130 if result.stopped_by == "SIGINT" else 143)


def _train(settings: RunSettings, run_dir: Path, *, show: bool, resume: bool,
           tensorboard: Path | None, curve: bool = True) -> RunResult:  # fmt: skip
    """``train_run``, showing progress as a bar on a terminal, as lines in a log file."""
    from rlbudget.render import progress_bar
    from rlbudget.train import ProgressLog, start_step, train_run

    first = start_step(run_dir) if resume else 0
    if not show:
        return train_run(settings, run_dir, resume=resume, tensorboard=tensorboard, curve=curve)
    if not common.err.is_terminal:  # a log file: plain lines, not a bar redrawn in place
        log = ProgressLog(settings.n_timesteps, common.say, start_step=first)
        return train_run(settings, run_dir, on_progress=log, say=common.say, resume=resume,
                         tensorboard=tensorboard, curve=curve)  # fmt: skip
    with progress_bar(common.err, settings.n_timesteps, first) as progress:
        return train_run(settings, run_dir, on_progress=progress, say=common.say,
                         resume=resume, tensorboard=tensorboard, curve=curve)  # fmt: skip
