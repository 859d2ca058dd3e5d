"""Parallel collection on several cores (``training.cores``): when worker processes pay,
how many, and what a worker process needs to make the run's env.

Envs step in worker processes only where the env's step cost buys back what the
processes cost: every vectorized step pays an IPC round trip (the actions out, the
observations back) and every worker takes a while to start. Both were measured on this
host class and are in :file:`rlbudget/data/parallel.yaml` with the command that measured
them (:func:`overhead`). The step cost is the budget's ``task.env_step_cost`` when it
declares one (a slow simulator), else a quick measurement of the env
(:func:`rlbudget.envs.env_spec`).

- :func:`collection`: an SB3 run's ``n_envs`` envs (the RL Zoo's, never changed here) in
  ``min(cores, n_envs)`` worker processes, each stepping its share of the envs in turn
  (:mod:`rlbudget.sb3.vecenv`), or all of them in the training process
  (``DummyVecEnv``), with the reason in words.
- :func:`evaluation`: evaluation episodes (any agent's) spread over worker processes,
  each running whole episodes (:func:`rlbudget.profile.evaluate.evaluate`, ``workers``).
- :func:`speedup`: Amdahl's law with the measured overhead: the plan's ``cores`` rule.

A worker process ignores SIGINT and SIGTERM (:func:`worker_init`): Ctrl-C (or a SIGTERM to
the process group) reaches every process, and the training process, which stops at a
step boundary and saves a checkpoint, closes its workers itself; a worker whose training
process died ends by itself.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlbudget import units
from rlbudget.errors import EnvError, RlbudgetError

DATA = Path(__file__).resolve().parent / "data" / "parallel.yaml"
PAYS = 1.2
"""Worker processes are used when they make env stepping at least this much faster
(below it the gain is within what the host's load moves a run by)."""


@dataclass(frozen=True)
class Overhead:
    """What worker processes cost on this host class (``data/parallel.yaml``).

    :param step_s: one vectorized step's IPC round trip, per worker process.
    :param start_s: starting one worker process (its env made), the first time.
    :param episode_s: one evaluation episode's IPC (the policy and seed out, the return
        back), per episode.
    """

    step_s: float
    start_s: float
    episode_s: float
    source: str


@functools.cache
def overhead() -> Overhead:
    """The measured overheads (:file:`rlbudget/data/parallel.yaml`).

    :raises RlbudgetError: the file lacks a figure.
    """
    import yaml

    data = yaml.safe_load(DATA.read_text(encoding="utf-8")) or {}
    try:
        return Overhead(float(data["ipc_step_s"]), float(data["worker_start_s"]),
                        float(data["episode_ipc_s"]), str(data["source"]))  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise RlbudgetError(f"{DATA}: missing or bad figure ({exc}); rerun "
                            "python benchmarks/parallel.py --overhead") from None  # fmt: skip


def speedup(step_cost_s: float, other_s: float, workers: int, ipc_s: float) -> float:
    """Amdahl's law for one env step: ``other_s`` (the policy, the updates) stays serial,
    the env's ``step_cost_s`` is shared by ``workers`` processes, each adding ``ipc_s``.

    >>> round(speedup(1e-3, 0.5e-3, 2, 0.0), 3)  # 1.5 ms → 1 ms
    1.5
    >>> speedup(1e-3, 0.0, 1, 0.0)
    1.0
    """
    if workers <= 1:
        return 1.0
    serial = other_s + step_cost_s
    return serial / (other_s + step_cost_s / workers + ipc_s)


@dataclass(frozen=True)
class Layout:
    """Where an SB3 run's envs step: ``workers`` processes (1: the training process)."""

    workers: int
    why: str
    speedup: float = 1.0  # of env stepping, estimated
    envs_per_worker: tuple[int, ...] = field(default=())


def split(n_envs: int, workers: int) -> tuple[int, ...]:
    """How many of ``n_envs`` envs each of ``workers`` processes steps (the first ones one
    more when it does not divide).

    >>> split(8, 2), split(5, 2), split(1, 2)
    ((4, 4), (3, 2), (1,))
    """
    workers = max(1, min(workers, n_envs))
    base, extra = divmod(n_envs, workers)
    return tuple(base + (i < extra) for i in range(workers))


def collection(n_envs: int, cores: int | None, step_cost_s: float | None, step_cost_from: str,
               steps: int) -> Layout:  # fmt: skip
    """Whether ``n_envs`` envs step in worker processes for a run of ``steps`` env steps.

    :param step_cost_s: one env step, in seconds (None: unknown, taken as cheap).
    :param step_cost_from: where it came from, in words ("task.env_step_cost").
    """
    cores = cores or 1
    if cores <= 1:
        return Layout(1, f"training.cores is {cores}: the {n_envs} env(s) step in the "
                         "training process")  # fmt: skip
    if n_envs <= 1:
        return Layout(1, "one env (the algorithm's n_envs is 1): nothing to step in parallel; "
                         f"training.cores = {cores} goes to torch threads")  # fmt: skip
    o = overhead()
    shares = split(n_envs, cores)
    cost = step_cost_s or 0.0
    serial = n_envs * cost
    parallel = max(shares) * cost + len(shares) * o.step_s
    gain = serial / parallel if parallel > 0 else 1.0
    saved = (serial - parallel) * steps / n_envs - len(shares) * o.start_s
    figures = (f"{n_envs} envs × {units.format_time(cost)} per step ({step_cost_from}) take "
               f"≈{units.format_time(serial)} per vectorized step in one process, "
               f"≈{units.format_time(parallel)} in {len(shares)} worker processes "
               f"(IPC {units.format_time(o.step_s)} per worker and step, measured)")  # fmt: skip
    if gain < PAYS or saved <= 0:
        return Layout(1, f"{figures}: ×{gain:.2f}, under ×{PAYS}; the envs step in the "
                         "training process (DummyVecEnv)", gain)  # fmt: skip
    return Layout(len(shares), f"{figures}: ×{gain:.2f} on env stepping; "
                  f"{'+'.join(map(str, shares))} envs per worker", gain, shares)  # fmt: skip


def evaluation(cores: int | None, step_cost_s: float | None, episode_steps: int | None) -> int:
    """Worker processes for evaluation episodes: ``cores`` when an episode's env time
    (``episode_steps`` × ``step_cost_s``) is at least 20× the per-episode IPC and one
    worker's start-up spreads over the first few episodes; else 1.

    >>> evaluation(2, 1e-3, 500), evaluation(2, 1e-6, 500), evaluation(1, 1e-3, 500)
    (2, 1, 1)
    """
    cores = cores or 1
    if cores <= 1 or not step_cost_s:
        return 1
    o = overhead()
    episode_s = step_cost_s * (episode_steps or 100)
    return cores if episode_s >= 20 * o.episode_s and 5 * episode_s >= o.start_s else 1


def describe_eval(workers: int) -> str:
    return ("evaluation episodes in the training process" if workers <= 1
            else f"evaluation episodes in {workers} worker processes")  # fmt: skip


WATCHDOG_S = 1.0  # how often a worker checks that the training process is still there


def worker_init(parent: int) -> None:
    """In a worker process: leave SIGINT and SIGTERM to the training process ``parent``
    (see the module docstring), and end when it has gone (a process pool's worker holds
    both ends of its task queue and would never see it close; with the ``forkserver``
    start method the worker's parent is the server, not ``parent``)."""
    import os
    import signal
    import threading
    import time

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def watchdog() -> None:
        while True:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:  # another user's process took the pid: ours is gone
                os._exit(0)
            time.sleep(WATCHDOG_S)

    threading.Thread(target=watchdog, daemon=True).start()


def reported(exc: Exception, env_id: str) -> RlbudgetError:
    """What a worker process sends back, instead of dying with a traceback on stderr, for an
    exception its env raised: an rlbudget error as it is (its one line), any other as an
    :class:`EnvError` naming it. The training process raises it (:func:`answer`)."""
    if isinstance(exc, RlbudgetError):
        return exc
    return EnvError(f"environment '{env_id}' raised {type(exc).__name__} in a worker "
                    f"process: {exc}; fix the environment, or run with training.cores: 1 "
                    "to see where")  # fmt: skip


def answer(remote: Any, env_id: str) -> Any:
    """A worker's answer on ``remote``.

    :raises RlbudgetError: the error the worker reported (:func:`reported`), or an
        :class:`EnvError` when the worker ended without answering (killed, out of memory).
    """
    try:
        out = remote.recv()
    except (EOFError, OSError):
        raise EnvError(f"a worker process running '{env_id}' ended without answering "
                       "(killed, or out of memory?); run again, or with training.cores: 1"
                       ) from None  # fmt: skip
    if isinstance(out, RlbudgetError):
        raise out
    return out


def stop(processes: list[Any], remotes: list[Any], wait_s: float) -> None:
    """End worker processes told to close: each waited for ``wait_s`` (it finishes what it
    is doing), then killed (a worker stuck in its env would never end), its pipe closed."""
    for p in processes:
        p.join(wait_s)
        if p.is_alive():
            p.kill()
            p.join(1)
    for remote in remotes:
        remote.close()


PRELOAD = ["numpy", "gymnasium", "rlbudget.envs", "rlbudget.policy.model"]


def context() -> Any:
    """The multiprocessing context of rlbudget's workers: ``forkserver`` (the training
    process holds torch's threads, which ``fork`` does not copy safely), its server
    preloading numpy, gymnasium and rlbudget's env code so that a worker starts in
    milliseconds, not in an import."""
    import multiprocessing as mp

    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # no effect once the server runs
    return ctx


@dataclass(frozen=True)
class ChildEnv:
    """What a worker process needs to make the run's env as the parent does: the id, the
    env kwargs the parent holds for it (``task.env_kwargs``), and its registration (a
    ``--gym-package`` import registered it in the parent only; a ``module:EnvId``'s module
    registers it again in the worker)."""

    env_id: str
    kwargs: dict[str, Any]
    registration: Any  # gymnasium's EnvSpec, or None

    def make(self, guard: bool = False) -> Any:
        """The env, as :func:`rlbudget.envs.make_env` makes it (``guard``: with its NaN/inf
        guard; SB3's parent checks what comes back itself). The parent made the env first,
        so its module is trusted."""
        from gymnasium.envs.registration import registry

        from rlbudget.envs import make_env

        spec = self.registration
        if spec is not None and ":" not in self.env_id and spec.id not in registry:
            registry[spec.id] = spec
        return make_env(self.env_id, guard=guard, trusted=True, **self.kwargs)


def child_env(env_id: str) -> ChildEnv:
    """:class:`ChildEnv` of ``env_id`` in this process (call after the parent has made the
    env once: that checked its module may be imported)."""
    from gymnasium.envs.registration import registry

    from rlbudget.env_kwargs import applied_kwargs

    name = env_id.split(":")[-1]
    return ChildEnv(env_id, applied_kwargs(env_id), registry.get(name))


def episode_steps(env_id: str) -> int | None:
    """The env's ``max_episode_steps`` (None: not registered with one)."""
    from gymnasium.envs.registration import registry

    spec = registry.get(env_id.split(":")[-1])
    limit = getattr(spec, "max_episode_steps", None)
    return None if limit is None else int(limit)


def cost_from(declared_s: float | None, env_id: str) -> tuple[float | None, str]:
    """The step cost to decide by: the declared one, else a quick measurement (50 random
    steps; its lower quartile, as the planner reads it)."""
    if declared_s is not None:
        return declared_s, "task.env_step_cost"
    from rlbudget.envs import env_spec

    measured = env_spec(env_id, measure_steps=50).step_cost_s
    return measured, "measured on this host"
