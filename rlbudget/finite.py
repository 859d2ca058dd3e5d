"""NaN and inf: stop at the first non-finite number an env gives, never save one learned.

:class:`EnvGuard` wraps every env rlbudget makes (:func:`rlbudget.envs.make_env`): the
first observation (at reset or step) or reward that is NaN or ±inf raises
:class:`NonFiniteError`, naming the env step (counted from 1), the episode and the value.
Training, evaluation, the planner's step timing and distillation therefore never go on
with a bad number; training keeps its last good checkpoint (nothing else is written).

:func:`check_learned` refuses learned arrays (a policy's, or a checkpoint's) with NaN/inf
before they are written.

Only this module's functions import gymnasium (lazily): ``import rlbudget.finite`` is cheap.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlbudget.errors import EnvError, TrainingError


class NonFiniteError(EnvError):
    """An env gave a NaN or inf observation, reward or episode return."""


def _values(arr: np.ndarray, limit: int = 6) -> str:
    flat = arr.ravel()
    shown = ", ".join(f"{float(v):g}" for v in flat[:limit])
    return f"[{shown}{', …' if flat.size > limit else ''}]"


def check_observation(obs: Any, env_id: str, where: str) -> None:
    """Raise :class:`NonFiniteError` when a float observation holds NaN or inf.

    :param where: where it happened, e.g. ``"at env step 25 (step 5 of episode 3)"``.
    """
    arr = np.asarray(obs) if not isinstance(obs, dict | tuple) else None
    if arr is None or arr.dtype.kind not in "fc" or bool(np.isfinite(arr).all()):
        return
    raise NonFiniteError(
        f"environment '{env_id}' returned a non-finite observation {_values(arr)} {where}; "
        "fix the environment (or wrap it to replace NaN/inf) and run again"
    )


def check_reward(reward: Any, env_id: str, where: str) -> float:
    """The reward as a float; :class:`NonFiniteError` when it is NaN or inf."""
    r = float(reward)
    if not math.isfinite(r):
        raise NonFiniteError(
            f"environment '{env_id}' returned reward {r} {where}; fix the environment "
            "(or wrap it to replace NaN/inf) and run again"
        )
    return r


def check_return(total: float, env_id: str, episode: int, episodes: int) -> float:
    """An episode's return, finite (a sum of finite rewards can still overflow to inf)."""
    if not math.isfinite(total):
        raise NonFiniteError(
            f"environment '{env_id}': episode {episode} of {episodes} has a non-finite return "
            f"({total}); its rewards overflow float64 — scale the rewards down"
        )
    return total


def check_learned(arrays: Mapping[str, Any], what: str, step: int) -> None:
    """Refuse learned arrays with NaN/inf (float arrays only) before they are written.

    :param what: what they are, e.g. ``"the policy"``, ``"the checkpoint"``.
    :raises TrainingError: naming the first bad array and the step.
    """
    for name, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype.kind in "fc" and not bool(np.isfinite(arr).all()):
            bad = int((~np.isfinite(arr)).sum())
            raise TrainingError(
                f"training diverged by step {step}: {what}'s '{name}' holds {bad} NaN/inf "
                "value(s); it was not written (lower the learning rate, or scale the rewards "
                "and observations)"
            )


@functools.cache
def _guard_class() -> type:
    """The wrapper class, built on first use (gymnasium is imported lazily)."""
    import gymnasium as gym

    class EnvGuard(gym.Wrapper):
        """Checks every observation and reward; counts env steps and episodes (from 1).

        ``steps`` and ``episodes`` may be set by a training loop so that the messages use
        its own count (see :func:`sync`).
        """

        def __init__(self, env: Any, env_id: str) -> None:
            super().__init__(env)
            self.env_id = env_id
            # Only float Box observations can hold NaN/inf: others skip the check (it
            # costs more than a tabular agent's whole step).
            space = env.observation_space
            self.float_obs = isinstance(space, gym.spaces.Box) and space.dtype.kind in "fc"
            self.steps = 0  # env steps taken so far
            self.episodes = 0  # resets so far: the running episode's number
            self.episode_steps = 0

        def _where(self) -> str:
            return (f"at env step {self.steps} (step {self.episode_steps} of episode "
                    f"{self.episodes})")  # fmt: skip

        def reset(self, **kwargs: Any) -> Any:
            obs, info = self.env.reset(**kwargs)
            self.episodes += 1
            self.episode_steps = 0
            if self.float_obs:
                check_observation(obs, self.env_id, f"at the reset of episode {self.episodes}")
            return obs, info

        def step(self, action: Any) -> Any:
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.steps += 1
            self.episode_steps += 1
            if not math.isfinite(reward):
                check_reward(reward, self.env_id, self._where())
            if self.float_obs and not np.isfinite(obs).all():
                check_observation(obs, self.env_id, self._where())
            return obs, reward, terminated, truncated, info

    return EnvGuard


def guard(env: Any, env_id: str) -> Any:
    """``env`` wrapped in an :class:`EnvGuard`."""
    return _guard_class()(env, env_id)


def sync(env: Any, steps: int, episodes: int) -> None:
    """Make ``env``'s guard count from a training loop's ``steps`` and ``episodes`` (the
    running episode's number, from 1), e.g. after a resume replayed an episode."""
    if isinstance(env, _guard_class()):
        env.steps, env.episodes = steps, episodes  # type: ignore[attr-defined]


def __getattr__(name: str) -> Any:
    """``rlbudget.finite.EnvGuard``: the class, built on first access."""
    if name == "EnvGuard":
        return _guard_class()
    raise AttributeError(name)
