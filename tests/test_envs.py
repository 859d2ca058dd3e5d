"""EnvSpec from gymnasium ids: spaces, thresholds, step cost, custom envs, exact errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.envs.registration import find_highest_version

from rlbudget.envs import env_spec, make_env, space_spec
from rlbudget.errors import EnvError

F32 = np.float32  # gymnasium stores the classic-control bounds as float32

TAIL = (
    "Use a registered gymnasium id, module:EnvId for a custom env, "
    "or --gym-package to import the module that registers it"
)


def env_error(env_id: str, gym_packages: Sequence[str] = ()) -> str:
    """The EnvError message that env_spec raises for ``env_id``."""
    with pytest.raises(EnvError) as e:
        env_spec(env_id, gym_packages=gym_packages, measure_steps=0, trusted=True)
    return str(e.value)


# --- built-in envs --------------------------------------------------------------------------


def test_cartpole() -> None:
    s = env_spec("CartPole-v1", measure_steps=50)
    obs, act = s.observation, s.action
    assert (obs.kind, obs.shape, obs.n, obs.dim, obs.dtype) == ("box", (4,), None, 4, "float32")
    # x and angle are bounded (±2.4 m and ±12° doubled); both velocities are ±inf
    assert obs.low == (float(F32(-4.8)), -math.inf, float(F32(-0.41887903)), -math.inf)
    assert obs.high == (float(F32(4.8)), math.inf, float(F32(0.41887903)), math.inf)
    assert obs.infinite_bounds
    assert (act.kind, act.shape, act.n, act.dim, act.low, act.high) == (
        "discrete",
        (),
        2,
        1,
        None,
        None,
    )
    assert not act.infinite_bounds
    assert s.reward_threshold == 475.0 and s.max_episode_steps == 500
    assert s.step_cost_s is not None and 0 < s.step_cost_s < 1e-3
    assert s.env_id == "CartPole-v1"


def test_frozenlake_discrete() -> None:
    s = env_spec("FrozenLake-v1", measure_steps=0)
    assert (s.observation.kind, s.observation.n, s.observation.dim) == ("discrete", 16, 1)
    assert (s.action.kind, s.action.n) == ("discrete", 4)
    assert s.reward_threshold == 0.7 and s.max_episode_steps == 100
    assert s.step_cost_s is None
    assert not s.observation.infinite_bounds


def test_pendulum_box_actions() -> None:
    s = env_spec("Pendulum-v1", measure_steps=0)
    assert s.observation.shape == (3,) and not s.observation.infinite_bounds
    assert s.observation.low == (-1.0, -1.0, -8.0) and s.observation.high == (1.0, 1.0, 8.0)
    assert (s.action.kind, s.action.shape, s.action.dim) == ("box", (1,), 1)
    assert s.action.low == (-2.0,) and s.action.high == (2.0,)
    assert s.reward_threshold is None and s.max_episode_steps == 200


def test_mountaincar() -> None:
    s = env_spec("MountainCar-v0", measure_steps=0)
    assert s.observation.low == (float(F32(-1.2)), float(F32(-0.07)))
    assert s.observation.high == (float(F32(0.6)), float(F32(0.07)))
    assert not s.observation.infinite_bounds
    assert s.action.n == 3
    assert s.reward_threshold == -110.0 and s.max_episode_steps == 200


@pytest.mark.filterwarnings("ignore:.*out of date:DeprecationWarning")
def test_taxi() -> None:
    # gymnasium 1.4 registers Taxi-v4 and retires Taxi-v3; older 1.x has Taxi-v3 only.
    latest = find_highest_version(None, "Taxi")
    assert latest is not None and latest >= 3
    s = env_spec(f"Taxi-v{latest}", measure_steps=0)
    assert (s.observation.kind, s.observation.n) == ("discrete", 500)  # 25 cells × 5 × 4
    assert (s.action.kind, s.action.n) == ("discrete", 6)
    assert s.reward_threshold == 8.0 and s.max_episode_steps == 200
    if latest > 3:
        assert env_error("Taxi-v3") == (
            f"environment 'Taxi-v3' is deprecated in gymnasium {gymnasium.__version__}; "
            f"use 'Taxi-v{latest}'"
        )


def test_to_dict_is_strict_json() -> None:
    d = env_spec("CartPole-v1", measure_steps=0).to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text) == d
    assert d["observation"]["low"][1] == "-inf" and d["observation"]["high"][3] == "inf"
    assert d["observation"]["infinite_bounds"] is True and d["observation"]["dim"] == 4
    assert d["action"] == {
        "kind": "discrete",
        "shape": [],
        "n": 2,
        "low": None,
        "high": None,
        "dtype": "int64",
        "dim": 1,
        "infinite_bounds": False,
        "radices": None,
        "note": None,
    }
    assert (d["reward_threshold"], d["max_episode_steps"], d["step_cost_s"]) == (475.0, 500, None)


def test_huge_finite_bounds_count_as_infinite() -> None:
    huge = space_spec(spaces.Box(-1e10, 1e10, shape=(2,)))
    assert huge.infinite_bounds
    assert huge.to_dict()["low"] == [-1e10, -1e10]  # finite: written as numbers
    assert not space_spec(spaces.Box(-1e9, 1e9, shape=(2,))).infinite_bounds


def test_dim_of_multi_dim_box() -> None:
    s = space_spec(spaces.Box(0.0, 1.0, shape=(2, 3)))
    assert s.shape == (2, 3) and s.dim == 6
    assert s.low == (0.0,) * 6 and s.high == (1.0,) * 6


# --- custom envs ----------------------------------------------------------------------------


def test_module_colon_id() -> None:
    s = env_spec("tests.fake_envs:TinyBox-v0", measure_steps=25, trusted=True)  # 25 steps: 2 resets
    assert s.env_id == "tests.fake_envs:TinyBox-v0"  # kept as given, so it can be made again
    assert s.observation.shape == (2,) and s.action.n == 3
    assert s.reward_threshold == 9.0 and s.max_episode_steps == 10
    assert s.step_cost_s is not None and s.step_cost_s > 0


def test_gym_package_import() -> None:
    s = env_spec("TinyBox-v0", gym_packages=["tests.fake_envs"], measure_steps=0)
    assert s.env_id == "TinyBox-v0" and s.max_episode_steps == 10


def test_step_cost_leaves_resets_out() -> None:
    # 20 steps, an episode every 5: 4 resets of 5 ms. Counted in, they would add 1 ms a step.
    s = env_spec("tests.fake_envs:SlowReset-v0", measure_steps=20, trusted=True)
    assert s.step_cost_s is not None and 0 < s.step_cost_s < 2e-4


def test_make_env_passes_kwargs() -> None:
    env = make_env("CartPole-v1", max_episode_steps=7)
    try:
        assert env.spec.max_episode_steps == 7
    finally:
        env.close()


# --- unsupported spaces ---------------------------------------------------------------------


def test_dict_with_an_unsupported_part_rejected() -> None:
    assert env_error("tests.fake_envs:TextObs-v0") == (
        "environment 'tests.fake_envs:TextObs-v0' has a Dict observation space with a Text "
        "part at ['name']; rlbudget reads Tuple and Dict spaces of Box, Discrete, "
        "MultiDiscrete, MultiBinary parts. Wrap the env (map it to a Box with "
        "gymnasium.wrappers.TransformObservation) and register the wrapped env."
    )
    with pytest.raises(EnvError, match=r"with a Text part at \[1\]\[0\];"):
        space_spec(spaces.Tuple([spaces.Discrete(2), spaces.Tuple([spaces.Text(3)])]))
    with pytest.raises(EnvError, match="has a Tuple observation space with no parts;"):
        space_spec(spaces.Tuple([]))


@pytest.mark.parametrize(
    ("space", "what", "hint"),
    [
        (spaces.MultiDiscrete([2, 3]), "observation", "flatten it to a Box with "
         "gymnasium.wrappers.FlattenObservation"),
        (spaces.MultiDiscrete([2, 3]), "action", "give it a Discrete or Box action space with "
         "gymnasium.wrappers.TransformAction"),
        (spaces.Tuple([spaces.Discrete(2)]), "action", "give it a Discrete or Box action space "
         "with gymnasium.wrappers.TransformAction"),
        (spaces.Text(5), "observation", "map it to a Box with "
         "gymnasium.wrappers.TransformObservation"),
    ],
)  # fmt: skip
def test_unsupported_space_hint(space: spaces.Space[object], what: str, hint: str) -> None:
    with pytest.raises(EnvError) as e:
        space_spec(space, what=what, env_id="X-v0")
    kind = type(space).__name__
    assert str(e.value) == (
        f"environment 'X-v0' has a {kind} {what} space; rlbudget supports Discrete and Box "
        f"spaces. Wrap the env ({hint}) and register the wrapped env."
    )


def test_discrete_must_start_at_zero() -> None:
    # One-hot and argmax index 0..n-1; a shifted Discrete would be read wrong, not refused.
    with pytest.raises(EnvError) as e:
        space_spec(spaces.Discrete(3, start=1), what="action", env_id="X-v0")
    assert str(e.value) == (
        "environment 'X-v0' has a Discrete action space that starts at 1; rlbudget supports "
        "Discrete spaces that start at 0, and Box spaces. Wrap the env (shift it to 0 with "
        "gymnasium.wrappers.TransformAction) and register the wrapped env."
    )
    assert space_spec(spaces.Discrete(3, start=0)).n == 3


# --- ids that cannot be made ----------------------------------------------------------------


def test_unknown_id_did_you_mean() -> None:
    msg = f"unknown environment 'CartPole-v2'; did you mean 'CartPole-v1'? {TAIL}"
    assert env_error("CartPole-v2") == msg
    assert env_error("NoSuchThingAtAll-v0") == f"unknown environment 'NoSuchThingAtAll-v0'. {TAIL}"


def test_unknown_namespace() -> None:
    assert env_error("NoSuchNamespace/Pong-v5") == (
        "unknown environment 'NoSuchNamespace/Pong-v5': no environment is registered in "
        "namespace 'NoSuchNamespace'. Install the package that registers it and import it "
        "with --gym-package"
    )


def test_module_that_registers_other_ids() -> None:
    assert env_error("tests.fake_envs:TinyBoxx-v0") == (
        "unknown environment 'tests.fake_envs:TinyBoxx-v0' (module 'tests.fake_envs' was "
        f"imported but registers no 'TinyBoxx-v0'); did you mean 'TinyBox-v0'? {TAIL}"
    )


@pytest.mark.filterwarnings("ignore:.*out of date:DeprecationWarning")
def test_deprecated_version() -> None:
    assert env_error("tests.fake_envs:Retired-v0") == (
        "environment 'tests.fake_envs:Retired-v0' is deprecated in gymnasium "
        f"{gymnasium.__version__}; use 'Retired-v1'"
    )


@pytest.mark.parametrize("bad", ["a:b:c", ":CartPole-v1", "CartPole-v1:", "cart pole", ""])
def test_malformed_id(bad: str) -> None:
    assert env_error(bad) == (
        f"environment id '{bad}' is malformed; gymnasium ids look like [namespace/]Name-vN "
        "(e.g. CartPole-v1), or module:Name-vN for a custom env"
    )


def test_missing_module() -> None:
    assert env_error("no_such_module_xyz:Foo-v0") == (
        "environment 'no_such_module_xyz:Foo-v0': cannot import module 'no_such_module_xyz' "
        "(No module named 'no_such_module_xyz'); check that it is installed and on PYTHONPATH"
    )
    assert env_error("CartPole-v1", gym_packages=["nope_pkg"]) == (
        "--gym-package nope_pkg: cannot import module 'nope_pkg' (No module named 'nope_pkg'); "
        "check that it is installed and on PYTHONPATH"
    )


def test_module_with_broken_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An ImportError that is not ModuleNotFoundError (gymnasium itself lets those through).
    (tmp_path / "rlbudget_broken_envs.py").write_text("from os import no_such_name\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    msg = env_error("rlbudget_broken_envs:Foo-v0")
    assert msg.startswith(
        "environment 'rlbudget_broken_envs:Foo-v0': cannot import module 'rlbudget_broken_envs' "
        "(cannot import name 'no_such_name' from 'os' "
    )
    assert msg.endswith("); check that it is installed and on PYTHONPATH")


def test_import_does_not_load_gymnasium() -> None:
    code = "import sys, rlbudget.envs; print('gymnasium' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


class _Preempted:
    """A 1 µs env step that another process preempts for 2 ms every fourth step (a machine
    under load): what the planner reads must not depend on the preemptions."""

    def __init__(self, every: int) -> None:
        import gymnasium as gym

        self.action_space = gym.spaces.Discrete(2)
        self.every, self.n = every, 0

    def reset(self, seed: int | None = None) -> tuple[int, dict[str, object]]:
        return 0, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, object]]:
        self.n += 1
        if self.every and self.n % self.every == 0:
            time.sleep(0.002)
        return 0, 0.0, False, False, {}


def test_step_time_ignores_load_and_is_banded() -> None:
    from rlbudget.envs import _time_steps, step_time_band

    idle = _time_steps(_Preempted(every=0), 200, seed=0)
    loaded = _time_steps(_Preempted(every=4), 200, seed=0)
    # the mean would be ≈500 µs under this load; the plan only uses what exceeds a
    # ≈19 µs CartPole step, so both read as a cheap env
    assert idle <= 1e-5 and loaded <= 1e-5
    assert [step_time_band(x) for x in (1e-6, 1.5e-6, 2.5e-6, 7e-6, 0.0)] == [
        1e-6, 2e-6, 5e-6, 1e-5, 0.0]  # fmt: skip
