"""Off-policy learning from logged decisions: IPS and doubly robust (DR) regression.

Both turn each logged row into an estimate of every arm's reward and regress those on the
context, per arm, over all rows (ridge, :class:`~rlbudget.bandits.ridge.ArmRidge`); the
greedy policy of the fit is the learned policy (Dudík, Langford & Li 2011, "Doubly Robust
Policy Evaluation and Learning", §4):

- IPS: ``Γ_a = 1[a = logged] · r · w``, with ``w = min(1/p, clip)``;
- DR:  ``Γ_a = r̂(x, a) + 1[a = logged] · (r − r̂(x, logged)) · w``, where ``r̂`` is the
  direct reward model (per-arm ridge on the rows where each arm was logged).

Unclipped, both are unbiased for every arm's reward; clipping trades a little bias for a
bounded variance when some propensities are small.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rlbudget.bandits.data import Logged
from rlbudget.bandits.ridge import ArmRidge, with_intercept
from rlbudget.policy.kernels import Array


def one_hot(logged: Logged) -> Array:
    """``[n, K]``: 1 where the row's logged action is the arm (no ``K × K`` identity)."""
    out = np.zeros((len(logged), logged.n_actions))
    out[np.arange(len(logged)), logged.actions] = 1.0
    return out


def reward_model(logged: Logged, ridge: float = 1.0, rows: Array | None = None) -> ArmRidge:
    """The direct method: per-arm ridge of the reward on the rows where the arm was logged
    (all rows, or those selected by the boolean mask ``rows``)."""
    X1 = with_intercept(logged.contexts)
    taken = one_hot(logged)
    if rows is not None:
        taken = taken * rows[:, None]
    model = ArmRidge(logged.n_actions, logged.features, ridge)
    model.fit(X1, np.repeat(logged.rewards[:, None], logged.n_actions, axis=1), taken, ridge)
    return model


def learn_offline(algo: str, logged: Logged, cfg: Mapping[str, float]) -> Array:
    """Per-arm weights ``θ`` ``[K, d + 1]`` learned by ``algo`` (``ips`` or ``dr``)."""
    X1 = with_intercept(logged.contexts)
    n, K = len(logged), logged.n_actions
    taken = one_hot(logged)
    w = np.minimum(1.0 / logged.propensities, cfg["clip"])
    if algo == "dr":
        rhat = reward_model(logged, cfg["ridge"]).scores(X1)
        residual = logged.rewards - rhat[np.arange(n), logged.actions]
        targets = rhat + taken * (residual * w)[:, None]
    else:
        targets = taken * (logged.rewards * w)[:, None]
    model = ArmRidge(K, logged.features, cfg["ridge"])
    model.fit(X1, targets, np.ones((n, K)), cfg["ridge"])
    return model.theta
