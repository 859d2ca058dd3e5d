"""``compress --method cascade``: a tiny distilled int8 student decides alone when it is
confident, otherwise the full policy decides (the body: :mod:`rlbudget.policy.cascade`).

1. **Students.** Discrete actions: one student, judged by the gap between its two largest
   action scores. Continuous actions: two students distilled from different seeds, judged
   by their disagreement (an ensemble of two as the uncertainty estimate). Each is
   :func:`~rlbudget.compress.distill.distill`'s DAgger student of the parent (default hidden
   widths: ⅛ of the parent's, at least 4; ``--widths`` to choose), then
   :func:`~rlbudget.compress.quantize.quantize_int8` on the parent's visited states.
2. **Threshold.** On the parent's visited states, the threshold that lets the students
   decide a share ``s`` of them is a quantile of the confidence figure
   (:func:`threshold_for_share`: monotone, a larger share → a looser threshold). Shares
   are tried from the largest down (:data:`SHARES`); the first whose cascade keeps
   ``target`` (99 %) of the parent's mean return at the low end of its paired 95 %
   interval, on calibration episodes (as many as the gate's, seeds ``seed + 30000 + i``,
   none of the gate's), is kept (:func:`calibrate`): the gate's own episodes are others,
   and a share tuned to a 99.0 % mean on one set kept 98.5 % on the other (SAC Pendulum,
   8-8 students: ``benchmarks/cascade.py``). Share 0 is the
   full policy (always kept).
3. **Report.** The share of decisions the small body takes on the states the cascade
   itself visits (:func:`small_share`), the MACs of a small decision, the worst case
   (small + full) and the mean (``small + (1 - share) · full``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rlbudget.errors import PolicyError
from rlbudget.policy.cascade import MAX_THRESHOLD, RULES, Cascade, confidence
from rlbudget.policy.model import MLP, Array, Normalize, Policy, QuantizedMLP
from rlbudget.stats import return_drop, t95

DEFAULT_TARGET = 0.99
"""The part of the parent's mean return the cascade keeps on the calibration episodes."""
SHARES = (1.0, 0.99, 0.98, 0.97, 0.95, 0.93, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5, 0.25, 0.0)
"""Shares of the visited states the small body may decide, tried in this order."""
CALIBRATION_SEED_OFFSET = 30_000
NEVER = MAX_THRESHOLD
"""A gap threshold no decision reaches (share 0): the largest a policy file holds."""


def features(policy: Policy, obs: Array) -> Array:
    """The preprocessed body input for observations ``obs`` (a batch)."""
    x = np.asarray(obs)
    for step in policy.preprocess:
        x = step.apply(x)
    return np.asarray(x, dtype=np.float32)


def small_share(policy: Policy, obs: Array) -> float:
    """The share of the observations ``obs`` (a batch) on which a cascade's small body
    decides alone.

    :raises PolicyError: not a cascade.
    """
    if not isinstance(policy.body, Cascade):
        raise PolicyError(f"not a cascade policy (its body is {policy.body.kind})")
    return float(np.mean(policy.body.confident(features(policy, obs)))) if len(obs) else 0.0


def threshold_for_share(rule: str, figures: Array, share: float) -> float:
    """The float32 threshold with which the small body decides (at least) ``share`` of the
    states whose confidence figures are ``figures``: the ``1 - share`` quantile of the gaps
    (``gap``), the ``share`` quantile of the disagreements (``agreement``), taken as a
    value among the figures so that the share is exact up to ties.

    >>> f = np.array([0.1, 0.4, 0.2, 0.3], np.float32)
    >>> threshold_for_share("gap", f, 0.5), threshold_for_share("agreement", f, 0.5)
    (0.30000001192092896, 0.20000000298023224)
    """
    s = np.sort(np.asarray(figures, dtype=np.float32))
    n = len(s)
    k = int(np.ceil(share * n))  # states the small body must take
    if rule == "gap":
        return NEVER if k == 0 else float(s[n - k])
    return 0.0 if k == 0 else float(s[k - 1])


def calibrate(
    retention_of: Callable[[float], float], rule: str, figures: Array, target: float,
    shares: Sequence[float] = SHARES,
) -> tuple[float, list[dict[str, float]]]:  # fmt: skip
    """The threshold of the largest share in ``shares`` whose retention (``retention_of
    (threshold)``) is at least ``target``, and each try (share, threshold, retention).
    Share 0 (the full policy on every visited state) ends the search whatever its retention."""
    tries: list[dict[str, float]] = []
    threshold = threshold_for_share(rule, figures, 0.0)
    for share in shares:
        t = threshold_for_share(rule, figures, share)
        kept = 1.0 if share == 0 else retention_of(t)
        tries.append({"share": share, "threshold": t, "retention": kept})
        if kept >= target or share == 0:
            threshold = t
            break
    return threshold, tries


def student_widths(hidden: Sequence[int]) -> tuple[int, ...]:
    """⅛ of a parent's hidden widths, at least 4 each (8-8 for 64-64): the students'
    default, which the plan's cascade estimate (:mod:`rlbudget.plan.cascade`) prices too.

    >>> student_widths([64, 64]), student_widths([16]), student_widths([])
    ((8, 8), (4,), (4,))
    """
    return tuple(max(4, int(w) // 8) for w in hidden) or (4,)


def default_widths(parent: Policy) -> tuple[int, ...]:
    """:func:`student_widths` of the parent's hidden widths."""
    body = parent.body
    hidden = [int(la.W.shape[1]) for la in body.layers[:-1]] if isinstance(
        body, MLP | QuantizedMLP) else [64, 64]  # fmt: skip
    return student_widths(hidden)


def build(
    parent: Policy,
    visited: Array,
    env_id: str,
    *,
    seed: int,
    widths: Sequence[int] | None = None,
    target: float = DEFAULT_TARGET,
    episodes: int | None = None,
    gym_packages: Sequence[str] = (),
) -> tuple[Policy, dict[str, Any]]:
    """The cascade of ``parent`` (module docstring) and the parameters it used.

    :raises PolicyError: a parent that is not an ``mlp`` / ``mlp_int8``.
    """
    from rlbudget.compress import with_transform
    from rlbudget.compress.distill import distill
    from rlbudget.compress.quantize import quantize_int8
    from rlbudget.profile.evaluate import evaluate, visited_observations

    if not isinstance(parent.body, MLP | QuantizedMLP):
        raise PolicyError(f"cascade applies to mlp and mlp_int8 policies, not a "
                          f"{parent.body.kind} body")  # fmt: skip
    rule = "gap" if parent.action_space.kind == "discrete" else "agreement"
    hidden = tuple(widths) if widths else default_widths(parent)
    small: list[QuantizedMLP] = []
    inputs: list[Normalize | None] = []
    for k in range(RULES[rule]):
        student = distill(parent, env_id, widths=hidden, seed=seed + k,
                          gym_packages=gym_packages)  # fmt: skip
        q = quantize_int8(student, visited, per_channel=True)
        folded = q.preprocess[len(parent.preprocess) :]  # the input range int8 folded in
        same = [a is b for a, b in zip(q.preprocess, parent.preprocess, strict=False)]
        if len(same) != len(parent.preprocess) or not all(same) or len(folded) > 1 or any(
                not isinstance(n, Normalize) for n in folded):  # fmt: skip
            raise PolicyError("cascade: the student does not read the parent's preprocess "
                              "(a tile-coded parent?); distill it instead")  # fmt: skip
        assert isinstance(q.body, QuantizedMLP)
        small.append(q.body)
        inputs.append(folded[0] if folded and isinstance(folded[0], Normalize) else None)
    x = features(parent, visited)
    figures = confidence(rule, Cascade(tuple(small), parent.body, rule, 0.0,
                                       tuple(inputs)).small_outputs(x))  # fmt: skip

    def with_threshold(t: float) -> Policy:
        body = Cascade(tuple(small), parent.body, rule, t, tuple(inputs))
        return Policy(parent.observation_space, parent.action_space, parent.preprocess, body,
                      parent.head, parent.provenance)  # fmt: skip

    if episodes is None:  # as many as the gate's (compress's default), on other seeds
        from rlbudget.profile.evaluate import env_default_episodes, matching_env

        env = matching_env(parent, env_id, gym_packages)
        try:
            episodes = env_default_episodes(env)
        finally:
            env.close()
    seeds = range(seed + CALIBRATION_SEED_OFFSET, seed + CALIBRATION_SEED_OFFSET + episodes)
    base = evaluate(parent, env_id, seeds=seeds, seed=seeds[0], gym_packages=gym_packages)

    def retention(t: float) -> float:  # the low end of its paired 95 % interval
        r = evaluate(with_threshold(t), env_id, seeds=seeds, seed=seeds[0],
                     gym_packages=gym_packages)  # fmt: skip
        d = np.asarray(base.returns) - np.asarray(r.returns)
        half = t95(len(d) - 1) * float(d.std(ddof=1)) / np.sqrt(len(d)) if len(d) > 1 else 0.0
        scale = abs(base.return_mean) or 1.0
        return 1 - return_drop(base.return_mean, r.return_mean) - half / scale

    threshold, tries = calibrate(retention, rule, figures, target)
    child = with_threshold(threshold)
    own = visited_observations(child, env_id, states=len(visited), seed=seed + 1,
                               gym_packages=gym_packages)  # fmt: skip
    share = small_share(child, own)
    body = child.body
    assert isinstance(body, Cascade)
    full_macs = int(parent.body.macs())
    params: dict[str, Any] = {
        "rule": rule, "threshold": body.threshold, "widths": list(hidden),
        "students": len(small), "target_retention": target,
        "calibrated_on": "the low end of the paired 95 % interval of the retention",
        "calibration_episodes": episodes, "calibration": tries,
        "share_small": share, "share_measured_on": f"{len(own)} states the cascade visits",
        "macs_small": body.small_macs(), "macs_full": full_macs, "macs_worst": body.macs(),
        "macs_mean": body.mean_macs(share),
        "macs_mean_ratio": body.mean_macs(share) / full_macs if full_macs else None,
    }  # fmt: skip
    return with_transform(parent, child, "cascade", **params), params
