"""An env whose every step costs a set time: ``task.env_step_cost`` made real, to measure
what parallel collection buys (``benchmarks/parallel.py``, the tests of
:mod:`rlbudget.parallel`).

Importing this module registers ``SlowCartPole-v1``: CartPole-v1 whose step takes
``step_cost_s`` (1 ms unless given as a kwarg, e.g. ``--env-kwargs
'{"step_cost_s": 0.002}'``) more, either waiting (``spin: false``, the default: a
simulator in another process, a robot, a network) or computing (``spin: true``: a
simulator in this process, which needs a core of its own to run in parallel). Its id is
``rlbudget.step_cost:SlowCartPole-v1``.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import register


class StepCost(gym.Wrapper[Any, Any, Any, Any]):
    """``env`` whose ``step`` takes ``step_cost_s`` more: slept, or spun on the CPU."""

    def __init__(self, env: gym.Env[Any, Any], step_cost_s: float, spin: bool = False) -> None:
        super().__init__(env)
        self.step_cost_s, self.spin = float(step_cost_s), bool(spin)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        end = time.perf_counter() + self.step_cost_s
        out = self.env.step(action)
        if self.spin:
            while time.perf_counter() < end:
                pass
        else:
            left = end - time.perf_counter()
            if left > 0:
                time.sleep(left)
        return out


def slow_env(env_id: str = "CartPole-v1", step_cost_s: float = 1e-3,
             spin: bool = False) -> gym.Env[Any, Any]:  # fmt: skip
    """``env_id`` made by gymnasium, each step costing ``step_cost_s`` in all.

    :raises ValueError: ``env_id`` is a ``module:EnvId`` (env kwargs come from budget and
        policy files: gymnasium would import that module, unchecked by ``make_env``).
    """
    if ":" in env_id:
        raise ValueError(f"env_id {env_id!r}: name a registered env id, not module:EnvId")
    return StepCost(gym.make(env_id), step_cost_s, spin)


register(id="SlowCartPole-v1", entry_point="rlbudget.step_cost:slow_env",
         max_episode_steps=500, reward_threshold=475.0)  # fmt: skip
