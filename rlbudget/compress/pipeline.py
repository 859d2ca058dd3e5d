"""Compression as a pipeline of named methods, each judged by the return it keeps.

:func:`compress` runs methods in order, each ``Policy → Policy``, and measures every step
against its parent: bytes (:func:`~rlbudget.compress.policy_bytes`) and MACs before and
after, action agreement on states the parent visits, and episode return before and after.
The command ``rlbudget compress`` is a thin wrapper around it.

The methods, by name, are :mod:`rlbudget.compress.methods`'s.

Measures (every step, against its parent):

- **visited states**: the parent's own greedy trajectories in the env, reset once and run
  episode after episode until ``states`` observations are collected. Two sets per parent,
  from seeds that the return measurement does not use: the *fitting* set (seed ``seed +
  10000``) calibrates int8, ranks neurons, chooses the kept table states and seeds DAgger's
  rollouts; the *held-out* set (seed ``seed + 20000``) measures agreement. A method is
  never judged on the states it was fitted to (``drop-unvisited`` would otherwise agree
  100 % by construction).
- **action agreement** on the held-out states: discrete actions agree when identical;
  continuous ones when ``|Δ| ≤ 5 %`` of the action span (``high - low``; an unbounded
  dimension: the span of the parent's actions on the states) in every dimension, with the
  largest and the mean ``|Δ|`` over all dimensions reported beside.
- **return** over ``episodes`` episodes, episode ``i`` reset with seed ``seed + i`` for
  parent and child alike (:func:`~rlbudget.profile.evaluate.evaluate` with ``seeds``), so
  the episodes are paired: the same start state and env randomness, only the policy
  differs. By default ``episodes`` is ``run``'s rule
  (:func:`~rlbudget.profile.evaluate.default_episodes`: about 50,000 env steps, 100 to
  1,000 episodes), enough for an episode lost in 50 to show. A step's "after" is the next
  step's "before" (each policy is evaluated once).
- **retention**: ``drop = (before - after) / |before|`` and ``retention = 1 - drop``, so a
  negative return (Pendulum's) that falls further is a drop too; a gain gives a negative
  drop (retention above 1). When ``before`` is 0 the relative drop is undefined and the
  absolute one, ``before - after``, stands in.

The gate (:class:`Gate`) compares the final policy with the input policy on those paired
episodes, by two figures, each held to ``max_return_drop``:

- the **mean drop** (the retention above), with its 95 % interval from the paired
  per-episode differences (``mean(d) ± t·sd(d)/√n`` over ``|mean before|``, ``t`` Student's
  with ``n - 1`` degrees of freedom, :func:`rlbudget.stats.t95`);
- the **tail drop**: :func:`return_drop` of the CVaR 5 % (the mean of the worst
  ``⌈0.05·n⌉`` episodes' returns) before and after. A mean hides an episode lost in 50
  (−2 %); the worst 5 % does not.

Either above the limit marks the report failing (``passed`` False), and the final policy's
provenance records it (``compress_gate``: passed, retention, both drops, the interval, the
limit, env, episodes, seed, methods), so ``rlbudget export`` can warn before a failing
policy is shipped. Every row's ``passed`` says the same of the policy after that step (its
drops from the *input*), so the first failing row shows where the return was lost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlbudget.compress import policy_bytes
from rlbudget.compress.methods import (
    METHODS,
    Agreement,
    Context,
    action_agreement,
    check_plan,
    parse_methods,
)
from rlbudget.compress.methods import MethodOptions as MethodOptions  # compress's options
from rlbudget.errors import PolicyError
from rlbudget.policy.model import Array, Policy
from rlbudget.profile.evaluate import visited_observations
from rlbudget.stats import return_drop as return_drop  # compress's measure
from rlbudget.stats import t95

SCHEMA = "rlbudget.compress/1"
FIT_SEED_OFFSET = 10_000
"""Seed offset of the states a method is fitted to (int8 calibration, neuron ranking, the
table states kept, DAgger's rollouts); returns are measured on ``seed`` itself."""
CHECK_SEED_OFFSET = 20_000
"""Seed offset of the held-out states that action agreement is measured on."""
TAIL_FRACTION = 0.05
"""The gate's tail: the worst 5 % of the episodes (CVaR 5 %)."""
DEFAULT_MAX_RETURN_DROP = 0.05
"""The gate's limit on the mean and the tail drop unless told otherwise (``compress``,
``run``'s candidates)."""


def parse_fraction(text: str, what: str = "--max-return-drop") -> float:
    """``"5%"`` or ``"0.05"`` → 0.05 (not negative, finite).

    >>> parse_fraction("5%"), parse_fraction("0.1")
    (0.05, 0.1)

    :raises PolicyError: anything else, naming ``what`` and the two accepted forms.
    """
    raw = text.strip()
    number, scale = (raw[:-1], 0.01) if raw.endswith("%") else (raw, 1.0)
    try:
        value = float(number) * scale
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise PolicyError(f"{what} '{text}': give a fraction (0.05) or a percentage (5%), "
                          "0 or more")  # fmt: skip
    if scale == 1.0 and value > 1:
        # "5" is far more likely 5 % than a 500 % drop, which turns the gate off
        raise PolicyError(
            f"{what} '{text}' is a fraction of {value:.0%}; did you mean '{raw}%'? (a "
            "fraction above 1 is written with %, e.g. 150%)"
        )
    return round(value, 12)  # 7% is 0.07, not 0.07000000000000001


# --- measures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Returns:
    """Episode returns of one policy: mean, (population) std and each episode's."""

    mean: float
    std: float
    returns: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "returns": list(self.returns)}


def cvar(returns: Sequence[float] | Array, fraction: float = TAIL_FRACTION) -> float:
    """The mean of the worst ``⌈fraction·n⌉`` returns (at least one).

    >>> cvar([500.0] * 98 + [9.0, 12.0])  # the worst 5 of 100
    304.2
    """
    worst = np.sort(np.asarray(returns, dtype=np.float64))
    k = max(1, math.ceil(fraction * len(worst)))
    return round(float(worst[:k].mean()), 12)


@dataclass(frozen=True)
class Gate:
    """A child's returns against a reference's on the same seeded episodes: the mean drop
    with its paired 95 % interval and the tail (CVaR 5 %) drop, each held to
    ``max_return_drop`` (see the module docstring)."""

    episodes: int
    max_return_drop: float
    mean_before: float
    mean_after: float
    mean_drop: float
    mean_drop_ci95: tuple[float, float] | None  # None from one episode
    tail_episodes: int
    tail_before: float
    tail_after: float
    tail_drop: float

    @property
    def passed(self) -> bool:
        """Both drops within the limit (a NaN drop never passes)."""
        return self.mean_drop <= self.max_return_drop and self.tail_drop <= self.max_return_drop

    def to_dict(self) -> dict[str, Any]:
        return {"episodes": self.episodes, "max_return_drop": self.max_return_drop,
                "mean_before": self.mean_before, "mean_after": self.mean_after,
                "mean_drop": self.mean_drop,
                "mean_drop_ci95": None if self.mean_drop_ci95 is None
                else list(self.mean_drop_ci95),
                "tail_fraction": TAIL_FRACTION, "tail_episodes": self.tail_episodes,
                "tail_before": self.tail_before, "tail_after": self.tail_after,
                "tail_drop": self.tail_drop, "passed": self.passed}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gate:
        """The gate :meth:`to_dict` wrote (``passed`` and ``tail_fraction`` follow)."""
        ci = data["mean_drop_ci95"]
        return cls(data["episodes"], data["max_return_drop"], data["mean_before"],
                   data["mean_after"], data["mean_drop"], None if ci is None else (ci[0], ci[1]),
                   data["tail_episodes"], data["tail_before"], data["tail_after"],
                   data["tail_drop"])  # fmt: skip


def paired_gate(before: Returns, after: Returns, max_return_drop: float) -> Gate:
    """The :class:`Gate` of ``after`` against ``before``, episode ``i`` of one paired with
    episode ``i`` of the other.

    >>> g = paired_gate(Returns(500.0, 0.0, (500.0,) * 100),
    ...                 Returns(490.21, 0.0, (500.0,) * 98 + (9.0, 12.0)), 0.05)
    >>> round(g.mean_drop, 4), round(g.tail_drop, 4), g.passed
    (0.0196, 0.3916, False)
    """
    b = np.asarray(before.returns, dtype=np.float64)
    a = np.asarray(after.returns, dtype=np.float64)
    if b.shape != a.shape or b.size == 0:
        raise PolicyError(f"paired gate: {b.size} and {a.size} episodes do not pair up")
    d = b - a
    scale = abs(float(b.mean())) or 1.0  # as return_drop: the absolute drop when it is 0
    mean_drop = return_drop(float(b.mean()), float(a.mean()))
    ci95 = None
    if d.size > 1:
        half = t95(d.size - 1) * float(d.std(ddof=1)) / math.sqrt(d.size)
        ci95 = ((float(d.mean()) - half) / scale, (float(d.mean()) + half) / scale)
    tail_before, tail_after = cvar(b), cvar(a)
    return Gate(int(b.size), max_return_drop, float(b.mean()), float(a.mean()), mean_drop,
                ci95, max(1, math.ceil(TAIL_FRACTION * b.size)), tail_before,
                tail_after, return_drop(tail_before, tail_after))  # fmt: skip


@dataclass(frozen=True)
class StepReport:
    """One method applied to its parent, and what it cost and saved."""

    method: str
    params: dict[str, Any]
    bytes_before: int
    bytes_after: int
    macs_before: int
    macs_after: int
    agreement: Agreement
    return_before: Returns
    return_after: Returns
    retention: float  # vs the parent
    gate: Gate  # vs the input policy

    @property
    def total_retention(self) -> float:
        """The return kept from the input's (``1 - gate.mean_drop``)."""
        return 1 - self.gate.mean_drop

    @property
    def passed(self) -> bool:
        """The mean and the tail drop from the input are within ``max_return_drop``."""
        return self.gate.passed

    @property
    def ratio(self) -> float:
        """``bytes_before / bytes_after``."""
        return self.bytes_before / self.bytes_after if self.bytes_after else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method, "params": self.params,
            "bytes_before": self.bytes_before, "bytes_after": self.bytes_after,
            "ratio": self.ratio if self.bytes_after else None,
            "macs_before": self.macs_before, "macs_after": self.macs_after,
            "agreement": self.agreement.to_dict(),
            "return_before": self.return_before.to_dict(),
            "return_after": self.return_after.to_dict(),
            "retention": self.retention, "total_retention": self.total_retention,
            "gate": self.gate.to_dict(), "passed": self.passed,
        }  # fmt: skip


@dataclass(frozen=True)
class CompressReport:
    """Every step, the final policy, and the gate: the final policy's mean and tail (CVaR
    5 %) return drops from the input policy's are at most ``max_return_drop``."""

    env_id: str
    seed: int
    episodes: int
    states: int
    max_return_drop: float
    steps: tuple[StepReport, ...]
    policy: Policy = field(repr=False)

    @property
    def bytes_before(self) -> int:
        return self.steps[0].bytes_before

    @property
    def bytes_after(self) -> int:
        return self.steps[-1].bytes_after

    @property
    def retention(self) -> float:
        """The final policy's return as a part of the input's (see :func:`return_drop`)."""
        return self.steps[-1].total_retention

    @property
    def gate(self) -> Gate:
        """The final policy against the input."""
        return self.steps[-1].gate

    @property
    def passed(self) -> bool:
        return self.steps[-1].passed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (the policy itself is not included: it is the written folder)."""
        return {
            "schema": SCHEMA, "env": self.env_id, "seed": self.seed,
            "episodes": self.episodes, "states": self.states,
            "max_return_drop": self.max_return_drop,
            "bytes_before": self.bytes_before, "bytes_after": self.bytes_after,
            "ratio": self.bytes_before / self.bytes_after if self.bytes_after else None,
            "return_before": self.steps[0].return_before.to_dict(),
            "return_after": self.steps[-1].return_after.to_dict(),
            "retention": self.retention, "gate": self.gate.to_dict(), "passed": self.passed,
            "steps": [s.to_dict() for s in self.steps],
        }  # fmt: skip


def compress(
    policy: Policy,
    methods: str | Sequence[str],
    env_id: str,
    *,
    episodes: int | None = None,
    states: int = 5000,
    seed: int = 0,
    max_return_drop: float = DEFAULT_MAX_RETURN_DROP,
    options: MethodOptions | None = None,
    gym_packages: Sequence[str] = (),
) -> CompressReport:
    """Apply ``methods`` in order and measure each step (see the module docstring).

    :param policy: the input policy.
    :param methods: method names (:data:`METHODS`), a sequence or ``"prune,int8"``.
    :param env_id: the env the policy acts in (returns, visited states, distillation).
    :param episodes: episodes per return measurement, episode ``i`` seeded ``seed + i`` for
        every policy; default :func:`~rlbudget.profile.evaluate.default_episodes` of the
        env's episode length (``run``'s rule: about 50,000 steps, at least 100 episodes).
    :param states: visited states per parent (agreement, calibration).
    :param seed: seeds the return episodes; ``seed + 10000`` the fitting states and
        distillation, ``seed + 20000`` the held-out agreement states.
    :param max_return_drop: the largest acceptable drop of the final policy's mean return,
        and of its worst 5 % of episodes' (CVaR), from the input's, as a fraction (0.05:
        5 %).
    :param options: the methods' options.
    :returns: the report; ``report.policy`` is the final policy (written even when the gate
        fails, so it can be inspected).
    :raises PolicyError: an unknown method, a method that does not apply, bad options.
    :raises EnvError: the env cannot be made or does not match the policy's spaces.
    """
    from rlbudget.profile.evaluate import env_default_episodes, evaluate, matching_env

    opts = options or MethodOptions()
    names = parse_methods(methods)
    check_plan(policy, names, opts)
    packages = tuple(gym_packages)
    if episodes is None:
        env = matching_env(policy, env_id, packages)
        try:
            episodes = env_default_episodes(env)
        finally:
            env.close()
    if episodes < 1 or states < 1:
        raise PolicyError(f"compress: episodes ({episodes}) and states ({states}) must be ≥ 1")
    seeds = range(seed, seed + episodes)

    def returns(p: Policy) -> Returns:
        r = evaluate(p, env_id, seeds=seeds, seed=seed, gym_packages=packages)
        return Returns(r.return_mean, r.return_std, r.returns)

    first = before = returns(policy)
    parent, steps = policy, []
    for i, name in enumerate(names):
        fit, held_out = (visited_observations(parent, env_id, states=states, seed=seed + offset,
                                              gym_packages=packages)
                         for offset in (FIT_SEED_OFFSET, CHECK_SEED_OFFSET))  # fmt: skip
        ctx = Context(parent, fit, env_id, seed + FIT_SEED_OFFSET, opts, names[i + 1 :],
                       packages)  # fmt: skip
        child, params = METHODS[name].run(ctx)
        after = returns(child)
        steps.append(StepReport(
            name, params, policy_bytes(parent), policy_bytes(child), parent.macs, child.macs,
            action_agreement(parent, child, held_out), before, after,
            1 - return_drop(before.mean, after.mean),
            paired_gate(first, after, max_return_drop),
        ))  # fmt: skip
        parent, before = child, after
    final_gate = steps[-1].gate
    gate = {"passed": final_gate.passed, "retention": 1 - final_gate.mean_drop,
            "mean_drop": final_gate.mean_drop,
            "mean_drop_ci95": final_gate.to_dict()["mean_drop_ci95"],
            "tail_drop": final_gate.tail_drop, "tail_fraction": TAIL_FRACTION,
            "max_return_drop": max_return_drop, "env": env_id, "episodes": episodes,
            "seed": seed, "episode_seeds": "seed + i", "methods": list(names)}  # fmt: skip
    provenance = {**parent.provenance, "compress_gate": gate}
    final = Policy(parent.observation_space, parent.action_space, parent.preprocess,
                   parent.body, parent.head, provenance)  # fmt: skip
    return CompressReport(env_id, seed, episodes, states, max_return_drop, tuple(steps), final)
