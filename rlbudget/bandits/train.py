"""Training a bandit policy into a run folder: online in a one-step env, or offline from
logged data. ``rlbudget train --algo linucb --env …`` and ``rlbudget train --algo dr
--data FILE`` call :func:`train_bandit`.

The run folder holds ``policy/`` (the linear policy, as every other run's), ``config.yaml``
(algorithm, where the decisions came from, hyperparameters) and ``summary.json``
(:class:`BanditRun`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rlbudget import __version__
from rlbudget.bandits.data import read_logged
from rlbudget.bandits.learners import OnlineRun, algorithms, config, run_online
from rlbudget.bandits.offline import learn_offline
from rlbudget.bandits.ridge import linear_policy
from rlbudget.errors import EnvError, PlanError, TrainingError
from rlbudget.fileio import atomic_write_text
from rlbudget.policy.kernels import Array
from rlbudget.policy.model import Policy

SOURCE = "rlbudget.bandits"


@dataclass(frozen=True)
class BanditRun:
    """What a bandit training did. ``decisions``: online steps or logged rows;
    ``cumulative_regret``: online, where the env knows its expected rewards (else None)."""

    algorithm: str
    trained_on: str
    seed: int
    decisions: int
    hyperparameters: Mapping[str, float]
    mean_reward: float
    cumulative_regret: float | None
    wall_s: float
    policy_dir: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hyperparameters": dict(self.hyperparameters)}


class EnvWorld:
    """A one-step gymnasium env as an online learner's world: ``reset`` gives the context,
    ``step`` the reward and must end the episode."""

    def __init__(self, env: Any, env_id: str, seed: int) -> None:
        self.env, self.env_id, self.seed, self.first = env, env_id, seed, True
        means = getattr(env.unwrapped, "means", None)
        if callable(means):
            self.means = means

    def contexts(self, n: int, rng: np.random.Generator) -> Array:
        obs, _ = self.env.reset(seed=self.seed if self.first else None)
        self.first = False
        return np.asarray(obs, dtype=np.float64).reshape(1, -1)

    def rewards(self, X: Array, actions: Array, rng: np.random.Generator) -> Array:
        _, reward, terminated, truncated, _ = self.env.step(int(actions[0]))
        if not (terminated or truncated):
            raise EnvError(
                f"{self.env_id}: an episode went on after one step; a bandit env "
                "ends every episode after one decision (max_episode_steps: 1)"
            )
        return np.array([float(reward)])


def train_bandit(
    algo: str,
    run_dir: str | os.PathLike[str],
    *,
    env_id: str | None = None,
    data: str | os.PathLike[str] | None = None,
    context: Sequence[str] | None = None,
    steps: int | None = None,
    time_s: float | None = None,
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
    gym_packages: Sequence[str] = (),
) -> BanditRun:
    """Train ``algo`` (see ``rlbudget/data/bandits.yaml``) and write the run folder
    ``run_dir`` (which must exist and be empty: :func:`rlbudget.train.prepare_run_dir`).

    :param env_id: a one-step env (online algorithms).
    :param data: logged decisions, CSV or Parquet (``ips``, ``dr``).
    :param context: the data's context columns (default ``x0``, ``x1``, …).
    :param steps: online decisions (default the algorithm's ``n_timesteps``).
    :param time_s: online: stop after this many seconds (the decisions made so far count).
    :raises PlanError: the algorithm does not fit the source (online without an env,
        offline without data) or a bad hyperparameter.
    """
    cfg = config(algo, overrides)
    online = bool(algorithms()[algo]["online"])
    start = time.perf_counter()
    regret: float | None = None
    if online:
        if env_id is None:
            raise PlanError(
                f"{algo} learns by acting: give a one-step env (--env, task.env), "
                "or learn from logged data with --algo ips or dr"
            )
        run, low, high, names = _online(algo, env_id, int(steps or cfg["n_timesteps"]), seed,
                                        cfg, gym_packages, time_s)  # fmt: skip
        theta, n, regret = run.theta, len(run.actions), run.cumulative_regret
        mean = float(run.rewards.mean())
        trained_on: str = env_id
    else:
        if data is None:
            raise PlanError(
                f"{algo} learns from logged decisions: give them with --data FILE "
                "(or task.data); online algorithms: "
                f"{', '.join(a for a, i in algorithms().items() if i['online'])}"
            )
        logged = read_logged(data, context=context)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below
            theta = learn_offline(algo, logged, cfg)
            mean = float(logged.rewards.mean())
        n, names = len(logged), logged.context_columns
        low, high = logged.contexts.min(axis=0), logged.contexts.max(axis=0)
        trained_on = str(data)
    if not np.isfinite(theta).all():
        raise TrainingError(
            f"{algo} on {trained_on}: the learned weights overflowed to NaN/inf "
            f"(mean reward {mean:g}, ridge {cfg['ridge']:g}); keep the rewards and contexts "
            "moderate (e.g. within ±1e6) and the ridge near 1, and train again"
        )
    prov: dict[str, Any] = {
        "source": SOURCE,
        "algorithm": algo,
        "env": env_id,
        "data": None if data is None else str(data),
        "seed": seed,
        "steps": n,
        "hyperparameters": cfg,
        "rlbudget_version": __version__,
        "transforms": [],
    }
    policy = linear_policy(theta, names, low, high, prov)
    return _write(
        run_dir,
        policy,
        BanditRun(
            algorithm=algo,
            trained_on=trained_on,
            seed=seed,
            decisions=n,
            hyperparameters=cfg,
            mean_reward=mean,
            cumulative_regret=regret,
            wall_s=time.perf_counter() - start,
            policy_dir=str(Path(run_dir) / "policy"),
        ),
    )


def _online(
    algo: str,
    env_id: str,
    steps: int,
    seed: int,
    cfg: Mapping[str, float],
    gym_packages: Sequence[str],
    time_s: float | None,
) -> tuple[OnlineRun, Array, Array, tuple[str, ...]]:
    from rlbudget.agents.common import open_env

    env, obs, act = open_env(env_id, gym_packages)
    try:
        if obs.kind != "box" or len(obs.shape) != 1 or act.kind != "discrete" or not act.n:
            raise EnvError(
                f"{env_id}: a bandit needs a flat Box context and Discrete actions "
                f"(got {obs.kind} {list(obs.shape)} → {act.kind})"
            )
        world = EnvWorld(env, env_id, seed)
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite θ is reported after
            run = run_online(algo, world, act.n, obs.dim, steps, seed=seed, cfg=cfg,
                             time_s=time_s)  # fmt: skip
    finally:
        env.close()
    low = np.asarray(obs.low if obs.low is not None else [-np.inf] * obs.dim)
    high = np.asarray(obs.high if obs.high is not None else [np.inf] * obs.dim)
    names = tuple(f"x{i}" for i in range(obs.dim))
    return run, low, high, names


def _write(run_dir: str | os.PathLike[str], policy: Policy, run: BanditRun) -> BanditRun:
    from rlbudget.policy import save_policy

    folder = Path(run_dir)
    save_policy(policy, folder / "policy")
    settings = {
        "algorithm": run.algorithm,
        "trained_on": run.trained_on,
        "seed": run.seed,
        "decisions": run.decisions,
        "hyperparameters": dict(run.hyperparameters),
    }
    atomic_write_text(folder / "config.yaml", yaml.safe_dump(settings, sort_keys=False))
    atomic_write_text(folder / "summary.json", json.dumps(run.to_dict(), indent=2) + "\n")
    return run
