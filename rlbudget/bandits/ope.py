"""Off-policy evaluation: the value a policy would get, estimated from decisions another
(logging) policy made, with 95 % confidence intervals.

For a deterministic target policy π and logged ``(x, a, r, p)``, ``w = 1[π(x) = a] / p``:

- IPS: the mean of ``w · r`` (unbiased; its variance grows with ``1/p``);
- SNIPS: ``Σ w r / Σ w`` (self-normalized: biased by O(1/n), far less variance), its
  interval by the delta method, ``se² = Σ w² (r − V)² / (Σ w)²``;
- DR: the mean of ``r̂(x, π(x)) + w · (r − r̂(x, a))`` (Dudík et al. 2011), unbiased when
  either the propensities or the reward model ``r̂`` are right. ``r̂`` is cross-fitted
  (fit on one half of the rows, applied to the other), so a row's own reward never
  shapes the prediction it is corrected against.

Each interval is the mean ± ``t95(n − 1) · s / √n`` (:func:`rlbudget.stats.t95`, the
project's one 95 % interval). ``clip`` caps ``w`` (biased, less variance); default none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rlbudget.bandits.data import Logged, read_logged
from rlbudget.bandits.offline import reward_model
from rlbudget.bandits.ridge import with_intercept
from rlbudget.errors import DataError
from rlbudget.policy.kernels import Array
from rlbudget.policy.model import Policy
from rlbudget.stats import t95


@dataclass(frozen=True)
class Estimate:
    """One estimator's value and its 95 % interval ``[low, high]``."""

    estimator: str
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class OffPolicyValue:
    """The estimates for one policy on one logged data set, and how much the data says
    about it: ``matched`` rows where the policy agrees with the logged action,
    ``effective_rows`` the effective sample size ``(Σ w)² / Σ w²`` (Kish)."""

    data: str
    rows: int
    matched: int
    effective_rows: float
    logged_value: float
    estimates: tuple[Estimate, ...]
    clip: float | None

    def estimate(self, estimator: str) -> Estimate:
        return next(e for e in self.estimates if e.estimator == estimator)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: a value or bound that is not finite (SNIPS when the policy never
        agrees with the log, any interval of one row) is None."""
        estimates = [{k: None if isinstance(v, float) and not math.isfinite(v) else v
                      for k, v in asdict(e).items()} for e in self.estimates]  # fmt: skip
        return {**asdict(self), "estimates": estimates}


def _interval(name: str, terms: Array) -> Estimate:
    n = len(terms)
    mean = float(terms.mean())
    half = t95(n - 1) * float(terms.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    return Estimate(name, mean, mean - half, mean + half)


def off_policy_value(
    policy: Policy | Array, logged: Logged, *, clip: float | None = None, ridge: float = 1.0
) -> OffPolicyValue:
    """IPS, SNIPS and DR estimates of the value of ``policy`` (a :class:`Policy`, or its
    actions on ``logged``'s contexts) with 95 % intervals."""
    n = len(logged)
    if isinstance(policy, Policy):
        chosen = np.asarray(policy.act(logged.contexts.astype(np.float32)), dtype=np.int64)
    else:
        chosen = np.asarray(policy, dtype=np.int64)
    r, a = logged.rewards, logged.actions
    w = (chosen == a) / logged.propensities
    if clip is not None:
        w = np.minimum(w, clip)
    ips = _interval("ips", w * r)
    if not (chosen == a).any():  # every term 0: a zero-width interval would claim certainty
        ips = Estimate("ips", ips.value, -math.inf, math.inf)
    total = float(w.sum())
    if total > 0:
        v = float((w * r).sum()) / total
        se = math.sqrt(float((w**2 * (r - v) ** 2).sum())) / total
        half = t95(max(n - 1, 1)) * se
        snips = Estimate("snips", v, v - half, v + half)
    else:  # the policy never agrees with the log: no information
        snips = Estimate("snips", math.nan, -math.inf, math.inf)
    rhat = _cross_fitted(logged, ridge)
    rows = np.arange(n)
    dr = _interval("dr", rhat[rows, chosen] + w * (r - rhat[rows, a]))
    ess = total**2 / float((w**2).sum()) if total > 0 else 0.0
    return OffPolicyValue(
        data=logged.source,
        rows=n,
        matched=int((chosen == a).sum()),
        effective_rows=ess,
        logged_value=float(r.mean()),
        estimates=(ips, snips, dr),
        clip=clip,
    )


def _cross_fitted(logged: Logged, ridge: float) -> Array:
    """``[n, K]`` reward predictions, each row's from the model fit on the other half."""
    n = len(logged)
    X1 = with_intercept(logged.contexts)
    first = np.arange(n) < n // 2
    out = np.zeros((n, logged.n_actions))
    for held in (first, ~first):
        if held.all():  # one row: nothing to fit on
            continue
        out[held] = reward_model(logged, ridge, rows=~held).scores(X1[held])
    return out


def evaluate_on_data(
    policy: Policy, path: str, *, context: Sequence[str] | None = None, clip: float | None = None
) -> OffPolicyValue:
    """:func:`off_policy_value` of ``policy`` on the logged decisions in ``path``. The
    context columns are ``context``, else those the policy was trained on (its provenance),
    else ``x0``, ``x1``, …; a logged action the policy does not have is an error.

    :raises DataError: bad data (:func:`~rlbudget.bandits.data.read_logged`), or a
        context of another width than the policy's observation.
    """
    space = policy.action_space
    if space.kind != "discrete" or not space.n or len(policy.observation_space.shape) != 1:
        raise DataError(
            f"{path}: off-policy evaluation needs a policy with a flat Box "
            "observation and Discrete actions (a bandit policy)"
        )
    names = context or policy.provenance.get("context_columns") or None
    logged = read_logged(path, context=names, n_actions=space.n)
    if logged.features != policy.observation_space.dim:
        raise DataError(
            f"{path}: {logged.features} context columns "
            f"({', '.join(logged.context_columns)}) but the policy observes "
            f"{policy.observation_space.dim} values; name the policy's context "
            "columns with --context"
        )
    return off_policy_value(policy, logged, clip=clip)
