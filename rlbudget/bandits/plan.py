"""Planning a contextual bandit (``task.kind: bandit``, or an env whose episodes are one
step long): one option per bandit algorithm that fits the task's source of decisions,
each the deployed linear policy (argmax over per-arm scores) costed by
:mod:`rlbudget.costs` (bytes, MACs, latency and energy per decision on the device), checked
against the budget like every plan option, and ranked by the rule ``bandit``.

With ``inference.learn: true`` the device keeps learning: an online algorithm's state
lives in RAM (per arm ``A⁻¹`` (d+1)², ``b`` and ``θ`` d+1 floats; Thompson sampling also a
Cholesky factor and the normal draws), and each decision also pays the exploration score
and one update (:func:`learning_cost`), so latency and energy are per decision *and*
update. Offline algorithms (IPS, DR) learn on the host only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from rlbudget import costs, units
from rlbudget.bandits.learners import algorithms
from rlbudget.budget import Budget
from rlbudget.devices import Device, Range
from rlbudget.envs import EnvSpec, SpaceSpec
from rlbudget.errors import PlanError
from rlbudget.limits import LIMITS, check_budget
from rlbudget.plan.model import Estimates, Option, Plan
from rlbudget.plan.rules import facts, rule

# Preference among the bandit algorithms (higher first): the cumulative regret on the
# synthetic benchmark (benchmarks/bandits.py: LinUCB < Thompson < softmax < ε-greedy) and,
# offline, DR's lower variance than IPS (Dudík et al. 2011).
PREFERENCE = {"linucb": 4.0, "thompson": 3.0, "softmax": 2.0, "epsilon-greedy": 1.0,
              "dr": 4.0, "ips": 3.0}  # fmt: skip
FLOAT_BYTES = 4  # the device learns in float32


@dataclass(frozen=True)
class Learning:
    """What learning on the device adds to one decision: state bytes in RAM, MACs for the
    exploration score and the update, square roots / exponentials."""

    ram_bytes: int
    macs: int
    nonlinear: int


def learning_cost(algo: str, features: int, arms: int) -> Learning:
    """The on-device learner of ``algo`` with ``features`` context values and ``arms`` arms,
    counted from :mod:`rlbudget.bandits.learners` and
    :meth:`~rlbudget.bandits.ridge.ArmRidge.update`: the update on the chosen arm is
    ``u = A⁻¹x`` ((d+1)² MACs), ``A⁻¹ −= u uᵀ / (1 + xᵀu)`` ((d+1)² + d+1) and
    ``θ = A⁻¹ b`` ((d+1)²); the score is LinUCB's ``xᵀA⁻¹x`` per arm (K(d+1)² + K(d+1), K
    square roots), Thompson's Cholesky factor per arm (K(d+1)³/6) and sampled θ (K(d+1)²),
    softmax's K exponentials."""
    m = features + 1
    state = arms * (m * m + 2 * m)  # A⁻¹, b, θ per arm
    update = 3 * m * m + m
    score, nonlinear, scratch = 0, 0, m  # u
    if algo == "linucb":
        score, nonlinear = arms * (m * m + m), arms
    elif algo == "thompson":
        score, nonlinear = arms * (m**3 // 6 + m * m), arms * m
        scratch += m * m + arms * m  # a Cholesky factor, the draws
    elif algo == "softmax":
        nonlinear = arms
    return Learning(FLOAT_BYTES * (state + scratch) + 4, update + score, nonlinear)


def logged_spec(path: str, context: tuple[str, ...] | None) -> tuple[EnvSpec, int]:
    """An EnvSpec for logged data (context width and bounds, action count) and its rows."""
    from rlbudget.bandits.data import read_logged

    logged = read_logged(path, context=context)
    X = logged.contexts
    obs = SpaceSpec("box", (logged.features,), None, tuple(map(float, X.min(axis=0))),
                    tuple(map(float, X.max(axis=0))), "float32")  # fmt: skip
    act = SpaceSpec("discrete", (), logged.n_actions, None, None, "int64")
    return EnvSpec(f"logged data {path}", obs, act, None, 1, None), len(logged)


def bandit_plan(budget: Budget, env: EnvSpec | None) -> Plan:
    """Rank the bandit algorithms for ``budget`` (``env``: the task's one-step env, if any).

    :raises PlanError: neither a one-step env nor logged data, or spaces a linear bandit
        cannot act in.
    """
    task = budget.task
    rows = None
    if task.data is not None:
        spec, rows = logged_spec(task.data, task.context)
        env = env or spec
    if env is None:
        raise PlanError(f"{budget.source or 'budget'}: a bandit task needs task.env (a one-step "
                        "env) or task.data (logged decisions)")  # fmt: skip
    obs, act = env.observation, env.action
    if obs.kind != "box" or len(obs.shape) != 1 or act.kind != "discrete" or not act.n:
        raise PlanError(f"{env.env_id}: a linear bandit needs a flat Box context and Discrete "
                        f"actions (got {obs.kind} {list(obs.shape)} → {act.kind})")  # fmt: skip
    has_env = not env.env_id.startswith("logged data")
    if has_env and env.max_episode_steps not in (None, 1):  # training would stop at step 2
        raise PlanError(f"{env.env_id}: its episodes last up to {env.max_episode_steps} steps; "
                        "a bandit (task.kind: bandit) decides once per episode: give a "
                        "one-step env (max_episode_steps: 1), or drop task.kind to plan "
                        "RL")  # fmt: skip
    ctx = facts(budget, env, [])
    options, excluded = [], []
    for algo, info in algorithms().items():
        online = bool(info["online"])
        why = None
        if online and not has_env:
            why = "learns by acting: needs task.env, a one-step env"
        elif not online and rows is None:
            why = "learns from logged decisions: needs task.data"
        if why:
            excluded.append((algo, rule("bandit", why)))
            continue
        if not online and budget.inference.learn:
            why = f"{algo} learns on the host from logs; inference.learn asks for an online learner"
            excluded.append((algo, rule("on-device-learning", why)))
            continue
        options.append(_option(algo, info, budget, env, rows))
    ranked = sorted(options, key=lambda o: (not o.fits, -o.score, o.estimates.latency_s.typical))
    final = [replace(o, rank=i, reasons=(*o.reasons, rule("fits")) if o.fits else o.reasons)
             for i, o in enumerate(ranked, start=1)]  # fmt: skip
    return Plan(budget, env, ctx, tuple(final), tuple(excluded))


def _option(
    algo: str, info: Mapping[str, Any], budget: Budget, env: EnvSpec, rows: int | None
) -> Option:
    device, obs, act = budget.device, env.observation, env.action
    d, K = obs.dim, int(act.n or 0)
    dtype = "fp32" if device.fpu or device.device_class not in ("mcu", "mcu-accel") else "int16"
    base = costs.linear_body(obs, act, 4 if dtype == "fp32" else 2)
    params = d * K + K  # W and b: no normalization for a bandit policy
    body = replace(base, parameters=params, weight_bytes=params * (4 if dtype == "fp32" else 2),
                   network={"body": "linear", "features": "context", "shape": [d, K]})  # fmt: skip
    target = costs.inference(body, dtype, device, obs)
    flash, ram, latency = target.flash_bytes, target.ram_bytes, target.latency_s
    reasons = [rule("bandit", f"{algo}: {info['description']}")]
    if budget.inference.learn:
        learn = learning_cost(algo, d, K)
        ram += learn.ram_bytes
        extra = learning_latency(device, learn)
        latency = Range(latency.low + extra.low, latency.typical + extra.typical,
                        latency.high + extra.high)  # fmt: skip
        state = units.format_bytes(learn.ram_bytes)
        reasons.append(rule("bandit", f"inference.learn: the device learns as it decides: "
                            f"{state} of learner state in RAM (A⁻¹ per arm), "
                            f"{learn.macs:,} MACs per update in float32"))  # fmt: skip
        dtype = "fp32"
    energy = costs.estimate_energy(device, latency)
    hp = {k: float(v) for k, v in info["hyperparameters"].items()}
    steps = int(hp.pop("n_timesteps", rows or 0))
    train_time = steps / float(info["host_decisions_per_s"])
    data_bytes = 8 * (rows or 0) * (d + 3) * 3  # the table, its copy as floats, the targets
    train_ram = costs.training_ram_bytes("builtin", K * (d + 1) * (d + 2)) + data_bytes
    train_energy = costs.host_energy_j(train_time)
    figures = {"inference.ram": ram, "inference.flash": flash,
               "inference.latency": latency.typical, "inference.energy": energy.typical,
               "device.ram": ram, "device.flash": flash, "training.env_steps": steps,
               "training.time": train_time, "training.ram": train_ram,
               "training.energy": train_energy}  # fmt: skip
    how = "bandit cost model (rlbudget.bandits.plan)"
    checks = tuple(check_budget(n, figures[n], budget, how=how) for n in LIMITS if n in figures)
    est = Estimates(
        parameters=params, weight_bytes=body.weight_bytes, activation_bytes=body.activation_bytes,
        ram_bytes=ram, flash_bytes=flash, macs=body.macs, latency_s=latency, energy_j=energy,
        env_steps=steps, train_time_s=train_time, train_ram_bytes=train_ram,
        train_energy_j=train_energy,
    )  # fmt: skip
    return Option(
        paradigm="bandit", algorithm=algo, label=f"{algo} linear {d}×{K} ({dtype})",
        library="builtin", trainable=True, network=body.network, deploy_dtype=dtype,
        deploy_format="c" if device.device_class in ("mcu", "mcu-accel") else "numpy",
        hyperparams=hp, hyperparams_source=f"rlbudget/data/bandits.yaml ({algo})",
        hyperparams_tuned=False, estimates=est, checks=checks, reasons=tuple(reasons),
        score=PREFERENCE.get(algo, 0.0),
    )  # fmt: skip


def learning_latency(device: Device, learn: Learning) -> Range:
    """The update and exploration score in float32 on ``device`` (the per-MAC model; a
    square root or exponential ≈ the cycles :func:`rlbudget.costs.extra_cycles` gives a
    tanh)."""
    extra = costs.extra_cycles(learn.nonlinear, 0, "fp32", device.fpu)
    return costs.estimate_latency(device, macs=learn.macs, layers=1, dtype="fp32",
                                  extra_cycles=extra)  # fmt: skip
