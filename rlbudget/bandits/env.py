"""The synthetic linear bandit (:mod:`rlbudget.bandits.synthetic`) as a one-step
gymnasium env, registered as ``LinearBandit-v0`` when this module is imported: name it
``rlbudget.bandits.env:LinearBandit-v0`` (``--env`` or a budget's ``task.env``).

Each episode is one decision: ``reset`` draws a context, ``step(a)`` returns the noisy
reward and ends the episode (``max_episode_steps`` is 1, which is how plan and train know
it is a bandit). ``means`` gives the expected rewards, so a run can count its regret.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from rlbudget.bandits.synthetic import LinearProblem, make_problem
from rlbudget.policy.kernels import Array


class LinearBanditEnv(gym.Env[Array, np.int64]):
    """Contexts uniform in [-1, 1]^features; arm a's reward θ_a · [x, 1] + noise."""

    def __init__(
        self, features: int = 5, actions: int = 4, noise: float = 0.5, problem_seed: int = 0
    ) -> None:
        self.problem: LinearProblem = make_problem(features, actions, noise, problem_seed)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (features,), np.float32)
        self.action_space = gym.spaces.Discrete(actions)
        self._x = np.zeros(features)

    def means(self, X: Array) -> Array:
        return self.problem.means(X)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Array, dict[str, Any]]:
        super().reset(seed=seed)
        self._x = self.problem.contexts(1, self.np_random)[0]
        return self._x.astype(np.float32), {}

    def step(self, action: np.int64) -> tuple[Array, float, bool, bool, dict[str, Any]]:
        reward = float(self.problem.rewards(self._x[None], np.array([action]), self.np_random)[0])
        return self._x.astype(np.float32), reward, True, False, {}


if "LinearBandit-v0" not in gym.registry:
    gym.register(
        "LinearBandit-v0", entry_point="rlbudget.bandits.env:LinearBanditEnv", max_episode_steps=1
    )
