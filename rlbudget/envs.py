"""Environments: make a gymnasium env and read it into an :class:`EnvSpec`.

gymnasium is imported inside the functions, so ``import rlbudget.envs`` is cheap.

Custom envs, as in RL Zoo: ``module:EnvId`` (gymnasium imports ``module``, which
registers ``EnvId``), or ``gym_packages=["my_pkg"]`` (``--gym-package``) to import
modules that register envs before the id is looked up.

Supported spaces: ``Discrete`` (any ``start``; the spec records ``n`` only, and
the policy's preprocess maps observations to ``0..n-1``) and ``Box``. Everything
else gets an :class:`~rlbudget.errors.EnvError` that says how to flatten it.
"""

from __future__ import annotations

import difflib
import importlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rlbudget.errors import EnvError

# gymnasium writes "unbounded" float bounds as ±inf, but some envs use huge finite values.
UNBOUNDED = 1e10


def _json_float(x: float) -> float | str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


@dataclass(frozen=True)
class SpaceSpec:
    """A Discrete or Box space as plain data."""

    kind: str
    shape: tuple[int, ...]
    n: int | None
    low: tuple[float, ...] | None
    high: tuple[float, ...] | None
    dtype: str

    @property
    def dim(self) -> int:
        """Box: number of elements; Discrete: 1."""
        return math.prod(self.shape) if self.kind == "box" else 1

    @property
    def infinite_bounds(self) -> bool:
        """A Box with any bound that is infinite or ≥ 1e10 in magnitude."""
        if self.kind != "box" or self.low is None or self.high is None:
            return False
        return any(abs(v) >= UNBOUNDED for v in (*self.low, *self.high))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "shape": list(self.shape),
            "n": self.n,
            "low": None if self.low is None else [_json_float(v) for v in self.low],
            "high": None if self.high is None else [_json_float(v) for v in self.high],
            "dtype": self.dtype,
            "dim": self.dim,
            "infinite_bounds": self.infinite_bounds,
        }


@dataclass(frozen=True)
class EnvSpec:
    """What the planner needs to know about an env."""

    env_id: str
    observation: SpaceSpec
    action: SpaceSpec
    reward_threshold: float | None
    max_episode_steps: int | None
    step_cost_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "observation": self.observation.to_dict(),
            "action": self.action.to_dict(),
            "reward_threshold": self.reward_threshold,
            "max_episode_steps": self.max_episode_steps,
            "step_cost_s": self.step_cost_s,
        }


_FLATTEN_HINT = {
    "Dict": "flatten it with gymnasium.wrappers.FlattenObservation",
    "Tuple": "flatten it with gymnasium.wrappers.FlattenObservation",
    "MultiBinary": "flatten it to a Box with gymnasium.wrappers.FlattenObservation",
    "MultiDiscrete": "encode it as one Discrete (the product of the sizes) or a Box",
}


def space_spec(space: Any, *, what: str = "observation", env_id: str = "") -> SpaceSpec:
    """Read a gymnasium Discrete or Box space.

    :raises EnvError: any other space, with how to wrap it.
    """
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return SpaceSpec("discrete", (), int(space.n), None, None, str(space.dtype))
    if isinstance(space, spaces.Box):
        return SpaceSpec(
            "box",
            tuple(int(s) for s in space.shape),
            None,
            tuple(float(v) for v in space.low.ravel()),
            tuple(float(v) for v in space.high.ravel()),
            str(space.dtype),
        )
    kind = type(space).__name__
    hint = _FLATTEN_HINT.get(kind, "wrap it so that it is Discrete or Box")
    raise EnvError(
        f"environment '{env_id}' has a {kind} {what} space; rlbudget supports Discrete and Box "
        f"spaces. Wrap the env ({hint}) and register the wrapped env."
    )


def _import_packages(gym_packages: Sequence[str]) -> None:
    for name in gym_packages:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise EnvError(
                f"--gym-package {name}: cannot import it ({exc}); install it or check the name"
            ) from None


def make_env(env_id: str, *, gym_packages: Sequence[str] = (), **kwargs: Any) -> Any:
    """``gymnasium.make`` with clear errors.

    :param env_id: a registered id, or ``module:EnvId``.
    :param gym_packages: modules to import first (they register envs).
    :raises EnvError: unknown id (with did-you-mean), a module that cannot be imported.
    """
    import gymnasium as gym
    from gymnasium import error as gym_error

    _import_packages(gym_packages)
    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise EnvError(
                f"environment '{env_id}': cannot import module '{module}' ({exc}); "
                "check that it is installed and on PYTHONPATH"
            ) from None
    try:
        return gym.make(env_id, **kwargs)
    except (gym_error.NameNotFound, gym_error.VersionNotFound, gym_error.NamespaceNotFound,
            gym_error.DeprecatedEnv, gym_error.UnregisteredEnv):  # fmt: skip
        ids = list(gym.registry.keys())
        close = difflib.get_close_matches(name or env_id, ids, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else "."
        raise EnvError(
            f"unknown environment '{env_id}'{hint} Use a registered gymnasium id, "
            "module:EnvId for a custom env, or --gym-package to import the module that "
            "registers it"
        ) from None
    except gym_error.DependencyNotInstalled as exc:
        raise EnvError(f"environment '{env_id}' needs an extra package: {exc}") from None


def env_spec(
    env_id: str, *, gym_packages: Sequence[str] = (), measure_steps: int = 200, seed: int = 0
) -> EnvSpec:
    """Make the env, read its spaces and limits, and time ``measure_steps`` random steps.

    :param measure_steps: random-action steps to time (0: don't measure, step_cost_s None).
    :raises EnvError: the env cannot be made or has unsupported spaces.
    """
    env = make_env(env_id, gym_packages=gym_packages)
    try:
        obs = space_spec(env.observation_space, what="observation", env_id=env_id)
        act = space_spec(env.action_space, what="action", env_id=env_id)
        spec = env.spec
        threshold = getattr(spec, "reward_threshold", None)
        limit = getattr(spec, "max_episode_steps", None)
        step_cost = _time_steps(env, measure_steps, seed) if measure_steps > 0 else None
    finally:
        env.close()
    return EnvSpec(
        env_id=env_id,
        observation=obs,
        action=act,
        reward_threshold=None if threshold is None else float(threshold),
        max_episode_steps=None if limit is None else int(limit),
        step_cost_s=step_cost,
    )


def _time_steps(env: Any, steps: int, seed: int) -> float:
    env.action_space.seed(seed)
    env.reset(seed=seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return (time.perf_counter() - start) / steps
