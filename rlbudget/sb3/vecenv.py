"""SB3's envs in worker processes, several envs per process (``training.cores`` > 1 where
the env's step cost makes it pay: :func:`rlbudget.parallel.collection`).

SB3's own ``SubprocVecEnv`` starts one process per env: the RL Zoo's 8 PPO envs would be 8
processes on a 2-core budget. :func:`grouped_vec_env` starts ``len(shares)`` processes
(``training.cores`` at most), each stepping its share of the envs one after the other,
as ``DummyVecEnv`` does in the training process: env ``i`` is seeded, stepped and reset
exactly as there (SB3's autoreset, ``terminal_observation``, ``TimeLimit.truncated``), so
a run in worker processes learns the same weights as one without (a test checks it).

A worker does not import SB3 (whose package imports torch): it records each episode's
return and length in ``info["episode"]`` itself, as SB3's ``Monitor`` does (``r``
rounded to 6 decimals, ``l``, ``t``). Workers ignore SIGINT and SIGTERM
(:func:`rlbudget.parallel.worker_init`); the training process closes them.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlbudget.parallel import ChildEnv, answer, context, reported, stop, worker_init


class _Episodes:
    """An env with SB3 ``Monitor``'s episode record (without its files)."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.rewards: list[float] = []
        self.t_start = time.time()

    def reset(self, seed: int | None, options: Any) -> tuple[Any, dict[str, Any]]:
        self.rewards = []
        obs, info = self.env.reset(seed=seed, **({"options": options} if options else {}))
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, dict[str, Any], dict[str, Any]]:
        """One step as SB3's vectorized envs return it (resetting at the episode's end):
        observation, reward, done, info, reset info."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.rewards.append(float(reward))
        done = bool(terminated or truncated)
        info["TimeLimit.truncated"] = bool(truncated and not terminated)
        reset_info: dict[str, Any] = {}
        if done:
            info["episode"] = {"r": round(sum(self.rewards), 6), "l": len(self.rewards),
                               "t": round(time.time() - self.t_start, 6)}  # fmt: skip
            info["terminal_observation"] = obs
            obs, reset_info = self.reset(None, None)
        return obs, float(reward), done, info, reset_info


def _wrapped(env: Any, cls: type) -> bool:
    while env is not None:
        if isinstance(env, cls):
            return True
        env = getattr(env, "env", None)
    return False


def _answer(envs: list[_Episodes], cmd: str, data: Any) -> Any:
    """A worker's answer to one command of the training process."""
    if cmd == "step":
        return [e.step(a) for e, a in zip(envs, data, strict=True)]
    if cmd == "reset":
        return [e.reset(s, o) for e, s, o in zip(envs, *data, strict=True)]
    if cmd == "get_attr":
        name, which = data
        return [envs[i].env.get_wrapper_attr(name) for i in which]
    if cmd == "set_attr":
        name, value, which = data
        for i in which:
            setattr(envs[i].env, name, value)
        return None
    if cmd == "env_method":
        name, args, kwargs, which = data
        return [envs[i].env.get_wrapper_attr(name)(*args, **kwargs) for i in which]
    if cmd == "is_wrapped":
        cls, which = data
        return [_wrapped(envs[i].env, cls) for i in which]
    raise NotImplementedError(f"worker command {cmd!r}")


def _worker(remote: Any, parent_remote: Any, child: ChildEnv, n: int, parent: int) -> None:
    """A worker process: ``n`` envs, served until "close" or the pipe closes. An exception
    of an env goes back to the training process (:func:`rlbudget.parallel.reported`)."""
    worker_init(parent)
    parent_remote.close()
    envs: list[_Episodes] = []
    try:
        try:
            envs = [_Episodes(child.make()) for _ in range(n)]
        except Exception as exc:  # told at the first command
            made: Any = reported(exc, child.env_id)
        else:
            made = None
        while True:
            try:
                cmd, data = remote.recv()
            except (EOFError, OSError):  # the training process is gone
                return
            if cmd == "close":
                remote.send(None)
                return
            try:
                reply = made if made is not None else _answer(envs, cmd, data)
            except Exception as exc:
                reply = reported(exc, child.env_id)
            remote.send(reply)
    finally:
        for e in envs:
            e.env.close()
        remote.close()


@functools.cache
def _grouped_class() -> type:
    """The VecEnv class (built on first use: SB3 is imported lazily)."""
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv

    class GroupedSubprocVecEnv(VecEnv):
        """``sum(shares)`` envs in ``len(shares)`` worker processes."""

        def __init__(self, child: ChildEnv, shares: Sequence[int], spaces: tuple[Any, Any],
                     known: dict[str, Any]) -> None:  # fmt: skip
            ctx = context()
            self.shares = tuple(int(s) for s in shares)
            self.remotes: list[Any] = []
            self.processes: list[Any] = []
            self.owner = [(w, i) for w, n in enumerate(self.shares) for i in range(n)]
            self.closed = False
            for n in self.shares:
                remote, work_remote = ctx.Pipe()
                p = ctx.Process(target=_worker, daemon=True,
                                args=(work_remote, remote, child, n, os.getpid()))  # fmt: skip
                p.start()
                work_remote.close()
                self.remotes.append(remote)
                self.processes.append(p)
            self.env_id = child.env_id
            self.known = known  # attributes every env has alike, answered after close too
            super().__init__(sum(self.shares), *spaces)

        def _ask(self, messages: Sequence[tuple[str, Any]]) -> list[Any]:
            for remote, msg in zip(self.remotes, messages, strict=True):
                remote.send(msg)
            return [answer(remote, self.env_id) for remote in self.remotes]

        def _chunks(self, values: Sequence[Any]) -> list[list[Any]]:
            out: list[list[Any]] = [[] for _ in self.shares]
            for (w, _), v in zip(self.owner, values, strict=True):
                out[w].append(v)
            return out

        def step_async(self, actions: np.ndarray) -> None:
            for remote, chunk in zip(self.remotes, self._chunks(list(actions)), strict=True):
                remote.send(("step", chunk))

        def step_wait(self) -> Any:
            results = [r for remote in self.remotes for r in answer(remote, self.env_id)]
            obs, rews, dones, infos, reset_infos = zip(*results, strict=True)
            self.reset_infos = list(reset_infos)
            # float32 rewards, as DummyVecEnv's buffer holds them
            return (np.stack(obs), np.asarray(rews, dtype=np.float32), np.asarray(dones),
                    list(infos))  # fmt: skip

        def reset(self) -> Any:
            seeds, options = self._chunks(self._seeds), self._chunks(self._options)
            results = [r for part in self._ask([("reset", (s, o)) for s, o in
                                                zip(seeds, options, strict=True)])
                       for r in part]  # fmt: skip
            obs, reset_infos = zip(*results, strict=True)
            self.reset_infos = list(reset_infos)
            self._reset_seeds()
            self._reset_options()
            return np.stack(obs)

        def close(self) -> None:
            if self.closed:
                return
            self.closed = True
            for remote in self.remotes:
                # a worker stuck in its env's step (or in one the training process stopped
                # waiting for, at Ctrl-C) may never answer: killed below, not waited on
                try:
                    remote.send(("close", None))
                    if remote.poll(5):
                        remote.recv()
                except (EOFError, OSError):
                    pass
            stop(self.processes, self.remotes, 2)

        def _by_worker(self, indices: Any) -> dict[int, list[int]]:
            which: dict[int, list[int]] = {}
            for i in self._get_indices(indices):
                w, local = self.owner[i]
                which.setdefault(w, []).append(local)
            return which

        def _call(self, cmd: str, indices: Any, *head: Any) -> list[Any]:
            which = self._by_worker(indices)
            for w, local in which.items():
                self.remotes[w].send((cmd, (*head, local)))
            return [r for w in which for r in answer(self.remotes[w], self.env_id)]

        def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
            if attr_name in self.known:  # render_mode: asked before num_envs is set
                n = len(self.owner) if indices is None else len(list(self._get_indices(indices)))
                return [self.known[attr_name]] * n
            return self._call("get_attr", indices, attr_name)

        def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
            which = self._by_worker(indices)
            for w, local in which.items():
                self.remotes[w].send(("set_attr", (attr_name, value, local)))
            for w in which:
                answer(self.remotes[w], self.env_id)

        def env_method(self, method_name: str, *method_args: Any, indices: Any = None,
                       **method_kwargs: Any) -> list[Any]:  # fmt: skip
            return self._call("env_method", indices, method_name, method_args, method_kwargs)

        def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
            return self._call("is_wrapped", indices, wrapper_class)

        def get_images(self) -> Sequence[Any]:
            return [None for _ in self.owner]

    return GroupedSubprocVecEnv


def grouped_vec_env(env_id: str, shares: Sequence[int]) -> Any:
    """``sum(shares)`` envs of ``env_id`` in ``len(shares)`` worker processes, as an SB3
    ``VecEnv``. The env is made here first, with :func:`rlbudget.envs.make_env`'s checks
    (a ``module:EnvId`` nobody named is refused here, not in a worker)."""
    from rlbudget.envs import make_env
    from rlbudget.parallel import child_env

    probe = make_env(env_id, guard=False)
    try:
        spaces = (probe.observation_space, probe.action_space)
        known = {"render_mode": getattr(probe, "render_mode", None), "spec": probe.spec}
    finally:
        probe.close()
    return _grouped_class()(child_env(env_id), shares, spaces, known)
