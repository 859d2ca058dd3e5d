"""An env that fails on its third step, as asked (``mode``): raises, hangs or returns NaN.
Importing this module registers ``tests.bad_envs:Failing-v0`` (worker processes import it
again by its entry point)."""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import register

ID = "tests.bad_envs:Failing-v0"


class Failing(gym.Env[Any, Any]):
    def __init__(self, mode: str = "raise") -> None:
        self.mode, self.t = mode, 0
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.t += 1
        if self.t == 3 and self.mode == "raise":
            raise RuntimeError("simulator crashed")
        if self.t == 3 and self.mode == "hang":
            time.sleep(1000)
        return np.zeros(2, np.float32), 1.0, self.t >= 10, False, {}


register(id="Failing-v0", entry_point="tests.bad_envs:Failing")
