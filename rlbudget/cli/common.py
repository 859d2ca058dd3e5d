"""What every ``rlbudget`` command shares: the typer app and its top-level options, the
two consoles (``out`` for results, ``err`` for progress, warnings and errors), the error
handler that turns exceptions into exit codes, and the options several commands take.

The consoles are read as ``common.out`` / ``common.err`` at call time, so that a test can
replace them.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from rlbudget import __version__
from rlbudget.errors import RlbudgetError

app = typer.Typer(
    name="rlbudget",
    help=(
        "Reinforcement learning under a hardware budget.\n\n"
        "Describe a device and a task in a budget YAML file; rlbudget plans what to train "
        "and trains it (built-in numpy agents or Stable-Baselines3), imports SB3 models "
        "safely, compresses it (int8, fp16, pruning, distillation, packed tables), each step "
        "judged by the episode return it keeps, and exports it as C99, ONNX or TFLite.\n\n"
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


def handles_errors(fn: F) -> F:
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


BudgetArg = Annotated[
    Path | None,
    typer.Argument(
        help="Budget YAML file (see budgets/). Without it, the bundled default budget.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
PhysicsOpt = Annotated[
    str | None,
    typer.Option(
        "--env-kwargs",
        metavar="<json>",
        help="gymnasium.make kwargs as JSON (as train's --env-kwargs); '{}': the env's "
        "default physics. Default: those the policy was trained with (its provenance).",
        show_default=False,
    ),
]
GymPackageOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--gym-package",
        metavar="<module>",
        help="Python module to import first (its code runs), so that it registers custom "
        "envs; repeat for several.",
    ),
]


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (the ``--json`` form of every command)."""
    sys.stdout.write(json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")


def say(msg: str) -> None:
    """A progress or status line on stderr, printed as it is (no markup)."""
    err.print(msg, markup=False, highlight=False)


def warn(msg: str) -> None:
    """A yellow ``warning:`` line on stderr."""
    err.print(f"[yellow]warning:[/yellow] {msg}", markup=True)


def option_value(parse: Callable[[str], Any], value: str, option: str) -> Any:
    """``parse(value)``; a UnitError names the command-line option instead of a budget key."""
    from rlbudget.errors import UnitError

    try:
        return parse(value)
    except UnitError as exc:
        raise UnitError(f"{option}: {exc}") from None


def ints(text: str | None, what: str) -> tuple[int, ...] | None:
    """``"16,16"`` → (16, 16); None stays None.

    :raises PolicyError: naming the option ``what`` and the form it takes.
    """
    from rlbudget.errors import PolicyError

    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise PolicyError(
            f"{what} '{text}': give whole numbers separated by commas, e.g. 16,16"
        ) from None


def main() -> None:
    """Console-script entry point."""
    from rlbudget import interrupt

    interrupt.install()  # SIGTERM: one line and exit 143, not death by the signal
    app()
