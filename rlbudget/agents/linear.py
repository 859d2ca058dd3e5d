"""Linear control, numpy only: Sarsa(λ) with tile coding, and ARS with a linear policy.

One file, top to bottom: configs, then each algorithm's loop.

- **Sarsa(λ)** (Sutton & Barto 2018, §12.7, MountainCar §10.1): Box observations,
  Discrete actions. Features are the active tiles of a :class:`TileCode`; one weight per
  (feature, action); replacing traces; ε-greedy. The policy is ``tile_code → linear →
  argmax``. With ``bonus_coef`` β > 0 the training reward gets a count-based exploration
  bonus (:func:`count_bonus`); the deployed policy is the same kind.
- **ARS** (Mania, Guy & Recht 2018, V2-t): Box observations, Box or Discrete actions.
  Each iteration perturbs the weight matrix in ``n_delta`` random directions (±), runs one
  episode per perturbation, and steps along the ``n_top`` best directions scaled by the
  returns' standard deviation. Observations are normalized by running statistics
  (frozen into a ``normalize`` preprocess step). The policy is ``normalize → linear →
  clip`` (Box) or ``→ argmax`` (Discrete).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rlbudget.agents.common import (
    Checkpoint,
    Draws,
    Episode,
    EpisodeLog,
    OnEpisode,
    StepHooks,
    TrainResult,
    env_rng_state,
    observation_bounds,
    open_env,
    provenance,
    rng_from_state,
)
from rlbudget.agents.learner import Rates, exported_precision, tiles_update
from rlbudget.errors import EnvError
from rlbudget.finite import sync
from rlbudget.policy.model import Head, Linear, Normalize, Policy, TileCode


@dataclass(frozen=True)
class SarsaLambdaConfig:
    """Sarsa(λ)'s hyperparameters; tuned values: ``rlbudget/data/hyperparams/sarsa-lambda.yaml``."""

    n_timesteps: int = 50_000
    tilings: int = 8
    tiles_per_dim: int = 8
    hash_size: int | None = 4096  # used only when tilings × (tiles+1)^dims is larger
    alpha: float = 0.5 / 8
    lam: float = 0.9
    gamma: float = 1.0
    epsilon: float = 0.0
    range_steps: int = 5_000
    bonus_coef: float = 0.0  # β of count_bonus; 0 = off
    seed: int = 0
    # float64, or the on-device learner's float32 / q16.16 (rlbudget.agents.learner)
    precision: str = "float64"


def count_bonus(counts: np.ndarray, active: np.ndarray, beta: float) -> float:
    """Count the visit of the state whose active tiles are ``active`` (in place) and
    return its exploration bonus β / √n̂, n̂ the mean visit count of the active tiles.

    The form β/√n is MBIE-EB's (Strehl & Littman 2008) as used with hashed state counts by
    Tang et al. 2017 (#Exploration, r + β/√n(φ(s))); each tiling is such a hash, and the
    mean over tilings is a smoothed pseudo-count (Bellemare et al. 2016), so a state near
    visited ones gets a smaller bonus than a state in unvisited tiles.
    """
    np.add.at(counts, active, 1.0)
    return beta / float(np.sqrt(counts[active].mean()))


@dataclass(frozen=True)
class ARSConfig:
    """ARS's hyperparameters; tuned values: ``rlbudget/data/hyperparams/ars.yaml``."""

    n_timesteps: int = 1_000_000
    learning_rate: float = 0.02
    n_delta: int = 8
    n_top: int = 8
    delta_std: float = 0.03
    seed: int = 0


def train_sarsa_lambda(
    env_id: str,
    cfg: SarsaLambdaConfig,
    *,
    gym_packages: Sequence[str] = (),
    on_episode: OnEpisode | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Checkpoint | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    checkpoint_every: int = 0,
) -> TrainResult:
    """Sarsa(λ) with tile coding and replacing traces; the keyword arguments work as for
    :class:`~rlbudget.agents.common.Trainer` (stop, checkpoint, exact resume)."""
    env, obs_spec, act_spec = open_env(env_id, gym_packages)
    if obs_spec.kind != "box" or act_spec.kind != "discrete" or act_spec.n is None:
        raise EnvError(
            f"environment '{env_id}': Sarsa(lambda) needs Box observations and Discrete actions"
        )
    n_actions = act_spec.n
    ar = exported_precision(cfg.precision, "sarsa-lambda", ("sarsa-lambda",))
    if resume is not None:
        low, high = resume.arrays["tiles_low"], resume.arrays["tiles_high"]
    else:
        low, high = observation_bounds(env, cfg.range_steps, cfg.seed)
    full = cfg.tilings * (cfg.tiles_per_dim + 1) ** len(low)
    hash_size = cfg.hash_size if cfg.hash_size is not None and full > cfg.hash_size else None
    tiles = TileCode(low, high, cfg.tilings, cfg.tiles_per_dim, hash_size)
    w = np.zeros((tiles.features, n_actions), dtype=np.float64 if ar is None else ar.np_dtype)
    z = np.zeros_like(w)
    counts = np.zeros(tiles.features)  # visits per tile, for the exploration bonus
    rates = None if ar is None else Rates.of(ar, cfg.alpha, cfg.gamma, cfg.lam)
    draws = Draws(cfg.seed, n_actions)
    log = EpisodeLog.from_state(resume.state) if resume is not None else EpisodeLog()
    a, start = 0, 0.0  # the pending action and the clock's origin, set below

    def features(o: Any) -> np.ndarray:
        active: np.ndarray = tiles.apply(np.asarray(o, dtype=np.float32).reshape(1, -1))[0]
        return active

    def choose(f: np.ndarray) -> int:
        u, random_action = draws.next()
        if u < cfg.epsilon:
            return random_action
        return int(np.argmax(w[f].sum(axis=0)))

    def current() -> Policy:
        weights = w.astype(np.float32) if ar is None else ar.to_float(w)
        body = Linear(weights, np.zeros(n_actions, dtype=np.float32))
        prov = provenance("rlbudget.agents.linear", "sarsa-lambda", env_id, cfg, log.steps)
        return Policy(obs_spec, act_spec, (tiles,), body, Head("argmax"), prov)

    def snapshot() -> Checkpoint:
        state = {
            **log.state(time.perf_counter() - start),
            "algorithm": "sarsa-lambda",
            "a": a,
            "draws": draws.snapshot(),
        }
        arrays = {"w": w.copy(), "z": z.copy(), "tiles_low": tiles.low, "tiles_high": tiles.high}
        if cfg.bonus_coef:
            arrays["counts"] = counts.copy()
        return Checkpoint(state, arrays)

    env.action_space.seed(cfg.seed)
    if resume is None:
        obs, _ = env.reset(seed=cfg.seed)
        f = features(obs)
        a = choose(f)
    else:
        ck = resume.state
        w[...], z[...] = resume.arrays["w"], resume.arrays["z"]
        if cfg.bonus_coef:
            counts[...] = resume.arrays["counts"]
        draws.restore(ck["draws"])
        f = features(log.restore_env(env, cfg.seed))
        a = int(ck["a"])
    start = time.perf_counter() - log.wall0
    hooks = StepHooks(should_stop, on_checkpoint, checkpoint_every, log.steps)
    sync(env, log.steps, len(log.episodes) + 1)  # NaN/inf messages name the training step
    for t in range(log.steps, cfg.n_timesteps):
        if hooks.stop(t, snapshot):
            break
        obs, reward, terminated, truncated, _ = env.step(a)  # the guard stops at NaN/inf
        r = float(reward)
        log.record(a, r)  # the env's reward; the bonus is for learning only
        if cfg.bonus_coef:
            r += count_bonus(counts, features(obs), cfg.bonus_coef)
        if ar is not None:  # the on-device learner's arithmetic
            assert rates is not None
            f2 = features(obs)
            a2 = choose(f2) if not terminated else a
            tiles_update(ar, rates, w, z, f, a, r, f2, a2, terminated)
        else:
            delta = r - w[f, a].sum()
            z[f, a] = 1.0  # replacing traces
            if terminated:
                w += cfg.alpha * delta * z
            else:
                f2 = features(obs)
                a2 = choose(f2)
                delta += cfg.gamma * w[f2, a2].sum()
                w += cfg.alpha * delta * z
                z *= cfg.gamma * cfg.lam
        if terminated or truncated:
            ep = log.end_episode(env, time.perf_counter() - start, cfg.epsilon)
            z[:] = 0.0
            obs, _ = env.reset()
            f2 = features(obs)
            a2 = choose(f2)
            if on_episode is not None and on_episode(ep, current):
                f, a = f2, a2
                break
        f, a = f2, a2
    env.close()
    wall = time.perf_counter() - start
    return TrainResult(current(), tuple(log.episodes), log.steps, wall, snapshot())


def train_ars(
    env_id: str,
    cfg: ARSConfig,
    *,
    gym_packages: Sequence[str] = (),
    on_episode: OnEpisode | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Checkpoint | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    checkpoint_every: int = 0,
) -> TrainResult:
    """ARS V2-t with a linear policy; ``on_episode`` sees each perturbed rollout.

    Checkpoints fall on iteration boundaries: ``should_stop`` is checked before each
    iteration, and a stop requested by ``on_episode`` mid-iteration returns the policy as
    it was evaluated with a checkpoint of the iteration's start (a resumed run redoes
    that iteration, exactly as a straight run would have done it).
    """
    env, obs_spec, act_spec = open_env(env_id, gym_packages)
    if obs_spec.kind != "box":
        raise EnvError(f"environment '{env_id}': ARS needs Box observations")
    discrete = act_spec.kind == "discrete"
    n_out = act_spec.n if discrete and act_spec.n is not None else act_spec.dim
    dim = obs_spec.dim
    low = None if discrete else np.asarray(act_spec.low, dtype=np.float32)
    high = None if discrete else np.asarray(act_spec.high, dtype=np.float32)
    rng = np.random.default_rng(cfg.seed)
    theta = np.zeros((dim, n_out))
    # Running observation statistics (Welford), frozen into the policy at the end.
    count, mean, m2 = 0, np.zeros(dim), np.zeros(dim)
    episodes: list[Episode] = []
    steps, wall0 = 0, 0.0
    env.action_space.seed(cfg.seed)
    env.reset(seed=cfg.seed)
    if resume is not None:
        ck = resume.state
        theta[...] = resume.arrays["theta"]
        mean, m2 = resume.arrays["mean"].copy(), resume.arrays["m2"].copy()
        count, steps, wall0 = int(ck["count"]), int(ck["steps"]), float(ck["wall_s"])
        episodes = [Episode(**e) for e in ck["episodes"]]
        rng.bit_generator.state = ck["agent_rng"]
        env.unwrapped.np_random = rng_from_state(ck["env_rng"])
    start = time.perf_counter() - wall0
    sync(env, steps, len(episodes))  # NaN/inf messages name the training step

    def rollout(weights: np.ndarray, std: np.ndarray) -> tuple[float, int]:
        nonlocal count, mean, m2
        obs, _ = env.reset()
        total, n, done = 0.0, 0, False
        while not done:
            x = np.asarray(obs, dtype=np.float64).ravel()
            count += 1
            d = x - mean
            mean += d / count
            m2 += d * (x - mean)
            y = ((x - frozen_mean) / std) @ weights
            action: Any = (
                int(np.argmax(y)) if discrete else np.clip(y, low, high).astype(np.float32)
            )
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)  # the guard stops at NaN/inf
            n += 1
            done = bool(terminated or truncated)
        return total, n

    def current() -> Policy:
        """theta with the running statistics frozen into a normalize step."""
        std = np.sqrt(m2 / max(count - 1, 1)) if count > 1 else np.ones(dim)
        var = np.where(std < 1e-8, 1.0, std) ** 2
        # Normalize computes (x - mean) / sqrt(var + eps); eps 0 matches training's scaling.
        norm = Normalize(mean.astype(np.float32), var.astype(np.float32), clip=1e6, eps=0.0)
        body = Linear(theta.astype(np.float32), np.zeros(n_out, dtype=np.float32))
        head = Head("argmax") if discrete else Head("clip", low, high)
        prov = provenance("rlbudget.agents.linear", "ars", env_id, cfg, steps)
        return Policy(obs_spec, act_spec, (norm,), body, head, prov)

    def snapshot() -> Checkpoint:
        """The state at an iteration boundary (the env is between episodes)."""
        state = {
            "algorithm": "ars",
            "steps": steps,
            "count": count,
            "wall_s": time.perf_counter() - start,
            "agent_rng": rng.bit_generator.state,
            "env_rng": env_rng_state(env),
            "episodes": [asdict(e) for e in episodes],
        }
        return Checkpoint(state, {"theta": theta.copy(), "mean": mean.copy(), "m2": m2.copy()})

    frozen_mean = np.zeros(dim)
    hooks = StepHooks(should_stop, on_checkpoint, checkpoint_every, steps)
    at_start: Checkpoint | None = None
    stopped = False
    while steps < cfg.n_timesteps and not stopped:
        if hooks.stop(steps, snapshot):
            break
        at_start = snapshot()  # a stop in the middle of this iteration returns it
        frozen_mean = mean.copy()
        std = np.sqrt(m2 / max(count - 1, 1)) if count > 1 else np.ones(dim)
        std = np.where(std < 1e-8, 1.0, std)
        deltas = rng.standard_normal((cfg.n_delta, dim, n_out))
        plus, minus = np.zeros(cfg.n_delta), np.zeros(cfg.n_delta)
        for k in range(cfg.n_delta * 2):
            sign = 1.0 if k % 2 == 0 else -1.0
            ret, n = rollout(theta + sign * cfg.delta_std * deltas[k // 2], std)
            (plus if sign > 0 else minus)[k // 2] = ret
            steps += n
            ep = Episode(steps, len(episodes), ret, n, time.perf_counter() - start, cfg.delta_std)
            episodes.append(ep)
            if on_episode is not None and on_episode(ep, current):
                stopped = True
                break
        if stopped:
            break
        top = np.argsort(-np.maximum(plus, minus))[: cfg.n_top]
        sigma = np.concatenate([plus[top], minus[top]]).std() or 1.0
        step = ((plus[top] - minus[top])[:, None, None] * deltas[top]).sum(axis=0)
        theta += cfg.learning_rate / (cfg.n_top * sigma) * step
    policy = current()
    checkpoint = at_start if stopped and at_start is not None else snapshot()
    wall = time.perf_counter() - start
    env.close()
    return TrainResult(policy, tuple(episodes), steps, wall, checkpoint)
