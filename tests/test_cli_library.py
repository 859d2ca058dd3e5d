"""What the CLI used to decide itself, now library functions (issue 15, item 6): which
limits a training run obeys, run folder or policy folder, the export gate warning, where a
compression may write, a report path, an observations file."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest

from rlbudget import load_budget
from rlbudget.compress import check_output, gate_warning
from rlbudget.envs import env_spec
from rlbudget.errors import EnvError, PlanError, PolicyError, RlbudgetError
from rlbudget.fileio import load_npy
from rlbudget.plan import make_plan, save_plan
from rlbudget.policy import save_policy
from rlbudget.policy.model import Head, Policy, Table
from rlbudget.profile.evaluate import policy_env
from rlbudget.profile.report import check_report_path
from rlbudget.train import locate_run, run_settings

from .conftest import BUDGETS

LAKE = BUDGETS / "rp2040-frozenlake.yaml"


def frozenlake_table() -> Policy:
    """A FrozenLake value table (no factory from another test file, which s3-tests moves)."""
    spec = env_spec("FrozenLake-v1", measure_steps=0)
    return Policy(spec.observation, spec.action, (), Table(np.zeros((16, 4), np.float32)),
                  Head("argmax"), {"env": "FrozenLake-v1"})  # fmt: skip


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plan") / "plan.yaml"
    save_plan(make_plan(load_budget(LAKE)), path)
    return path


def test_a_plan_gives_algorithm_env_and_its_budgets_limits(plan_file: Path) -> None:
    budget = load_budget(LAKE)
    s = run_settings(plan=plan_file)
    assert s.env_id == "FrozenLake-v1"
    assert s.n_timesteps == budget.training.env_steps
    assert s.n_timesteps_from == "training.env_steps in the budget"
    assert s.target_return == budget.task.min_return


def test_a_budget_replaces_the_plans_limits_and_options_replace_both(plan_file: Path) -> None:
    budget = load_budget(LAKE)
    other = dataclasses.replace(
        budget, training=dataclasses.replace(budget.training, env_steps=1234, time_s=5.0)
    )
    s = run_settings(plan=plan_file, budget=other)
    assert (s.n_timesteps, s.time_limit_s) == (1234, 5.0)
    s = run_settings(plan=plan_file, budget=other, env_steps=777, time_s=2.0,
                     env_steps_from="--steps", overrides={"gamma": 0.9})  # fmt: skip
    assert (s.n_timesteps, s.n_timesteps_from, s.time_limit_s) == (777, "--steps", 2.0)
    assert s.hyperparameters["gamma"] == 0.9


def test_without_a_budget_the_env_gives_the_target() -> None:
    s = run_settings("q-learning", "FrozenLake-v1")
    assert (s.target_return, s.target_from) == (0.7, "FrozenLake-v1's reward_threshold")


def test_nothing_to_train_is_one_plan_error() -> None:
    with pytest.raises(PlanError, match="say what to train: a plan file"):
        run_settings(env_id="FrozenLake-v1")
    with pytest.raises(PlanError, match="cannot train on"):
        run_settings("sac", "FrozenLake-v1")  # SAC needs box actions


def test_locate_run_tells_a_run_folder_from_a_policy_folder(tmp_path: Path) -> None:
    policy = save_policy(frozenlake_table(), tmp_path / "run" / "policy", parents=True)
    assert locate_run(policy) == (policy, None)
    with pytest.raises(RlbudgetError, match=r"a run folder needs summary\.json"):
        locate_run(tmp_path / "run")
    (tmp_path / "run" / "summary.json").write_text("{}")
    assert locate_run(tmp_path / "run") == (policy, tmp_path / "run")


def test_gate_warning_only_for_a_failed_gate() -> None:
    p = frozenlake_table()
    assert gate_warning(p, "lake") is None
    gate = {"passed": False, "retention": 0.9, "tail_drop": 0.2, "max_return_drop": 0.05}
    failed = dataclasses.replace(p, provenance={**p.provenance, "compress_gate": gate})
    assert gate_warning(failed, "lake") == (
        "warning: lake failed its compression gate (return retention 90.0%, worst 5 % drop "
        "20.0%, limit: a drop of at most 5.0%); exporting it anyway"
    )
    passed = dataclasses.replace(p, provenance={"compress_gate": {**gate, "passed": True}})
    assert gate_warning(passed, "lake") is None


def test_check_output_refuses_the_input_and_a_foreign_folder(tmp_path: Path) -> None:
    policy = save_policy(frozenlake_table(), tmp_path / "lake")
    with pytest.raises(PolicyError, match="is the input policy"):
        check_output(policy, tmp_path / "." / "lake")
    (tmp_path / "notes").mkdir()
    with pytest.raises(PolicyError, match="exists and is not a policy folder"):
        check_output(policy, tmp_path / "notes")
    check_output(policy, tmp_path / "new")  # a new folder is fine


def test_policy_env_prefers_the_option_then_the_provenance() -> None:
    p = frozenlake_table()
    assert policy_env(p, None, "lake") == "FrozenLake-v1"
    assert policy_env(p, "FrozenLake8x8-v1", "lake") == "FrozenLake8x8-v1"
    with pytest.raises(EnvError, match="lake: the policy does not say which env"):
        policy_env(dataclasses.replace(p, provenance={}), None, "lake")


def test_report_path_is_checked_before_profiling(tmp_path: Path) -> None:
    check_report_path(tmp_path / "report.md")
    for bad, why in ((tmp_path / "no" / "r.md", "does not exist"), (tmp_path, "is a folder"),
                     (tmp_path / "r.PNG", "must not end in .png")):  # fmt: skip
        with pytest.raises(RlbudgetError, match=why):
            check_report_path(bad)


def test_load_npy_never_unpickles(tmp_path: Path) -> None:
    good = tmp_path / "obs.npy"
    np.save(good, np.zeros((3, 4), np.float32))
    assert load_npy(good, "obs").shape == (3, 4)
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(RlbudgetError, match=r"objects: not a numpy \.npy array"):
        load_npy(objects, "objects")
    raw = tmp_path / "raw.npy"
    raw.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(RlbudgetError, match=r"raw: not a \.npy file"):
        load_npy(raw, "raw")
    with pytest.raises(RlbudgetError, match="missing: no such file"):
        load_npy(tmp_path / "missing.npy", "missing")
