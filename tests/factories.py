"""Test policies, made one way: spaces, random MLPs, env-shaped policies of every body, the
observations to run them on, and two hand-made policies that solve their task.

Every builder seeds its own generator, so a policy is the same whichever test builds it
first. Tests that need something else build it in the test, from these pieces.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from itertools import pairwise

import numpy as np

from rlbudget.compress.quantize import quantize_int8
from rlbudget.compress.tabular import pack_table
from rlbudget.envs import SpaceSpec, env_spec
from rlbudget.policy import (
    MLP,
    Dense,
    Discretize,
    Head,
    Linear,
    Normalize,
    OneHot,
    Policy,
    Table,
    TileCode,
)

N_OBS = 10_000
"""Observations per env in :func:`observations` (half uniform, half from rollouts)."""

# --- spaces ------------------------------------------------------------------------------


def box(n: int) -> SpaceSpec:
    """A float32 box of ``n`` dimensions in [-1, 1]."""
    return SpaceSpec("box", (n,), None, (-1.0,) * n, (1.0,) * n, "float32")


def discrete(n: int) -> SpaceSpec:
    return SpaceSpec("discrete", (), n, None, None, "int64")


@cache
def env_spaces(env_id: str) -> tuple[SpaceSpec, SpaceSpec]:
    """(observation, action) spaces of a gymnasium env, without timing its step."""
    s = env_spec(env_id, measure_steps=0)
    return s.observation, s.action


# --- bodies ------------------------------------------------------------------------------


def f32(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    """Standard normal float32 values times ``scale``."""
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def random_mlp(
    widths: list[int], activation: str = "relu", rng: np.random.Generator | int = 0
) -> MLP:
    """Random dense layers of the given widths with He-like scales (``N(0, 1/n_in)``
    weights, ``N(0, 0.01)`` biases); the last layer's activation is identity."""
    gen = np.random.default_rng(rng) if isinstance(rng, int) else rng
    layers = []
    for i, (n_in, n_out) in enumerate(pairwise(widths)):
        w = (gen.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        b = (0.1 * gen.standard_normal(n_out)).astype(np.float32)
        layers.append(Dense(w, b, activation if i < len(widths) - 2 else "identity"))
    return MLP(tuple(layers))


# --- policies shaped for an env, random weights ------------------------------------------


def env_policy(env_id: str, preprocess: tuple, body, head: Head) -> Policy:  # type: ignore[no-untyped-def,type-arg]
    """A policy on ``env_id``'s spaces, with ``env`` in its provenance."""
    obs_space, act_space = env_spaces(env_id)
    return Policy(obs_space, act_space, preprocess, body, head, {"env": env_id})


def cartpole_mlp(activation: str = "tanh") -> Policy:
    """normalize → 4-64-64-2 → argmax."""
    rng = np.random.default_rng(0)
    norm = Normalize(np.zeros(4), np.array([1.0, 3.0, 0.02, 3.0]), clip=5.3)
    return env_policy("CartPole-v1", (norm,), random_mlp([4, 64, 64, 2], activation, rng),
                      Head("argmax"))  # fmt: skip


def pendulum_mlp(activation: str, head: str) -> Policy:
    """3-64-64-1 with a continuous ``head`` (clip, tanh_rescale, identity) on [-2, 2]."""
    rng = np.random.default_rng(1)
    bounds = np.array([-2.0]), np.array([2.0])
    return env_policy("Pendulum-v1", (), random_mlp([3, 64, 64, 1], activation, rng),
                      Head(head, *bounds))  # fmt: skip


def frozenlake_mlp() -> Policy:
    """one-hot → 16-16-4 relu → argmax."""
    rng = np.random.default_rng(2)
    return env_policy("FrozenLake-v1", (OneHot(16),), random_mlp([16, 16, 4], "relu", rng),
                      Head("argmax"))  # fmt: skip


def frozenlake_table() -> Policy:
    """A random 16 × 4 value table."""
    rng = np.random.default_rng(3)
    return env_policy("FrozenLake-v1", (), Table(f32(rng, 16, 4)), Head("argmax"))


def cartpole_table() -> Policy:
    """A discretizer (3 × 5 × 6 × 7 bins) and a random value table."""
    rng = np.random.default_rng(4)
    disc = Discretize(np.array([-2.4, -3, -0.21, -3]), np.array([2.4, 3, 0.21, 3]), (3, 5, 6, 7))
    return env_policy("CartPole-v1", (disc,), Table(f32(rng, 3 * 5 * 6 * 7, 2)), Head("argmax"))


def taxi_packed() -> Policy:
    """A random Taxi table, packed to its greedy actions."""
    rng = np.random.default_rng(5)
    return pack_table(env_policy("Taxi-v4", (), Table(f32(rng, 500, 6)), Head("argmax")))


def mountaincar_tiles(hash_size: int | None = None) -> Policy:
    """8 tilings of 8 × 8 tiles (hashed into ``hash_size`` features if given) → linear."""
    rng = np.random.default_rng(6)
    tc = TileCode(np.array([-1.2, -0.07]), np.array([0.6, 0.07]), 8, 8, hash_size)
    return env_policy("MountainCar-v0", (tc,), Linear(f32(rng, tc.features, 3), f32(rng, 3)),
                      Head("argmax"))  # fmt: skip


def pendulum_linear() -> Policy:
    """normalize → linear → clip to [-2, 2]."""
    rng = np.random.default_rng(7)
    norm = Normalize(np.zeros(3), np.array([0.5, 0.5, 16.0]))
    body = Linear(f32(rng, 3, 1), f32(rng, 1))
    return env_policy("Pendulum-v1", (norm,), body,
                      Head("clip", np.array([-2.0]), np.array([2.0])))  # fmt: skip


# --- seeded variants for quantization tests (other scales, any seed or width) ------------


def cartpole_tanh(seed: int = 0, widths: tuple[int, ...] = (4, 64, 64, 2)) -> Policy:
    """normalize → tanh MLP of ``widths`` → argmax, weights from ``seed``."""
    rng = np.random.default_rng(seed)
    s = env_spec("CartPole-v1", measure_steps=0)
    norm = Normalize(np.zeros(4), np.array([1.0, 4.0, 0.04, 4.0]), clip=10.0)
    return Policy(s.observation, s.action, (norm,), random_mlp(list(widths), "tanh", rng),
                  Head("argmax"), {"algorithm": "ppo", "transforms": []})  # fmt: skip


def pendulum_relu(seed: int = 0, head: str = "clip") -> Policy:
    """3-64-64-1 relu → ``head`` on [-2, 2], weights from ``seed``."""
    rng = np.random.default_rng(seed)
    s = env_spec("Pendulum-v1", measure_steps=0)
    return Policy(s.observation, s.action, (), random_mlp([3, 64, 64, 1], "relu", rng),
                  Head(head, np.array([-2.0]), np.array([2.0])), {"algorithm": "td3"})  # fmt: skip


def cartpole_obs(n: int, seed: int = 0) -> np.ndarray:
    """``n`` CartPole-like observations: normal, scaled per dimension."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 4)) * [1.0, 1.5, 0.1, 1.5]).astype(np.float32)


def pendulum_obs(n: int, seed: int = 0) -> np.ndarray:
    """``n`` Pendulum observations: (cos θ, sin θ, θ̇) for uniform θ and θ̇."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-np.pi, np.pi, n)
    return np.stack([np.cos(theta), np.sin(theta), rng.uniform(-8, 8, n)], 1).astype(np.float32)


# --- observations ------------------------------------------------------------------------


@cache
def rollouts(env_id: str, n: int = N_OBS // 2) -> np.ndarray:
    """Observations visited by a random policy (seeded)."""
    import gymnasium as gym

    env = gym.make(env_id)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    out = []
    for _ in range(n):
        out.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.asarray(out, dtype=np.float32)


def observations(env_id: str) -> np.ndarray:
    """:data:`N_OBS` observations: half uniform over the (widened, clipped to ±5) bounds,
    half from :func:`rollouts`; discrete spaces: uniform states."""
    obs_space, _ = env_spaces(env_id)
    rng = np.random.default_rng(1)
    if obs_space.kind == "discrete":
        assert obs_space.n is not None
        return rng.integers(0, obs_space.n, N_OBS)
    low = np.clip(np.nan_to_num(np.asarray(obs_space.low), neginf=-5.0), -5, 5)
    high = np.clip(np.nan_to_num(np.asarray(obs_space.high), posinf=5.0), -5, 5)
    uniform = rng.uniform(low * 1.2, high * 1.2, (N_OBS // 2, obs_space.dim)).astype(np.float32)
    return np.concatenate([uniform, rollouts(env_id)])


def int8(make: Callable[[], Policy], env_id: str) -> Callable[[], Policy]:
    """A builder of ``make()`` quantized to int8, calibrated on every 5th observation."""
    return lambda: quantize_int8(make(), observations(env_id)[::5])


# --- hand-made policies that solve their task --------------------------------------------

FROZENLAKE_BEST = [0, 3, 3, 3, 0, 0, 2, 0, 3, 1, 0, 0, 0, 2, 1, 0]
"""The optimal actions of slippery FrozenLake 4x4 (value iteration)."""


def balancing_mlp(hidden: int = 32, seed: int = 0) -> Policy:
    """A CartPole MLP that balances (return 500): two relu units carry ``±w·obs`` to the
    logits (push right when the pole falls right), the other units are small noise."""
    s = env_spec("CartPole-v1", measure_steps=0)
    rng = np.random.default_rng(seed)
    w = np.array([0.1, 0.5, 3.0, 1.0], dtype=np.float32)
    W1 = (0.05 * rng.standard_normal((4, hidden))).astype(np.float32)
    W1[:, 0], W1[:, 1] = w, -w
    W2 = (0.05 * rng.standard_normal((hidden, 2))).astype(np.float32)
    W2[0], W2[1] = [0, 1], [1, 0]
    body = MLP((Dense(W1, np.zeros(hidden, np.float32), "relu"),
                Dense(W2, np.zeros(2, np.float32))))  # fmt: skip
    return Policy(s.observation, s.action, (), body, Head("argmax"),
                  {"env": "CartPole-v1", "algorithm": "hand-made"})  # fmt: skip


def frozenlake_best_table() -> Policy:
    """A FrozenLake table whose greedy actions are :data:`FROZENLAKE_BEST` (0.9 against
    0.1)."""
    s = env_spec("FrozenLake-v1", measure_steps=0)
    values = np.full((16, 4), 0.1, dtype=np.float32)
    values[np.arange(16), FROZENLAKE_BEST] = 0.9
    return Policy(s.observation, s.action, (), Table(values), Head("argmax"),
                  {"env": "FrozenLake-v1"})  # fmt: skip
