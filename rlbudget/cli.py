"""The ``rlbudget`` command: parse options, call one library function, render.

Exit codes: 0 success, 1 the budget is not met (nothing fits), 2 bad input, 3 a bug
(an unexpected exception: one line, the traceback with RLBUDGET_DEBUG=1).
torch and stable_baselines3 are never imported here.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rlbudget import __version__, units
from rlbudget.errors import RlbudgetError

app = typer.Typer(
    name="rlbudget",
    help=(
        "Reinforcement learning under a hardware budget.\n\n"
        "Describe a device and a task in a budget YAML file; rlbudget plans what to train "
        "and trains it (built-in numpy agents or Stable-Baselines3), imports SB3 models "
        "safely, compresses it (int8, fp16, pruning, distillation, packed tables), each step "
        "judged by the episode return it keeps, and exports it as C99 or ONNX.\n\n"
        "Examples:\n\n"
        "  rlbudget plan                          # the bundled default budget\n\n"
        "  rlbudget plan budgets/esp32-cartpole.yaml --json\n\n"
        "  rlbudget check budgets/rp2040-frozenlake.yaml\n\n"
        "  rlbudget train --algo ppo --env CartPole-v1 -o runs/ppo\n\n"
        "  rlbudget import rl-zoo/ppo-CartPole-v1/ -o policies/cartpole\n\n"
        "  rlbudget compress policies/cartpole -m prune-neurons,int8 -o policies/small\n\n"
        "  rlbudget export policies/small --format c -o firmware/policy\n\n"
        "  rlbudget devices"
    ),
    epilog=(
        "Exit codes: 0 success, 1 the budget is not met, 2 bad input (one line says what "
        "and how to fix it), 3 a bug in rlbudget (please report it; RLBUDGET_DEBUG=1 shows "
        "the traceback). An env id of the form module:EnvId imports that module, which runs "
        "its code: only --env, --gym-package and your budget may name one (see "
        "--trust-env-id)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

out = Console(highlight=False, soft_wrap=False, width=200 if not sys.stdout.isatty() else None)
err = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


BUG_EXIT = 3
BUG_HINT = (
    "this is a bug, please report it with the command and this line "
    "(RLBUDGET_DEBUG=1 shows the traceback)"
)


def _error_line(message: str) -> None:
    # escape: a message may hold brackets (rlbudget[contrib]) that are not markup
    err.print(f"[red]error:[/red] {escape(message)}", markup=True, highlight=False)


def _trust_named_envs(kwargs: dict[str, Any]) -> None:
    """The ids the user named may import their module: ``--env`` and the task.env of the
    budget given on the command line (a plan, sweep or policy file's ids may not)."""
    from rlbudget.envs import trust_budget_file, trust_env_ids

    if isinstance(kwargs.get("env"), str):
        trust_env_ids(kwargs["env"])
    if isinstance(kwargs.get("budget"), Path):
        trust_budget_file(kwargs["budget"])  # read once, by the command itself


def _handles_errors(fn: F) -> F:
    """Turn an RlbudgetError into one red line on stderr and exit code 2, a full disk into
    one line and exit 2, Ctrl-C or SIGTERM into one line and exit 130 / 143
    (:mod:`rlbudget.interrupt`), and anything unexpected into one line, "this is a bug",
    exit 3."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import os

        from rlbudget.fileio import disk_full, is_disk_full

        try:
            _trust_named_envs(kwargs)
            return fn(*args, **kwargs)
        except RlbudgetError as exc:
            _error_line(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM via interrupt.install()
            from rlbudget import interrupt

            err.print(interrupt.message(exc), markup=False, highlight=False)
            raise typer.Exit(interrupt.exit_code(exc)) from None
        except Exception as exc:
            # typer's own exits and usage errors (click's classes; vendored in new typer)
            if isinstance(exc, typer.Exit | typer.Abort) or any(
                "click" in c.__module__ for c in type(exc).__mro__
            ):
                raise
            if is_disk_full(exc):
                _error_line(str(disk_full(getattr(exc, "filename", None))))
                raise typer.Exit(2) from None
            if os.environ.get("RLBUDGET_DEBUG") == "1":
                raise
            text = str(exc).splitlines()[0] if str(exc).strip() else ""
            _error_line(f"unexpected {type(exc).__name__}{': ' + text[:300] if text else ''}; "
                        f"{BUG_HINT}")  # fmt: skip
            raise typer.Exit(BUG_EXIT) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        out.print(f"rlbudget {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    trust_env_id: Annotated[
        bool,
        typer.Option(
            "--trust-env-id",
            help="Let env ids read from files (model or folder names, policy.json, plan and "
            "sweep files) name a module (module:EnvId): gymnasium imports it, which runs the "
            "module's code. Without it only --env, --gym-package and your budget may.",
        ),
    ] = False,
) -> None:
    """Reinforcement learning under a hardware budget."""
    from rlbudget.envs import trust_all_env_ids

    trust_all_env_ids(trust_env_id)


def default_budget_path() -> Path:
    """The bundled default budget (an MCU-class device and CartPole-v1)."""
    return Path(str(resources.files("rlbudget") / "data" / "budgets" / "default.yaml"))


BudgetArg = Annotated[
    Path | None,
    typer.Argument(
        help="Budget YAML file (see budgets/). Without it, the bundled default budget.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
GymPackageOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--gym-package",
        metavar="<module>",
        help="Python module to import first (its code runs), so that it registers custom "
        "envs; repeat for several.",
    ),
]


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")


@app.command()
@_handles_errors
def check(budget: BudgetArg = None, json_out: JsonOpt = False) -> None:
    """Validate a budget file and print it normalized (SI units).

    Example: rlbudget check budgets/esp32-cartpole.yaml --json
    """
    from rlbudget.budget import load_budget

    b = load_budget(budget or default_budget_path())
    if json_out:
        _print_json(b.to_dict())
        return
    from rlbudget.render import render_budget

    render_budget(out, b)
    for w in b.warnings:
        err.print(f"[yellow]warning:[/yellow] {w}", markup=True)


@app.command()
@_handles_errors
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
    from rlbudget.budget import load_budget
    from rlbudget.envs import env_spec
    from rlbudget.plan import make_plan, save_plan

    b = load_budget(budget or default_budget_path())
    env_id = env or b.task.env_id
    spec = env_spec(env_id, gym_packages=gym_package or ()) if env_id else None
    p = make_plan(b, spec)
    if output is not None:
        save_plan(p, output)
    if json_out:
        _print_json(p.to_dict())
    else:
        from rlbudget.render import render_plan

        render_plan(out, p, show_all=show_all)
        for w in b.warnings:
            err.print(f"[yellow]warning:[/yellow] {w}", markup=True)
        if output is not None:
            out.print(f"plan written to {output}")
    if not p.fits:
        raise typer.Exit(1)


@app.command()
@_handles_errors
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
    gym_package: GymPackageOpt = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar (or progress lines).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Train within the budget's training limits: a built-in agent (tabular, Sarsa(lambda),
    ARS) or Stable-Baselines3 (ppo, a2c, dqn, sac, td3; qrdqn, tqc, trpo with
    pip install 'rlbudget[contrib]').

    Stops at training.env_steps (else the tuned step count), at training.time, or when the
    greedy policy reaches the target return on a separate evaluation env (a 100-episode
    screen, then fresh episodes whose 95 % lower bound must reach it). NaN/inf from the
    env stops training with the step named (exit 2). SB3 runs take
    their torch threads from training.cores and size the replay buffer from training.ram.
    The run folder holds policy/ (numpy, no torch needed), config.yaml, metrics.csv,
    summary.json, curve.png and checkpoint/; metrics.csv grows as episodes finish. When
    stderr is not a terminal (CI, nohup, tee), progress is printed as plain lines every
    10 s instead of a bar.

    Examples:

      rlbudget train --algo q-learning --env FrozenLake-v1 -o runs/frozenlake

      rlbudget train --algo ppo --env CartPole-v1 --budget budgets/esp32-cartpole.yaml

      rlbudget plan budgets/rp2040-frozenlake.yaml -o plan.yaml && rlbudget train plan.yaml

      rlbudget train --algo sac --env Pendulum-v1 --steps 20k --time 10m -p learning_rate=1e-3
    """
    import dataclasses

    from rlbudget.envs import env_spec, import_gym_packages
    from rlbudget.errors import PlanError
    from rlbudget.train import (
        Limits,
        check_spaces,
        load_settings,
        parse_hyperparams,
        prepare_run_dir,
        read_plan,
        resolve,
    )

    import_gym_packages(gym_package or ())
    if resume is not None:
        given = (plan_file, algo, env, budget, output, steps, time, hyperparams)
        if any(v is not None for v in given):
            raise PlanError(
                "--resume continues a run with the settings in its config.yaml; "
                "give only the run folder (rlbudget train --resume RUN_DIR)"
            )
        settings = load_settings(resume)
        _finish_training(settings, resume, quiet=quiet, json_out=json_out, resume=True,
                         tensorboard=tensorboard)  # fmt: skip
        return
    limits = Limits()
    overrides: dict[str, object] = {}
    if plan_file is not None:
        choice, limits = read_plan(plan_file, option)
        algo, env, overrides = choice.algorithm, env or choice.env, dict(choice.params)
    if budget is not None:
        from rlbudget.budget import load_budget

        b = load_budget(budget)
        env = env or b.task.env_id
        limits = Limits.from_budget(b)
    if steps is not None:
        limits = dataclasses.replace(limits, env_steps=_option(units.parse_count, steps, "--steps"))
    if time is not None:
        limits = dataclasses.replace(limits, time_s=_option(units.parse_time, time, "--time"))
    if hyperparams:
        overrides = {**overrides, **parse_hyperparams(hyperparams)}
    if algo is None or env is None:
        raise PlanError(
            "say what to train: a plan file (rlbudget train plan.yaml), or --algo and --env "
            "(rlbudget train --algo q-learning --env FrozenLake-v1)"
        )
    spec = env_spec(env, measure_steps=0)
    check_spaces(algo, spec)
    settings = resolve(
        algo, env, env_steps=limits.env_steps, time_s=limits.time_s,
        min_return=limits.min_return, reward_threshold=spec.reward_threshold, seed=seed,
        overrides=overrides, ram_bytes=limits.ram_bytes, cores=limits.cores,
        margin=limits.margin, env_steps_from="--steps" if steps is not None else
        "training.env_steps in the budget",
    )  # fmt: skip
    run_dir = prepare_run_dir(output or Path("runs") / f"{settings.algorithm}-{env}-s{seed}",
                              say=None if quiet or json_out else _say)  # fmt: skip
    if not quiet and not json_out:
        err.print(
            f"training {settings.algorithm} on {env} for up to "
            f"{units.format_count(settings.n_timesteps)} steps ({settings.n_timesteps_from}); "
            f"target {settings.target_return} ({settings.target_from})"
        )
        if settings.library == "sb3":
            err.print(
                f"{settings.n_envs} env(s) in one process, {settings.torch_threads} torch "
                "thread(s) (training.cores)"
            )
        if settings.replay_from is not None:
            err.print(settings.replay_from, markup=False)
    _finish_training(settings, run_dir, quiet=quiet, json_out=json_out, resume=False,
                     tensorboard=tensorboard)  # fmt: skip


def _say(msg: str) -> None:
    err.print(msg, markup=False, highlight=False)


def _option(parse: Callable[[str], Any], value: str, option: str) -> Any:
    """``parse(value)``; a UnitError names the command-line option instead of a budget key."""
    from rlbudget.errors import UnitError

    try:
        return parse(value)
    except UnitError as exc:
        raise UnitError(f"{option}: {exc}") from None


def _finish_training(
    settings: Any, run_dir: Path, *, quiet: bool, json_out: bool, resume: bool,
    tensorboard: Path | None = None,
) -> None:  # fmt: skip
    """Run the training with a progress bar, print the outcome, exit 130/143 on a signal."""
    show = not quiet and not json_out
    result = _train_with_progress(settings, run_dir, show=show, resume=resume,
                                  tensorboard=tensorboard)  # fmt: skip
    if json_out:
        _print_json(result.to_dict())
    else:
        out.print(
            f"stopped by {result.stopped_by} after {units.format_count(result.steps)} steps "
            f"({result.wall_s:.1f} s, {result.steps_per_s:,.0f} steps/s); run folder: {run_dir}"
        )
    if result.stopped_by in ("SIGINT", "SIGTERM"):
        err.print(
            f"interrupted: policy and checkpoint saved in {run_dir}; "
            f"continue with: rlbudget train --resume {run_dir}"
        )
        raise typer.Exit(130 if result.stopped_by == "SIGINT" else 143)


def _train_with_progress(settings: Any, run_dir: Path, *, show: bool, resume: bool,
                         tensorboard: Path | None = None) -> Any:  # fmt: skip
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from rlbudget.train import ProgressLog, start_step, train_run

    first = start_step(run_dir) if resume else 0
    kwargs: dict[str, Any] = {"resume": resume, "tensorboard": tensorboard}
    if not show:
        return train_run(settings, run_dir, **kwargs)
    if not err.is_terminal:  # a log file: plain lines, not a bar redrawn in place
        log = ProgressLog(settings.n_timesteps, _say, start_step=first)
        return train_run(settings, run_dir, on_progress=log, say=_say, **kwargs)
    with Progress(
        TextColumn("{task.description}"), BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"), TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[ret]}"), TimeElapsedColumn(), console=err, transient=False,
    ) as bar:  # fmt: skip
        task = bar.add_task("steps", total=settings.n_timesteps, completed=first, rate="",
                            ret="")  # fmt: skip
        recent: list[float] = []

        def progress(ep: Any) -> None:
            recent.append(ep.ret)
            del recent[:-20]
            rate = ep.step / ep.wall_s if ep.wall_s > 0 else 0.0
            bar.update(task, completed=ep.step, rate=f"{rate:,.0f} steps/s",
                       ret=f"return(20) {sum(recent) / len(recent):.3g}")  # fmt: skip

        return train_run(settings, run_dir, on_progress=progress, say=_say, **kwargs)


@app.command()
@_handles_errors
def show(
    policy: Annotated[
        Path, typer.Argument(help="A policy folder (policy.json + policy.safetensors).")
    ],
    json_out: JsonOpt = False,
) -> None:
    """Show a policy: structure, sizes by dtype, MACs per decision, provenance.

    Example: rlbudget show runs/cartpole/policy --json
    """
    from rlbudget.policy import load_policy

    info = load_policy(policy).summary()
    if json_out:
        _print_json(info)
        return
    t = Table(title=f"Policy {policy}")
    t.add_column("")
    t.add_column("")
    pipeline = " → ".join([*info["preprocess"], info["body"], info["head"]])
    t.add_row("pipeline", pipeline)
    obs, act = info["observation_space"], info["action_space"]
    t.add_row("observation", f"{obs['kind']} {obs['shape'] or obs['n']}")
    t.add_row("action", f"{act['kind']} {act['shape'] or act['n']}")
    for name, shape in info["arrays"].items():
        t.add_row(name, "×".join(map(str, shape)) or "scalar")
    t.add_row("parameters", f"{info['parameters']:,}")
    sizes = ", ".join(f"{units.format_bytes(n)} {d}" for d, n in info["bytes_by_dtype"].items())
    t.add_row("bytes", f"{units.format_bytes(info['bytes'])} ({sizes})")
    t.add_row("MACs/decision", f"{info['macs']:,}")
    t.add_row("working buffers", units.format_bytes(info["buffer_bytes"]))
    for key, value in info["provenance"].items():
        t.add_row(f"provenance.{key}", str(value))
    out.print(t)


@app.command()
@_handles_errors
def evaluate(
    policy: Annotated[Path, typer.Argument(help="A policy folder.")],
    env: Annotated[
        str | None,
        typer.Option("--env", help="Gymnasium id; default: the env in the policy's provenance."),
    ] = None,
    episodes: Annotated[int, typer.Option("--episodes", "-n", min=1, help="Episodes.")] = 10,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the first reset.")] = 0,
    gym_package: GymPackageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a policy with the numpy runtime (no torch) and report its episode returns.

    Example: rlbudget evaluate runs/frozenlake/policy --episodes 100 --json
    """
    from rlbudget.errors import EnvError
    from rlbudget.policy import load_policy
    from rlbudget.profile.evaluate import evaluate as run_evaluation

    p = load_policy(policy)
    env_id = env or p.provenance.get("env")
    if not env_id:
        raise EnvError(f"{policy}: the policy does not say which env it is for; pass --env ID")
    result = run_evaluation(p, str(env_id), episodes=episodes, seed=seed,
                            gym_packages=gym_package or ())  # fmt: skip
    if json_out:
        _print_json(result.to_dict())
        return
    out.print(
        f"{result.env_id}: return {result.return_mean:.3f} ± {result.return_std:.3f} "
        f"(min {result.return_min:g}, max {result.return_max:g}) over {result.episodes} "
        f"episodes, mean length {result.length_mean:.1f}"
        + ("" if result.success_rate is None else f", success {result.success_rate:.0%}")
    )


@app.command("import")
@_handles_errors
def import_(
    model: Annotated[
        Path,
        typer.Argument(
            help="An SB3 / sb3-contrib model .zip, or an RL Zoo folder (zip, config.yml, "
            "vecnormalize.pkl).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Policy folder to write.", show_default=False)
    ],
    env: Annotated[
        str | None,
        typer.Option("--env", help="Gymnasium id; checked against the model's spaces, recorded."),
    ] = None,
    vecnormalize: Annotated[
        Path | None,
        typer.Option("--vecnormalize", help="VecNormalize statistics (VecNormalize.save file)."),
    ] = None,
    algo: Annotated[
        str | None,
        typer.Option("--algo", help="Algorithm, when the zip cannot tell (ppo, a2c, trpo)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Import a Stable-Baselines3 model as a numpy policy, without unpickling anything.

    Reads the zip's JSON and weights only (torch weights-only loader); VecNormalize
    statistics are read with an allow-list unpickler. The model's own code never runs.

    Examples:

      rlbudget import ppo-CartPole-v1/ -o policies/cartpole

      rlbudget import model.zip --env Pendulum-v1 --vecnormalize vecnormalize.pkl -o pol
    """
    from rlbudget.policy import save_policy
    from rlbudget.sb3.importer import import_model

    result = import_model(model, env_id=env, vecnormalize=vecnormalize, algorithm=algo)
    save_policy(result.policy, output, parents=True)
    info = result.to_dict()
    if json_out:
        _print_json({**info, "output": str(output)})
        return
    _render_import(info, output)


def _render_import(info: dict[str, Any], output: Path) -> None:
    t = Table(title=f"Imported {info['source']}")
    t.add_column("")
    t.add_column("")
    t.add_row("algorithm", f"{info['algorithm']} (from the {info['algorithm_from']})")
    t.add_row("env", str(info["env"] or "unknown (pass --env to evaluate)"))
    for what in ("observation_space", "action_space"):
        s = info[what]
        t.add_row(what.replace("_", " "), f"{s['kind']} {s['shape'] or s['n']}")
    layers = " → ".join(f"{i}×{o} {a}" for i, o, a in info["layers"])
    t.add_row("pipeline", " → ".join([*info["preprocess"], f"mlp [{layers}]", info["head"]]))
    t.add_row("parameters", f"{info['parameters']:,} ({units.format_bytes(info['bytes'])})")
    t.add_row("sha256", info["sha256"])
    t.add_row("SB3 version", str(info["sb3_version"] or "not recorded"))
    out.print(t)
    for w in info["warnings"]:
        err.print(f"[yellow]warning:[/yellow] {w}", markup=True)
    out.print(f"policy written to {output}")


@app.command()
@_handles_errors
def devices(json_out: JsonOpt = False) -> None:
    """List the named devices a budget can use (device: ID).

    Example: rlbudget devices --json
    """
    from rlbudget.devices import list_devices

    devs = list_devices()
    if json_out:
        _print_json([d.to_dict() for d in devs])
        return
    t = Table(title="Named devices (use 'device: ID' in a budget)")
    for col in (
        "id",
        "class",
        "core",
        "clock",
        "SRAM/RAM",
        "flash",
        "FPU",
        "int8 MAC/cyc",
        "power",
    ):
        t.add_column(col)
    for d in devs:
        t.add_row(
            d.id,
            d.device_class,
            d.core,
            units.format_frequency(d.clock_hz),
            units.format_bytes(d.sram_bytes),
            units.format_bytes(d.flash_bytes),
            "yes" if d.fpu else "no",
            f"{d.int8_macs_per_cycle:g}",
            units.format_power(d.active_power_w),
        )
    out.print(t)


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    """``"16,16"`` → (16, 16); None stays None."""
    from rlbudget.errors import PolicyError

    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise PolicyError(
            f"{what} '{text}': give whole numbers separated by commas, e.g. 16,16"
        ) from None


def _load_observations(path: Path) -> Any:
    """A ``.npy`` array of observations (no pickles)."""
    import numpy as np

    from rlbudget.errors import PolicyError

    try:
        with open(path, "rb") as f:
            magic = f.read(6)
        if magic != b"\x93NUMPY":
            raise PolicyError(f"--calibration {path}: not a .npy file; save the observations "
                              "with numpy.save(path, array)")  # fmt: skip
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise PolicyError(f"--calibration {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise PolicyError(
            f"--calibration {path}: not a numpy .npy array of observations ({exc})"
        ) from None


@app.command()
@_handles_errors
def compress(
    policy: Annotated[Path, typer.Argument(help="A policy folder.", show_default=False)],
    method: Annotated[
        str,
        typer.Option(
            "--method",
            "-m",
            show_default=False,
            help="Methods, applied in order (e.g. prune-neurons,int8): MLPs: int8, fp16, prune, "
            "prune-neurons, distill; tables: pack, drop-unvisited; linear: int8, int16, distill.",
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Policy folder to write.", show_default=False)
    ],
    env: Annotated[
        str | None,
        typer.Option("--env", help="Gymnasium id; default: the env in the policy's provenance."),
    ] = None,
    max_return_drop: Annotated[
        str,
        typer.Option(
            "--max-return-drop",
            help="Largest acceptable drop of the mean return and of the worst 5 % of "
            "episodes' (CVaR): 5% or 0.05.",
        ),
    ] = "5%",
    episodes: Annotated[
        int | None,
        typer.Option(
            "--episodes",
            "-n",
            min=1,
            show_default=False,
            help="Episodes per return measurement, episode i seeded seed+i for both "
            "[about 50,000 env steps, 100 to 1,000 episodes].",
        ),
    ] = None,
    states: Annotated[
        int, typer.Option("--states", min=1, help="Visited states per step (agreement, int8).")
    ] = 5000,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seed of episodes and distillation.")
    ] = 0,
    calibration: Annotated[
        Path | None,
        typer.Option("--calibration", help="int8: observations (.npy) instead of visited ones."),
    ] = None,
    sparsity: Annotated[
        float | None,
        typer.Option("--sparsity", help="prune: fraction of weights set to zero [0.5]."),
    ] = None,
    keep: Annotated[
        float | None,
        typer.Option("--keep", help="prune-neurons: fraction of hidden neurons kept [0.5]."),
    ] = None,
    neurons: Annotated[
        str | None,
        typer.Option("--neurons", help="prune-neurons: neurons kept per hidden layer (16,16)."),
    ] = None,
    widths: Annotated[
        str | None, typer.Option("--widths", help="distill: student hidden widths (8,8).")
    ] = None,
    budget: Annotated[
        Path | None,
        typer.Option("--budget", help="distill: choose the student's widths to fit this budget."),
    ] = None,
    default_action: Annotated[
        int | None,
        typer.Option("--default-action", help="drop-unvisited: action of unvisited states."),
    ] = None,
    recover: Annotated[
        bool,
        typer.Option(
            "--recover",
            help="Fine-tune after prune/prune-neurons from the unpruned parent (distillation).",
        ),
    ] = False,
    gym_package: GymPackageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Compress a policy and judge every step by the return it keeps.

    Each step reports bytes and MACs before and after, action agreement with its parent
    on states the parent visits, and the return before and after over the same seeded
    episodes (paired). The gate holds both the mean return and the worst 5 % of episodes
    (CVaR) to --max-return-drop of the input's; the result is written even when it fails,
    and the command then exits 1.

    Examples:

      rlbudget compress runs/ppo/policy -m int8 -o runs/ppo/int8

      rlbudget compress ppo -m prune-neurons,int8 --keep 0.25 --recover -o small

      rlbudget compress ppo -m distill --widths 8,8 -o student --json

      rlbudget compress frozenlake -m pack,drop-unvisited -o packed
    """
    from rlbudget.compress.pipeline import MethodOptions, parse_fraction
    from rlbudget.compress.pipeline import compress as run_compress
    from rlbudget.errors import EnvError, PolicyError
    from rlbudget.policy import load_policy, save_policy

    drop = parse_fraction(max_return_drop)
    if output.resolve() == policy.resolve():
        raise PolicyError(f"-o {output} is the input policy; write the result to another "
                          "folder (nothing written)")  # fmt: skip
    if output.exists() and not (output / "policy.json").is_file():
        # save_policy refuses it too, but only after the compression ran
        raise PolicyError(
            f"{output}: exists and is not a policy folder; choose another -o (nothing written)"
        )
    p = load_policy(policy)
    env_id = env or p.provenance.get("env")
    if not env_id:
        raise EnvError(f"{policy}: the policy does not say which env it is for; pass --env ID")
    loaded_budget = None
    if budget is not None:
        from rlbudget.budget import load_budget

        loaded_budget = load_budget(budget)
    options = MethodOptions(
        calibration_obs=None if calibration is None else _load_observations(calibration),
        sparsity=sparsity, keep=keep, neurons=_ints(neurons, "--neurons"),
        widths=_ints(widths, "--widths"), budget=loaded_budget,
        default_action=default_action, recover=recover,
    )  # fmt: skip
    report = run_compress(p, method, str(env_id), episodes=episodes, states=states, seed=seed,
                          max_return_drop=drop, options=options,
                          gym_packages=gym_package or ())  # fmt: skip
    save_policy(report.policy, output, parents=True)
    if json_out:
        _print_json({**report.to_dict(), "output": str(output)})
    else:
        _render_compress(report, output)
    if not report.passed:
        raise typer.Exit(1)


def _render_compress(report: Any, output: Path) -> None:
    t = Table(title=f"Compression on {report.env_id} ({report.episodes} episodes, seed "
                    f"{report.seed}; agreement on {report.states} visited states)")  # fmt: skip
    for col in ("method", "bytes", "×", "MACs", "agreement", "return before", "return after",
                "retention", "total", ""):  # fmt: skip
        t.add_column(col, justify="left" if col == "method" else "right")
    for s in report.steps:
        agreement = f"{s.agreement.rate:.1%}"
        if s.agreement.max_abs_diff is not None:
            agreement += f" (max |Δ| {s.agreement.max_abs_diff:.3g})"
        t.add_row(
            s.method,
            f"{units.format_bytes(s.bytes_before)} → {units.format_bytes(s.bytes_after)}",
            f"{s.ratio:.2f}",
            f"{s.macs_before:,} → {s.macs_after:,}",
            agreement,
            f"{s.return_before.mean:.1f} ± {s.return_before.std:.1f}",
            f"{s.return_after.mean:.1f} ± {s.return_after.std:.1f}",
            f"{s.retention:.1%}",
            f"{s.total_retention:.1%}",
            "PASS" if s.passed else "FAIL",
        )
    out.print(t)
    g = report.gate
    ci = "" if g.mean_drop_ci95 is None else " (95 % CI {:.1%} … {:.1%})".format(*g.mean_drop_ci95)
    out.print(
        f"gate (final vs input, {g.episodes} paired episodes): mean {g.mean_before:.1f} → "
        f"{g.mean_after:.1f}, drop {g.mean_drop:.1%}{ci}; "
        f"worst 5 % ({g.tail_episodes} episode{'s' if g.tail_episodes > 1 else ''}) "
        f"{g.tail_before:.1f} → {g.tail_after:.1f}, drop {g.tail_drop:.1%}",
        markup=False,
    )
    for s in report.steps:
        if s.bytes_after > s.bytes_before:
            out.print(f"note: '{s.method}' made the policy larger ({s.bytes_before:,} → "
                      f"{s.bytes_after:,} B): its constants outweigh what it saved on so few "
                      "weights")  # fmt: skip
    if not report.passed:  # the advice first: the verdict stays the last line
        out.print(
            "The first FAIL row lost the return: try a gentler setting (--sparsity, --keep, "
            "--widths), --recover after pruning, or distill,int8 where action values are close."
        )
    verdict = "PASS" if report.passed else "FAIL"
    out.print(
        f"{verdict}: {units.format_bytes(report.bytes_before)} → "
        f"{units.format_bytes(report.bytes_after)} "
        f"({report.bytes_before / report.bytes_after:.2f}× smaller), return retention "
        f"{report.retention:.1%}, worst 5 % {1 - report.gate.tail_drop:.1%} "
        f"(limit: a drop of at most {report.max_return_drop:.1%}); policy written to {output}"
    )


class ExportFormat(str, Enum):
    """``rlbudget export --format``."""

    c = "c"
    onnx = "onnx"


@app.command()
@_handles_errors
def export(
    policy: Annotated[Path, typer.Argument(help="A policy folder.", show_default=False)],
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            "-f",
            help="c: C99 source (policy.h, policy.c, main.c); "
            "onnx: policy.onnx (pip install 'rlbudget[onnx]').",
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder to write.", show_default=False)
    ],
    json_out: JsonOpt = False,
) -> None:
    """Export a policy (preprocess, body and head) as C99 or ONNX.

    C: weights as const arrays (flash), static buffers (RAM), no malloc; the report gives
    both sizes and whether libm is needed, and, when arm-none-eabi-gcc is installed, the
    .text/.data/.bss of policy.c compiled for Cortex-M0+ and M4F. main.c is a harness:
    observations on stdin, actions on stdout.

    Examples:

      rlbudget export runs/ppo/int8 --format c -o firmware/policy

      rlbudget export runs/ppo/policy --format onnx -o onnx/ --json
    """
    from rlbudget.policy import load_policy

    p = load_policy(policy)
    gate = p.provenance.get("compress_gate")
    if isinstance(gate, dict) and gate.get("passed") is False:
        err.print(
            f"warning: {policy} failed its compression gate (return retention "
            f"{gate.get('retention', float('nan')):.1%}, worst 5 % drop "
            f"{gate.get('tail_drop', float('nan')):.1%}, limit: a drop of at most "
            f"{gate.get('max_return_drop', float('nan')):.1%}); exporting it anyway",
            markup=False,
        )
    result: Any
    if fmt is ExportFormat.c:
        from rlbudget.export.arm import cortex_m_sizes, sizes_to_dict
        from rlbudget.export.c import export_c

        result = export_c(p, output, parents=True)
        cortex_m = sizes_to_dict(cortex_m_sizes(output))
    else:
        from rlbudget.export.onnx import export_onnx

        result = export_onnx(p, output)
    info = result.to_dict()
    if fmt is ExportFormat.c:
        info["cortex_m"] = cortex_m
    if json_out:
        _print_json({"format": fmt.value, **info})
        return
    for f in info["files"]:
        out.print(f"wrote {f}")
    if fmt is ExportFormat.c:
        out.print(
            f"RAM {units.format_bytes(info['ram_bytes'])} (static buffers), flash "
            f"{units.format_bytes(info['flash_bytes'])} (const arrays), libm "
            + ("needed" if info["needs_libm"] else "not needed")
        )
        if not cortex_m["available"]:
            out.print(f"Cortex-M sizes: skipped, {cortex_m['note']}")
        for target, s in (cortex_m["targets"] or {}).items():
            out.print(f"{target} (arm-none-eabi-gcc -Os): .text {s['text']:,} B, "
                      f".data {s['data']:,} B, .bss {s['bss']:,} B")  # fmt: skip
    else:
        out.print(f"{info['nodes']} nodes, opset {info['opset']}, "
                  f"{units.format_bytes(info['file_bytes'])}")  # fmt: skip


class ProfileFormat(str, Enum):
    """``rlbudget profile --format``."""

    numpy = "numpy"
    c = "c"
    onnx = "onnx"


@app.command()
@_handles_errors
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
    gym_package: GymPackageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check a deployable policy against a budget, with its safety margin: PASS or FAIL.

    Memory (flash, RAM) of the deployed format on the target, decision latency (estimated
    on the target, measured here: p50/p90/p99), energy per decision, and the return with
    the deployed runtime; every figure says whether it was measured or estimated, and
    how. A run folder adds the training limits (time, env steps, peak RAM, energy).
    Exit 0 when every limit passes, 1 when one fails (the binding limit is named), 2 for
    bad input.

    Examples:

      rlbudget profile runs/ppo/policy --budget budgets/esp32-cartpole.yaml

      rlbudget profile runs/ppo --budget budgets/esp32-cartpole.yaml --report report.md

      rlbudget profile small --budget b.yaml --format onnx --json
    """
    from rlbudget.budget import load_budget
    from rlbudget.errors import RlbudgetError
    from rlbudget.policy import load_policy
    from rlbudget.profile.verdict import profile as run_profile
    from rlbudget.profile.verdict import read_run

    loaded = load_budget(budget)
    if report is not None:
        problem = (f"the folder {report.parent} does not exist; create it first"
                   if not report.parent.is_dir() else
                   "is a folder; give a file name such as report.md" if report.is_dir() else
                   "must not end in .png (the chart is written beside the report as .png)"
                   if report.suffix.lower() == ".png" else None)  # fmt: skip
        if problem:
            raise RlbudgetError(f"--report {report}: {problem}")
    run = not (target / "policy.json").exists() and (
        (target / "summary.json").exists() or (target / "policy").is_dir()
    )
    if run:
        for needed in ("summary.json", "policy"):
            if not (target / needed).exists():
                raise RlbudgetError(f"{target}: a run folder needs {needed} (rlbudget train -o "
                                    "writes both); give the policy folder itself to profile "
                                    "the policy alone")  # fmt: skip
    policy_dir = target / "policy" if run else target
    p = load_policy(policy_dir)
    result = run_profile(
        p, loaded, fmt=None if fmt is None else fmt.value, env_id=env, episodes=episodes,
        seed=seed, calls=calls, run_summary=read_run(target) if run else None,
        policy_name=str(policy_dir), gym_packages=tuple(gym_package or ()),
    )  # fmt: skip
    if report is not None:
        _write_profile_report(result, report)
    if json_out:
        _print_json(result.to_dict())
    else:
        _render_profile(result, report)
    if result.verdict != "PASS":
        raise typer.Exit(1)


def _write_profile_report(result: Any, path: Path) -> None:
    from rlbudget.errors import RlbudgetError
    from rlbudget.fileio import atomic_write_text
    from rlbudget.profile.report import markdown, usage_chart

    chart = path.with_suffix(".png")
    tmp = chart.with_name(f".tmp-{chart.name}")  # same suffix: matplotlib reads the format from it
    try:
        usage_chart(result, tmp)
        atomic_write_text(path, markdown(result, chart.name))
        tmp.replace(chart)
    except OSError as exc:
        raise RlbudgetError(f"--report {path}: cannot write it ({exc.strerror})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _render_profile(result: Any, report: Path | None) -> None:
    from rlbudget.limits import format_figure as figure_text
    from rlbudget.profile.report import alternatives_text, headroom_text

    t = Table(title=f"{result.policy} on {result.device} ({result.format}), margin "
                    f"{result.margin:.0%}")  # fmt: skip
    for col in ("limit", "figure", "source", "with margin", "limit value", "status", "headroom"):
        t.add_column(col, justify="left" if col in ("limit", "source") else "right")
    for c in result.checks:
        style = {"PASS": "green", "FAIL": "red"}.get(c.status, "dim")
        t.add_row(c.limit, figure_text(c.figure, c.unit), c.source,
                  figure_text(c.with_margin, c.unit), figure_text(c.limit_value, c.unit),
                  f"[{style}]{c.status}[/{style}]", headroom_text(c))  # fmt: skip
    out.print(t)
    host = result.host_latency
    lat = result.target_latency
    out.print(f"target latency (estimated): {figure_text(lat.low, 's')} – "
              f"{figure_text(lat.high, 's')}, typical {figure_text(lat.typical, 's')}")  # fmt: skip
    if host is not None:
        out.print(f"host latency ({host.format}, measured over {host.calls} calls): p50 "
                  f"{figure_text(host.p50_s, 's')}, p90 {figure_text(host.p90_s, 's')}, p99 "
                  f"{figure_text(host.p99_s, 's')}")  # fmt: skip
    r = result.returns
    if r is not None:
        target = "none" if r.target is None else f"{r.target:g} ({r.target_from})"
        out.print(f"return: {r.mean:.2f} ± {r.std:.2f} over {r.episodes} episodes, target "
                  f"{target}")  # fmt: skip
    for note in result.notes:
        out.print(f"note: {note}")
    if report is not None:
        out.print(f"report written to {report} (chart {report.with_suffix('.png')})")
    binding = result.binding
    if binding is None:
        out.print("PASS: every checked limit holds with the margin")
    else:
        over = figure_text(binding.with_margin, binding.unit)
        limit = figure_text(binding.limit_value, binding.unit)
        if binding.unit == "return":
            out.print(f"FAIL: binding limit {binding.limit}: mean return {over} is below "
                      f"{limit}")  # fmt: skip
        else:
            way_out = f"; {alternatives_text(result)}" if result.alternatives else ""
            out.print(f"FAIL: binding limit {binding.limit}: {over} (with margin) exceeds "
                      f"{limit}{way_out}", markup=False)  # fmt: skip


@app.command("run")
@_handles_errors
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
    from rlbudget.budget import load_budget
    from rlbudget.envs import import_gym_packages
    from rlbudget.run import run_job

    import_gym_packages(gym_package or ())
    b = load_budget(budget or default_budget_path())
    out_dir = output or Path("runs") / f"run-{b.name}"
    say = None if quiet or json_out else (lambda msg: err.print(msg, markup=False))
    report = run_job(b, out_dir, env_id=env, option=option, seed=seed, episodes=episodes,
                     progress=say)  # fmt: skip
    if json_out:
        _print_json(report.to_dict())
    else:
        _render_run(report)
    if not report.fits:
        raise typer.Exit(1)


def _render_run(report: Any) -> None:
    t = Table(title=f"Candidates ({report.out})")
    for col in ("#", "candidate", "verdict", "binding", "flash", "RAM", "latency", "return"):
        t.add_column(col, justify="left" if col in ("candidate", "binding") else "right")
    for c in report.candidates:
        if c.error is not None:
            t.add_row(str(c.index), c.name, "error", c.error, "", "", "", "")
            continue
        t.add_row(str(c.index), c.name, *c.status(), units.format_bytes(c.flash_bytes),
                  units.format_bytes(c.ram_bytes), f"{c.latency_s * 1e6:.3g} µs",
                  "—" if c.return_mean is None else f"{c.return_mean:.4g}")  # fmt: skip
    out.print(t)
    if report.export:
        out.print(f"exported ({report.export.format}): {', '.join(report.export.files)}")
    out.print(f"report: {report.out / 'report.md'} (report.json, profile.png, candidates.png, "
              "train/curve.png)")  # fmt: skip
    verdict = "FITS" if report.fits else "DOES NOT FIT"
    chosen = f": {report.chosen.name}" if report.chosen else ""
    out.print(f"{verdict}{chosen} — {report.advice} ({report.wall_s:.1f} s)")


@app.command()
@_handles_errors
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
    say = None if quiet or json_out else (lambda msg: err.print(msg, markup=False))
    report = run_sweep(spec, out_dir, workers=workers, ray=ray or ray_address is not None,
                       ray_address=ray_address, progress=say)  # fmt: skip
    if json_out:
        _print_json(report.to_dict())
    else:
        out.print(markdown(report), markup=False)
        out.print(f"results: {out_dir / 'results.md'} (.csv, .json, .png)")
    if any(r.status == "error" for r in report.results):
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    from rlbudget import interrupt

    interrupt.install()  # SIGTERM: one line and exit 143, not death by the signal
    app()


if __name__ == "__main__":
    main()
