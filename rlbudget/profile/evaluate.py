"""Episode returns of a numpy policy in its env, and the observations it visits (no torch
anywhere on this path).

Seeding follows SB3's evaluation convention: the env is reset with ``seed`` once, then
episodes run back to back (``reset()`` without a seed), so a seed gives one fixed,
reproducible sequence of episodes. A comparison of two policies (the compression gate)
passes ``seeds`` instead: episode ``i`` is reset with ``seeds[i]``, so the two policies'
episode ``i`` start from the same state and draw the same env randomness even after one
of them ended an earlier episode sooner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rlbudget.envs import make_env, space_mismatch
from rlbudget.errors import EnvError
from rlbudget.finite import check_return
from rlbudget.policy.model import Array, Policy

EVAL_STEPS = 50_000


def default_episodes(max_episode_steps: int | None) -> int:
    """Episodes per return measurement: about :data:`EVAL_STEPS` env steps, at least 100
    and at most 1,000 episodes, so short episodes get more of them. A stochastic env's mean
    over 100 episodes is noisy: one FrozenLake policy scored 0.63–0.85 over seven seeds
    (1,000 episodes: 0.74), and FrozenLake's 100-step episodes get 500 here.

    >>> default_episodes(500), default_episodes(100), default_episodes(None)
    (100, 500, 100)
    """
    if not max_episode_steps:
        return 100
    return max(100, min(1000, EVAL_STEPS // max_episode_steps))


def env_default_episodes(env: Any) -> int:
    """:func:`default_episodes` of a made env (its ``spec.max_episode_steps``)."""
    return default_episodes(getattr(getattr(env, "spec", None), "max_episode_steps", None))


@dataclass(frozen=True)
class EvalResult:
    """Returns over ``episodes`` episodes. ``success_rate`` only where the env reports one."""

    env_id: str
    episodes: int
    seed: int
    return_mean: float
    return_std: float
    return_min: float
    return_max: float
    length_mean: float
    success_rate: float | None
    returns: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def matching_env(policy: Policy, env_id: str, gym_packages: Sequence[str] = ()) -> Any:
    """Make ``env_id`` and check that its spaces are the policy's.

    :raises EnvError: the env's observation or action space differs from the policy's.
    """
    env = make_env(env_id, gym_packages=gym_packages)
    problem = space_mismatch(env, env_id, policy.observation_space, policy.action_space,
                             "the policy's")  # fmt: skip
    if problem:
        env.close()
        raise EnvError(f"{problem}; evaluate it on the env it was trained for")
    return env


def policy_env(policy: Policy, env_id: str | None, where: str) -> str:
    """The env to run ``policy`` on: ``env_id``, else the one its provenance names.

    :param where: the policy's folder, for the message.
    :raises EnvError: neither says one.
    """
    env = env_id or policy.provenance.get("env")
    if not env:
        raise EnvError(f"{where}: the policy does not say which env it is for; pass --env ID")
    return str(env)


def evaluate(
    policy: Policy,
    env_id: str,
    *,
    episodes: int = 10,
    seed: int = 0,
    gym_packages: Sequence[str] = (),
    act: Callable[[Any], Any] | None = None,
    seeds: Sequence[int] | None = None,
    enough: Callable[[Sequence[float]], bool] | None = None,
) -> EvalResult:
    """Run ``episodes`` greedy episodes of ``policy`` and summarize the raw env reward.

    Success is counted from ``info["is_success"]`` at the end of an episode (the key
    SB3's Monitor and goal envs use); envs that do not set it get ``success_rate=None``.

    :param act: what chooses the action (default ``policy.act``): e.g. the deployed C or
        ONNX runtime of the same policy (:func:`rlbudget.profile.latency.deployed_actor`).
    :param seeds: one seed per episode (then ``episodes`` is ``len(seeds)`` and ``seed`` is
        not used): paired comparisons (see the module docstring).
    :param enough: asked after every episode with the returns so far; True ends the
        evaluation there (training's screen, :func:`rlbudget.train.loop.screen_decided`).
    :raises EnvError: the env's spaces differ from the policy's.
    :raises NonFiniteError: a NaN/inf observation or reward (env step and episode named),
        or an episode's return that overflows to inf: no mean is made of it.
    """
    choose = policy.act if act is None else act
    env = matching_env(policy, env_id, gym_packages)
    try:
        returns, lengths, successes = [], [], []
        if seeds is not None:
            episodes = len(seeds)
        obs, _ = env.reset(seed=seed if seeds is None else seeds[0])
        env.action_space.seed(seed)
        for episode in range(1, episodes + 1):
            if episode > 1:
                obs, _ = env.reset() if seeds is None else env.reset(seed=seeds[episode - 1])
            total, steps, done = 0.0, 0, False
            info: dict[str, Any] = {}
            while not done:
                obs, reward, terminated, truncated, info = env.step(choose(obs))
                total += float(reward)
                steps += 1
                done = bool(terminated or truncated)
            returns.append(check_return(total, env_id, episode, episodes))
            lengths.append(steps)
            if "is_success" in info:
                successes.append(float(bool(info["is_success"])))
            if enough is not None and enough(returns):
                episodes = episode
                break
    finally:
        env.close()
    r = np.asarray(returns, dtype=np.float64)
    return EvalResult(
        env_id=env_id,
        episodes=episodes,
        seed=seed,
        return_mean=float(r.mean()),
        return_std=float(r.std()),
        return_min=float(r.min()),
        return_max=float(r.max()),
        length_mean=float(np.mean(lengths)),
        success_rate=float(np.mean(successes)) if len(successes) == episodes else None,
        returns=tuple(returns),
    )


def visited_observations(
    policy: Policy, env_id: str, *, states: int, seed: int = 0, gym_packages: Sequence[str] = ()
) -> Array:
    """``states`` observations the policy visits acting greedily: the env is reset with
    ``seed`` once, then episodes run back to back (as :func:`evaluate` seeds
    them) until enough observations are collected.

    :returns: an array ``[states, *observation_shape]``.
    """
    env = matching_env(policy, env_id, gym_packages)
    rows: list[Array] = []
    try:
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        while len(rows) < states:
            rows.append(np.asarray(obs))
            obs, _, terminated, truncated, _ = env.step(policy.act(obs))
            if terminated or truncated:
                obs, _ = env.reset()
    finally:
        env.close()
    return np.stack(rows)
