"""A synthetic linear contextual bandit with known optimum: ground truth for tests, the
README and the benchmark.

Contexts ``x`` are uniform in ``[-1, 1]^d``; arm ``a``'s expected reward is
``θ_a · [x, 1]`` and the observed reward adds Gaussian noise of standard deviation
``noise``. The optimal policy is argmax over ``θ_a · [x, 1]`` (:meth:`LinearProblem.
optimal_policy`); the value of any policy is the mean expected reward of its actions over
contexts (:meth:`LinearProblem.value`, on a fixed large sample of contexts).

The logging policy (:func:`log_decisions`) is a softmax over a perturbed copy of θ, mixed
with a uniform share, so every action has a known propensity of at least
``uniform / K``: the data an off-policy learner or estimator needs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlbudget.bandits.data import Logged, write_logged
from rlbudget.bandits.ridge import linear_policy, with_intercept
from rlbudget.errors import DataError
from rlbudget.policy.kernels import Array
from rlbudget.policy.model import Policy

VALUE_CONTEXTS = 200_000
"""Contexts :meth:`LinearProblem.value` averages over (its Monte Carlo error: the
per-context value's standard deviation / 447, ≈0.001 for the default problem)."""


@dataclass(frozen=True, eq=False)
class LinearProblem:
    """``theta`` ``[K, d + 1]`` (intercept last) and the reward noise's standard deviation."""

    theta: Array
    noise: float = 0.5

    @property
    def actions(self) -> int:
        return int(self.theta.shape[0])

    @property
    def features(self) -> int:
        return int(self.theta.shape[1]) - 1

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f"x{i}" for i in range(self.features))

    def contexts(self, n: int, rng: np.random.Generator) -> Array:
        out: Array = rng.uniform(-1.0, 1.0, size=(n, self.features))
        return out

    def means(self, X: Array) -> Array:
        """``[n, K]`` expected rewards."""
        out: Array = with_intercept(X) @ self.theta.T
        return out

    def rewards(self, X: Array, actions: Array, rng: np.random.Generator) -> Array:
        mu = self.means(X)[np.arange(len(actions)), actions]
        out: Array = mu + self.noise * rng.standard_normal(len(actions))
        return out

    def optimal_policy(self) -> Policy:
        ones = np.ones(self.features)
        return linear_policy(
            self.theta,
            self.columns,
            -ones,
            ones,
            {"source": "rlbudget.bandits.synthetic", "algorithm": "optimal"},
        )

    def value(self, act: Callable[[Array], Array] | Policy, *, seed: int = 12345) -> float:
        """Mean expected reward of ``act`` (a policy, or a function contexts → actions)
        over :data:`VALUE_CONTEXTS` contexts drawn with ``seed``."""
        X = self.contexts(VALUE_CONTEXTS, np.random.default_rng(seed))
        a = np.asarray(act.act(X.astype(np.float32)) if isinstance(act, Policy) else act(X))
        return float(self.means(X)[np.arange(len(X)), a].mean())

    def optimal_value(self, *, seed: int = 12345) -> float:
        """The value of the optimal policy (the same contexts as :meth:`value`)."""
        X = self.contexts(VALUE_CONTEXTS, np.random.default_rng(seed))
        return float(self.means(X).max(axis=1).mean())


def make_problem(
    features: int = 5, actions: int = 4, noise: float = 0.5, seed: int = 0
) -> LinearProblem:
    """A problem with standard normal θ (intercepts included), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    return LinearProblem(rng.standard_normal((actions, features + 1)), noise)


def logging_probabilities(
    problem: LinearProblem,
    X: Array,
    *,
    temperature: float = 1.0,
    uniform: float = 0.2,
    seed: int = 1,
) -> Array:
    """``[n, K]`` action probabilities of the logging policy: softmax of a perturbed θ's
    scores (θ plus N(0, 1) noise drawn with ``seed``) over ``temperature``, mixed with the
    uniform policy in the share ``uniform``."""
    rng = np.random.default_rng(seed)
    theta = problem.theta + rng.standard_normal(problem.theta.shape)
    z = with_intercept(X) @ theta.T / temperature
    z -= z.max(axis=1, keepdims=True)
    soft = np.exp(z)
    soft /= soft.sum(axis=1, keepdims=True)
    out: Array = (1.0 - uniform) * soft + uniform / problem.actions
    return out


def log_decisions(
    problem: LinearProblem, n: int, *, seed: int = 0, temperature: float = 1.0, uniform: float = 0.2
) -> Logged:
    """``n`` decisions of the logging policy (:func:`logging_probabilities`) with their
    propensities and noisy rewards, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    X = problem.contexts(n, rng)
    P = logging_probabilities(problem, X, temperature=temperature, uniform=uniform)
    cum = P.cumsum(axis=1)
    actions = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), problem.actions - 1)
    return Logged(
        contexts=X,
        actions=actions.astype(np.int64),
        rewards=problem.rewards(X, actions, rng),
        propensities=P[np.arange(n), actions],
        context_columns=problem.columns,
        n_actions=problem.actions,
        source="synthetic",
    )


def write_synthetic(
    path: str | os.PathLike[str],
    rows: int,
    *,
    features: int = 5,
    actions: int = 4,
    noise: float = 0.5,
    problem_seed: int = 0,
    seed: int = 0,
    temperature: float = 1.0,
    uniform: float = 0.2,
) -> dict[str, Any]:
    """Write ``rows`` logged decisions of the problem ``make_problem(features, actions,
    noise, problem_seed)`` to ``path`` (CSV or Parquet) and return the ground truth: the
    optimal policy's value, the logging policy's, and θ. The problem is the one the env
    ``rlbudget.bandits.env:LinearBandit-v0`` with the same arguments is."""
    if rows < 1 or features < 1 or actions < 2 or noise < 0 or not 0 < uniform <= 1:
        raise DataError(
            "bandit-data: give rows ≥ 1, features ≥ 1, actions ≥ 2, noise ≥ 0 "
            "and a uniform share in (0, 1]"
        )
    problem = make_problem(features, actions, noise, problem_seed)
    write_logged(
        log_decisions(problem, rows, seed=seed, temperature=temperature, uniform=uniform), path
    )
    X = problem.contexts(VALUE_CONTEXTS, np.random.default_rng(12345))
    P = logging_probabilities(problem, X, temperature=temperature, uniform=uniform)
    return {
        "path": str(path),
        "rows": rows,
        "features": features,
        "actions": actions,
        "noise": noise,
        "problem_seed": problem_seed,
        "seed": seed,
        "optimal_value": problem.optimal_value(),
        "logging_value": float((P * problem.means(X)).sum(axis=1).mean()),
        "theta": problem.theta.tolist(),
    }
