"""Per-arm ridge regression, the model every bandit algorithm here learns, and the linear
policy it deploys as.

Arm ``a`` keeps ``A_a = λI + Σ w x xᵀ`` (through its inverse, updated by Sherman–Morrison
in O(d²) per observation) and ``b_a = Σ w r x`` over the contexts ``x`` (with a constant 1
appended: the intercept) where ``a`` was taken; its estimate is ``θ_a = A_a⁻¹ b_a``. The
deployed policy is argmax over the arms' scores ``θ_a · [x, 1]``: a ``linear`` body (``W``
the ``d × K`` weights, ``b`` the intercepts) with an ``argmax`` head, which plan, profile
and the C/ONNX export already know.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlbudget.envs import SpaceSpec
from rlbudget.policy.kernels import Array
from rlbudget.policy.model import Head, Linear, Policy


def with_intercept(X: Array) -> Array:
    """``[X, 1]``: contexts ``[n, d]`` → ``[n, d + 1]`` (float64)."""
    X = np.asarray(X, dtype=np.float64)
    return np.concatenate([X, np.ones((X.shape[0], 1))], axis=1)


class ArmRidge:
    """Ridge statistics of ``arms`` arms over ``features`` features plus the intercept.

    :param ridge: λ, the prior precision (λ = 1: a standard normal prior on θ).
    """

    def __init__(self, arms: int, features: int, ridge: float = 1.0) -> None:
        dim = features + 1
        self.A_inv = np.repeat(np.eye(dim)[None] / ridge, arms, axis=0)  # [K, d+1, d+1]
        self.b = np.zeros((arms, dim))
        self.theta = np.zeros((arms, dim))

    def update(self, x1: Array, arm: int, reward: float, weight: float = 1.0) -> None:
        """Add one observation (``x1`` with the intercept appended) to ``arm``."""
        Ainv = self.A_inv[arm]
        u = Ainv @ x1
        Ainv -= weight * np.outer(u, u) / (1.0 + weight * (x1 @ u))
        self.b[arm] += weight * reward * x1
        self.theta[arm] = Ainv @ self.b[arm]

    def fit(self, X1: Array, targets: Array, weights: Array, ridge: float = 1.0) -> None:
        """Batch fit: every arm ``a`` on all rows, targets ``[n, K]``, weights ``[n, K]``
        (0 where a row says nothing about an arm)."""
        dim = X1.shape[1]
        for a in range(self.b.shape[0]):
            w = weights[:, a]
            A = (X1 * w[:, None]).T @ X1 + ridge * np.eye(dim)
            self.A_inv[a] = np.linalg.inv(A)
            self.b[a] = X1.T @ (w * targets[:, a])
            self.theta[a] = np.linalg.solve(A, self.b[a])

    def scores(self, X1: Array) -> Array:
        """``[n, K]`` estimated rewards."""
        out: Array = X1 @ self.theta.T
        return out

    def widths(self, X1: Array) -> Array:
        """``[n, K]`` ``sqrt(xᵀ A_a⁻¹ x)``, the confidence width LinUCB adds."""
        quad = np.einsum("ni,kij,nj->nk", X1, self.A_inv, X1)
        out: Array = np.sqrt(np.maximum(quad, 0.0))
        return out


def linear_policy(
    theta: Array,
    context_columns: Sequence[str],
    low: Array,
    high: Array,
    provenance: Mapping[str, Any],
) -> Policy:
    """The deployable policy of per-arm weights ``theta`` ``[K, d + 1]`` (intercept last):
    observation the ``d`` context values in ``[low, high]``, action the argmax arm."""
    K, dim = theta.shape
    d = dim - 1
    obs = SpaceSpec("box", (d,), None, tuple(map(float, low)), tuple(map(float, high)), "float32")
    act = SpaceSpec("discrete", (), K, None, None, "int64")
    body = Linear(
        np.ascontiguousarray(theta[:, :d].T, dtype=np.float32), theta[:, d].astype(np.float32)
    )
    prov = {**provenance, "context_columns": list(context_columns)}
    return Policy(obs, act, (), body, Head("argmax"), prov)
