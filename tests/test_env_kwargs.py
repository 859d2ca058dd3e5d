"""Env kwargs a policy was trained with travel with it: recorded in its provenance by
training, applied again by evaluate, compress and profile (``--env-kwargs`` overrides)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rlbudget.cli import app
from rlbudget.policy import load_policy, save_policy
from rlbudget.policy.model import Head, Policy, Table

runner = CliRunner()
NOT_SLIPPERY = {"is_slippery": False}
# FrozenLake 4x4 without slipping: down, down, right, down, right, right reaches the goal
PATH = {0: 1, 4: 1, 8: 2, 9: 1, 13: 2, 14: 2}


@pytest.fixture
def walker(tmp_path: Path) -> Path:
    """A table that walks PATH, recorded as trained on FrozenLake without slipping: return 1
    on every episode there; on the default (slippery) lake it rarely reaches the goal."""
    from rlbudget.envs import env_spec

    s = env_spec("FrozenLake-v1", measure_steps=0)
    values = np.zeros((16, 4), np.float32)
    for state, action in PATH.items():
        values[state, action] = 1.0
    prov = {"env": "FrozenLake-v1", "env_kwargs": NOT_SLIPPERY}
    return save_policy(Policy(s.observation, s.action, (), Table(values), Head("argmax"), prov),
                       tmp_path / "walker")  # fmt: skip


def _json(args: list[str]) -> dict[str, object]:
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    out: dict[str, object] = json.loads(r.output)
    return out


def test_training_records_its_env_kwargs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "--algo", "q-learning", "--env", "FrozenLake-v1", "-n",
                            "300", "-o", str(out), "-q", "--env-kwargs",
                            '{"is_slippery": false}'])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert load_policy(out / "policy").provenance["env_kwargs"] == NOT_SLIPPERY
    plain = tmp_path / "plain"
    r = runner.invoke(app, ["train", "--algo", "q-learning", "--env", "FrozenLake-v1", "-n",
                            "300", "-o", str(plain), "-q"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "env_kwargs" not in load_policy(plain / "policy").provenance


def test_evaluate_uses_the_recorded_physics_unless_told_otherwise(walker: Path) -> None:
    assert _json(["evaluate", str(walker), "-n", "20"])["return_mean"] == 1.0
    slippery = _json(["evaluate", str(walker), "-n", "20", "--env-kwargs", "{}"])
    assert float(slippery["return_mean"]) < 1.0  # type: ignore[arg-type]


def test_compress_and_profile_use_the_recorded_physics(walker: Path, tmp_path: Path) -> None:
    report = _json(["compress", str(walker), "-m", "pack", "-o", str(tmp_path / "c"), "-n", "20"])
    assert report["return_before"]["mean"] == 1.0  # type: ignore[index]
    assert load_policy(tmp_path / "c").provenance["env_kwargs"] == NOT_SLIPPERY
    budget = tmp_path / "b.yaml"
    budget.write_text("device: raspberry-pi-4\n")
    profile = _json(["profile", str(walker), "-b", str(budget), "-n", "20"])
    assert profile["return"]["mean"] == 1.0  # type: ignore[index]


def test_bad_env_kwargs_override_is_one_line(walker: Path) -> None:
    r = runner.invoke(app, ["evaluate", str(walker), "--env-kwargs", "[1]"])
    assert r.exit_code == 2
    assert r.output.strip() == ("error: --env-kwargs: write a JSON object of gymnasium.make "
                                """kwargs, such as '{"g": 9.81}', not list""")  # fmt: skip


def test_deeply_nested_env_kwargs_is_one_line(walker: Path) -> None:
    r = runner.invoke(app, ["evaluate", str(walker), "--env-kwargs", "[" * 100_000])
    assert r.exit_code == 2
    assert r.output.strip() == ("error: --env-kwargs: nested too deeply to read; write a flat "
                                """object such as '{"g": 9.81}'""")  # fmt: skip


@pytest.mark.parametrize(
    ("recorded", "says"),
    [
        ({"attributes": {"nrow": "x"}}, "'attributes' must map attribute names to numbers"),
        ({"attributes": [1]}, "'attributes' must map attribute names to numbers"),
        ({"render_mode": "human"}, "'render_mode' is not an env kwarg"),
        ([1, 2], "write a JSON object of gymnasium.make kwargs"),
    ],
)
def test_bad_recorded_env_kwargs_are_refused_in_one_line(
    tmp_path: Path, recorded: object, says: str
) -> None:
    """A policy file is user input: its provenance's env kwargs are checked as --env-kwargs
    is (before: a TypeError/AttributeError 'this is a bug' line, or a window opened)."""
    from rlbudget.envs import env_spec

    s = env_spec("FrozenLake-v1", measure_steps=0)
    prov = {"env": "FrozenLake-v1", "env_kwargs": recorded}
    table = Table(np.zeros((16, 4), np.float32))
    path = save_policy(Policy(s.observation, s.action, (), table, Head("argmax"), prov),
                       tmp_path / "p")  # fmt: skip
    r = runner.invoke(app, ["evaluate", str(path), "-n", "2"])
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert "\n" not in line
    assert line.startswith("error: the policy's provenance env_kwargs (override them with "
                           "--env-kwargs): ")  # fmt: skip
    assert says in line
    # --env-kwargs '{}' replaces them: the policy runs on the default physics
    default = runner.invoke(app, ["evaluate", str(path), "-n", "2", "--env-kwargs", "{}"])
    assert default.exit_code == 0, default.output
