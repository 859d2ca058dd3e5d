"""One vocabulary of limits: what a budget limits, one check of a figure, one verdict rule.

Every stage that holds a figure against a budget speaks through this module: ``plan``
(estimates of each option), ``profile`` (measurements of a deployed policy), ``distill``
(sizing a student), ``run`` and ``sweep`` (the closest candidate and what would fit).

- :data:`LIMITS`: each limit's name, unit, how to read it from a
  :class:`~rlbudget.budget.Budget`, and whether it is a *cost* (``figure × (1 + margin)
  ≤ limit``) or a *floor* (``figure ≥ limit``, no margin: the return);
- :class:`Check` and :func:`check` (or :func:`check_budget`): one figure against one
  limit, saying where the figure came from (``measured``, ``estimated``, ``emulated``)
  and how;
- :func:`binding`: the limit a set of checks fails by most, :func:`closeness` to compare
  candidates, and :func:`advice`: what would fit, in words;
- :func:`format_figure`: a figure in its unit, for people;
- :func:`target_return`: ``task.min_return`` of the budget's own env, else the env's
  ``reward_threshold``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

from rlbudget import units
from rlbudget.budget import Budget, Task

PASS, FAIL, NOT_CHECKED = "PASS", "FAIL", "NOT CHECKED"
SOURCES = ("measured", "estimated", "emulated")


@dataclass(frozen=True)
class Limit:
    """One thing a budget can limit."""

    name: str
    unit: str  # B, s, J, steps, return
    floor: bool  # True: the figure must reach the limit (no margin); False: a cost
    read: Callable[[Budget], float | None]
    text: str


LIMITS: dict[str, Limit] = {
    lim.name: lim
    for lim in (
        Limit("inference.ram", "B", False, lambda b: b.inference.ram_bytes,
              "working memory of one deployed policy"),
        Limit("inference.flash", "B", False, lambda b: b.inference.flash_bytes,
              "storage for the policy's weights and code"),
        Limit("inference.latency", "s", False, lambda b: b.inference.latency_s,
              "time per decision on the device"),
        Limit("inference.energy", "J", False, lambda b: b.inference.energy_j,
              "energy per decision on the device"),
        Limit("device.ram", "B", False, lambda b: b.device.sram_bytes,
              "the device's own SRAM/RAM"),
        Limit("device.flash", "B", False, lambda b: b.device.flash_bytes,
              "the device's own flash"),
        Limit("training.time", "s", False, lambda b: b.training.time_s,
              "wall time of training on the host"),
        Limit("training.env_steps", "steps", False, lambda b: b.training.env_steps,
              "env steps of training"),
        Limit("training.ram", "B", False, lambda b: b.training.ram_bytes,
              "peak memory of the training process"),
        Limit("training.energy", "J", False, lambda b: b.training.energy_j,
              "energy of training on the host"),
        Limit("task.min_return", "return", True, lambda b: b.task.min_return,
              "mean episode return the policy must reach"),
    )
}  # fmt: skip
MEMORY_LIMITS = ("inference.flash", "inference.ram", "device.flash", "device.ram")


@dataclass(frozen=True)
class Check:
    """One figure against one limit. ``with_margin`` is ``figure × (1 + margin)`` for a
    cost, the figure itself for a floor. ``headroom``: ``1 - with_margin / limit`` for a
    cost (negative when over), ``(figure - limit) / |limit|`` for a floor; None when not
    checked (or when there is no ratio: a floor of 0, a non-finite return)."""

    limit: str
    unit: str
    figure: float | None
    source: str  # measured, estimated or emulated
    how: str
    with_margin: float | None
    limit_value: float | None
    status: str  # PASS, FAIL or NOT CHECKED
    headroom: float | None

    @property
    def floor(self) -> bool:
        return self.unit == "return"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        """The inverse of :meth:`to_dict` (a profile.json's or plan's check)."""
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def check(
    limit: str,
    figure: float | None,
    limit_value: float | None,
    margin: float,
    *,
    source: str = "estimated",
    how: str = "",
) -> Check:
    """``figure`` against ``limit_value``: a cost passes when ``figure × (1 + margin) ≤
    limit_value``; a floor (the return) when ``figure ≥ limit_value`` (no margin; a
    NaN/inf figure always fails). No limit (or no figure): NOT CHECKED.

    >>> [check("inference.ram", ram, 1000, 0.25).status for ram in (800, 801)]
    ['PASS', 'FAIL']
    """
    unit = LIMITS[limit].unit
    if LIMITS[limit].floor:
        return _floor(limit, unit, figure, limit_value, source, how)
    if figure is None:
        return Check(limit, unit, None, source, how, None, limit_value, NOT_CHECKED, None)
    with_margin = figure * (1 + margin)
    if limit_value is None:
        return Check(limit, unit, figure, source, how, with_margin, None, NOT_CHECKED, None)
    status = PASS if with_margin <= limit_value else FAIL
    if limit_value > 0:
        headroom = 1 - with_margin / limit_value
    else:  # a zero limit: any use is over it
        headroom = -1.0 if with_margin > 0 else 0.0
    return Check(limit, unit, figure, source, how, with_margin, limit_value, status, headroom)


def _floor(limit: str, unit: str, figure: float | None, target: float | None, source: str,
           how: str) -> Check:  # fmt: skip
    if figure is not None and not math.isfinite(figure):  # never a PASS, target or not
        return Check(limit, unit, figure, source, f"{how}; the return is not finite", figure,
                     target, FAIL, None)  # fmt: skip
    if figure is None or target is None:
        return Check(limit, unit, figure, source, how, figure, target, NOT_CHECKED, None)
    status = PASS if figure >= target else FAIL
    headroom = (figure - target) / abs(target) if target else None  # no ratio to a 0 target
    return Check(limit, unit, figure, source, how, figure, target, status, headroom)


def check_budget(limit: str, figure: float | None, budget: Budget, *,
                 source: str = "estimated", how: str = "") -> Check:  # fmt: skip
    """:func:`check` against the limit as ``budget`` sets it (:data:`LIMITS`), with its margin."""
    return check(limit, figure, LIMITS[limit].read(budget), budget.margin, source=source,
                 how=how)  # fmt: skip


def binding(checks: Iterable[Check]) -> Check | None:
    """The failing cost furthest over its limit (the lowest headroom, a ratio); the return
    only when no cost fails (its headroom is not comparable with theirs); None when
    nothing fails."""
    failing = [c for c in checks if c.status == FAIL]
    costs = [c for c in failing if not c.floor]
    if costs:
        return min(costs, key=lambda c: c.headroom if c.headroom is not None else 0.0)
    return failing[0] if failing else None


def closeness(checks: Iterable[Check]) -> tuple[float, float]:
    """How near a candidate is to fitting (larger is nearer), to choose the closest of
    several that fail: its binding cost's headroom first (0 when no cost fails), then
    its return."""
    checks = list(checks)
    costs = [c.headroom for c in checks
             if c.status == FAIL and not c.floor and c.headroom is not None]  # fmt: skip
    returns = [c.figure for c in checks if c.floor and c.figure is not None]
    return (min(costs) if costs else 0.0, returns[0] if returns else -math.inf)


def advice(c: Check, margin: float) -> str:
    """What would fit, in words, for a failing check (the binding one)."""
    need, have = c.with_margin or 0.0, c.limit_value or 0.0
    head = f"binding limit {c.limit}"
    if c.unit == "B":
        what = "RAM" if c.limit.endswith("ram") else "flash"
        return (f"{head}: needs {units.format_bytes(round(need - have))} more {what} "
                f"({units.format_bytes(round(need))} with the {margin:.0%} margin, limit "
                f"{units.format_bytes(round(have))}), or a device with ≥ "
                f"{units.format_bytes(round(need))} of {what}")  # fmt: skip
    if c.unit == "s":
        return (f"{head}: the decision takes {need * 1e6:.3g} µs with the margin, limit "
                f"{have * 1e6:.3g} µs: a device ≥ {need / have:.2g}× faster, or a smaller "
                "network")  # fmt: skip
    if c.unit == "J":
        return (
            f"{head}: {need * 1e6:.3g} µJ per decision with the margin, limit "
            f"{have * 1e6:.3g} µJ: a device ≥ {need / have:.2g}× more efficient"
        )
    if c.unit == "return":
        return (f"{head}: the best candidate returns {need:.4g}, target {have:.4g}: train "
                "longer (training.env_steps / training.time) or try another plan option "
                "(--option N)")  # fmt: skip
    return f"{head}: {need:.4g} with the margin, limit {have:.4g}"


def format_figure(value: float | None, unit: str, digits: int = 3) -> str:
    """One figure in its unit, for people: ``7.03 KiB``, ``82.3 µs``, ``19.8 µJ``,
    ``200k`` (steps), ``487.20`` (a return); ``—`` for none.

    >>> format_figure(7200, "B"), format_figure(8.23e-5, "s"), format_figure(2e5, "steps")
    ('7.03 KiB', '82.3 µs', '200k')
    """
    if value is None:
        return "—"
    if unit == "B":
        return units.format_bytes(round(value), digits)
    if unit == "s":
        return units.format_time(value, digits)
    if unit == "J":
        return units.format_energy(value, digits)
    if unit == "steps":
        return units.format_count(value, digits)
    if unit == "return":
        return f"{value:.2f}"
    return f"{value:g}"


@dataclass(frozen=True)
class Target:
    """The return a policy must reach, and where that figure comes from."""

    value: float | None
    source: str  # "task.min_return", "<env>'s reward_threshold" or "none"
    note: str | None = None  # why the budget's min_return does not apply, if it does not


def target_return(task: Task | None, env_id: str, reward_threshold: float | None) -> Target:
    """``task.min_return`` when the budget's task is ``env_id`` (or names no env), else
    the env's ``reward_threshold``, else none.

    >>> target_return(Task("CartPole-v1", 400.0), "CartPole-v1", 475.0).value
    400.0
    >>> target_return(Task("Acrobot-v1", -90.0), "CartPole-v1", 475.0).source
    "CartPole-v1's reward_threshold"
    """
    note = None
    if task is not None and task.env_id not in (None, env_id):
        note = (f"the budget's task is {task.env_id} but the policy acts in {env_id}: its "
                "min_return does not apply")  # fmt: skip
    elif task is not None and task.min_return is not None:
        return Target(task.min_return, "task.min_return")
    if reward_threshold is not None:
        return Target(reward_threshold, f"{env_id}'s reward_threshold", note)
    return Target(None, "none", note)
