"""Test-only environments, importable as ``tests.fake_envs:...`` (tests/ is a package).

Importing this module registers ``TinyBox-v0``, ``DictObs-v0``, ``TextObs-v0``,
``SlowReset-v0``, ``Retired-v1`` (so ``Retired-v0`` is a deprecated version, as
``Taxi-v3`` is in gymnasium 1.4), the NaN/inf envs ``NanObs-v0``, ``NanReward25-v0``,
``InfReward25-v0``, ``HugeReward-v0``, and ``Coin-v0`` (a fair coin: a 100-episode mean
is noisy).
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
        if seed is not None:  # seed(None) would draw fresh OS entropy: runs would differ
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


class BadNumberEnv(TinyBoxEnv):
    """TinyBox whose ``at``-th step (counted from 1 over the instance's life, across
    episodes) returns ``value`` as the observation's first element or as the reward
    (``what``); every reward is ``reward`` otherwise."""

    def __init__(self, what: str = "obs", at: int = 1, value: float = float("nan"),
                 reward: float = 1.0) -> None:  # fmt: skip
        super().__init__()
        self.what, self.at, self.value, self.reward = what, at, value, reward
        self.total = 0

    def step(self, action: Any) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        obs, _, terminated, truncated, info = super().step(action)
        self.total += 1
        reward = self.reward
        if self.total == self.at:
            if self.what == "obs":
                obs[0] = self.value
            else:
                reward = self.value
        return obs, reward, terminated, truncated, info


# No reward_threshold: training runs have no target, so no evaluation env is made.
_BAD = "tests.fake_envs:BadNumberEnv"
register(id="NanObs-v0", entry_point=_BAD, max_episode_steps=10, kwargs={"at": 1500})
register(id="NanReward25-v0", entry_point=_BAD, max_episode_steps=10,
         kwargs={"what": "reward", "at": 25})  # fmt: skip
register(id="InfReward25-v0", entry_point=_BAD, max_episode_steps=10,
         kwargs={"what": "reward", "at": 25, "value": float("-inf")})  # fmt: skip
register(id="HugeReward-v0", entry_point=_BAD, max_episode_steps=10,
         kwargs={"at": 0, "reward": 1e308})  # fmt: skip


class CoinEnv(gym.Env[Obs, Any]):
    """One-step episodes whose reward is a fair coin (1 or 0), whatever the action: every
    policy's true mean return is 0.5, and a 100-episode mean can be 0.6 by luck."""

    def __init__(self) -> None:
        self.observation_space = spaces.Discrete(1)
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        return 0, {}

    def step(self, action: Any) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        return 0, float(self.np_random.random() < 0.5), True, False, {}


register(id="Coin-v0", entry_point="tests.fake_envs:CoinEnv", max_episode_steps=500)
