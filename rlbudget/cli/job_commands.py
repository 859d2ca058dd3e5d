"""``rlbudget profile``, ``run`` and ``sweep``: a policy judged against a budget, the whole
job for one budget, and many jobs compared."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from rlbudget.cli import common
from rlbudget.cli.common import BudgetArg, GymPackageOpt, JsonOpt, PhysicsOpt, handles_errors


class Optimize(str, Enum):
    """``rlbudget profile --optimize``: the C build (gcc ``-O2`` or ``-Os``)."""

    O2 = "O2"
    Os = "Os"


class ProfileFormat(str, Enum):
    """``rlbudget profile --format``."""

    numpy = "numpy"
    c = "c"
    onnx = "onnx"
    tflite = "tflite"


@handles_errors
def profile(
    target: Annotated[
        Path,
        typer.Argument(
            help="A policy folder, or a run folder (rlbudget train -o RUN) to check the "
            "training limits too.",
            show_default=False,
        ),
    ],
    budget: Annotated[
        Path, typer.Option("--budget", "-b", help="The budget file.", show_default=False)
    ],
    env: Annotated[
        str | None,
        typer.Option("--env", help="Gymnasium id; default: the policy's env, then the budget's."),
    ] = None,
    episodes: Annotated[
        int, typer.Option("--episodes", "-n", min=1, help="Episodes for the return.")
    ] = 10,
    fmt: Annotated[
        ProfileFormat | None,
        typer.Option("--format", "-f", help="Deployed format; default: c on an MCU, else numpy."),
    ] = None,
    calls: Annotated[
        int, typer.Option("--calls", min=1000, help="Timed decisions on this host.")
    ] = 2000,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the episodes.")] = 0,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write a Markdown report here (and a PNG chart beside it)."),
    ] = None,
    optimize: Annotated[
        Optimize,
        typer.Option(
            "--optimize",
            help="C build you ship (gcc -O2 or -Os): flash, RAM and "
            "emulated latency all describe it.",
        ),
    ] = Optimize.O2,
    env_kwargs: PhysicsOpt = None,
    gym_package: GymPackageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check a deployable policy against a budget, with its safety margin: PASS or FAIL.

    Memory (flash, RAM) of the deployed format on the target, decision latency (on a
    Cortex-M or AVR device emulated on its core when the toolchain is installed, else
    estimated; measured here: p50/p90/p99), energy per decision, and the return with the
    deployed runtime; every figure says whether it was measured, emulated or estimated,
    and how. A run folder adds the training limits (time, env steps, peak RAM, energy).
    Exit 0 when every limit passes, 1 when one fails (the binding limit is named), 2 for
    bad input.

    Examples:

      rlbudget profile runs/ppo/policy --budget budgets/esp32-cartpole.yaml

      rlbudget profile runs/ppo --budget budgets/esp32-cartpole.yaml --report report.md

      rlbudget profile small --budget b.yaml --format onnx --json
    """
    from rlbudget.budget import load_budget
    from rlbudget.env_kwargs import parse_env_kwargs, policy_physics
    from rlbudget.policy import load_policy
    from rlbudget.profile.report import check_report_path, write_report
    from rlbudget.profile.verdict import profile as run_profile
    from rlbudget.profile.verdict import read_run
    from rlbudget.train import locate_run

    given = parse_env_kwargs(env_kwargs, "--env-kwargs")
    loaded = load_budget(budget)
    if report is not None:
        check_report_path(report)
    policy_dir, run_dir = locate_run(target)
    p = load_policy(policy_dir)
    env_id = env or p.provenance.get("env") or loaded.task.env_id or ""
    with policy_physics(p, env_id, given):
        result = run_profile(
            p, loaded, fmt=None if fmt is None else fmt.value, env_id=env, episodes=episodes,
            seed=seed, calls=calls, run_summary=None if run_dir is None else read_run(run_dir),
            policy_name=str(policy_dir), gym_packages=tuple(gym_package or ()),
            optimize=optimize.value,
        )  # fmt: skip
    if report is not None:
        write_report(result, report)
    if json_out:
        common.print_json(result.to_dict())
    else:
        from rlbudget.render import render_profile

        render_profile(common.out, result, report)
    if result.verdict != "PASS":
        raise typer.Exit(1)


@handles_errors
def run_command(
    budget: BudgetArg = None,
    env: Annotated[
        str | None, typer.Option("--env", help="Gymnasium id (overrides task.env).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Run folder (default runs/run-BUDGET-NAME).", show_default=False
        ),
    ] = None,
    option: Annotated[
        int | None, typer.Option("--option", min=1, help="Plan option to train (default: first).")
    ] = None,
    episodes: Annotated[
        int | None,
        typer.Option(
            "--episodes",
            "-n",
            min=1,
            help="Episodes per return measurement [default: ≈ 50k env steps' worth, 100 to 1,000].",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of training and episodes.")] = 0,
    gym_package: GymPackageOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """The whole job: plan, train, compress until the policy fits, export, profile.

    Trains the plan's best option within the budget's training limits, then tries
    compressions in order of expected cost (none, int8, structured pruning, distillation
    to narrower students) until one passes every limit with the margin and keeps the
    return target; exports it (C for a microcontroller, else numpy) and writes
    report.md, report.json and charts to the run folder. Exit 0 when a policy fits, 1
    when none does (the binding limit and what would fit are named), 2 for bad input.
    Run it again with the same arguments to resume a killed run from its last stage.

    Examples:

      rlbudget run                                  # the bundled ESP32 + CartPole budget

      rlbudget run budgets/rp2040-frozenlake.yaml -o runs/pico

      rlbudget run budgets/esp32-cartpole.yaml --option 5 --json
    """
    from rlbudget.budget import default_budget_path, load_budget
    from rlbudget.envs import import_gym_packages
    from rlbudget.run import run_job

    import_gym_packages(gym_package or ())
    b = load_budget(budget or default_budget_path())
    out_dir = output or Path("runs") / f"run-{b.name}"
    say = None if quiet or json_out else common.say
    report = run_job(b, out_dir, env_id=env, option=option, seed=seed, episodes=episodes,
                     progress=say)  # fmt: skip
    if json_out:
        common.print_json(report.to_dict())
    else:
        from rlbudget.render import render_run

        render_run(common.out, report)
    if not report.fits:
        raise typer.Exit(1)


@handles_errors
def sweep(
    sweep_file: Annotated[
        Path, typer.Argument(help="A sweep file (see README 'Sweeps').", show_default=False)
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Sweep folder [default: runs/sweep-NAME, NAME from the sweep file].",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            help="Local processes [default: cores ÷ the largest training.cores].",
        ),
    ] = None,
    ray: Annotated[
        bool,
        typer.Option("--ray", help="Run the trials as Ray tasks (pip install 'rlbudget[ray]')."),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Join this Ray cluster (implies --ray); default: start a local Ray.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Run many budgets × devices × envs × seeds (× settings) and compare them.

    Every combination is a trial: rlbudget run (or only plan, or plan and train) in its
    own folder. Trials run in a local process pool, or on Ray with --ray. A failed trial
    is recorded with its error and never stops the sweep; running the same sweep again
    skips finished trials. The table (one row per budget × env, across seeds: how many
    fit, return mean ± 95 % CI, sizes, latency, training time) is printed and written
    as results.md, results.csv, results.json and results.png. Exit 0 when every trial
    ran, 1 when some trial failed, 2 for bad input.

    Examples:

      rlbudget sweep sweeps/boards.yaml

      rlbudget sweep sweeps/boards.yaml --workers 2 -o out/boards

      rlbudget sweep sweeps/seeds.yaml --ray
    """
    from rlbudget.sweep import load_sweep, markdown, run_sweep

    spec = load_sweep(sweep_file)
    out_dir = output or Path("runs") / f"sweep-{spec.name}"
    say = None if quiet or json_out else common.say
    report = run_sweep(spec, out_dir, workers=workers, ray=ray or ray_address is not None,
                       ray_address=ray_address, progress=say)  # fmt: skip
    if json_out:
        common.print_json(report.to_dict())
    else:
        common.out.print(markdown(report), markup=False)
        common.out.print(f"results: {out_dir / 'results.md'} (.csv, .json, .png)")
    if any(r.status == "error" for r in report.results):
        raise typer.Exit(1)
