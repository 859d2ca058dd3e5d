"""The online bandit algorithms: ε-greedy, softmax, disjoint LinUCB and linear Thompson
sampling, each on per-arm ridge regression (:class:`~rlbudget.bandits.ridge.ArmRidge`),
and the loop that runs one against a world that hands out contexts and rewards.

The facts and default hyperparameters of every algorithm (with their sources) are in
``rlbudget/data/bandits.yaml``; :func:`config` merges a user's overrides into them.
"""

from __future__ import annotations

import difflib
import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

import numpy as np
import yaml

from rlbudget.bandits.ridge import ArmRidge, with_intercept
from rlbudget.errors import PlanError, TrainingError
from rlbudget.policy.kernels import Array


@functools.cache
def algorithms() -> Mapping[str, Mapping[str, Any]]:
    """``rlbudget/data/bandits.yaml``: each bandit algorithm's facts and defaults."""
    text = (resources.files("rlbudget") / "data" / "bandits.yaml").read_text("utf-8")
    data: Mapping[str, Mapping[str, Any]] = yaml.safe_load(text)
    return data


def is_bandit_algorithm(algo: str | None) -> bool:
    return algo in algorithms()


def config(algo: str, overrides: Mapping[str, Any] | None = None) -> dict[str, float]:
    """The algorithm's hyperparameters with ``overrides`` applied.

    :raises PlanError: unknown algorithm or hyperparameter, or a value that is not a
        positive number (ε and the uniform share may be 0).
    """
    if algo not in algorithms():
        close = difflib.get_close_matches(algo, list(algorithms()), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise PlanError(
            f"unknown bandit algorithm '{algo}'; {hint}one of: {', '.join(algorithms())}"
        )
    cfg = {k: float(v) for k, v in algorithms()[algo]["hyperparameters"].items()}
    for key, value in (overrides or {}).items():
        if key not in cfg:
            raise PlanError(f"{algo} has no hyperparameter '{key}'; it has: {', '.join(cfg)}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise PlanError(f"{algo}: {key}={value!r} must be a number ≥ 0")
        cfg[key] = float(value)
    if "epsilon" in cfg and cfg["epsilon"] > 1:
        raise PlanError(f"{algo}: epsilon={cfg['epsilon']:g} must be in [0, 1]")
    for key in ("ridge", "temperature", "clip"):
        if key in cfg and cfg[key] <= 0:
            raise PlanError(f"{algo}: {key} must be > 0, not {cfg[key]:g}")
    return cfg


class Learner:
    """One online algorithm: :meth:`choose` an arm for a context, :meth:`update` with its
    reward; ``model`` holds what was learned."""

    def __init__(
        self,
        algo: str,
        arms: int,
        features: int,
        cfg: Mapping[str, float],
        rng: np.random.Generator,
    ) -> None:
        if not algorithms()[algo]["online"]:
            raise PlanError(f"{algo} learns from logged data (task.data / --data), not online")
        self.algo, self.arms, self.cfg, self.rng = algo, arms, cfg, rng
        self.model = ArmRidge(arms, features, cfg["ridge"])

    def choose(self, x1: Array) -> int:
        """The arm for one context ``x1`` (intercept appended)."""
        m, cfg, rng = self.model, self.cfg, self.rng
        if self.algo == "linucb":
            scores = m.theta @ x1 + cfg["alpha"] * m.widths(x1[None])[0]
        elif self.algo == "thompson":
            # θ̃_a = θ_a + v · L_a z with L_a Lᵀ_a = A_a⁻¹ (A⁻¹ is symmetric positive definite)
            try:
                L = np.linalg.cholesky(m.A_inv)
            except np.linalg.LinAlgError:
                raise TrainingError(
                    f"thompson: an arm's A⁻¹ is no longer positive definite (ridge="
                    f"{cfg['ridge']:g}, {self.model.b.shape[0]} arms); a larger ridge "
                    "(-p ridge=1) keeps it well conditioned"
                ) from None
            z = rng.standard_normal(m.theta.shape)
            sampled = m.theta + cfg["scale"] * np.einsum("kij,kj->ki", L, z)
            scores = sampled @ x1
        elif self.algo == "softmax":
            s = m.theta @ x1 / cfg["temperature"]
            p = np.exp(s - s.max())
            return int(rng.choice(self.arms, p=p / p.sum()))
        else:  # epsilon-greedy
            if rng.random() < cfg["epsilon"]:
                return int(rng.integers(self.arms))
            scores = m.theta @ x1
        return int(np.argmax(scores))

    def update(self, x1: Array, arm: int, reward: float) -> None:
        self.model.update(x1, arm, reward)


class World(Protocol):
    """Where an online learner acts: contexts and the rewards of chosen arms."""

    def contexts(self, n: int, rng: np.random.Generator) -> Array: ...

    def rewards(self, X: Array, actions: Array, rng: np.random.Generator) -> Array: ...


@dataclass(frozen=True, eq=False)
class OnlineRun:
    """What an online run did: the arms, rewards and (when the world knows its expected
    rewards) the per-step regret ``max_a μ(x, a) − μ(x, chosen)``."""

    theta: Array
    actions: Array
    rewards: Array
    regret: Array | None

    @property
    def cumulative_regret(self) -> float | None:
        return None if self.regret is None else float(self.regret.sum())


def run_online(
    algo: str,
    world: World,
    arms: int,
    features: int,
    steps: int,
    *,
    seed: int = 0,
    cfg: Mapping[str, float] | None = None,
    time_s: float | None = None,
) -> OnlineRun:
    """Run ``algo`` for ``steps`` decisions in ``world``, seeded by ``seed`` (contexts,
    rewards and the learner's draws from one generator: the same seed, the same run), or
    until ``time_s`` seconds have passed (checked every 100 decisions)."""
    deadline = None if time_s is None else time.perf_counter() + time_s
    rng = np.random.default_rng(seed)
    learner = Learner(algo, arms, features, cfg or config(algo), rng)
    means = getattr(world, "means", None)
    actions = np.zeros(steps, dtype=np.int64)
    rewards = np.zeros(steps)
    regret = np.zeros(steps) if means is not None else None
    done = steps
    for t in range(steps):
        if deadline is not None and t and t % 100 == 0 and time.perf_counter() > deadline:
            done = t
            break
        x = world.contexts(1, rng)
        x1 = with_intercept(x)[0]
        a = learner.choose(x1)
        r = float(world.rewards(x, np.array([a]), rng)[0])
        learner.update(x1, a, r)
        actions[t], rewards[t] = a, r
        if regret is not None and means is not None:
            mu = means(x)[0]
            regret[t] = mu.max() - mu[a]
    return OnlineRun(learner.model.theta.copy(), actions[:done], rewards[:done],
                     None if regret is None else regret[:done])  # fmt: skip
