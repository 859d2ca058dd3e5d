"""Help text and plan output a user can act on (issue 14, item 19): option values are
named, defaults are the real ones, and no figure cites a document users do not have."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlbudget.cli import app

from .conftest import BUDGETS

runner = CliRunner()
COMMANDS = ["check", "plan", "calibrate", "train", "show", "evaluate", "import", "devices",
            "compress", "export", "profile", "run", "sweep"]  # fmt: skip
DATA = Path(__file__).resolve().parents[1] / "rlbudget" / "data"


def help_text(command: str) -> str:
    r = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    return r.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_no_python_types_in_help(command: str) -> None:
    assert not re.search(r"<(list|dict|tuple)\[", help_text(command))


@pytest.mark.parametrize("command", ["plan", "train", "run", "evaluate", "compress", "profile"])
def test_gym_package_everywhere_an_env_is_made(command: str) -> None:
    assert "--gym-package <module>" in help_text(command)


def test_sweep_output_default_is_the_real_one() -> None:
    assert "[default: runs/sweep-NAME, NAME from the sweep file]" in " ".join(
        help_text("sweep").split()
    )


def test_train_help_names_the_new_options() -> None:
    text = help_text("train")
    for option in ("-n, --steps <count>", "--time <duration>", "-p, --hyperparams <key=value>"):
        assert option in text


def test_no_internal_document_in_the_data_files() -> None:
    offenders = [f"{p.relative_to(DATA)}:{i}" for p in sorted(DATA.rglob("*.yaml"))
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if "REFERENCE" in line]  # fmt: skip
    assert offenders == []


@pytest.mark.parametrize(
    "budget", ["esp32-cartpole.yaml", "raspberry-pi-4-pendulum.yaml", "rp2040-frozenlake.yaml"]
)
def test_plan_output_cites_no_internal_document(budget: str) -> None:
    r = runner.invoke(app, ["plan", str(BUDGETS / budget), "--all"], terminal_width=200)
    assert r.exit_code in (0, 1), r.output
    assert "REFERENCE" not in r.stdout
    r = runner.invoke(app, ["plan", str(BUDGETS / budget), "--json"])
    assert "REFERENCE" not in json.dumps(json.loads(r.stdout))
