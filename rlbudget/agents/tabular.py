"""Tabular control, numpy only: Q-learning, SARSA, Expected SARSA and Dyna-Q.

One file, top to bottom: the config, then one function: the observation → state map, the
agent's arrays, exploration and the TD target, the loop. What every trainer shares (the
loop contract, checkpoints, the episode log, ε-greedy's draws) is in
:mod:`rlbudget.agents.common`.
Sutton & Barto (2018): Q-learning §6.5, SARSA §6.4, Expected SARSA §6.6, Dyna-Q §8.2.

Box observations go through a uniform discretizer (``bins`` per dimension). Where the
space's bounds are infinite (CartPole's velocities), the ranges are measured from
``range_steps`` random-action steps and widened by 20 %; values outside are clipped
to the edge bins. The result is a :class:`~rlbudget.policy.Policy` with a ``table``
body (the Q values, float32) and an ``argmax`` head.

Dyna-Q remembers the last ``MODEL_SAMPLES`` outcomes of each (state, action) and
plans from a uniform draw among them (a sample model that also works on stochastic
envs; Sutton & Barto's version keeps one outcome and assumes determinism).

Exploration is ε-greedy with ε decaying linearly from ``epsilon_start`` to
``epsilon_end`` over the first ``epsilon_decay_fraction`` of the steps. With
``ucb_c > 0`` the greedy choice adds a count-based bonus ``c·sqrt(ln t / (1 + N(s,a)))``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlbudget.agents.common import (
    Checkpoint,
    Draws,
    EpisodeLog,
    OnEpisode,
    StepHooks,
    TrainResult,
    observation_bounds,
    open_env,
    provenance,
)
from rlbudget.agents.learner import Rates, exported_precision, table_update
from rlbudget.errors import EnvError, RlbudgetError
from rlbudget.finite import sync
from rlbudget.policy.model import Discretize, Head, Policy, Preprocess, Table

ALGORITHMS = ("q-learning", "sarsa", "expected-sarsa", "dyna-q")
MODEL_SAMPLES = 8  # Dyna-Q: outcomes remembered per (state, action)


@dataclass(frozen=True)
class TabularConfig:
    """Hyperparameters; the tuned values per env are in ``rlbudget/data/hyperparams/``."""

    algorithm: str = "q-learning"
    n_timesteps: int = 50_000
    alpha: float = 0.1
    gamma: float = 0.99
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_decay_fraction: float = 0.5
    ucb_c: float = 0.0
    planning_steps: int = 10  # Dyna-Q only
    bins: int = 8  # Box observations only
    range_steps: int = 5_000  # random steps to measure infinite ranges
    seed: int = 0
    init: str | None = None  # warm start: a table policy folder (rlbudget.agents.warmstart)
    # float64, or the on-device learner's float32 / q16.16 (rlbudget.agents.learner):
    # Q-learning and SARSA only
    precision: str = "float64"


def train_tabular(
    env_id: str,
    cfg: TabularConfig,
    *,
    gym_packages: Sequence[str] = (),
    on_episode: OnEpisode | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Checkpoint | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    checkpoint_every: int = 0,
) -> TrainResult:
    """Train a tabular agent, or continue one from ``resume``.

    A :class:`~rlbudget.agents.common.Trainer`: the keyword arguments are its loop
    contract; ``resume`` continues exactly as if training had never stopped.

    :param gym_packages: modules to import first (they register the env).
    :raises EnvError: the env's actions are not Discrete or its observations are neither
        Discrete nor Box.
    """
    if cfg.algorithm not in ALGORITHMS:
        raise EnvError(f"unknown tabular algorithm '{cfg.algorithm}'; use {', '.join(ALGORITHMS)}")
    ar = exported_precision(cfg.precision, cfg.algorithm, ("q-learning", "sarsa"))
    # The env, and the map from its observation to a table row.
    env, obs_spec, act_spec = open_env(env_id, gym_packages)
    if act_spec.kind != "discrete" or act_spec.n is None:
        raise EnvError(f"environment '{env_id}' has Box actions; tabular agents need Discrete")
    n_actions = act_spec.n
    preprocess: tuple[Preprocess, ...] = ()
    warm = None
    if cfg.init and resume is None:
        from rlbudget.agents.warmstart import warm_table

        warm = warm_table(cfg.init, env_id, cfg.algorithm, obs_spec.n)
    if obs_spec.kind == "box":
        if warm is not None and warm.discretize is not None:
            disc = warm.discretize  # the grid the init table was learned on
        elif resume is not None:
            disc = Discretize(resume.arrays["disc_low"], resume.arrays["disc_high"],
                              (cfg.bins,) * obs_spec.dim)  # fmt: skip
        else:
            low, high = observation_bounds(env, cfg.range_steps, cfg.seed)
            disc = Discretize(low, high, (cfg.bins,) * len(low))
        preprocess = (disc,)
        n_states = disc.states

        def state_of(o: Any) -> int:
            return int(disc.apply(np.asarray(o, dtype=np.float32).reshape(1, -1))[0])
    else:
        assert obs_spec.n is not None
        n_states = obs_spec.n

        def state_of(o: Any) -> int:
            return int(o)

    # The agent: Q values, visit counts, Dyna-Q's model, and its random streams.
    rng = np.random.default_rng(cfg.seed)
    q = np.zeros((n_states, n_actions), dtype=np.float64 if ar is None else ar.np_dtype)
    if warm is not None:  # in the run's precision (the on-device learner's format)
        q[...] = warm.values if ar is None else ar.value(warm.values)
    rates = None if ar is None else Rates.of(ar, cfg.alpha, cfg.gamma)
    counts = np.zeros((n_states, n_actions), dtype=np.int64)
    # Dyna-Q's model: the last MODEL_SAMPLES outcomes (reward, next state, terminal) per
    # (s, a), sampled uniformly when planning. S&B's one-outcome model assumes a
    # deterministic env; on slippery FrozenLake one unlucky slip would erase a good action.
    k_max = MODEL_SAMPLES if cfg.algorithm == "dyna-q" else 1
    model_r = np.zeros((n_states, n_actions, k_max))
    model_s2 = np.zeros((n_states, n_actions, k_max), dtype=np.int64)
    model_done = np.zeros((n_states, n_actions, k_max), dtype=bool)
    visited: list[int] = []  # flat indices s * n_actions + a, in order of first visit
    decay_steps = max(1, int(cfg.epsilon_decay_fraction * cfg.n_timesteps))
    draws = Draws(cfg.seed, n_actions)
    log = EpisodeLog.from_state(resume.state) if resume is not None else EpisodeLog()

    # Exploration, the TD target, and what the loop hands out (policy, checkpoint).
    def epsilon_at(t: int) -> float:
        frac = min(1.0, t / decay_steps)
        return cfg.epsilon_start + frac * (cfg.epsilon_end - cfg.epsilon_start)

    def choose(s: int, t: int) -> int:
        u, random_action = draws.next()
        if u < epsilon_at(t):
            return random_action
        if cfg.ucb_c > 0:
            bonus = cfg.ucb_c * np.sqrt(math.log(t + 2) / (1.0 + counts[s]))
            return int(np.argmax(q[s] + bonus))
        return int(np.argmax(q[s]))

    def target(r: float, s2: int, done: bool, a2: int, eps: float) -> float:
        if done:
            return r
        if cfg.algorithm == "sarsa":
            return r + cfg.gamma * float(q[s2, a2])
        if cfg.algorithm == "expected-sarsa":
            row = q[s2]
            return r + cfg.gamma * float((1 - eps) * row.max() + eps * row.mean())
        return r + cfg.gamma * float(q[s2].max())

    def current() -> Policy:
        prov = provenance("rlbudget.agents.tabular", cfg.algorithm, env_id, cfg, log.steps)
        values = q.astype(np.float32) if ar is None else ar.to_float(q)
        return Policy(obs_spec, act_spec, preprocess, Table(values), Head("argmax"), prov)

    def snapshot() -> Checkpoint:
        arrays: dict[str, Any] = {"q": q, "counts": counts, "model_r": model_r,
                                  "model_s2": model_s2, "model_done": model_done}  # fmt: skip
        if obs_spec.kind == "box":
            arrays.update(disc_low=disc.low, disc_high=disc.high)
        state = {
            **log.state(time.perf_counter() - start),
            "algorithm": cfg.algorithm,
            "s": s,
            "a": a,
            "visited": visited,
            "agent_rng": rng.bit_generator.state,
            "draws": draws.snapshot(),
        }
        return Checkpoint(state, {k: v.copy() for k, v in arrays.items()})

    # Start, or continue exactly where the checkpoint stopped.
    env.action_space.seed(cfg.seed)
    if resume is None:
        obs, _ = env.reset(seed=cfg.seed)
        s = state_of(obs)
        a = choose(s, 0)
    else:
        ck = resume.state
        for name, array in (("q", q), ("counts", counts), ("model_r", model_r),
                            ("model_s2", model_s2), ("model_done", model_done)):  # fmt: skip
            array[...] = resume.arrays[name]
        visited = [int(v) for v in ck["visited"]]
        rng.bit_generator.state = ck["agent_rng"]
        draws.restore(ck["draws"])
        obs = log.restore_env(env, cfg.seed)
        s, a = int(ck["s"]), int(ck["a"])
        if state_of(obs) != s:
            raise RlbudgetError(
                f"environment '{env_id}' could not be restored exactly from the checkpoint "
                "(its randomness is not all in env.np_random); start a new run instead"
            )
    start = time.perf_counter() - log.wall0
    hooks = StepHooks(should_stop, on_checkpoint, checkpoint_every, log.steps)
    sync(env, log.steps, len(log.episodes) + 1)  # NaN/inf messages name the training step

    # The loop: act, learn from the step (and plan, for Dyna-Q), log finished episodes.
    for t in range(log.steps, cfg.n_timesteps):
        if hooks.stop(t, snapshot):
            break
        obs, reward, terminated, truncated, _ = env.step(a)  # the guard stops at NaN/inf
        r = float(reward)
        log.record(a, r)
        s2 = state_of(obs)
        t_next = min(t + 1, cfg.n_timesteps - 1)
        a2 = choose(s2, t_next)
        eps = epsilon_at(t)
        if ar is None:
            q[s, a] += cfg.alpha * (target(r, s2, terminated, a2, eps) - q[s, a])
        else:  # the on-device learner's arithmetic
            assert rates is not None
            table_update(ar, rates, q, s, a, r, s2, a2, terminated,
                         q_learning=cfg.algorithm == "q-learning")  # fmt: skip
        counts[s, a] += 1
        if cfg.algorithm == "dyna-q":
            if counts[s, a] == 1:
                visited.append(s * n_actions + a)
            slot = (counts[s, a] - 1) % k_max  # a ring of the latest outcomes
            model_r[s, a, slot], model_s2[s, a, slot], model_done[s, a, slot] = r, s2, terminated
            picks = rng.integers(0, len(visited), size=cfg.planning_steps)
            coins = rng.random(cfg.planning_steps)
            for k, u in zip(picks, coins, strict=True):
                ps, pa = divmod(visited[k], n_actions)
                j = int(u * min(counts[ps, pa], k_max))
                pr, ps2 = model_r[ps, pa, j], model_s2[ps, pa, j]
                pt = pr if model_done[ps, pa, j] else pr + cfg.gamma * q[ps2].max()
                q[ps, pa] += cfg.alpha * (pt - q[ps, pa])
        if terminated or truncated:
            ep = log.end_episode(env, time.perf_counter() - start, eps)
            obs, _ = env.reset()
            s2 = state_of(obs)
            a2 = choose(s2, t_next)
            if on_episode is not None and on_episode(ep, current):
                s, a = s2, a2
                break
        s, a = s2, a2
    env.close()
    wall = time.perf_counter() - start
    return TrainResult(current(), tuple(log.episodes), log.steps, wall, snapshot())
