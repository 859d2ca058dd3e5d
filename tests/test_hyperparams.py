"""Algorithm facts and hyperparameter data: complete, sourced, consistent."""

from __future__ import annotations

import pytest

from rlbudget.errors import PlanError
from rlbudget.hyperparams import algorithm_info, algorithms, get_hyperparams

ALGOS = sorted(algorithms())


def test_known_algorithms() -> None:
    assert set(ALGOS) == {
        "q-learning", "sarsa", "expected-sarsa", "dyna-q", "sarsa-lambda", "ars",
        "ppo", "a2c", "dqn", "sac", "td3", "qrdqn", "tqc", "trpo", "pets", "mbpo",
        "lean-sac", "lean-td3",
    }  # fmt: skip


@pytest.mark.parametrize("algo", ALGOS)
def test_default_entry_sourced(algo: str) -> None:
    hp = get_hyperparams(algo, "SomeUntunedEnv-v0")
    assert hp.tuned is False and hp.env_id is None
    assert hp.n_timesteps > 0 and hp.source


@pytest.mark.parametrize("algo", ALGOS)
def test_flags_consistent(algo: str) -> None:
    a = algorithm_info(algo)
    assert a.host_steps_per_s > 0 and a.sample_efficiency >= 1
    assert a.family in ("tabular", "linear", "mlp", "model-based")
    assert a.trainable
    if a.replay_buffer:
        assert a.off_policy
    if a.family == "tabular":
        assert "discrete" in a.observations and a.actions == ("discrete",)
    if algo in ("sac", "td3"):
        assert a.actions == ("box",)
    if algo == "dqn":
        assert a.actions == ("discrete",)
    assert "host_steps_per_s" in a.sources


def test_zoo_values() -> None:
    ppo = get_hyperparams("ppo", "CartPole-v1")
    assert ppo.tuned and ppo.n_timesteps == 100_000
    assert ppo.params["n_envs"] == 8 and ppo.params["learning_rate"] == "lin_0.001"
    dqn = get_hyperparams("dqn", "CartPole-v1")
    assert dqn.n_timesteps == 50_000 and dqn.params["net_arch"] == [256, 256]
    sac = get_hyperparams("sac", "Pendulum-v1")
    assert sac.n_timesteps == 20_000 and sac.source.startswith("RL Baselines3 Zoo")


def test_other_version_counts_as_tuned_with_note() -> None:
    hp = get_hyperparams("ppo", "LunarLander-v9")
    assert hp.tuned and hp.source.endswith("(tuned for LunarLander-v3)")


def test_unknown_algorithm() -> None:
    with pytest.raises(PlanError) as e:
        algorithm_info("ppo2")
    assert str(e.value).startswith("unknown algorithm 'ppo2'; did you mean 'ppo'? Known: ")
