"""NaN/inf from the environment (issue 14, item 8): training stops at the first bad number
with the step named and the last good checkpoint kept; nothing learned with NaN/inf is
written; evaluate refuses a non-finite return; profile never passes one."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import tests.fake_envs  # noqa: F401  (registers the fake envs)
from rlbudget.agents.common import Checkpoint
from rlbudget.agents.tabular import TabularConfig, train_tabular
from rlbudget.cli import app
from rlbudget.envs import make_env
from rlbudget.errors import EnvError, RlbudgetError, TrainingError
from rlbudget.finite import NonFiniteError, check_learned
from rlbudget.limits import FAIL, NOT_CHECKED, PASS, check
from rlbudget.policy.io import save_policy
from rlbudget.profile.evaluate import evaluate

runner = CliRunner()
FIX = "fix the environment (or wrap it to replace NaN/inf) and run again"


def _train(tmp_path: Path, write_budget: Callable[[str, str], Path], algo: str, env: str,
           steps: int = 10_000) -> tuple[int, str, Path]:  # fmt: skip
    budget = write_budget(
        f"device: rp2040\ntraining: {{env_steps: {steps}}}\ntask: {{env: {env}}}\n"
    )
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", "--algo", algo, "--budget", str(budget), "-o", str(run),
                            "--json"])  # fmt: skip
    return r.exit_code, r.stderr, run


@pytest.mark.parametrize(("algo", "checkpoint_step"),
                         [("q-learning", 1000), ("sarsa-lambda", 1000), ("ars", 1120)])  # fmt: skip
def test_nan_observation_stops_training(
    tmp_path: Path, write_budget: Callable[[str, str], Path], algo: str, checkpoint_step: int
) -> None:
    # NanObs-v0's 1,500th step returns [nan, 0]; checkpoints fall every 1,000 steps (ARS:
    # at the first iteration boundary after, 7 × 160 steps).
    code, stderr, run = _train(tmp_path, write_budget, algo, "NanObs-v0")
    assert code == 2, stderr
    line = " ".join(stderr.split())  # rich wraps long lines
    assert (
        "environment 'NanObs-v0' returned a non-finite observation [nan, 0] at env step 1500 "
        f"(step 10 of episode 150); {FIX}. Training stopped: the last good checkpoint "
        f"({run / 'checkpoint'}, step {checkpoint_step}) is kept; no policy was written"
    ) in line
    assert "Traceback" not in stderr
    assert not (run / "policy").exists() and not (run / "summary.json").exists()
    ck = Checkpoint.load(run / "checkpoint")
    assert ck.state["steps"] == checkpoint_step
    check_learned(ck.arrays, "the checkpoint", checkpoint_step)  # finite


@pytest.mark.parametrize(("env", "value"), [("NanReward25-v0", "nan"), ("InfReward25-v0", "-inf")])
def test_nan_reward_stops_training(
    tmp_path: Path, write_budget: Callable[[str, str], Path], env: str, value: str
) -> None:
    code, stderr, run = _train(tmp_path, write_budget, "q-learning", env)
    assert code == 2, stderr
    assert (f"environment '{env}' returned reward {value} at env step 25 (step 5 of episode 3)"
            in " ".join(stderr.split()))  # fmt: skip
    assert "no checkpoint had been written yet" in stderr
    # metrics.csv grows as episodes finish; no checkpoint, policy or summary is written
    assert set(p.name for p in run.iterdir()) <= {"config.yaml", "metrics.csv"}


def test_diverged_weights_are_never_written(
    tmp_path: Path, write_budget: Callable[[str, str], Path]
) -> None:
    # Rewards of 1e308 are finite, but Q values overflow to inf within the first episodes.
    code, stderr, run = _train(tmp_path, write_budget, "q-learning", "HugeReward-v0")
    assert code == 2, stderr
    assert "training diverged by step 1000: the checkpoint's 'q' holds" in stderr
    # metrics.csv grows as episodes finish; no checkpoint, policy or summary is written
    assert set(p.name for p in run.iterdir()) <= {"config.yaml", "metrics.csv"}


def test_check_learned_names_the_array() -> None:
    check_learned({"w": np.ones(3), "n": np.arange(3)}, "the policy", 7)
    with pytest.raises(TrainingError, match=r"by step 7: the policy's 'w' holds 2 NaN/inf"):
        check_learned({"w": np.array([1.0, np.nan, np.inf])}, "the policy", 7)


def test_the_guard_is_on_every_env_and_a_user_error() -> None:
    assert issubclass(NonFiniteError, EnvError) and issubclass(NonFiniteError, RlbudgetError)
    env = make_env("NanReward25-v0")
    env.reset(seed=0)
    for _ in range(24):
        *_, truncated, _ = env.step(0)
        if truncated:
            env.reset()
    with pytest.raises(NonFiniteError, match=r"reward nan at env step 25 \(step 5 of episode 3\)"):
        env.step(0)
    assert type(make_env("NanReward25-v0", guard=False)).__name__ != "EnvGuard"


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = train_tabular("TinyBox-v0", TabularConfig(n_timesteps=200))
    return save_policy(result.policy, tmp_path_factory.mktemp("p") / "policy")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("NanReward25-v0", "environment 'NanReward25-v0' returned reward nan at env step 25 "
                         f"(step 5 of episode 3); {FIX}"),
        ("HugeReward-v0", "environment 'HugeReward-v0': episode 1 of 5 has a non-finite "
                          "return (inf); its rewards overflow float64 — scale the rewards down"),
    ],
)  # fmt: skip
def test_evaluate_refuses_a_non_finite_return(tiny_policy: Path, env: str, message: str) -> None:
    r = runner.invoke(app, ["evaluate", str(tiny_policy), "--env", env, "--episodes", "5"])
    assert r.exit_code == 2, r.stdout
    assert " ".join(r.stderr.split()) == "error: " + message
    assert r.stdout == ""


def test_evaluate_library_raises(tiny_policy: Path) -> None:
    from rlbudget.policy import load_policy

    with pytest.raises(NonFiniteError, match="episode 3"):
        evaluate(load_policy(tiny_policy), "NanReward25-v0", episodes=5)


@pytest.mark.parametrize("target", [None, 0.5, -math.inf])
@pytest.mark.parametrize("mean", [math.nan, math.inf, -math.inf])
def test_a_non_finite_return_never_passes(mean: float, target: float | None) -> None:
    floor = check("task.min_return", mean, target, 0.25, how="10 episodes")
    assert floor.status == FAIL and "not finite" in floor.how
    assert check("task.min_return", 1.0, None, 0.25, how="x").status == NOT_CHECKED
    assert check("task.min_return", 1.0, 0.5, 0.25, how="x").status == PASS
