"""Tabular control, numpy only: Q-learning, SARSA, Expected SARSA and Dyna-Q.

One file, top to bottom: the config, the observation → state mapping, the loop.
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

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlbudget import __version__
from rlbudget.envs import make_env, observation_spec, space_spec
from rlbudget.errors import EnvError, RlbudgetError
from rlbudget.finite import sync
from rlbudget.policy.model import Discretize, Head, Policy, Preprocess, Table

ALGORITHMS = ("q-learning", "sarsa", "expected-sarsa", "dyna-q")
MODEL_SAMPLES = 8  # Dyna-Q: outcomes remembered per (state, action)


@dataclass(frozen=True)
class TabularConfig:
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


@dataclass(frozen=True)
class Episode:
    """One finished training episode, as written to metrics.csv."""

    step: int
    episode: int
    ret: float
    length: int
    wall_s: float
    epsilon: float


OnEpisode = Callable[[Episode, Callable[[], Policy]], bool]


class Draws:
    """ε-greedy's random numbers, drawn in chunks from their own stream.

    One Generator call per ``chunk`` steps instead of one per step, and memory that does
    not grow with the step budget. Each call to :meth:`next` gives a uniform number in
    [0, 1) and a uniformly random action.
    """

    def __init__(self, seed: int, n_actions: int, chunk: int = 1 << 16) -> None:
        self.rng = np.random.default_rng([seed, 1])  # independent of the agent's stream
        self.n_actions, self.chunk = n_actions, chunk
        self.i = chunk
        self.before: dict[str, Any] | None = None  # the stream's state before this chunk
        self.u: list[float] = []
        self.a: list[int] = []

    def _refill(self) -> None:
        self.before = dict(self.rng.bit_generator.state)
        self.u = self.rng.random(self.chunk).tolist()
        self.a = self.rng.integers(0, self.n_actions, size=self.chunk).tolist()
        self.i = 0

    def next(self) -> tuple[float, int]:
        if self.i == self.chunk:
            self._refill()
        i = self.i
        self.i += 1
        return self.u[i], self.a[i]

    def snapshot(self) -> dict[str, Any]:
        return {"before": self.before, "i": self.i, "now": self.rng.bit_generator.state}

    def restore(self, snap: Mapping[str, Any]) -> None:
        if snap["before"] is None:  # nothing drawn yet
            self.rng.bit_generator.state = snap["now"]
            return
        self.rng.bit_generator.state = snap["before"]
        self._refill()
        self.i = int(snap["i"])


class StepHooks:
    """What a training loop asks before each step (ARS: each iteration): stop now?
    And saves a checkpoint each time another ``every`` steps have passed."""

    def __init__(
        self,
        should_stop: Callable[[], bool] | None,
        on_checkpoint: Callable[[Checkpoint], None] | None,
        every: int,
        steps_done: int,
    ) -> None:
        self.should_stop, self.on_checkpoint, self.every = should_stop, on_checkpoint, every
        self.next = (steps_done // every + 1) * every if every else 0

    def stop(self, steps: int, snapshot: Callable[[], Checkpoint]) -> bool:
        if self.should_stop is not None and self.should_stop():
            return True
        if self.on_checkpoint is not None and self.every and steps >= self.next:
            self.on_checkpoint(snapshot())
            self.next = (steps // self.every + 1) * self.every
        return False


def provenance(source: str, algorithm: str, env_id: str, cfg: Any, steps: int) -> dict[str, Any]:
    """Where a trained policy came from: algorithm, env, seed, steps, every hyperparameter."""
    return {
        "source": source,
        "algorithm": algorithm,
        "env": env_id,
        "seed": cfg.seed,
        "steps": steps,
        "hyperparameters": asdict(cfg),
        "rlbudget_version": __version__,
        "transforms": [],
    }


@dataclass(frozen=True)
class TrainResult:
    policy: Policy
    episodes: tuple[Episode, ...]
    steps: int
    wall_s: float
    checkpoint: Checkpoint | None = None

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_s if self.wall_s > 0 else math.inf


@dataclass(frozen=True)
class Checkpoint:
    """Everything a training loop needs to continue exactly where it stopped.

    ``state`` holds JSON data (step, loop variables, RNG bit-generator states, the env's
    RNG state before the current episode's reset and the actions taken since, so the env
    is restored by replaying them); ``arrays`` the learned arrays.
    """

    state: Mapping[str, Any]
    arrays: Mapping[str, Any]

    STATE = "state.json"
    ARRAYS = "arrays.safetensors"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically: a kill at any moment leaves the previous checkpoint intact."""
        from safetensors.numpy import save

        from rlbudget.fileio import atomic_write_dir

        files = {
            self.ARRAYS: save({k: np.ascontiguousarray(v) for k, v in self.arrays.items()}),
            self.STATE: json.dumps(self.state, indent=1).encode(),
        }
        return atomic_write_dir(path, files, marker=self.STATE)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """Read a checkpoint folder (JSON and safetensors only; nothing is executed).

        :raises RlbudgetError: missing or unreadable files.
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load

        folder = Path(path)
        try:
            state = json.loads((folder / cls.STATE).read_text(encoding="utf-8"))
            arrays = load((folder / cls.ARRAYS).read_bytes())
        except FileNotFoundError as exc:
            raise RlbudgetError(
                f"{folder}: no checkpoint there ({exc.filename} is missing)"
            ) from None
        except (json.JSONDecodeError, SafetensorError, ValueError) as exc:
            raise RlbudgetError(f"{folder}: the checkpoint is corrupt ({exc})") from None
        return cls(state, arrays)


def rng_from_state(state: Mapping[str, Any]) -> np.random.Generator:
    """A numpy Generator in exactly the given bit-generator state."""
    bit_generator = getattr(np.random, str(state["bit_generator"]))()
    bit_generator.state = dict(state)
    return np.random.Generator(bit_generator)


def restore_env(
    env: Any, seed: int, episode_start: Mapping[str, Any] | None, actions: Sequence[Any]
) -> Any:
    """Put ``env`` back where a checkpoint left it and return the current observation.

    The env is reset as the episode began (seeded, for the first episode; else from its
    RNG state just before that reset) and the episode's actions are replayed.
    """
    obs, _ = env.reset(seed=seed)
    if episode_start is not None:
        env.unwrapped.np_random = rng_from_state(episode_start)
        obs, _ = env.reset()
    for action in actions:
        obs, *_ = env.step(action)
    return obs


def env_rng_state(env: Any) -> dict[str, Any]:
    """The env's RNG state, to be saved just before a reset (see :func:`restore_env`)."""
    return dict(env.unwrapped.np_random.bit_generator.state)


@dataclass
class EpisodeLog:
    """A training loop's bookkeeping, shared by the agents.

    Finished episodes, the running one, and what restores the env on resume: its RNG
    state just before the current episode's reset (None for the first, seeded reset) and
    the actions taken since.
    """

    episodes: list[Episode] = field(default_factory=list)
    steps: int = 0
    ep_return: float = 0.0
    ep_len: int = 0
    episode_start: dict[str, Any] | None = None
    episode_actions: list[Any] = field(default_factory=list)
    wall0: float = 0.0  # seconds trained before a resume

    def record(self, action: Any, reward: float) -> None:
        """One env step taken."""
        self.episode_actions.append(action)
        self.steps += 1
        self.ep_return += reward
        self.ep_len += 1

    def end_episode(self, env: Any, wall_s: float, exploration: float) -> Episode:
        """Close the running episode; call just before ``env.reset()``."""
        ep = Episode(self.steps, len(self.episodes), self.ep_return, self.ep_len, wall_s,
                     exploration)  # fmt: skip
        self.episodes.append(ep)
        self.ep_return, self.ep_len = 0.0, 0
        self.episode_start, self.episode_actions = env_rng_state(env), []
        return ep

    def state(self, wall_s: float) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "ep_return": self.ep_return,
            "ep_len": self.ep_len,
            "wall_s": wall_s,
            "episode_start": self.episode_start,
            "episode_actions": self.episode_actions,
            "episodes": [asdict(e) for e in self.episodes],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> EpisodeLog:
        return cls([Episode(**e) for e in state["episodes"]], int(state["steps"]),
                   float(state["ep_return"]), int(state["ep_len"]), state["episode_start"],
                   list(state["episode_actions"]), float(state["wall_s"]))  # fmt: skip

    def restore_env(self, env: Any, seed: int) -> Any:
        """Put ``env`` where this log left it; return the current observation."""
        return restore_env(env, seed, self.episode_start, self.episode_actions)


def _discretizer(env: Any, bins: int, steps: int, seed: int) -> Discretize:
    """Uniform bins over the space's bounds, measured where they are infinite."""
    low = np.asarray(env.observation_space.low, dtype=np.float64).ravel()
    high = np.asarray(env.observation_space.high, dtype=np.float64).ravel()
    unbounded = ~np.isfinite(low) | ~np.isfinite(high) | (np.abs(low) > 1e6) | (high > 1e6)
    if unbounded.any():
        seen = []
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        for _ in range(steps):
            seen.append(np.asarray(obs, dtype=np.float64).ravel())
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                obs, _ = env.reset()
        seen_arr = np.asarray(seen)
        lo, hi = seen_arr.min(axis=0), seen_arr.max(axis=0)
        pad = 0.2 * np.maximum(hi - lo, 1e-3)
        low = np.where(unbounded, lo - pad, low)
        high = np.where(unbounded, hi + pad, high)
    return Discretize(low, high, (bins,) * len(low))


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

    :param on_episode: called after every episode with the episode and a function that
        builds the current greedy policy; returning True stops training.
    :param should_stop: checked before every step (signal handlers set it); True stops.
    :param resume: a checkpoint from an earlier call with the same ``cfg``: training
        continues exactly as if it had never stopped.
    :param on_checkpoint: called with a checkpoint every ``checkpoint_every`` steps.
    :return: the policy, the episodes, and a checkpoint of the state at the stop.
    :raises EnvError: the env's actions are not Discrete or its observations are neither
        Discrete nor Box.
    """
    if cfg.algorithm not in ALGORITHMS:
        raise EnvError(f"unknown tabular algorithm '{cfg.algorithm}'; use {', '.join(ALGORITHMS)}")
    env = make_env(env_id, gym_packages=gym_packages)
    obs_spec = observation_spec(env, env_id)
    act_spec = space_spec(env.action_space, what="action", env_id=env_id)
    if act_spec.kind != "discrete" or act_spec.n is None:
        raise EnvError(f"environment '{env_id}' has Box actions; tabular agents need Discrete")
    n_actions = act_spec.n
    ck = resume.state if resume is not None else None

    preprocess: tuple[Preprocess, ...] = ()
    if obs_spec.kind == "box":
        if resume is not None:
            disc = Discretize(resume.arrays["disc_low"], resume.arrays["disc_high"],
                              (cfg.bins,) * obs_spec.dim)  # fmt: skip
        else:
            disc = _discretizer(env, cfg.bins, cfg.range_steps, cfg.seed)
        preprocess = (disc,)
        n_states = disc.states

        def state_of(o: Any) -> int:
            return int(disc.apply(np.asarray(o, dtype=np.float32).reshape(1, -1))[0])
    else:
        assert obs_spec.n is not None
        n_states = obs_spec.n

        def state_of(o: Any) -> int:
            return int(o)

    rng = np.random.default_rng(cfg.seed)
    q = np.zeros((n_states, n_actions), dtype=np.float64)
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
    log = EpisodeLog.from_state(ck) if ck is not None else EpisodeLog()

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
        return Policy(obs_spec, act_spec, preprocess, Table(q.astype(np.float32)),
                      Head("argmax"), prov)  # fmt: skip

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

    env.action_space.seed(cfg.seed)
    if ck is None or resume is None:
        obs, _ = env.reset(seed=cfg.seed)
        s = state_of(obs)
        a = choose(s, 0)
    else:
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
        q[s, a] += cfg.alpha * (target(r, s2, terminated, a2, eps) - q[s, a])
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
