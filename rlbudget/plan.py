"""Decision rules: (Budget, EnvSpec) → a ranked, explained Plan.

The planner enumerates one candidate per compatible algorithm (and, for MLPs,
narrower shapes when the tuned one does not fit), estimates what each costs on
the target and on the training host, checks every figure against the budget with
the safety margin, and ranks the candidates by explicit rules. Each rule has an
id and a sentence (:data:`RULES`); the sentences that fired for an option are its
``reasons``.

Every figure is an estimate of the cost model, :mod:`rlbudget.costs` (bytes, RAM, MACs,
latency and energy of each option's body on the target; training RAM and energy on the
host). Training env steps come from the tuned hyperparameters' ``n_timesteps`` (what RL
Zoo or the source budgets to reach the threshold); host time from the algorithm's
measured throughput on this machine class plus any env step cost above CartPole's
(spread over on-policy env workers when the cost is measured, not when
``task.env_step_cost`` declares a real env); training energy = time × busy cores × the
``host`` device's active power per core.

Each figure is held against its limit as :mod:`rlbudget.limits` says (one
:class:`~rlbudget.limits.Check` per limit, the device's own RAM and flash included).
A figure passes when ``estimate × (1 + margin) ≤ limit``; ``fits`` means every
checked figure passes (inference, device capacity and training).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from rlbudget import costs, units
from rlbudget.budget import Budget
from rlbudget.costs import Body
from rlbudget.devices import Device, Range
from rlbudget.envs import EnvSpec
from rlbudget.errors import PlanError
from rlbudget.hyperparams import AlgorithmInfo, Hyperparams, algorithms, get_hyperparams
from rlbudget.limits import LIMITS, Check, binding, check_budget, closeness, format_figure
from rlbudget.limits import target_return as target_rule

SCHEMA = "rlbudget.plan/2"

# REFERENCE.md: raw CartPole-v1 step ≈52k steps/s; measured algorithm throughputs include it.
REFERENCE_STEP_S = 1 / 52_000
# Low-dimensional limits: a uniform grid over more dims explodes; tile coding hashes up to ~8.
MAX_TABULAR_BOX_DIMS = 4
MAX_TILE_CODING_DIMS = 8
MAX_TABLE_STATES = 2**24
NARROW_WIDTHS = (64, 32, 16, 8)
# How each figure of an option is obtained (:mod:`rlbudget.costs`), as each check says.
HOW = {
    "inference.ram": "cost model: the largest pair of live activations, one layer's "
    "accumulators and the observation",
    "inference.flash": "cost model: weights + the code of the body kind",
    "inference.latency": "device model, typical value of the range",
    "inference.energy": "active power × the typical latency",
    "device.ram": "the inference.ram figure against the device's SRAM/RAM",
    "device.flash": "the inference.flash figure against the device's flash",
    "training.env_steps": "the hyperparameters' n_timesteps",
    "training.time": "env steps at the algorithm's measured throughput + the env step cost",
    "training.ram": "process baseline + 16 B per parameter + the replay buffer",
    "training.energy": "training time × busy cores × the host's power per core",
}
# An env step at or above this is "expensive" (a robot, a slow simulator).
EXPENSIVE_STEP_S = 1e-3


@dataclass(frozen=True)
class Rule:
    """A decision rule: an id a user can grep for and the sentence that explains it."""

    id: str
    text: str


RULES = {
    r.id: r
    for r in (
        Rule("spaces", "Only algorithms that support the env's observation and action spaces."),
        Rule(
            "discrete-obs",
            "Discrete observations: a table is exact and tiny, so tabular methods come first.",
        ),
        Rule(
            "mcu-small",
            "MCU-class device or tight RAM/flash: tabular and tile-coded linear policies come "
            "first; an int8 MLP only if it fits with the margin.",
        ),
        Rule(
            "8-bit",
            "8-bit core: no 32-bit MAC and no int8 NN kernels, so MLPs are not planned; "
            "tabular or linear only.",
        ),
        Rule(
            "headroom",
            "MPU/GPU/host with room to spare: an MLP policy (PPO/A2C/DQN for discrete actions, "
            "SAC/TD3 for continuous) learns the most robust policy.",
        ),
        Rule(
            "continuous-actions",
            "Box actions: SAC/TD3 (off-policy, squashed/deterministic actors) are the tuned "
            "choice; ARS gives a linear policy for the smallest devices.",
        ),
        Rule(
            "expensive-env",
            "Expensive environment: model-based and sample-efficient off-policy methods rank "
            "above on-policy ones.",
        ),
        Rule("not-yet", "Not yet supported by rlbudget's trainers: shown, never ranked first."),
        Rule(
            "replay-ram",
            "Training RAM bounds the replay buffer: capacity × bytes per transition.",
        ),
        Rule(
            "feasible-steps",
            "Training time × throughput bounds the env steps; options needing more are marked.",
        ),
        Rule("int8", "Latency/energy/memory limits: deploy int8 (4× smaller than fp32)."),
        Rule("narrow", "The tuned network does not fit: narrower layers are tried."),
        Rule("cores", "Training cores set the number of parallel envs."),
        Rule("fits", "Options that fit every limit with the margin rank first."),
    )
}


@dataclass(frozen=True)
class Estimates:
    """What an option costs. Inference figures are for the target device, training for the host."""

    parameters: int
    weight_bytes: int
    activation_bytes: int
    ram_bytes: int
    flash_bytes: int
    macs: int
    latency_s: Range
    energy_j: Range
    env_steps: int
    train_time_s: float
    train_ram_bytes: int
    train_energy_j: float
    replay_capacity: int | None = None
    replay_bytes: int | None = None
    bytes_per_transition: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # ranges become {low, typical, high}


@dataclass(frozen=True)
class Option:
    """One ranked recommendation."""

    paradigm: str
    algorithm: str
    label: str
    library: str
    trainable: bool
    network: dict[str, Any]
    deploy_dtype: str
    deploy_format: str
    hyperparams: dict[str, Any]
    hyperparams_source: str
    hyperparams_tuned: bool
    estimates: Estimates
    checks: tuple[Check, ...]
    reasons: tuple[str, ...]
    score: float
    rank: int = 0

    @property
    def fits(self) -> bool:
        return all(c.status != "FAIL" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "paradigm": self.paradigm,
            "algorithm": self.algorithm,
            "label": self.label,
            "library": self.library,
            "trainable": self.trainable,
            "fits": self.fits,
            "score": self.score,
            "network": self.network,
            "deploy": {"dtype": self.deploy_dtype, "format": self.deploy_format},
            "hyperparams": {
                "params": self.hyperparams,
                "source": self.hyperparams_source,
                "tuned": self.hyperparams_tuned,
            },
            "estimates": self.estimates.to_dict(),
            "checks": [c.to_dict() for c in self.checks],
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Context:
    """Facts about the budget and env that the rules read."""

    device_class: str
    mcu: bool
    eight_bit: bool
    tight_memory: bool
    expensive_env: bool
    expensive_why: str
    step_cost_s: float | None
    step_cost_source: str
    cores: int
    target_return: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """A ranked list of options with the rules that decided them."""

    budget: Budget
    env: EnvSpec
    context: Context
    options: tuple[Option, ...]
    excluded: tuple[tuple[str, str], ...] = field(default=())

    @property
    def best(self) -> Option | None:
        """The first option if it fits and is trainable, else None."""
        first = self.options[0] if self.options else None
        return first if first is not None and first.fits and first.trainable else None

    @property
    def fits(self) -> bool:
        return self.best is not None

    def binding(self) -> dict[str, Any] | None:
        """When nothing fits: the limit that binds on the closest option, and by how much."""
        if self.fits:
            return None
        candidates = [o for o in self.options if o.trainable and binding(o.checks)]
        if not candidates:
            return None
        closest = max(candidates, key=lambda o: closeness(o.checks))
        worst = binding(closest.checks)
        assert worst is not None and worst.with_margin is not None and worst.limit_value
        return {
            "option": closest.label,
            "limit": worst.limit,
            "unit": worst.unit,
            "needed_with_margin": worst.with_margin,
            "limit_value": worst.limit_value,
            "over_by": worst.with_margin - worst.limit_value,
            "over_by_ratio": worst.with_margin / worst.limit_value - 1.0,
            "message": _binding_message(closest, worst, self.budget.margin),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "fits": self.fits,
            "recommended": self.best.label if self.best else None,
            "budget": self.budget.to_dict(),
            "env": self.env.to_dict(),
            "context": self.context.to_dict(),
            "rules": {r.id: r.text for r in RULES.values()},
            "options": [o.to_dict() for o in self.options],
            "excluded": [{"algorithm": a, "reason": why} for a, why in self.excluded],
            "binding": self.binding(),
        }


def _binding_message(option: Option, c: Check, margin: float) -> str:
    assert c.with_margin is not None and c.limit_value
    return (
        f"nothing fits: {c.limit} binds — the closest option ({option.label}) needs "
        f"{format_figure(c.figure, c.unit)}, {format_figure(c.with_margin, c.unit)} with the "
        f"{margin:.0%} margin, over the {format_figure(c.limit_value, c.unit)} limit by "
        f"{format_figure(c.with_margin - c.limit_value, c.unit)} "
        f"({c.with_margin / c.limit_value - 1:.0%})"
    )


# --- estimating one candidate -------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    info: AlgorithmInfo
    hp: Hyperparams
    body: Body
    dtype: str
    fmt: str
    label: str
    reasons: tuple[str, ...]
    score: float
    params: dict[str, Any]


def _estimate(
    cand: _Candidate, budget: Budget, env: EnvSpec, ctx: Context
) -> tuple[Estimates, tuple[Check, ...], tuple[str, ...]]:
    body = cand.body
    target = costs.inference(body, cand.dtype, budget.device, env.observation)

    notes: list[str] = []
    steps = int(cand.hp.n_timesteps / max(cand.info.sample_efficiency, 1.0))
    # Env time beyond what the measured throughput already includes (a CartPole step).
    excess = max(0.0, (ctx.step_cost_s or 0.0) - REFERENCE_STEP_S)
    parallel = 1
    if cand.info.library == "sb3" and not cand.info.off_policy:
        parallel = max(1, min(ctx.cores, int(cand.params.get("n_envs", 1))))
    # A simulated env's cost spreads over worker processes; a declared real step (a robot)
    # does not.
    env_workers = parallel if ctx.step_cost_source.startswith("measured") else 1
    per_step = 1.0 / cand.info.host_steps_per_s + excess / env_workers
    train_time = steps * per_step
    busy_cores = parallel

    replay_capacity = replay_bytes = per_transition = None
    train_ram = costs.training_ram_bytes(cand.info.library, body.parameters,
                                         table=body.kind == "table")  # fmt: skip
    if cand.info.replay_buffer:
        replay = costs.replay_buffer(
            int(cand.params.get("buffer_size", 1_000_000)), steps, env.observation, env.action,
            other_ram_bytes=train_ram, ram_bytes=budget.training.ram_bytes, margin=budget.margin,
        )  # fmt: skip
        notes.append(replay.note)
        replay_capacity, per_transition = replay.capacity, replay.bytes_per_transition
        replay_bytes = replay.bytes
        train_ram += replay_bytes
    train_energy = costs.host_energy_j(train_time * busy_cores)

    t = budget.training
    feasible = None
    if t.time_s is not None:
        feasible = int(t.time_s / (1 + budget.margin) / per_step)
        if feasible < steps:
            notes.append(
                f"[feasible-steps] {units.format_time(t.time_s)} of training at "
                f"≈{units.format_count(1 / per_step)} steps/s allows "
                f"≈{units.format_count(feasible)} env steps with the margin; this option "
                f"typically needs "
                f"{units.format_count(steps)}"
            )
    figures = {
        "inference.ram": target.ram_bytes, "inference.flash": target.flash_bytes,
        "inference.latency": target.latency_s.typical,
        "inference.energy": target.energy_j.typical,
        "device.ram": target.ram_bytes, "device.flash": target.flash_bytes,
        "training.env_steps": steps, "training.time": train_time,
        "training.ram": train_ram, "training.energy": train_energy,
    }  # fmt: skip
    checks = tuple(check_budget(name, figures[name], budget, how=HOW[name])
                   for name in LIMITS if name in figures)  # fmt: skip
    est = Estimates(
        parameters=body.parameters,
        weight_bytes=body.weight_bytes,
        activation_bytes=body.activation_bytes,
        ram_bytes=target.ram_bytes,
        flash_bytes=target.flash_bytes,
        macs=body.macs,
        latency_s=target.latency_s,
        energy_j=target.energy_j,
        env_steps=steps,
        train_time_s=train_time,
        train_ram_bytes=train_ram,
        train_energy_j=train_energy,
        replay_capacity=replay_capacity,
        replay_bytes=replay_bytes,
        bytes_per_transition=per_transition,
    )
    return est, checks, tuple(notes)


# --- rules -------------------------------------------------------------------------------


def _context(budget: Budget, env: EnvSpec, usable: Sequence[AlgorithmInfo]) -> Context:
    device = budget.device
    mcu = device.device_class in ("mcu", "mcu-accel")
    inf = budget.inference
    tight = (inf.ram_bytes is not None and inf.ram_bytes <= 64 * 1024) or (
        inf.flash_bytes is not None and inf.flash_bytes <= 256 * 1024
    )
    step_cost: float | None = budget.task.env_step_cost_s
    step_source = "task.env_step_cost"
    if step_cost is None:
        step_cost, step_source = env.step_cost_s, "measured on this host"
    why = ""
    if budget.task.env_step_cost_s is not None and budget.task.env_step_cost_s >= EXPENSIVE_STEP_S:
        why = f"task.env_step_cost is {units.format_time(budget.task.env_step_cost_s)} per step"
    elif budget.training.env_steps is not None:
        model_free = [
            get_hyperparams(a.id, env.env_id).n_timesteps
            for a in usable
            if not a.model_based and a.trainable
        ]
        if model_free and budget.training.env_steps < 0.5 * min(model_free):
            why = (
                f"training.env_steps ({units.format_count(budget.training.env_steps)}) is under "
                f"half of what the cheapest model-free option typically needs "
                f"({units.format_count(min(model_free))})"
            )
    return Context(
        device_class=device.device_class,
        mcu=mcu,
        eight_bit=_word_bits(device) == 8,
        tight_memory=tight,
        expensive_env=bool(why),
        expensive_why=why,
        step_cost_s=step_cost,
        step_cost_source=step_source,
        cores=budget.training.cores or 1,
        target_return=target_rule(budget.task, env.env_id, env.reward_threshold).value,
    )


def _word_bits(device: Device) -> int:
    bits = getattr(device, "word_bits", None)
    if isinstance(bits, int):
        return bits
    return 8 if "avr" in device.core.lower() else 32


def compatible(info: AlgorithmInfo, env: EnvSpec) -> str | None:
    """None if the algorithm can handle the env's spaces, else the reason it cannot."""
    obs, act = env.observation, env.action
    if obs.kind not in info.observations:
        return f"needs {' or '.join(info.observations)} observations; {env.env_id} has {obs.kind}"
    if act.kind not in info.actions:
        return f"needs {' or '.join(info.actions)} actions; {env.env_id} has {act.kind}"
    if _is_tabular(info) and obs.kind == "box" and obs.dim > MAX_TABULAR_BOX_DIMS:
        return (
            f"a uniform grid over {obs.dim} observation dims is too large "
            f"(tabular needs ≤ {MAX_TABULAR_BOX_DIMS})"
        )
    if info.id == "sarsa-lambda" and obs.dim > MAX_TILE_CODING_DIMS:
        return f"tile coding needs ≤ {MAX_TILE_CODING_DIMS} observation dims, not {obs.dim}"
    return None


def _is_tabular(info: AlgorithmInfo) -> bool:
    """Tabular bodies: the tabular family and Dyna-Q (tabular, model-based)."""
    return info.family == "tabular" or info.id == "dyna-q"


def _rule(rule_id: str, detail: str = "") -> str:
    text = RULES[rule_id].text
    return f"[{rule_id}] {detail or text}"


def _score(info: AlgorithmInfo, env: EnvSpec, ctx: Context, body: Body) -> tuple[float, list[str]]:
    """Preference from the rules (higher first) and the sentences that fired."""
    score = 0.0
    reasons: list[str] = []
    small = body.kind in ("table", "linear")
    if env.observation.kind == "discrete" and body.kind == "table":
        score += 3
        reasons.append(_rule("discrete-obs"))
    if ctx.mcu or ctx.tight_memory:
        if small:
            score += 2
            reasons.append(_rule("mcu-small"))
        else:
            score -= 1
            reasons.append(
                _rule("mcu-small", "MCU-class or tight memory: an int8 MLP only if it fits.")
            )
    elif body.kind == "mlp":
        score += 2
        reasons.append(_rule("headroom"))
    elif body.kind == "table" and env.observation.kind == "box":
        score -= 1  # a discretized grid is a last resort when an MLP fits comfortably
    if env.action.kind == "box":
        if info.id in ("sac", "td3"):
            score += 1
            reasons.append(_rule("continuous-actions"))
        elif info.id == "ars" and (ctx.mcu or ctx.tight_memory):
            score += 0.5
            reasons.append(_rule("continuous-actions"))
    elif info.id == "ppo" and body.kind == "mlp":
        score += 0.5  # the most robust discrete-action default in RL Zoo
    if info.id == "sarsa-lambda":
        score += 0.5  # tile coding generalizes across a Box observation; a grid does not
    if ctx.expensive_env:
        if info.model_based:
            score += 3
        elif info.off_policy:
            score += 1.5
        else:
            score -= 1
        reasons.append(
            _rule(
                "expensive-env",
                f"Expensive env ({ctx.expensive_why}): "
                + RULES["expensive-env"].text[len("Expensive environment: ") :],
            )
        )
    if not info.trainable:
        reasons.append(_rule("not-yet"))
    return score, reasons


def _candidates(
    budget: Budget, env: EnvSpec, ctx: Context, info: AlgorithmInfo
) -> list[_Candidate]:
    hp = get_hyperparams(info.id, env.env_id)
    params = dict(hp.params)
    device = budget.device
    obs, act = env.observation, env.action
    n_actions = act.n if act.kind == "discrete" and act.n is not None else 0
    read_as = f" Observations: {obs.note}." if obs.note else ""
    base_reasons = [
        _rule("spaces", f"{info.id} handles {obs.kind} observations and {act.kind} actions "
              f"({info.description}){read_as}")
    ]  # fmt: skip
    if info.library == "sb3" and not info.off_policy and ctx.cores > 1:
        n_envs = int(params.get("n_envs", 1))
        base_reasons.append(
            _rule("cores", f"training.cores = {ctx.cores}: {min(ctx.cores, n_envs)} env "
                  f"worker process(es) for {n_envs} env(s).")
        )  # fmt: skip

    bodies: list[tuple[Body, str, str, str, list[str]]] = []  # body, dtype, fmt, label, reasons
    fmt_small = "c" if ctx.mcu else "numpy"
    if _is_tabular(info):
        if obs.kind == "discrete" and obs.n is not None:
            states, bins = obs.n, None
        else:
            bins = int(params.get("bins", 8))
            states = bins**obs.dim
        if states > MAX_TABLE_STATES:
            return []
        body = costs.table_body(states, n_actions, obs, bins)
        grid = f" {bins}^{obs.dim} grid" if bins else ""
        bodies.append((body, "uint8", fmt_small, f"{info.id} table{grid}", []))
    elif info.id == "sarsa-lambda":
        body = costs.tile_coding_body(obs, n_actions, hp.params, device.fpu)
        dtype = "fp32" if device.fpu else "int16"
        bodies.append((body, dtype, fmt_small, f"sarsa-lambda tile coding ({dtype})", []))
    elif info.family == "linear":
        dtype = "fp32" if device.fpu or not ctx.mcu else "int16"
        body = costs.linear_body(obs, act, 4 if dtype == "fp32" else 2)
        bodies.append((body, dtype, fmt_small, f"{info.id} linear ({dtype})", []))
    else:
        if ctx.eight_bit:
            return []
        hidden = [int(w) for w in params.get("net_arch", [64, 64])]
        default_act = "tanh" if info.id in ("ppo", "a2c") else "relu"
        activation = str(params.get("activation_fn", default_act))
        fmt = "c" if ctx.mcu else ("onnx" if device.device_class == "gpu" else "numpy")
        # Preference order; the planner keeps the first that fits (see make_plan).
        # MCUs deploy int8 only; elsewhere fp32 first, int8 when fp32 does not fit.
        dtypes = ("int8",) if ctx.mcu else ("fp32", "int8")
        shape = "-".join(map(str, hidden))
        shapes = [hidden] + [[w] * len(hidden) for w in NARROW_WIDTHS if w < max(hidden)]
        for widths in shapes:
            for dtype in dtypes:
                reasons: list[str] = []
                if dtype == "int8":
                    reasons.append(
                        _rule("int8", "MCU: deploy int8 (4× smaller than fp32, integer kernels).")
                        if ctx.mcu
                        else _rule("int8", "fp32 does not fit the limits: deploy int8.")
                    )
                if widths is not hidden:
                    name = "-".join(map(str, widths))
                    reasons.append(
                        _rule("narrow", f"The tuned {shape} network does not fit: "
                              f"{name} is the widest that does.")
                    )  # fmt: skip
                body = costs.mlp_body(obs, act, widths, activation, dtype, device.fpu)
                label = f"{info.id} mlp {'-'.join(map(str, widths))} {dtype}"
                bodies.append((body, dtype, fmt, label, reasons))

    out: list[_Candidate] = []
    for body, dtype, fmt, label, extra in bodies:
        score, reasons = _score(info, env, ctx, body)
        if body.kind == "mlp":
            params_out = {**params, "net_arch": body.network["hidden"]}
        else:
            params_out = dict(params)
        out.append(
            _Candidate(info, hp, body, dtype, fmt, label,
                       tuple(base_reasons + reasons + extra), score, params_out)
        )  # fmt: skip
    return out


def make_plan(budget: Budget, env: EnvSpec | str | None = None) -> Plan:
    """Rank every compatible algorithm for ``budget`` on ``env``.

    :param budget: a loaded :class:`~rlbudget.budget.Budget`.
    :param env: an :class:`EnvSpec`, a gymnasium id (overrides ``task.env``), or None for
        ``task.env``.
    :raises PlanError: no env given anywhere.
    """
    if not isinstance(env, EnvSpec):
        from rlbudget.envs import env_spec

        env_id = env or budget.task.env_id
        if not env_id:
            raise PlanError(
                f"{budget.source or 'budget'}: no environment: set task.env in the budget "
                "or pass --env (for example --env CartPole-v1)"
            )
        env = env_spec(env_id)
    infos = list(algorithms().values())
    excluded: list[tuple[str, str]] = []
    usable: list[AlgorithmInfo] = []
    for info in infos:
        why = compatible(info, env)
        if why is None:
            usable.append(info)
        else:
            excluded.append((info.id, f"[spaces] {why}"))
    ctx = _context(budget, env, usable)

    options: list[Option] = []
    for info in usable:
        if not info.trainable and not ctx.expensive_env:
            excluded.append(
                (info.id, "[not-yet] deep model-based; listed only when the env is expensive")
            )
            continue
        cands = _candidates(budget, env, ctx, info)
        if not cands:
            if ctx.eight_bit and not _is_tabular(info):
                why = f"[8-bit] {RULES['8-bit'].text}"
            else:
                why = f"[spaces] a table here would have over {MAX_TABLE_STATES:,} states"
            excluded.append((info.id, why))
            continue
        evaluated = []
        for cand in cands:
            est, checks, notes = _estimate(cand, budget, env, ctx)
            evaluated.append((cand, est, checks, notes))
        # MLPs: candidates come in preference order (tuned shape first, fp32 before int8
        # off-MCU, then narrower). Keep the first that fits; if none does, the first.
        if len(evaluated) > 1:
            fitting = [e for e in evaluated if all(c.status != "FAIL" for c in e[2])]
            evaluated = fitting[:1] or evaluated[:1]
        for cand, est, checks, notes in evaluated:
            options.append(
                Option(
                    paradigm="model-based" if cand.info.model_based else cand.body.kind.replace(
                        "table", "tabular"),
                    algorithm=cand.info.id,
                    label=cand.label,
                    library=cand.info.library,
                    trainable=cand.info.trainable,
                    network=cand.body.network,
                    deploy_dtype=cand.dtype,
                    deploy_format=cand.fmt,
                    hyperparams=cand.params,
                    hyperparams_source=cand.hp.source,
                    hyperparams_tuned=cand.hp.tuned,
                    estimates=est,
                    checks=checks,
                    reasons=cand.reasons + notes,
                    score=cand.score,
                )
            )  # fmt: skip

    def key(o: Option) -> tuple[int, int, float, float, int, str]:
        return (
            0 if o.fits else 1,
            0 if o.trainable else 1,
            -o.score,
            o.estimates.train_time_s,
            o.estimates.flash_bytes,
            o.label,
        )

    ranked = sorted(options, key=key)
    final = []
    for i, o in enumerate(ranked, start=1):
        reasons = o.reasons
        if o.fits:
            reasons = (*reasons, _rule("fits"))
        final.append(replace(o, rank=i, reasons=reasons))
    return Plan(budget, env, ctx, tuple(final), tuple(excluded))


def save_plan(plan: Plan, path: str | os.PathLike[str]) -> None:
    """Write the plan as YAML (atomically); ``rlbudget train PLAN.yaml`` reads it."""
    import yaml

    from rlbudget.fileio import atomic_write_text

    text = yaml.safe_dump(plan.to_dict(), sort_keys=False, allow_unicode=True, width=100)
    atomic_write_text(path, text)
