"""Test-only environments, importable as ``tests.fake_envs:...``."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import register


class DictObsEnv(gym.Env[Any, int]):
    """A Dict observation space: unsupported."""

    observation_space = spaces.Dict({"a": spaces.Discrete(2)})
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        return {"a": 0}, {}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        return {"a": 0}, 0.0, True, False, {}


class TinyBoxEnv(gym.Env[np.ndarray, int]):
    """Box(2) observations in [-1, 1], 3 actions, 10 steps."""

    observation_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    action_space = spaces.Discrete(3)

    def reset(
        self, *, seed: int | None = None, options: Any = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.t += 1
        return np.zeros(2, dtype=np.float32), 1.0, False, self.t >= 10, {}


register(id="TinyBox-v0", entry_point=TinyBoxEnv, max_episode_steps=10, reward_threshold=9.0)
register(id="DictObs-v0", entry_point=DictObsEnv)
