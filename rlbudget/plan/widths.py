"""Which hidden width an MLP option trains: the device's limits *and* the training budget's.

For each MLP algorithm the planner estimates the tuned shape and narrower ones
(:func:`shapes`) on the target and on the training host, then keeps one
(:func:`choose`). Two figures per shape come from here:

- **Env steps to the target** (:func:`shapes`): the tuned hyperparameters' ``n_timesteps``
  × the width's factor from ``data/widths.yaml`` (``steps``: measured steps to the target at
  that width ÷ at the tuned width, with its source). A width with a factor is *known*; a
  narrower one without is tried only as a last resort, assumed to need the tuned steps.
- **Seconds per env step** (:func:`step_seconds`), updates included. Calibrated
  (``rlbudget calibrate``, :mod:`rlbudget.plan.calibrate`): the host's measured seconds
  per step at 16…256 units, interpolated linearly in the network's MACs. Not calibrated:
  the **width law** — ``(1 / host_steps_per_s) × (fixed + (1 − fixed) × MACs(shape) /
  MACs(net))``, where algorithms.yaml's ``host_steps_per_s`` was measured at shape ``net``
  and ``fixed`` is the share of a step that no width removes (env, Python, optimizer
  calls), both in ``data/widths.yaml`` with their sources. MACs are the deployed actor's
  (obs → hidden → action); the critics' and the backward pass scale with the same hidden
  products.

**The choice** (:func:`choose`): among the known shapes that fit every limit with the
margin, the cheapest to train (least estimated training time; a tie goes to the wider);
if none fits, the widest unknown narrower shape that does; if nothing fits, the tuned
shape (its failing limit is what ``plan`` reports). The ``[width]`` reason names the limit
that ruled out each wider or cheaper shape: device RAM/flash, latency/energy, or training
time/steps.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from itertools import pairwise
from typing import Any

import yaml

from rlbudget import costs, units
from rlbudget.envs import EnvSpec
from rlbudget.hyperparams import AlgorithmInfo, get_hyperparams
from rlbudget.limits import Check
from rlbudget.plan.calibrate import Calibration

# Raw CartPole-v1 step ≈52k steps/s (measured on a 2-core x86 host); the algorithms'
# throughputs (measured or calibrated) are expressed with one such step included.
REFERENCE_STEP_S = 1 / 52_000
# Hidden widths tried below the tuned shape (each hidden layer that wide).
NARROW_WIDTHS = (256, 64, 32, 16, 8)


@functools.cache
def width_data() -> dict[str, Any]:
    """``data/widths.yaml``: the width law per algorithm (``law``) and the steps to the
    target per width (``steps``), each with its source."""
    path = resources.files("rlbudget") / "data" / "widths.yaml"
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return doc


def dense_macs(inputs: int, hidden: Sequence[int], outputs: int) -> int:
    """Multiply-accumulates of a dense MLP ``inputs → hidden… → outputs``."""
    return sum(a * b for a, b in pairwise([inputs, *hidden, outputs]))


@dataclass(frozen=True)
class Shape:
    """A hidden shape to try: its env steps relative to the tuned shape's, and whether a
    measurement says so (``known``) or it is assumed."""

    hidden: tuple[int, ...]
    steps_factor: float
    known: bool
    source: str

    @property
    def name(self) -> str:
        return "-".join(map(str, self.hidden))


def shapes(algorithm: str, env_id: str, tuned: Sequence[int]) -> list[Shape]:
    """The tuned shape, then every narrower width of :data:`NARROW_WIDTHS` (as many layers
    as the tuned shape), known ones (a steps factor in ``data/widths.yaml``) first."""
    entry = width_data().get("steps", {}).get(algorithm, {}).get(env_id) or {}
    factors = {int(w): float(f) for w, f in (entry.get("widths") or {}).items()}
    source = str(entry.get("source", ""))
    hidden = tuple(int(w) for w in tuned)
    out = [Shape(hidden, 1.0, True, "the tuned shape")]
    for w in NARROW_WIDTHS:
        if w >= max(hidden):
            continue
        narrow = (w,) * len(hidden)
        if w in factors:
            out.append(Shape(narrow, factors[w], True, source))
        else:
            out.append(Shape(narrow, 1.0, False, "assumed: the tuned shape's steps"))
    return sorted(out, key=lambda s: not s.known)  # stable: known first, widest first


@dataclass(frozen=True)
class StepCost:
    """Seconds of training per env step at one shape (a CartPole-cost env step included)
    and how the figure was obtained."""

    seconds: float
    how: str


def step_seconds(
    info: AlgorithmInfo, hidden: Sequence[int], macs: int, cal: Calibration | None
) -> StepCost:
    """Training seconds per env step of ``info`` at ``hidden`` (``macs``: its actor's MACs on
    the planned env), calibrated when ``cal`` has the algorithm, else by the width law."""
    shape = "-".join(map(str, hidden))
    if cal is not None and info.id in cal.steps_per_s:
        rates = sorted(cal.steps_per_s[info.id].items())
        xs = [dense_macs(cal.observation_dim, (w, w), cal.action_dim) for w, _ in rates]
        ys = [1.0 / r - cal.env_step_s for _, r in rates]
        seconds = max(_interpolate(xs, ys, macs), 0.0) + REFERENCE_STEP_S
        return StepCost(seconds, f"calibrated on this host ({cal.measured[:10]}): "
                                 f"{_rate(seconds)} at {shape}")  # fmt: skip
    law = width_data().get("law", {}).get(info.id)
    base = 1.0 / info.host_steps_per_s
    if law is None:  # no width law for this algorithm: its one figure at every width
        return StepCost(base, f"not calibrated: algorithms.yaml's {_rate(base)}")
    net = [int(w) for w in law["net"]]
    fixed = float(law["fixed"])
    ratio = macs / max(dense_macs(int(law["observation_dim"]), net, int(law["action_dim"])), 1)
    seconds = base * (fixed + (1.0 - fixed) * ratio)
    return StepCost(seconds, f"not calibrated: algorithms.yaml's {_rate(base)} at "
                             f"{'-'.join(map(str, net))} scaled by the width law to "
                             f"{_rate(seconds)} at {shape}")  # fmt: skip


def quickest(info: AlgorithmInfo, env: EnvSpec, cal: Calibration | None) -> tuple[int, float]:
    """(env steps, seconds per step) of ``info``'s cheapest training on ``env`` before any
    limit: its measured width (or tuned shape) with the least steps × seconds per step; a
    table or linear policy: its steps at algorithms.yaml's throughput."""
    hp = get_hyperparams(info.id, env.env_id)
    steps = int(hp.n_timesteps / max(info.sample_efficiency, 1.0))
    if info.family in ("tabular", "linear") or info.tabular:
        return steps, 1.0 / info.host_steps_per_s
    tuned = [int(w) for w in hp.params.get("net_arch", [64, 64])]
    options = []
    for s in shapes(info.id, env.env_id, tuned):
        if s.known:
            macs = costs.mlp_body(env.observation, env.action, s.hidden, "relu", "fp32", True).macs
            options.append((int(steps * s.steps_factor), step_seconds(info, s.hidden, macs, cal)))
    n, cost = min(options, key=lambda o: o[0] * o[1].seconds)
    return n, cost.seconds


def _rate(seconds: float) -> str:
    return f"≈{units.format_count(round(1.0 / seconds))} steps/s"


def _interpolate(xs: list[int], ys: list[float], x: float) -> float:
    """Piecewise-linear through (xs, ys) (xs increasing); flat below the first point (the
    per-step overhead), the last segment's slope above the last."""
    if len(xs) == 1 or x <= xs[0]:
        return ys[0]
    i = min(max(bisect.bisect_left(xs, x), 1), len(xs) - 1)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0) if x1 != x0 else y1


@dataclass(frozen=True)
class Tried:
    """One shape as estimated: its checks and training time."""

    shape: Shape
    checks: tuple[Check, ...]
    train_time_s: float

    @property
    def fits(self) -> bool:
        return all(c.status != "FAIL" for c in self.checks)

    @property
    def failing(self) -> list[str]:
        return [c.limit for c in self.checks if c.status == "FAIL"]


def choose(tried: Sequence[Tried]) -> tuple[int, str]:
    """The index of the shape to keep (see the module docstring) and the ``[width]``
    sentence that says why, naming the limits that ruled out the shapes preferred to it
    (the tuned one, and any measured width cheaper to train)."""
    if len(tried) == 1:
        return 0, ""
    known = [i for i, t in enumerate(tried) if t.shape.known and t.fits]
    unknown = [i for i, t in enumerate(tried) if not t.shape.known and t.fits]
    if known:
        pick = min(known, key=lambda i: (tried[i].train_time_s, -max(tried[i].shape.hidden)))
    else:
        pick = unknown[0] if unknown else 0
    chosen = tried[pick]
    if not chosen.fits:
        over = "; ".join(f"{t.shape.name} is over {', '.join(t.failing)}" for t in tried)
        return pick, f"[width] no width fits: {over}."

    def preferred(i: int, t: Tried) -> bool:
        """Would have been kept before the chosen shape, had it fitted."""
        if i == pick:
            return False
        cheaper = not chosen.shape.known or t.train_time_s < chosen.train_time_s
        return i == 0 or (t.shape.known and cheaper)

    blocked = [t for i, t in enumerate(tried) if preferred(i, t) and not t.fits]
    if pick == 0:
        steps = "the tuned shape's steps"
    elif chosen.shape.known:
        steps = f"×{chosen.shape.steps_factor:g} the tuned shape's steps to the target, measured"
    else:
        steps = "steps assumed as the tuned shape's"
    how = f"≈{units.format_time(chosen.train_time_s)} of training, {steps}"
    if not blocked:
        if pick == 0 and not any(t.shape.known for t in tried[1:]):
            return pick, f"[width] {chosen.shape.name}, the tuned shape, fits every limit ({how})."
        tuned = tried[0].shape.name
        what = "the tuned shape" if pick == 0 else f"cheaper to train than the tuned {tuned}"
        return pick, (f"[width] {chosen.shape.name}, {what}: the cheapest measured width "
                      f"that fits every limit with the margin ({how}).")  # fmt: skip
    limits = sorted({lim for t in blocked for lim in t.failing})
    over = "; ".join(f"{t.shape.name}{' (tuned)' if t is tried[0] else ''} is over "
                     f"{', '.join(t.failing)}" for t in blocked)  # fmt: skip
    return pick, (f"[width] {chosen.shape.name}, chosen by {', '.join(limits)}: {over}; "
                  f"{chosen.shape.name} fits every limit with the margin ({how}).")  # fmt: skip
