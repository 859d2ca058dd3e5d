"""Episode returns of a numpy policy in its env, and the observations it visits (no torch
anywhere on this path).

Seeding follows SB3's evaluation convention: the env is reset with ``seed`` once, then
episodes run back to back (``reset()`` without a seed), so a seed gives one fixed,
reproducible sequence of episodes. A comparison of two policies (the compression gate)
passes ``seeds`` instead: episode ``i`` is reset with ``seeds[i]``, so the two policies'
episode ``i`` start from the same state and draw the same env randomness even after one
of them ended an earlier episode sooner.

With ``seeds``, episodes are independent of one another, so ``workers`` > 1 runs them in
worker processes (each with its own env and a copy of the policy; the results come back
in episode order, so they are the serial ones, number for number). The training loop's
evaluations do that when ``training.cores`` > 1 and the env's step cost pays for it
(:func:`rlbudget.parallel.evaluation`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rlbudget.envs import make_env, space_mismatch
from rlbudget.errors import EnvError, RlbudgetError
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


def episode_seeds(seed: int, episodes: int) -> list[int]:
    """One reset seed per episode, drawn from ``seed`` (numpy's ``SeedSequence``: nearby
    seeds give unrelated lists, so two evaluations seeded ``s`` and ``s + 1`` share no
    episode).

    >>> a, b = episode_seeds(0, 3), episode_seeds(1, 3)
    >>> len(a), a == episode_seeds(0, 3), bool(set(a) & set(b))
    (3, True, False)
    """
    return [int(x) for x in np.random.SeedSequence(seed).generate_state(episodes)]


def seeding(seed: int, episodes: int, workers: int | EvalWorkers) -> dict[str, Any]:
    """:func:`evaluate`'s seeding arguments for ``episodes`` episodes from ``seed``: run
    back to back from one reset (``workers`` 1: SB3's convention), or, for ``workers`` > 1,
    one seed per episode (:func:`episode_seeds`), which lets them run in worker processes.
    """
    if isinstance(workers, int) and workers <= 1:
        return {"seed": seed, "episodes": episodes}
    return {"seed": seed, "seeds": episode_seeds(seed, episodes), "workers": workers}


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
    workers: int | EvalWorkers = 1,
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
    :param workers: worker processes for the episodes, or an :class:`EvalWorkers` pool
        kept by the caller, with ``seeds`` and the policy's own ``act`` only (else the
        episodes run here): the same results as ``workers=1``.
    :raises EnvError: the env's spaces differ from the policy's.
    :raises NonFiniteError: a NaN/inf observation or reward (env step and episode named),
        or an episode's return that overflows to inf: no mean is made of it.
    """
    choose = policy.act if act is None else act
    env = matching_env(policy, env_id, gym_packages)
    returns: list[float] = []
    lengths: list[int] = []
    successes: list[float] = []
    if seeds is not None:
        episodes = len(seeds)
    many = isinstance(workers, EvalWorkers) or workers > 1
    if many and seeds is not None and act is None and episodes > 1:
        env.close()  # the workers make their own (it was made here to check its spaces)
        played = _in_workers(policy, env_id, seeds, workers)
    else:
        played = _here(env, choose, seed, seeds, episodes)
    try:
        for episode, (total, steps, success) in enumerate(played, start=1):
            returns.append(check_return(total, env_id, episode, episodes))
            lengths.append(steps)
            if success is not None:
                successes.append(success)
            if enough is not None and enough(returns):
                episodes = episode
                break
    finally:
        played.close()  # closes the env, or stops the worker processes
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


Played = tuple[float, int, float | None]  # an episode's return, length, success (or None)


def _episode(env: Any, choose: Callable[[Any], Any], obs: Any) -> Played:
    """Play one episode from ``obs`` (the env just reset)."""
    total, steps, done = 0.0, 0, False
    info: dict[str, Any] = {}
    while not done:
        obs, reward, terminated, truncated, info = env.step(choose(obs))
        total += float(reward)
        steps += 1
        done = bool(terminated or truncated)
    success = float(bool(info["is_success"])) if "is_success" in info else None
    return total, steps, success


def _here(env: Any, choose: Callable[[Any], Any], seed: int, seeds: Sequence[int] | None,
          episodes: int) -> Generator[Played, None, None]:  # fmt: skip
    """The episodes, played in this process (seeded as the module docstring says); the env
    is closed when the generator is."""
    try:
        obs, _ = env.reset(seed=seed if seeds is None else seeds[0])
        env.action_space.seed(seed)
        for episode in range(1, episodes + 1):
            if episode > 1:
                obs, _ = env.reset() if seeds is None else env.reset(seed=seeds[episode - 1])
            yield _episode(env, choose, obs)
    finally:
        env.close()


def _eval_worker(remote: Any, child: Any, parent: int) -> None:
    """A worker process: one env; ("policy", p) sets the policy, ("episode", seed) plays
    one episode and sends it back, ("close", None) ends it (so does a closed pipe)."""
    from rlbudget.parallel import reported, worker_init

    worker_init(parent)
    env, policy = None, None
    try:
        while True:
            try:
                cmd, data = remote.recv()
            except (EOFError, OSError):
                return
            if cmd == "policy":
                policy = data
            elif cmd == "episode":
                assert policy is not None
                try:  # the env's error goes back as the answer, not as a traceback here
                    env = env or child.make(guard=True)
                    obs, _ = env.reset(seed=data)
                    played: Any = _episode(env, policy.act, obs)
                except Exception as exc:
                    played = reported(exc, child.env_id)
                remote.send(played)
            else:
                return
    finally:
        if env is not None:
            env.close()


class EvalWorkers:
    """Worker processes for evaluation episodes of one env, kept from one evaluation to
    the next (a training run's screens and confirmations): started at the first, stopped
    by :meth:`close` (or ``with``). Each worker plays one episode at a time, the next seed
    going to the first that is free; the episodes come back in order. A worker that dies
    (a signal before it could ignore it) hands its episode to the others, and the last
    episodes run here if none is left: the results are the same."""

    def __init__(self, env_id: str, workers: int) -> None:
        self.env_id, self.workers = env_id, workers
        self.remotes: list[Any] = []
        self.processes: list[Any] = []
        self.busy: dict[Any, int] = {}  # a worker's pipe → the episode it plays

    def _start(self) -> None:
        import os

        from rlbudget.parallel import child_env, context

        ctx, child = context(), child_env(self.env_id)
        for _ in range(self.workers):
            remote, work_remote = ctx.Pipe()
            p = ctx.Process(target=_eval_worker, args=(work_remote, child, os.getpid()),
                            daemon=True)  # fmt: skip
            p.start()
            work_remote.close()
            self.remotes.append(remote)
            self.processes.append(p)

    def _drain(self) -> None:
        """Wait for the episodes still under way (an earlier evaluation stopped early)."""
        for remote in list(self.busy):
            try:
                remote.recv()
            except (EOFError, OSError):
                self.remotes.remove(remote)
            del self.busy[remote]

    def busy_pipe(self, ready: object) -> Any:
        """The pipe that ``multiprocessing.connection.wait`` said is ready."""
        return next(r for r in self.busy if r is ready)

    def play(self, policy: Policy, seeds: Sequence[int]) -> Generator[Played, None, None]:
        """The episodes of ``seeds``, in order."""
        from multiprocessing.connection import wait

        if not self.processes:
            self._start()
        self._drain()
        for remote in list(self.remotes):
            try:
                remote.send(("policy", policy))
            except OSError:
                self.remotes.remove(remote)
        done: dict[int, Played] = {}
        todo = list(range(len(seeds)))[::-1]  # popped from the end: episode 0 first
        for i in range(len(seeds)):
            while i not in done:
                for remote in self.remotes:
                    if remote not in self.busy and todo:
                        k = todo.pop()
                        try:
                            remote.send(("episode", int(seeds[k])))
                            self.busy[remote] = k
                        except OSError:
                            todo.append(k)
                if not self.busy:  # no worker left: play the rest here
                    env = make_env(self.env_id)
                    try:
                        for k in sorted(todo):
                            obs, _ = env.reset(seed=int(seeds[k]))
                            done[k] = _episode(env, policy.act, obs)
                    finally:
                        env.close()
                    todo.clear()
                    break
                for ready in wait(list(self.busy)):
                    remote = self.busy_pipe(ready)
                    k = self.busy.pop(remote)
                    try:
                        result = remote.recv()
                    except (EOFError, OSError):  # the worker died: another plays it
                        self.remotes.remove(remote)
                        todo.append(k)
                        continue
                    if isinstance(result, RlbudgetError):  # the env's error, as serial
                        raise result
                    done[k] = result
            yield done.pop(i)

    def close(self) -> None:
        """Stop the workers (an episode under way finishes first)."""
        from rlbudget.parallel import stop

        for remote in self.remotes:
            with contextlib.suppress(OSError):
                remote.send(("close", None))
        stop(self.processes, self.remotes, 10)
        self.remotes, self.processes, self.busy = [], [], {}

    def __enter__(self) -> EvalWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _in_workers(policy: Policy, env_id: str, seeds: Sequence[int],
                workers: int | EvalWorkers) -> Generator[Played, None, None]:  # fmt: skip
    """The episodes of ``seeds`` in worker processes (``workers`` of them for this call,
    or a pool kept by the caller), yielded in episode order."""
    if isinstance(workers, EvalWorkers):
        yield from workers.play(policy, seeds)
        return
    with EvalWorkers(env_id, min(workers, len(seeds))) as pool:
        yield from pool.play(policy, seeds)


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
