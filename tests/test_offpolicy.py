"""lean-sac and lean-td3 (issue 18): the built-in off-policy trainers on tiny settings.

8-unit networks and batches of 32 on a few hundred Pendulum steps take about a second; what
is asserted does not depend on the policy being good: step counts, bit-equal resumes, the
deployed policy against the torch actor, the NaN guard's messages. Reaching −200 is slow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import register

from rlbudget.agents.offpolicy import (
    Nets,
    OffPolicyConfig,
    deterministic_action,
    train_offpolicy,
)
from rlbudget.errors import EnvError, TrainingError
from rlbudget.finite import NonFiniteError

TINY: dict[str, Any] = {"net_arch": [8, 8], "batch_size": 32, "learning_starts": 50}
ALGOS = ("lean-sac", "lean-td3")


class NanActionPendulum(gym.Wrapper[Any, Any, Any, Any]):
    """Pendulum whose 230th step (over the instance's life) returns a NaN reward."""

    def __init__(self) -> None:
        super().__init__(gym.make("Pendulum-v1"))
        self.total = 0

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.total += 1
        return obs, float("nan") if self.total == 230 else reward, terminated, truncated, info


register(id="NanPendulum-v0", entry_point="tests.test_offpolicy:NanActionPendulum",
         max_episode_steps=200)  # fmt: skip


def _stop_after(n: int) -> Any:
    calls = {"n": 0}

    def stop() -> bool:  # checked before every step
        calls["n"] += 1
        return calls["n"] > n

    return stop


@pytest.mark.parametrize("algo", ALGOS)
def test_stops_on_the_env_step_budget(algo: str) -> None:
    # 250 steps: one 200-step Pendulum episode and 50 steps of a second that the budget cuts
    result = train_offpolicy("Pendulum-v1", OffPolicyConfig(algorithm=algo, n_timesteps=250,
                                                            **TINY))  # fmt: skip
    assert result.steps == 250
    assert [(e.step, e.length) for e in result.episodes] == [(200, 200)]
    assert result.checkpoint is not None
    assert result.checkpoint.state["size"] == 250  # every transition is in the buffer
    assert result.checkpoint.arrays["buffer.obs"].shape == (250, 3)
    # 200 updates (steps 50..249); SAC's actor takes each, TD3's every second one
    assert result.checkpoint.state["n_update"] == 200
    steps = result.checkpoint.arrays["adam6_t"]  # the actor's first weight
    assert float(steps[0]) == (200 if algo == "lean-sac" else 100)


@pytest.mark.parametrize("algo", ALGOS)
def test_resume_equals_straight_run(algo: str) -> None:
    cfg = OffPolicyConfig(algorithm=algo, n_timesteps=260, **TINY)
    straight = train_offpolicy("Pendulum-v1", cfg)
    first = train_offpolicy("Pendulum-v1", cfg, should_stop=_stop_after(130))  # mid-episode
    assert first.steps == 130 and first.checkpoint is not None
    assert first.checkpoint.state["steps"] == 130
    resumed = train_offpolicy("Pendulum-v1", cfg, resume=first.checkpoint)
    assert resumed.steps == 260
    assert [e.ret for e in resumed.episodes] == [e.ret for e in straight.episodes]
    assert straight.checkpoint is not None and resumed.checkpoint is not None
    a, b = straight.checkpoint.arrays, resumed.checkpoint.arrays
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    p, q = straight.policy.arrays(), resumed.policy.arrays()
    assert all(np.array_equal(p[k], q[k]) for k in p)


def test_checkpoints_on_schedule_resume_through_a_saved_folder(tmp_path: Path) -> None:
    from rlbudget.agents.common import Checkpoint

    cfg = OffPolicyConfig(n_timesteps=240, **TINY)
    saved: list[int] = []

    def keep(ck: Checkpoint) -> None:
        saved.append(int(ck.state["steps"]))
        ck.save(tmp_path / "ck")

    straight = train_offpolicy("Pendulum-v1", cfg, on_checkpoint=keep, checkpoint_every=100)
    assert saved == [100, 200]
    resumed = train_offpolicy("Pendulum-v1", cfg, resume=Checkpoint.load(tmp_path / "ck"))
    p, q = straight.policy.arrays(), resumed.policy.arrays()
    assert all(np.array_equal(p[k], q[k]) for k in p)


@pytest.mark.parametrize("algo", ALGOS)
def test_deployed_policy_is_the_deterministic_torch_actor(algo: str) -> None:
    cfg = OffPolicyConfig(algorithm=algo, n_timesteps=150, **TINY)
    result = train_offpolicy("Pendulum-v1", cfg)
    policy = result.policy
    assert policy.head.kind == "tanh_rescale" and policy.preprocess == ()
    assert [la.W.shape for la in policy.body.layers] == [(3, 8), (8, 8), (8, 1)]  # type: ignore[union-attr]
    nets = Nets(cfg, 3, 1)
    assert result.checkpoint is not None
    nets.load(result.checkpoint.arrays)
    obs = np.random.default_rng(0).uniform([-1, -1, -8], [1, 1, 8], (64, 3)).astype(np.float32)
    torch_action = deterministic_action(nets, obs).numpy() * 2.0  # Pendulum: [-2, 2]
    np.testing.assert_allclose(policy.act(obs), torch_action, rtol=0, atol=2e-6)
    # the actions differ between observations: the actor is not a constant
    assert np.ptp(policy.act(obs)) > 1e-3


def test_env_nan_stops_training_with_the_guards_message() -> None:
    cfg = OffPolicyConfig(n_timesteps=300, **TINY)
    with pytest.raises(NonFiniteError, match=r"returned reward nan at env step 230 "
                       r"\(step 30 of episode 2\)"):  # fmt: skip
        train_offpolicy("NanPendulum-v0", cfg)


def test_diverging_weights_stop_training() -> None:
    cfg = OffPolicyConfig(n_timesteps=300, learning_rate=float("inf"), **TINY)
    with pytest.raises(TrainingError) as err:
        train_offpolicy("Pendulum-v1", cfg)
    # the first update (after step 51) makes every weight NaN; the actor acts at step 52
    assert str(err.value) == ("lean-sac: training diverged at step 52: the actor's action "
                              "became [nan] (lower learning_rate)")  # fmt: skip


def test_refuses_discrete_actions() -> None:
    with pytest.raises(EnvError) as err:
        train_offpolicy("CartPole-v1", OffPolicyConfig(algorithm="lean-td3", n_timesteps=10))
    assert str(err.value) == ("environment 'CartPole-v1': lean-td3 needs Box observations "
                              "and Box actions with finite bounds")  # fmt: skip


def test_train_run_writes_a_run_folder_and_uses_training_cores(tmp_path: Path) -> None:
    from rlbudget.policy import load_policy
    from rlbudget.train import resolve, train_run

    settings = resolve("lean-td3", "Pendulum-v1", env_steps=220, overrides=TINY, cores=2)
    assert settings.hyperparameters["threads"] == 2 and settings.torch_threads == 2
    run = train_run(settings, tmp_path / "run")
    assert run.steps == 220 and run.stopped_by == "steps"
    policy = load_policy(tmp_path / "run" / "policy")
    assert policy.provenance["algorithm"] == "lean-td3"
    assert policy.provenance["hyperparameters"]["net_arch"] == [8, 8]
    resumed = train_run(resolve("lean-td3", "Pendulum-v1", env_steps=300, overrides=TINY,
                                cores=2), tmp_path / "run", resume=True)  # fmt: skip
    assert resumed.steps == 300


@pytest.mark.slow
def test_lean_sac_reaches_minus_200_on_pendulum(tmp_path: Path) -> None:
    from rlbudget.profile.evaluate import evaluate
    from rlbudget.train import resolve, train_run

    settings = resolve("lean-sac", "Pendulum-v1", min_return=-200.0)
    run = train_run(settings, tmp_path / "run")
    assert run.stopped_by == "target", run.to_dict()
    from rlbudget.policy import load_policy

    policy = load_policy(tmp_path / "run" / "policy")
    assert evaluate(policy, "Pendulum-v1", episodes=50, seed=123).return_mean >= -200


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # was ZeroDivisionError (exit 3)
        ({"train_freq": 0}, "lean-td3: hyperparameter train_freq = 0; write a whole number "
         "of at least 1"),
        ({"net_arch": [0]}, "lean-td3: hyperparameter net_arch[0] = 0; write a whole number "
         "of at least 1"),
        # was a NaN loss reported as divergence; -1 gradient steps trained nothing silently
        ({"batch_size": 0}, "lean-td3: hyperparameter batch_size = 0; write a whole number "
         "of at least 1"),
        ({"gradient_steps": -1}, "lean-td3: hyperparameter gradient_steps = -1; write a whole "
         "number of at least 1"),
        ({"tau": 2.0}, "lean-td3: tau = 2.0, gamma = 0.99; tau must lie in (0, 1] and gamma "
         "in [0, 1]"),
    ],
)  # fmt: skip
def test_bad_counts_are_one_line(change: dict[str, Any], expected: str) -> None:
    from rlbudget.errors import PlanError

    cfg = OffPolicyConfig("lean-td3", n_timesteps=10, **change)
    with pytest.raises(PlanError) as info:
        train_offpolicy("Pendulum-v1", cfg)
    assert str(info.value) == expected


def test_bad_count_on_the_command_line_writes_no_run_folder(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rlbudget.cli import app

    out = tmp_path / "run"  # was left with config.yaml and metrics.csv
    r = CliRunner().invoke(app, ["train", "--algo", "lean-td3", "--env", "Pendulum-v1", "-n",
                                 "300", "-p", "train_freq=0", "-o", str(out)])  # fmt: skip
    assert r.exit_code == 2, r.output
    assert r.stderr == ("error: lean-td3: hyperparameter train_freq = 0; write a whole number "
                        "of at least 1\n")  # fmt: skip
    assert not out.exists()
