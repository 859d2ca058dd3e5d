"""Test-only environments, importable as ``tests.fake_envs:...`` (tests/ is a package).

Importing this module registers ``TinyBox-v0``, ``DictObs-v0``, ``TextObs-v0``,
``SlowReset-v0`` and ``Retired-v1`` (so ``Retired-v0`` is a deprecated version, as
``Taxi-v3`` is in gymnasium 1.4).
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import register

Obs = Any


class DictObsEnv(gym.Env[Obs, Any]):
    """A Dict observation (Box ``pos``, Discrete ``mode``, MultiDiscrete ``flags``): read
    flattened. Reward 1 when the action equals ``mode``; truncated after 10 steps."""

    def __init__(self) -> None:
        self.observation_space = spaces.Dict({
            "pos": spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32),
            "mode": spaces.Discrete(3),
            "flags": spaces.MultiDiscrete([2, 2]),
        })  # fmt: skip
        self.action_space = spaces.Discrete(3)
        self.t = 0
        self.obs: dict[str, Any] = {}

    def _draw(self) -> dict[str, Any]:
        self.obs = self.observation_space.sample()
        return self.obs

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self.t = 0
        return self._draw(), {}

    def step(self, action: Any) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        self.t += 1
        reward = float(int(action) == int(self.obs["mode"]))
        return self._draw(), reward, False, self.t >= 10, {}


class TextObsEnv(DictObsEnv):
    """A Dict observation with a Text part: unsupported."""

    def __init__(self) -> None:
        super().__init__()
        self.observation_space = spaces.Dict({"a": spaces.Discrete(2), "name": spaces.Text(4)})


class TinyBoxEnv(gym.Env[Obs, Any]):
    """Box(2) observations in [-1, 1], 3 actions; truncated after 10 steps."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Discrete(3)
        self.t = 0

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action: Any) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        self.t += 1
        return np.zeros(2, dtype=np.float32), 1.0, False, self.t >= 10, {}


# String entry points: gymnasium imports them, and mypy accepts them (a class is not an
# EnvCreator to it).
register(
    id="TinyBox-v0",
    entry_point="tests.fake_envs:TinyBoxEnv",
    max_episode_steps=10,
    reward_threshold=9.0,
)
register(id="DictObs-v0", entry_point="tests.fake_envs:DictObsEnv", max_episode_steps=10)
register(id="TextObs-v0", entry_point="tests.fake_envs:TextObsEnv")
register(id="Retired-v1", entry_point="tests.fake_envs:TinyBoxEnv")


class SlowResetEnv(TinyBoxEnv):
    """TinyBox whose reset takes 5 ms: step timing must leave resets out."""

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Obs, dict[str, Any]]:
        time.sleep(0.005)
        return super().reset(seed=seed, options=options)


register(id="SlowReset-v0", entry_point="tests.fake_envs:SlowResetEnv", max_episode_steps=5)
