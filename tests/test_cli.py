"""The CLI: exit codes, exact error lines, the JSON schema, and no heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rlbudget.cli import app

from .conftest import BUDGETS, ROOT
from .test_budget import BAD

runner = CliRunner()


def test_help_lists_commands() -> None:
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for cmd in ("check", "plan", "devices"):
        assert cmd in r.output


def test_version() -> None:
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == "rlbudget 0.1.0"


def test_check_json_is_si() -> None:
    r = runner.invoke(app, ["check", str(BUDGETS / "esp32-cartpole.yaml"), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["inference"]["ram_bytes"] == 65536
    assert data["training"]["time_s"] == 600
    assert data["device"]["id"] == "esp32"


def test_check_table_mentions_limits() -> None:
    r = runner.invoke(app, ["check", str(BUDGETS / "esp32-cartpole.yaml")])
    assert r.exit_code == 0
    assert "64 KiB" in r.stdout and "inference.latency" in r.stdout


def test_bad_budget_is_one_line_exit_2(write_budget: Callable[[str, str], Path]) -> None:
    path = write_budget("device: esp32\ninference:\n  ram: 320\n")
    r = runner.invoke(app, ["check", str(path)])
    assert r.exit_code == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {path}:3: inference.ram: '320' has no unit")
    assert "Traceback" not in r.stderr


def test_missing_file_exit_2() -> None:
    r = runner.invoke(app, ["plan", "no-such-budget.yaml"])
    assert r.exit_code == 2
    assert r.stderr.strip() == (
        "error: no-such-budget.yaml: no such file; check the path (example budgets are in budgets/)"
    )


def test_unknown_env_exit_2() -> None:
    r = runner.invoke(app, ["plan", str(BUDGETS / "esp32-cartpole.yaml"), "--env", "CartPole-v2"])
    assert r.exit_code == 2
    assert "CartPole-v1" in r.stderr  # did you mean
    assert "Traceback" not in r.stderr


def test_plan_json_schema() -> None:
    r = runner.invoke(app, ["plan", str(BUDGETS / "rp2040-frozenlake.yaml"), "--json"])
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["schema"] == "rlbudget.plan/2"
    assert data["fits"] is True
    assert isinstance(data["options"], list) and data["options"]
    for o in data["options"]:
        for key in ("paradigm", "algorithm", "fits", "estimates", "reasons"):
            assert key in o
        for key in ("flash_bytes", "ram_bytes", "macs", "latency_s", "energy_j", "env_steps"):
            assert key in o["estimates"]
        assert set(o["estimates"]["latency_s"]) == {"low", "typical", "high"}
    assert data["options"][0]["paradigm"] in ("tabular", "model-based")
    assert data["binding"] is None


def test_plan_nothing_fits_exit_1() -> None:
    r = runner.invoke(app, ["plan", str(BUDGETS / "impossible-uno-latency.yaml")])
    assert r.exit_code == 1
    assert "nothing fits:" in r.stdout


def test_plan_writes_yaml(tmp_path: Path) -> None:
    out = tmp_path / "plan.yaml"
    r = runner.invoke(app, ["plan", str(BUDGETS / "rp2040-frozenlake.yaml"), "-o", str(out)])
    assert r.exit_code == 0
    data = yaml.safe_load(out.read_text())
    assert data["schema"] == "rlbudget.plan/2"
    assert data["options"][0]["rank"] == 1
    assert not list(tmp_path.glob(".plan.yaml.*"))  # no temp file left behind


def test_plan_output_into_missing_folder_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "nope" / "plan.yaml"
    r = runner.invoke(app, ["plan", str(BUDGETS / "rp2040-frozenlake.yaml"), "-o", str(out)])
    assert r.exit_code == 2
    assert "does not exist; create it first" in r.stderr
    assert not out.exists()


def test_devices_json() -> None:
    r = runner.invoke(app, ["devices", "--json"])
    assert r.exit_code == 0
    ids = [d["id"] for d in json.loads(r.stdout)]
    assert len(ids) >= 12 and "esp32" in ids and "arduino-uno" in ids


@pytest.mark.parametrize(
    "args",
    [["--help"], ["check"], ["plan"], ["devices"]],
    ids=["help", "check", "plan", "devices"],
)
def test_no_torch_or_sb3_imported(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from rlbudget.cli import app\n"
        "try:\n"
        f"    app({args!r}, standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'stable_baselines3'))\n"
        "print('HEAVY:' + ','.join(heavy))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert "HEAVY:" in r.stdout, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "HEAVY:"


def test_console_script_installed() -> None:
    exe = Path(sys.executable).parent / "rlbudget"
    r = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and r.stdout.strip() == "rlbudget 0.1.0"


@pytest.mark.parametrize("case", sorted(BAD))
def test_every_bad_budget_exit_2_one_exact_line(
    case: str, write_budget: Callable[[str, str], Path]
) -> None:
    text, expected = BAD[case]
    path = write_budget(text, f"{case}.yaml")
    for command in ("check", "plan"):
        r = runner.invoke(app, [command, str(path)])
        assert r.exit_code == 2, (command, r.output)
        assert r.stdout == ""
        assert r.stderr == f"error: {path}:{expected}\n"
        assert r.exception is None or isinstance(r.exception, SystemExit)


def test_unsupported_space_exit_2() -> None:
    r = runner.invoke(
        app, ["plan", str(BUDGETS / "esp32-cartpole.yaml"), "--env", "tests.fake_envs:TextObs-v0"]
    )
    assert r.exit_code == 2
    assert r.stderr.startswith(
        "error: environment 'tests.fake_envs:TextObs-v0' has a Dict observation space with a "
        "Text part at ['name'];"
    )


def test_deprecated_env_id_is_one_line() -> None:
    r = runner.invoke(app, ["plan", str(BUDGETS / "esp32-cartpole.yaml"), "--env", "Taxi-v3"])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: environment 'Taxi-v3' is deprecated")
