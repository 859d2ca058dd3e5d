"""EnvSpec from gymnasium ids: spaces, thresholds, custom envs, unsupported spaces."""

from __future__ import annotations

import json
import math

import pytest

from rlbudget.envs import env_spec, space_spec
from rlbudget.errors import EnvError


def test_cartpole() -> None:
    s = env_spec("CartPole-v1", measure_steps=50)
    assert s.observation.kind == "box" and s.observation.shape == (4,)
    assert s.observation.infinite_bounds  # velocities are unbounded
    assert s.action.kind == "discrete" and s.action.n == 2
    assert s.reward_threshold == 475.0 and s.max_episode_steps == 500
    assert s.step_cost_s is not None and 0 < s.step_cost_s < 0.01


def test_frozenlake_discrete() -> None:
    s = env_spec("FrozenLake-v1", measure_steps=0)
    assert (s.observation.kind, s.observation.n, s.observation.dim) == ("discrete", 16, 1)
    assert s.action.n == 4
    assert s.step_cost_s is None
    assert not s.observation.infinite_bounds


def test_pendulum_box_actions() -> None:
    s = env_spec("Pendulum-v1", measure_steps=0)
    assert s.observation.dim == 3 and not s.observation.infinite_bounds
    assert s.action.kind == "box" and s.action.low == (-2.0,) and s.action.high == (2.0,)
    assert s.reward_threshold is None and s.max_episode_steps == 200


def test_to_dict_is_strict_json() -> None:
    d = env_spec("CartPole-v1", measure_steps=0).to_dict()
    text = json.dumps(d, allow_nan=False)
    assert '"inf"' in text  # infinite bounds written as strings
    assert d["observation"]["infinite_bounds"] is True


def test_module_colon_id() -> None:
    s = env_spec("tests.fake_envs:TinyBox-v0", measure_steps=20)
    assert s.observation.shape == (2,) and s.action.n == 3
    assert s.reward_threshold == 9.0 and s.max_episode_steps == 10


def test_gym_package_import() -> None:
    s = env_spec("TinyBox-v0", gym_packages=["tests.fake_envs"], measure_steps=0)
    assert s.env_id == "TinyBox-v0"


def test_dict_space_rejected() -> None:
    with pytest.raises(EnvError) as e:
        env_spec("tests.fake_envs:DictObs-v0", measure_steps=0)
    assert str(e.value) == (
        "environment 'tests.fake_envs:DictObs-v0' has a Dict observation space; rlbudget supports "
        "Discrete and Box spaces. Wrap the env (flatten it with "
        "gymnasium.wrappers.FlattenObservation) and register the wrapped env."
    )


def test_multidiscrete_space_rejected() -> None:
    from gymnasium import spaces

    with pytest.raises(EnvError, match="has a MultiDiscrete action space"):
        space_spec(spaces.MultiDiscrete([2, 3]), what="action", env_id="X")


def test_unknown_id_did_you_mean() -> None:
    with pytest.raises(EnvError) as e:
        env_spec("CartPole-v2")
    assert str(e.value).startswith("unknown environment 'CartPole-v2'; did you mean 'CartPole-v1'?")


def test_missing_module() -> None:
    with pytest.raises(EnvError) as e:
        env_spec("no_such_module_xyz:Foo-v0")
    assert str(e.value) == (
        "environment 'no_such_module_xyz:Foo-v0': cannot import module 'no_such_module_xyz' "
        "(No module named 'no_such_module_xyz'); check that it is installed and on PYTHONPATH"
    )
    with pytest.raises(EnvError, match=r"^--gym-package nope_pkg: cannot import it"):
        env_spec("CartPole-v1", gym_packages=["nope_pkg"])


def test_dim_of_multi_dim_box() -> None:
    from gymnasium import spaces

    s = space_spec(spaces.Box(0.0, 1.0, shape=(2, 3)))
    assert s.dim == 6 and len(s.low or ()) == 6 and math.isfinite(s.high[0] if s.high else 0)
