"""Making a plan: one candidate per compatible algorithm (for MLPs, the width that fits the
device and the training budget, :mod:`rlbudget.plan.widths`), each estimated by the cost
model, checked against the budget, and ranked by the rules."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, replace
from typing import Any

from rlbudget import costs, units
from rlbudget.budget import Budget
from rlbudget.costs import Body
from rlbudget.envs import EnvSpec
from rlbudget.errors import PlanError
from rlbudget.hyperparams import AlgorithmInfo, Hyperparams, algorithms, get_hyperparams
from rlbudget.limits import LIMITS, Check, check_budget
from rlbudget.plan import cascade, sparse
from rlbudget.plan.calibrate import Calibration, cache_path, load_calibration
from rlbudget.plan.model import Estimates, Option, Plan
from rlbudget.plan.rules import (
    MAX_TABLE_STATES,
    RULES,
    Context,
    facts,
    preference,
    rule,
)
from rlbudget.plan.widths import REFERENCE_STEP_S, Shape, Tried, choose, shapes, step_seconds
from rlbudget.replay import Storage, replay_buffer

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
    "training.time": "env steps at the algorithm's throughput at this width + the env step cost",
    "training.ram": "process baseline + 16 B per parameter + the replay buffer",
    "training.energy": "training time × busy cores × the host's power per core",
}


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
    shape: Shape | None = None  # an MLP's hidden shape and its steps to the target
    method: str | None = None  # deployed through a compress method (rule cascade)


def _ensemble_parameters(params: dict[str, Any], env: EnvSpec) -> int:
    """A PETS ensemble's weights: members × an MLP from [obs, action] to a Gaussian over
    [Δobs, reward] and a termination logit."""
    act = env.action.n if env.action.kind == "discrete" and env.action.n else env.action.dim
    sizes = [env.observation.dim + int(act), *map(int, params.get("model_arch", [200, 200])),
             2 * (env.observation.dim + 1) + 1]  # fmt: skip
    per_member = sum((a + 1) * b for a, b in itertools.pairwise(sizes))
    return int(params.get("ensemble", 5)) * per_member


def _estimate(
    cand: _Candidate, budget: Budget, env: EnvSpec, ctx: Context, cal: Calibration | None
) -> tuple[Estimates, tuple[Check, ...], tuple[str, ...]]:
    body = cand.body
    target = costs.inference(body, cand.dtype, budget.device, env.observation)

    notes: list[str] = []
    hows = dict(HOW)
    if cand.method == cascade.METHOD:  # rule cascade: worst case for latency, mean for energy
        target, why = cascade.cascade_inference(
            target, env.observation, env.action, body.network["hidden"],
            body.network["activation"], budget.device)  # fmt: skip
        notes.append(why)
        hows["inference.latency"] += ", the cascade's worst case (students + full)"
        hows["inference.energy"] = "active power × the cascade's mean latency (rule cascade)"
    factor = cand.shape.steps_factor if cand.shape else 1.0
    steps = int(cand.hp.n_timesteps * factor / max(cand.info.sample_efficiency, 1.0))
    update_s, how = 1.0 / cand.info.host_steps_per_s, HOW["training.time"]
    if cand.shape is not None:
        cost = step_seconds(cand.info, cand.shape.hidden, body.macs, cal)
        update_s = cost.seconds
        how = f"env steps × seconds per step ({cost.how}) + the env step cost"
        notes.append(f"[throughput] {cand.label}: {cost.how}")
    # Env time beyond what the measured throughput already includes (a CartPole step).
    excess = max(0.0, (ctx.step_cost_s or 0.0) - REFERENCE_STEP_S)
    # training.cores > 1: the envs in worker processes where the step cost pays (rule
    # cores); the env's cost then spreads over them, each adding its IPC per step.
    workers, ipc_s = env_workers(cand.info, cand.params, ctx, steps)
    per_step = update_s + excess / workers + ipc_s
    train_time = steps * per_step
    busy_cores = workers

    replay_capacity = replay_bytes = per_transition = None
    train_ram = costs.training_ram_bytes(cand.info.library, body.parameters,
                                         table=body.kind == "table")  # fmt: skip
    if cand.info.model_based:  # PETS trains with torch, and its ensemble too
        train_ram = costs.training_ram_bytes("sb3", body.parameters + _ensemble_parameters(
            cand.params, env))  # fmt: skip
    if cand.info.replay_buffer:
        storage = Storage.from_params(cand.params, Storage.parse(budget.training.replay or
                                                                 "float32"))  # fmt: skip
        replay = replay_buffer(
            int(cand.params.get("buffer_size", 1_000_000)), steps, env.observation, env.action,
            other_ram_bytes=train_ram, ram_bytes=budget.training.ram_bytes, margin=budget.margin,
            storage=storage,
        )  # fmt: skip
        notes.append(replay.note)
        replay_capacity, per_transition = replay.capacity, replay.bytes_per_transition
        replay_bytes = replay.bytes
        train_ram += replay_bytes
    train_energy = costs.host_energy_j(train_time * busy_cores)
    if budget.inference.learn:  # the device keeps learning: its state, its update (issue 21)
        from rlbudget.profile.learn import planned_learner

        discrete = env.observation.kind == "discrete"
        target, learn_note = planned_learner(target, cand.info.id, body.parameters, discrete,
                                             budget.device)  # fmt: skip
        notes.append(learn_note)

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
    hows["training.time"] = how
    checks = tuple(check_budget(name, figures[name], budget, how=hows[name])
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


def env_workers(info: AlgorithmInfo, params: dict[str, Any], ctx: Context,
                steps: int) -> tuple[int, float]:  # fmt: skip
    """The worker processes an SB3 option's envs step in (:func:`rlbudget.parallel.
    collection`, as ``rlbudget train`` decides it) and the IPC they add per env step."""
    if ctx.cores <= 1 or not info.library.startswith("sb3"):
        return 1, 0.0
    from rlbudget import parallel

    n_envs = int(params.get("n_envs", 1))
    layout = parallel.collection(n_envs, ctx.cores, ctx.step_cost_s, ctx.step_cost_source, steps)
    if layout.workers <= 1:
        return 1, 0.0
    return layout.workers, layout.workers * parallel.overhead().step_s / n_envs


def cores_reason(info: AlgorithmInfo, params: dict[str, Any], ctx: Context, steps: int) -> str:
    """Rule ``cores``: where the envs step, and the speed-up it buys (Amdahl's law: the
    env's step cost spreads over the workers, the policy and the updates stay serial)."""
    from rlbudget import parallel

    head = f"training.cores = {ctx.cores}:"
    cost = ctx.step_cost_s or 0.0
    evals = parallel.evaluation(ctx.cores, cost, None)
    tail = f"; {parallel.describe_eval(evals)}."
    if not info.library.startswith("sb3"):  # sb3 or sb3-contrib
        return f"{head} {info.id} learns from one env, step by step{tail}"
    n_envs = int(params.get("n_envs", 1))
    layout = parallel.collection(n_envs, ctx.cores, cost, ctx.step_cost_source, steps)
    if layout.workers <= 1:
        return f"{head} {layout.why}{tail}"
    workers, ipc_s = env_workers(info, params, ctx, steps)
    other = 1.0 / info.host_steps_per_s  # the policy, the updates: serial
    gain = parallel.speedup(cost, other, workers, ipc_s)
    return (f"{head} {layout.why}. Training ≈×{gain:.2f} faster (Amdahl: "
            f"{units.format_time(cost)} of env per step over {workers} processes + "
            f"{units.format_time(ipc_s)} IPC, {units.format_time(other)} of policy and "
            f"updates per step stay serial){tail}")  # fmt: skip


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
        rule("spaces", f"{info.id} handles {obs.kind} observations and {act.kind} actions "
              f"({info.description}){read_as}")
    ]  # fmt: skip
    if ctx.cores > 1:
        base_reasons.append(rule("cores", cores_reason(info, params, ctx, hp.n_timesteps)))

    # body, dtype, fmt, label, reasons, shape
    bodies: list[tuple[Body, str, str, str, list[str], Shape | None]] = []
    fmt_small = "c" if ctx.mcu else "numpy"
    imitation_table = info.family == "imitation" and obs.kind == act.kind == "discrete"
    if info.tabular or imitation_table:
        if obs.kind == "discrete" and obs.n is not None:
            states, bins = obs.n, None
        else:
            bins = int(params.get("bins", 8))
            states = bins**obs.dim
        if states > MAX_TABLE_STATES:
            return []
        body = costs.table_body(states, n_actions, obs, bins)
        grid = f" {bins}^{obs.dim} grid" if bins else ""
        bodies.append((body, "uint8", fmt_small, f"{info.id} table{grid}", [], None))
    elif info.id == "sarsa-lambda":
        body = costs.tile_coding_body(obs, n_actions, hp.params, device.fpu)
        dtype = "fp32" if device.fpu else "int16"
        bodies.append((body, dtype, fmt_small, f"sarsa-lambda tile coding ({dtype})", [], None))
    elif info.family == "linear":
        dtype = "fp32" if device.fpu or not ctx.mcu else "int16"
        body = costs.linear_body(obs, act, 4 if dtype == "fp32" else 2)
        bodies.append((body, dtype, fmt_small, f"{info.id} linear ({dtype})", [], None))
    else:
        if ctx.eight_bit:
            return []
        hidden = [int(w) for w in params.get("net_arch", [64, 64])]
        default_act = "tanh" if info.id in ("ppo", "a2c") else "relu"
        activation = str(params.get("activation_fn", default_act))
        fmt = "c" if ctx.mcu else ("onnx" if device.device_class == "gpu" else "numpy")
        # Per shape, dtypes in preference order; make_plan keeps the first that fits and
        # chooses among the shapes (rlbudget.plan.widths.choose).
        # MCUs deploy int8 only; elsewhere fp32 first, int8 when fp32 does not fit.
        dtypes = ("int8",) if ctx.mcu else ("fp32", "int8")
        for shape in shapes(info.id, env.env_id, hidden):
            for dtype in dtypes:
                reasons: list[str] = []
                if dtype == "int8":
                    reasons.append(
                        rule("int8", "MCU: deploy int8 (4× smaller than fp32, integer kernels).")
                        if ctx.mcu
                        else rule("int8", "fp32 does not fit the limits: deploy int8.")
                    )
                body = costs.mlp_body(obs, act, shape.hidden, activation, dtype, device.fpu)
                label = f"{info.id} mlp {shape.name} {dtype}"
                bodies.append((body, dtype, fmt, label, reasons, shape))

    out: list[_Candidate] = []
    for body, dtype, fmt, label, extra, mlp_shape in bodies:
        score, reasons = preference(info, env, ctx, body)
        if body.kind == "mlp":
            params_out = {**params, "net_arch": body.network["hidden"]}
        else:
            params_out = dict(params)
        if ctx.sparse_reward:  # rule sparse-reward: the exploration bonus, training only
            params_out.update(sparse.bonus(info.id))
        out.append(
            _Candidate(info, hp, body, dtype, fmt, label,
                       tuple(base_reasons + reasons + extra), score, params_out, mlp_shape)
        )  # fmt: skip
    return out


def _no_device_learner(algorithm: str) -> str | None:
    """Under ``inference.learn``: why ``algorithm`` cannot keep learning on the device
    (rule ``on-device-learning``), or None when ``export --learn`` exports its learner."""
    from rlbudget.profile.learn import LEARNERS

    if algorithm in LEARNERS:
        return None
    return rule("on-device-learning", f"{algorithm} has no on-device learner (export --learn "
                f"exports {', '.join(LEARNERS)}); inference.learn asks the deployed policy "
                "to keep learning")  # fmt: skip


Evaluated = tuple[_Candidate, Estimates, tuple[Check, ...], tuple[str, ...]]


def _pick_width(evaluated: list[Evaluated]) -> Evaluated:
    """An MLP algorithm's candidates (shapes × dtypes) → the one to plan: per shape the
    first dtype that fits (else the first), then the shape :func:`~rlbudget.plan.widths.choose`
    keeps, with its ``[width]`` reason."""
    by_shape: dict[tuple[int, ...], list[Evaluated]] = {}
    for e in evaluated:
        assert e[0].shape is not None
        by_shape.setdefault(e[0].shape.hidden, []).append(e)
    best = [next((e for e in group if all(c.status != "FAIL" for c in e[2])), group[0])
            for group in by_shape.values()]  # fmt: skip
    tried = [Tried(e[0].shape, e[2], e[1].train_time_s) for e in best if e[0].shape]
    index, why = choose(tried)
    cand, est, checks, notes = best[index]
    return cand, est, checks, (*notes, why) if why else notes


def _cascades(
    evaluated: list[Evaluated], budget: Budget, env: EnvSpec, ctx: Context, cal: Calibration | None
) -> list[Evaluated]:
    """Rule ``cascade``: when no plain candidate of an MLP algorithm fits, a cascade of each
    one that :func:`~rlbudget.plan.cascade.fires` (energy over, the rest met), estimated;
    :func:`_pick_width` takes one only where no plain dtype of its shape fits."""
    if budget.inference.learn or any(all(c.status != "FAIL" for c in e[2]) for e in evaluated):
        return []
    out = []
    for cand, _, checks, _ in evaluated:
        if cand.body.kind == "mlp" and cand.shape is not None and cascade.fires(checks):
            variant = replace(cand, method=cascade.METHOD, label=f"{cand.label} + cascade")
            out.append((variant, *_estimate(variant, budget, env, ctx, cal)))
    return out


def _prior_fits(info: AlgorithmInfo, budget: Budget) -> bool:
    """bc needs a teacher or demos in the budget, dagger a teacher."""
    task = budget.task
    return bool(task.teacher) if info.id == "dagger" else bool(task.teacher or task.demos)


def make_plan(
    budget: Budget, env: EnvSpec | str | None = None, *, calibration: Calibration | bool = True
) -> Plan:
    """Rank every compatible algorithm for ``budget`` on ``env``.

    :param budget: a loaded :class:`~rlbudget.budget.Budget`.
    :param env: an :class:`EnvSpec`, a gymnasium id (overrides ``task.env``), or None for
        ``task.env``.
    :param calibration: True: this host's calibration from the cache, if measured
        (``rlbudget calibrate``); False: none (algorithms.yaml's figures and the width law);
        or a :class:`~rlbudget.plan.calibrate.Calibration` to use.
    :raises PlanError: no env given anywhere.
    :raises RlbudgetError: the calibration cache exists but cannot be read.
    """
    if budget.task.kind == "bandit" and env is None and budget.task.env_id is None:
        from rlbudget.bandits.plan import bandit_plan  # logged data only

        return bandit_plan(budget, None)
    if not isinstance(env, EnvSpec):
        from rlbudget.envs import env_spec

        env_id = env or budget.task.env_id
        if not env_id:
            raise PlanError(
                f"{budget.source or 'budget'}: no environment: set task.env in the budget "
                "or pass --env (for example --env CartPole-v1)"
            )
        env = env_spec(env_id)
    if budget.task.kind == "bandit" or env.max_episode_steps == 1:
        from rlbudget.bandits.plan import bandit_plan

        return bandit_plan(budget, env)
    infos = list(algorithms().values())
    excluded: list[tuple[str, str]] = []
    usable: list[AlgorithmInfo] = []
    replay_refused = None  # training.replay that this env's observations cannot be stored in
    if budget.training.replay:
        try:
            where = f"environment '{env.env_id}'"
            Storage.parse(budget.training.replay).check(env.observation, where)
        except PlanError as exc:
            replay_refused = f"[replay-ram] training.replay: {budget.training.replay}: {exc}"
    for info in infos:
        why = info.incompatibility(env)
        if why is not None:
            excluded.append((info.id, f"[spaces] {why}"))
        elif info.replay_buffer and replay_refused:  # train would refuse it the same way
            excluded.append((info.id, replay_refused))
        else:
            usable.append(info)
    cal = load_calibration() if calibration is True else calibration or None
    ctx = replace(facts(budget, env, usable, cal), throughput=(
        f"calibrated on this host ({cal.measured[:10]}, {cal.key.text})" if cal else
        "not calibrated: algorithms.yaml's figures scaled by the width law; "
        f"`rlbudget calibrate` measures this host (cache: {cache_path()})"))  # fmt: skip

    options: list[Option] = []
    for info in usable:
        if info.family == "imitation" and not _prior_fits(info, budget):
            need = "task.teacher" if info.id == "dagger" else "task.teacher or task.demos"
            excluded.append((info.id, f"[prior-knowledge] learns from a teacher: needs {need}"))
            continue
        if not info.trainable and not ctx.expensive_env:
            excluded.append(
                (info.id, "[not-yet] deep model-based; listed only when the env is expensive")
            )
            continue
        if budget.inference.learn and (why := _no_device_learner(info.id)):
            excluded.append((info.id, why))
            continue
        cands = _candidates(budget, env, ctx, info)
        if not cands:
            if ctx.eight_bit and not info.tabular:
                why = f"[8-bit] {RULES['8-bit'].text}"
            else:
                why = f"[spaces] a table here would have over {MAX_TABLE_STATES:,} states"
            excluded.append((info.id, why))
            continue
        evaluated = [(cand, *_estimate(cand, budget, env, ctx, cal)) for cand in cands]
        evaluated += _cascades(evaluated, budget, env, ctx, cal)
        if len(evaluated) > 1:  # an MLP's shapes and dtypes: keep one
            evaluated = [_pick_width(evaluated)]
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
                    deploy_method=cand.method,
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
            reasons = (*reasons, rule("fits"))
        final.append(replace(o, rank=i, reasons=reasons))
    return Plan(budget, env, ctx, tuple(final), tuple(excluded))


def save_plan(plan: Plan, path: str | os.PathLike[str]) -> None:
    """Write the plan as YAML (atomically); ``rlbudget train PLAN.yaml`` reads it."""
    import yaml

    from rlbudget.fileio import atomic_write_text

    text = yaml.safe_dump(plan.to_dict(), sort_keys=False, allow_unicode=True, width=100)
    atomic_write_text(path, text)
