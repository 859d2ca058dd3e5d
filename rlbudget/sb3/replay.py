"""Stable-Baselines3's replay buffer in rlbudget's compact storage (:mod:`rlbudget.replay`).

:func:`buffer_kwargs` gives the SB3 constructor arguments for a :class:`~rlbudget.replay.
Storage`: nothing for SB3's own float32 buffer, ``handle_timeout_termination=False`` with
``optimize_memory_usage`` (SB3 refuses the two together), and for float16, uint8 or
compression :func:`compact_buffer_class` (a ``ReplayBuffer`` that keeps its transitions in
a :class:`~rlbudget.replay.CompactReplay`). SAC, TD3 and DQN sample from it as from their
own: float32 tensors, dones without time-limit truncations, VecNormalize applied at
sampling time, indices drawn from numpy's global RNG (so a checkpoint's RNG state
reproduces the batches). SB3 is imported inside the functions only.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlbudget.envs import SpaceSpec
from rlbudget.replay import CompactReplay, Storage


def space_spec(space: Any) -> SpaceSpec:
    """A gymnasium Box or Discrete space as a :class:`~rlbudget.envs.SpaceSpec`."""
    if hasattr(space, "n"):
        return SpaceSpec("discrete", (), int(space.n), None, None, "int64")
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    return SpaceSpec("box", tuple(space.shape), None, tuple(low.ravel().tolist()),
                     tuple(high.ravel().tolist()), str(space.dtype))  # fmt: skip


def buffer_kwargs(storage: Storage, max_bytes: int | None,
                  given: Mapping[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """SB3 constructor arguments (``replay_buffer_class``, ``replay_buffer_kwargs``) for
    ``storage``, merged over the hyperparameters' own ``replay_buffer_kwargs`` (``given``)."""
    kwargs = dict(given or {})
    if storage.optimize_memory_usage:
        kwargs["handle_timeout_termination"] = False
    if not storage.compact:
        return {"replay_buffer_kwargs": kwargs} if kwargs else {}
    kwargs.update(storage=storage, max_bytes=max_bytes)
    return {"replay_buffer_class": compact_buffer_class(), "replay_buffer_kwargs": kwargs}


@functools.cache
def compact_buffer_class() -> type:
    """The SB3 ``ReplayBuffer`` subclass over :class:`CompactReplay` (built on first use)."""
    from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    class CompactReplayBuffer(ReplayBuffer):
        """SB3's ReplayBuffer interface; the transitions live in ``self.compact``."""

        def __init__(self, buffer_size: int, observation_space: Any, action_space: Any,
                     device: Any = "auto", n_envs: int = 1,
                     optimize_memory_usage: bool = False,
                     handle_timeout_termination: bool = True, *,
                     storage: Storage, max_bytes: int | None = None) -> None:  # fmt: skip
            # ReplayBuffer's own __init__ would allocate the float32 arrays: skip it.
            BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device,
                                n_envs=n_envs)  # fmt: skip
            self.optimize_memory_usage = False
            self.handle_timeout_termination = handle_timeout_termination
            self.compact = CompactReplay(space_spec(observation_space),
                                         space_spec(action_space), buffer_size, storage,
                                         max_bytes)  # fmt: skip

        def size(self) -> int:
            return self.compact.size

        def add(self, obs: Any, next_obs: Any, action: Any, reward: Any, done: Any,
                infos: list[dict[str, Any]]) -> None:  # fmt: skip
            timeouts = [bool(i.get("TimeLimit.truncated", False)) for i in infos]
            if not self.handle_timeout_termination:
                timeouts = [False] * len(infos)
            self.compact.add(obs, next_obs, action, reward, done, timeouts)
            self.pos = self.compact.size % self.buffer_size
            self.full = self.compact.size >= self.buffer_size

        def sample(self, batch_size: int, env: Any = None) -> Any:
            positions = np.random.randint(0, self.compact.size, size=batch_size)
            # SB3 then draws env indices; so do we (the envs' rows are interleaved here),
            # so that the global RNG stream stays the same as with SB3's own buffer.
            np.random.randint(0, high=self.n_envs, size=batch_size)
            b = self.compact.gather(positions)
            action = b.action.reshape(batch_size, self.action_dim)
            data = (self._normalize_obs(b.obs, env), action, self._normalize_obs(b.next_obs, env),
                    (b.done * (1 - b.timeout)).reshape(-1, 1),
                    self._normalize_reward(b.reward.reshape(-1, 1), env))  # fmt: skip
            return ReplayBufferSamples(*tuple(map(self.to_torch, data)))

    return CompactReplayBuffer
