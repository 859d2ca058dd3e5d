"""``rlbudget check``, ``plan``, ``calibrate`` and ``devices``: the budget, what to train for
it, this host's training throughput, and the devices a budget can name."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rlbudget.cli import common
from rlbudget.cli.common import BudgetArg, GymPackageOpt, JsonOpt, handles_errors


@handles_errors
def check(budget: BudgetArg = None, json_out: JsonOpt = False) -> None:
    """Validate a budget file and print it normalized (SI units).

    Example: rlbudget check budgets/esp32-cartpole.yaml --json
    """
    from rlbudget.budget import default_budget_path, load_budget

    b = load_budget(budget or default_budget_path())
    if json_out:
        common.print_json(b.to_dict())
        return
    from rlbudget.render import render_budget

    render_budget(common.out, b)
    for w in b.warnings:
        common.warn(w)


@handles_errors
def plan(
    budget: BudgetArg = None,
    env: Annotated[
        str | None,
        typer.Option("--env", help="Gymnasium id (or module:EnvId); overrides task.env."),
    ] = None,
    gym_package: GymPackageOpt = None,
    json_out: JsonOpt = False,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the plan as YAML (for train).")
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Show the reasons of every option, not only the first.")
    ] = False,
    no_calibration: Annotated[
        bool,
        typer.Option(
            "--no-calibration",
            help="Ignore this host's calibration (rlbudget calibrate): use algorithms.yaml's "
            "throughputs scaled by the width law.",
        ),
    ] = False,
) -> None:
    """Recommend what to train for a budget: ranked options, estimates and the rules that fired.

    Exit code 1 when no option fits the budget with the margin (the binding limit is named).

    Example: rlbudget plan budgets/raspberry-pi-4-pendulum.yaml --env Pendulum-v1 -o plan.yaml
    """
    from rlbudget.budget import default_budget_path, load_budget
    from rlbudget.envs import env_spec
    from rlbudget.plan import make_plan, save_plan

    b = load_budget(budget or default_budget_path())
    env_id = env or b.task.env_id
    spec = env_spec(env_id, gym_packages=gym_package or ()) if env_id else None
    p = make_plan(b, spec, calibration=not no_calibration)
    if output is not None:
        save_plan(p, output)
    if json_out:
        common.print_json(p.to_dict())
    else:
        from rlbudget.render import render_plan

        render_plan(common.out, p, show_all=show_all)
        for w in b.warnings:
            common.warn(w)
        if output is not None:
            common.out.print(f"plan written to {output}")
    if not p.fits:
        raise typer.Exit(1)


@handles_errors
def devices(json_out: JsonOpt = False) -> None:
    """List the named devices a budget can use (device: ID).

    Each row says which latency model plan uses there: fitted to emulation, or per MAC.

    Example: rlbudget devices --json
    """
    from rlbudget.devices import list_devices
    from rlbudget.fitted import device_entry

    devs = list_devices()
    if json_out:
        common.print_json([device_entry(d) for d in devs])
        return
    from rlbudget.render import render_devices

    render_devices(common.out, devs)


@handles_errors
def calibrate(
    algo: Annotated[
        list[str] | None,
        typer.Option(
            "--algo",
            metavar="<id>",
            help="Algorithm to measure (repeatable). "
            "Default: sac, td3, ppo and the built-in lean-sac/lean-td3 if present.",
        ),
    ] = None,
    width: Annotated[
        list[int] | None,
        typer.Option(
            "--width",
            metavar="<units>",
            help="Hidden width, two layers of it (repeatable). Default: 16, 32, 64, 256.",
        ),
    ] = None,
    steps: Annotated[
        int, typer.Option("--steps", metavar="<count>", help="Timed env steps per point.")
    ] = 300,
    json_out: JsonOpt = False,
) -> None:
    """Measure this host's training throughput per algorithm and hidden width, for plan.

    Trains each algorithm for a few hundred Pendulum-v1 steps at each width (one torch
    thread; run it on an otherwise idle host: it measures what it gets) and caches env
    steps/s, updates included, in ~/.cache/rlbudget/calibration.yaml (RLBUDGET_CACHE_DIR
    moves it), keyed by CPU model, torch version and cores. plan then estimates training
    time per width from it; without it, plan says "not calibrated".

    Example: rlbudget calibrate --algo sac --width 32 --width 64
    """
    from rlbudget.plan.calibrate import WIDTHS, save_calibration, writable_cache
    from rlbudget.plan.calibrate import calibrate as measure

    writable_cache()  # before minutes of measuring

    def progress(line: str) -> None:
        common.err.print(line, markup=False, highlight=False)

    cal = measure(algo or None, tuple(width or WIDTHS), steps, progress=progress)
    path = save_calibration(cal)
    if json_out:
        common.print_json({"cache": str(path), "host": cal.key.text, **cal.to_dict()})
        return
    common.out.print(f"calibrated {cal.key.text}; written to {path}", markup=False)
