"""The compression methods :func:`~rlbudget.compress.pipeline.compress` runs by name, each
``Policy → Policy``, and the check that a list of them applies to a policy before any runs.

Methods (:data:`METHODS`, by name; each lists the body kinds it applies to):

- ``int8``: an ``mlp`` body → ``mlp_int8`` (:func:`~rlbudget.compress.quantize.quantize_int8`,
  calibrated on the states the parent visits, or on ``calibration_obs``; ``requantize``
  ``tflite``: every layer on TFLite Micro's two roundings); a float ``linear`` body → int8
  weights (:func:`~rlbudget.compress.tabular.quantize_linear`).
- ``tflite-rounding``: an ``mlp_int8`` body → the same on TFLite Micro's two roundings
  (:func:`~rlbudget.compress.quantize.tflite_rounding`), the policy ``export --format
  tflite`` matches bit for bit in TFLite Micro.
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
- ``cascade``: an ``mlp`` / ``mlp_int8`` → a ``cascade`` body: a tiny distilled int8
  student decides alone when confident, else the full policy
  (:func:`~rlbudget.compress.cascade.build`; ``widths``: the student's hidden widths).
- ``pack``: a value ``table`` → its greedy actions, ⌈log2 |A|⌉ bits each.
- ``drop-unvisited``: a ``table`` / ``packed_table`` whose states the parent never visits
  act ``default_action`` (:func:`~rlbudget.compress.tabular.drop_unvisited`).

``recover=True`` follows every ``prune`` / ``prune-neurons`` step with recovery
distillation from the unpruned parent (:func:`~rlbudget.compress.distill.recover`); the
step reports the recovered policy against the unpruned one.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rlbudget.errors import PolicyError
from rlbudget.policy.model import Array, Policy, QuantizedMLP

if TYPE_CHECKING:
    from rlbudget.budget import Budget

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
DEFAULT_SPARSITY = 0.5
DEFAULT_KEEP = 0.5
PRUNE_METHODS = ("prune", "prune-neurons")
OPTION_USERS = {
    "calibration_obs": ("--calibration", ("int8",)),
    "requantize": ("--requantize", ("int8",)),
    "sparsity": ("--sparsity", ("prune",)),
    "keep": ("--keep", ("prune-neurons",)),
    "neurons": ("--neurons", ("prune-neurons",)),
    "widths": ("--widths", ("distill", "cascade")),
    "budget": ("--budget", ("distill",)),
    "default_action": ("--default-action", ("drop-unvisited",)),
}
"""Each option of :class:`MethodOptions`: its flag and the methods that read it."""


@dataclass(frozen=True)
class MethodOptions:
    """Options of the methods (each method reads only its own; see the module docstring).

    :param calibration_obs: int8 calibration observations ``[n, *obs_shape]`` instead of
        the states the parent visits.
    :param requantize: int8 of an mlp: ``tflite`` (every layer on TFLite Micro's two
        roundings) or ``auto`` (None: one rounding where it is exact, fewer instructions
        in C); :data:`~rlbudget.compress.quantize.REQUANTIZE_RULES`.
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
    requantize: str | None = None
    sparsity: float | None = None
    keep: float | None = None
    neurons: tuple[int, ...] | None = None
    widths: tuple[int, ...] | None = None
    budget: Budget | None = None
    default_action: int | None = None
    recover: bool = False


@dataclass(frozen=True)
class Context:
    """What a method sees: the parent, its visited states, the env and the plan."""

    parent: Policy
    visited: Array
    env_id: str
    seed: int
    options: MethodOptions
    following: tuple[str, ...]  # the methods after this one
    gym_packages: tuple[str, ...]


MethodFn = Callable[[Context], tuple[Policy, dict[str, Any]]]


@dataclass(frozen=True)
class Method:
    """A named compression method: the body kinds it takes (→ the kind it leaves) and the
    function that runs it, returning the child and the parameters it used."""

    name: str
    bodies: Mapping[str, str]
    run: MethodFn


# --- the methods (their modules are imported when they run) ------------------------------


def _int8(ctx: Context) -> tuple[Policy, dict[str, Any]]:
    if ctx.parent.body.kind == "linear":
        from rlbudget.compress.tabular import quantize_linear

        return quantize_linear(ctx.parent, "int8"), {"dtype": "int8"}
    from rlbudget.compress.quantize import quantize_int8

    given = ctx.options.calibration_obs
    obs = ctx.visited if given is None else given
    params: dict[str, Any] = {"calibration": "visited states" if given is None else "given",
                              "calibration_observations": len(obs)}  # fmt: skip
    rule = ctx.options.requantize or "auto"
    if rule != "auto":
        params["requantize"] = rule
    if ctx.parent.body.kind == "cnn":  # convolutions: a weight scale per channel (TFLite's)
        from rlbudget.compress.quantize_conv import quantize_cnn

        child = quantize_cnn(ctx.parent, obs, requantize=rule)
        return child, {**params, "weight_scales": "per channel"}
    child = quantize_int8(ctx.parent, obs, requantize=rule)
    if _scales(child) != "per channel":
        # one scale per layer saves bytes; keep it unless it costs agreement (DQN CartPole)
        per_channel = quantize_int8(ctx.parent, obs, per_channel=True, requantize=rule)
        rates = [action_agreement(ctx.parent, c, ctx.visited).rate for c in (child, per_channel)]
        params["agreement_per_tensor"], params["agreement_per_channel"] = rates
        if rates[0] < rates[1] - PER_TENSOR_AGREEMENT_SLACK:
            child = per_channel
    params["weight_scales"] = _scales(child)
    if child.provenance["transforms"][-1].get("shared_table"):
        # one tanh table for all tanh layers saves a table each; the same test as above
        own = quantize_int8(ctx.parent, obs, per_channel=_scales(child) == "per channel",
                            shared_table=False, requantize=rule)  # fmt: skip
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


def _tflite_rounding(ctx: Context) -> tuple[Policy, dict[str, Any]]:
    from rlbudget.compress.quantize import tflite_rounding

    body = ctx.parent.body
    moved = [i for i, la in enumerate(getattr(body, "layers", ())) if la.requantize != "tflite"]
    return tflite_rounding(ctx.parent), {"requantize": "tflite", "layers": moved}


def _int16(ctx: Context) -> tuple[Policy, dict[str, Any]]:
    from rlbudget.compress.tabular import quantize_linear

    return quantize_linear(ctx.parent, "int16"), {"dtype": "int16"}


def _fp16(ctx: Context) -> tuple[Policy, dict[str, Any]]:
    from rlbudget.compress.fp16 import to_fp16

    return to_fp16(ctx.parent), {}


def _prune(ctx: Context) -> tuple[Policy, dict[str, Any]]:
    from rlbudget.compress.prune import prune_magnitude

    sparsity = DEFAULT_SPARSITY if ctx.options.sparsity is None else ctx.options.sparsity
    return _recovered(ctx, prune_magnitude(ctx.parent, sparsity), {"sparsity": sparsity})


def _prune_neurons(ctx: Context) -> tuple[Policy, dict[str, Any]]:
    from rlbudget.compress.prune import prune_neurons

    neurons, keep = ctx.options.neurons, ctx.options.keep
    if neurons is None and keep is None:
        keep = DEFAULT_KEEP
    child = prune_neurons(ctx.parent, ctx.visited, keep=keep, widths=neurons)
    widths = [int(layer.W.shape[1]) for layer in getattr(child.body, "layers", ())[:-1]]
    return _recovered(ctx, child, {"keep": keep, "neurons": widths})


def _recovered(
    ctx: Context, pruned: Policy, params: dict[str, Any]
) -> tuple[Policy, dict[str, Any]]:
    if not ctx.options.recover:
        return pruned, {**params, "recover": False}
    from rlbudget.compress.distill import recover

    child = recover(pruned, ctx.parent, ctx.env_id, seed=ctx.seed, gym_packages=ctx.gym_packages)
    return child, {**params, "recover": True}


def bytes_per_weight(following: Sequence[str]) -> int:
    """Bytes a student weight will take after the methods that follow distillation."""
    if "int8" in following:
        return 1
    return 2 if "fp16" in following else 4


def _distill(ctx: Context) -> tuple[Policy, dict[str, Any]]:
    from rlbudget.compress.distill import distill, widths_for_budget

    widths, source, budget = ctx.options.widths, "given", ctx.options.budget
    if widths is None:
        assert budget is not None  # check_plan: distill has widths or a budget
        per_weight = bytes_per_weight(ctx.following)
        widths = widths_for_budget(ctx.parent, budget, bytes_per_weight=per_weight)
        source = f"budget ({per_weight} byte(s) per weight)"
    child = distill(ctx.parent, ctx.env_id, widths=widths, seed=ctx.seed,
                    gym_packages=ctx.gym_packages)  # fmt: skip
    return child, {"widths": list(widths), "widths_from": source}


def _cascade(ctx: Context) -> tuple[Policy, dict[str, Any]]:
    from rlbudget.compress.cascade import build

    return build(ctx.parent, ctx.visited, ctx.env_id, seed=ctx.seed, widths=ctx.options.widths,
                 gym_packages=ctx.gym_packages)  # fmt: skip


def _pack(ctx: Context) -> tuple[Policy, dict[str, Any]]:
    from rlbudget.compress.tabular import pack_table

    return pack_table(ctx.parent), {}


def _drop_unvisited(ctx: Context) -> tuple[Policy, dict[str, Any]]:
    from rlbudget.compress.tabular import drop_unvisited

    child = drop_unvisited(ctx.parent, ctx.visited, default_action=ctx.options.default_action)
    default = child.provenance["transforms"][-1].get("default_action")
    return child, {"default_action": default, "visited_observations": len(ctx.visited)}


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("int8", {"mlp": "mlp_int8", "linear": "linear", "cnn": "cnn_int8"}, _int8),
    Method("tflite-rounding", {"mlp_int8": "mlp_int8"}, _tflite_rounding),
    Method("int16", {"linear": "linear"}, _int16),
    Method("fp16", {"mlp": "mlp"}, _fp16),
    Method("prune", {"mlp": "mlp", "mlp_int8": "mlp_int8"}, _prune),
    Method("prune-neurons", {"mlp": "mlp"}, _prune_neurons),
    Method("distill", {"mlp": "mlp", "mlp_int8": "mlp", "linear": "mlp"}, _distill),
    Method("cascade", {"mlp": "cascade", "mlp_int8": "cascade"}, _cascade),
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
        if name == "int8" and kind == "linear" and options.requantize not in (None, "auto"):
            raise PolicyError("--requantize applies to int8 of an mlp; a linear body's int8 "
                              "weights are not requantized (drop --requantize)")  # fmt: skip
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


# --- what a method keeps ------------------------------------------------------------------


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
