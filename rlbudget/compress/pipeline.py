"""Compression as a pipeline of named methods, each judged by the return it keeps.

:func:`compress` runs methods in order, each ``Policy → Policy``, and measures every step
against its parent: bytes (:func:`~rlbudget.compress.policy_bytes`) and MACs before and
after, action agreement on states the parent visits, and episode return before and after.
The command ``rlbudget compress`` is a thin wrapper around it.

Methods (:data:`METHODS`, by name; each lists the body kinds it applies to):

- ``int8``: an ``mlp`` body → ``mlp_int8`` (:func:`~rlbudget.compress.quantize.quantize_int8`,
  calibrated on the states the parent visits, or on ``calibration_obs``); a float
  ``linear`` body → int8 weights (:func:`~rlbudget.compress.tabular.quantize_linear`).
- ``int16``: a float ``linear`` body → int16 weights.
- ``fp16``: an ``mlp`` body → float16 weights (:func:`~rlbudget.compress.fp16.to_fp16`).
- ``prune``: unstructured magnitude pruning of an ``mlp`` / ``mlp_int8`` body
  (:func:`~rlbudget.compress.prune.prune_magnitude`, global threshold). Default sparsity
  0.5: half the weights is a cut small policies usually take without losing return, and
  it already pays off on disk (a float32 layer in CSR form with uint8 indices: 5 bytes per
  kept weight, 2.5 instead of 4 per weight); go further with ``recover``.
- ``prune-neurons``: structured pruning of an ``mlp``
  (:func:`~rlbudget.compress.prune.prune_neurons`), by ``keep`` (default 0.5 of every
  hidden layer) or explicit ``neurons`` per hidden layer, importance measured on the
  visited states.
- ``distill``: DAgger distillation into a fresh student ``mlp``
  (:func:`~rlbudget.compress.distill.distill`), with ``widths`` given or chosen from a
  budget (:func:`~rlbudget.compress.distill.widths_for_budget`, counting 1 byte per weight
  when an ``int8`` step follows, 2 when ``fp16`` follows, else 4).
- ``pack``: a value ``table`` → its greedy actions, ⌈log2 |A|⌉ bits each.
- ``drop-unvisited``: a ``table`` / ``packed_table`` whose states the parent never visits
  act ``default_action`` (:func:`~rlbudget.compress.tabular.drop_unvisited`).

``recover=True`` follows every ``prune`` / ``prune-neurons`` step with recovery
distillation from the unpruned parent (:func:`~rlbudget.compress.distill.recover`); the
step reports the recovered policy against the unpruned one.

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

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rlbudget.compress import policy_bytes
from rlbudget.errors import PolicyError
from rlbudget.policy.model import Array, Policy, QuantizedMLP
from rlbudget.profile.evaluate import visited_observations
from rlbudget.stats import t95

if TYPE_CHECKING:
    from rlbudget.budget import Budget

SCHEMA = "rlbudget.compress/1"
FIT_SEED_OFFSET = 10_000
"""Seed offset of the states a method is fitted to (int8 calibration, neuron ranking, the
table states kept, DAgger's rollouts); returns are measured on ``seed`` itself."""
CHECK_SEED_OFFSET = 20_000
"""Seed offset of the held-out states that action agreement is measured on."""
PER_TENSOR_AGREEMENT_SLACK = 0.01
"""``int8`` keeps one weight scale per layer (fewer bytes) unless its action agreement with
the parent on the visited states is this much below a scale per channel's; then per
channel. Measured on the Zoo's 64-64 nets (per tensor / per channel): PPO CartPole 97.6 /
97.7 %, PPO MountainCar 100 / 100 %, A2C Pendulum 95.9 / 96.0 % (per tensor kept); SAC
Pendulum 97.5 / 99.2 % (per channel). The same slack decides whether the tanh layers share
one table (:func:`~rlbudget.compress.quantize.quantize_int8`'s ``shared_table``) or keep one
each: PPO CartPole 96.3 / 97.6 % (a table each), PPO MountainCar 99.8 / 99.7 % (shared)."""
AGREEMENT_TOLERANCE = 0.05
"""Continuous actions agree when every dimension differs by at most this part of its span."""
TAIL_FRACTION = 0.05
"""The gate's tail: the worst 5 % of the episodes (CVaR 5 %)."""
DEFAULT_MAX_RETURN_DROP = 0.05
"""The gate's limit on the mean and the tail drop unless told otherwise (``compress``,
``run``'s candidates)."""
DEFAULT_SPARSITY = 0.5
DEFAULT_KEEP = 0.5
PRUNE_METHODS = ("prune", "prune-neurons")
OPTION_USERS = {
    "calibration_obs": ("--calibration", ("int8",)),
    "sparsity": ("--sparsity", ("prune",)),
    "keep": ("--keep", ("prune-neurons",)),
    "neurons": ("--neurons", ("prune-neurons",)),
    "widths": ("--widths", ("distill",)),
    "budget": ("--budget", ("distill",)),
    "default_action": ("--default-action", ("drop-unvisited",)),
}
"""Each option of :class:`MethodOptions`: its flag and the methods that read it."""


@dataclass(frozen=True)
class MethodOptions:
    """Options of the methods (each method reads only its own; see the module docstring).

    :param calibration_obs: int8 calibration observations ``[n, *obs_shape]`` instead of
        the states the parent visits.
    :param sparsity: ``prune``: the fraction of weights set to zero (None: 0.5).
    :param keep: ``prune-neurons``: the fraction of each hidden layer's neurons kept (with
        neither keep nor neurons: 0.5).
    :param neurons: ``prune-neurons``: the neurons each hidden layer keeps (instead of keep).
    :param widths: ``distill``: the student's hidden widths.
    :param budget: ``distill``: a :class:`~rlbudget.budget.Budget` to choose the widths from.
    :param default_action: ``drop-unvisited``: the action of the unvisited states.
    :param recover: follow every prune step with recovery distillation from its parent.
    """

    calibration_obs: Array | None = None
    sparsity: float | None = None
    keep: float | None = None
    neurons: tuple[int, ...] | None = None
    widths: tuple[int, ...] | None = None
    budget: Budget | None = None
    default_action: int | None = None
    recover: bool = False


@dataclass(frozen=True)
class _Context:
    """What a method sees: the parent, its visited states, the env and the plan."""

    parent: Policy
    visited: Array
    env_id: str
    seed: int
    options: MethodOptions
    following: tuple[str, ...]  # the methods after this one
    gym_packages: tuple[str, ...]


MethodFn = Callable[[_Context], tuple[Policy, dict[str, Any]]]


@dataclass(frozen=True)
class Method:
    """A named compression method: the body kinds it takes (→ the kind it leaves) and the
    function that runs it, returning the child and the parameters it used."""

    name: str
    bodies: Mapping[str, str]
    run: MethodFn


# --- the methods (their modules are imported when they run) ------------------------------


def _int8(ctx: _Context) -> tuple[Policy, dict[str, Any]]:
    if ctx.parent.body.kind == "linear":
        from rlbudget.compress.tabular import quantize_linear

        return quantize_linear(ctx.parent, "int8"), {"dtype": "int8"}
    from rlbudget.compress.quantize import quantize_int8

    given = ctx.options.calibration_obs
    obs = ctx.visited if given is None else given
    params: dict[str, Any] = {"calibration": "visited states" if given is None else "given",
                              "calibration_observations": len(obs)}  # fmt: skip
    child = quantize_int8(ctx.parent, obs)
    if _scales(child) != "per channel":
        # one scale per layer saves bytes; keep it unless it costs agreement (DQN CartPole)
        per_channel = quantize_int8(ctx.parent, obs, per_channel=True)
        rates = [action_agreement(ctx.parent, c, ctx.visited).rate for c in (child, per_channel)]
        params["agreement_per_tensor"], params["agreement_per_channel"] = rates
        if rates[0] < rates[1] - PER_TENSOR_AGREEMENT_SLACK:
            child = per_channel
    params["weight_scales"] = _scales(child)
    if child.provenance["transforms"][-1].get("shared_table"):
        # one tanh table for all tanh layers saves 128 B each; the same test as above
        own = quantize_int8(ctx.parent, obs, per_channel=_scales(child) == "per channel",
                            shared_table=False)  # fmt: skip
        rates = [action_agreement(ctx.parent, c, ctx.visited).rate for c in (child, own)]
        params["agreement_shared_table"], params["agreement_own_tables"] = rates
        keep = rates[0] >= rates[1] - PER_TENSOR_AGREEMENT_SLACK
        child, params["tanh_tables"] = (child, "shared") if keep else (own, "per layer")
    return child, params


def _scales(policy: Policy) -> str:
    """``per channel`` when every int8 layer has a weight scale per output, else ``per tensor``
    (one for some layer)."""
    body = policy.body
    layers = body.layers if isinstance(body, QuantizedMLP) else ()
    return "per tensor" if any(la.w_scale.size < la.W.shape[1] for la in layers) else "per channel"


def _int16(ctx: _Context) -> tuple[Policy, dict[str, Any]]:
    from rlbudget.compress.tabular import quantize_linear

    return quantize_linear(ctx.parent, "int16"), {"dtype": "int16"}


def _fp16(ctx: _Context) -> tuple[Policy, dict[str, Any]]:
    from rlbudget.compress.fp16 import to_fp16

    return to_fp16(ctx.parent), {}


def _prune(ctx: _Context) -> tuple[Policy, dict[str, Any]]:
    from rlbudget.compress.prune import prune_magnitude

    sparsity = DEFAULT_SPARSITY if ctx.options.sparsity is None else ctx.options.sparsity
    return _recovered(ctx, prune_magnitude(ctx.parent, sparsity), {"sparsity": sparsity})


def _prune_neurons(ctx: _Context) -> tuple[Policy, dict[str, Any]]:
    from rlbudget.compress.prune import prune_neurons

    neurons, keep = ctx.options.neurons, ctx.options.keep
    if neurons is None and keep is None:
        keep = DEFAULT_KEEP
    child = prune_neurons(ctx.parent, ctx.visited, keep=keep, widths=neurons)
    widths = [int(layer.W.shape[1]) for layer in getattr(child.body, "layers", ())[:-1]]
    return _recovered(ctx, child, {"keep": keep, "neurons": widths})


def _recovered(
    ctx: _Context, pruned: Policy, params: dict[str, Any]
) -> tuple[Policy, dict[str, Any]]:
    if not ctx.options.recover:
        return pruned, {**params, "recover": False}
    from rlbudget.compress.distill import recover

    child = recover(pruned, ctx.parent, ctx.env_id, seed=ctx.seed, gym_packages=ctx.gym_packages)
    return child, {**params, "recover": True}


def _bytes_per_weight(following: Sequence[str]) -> int:
    """Bytes a student weight will take after the methods that follow distillation."""
    if "int8" in following:
        return 1
    return 2 if "fp16" in following else 4


def _distill(ctx: _Context) -> tuple[Policy, dict[str, Any]]:
    from rlbudget.compress.distill import distill, widths_for_budget

    widths, source, budget = ctx.options.widths, "given", ctx.options.budget
    if widths is None:
        assert budget is not None  # check_plan: distill has widths or a budget
        per_weight = _bytes_per_weight(ctx.following)
        widths = widths_for_budget(ctx.parent, budget, bytes_per_weight=per_weight)
        source = f"budget ({per_weight} byte(s) per weight)"
    child = distill(ctx.parent, ctx.env_id, widths=widths, seed=ctx.seed,
                    gym_packages=ctx.gym_packages)  # fmt: skip
    return child, {"widths": list(widths), "widths_from": source}


def _pack(ctx: _Context) -> tuple[Policy, dict[str, Any]]:
    from rlbudget.compress.tabular import pack_table

    return pack_table(ctx.parent), {}


def _drop_unvisited(ctx: _Context) -> tuple[Policy, dict[str, Any]]:
    from rlbudget.compress.tabular import drop_unvisited

    child = drop_unvisited(ctx.parent, ctx.visited, default_action=ctx.options.default_action)
    default = child.provenance["transforms"][-1].get("default_action")
    return child, {"default_action": default, "visited_observations": len(ctx.visited)}


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("int8", {"mlp": "mlp_int8", "linear": "linear"}, _int8),
    Method("int16", {"linear": "linear"}, _int16),
    Method("fp16", {"mlp": "mlp"}, _fp16),
    Method("prune", {"mlp": "mlp", "mlp_int8": "mlp_int8"}, _prune),
    Method("prune-neurons", {"mlp": "mlp"}, _prune_neurons),
    Method("distill", {"mlp": "mlp", "mlp_int8": "mlp", "linear": "mlp"}, _distill),
    Method("pack", {"table": "packed_table"}, _pack),
    Method("drop-unvisited", {"table": "packed_table", "packed_table": "packed_table"},
           _drop_unvisited),
)}  # fmt: skip
"""The methods by the name ``--method`` takes."""


def parse_methods(methods: str | Sequence[str]) -> tuple[str, ...]:
    """``"prune,int8"`` (or a sequence of names) → the method names, checked.

    :raises PolicyError: an empty list, or an unknown name (with the closest known one).
    """
    items = methods.split(",") if isinstance(methods, str) else list(methods)
    names = tuple(m.strip() for m in items if m.strip())
    if not names:
        raise PolicyError(f"no compression method given; choose from {', '.join(METHODS)}")
    for name in names:
        if name not in METHODS:
            close = difflib.get_close_matches(name, METHODS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise PolicyError(f"unknown method '{name}'{hint} (methods: {', '.join(METHODS)})")
    return names


def check_plan(policy: Policy, names: Sequence[str], options: MethodOptions) -> None:
    """Check, before anything runs, that each method applies to the body it will get and
    that the options it needs are there.

    :raises PolicyError: a method that does not apply (naming the body kind and the
        methods that do), ``recover`` without a prune step or after int8, ``distill``
        without widths or a budget, an option that no method given reads (a likely slip:
        ``--sparsity`` with ``prune-neurons``).
    """
    for attr, (flag, users) in OPTION_USERS.items():
        if getattr(options, attr) is not None and not any(n in users for n in names):
            raise PolicyError(
                f"{flag} is an option of {' and '.join(users)}, which is not among the "
                f"methods given ({', '.join(names)})"
            )
    kind, made_by = policy.body.kind, ""
    for name in names:
        method = METHODS[name]
        if kind not in method.bodies:
            whose = f"this policy's {kind} body"
            if made_by:
                whose = f"the {kind} body left by '{made_by}'"
            fits = [m.name for m in METHODS.values() if kind in m.bodies]
            raise PolicyError(
                f"method '{name}' does not apply to {whose}; methods for {kind} bodies: "
                f"{', '.join(fits) or 'none'}"
            )
        if name in PRUNE_METHODS and options.recover and kind != "mlp":
            raise PolicyError(
                f"--recover fine-tunes a float mlp, but '{name}' gets an {kind} body here; "
                "prune before int8 (--method prune,int8 --recover)"
            )
        if name == "distill" and options.widths is not None and options.budget is not None:
            raise PolicyError("distill takes --widths or --budget (widths chosen to fit it), "
                              "not both")  # fmt: skip
        if name == "distill" and options.widths is None and options.budget is None:
            raise PolicyError("distill needs the student's hidden widths: --widths 8,8 or "
                              "--budget FILE (widths chosen to fit it)")  # fmt: skip
        kind, made_by = method.bodies[kind], name
    if options.recover and not any(n in PRUNE_METHODS for n in names):
        raise PolicyError(
            "--recover applies to prune and prune-neurons; the methods given are "
            + ", ".join(names)
        )


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
class Agreement:
    """How often a child acts as its parent on ``states`` states the parent visits.

    ``rate``: the fraction of states where the actions agree (discrete: identical;
    continuous: within ``tolerance`` in every dimension). ``max_abs_diff`` /
    ``mean_abs_diff``: continuous only, over all states and dimensions.
    """

    states: int
    rate: float
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    tolerance: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"states": self.states, "rate": self.rate, "max_abs_diff": self.max_abs_diff,
                "mean_abs_diff": self.mean_abs_diff,
                "tolerance": None if self.tolerance is None else list(self.tolerance)}  # fmt: skip


def action_agreement(parent: Policy, child: Policy, obs: Array) -> Agreement:
    """Agreement of ``child`` with ``parent`` on the observations ``obs`` (see
    :class:`Agreement`; the tolerance is :data:`AGREEMENT_TOLERANCE` of the action span)."""
    a, b = np.asarray(parent.act(obs)), np.asarray(child.act(obs))
    if parent.action_space.kind == "discrete":
        return Agreement(len(obs), float(np.mean(a == b)))
    a64 = a.astype(np.float64).reshape(len(obs), -1)
    b64 = b.astype(np.float64).reshape(len(obs), -1)
    space = parent.action_space
    low = np.asarray(space.low if space.low is not None else [-np.inf] * a64.shape[1], np.float64)
    high = np.asarray(space.high if space.high is not None else [np.inf] * a64.shape[1], np.float64)
    span = np.where(np.isfinite(high - low), high - low, np.ptp(a64, axis=0))
    tolerance = AGREEMENT_TOLERANCE * span
    diff = np.abs(a64 - b64)
    ok = np.all(diff <= tolerance, axis=1)
    return Agreement(len(obs), float(np.mean(ok)), float(diff.max()), float(diff.mean()),
                     tuple(float(t) for t in tolerance))  # fmt: skip


@dataclass(frozen=True)
class Returns:
    """Episode returns of one policy: mean, (population) std and each episode's."""

    mean: float
    std: float
    returns: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "returns": list(self.returns)}


def return_drop(before: float, after: float) -> float:
    """``(before - after) / |before|``; ``before - after`` when ``before`` is 0.

    >>> return_drop(200.0, 190.0), return_drop(-150.0, -165.0), return_drop(0.0, -1.0)
    (0.05, 0.1, 1.0)
    """
    return (before - after) / abs(before) if before != 0 else before - after


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
        ctx = _Context(parent, fit, env_id, seed + FIT_SEED_OFFSET, opts, names[i + 1 :],
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
