"""What every trainer shares: the loop contract, the episode log, checkpoints, RNG draws.

A trainer (:class:`Trainer`) is one function, ``train(env_id, cfg, *, on_episode,
should_stop, resume, on_checkpoint, checkpoint_every) -> TrainResult``:
:func:`~rlbudget.agents.tabular.train_tabular`,
:func:`~rlbudget.agents.linear.train_sarsa_lambda`, :func:`~rlbudget.agents.linear.train_ars`
and :func:`~rlbudget.sb3.training.train_sb3` keep it, so
:func:`rlbudget.train.train_run` runs any of them with the same limits, evaluation,
signals and run folder. Each trainer's own file holds its algorithm, top to bottom; the
pieces they have in common are here:

- :class:`Episode` (one row of metrics.csv) and :class:`TrainResult` (what a trainer
  returns);
- :class:`Checkpoint`: JSON state plus safetensors arrays, written atomically, from
  which a trainer continues exactly where it stopped; :func:`rng_from_state`,
  :func:`env_rng_state` and :func:`restore_env` put RNGs and the env back;
- :class:`EpisodeLog` (finished episodes, the running one, and what restores the env),
  :class:`StepHooks` (stop? checkpoint now?) and :class:`Draws` (ε-greedy's random
  numbers, in chunks);
- :func:`open_env` (the env and its two spaces), :func:`observation_bounds` (a Box's
  ranges, measured where they are infinite) and :func:`provenance`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rlbudget import __version__
from rlbudget.env_kwargs import applied_kwargs
from rlbudget.envs import SpaceSpec, make_env, observation_spec, space_spec
from rlbudget.errors import RlbudgetError
from rlbudget.policy.model import Policy

# --- what a trainer takes and returns -----------------------------------------------------


@dataclass(frozen=True)
class Episode:
    """One finished training episode, as written to metrics.csv."""

    step: int
    episode: int
    ret: float
    length: int
    wall_s: float
    epsilon: float
    note: str = ""  # what the progress display adds (model-based: model loss, planned return)


OnEpisode = Callable[[Episode, Callable[[], Policy]], bool]


@dataclass(frozen=True)
class TrainResult:
    """What a trainer returns: the greedy policy, the episodes, the steps taken, the wall
    time, and a checkpoint of the state at the stop (to resume from)."""

    policy: Policy
    episodes: tuple[Episode, ...]
    steps: int
    wall_s: float
    checkpoint: Checkpoint | None = None
    # model-based trainers: figures for summary.json, and files for the run folder
    extra: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, bytes] = field(default_factory=dict)
    # a trainer that checks the target itself (pets: its planner): "target", and the
    # deployed policy's return measured then
    stopped_by: str | None = None
    eval_return: float | None = None

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
            # compact: json's C encoder (indent= falls back to the pure-Python one,
            # which grows with the episode log at every checkpoint)
            self.STATE: json.dumps(self.state).encode(),
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


class Trainer(Protocol):
    """The loop contract every trainer keeps.

    :param env_id: a gymnasium id (or ``module:EnvId``).
    :param cfg: the trainer's own config dataclass (its hyperparameters and seed).
    :param on_episode: called after every episode with the episode and a function that
        builds the current greedy policy; returning True stops training.
    :param should_stop: checked before every step (signal handlers set it); True stops.
    :param resume: a checkpoint from an earlier call with the same ``cfg``.
    :param on_checkpoint: called with a checkpoint every ``checkpoint_every`` steps.
    :return: the policy, the episodes, and a checkpoint of the state at the stop.
    """

    def __call__(
        self,
        env_id: str,
        cfg: Any,
        *,
        on_episode: OnEpisode | None = None,
        should_stop: Callable[[], bool] | None = None,
        resume: Checkpoint | None = None,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
        checkpoint_every: int = 0,
    ) -> TrainResult: ...


def provenance(source: str, algorithm: str, env_id: str, cfg: Any, steps: int) -> dict[str, Any]:
    """Where a trained policy came from: algorithm, env, seed, steps, every hyperparameter,
    and the env kwargs it was trained with, when any (:mod:`rlbudget.env_kwargs`)."""
    prov = {
        "source": source,
        "algorithm": algorithm,
        "env": env_id,
        "seed": cfg.seed,
        "steps": steps,
        "hyperparameters": asdict(cfg),
        "rlbudget_version": __version__,
        "transforms": [],
    }
    kwargs = applied_kwargs(env_id)
    if kwargs:
        prov["env_kwargs"] = kwargs
    return prov


# --- the env ------------------------------------------------------------------------------


def open_env(env_id: str, gym_packages: Sequence[str] = ()) -> tuple[Any, SpaceSpec, SpaceSpec]:
    """The env (with the NaN/inf guard) and its observation and action specs."""
    env = make_env(env_id, gym_packages=gym_packages)
    obs_spec = observation_spec(env, env_id)
    act_spec = space_spec(env.action_space, what="action", env_id=env_id)
    return env, obs_spec, act_spec


def observation_bounds(env: Any, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A Box observation space's bounds (float64, flat); where they are infinite (or beyond
    ±1e6), the range seen in ``steps`` random-action steps, widened by 20 %."""
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
    return low, high


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


# --- the loop's bookkeeping ---------------------------------------------------------------


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


# --- an optimizer's state as arrays (checkpoints) ---------------------------------------


def adam_arrays(optimizer: Any, prefix: str) -> dict[str, np.ndarray]:
    """Adam's moments and step counts, as arrays named ``{prefix}{i}_m/_v/_t`` with ``i``
    counting the parameters of every group (a checkpoint has no pickles);
    :func:`load_adam` puts them back."""
    out: dict[str, np.ndarray] = {}
    for i, p in enumerate(_adam_params(optimizer)):
        st = optimizer.state.get(p)
        if st:
            out[f"{prefix}{i}_m"] = st["exp_avg"].numpy().copy()
            out[f"{prefix}{i}_v"] = st["exp_avg_sq"].numpy().copy()
            # shape (1,): a checkpoint on disk holds no 0-d arrays (np.ascontiguousarray)
            out[f"{prefix}{i}_t"] = np.asarray([float(st["step"])], np.float64)
    return out


def load_adam(optimizer: Any, arrays: Any, prefix: str) -> None:
    """Put :func:`adam_arrays`'s arrays back into ``optimizer``. A step count may come back
    from a saved checkpoint as shape ``(1,)`` (``Checkpoint.save`` stores arrays
    contiguous, which makes a 0-d array 1-d)."""
    import torch

    for i, p in enumerate(_adam_params(optimizer)):
        if f"{prefix}{i}_m" in arrays:
            optimizer.state[p] = {
                "step": torch.tensor(float(np.asarray(arrays[f"{prefix}{i}_t"]).reshape(-1)[0])),
                "exp_avg": torch.from_numpy(np.array(arrays[f"{prefix}{i}_m"])),
                "exp_avg_sq": torch.from_numpy(np.array(arrays[f"{prefix}{i}_v"])),
            }


def _adam_params(optimizer: Any) -> list[Any]:
    return [p for group in optimizer.param_groups for p in group["params"]]
