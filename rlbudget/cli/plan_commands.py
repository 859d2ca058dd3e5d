"""``rlbudget check``, ``plan`` and ``devices``: the budget, what to train for it, and the
devices a budget can name."""

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
    p = make_plan(b, spec)
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
