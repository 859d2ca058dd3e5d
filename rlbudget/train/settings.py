"""What a training run is: its settings resolved from an algorithm, an env, a budget's
limits (or a plan's) and hyperparameter overrides (:func:`resolve`), written to and read
back from config.yaml (:func:`load_settings`), and the agent they configure."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlbudget.budget import DEFAULT_MARGIN, Budget, Task, TrainingLimits
from rlbudget.errors import PlanError, RlbudgetError
from rlbudget.hyperparams import AlgorithmInfo, algorithm_info, get_hyperparams
from rlbudget.limits import target_return

if TYPE_CHECKING:
    from rlbudget.agents.common import TrainResult
    from rlbudget.envs import EnvSpec
    from rlbudget.plan import PlanChoice

LEAN = ("lean-sac", "lean-td3")  # the built-in torch SAC/TD3 (agents/offpolicy.py)
BUILTIN = ("q-learning", "sarsa", "expected-sarsa", "dyna-q", "sarsa-lambda", "ars", "pets",
           "mbpo", *LEAN, "bc", "dagger")  # fmt: skip
# Config fields that are a run's inputs, not hyperparameters (imitation: where from;
# pets: the target its planner is checked against).
INPUTS = {"algorithm", "teacher", "demos", "init", "target_return"}
# Hyperparameter-file keys that are names for a config field, or that the agents ignore.
RENAMED = {"lambda": "lam"}
IGNORED = {"normalize"}  # ARS always normalizes observations


@dataclass(frozen=True)
class RunSettings:
    """Everything a run needs, resolved: written to config.yaml."""

    algorithm: str
    env_id: str
    seed: int
    n_timesteps: int
    n_timesteps_from: str
    hyperparameters: dict[str, Any]
    hyperparameters_source: str
    time_limit_s: float | None
    target_return: float | None
    target_from: str
    eval_every: int
    eval_episodes: int
    checkpoint_every: int
    # Stable-Baselines3 runs only (defaults keep older config.yaml files readable).
    library: str = "builtin"
    n_envs: int = 1
    torch_threads: int | None = None
    replay_capacity: int | None = None
    replay_bytes_per_transition: int | None = None
    replay_from: str | None = None
    exploration: str | None = None
    # Prior knowledge (rlbudget.agents.prior): what the run starts from, and the env's
    # gymnasium.make kwargs (task.env_kwargs).
    teacher: str | None = None
    demos: str | None = None
    init: str | None = None
    env_kwargs: dict[str, Any] | None = None
    # Parallel collection (training.cores > 1, rlbudget.parallel): SB3's envs in
    # env_workers processes, evaluation episodes in eval_workers, and why.
    env_workers: int = 1
    eval_workers: int = 1
    parallel: str | None = None


@dataclass(frozen=True)
class Limits:
    """The training limits a run obeys: from a budget, a plan's budget, or none."""

    env_steps: int | None = None
    time_s: float | None = None
    min_return: float | None = None
    ram_bytes: int | None = None
    cores: int | None = None
    margin: float = DEFAULT_MARGIN
    replay: str | None = None  # training.replay: the replay storage
    env_step_cost_s: float | None = None  # task.env_step_cost

    @classmethod
    def of(cls, training: TrainingLimits, task: Task, margin: float) -> Limits:
        return cls(training.env_steps, training.time_s, task.min_return, training.ram_bytes,
                   training.cores, margin, training.replay, task.env_step_cost_s)  # fmt: skip

    @classmethod
    def from_budget(cls, budget: Budget) -> Limits:
        return cls.of(budget.training, budget.task, budget.margin)


def agent(algorithm: str) -> tuple[type, Callable[..., TrainResult]]:
    from rlbudget.agents import linear, tabular
    from rlbudget.sb3 import training as sb3

    if algorithm in sb3.ALGORITHMS:
        return sb3.SB3Config, sb3.train_sb3
    if algorithm in tabular.ALGORITHMS:
        return tabular.TabularConfig, tabular.train_tabular
    if algorithm == "sarsa-lambda":
        return linear.SarsaLambdaConfig, linear.train_sarsa_lambda
    if algorithm == "pets":
        from rlbudget.agents.model_based import pets

        return pets.PETSConfig, pets.train_pets
    if algorithm == "mbpo":
        from rlbudget.agents.model_based import mbpo

        return mbpo.MBPOConfig, mbpo.train_mbpo
    if algorithm in LEAN:
        from rlbudget.agents import offpolicy

        return offpolicy.OffPolicyConfig, offpolicy.train_offpolicy
    if algorithm in ("bc", "dagger"):
        from rlbudget.agents import imitation

        return imitation.ImitationConfig, imitation.train_imitation
    return linear.ARSConfig, linear.train_ars


def resolve(
    algorithm: str,
    env_id: str,
    *,
    env_steps: int | None = None,
    time_s: float | None = None,
    min_return: float | None = None,
    reward_threshold: float | None = None,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    ram_bytes: int | None = None,
    cores: int | None = None,
    margin: float = DEFAULT_MARGIN,
    env_steps_from: str = "training.env_steps in the budget",
    replay: str | None = None,
    env_step_cost_s: float | None = None,
) -> RunSettings:
    """Resolve hyperparameters, the step budget and the target for one run.

    :param env_steps: ``training.env_steps`` (None: the hyperparameter file's n_timesteps).
    :param env_steps_from: where ``env_steps`` came from, in words (config.yaml says it).
    :param time_s: ``training.time`` (None: no time limit).
    :param min_return: ``task.min_return`` (None: the env's ``reward_threshold``).
    :param overrides: hyperparameters that replace the file's (e.g. a plan's).
    :param ram_bytes: ``training.ram``: bounds an SB3 replay buffer (with ``margin``).
    :param cores: ``training.cores``: the torch threads of SB3 and pets, the BLAS threads
        of lean-sac and lean-td3
        (None: 1), and the worker processes of SB3's envs and of evaluation episodes where
        the env's step cost makes them pay (:mod:`rlbudget.parallel`).
    :param replay: ``training.replay``: the replay storage (e.g. ``float16+zstd``) unless the
        hyperparameters ``replay_storage``/``replay_compress`` say otherwise.
    :param env_step_cost_s: ``task.env_step_cost`` (None: measured when ``cores`` > 1).

    :raises PlanError: an unknown algorithm, one rlbudget cannot train, an unknown
        hyperparameter, or a replay buffer that ``training.ram`` leaves no room for.
    """
    info = algorithm_info(algorithm)
    sb3_ids = _sb3_ids()
    if info.id not in BUILTIN and info.id not in sb3_ids:
        raise PlanError(
            f"algorithm '{info.id}': rlbudget cannot train it yet; trainable algorithms: "
            f"{', '.join((*BUILTIN, *sb3_ids))}"
        )
    hp = get_hyperparams(info.id, env_id)
    merged = {**hp.params, **(overrides or {})}
    tuned = f"tuned for {env_id}" if hp.tuned else "the generic default (not tuned for this env)"
    if env_steps is not None:
        n_timesteps, n_from = env_steps, env_steps_from
    else:
        n_timesteps, n_from = hp.n_timesteps, f"n_timesteps of the hyperparameter file, {tuned}"
    if replay is not None and info.replay_buffer:  # training.replay, under -p's keys
        from rlbudget.replay import Storage

        budget_storage = Storage.parse(replay)
        merged.setdefault("replay_storage", budget_storage.dtype)
        merged.setdefault("replay_compress", budget_storage.compress)
    extra: dict[str, Any] = {}
    if info.id in sb3_ids:
        from rlbudget.sb3.training import EXPLORATION, check_hyperparameters

        check_hyperparameters(info.id, merged)
        extra = {"library": "sb3", "n_envs": int(merged.get("n_envs", 1)),
                 "torch_threads": int(cores or 1), "exploration": EXPLORATION,
                 **_replay(info, env_id, merged, n_timesteps, ram_bytes, margin)}  # fmt: skip
        params = merged
    else:
        params = _builtin_params(info.id, merged)
        if info.id == "pets" and cores is not None and "threads" not in merged:
            params["threads"] = int(cores)  # the planner's torch threads: training.cores
        if info.id in LEAN:  # BLAS threads from training.cores
            params.setdefault("threads", int(cores or 1))
            extra = {"torch_threads": params["threads"]}
            extra.update(_replay(info, env_id, params, n_timesteps, ram_bytes, margin))
            if extra.get("replay_capacity") is not None:
                params["buffer_size"] = extra["replay_capacity"]
    if cores is not None and cores > 1:
        extra.update(_parallel(env_id, info.id, extra.get("n_envs"), cores, env_step_cost_s,
                               n_timesteps))  # fmt: skip
    target = target_return(Task(env_id, min_return), env_id, reward_threshold)
    return RunSettings(
        algorithm=info.id,
        env_id=env_id,
        seed=seed,
        n_timesteps=n_timesteps,
        n_timesteps_from=n_from,
        hyperparameters=params,
        hyperparameters_source=hp.source,
        time_limit_s=time_s,
        target_return=target.value,
        target_from=target.source,
        eval_every=max(1_000, n_timesteps // 20),
        eval_episodes=100,
        checkpoint_every=max(1_000, n_timesteps // 10),
        **extra,
    )


def _parallel(env_id: str, algorithm: str, n_envs: int | None, cores: int,
              declared_s: float | None, steps: int) -> dict[str, Any]:  # fmt: skip
    """env_workers, eval_workers and why (RunSettings fields), from the step cost; SB3's
    envs only (``n_envs`` not None: the built-in agents learn from one env, step by step)."""
    from rlbudget import parallel

    cost, source = parallel.cost_from(declared_s, env_id)
    if n_envs is None:
        layout = parallel.Layout(1, f"{algorithm} learns from one env, step by step")
    else:
        layout = parallel.collection(n_envs, cores, cost, source, steps)
    evals = parallel.evaluation(cores, cost, parallel.episode_steps(env_id))
    out: dict[str, Any] = {
        "env_workers": layout.workers,
        "eval_workers": evals,
        "parallel": f"{layout.why}; {parallel.describe_eval(evals)}",
    }
    if layout.workers > 1:  # the cores go to the env workers: torch's threads would spin
        out.update(torch_threads=1, parallel=f"{out['parallel']}; 1 torch thread")
    return out


def check_spaces(algorithm: str, spec: EnvSpec) -> None:
    """Refuse an algorithm that cannot act in ``spec``'s spaces (the planner's rule), before
    an agent (or SB3's own assertion) does.

    :param spec: the env's :class:`~rlbudget.envs.EnvSpec`.
    :raises PlanError: naming the algorithm, the env and what it needs.
    """
    info = algorithm_info(algorithm)
    reason = info.incompatibility(spec)
    if reason is not None:
        raise PlanError(
            f"{info.id} cannot train on {spec.env_id}: it {reason}; choose another algorithm "
            f"(rlbudget plan --env {spec.env_id} lists those that fit)"
        )


def parse_hyperparams(pairs: Sequence[str]) -> dict[str, Any]:
    """``["learning_rate=3e-4", "net_arch=[64, 64]"]`` → a dict, each value read as YAML
    (as RL Zoo's ``-params``). Whether a key exists is :func:`resolve`'s check.

    >>> parse_hyperparams(["gamma=0.98", "normalize=true", "lr=lin_1e-3", "ent_coef=5e-3"])
    {'gamma': 0.98, 'normalize': True, 'lr': 'lin_1e-3', 'ent_coef': 0.005}

    :raises PlanError: a pair without ``=``, an empty key, or a value that is not YAML.
    """
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise PlanError(
                f"--hyperparams '{pair}': write KEY=VALUE, e.g. --hyperparams learning_rate=3e-4"
            )
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "not valid YAML"
            raise PlanError(
                f"--hyperparams {key}: value '{text}' is not valid YAML ({problem}); "
                "write a number, true/false, a word or a list like [64, 64]"
            ) from None
        if isinstance(value, str) and _NUMBER.fullmatch(value):
            value = float(value)  # YAML 1.1 reads 5e-2 and 1e-3 as strings
        out[key] = value
    return out


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _sb3_ids() -> tuple[str, ...]:
    from rlbudget.sb3.training import ALGORITHMS

    return tuple(ALGORITHMS)


def _field_names(config_cls: type) -> set[str]:
    return {f.name for f in fields(config_cls)}


def _check_number(algorithm: str, key: str, value: Any, default: Any) -> None:
    """A hyperparameter whose default is a number (bool: a bool) gets a finite one (a
    string such as ``nan`` or ``abc`` reached the trainer's arithmetic: exit 3).

    :raises PlanError: one line naming the key and the value.
    """
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise PlanError(f"hyperparameter '{key}' = {value!r}: {algorithm} takes true or "
                            "false")  # fmt: skip
    elif isinstance(default, int | float):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise PlanError(f"hyperparameter '{key}' = {value!r}: {algorithm} takes a finite "
                            f"number, e.g. {key}={default}")  # fmt: skip


def _builtin_params(algorithm: str, merged: dict[str, Any]) -> dict[str, Any]:
    config_cls, _ = agent(algorithm)
    names = _field_names(config_cls) - INPUTS  # the algorithm, the teacher: not hyperparameters
    defaults = {f.name: f.default for f in fields(config_cls)}
    params: dict[str, Any] = {}
    for key, value in merged.items():
        key = RENAMED.get(key, key)
        if key in ("n_timesteps", "seed"):  # the run's own settings, not hyperparameters
            option = "--steps" if key == "n_timesteps" else "--seed"
            raise PlanError(f"hyperparameter '{key}' is the run's {option}; give {option} "
                            "instead")  # fmt: skip
        if key in names:
            _check_number(algorithm, key, value, defaults[key])
            params[key] = value
        elif key not in IGNORED:
            raise PlanError(
                f"hyperparameter '{key}' is not one {algorithm} takes; it takes "
                f"{', '.join(sorted(names - {'seed', 'n_timesteps'}))}"
            )
    return params


def _replay(
    info: AlgorithmInfo,
    env_id: str,
    params: dict[str, Any],
    n_timesteps: int,
    ram_bytes: int | None,
    margin: float,
) -> dict[str, Any]:
    """The replay capacity of an SB3 or lean run (RunSettings fields), from
    :func:`rlbudget.replay.replay_buffer` with the storage the hyperparameters ask for."""
    if not info.replay_buffer:
        return {}
    from rlbudget.costs import mlp_parameters, training_ram_bytes
    from rlbudget.envs import env_spec
    from rlbudget.replay import Storage, replay_buffer

    spec = env_spec(env_id, measure_steps=0)
    storage = Storage.from_params(params)
    storage.check(spec.observation, f"environment '{env_id}'")
    if storage.compress != "none":  # its package, before the run folder is written
        from rlbudget.replay import codec

        codec(storage.compress)
    hidden = [int(w) for w in params.get("net_arch", [64, 64])]
    other = training_ram_bytes(info.library, mlp_parameters(spec.observation, spec.action, hidden))
    replay = replay_buffer(
        int(params.get("buffer_size", 1_000_000)), n_timesteps, spec.observation,
        spec.action, other_ram_bytes=other, ram_bytes=ram_bytes, margin=margin,
        storage=storage,
    )  # fmt: skip
    batch = int(params.get("batch_size", 256))
    wanted = min(int(params.get("buffer_size", 1_000_000)), max(n_timesteps, 1))
    if replay.capacity < batch and replay.capacity == wanted:  # the steps or buffer_size
        raise PlanError(
            f"{info.id}: a replay buffer of {replay.capacity} transitions (the run's "
            f"{n_timesteps} steps, buffer_size {params.get('buffer_size', 1_000_000)}) is "
            f"fewer than one batch ({batch}); train for more steps or lower batch_size "
            f"(-p batch_size={max(1, replay.capacity)})"
        )
    if replay.capacity < batch:
        compact = ", store them compactly (training.replay: float16+zstd)"
        compact = compact if replay.capacity and not storage.compact else ""
        raise PlanError(
            f"training.ram leaves room for {replay.capacity} replay transitions, fewer than "
            f"one batch ({batch}) of {info.id}; raise training.ram{compact} or choose an "
            "on-policy algorithm (ppo, a2c)"
        )
    return {"replay_capacity": replay.capacity,
            "replay_bytes_per_transition": replay.bytes_per_transition,
            "replay_from": replay.note}  # fmt: skip


def read_plan(path: str | os.PathLike[str], option: int | None = 1) -> tuple[PlanChoice, Limits]:
    """One option of a plan written by ``rlbudget plan -o`` (schema checked, through
    :func:`rlbudget.plan.load_plan`) and the training limits of the plan's budget.

    :param option: 1-based; None: the first option rlbudget can train.
    :raises PlanError: a missing file, another schema, no such option or one rlbudget
        cannot train — one line naming the file.
    """
    from rlbudget.plan import load_plan

    saved = load_plan(path)
    try:
        choice = saved.choose(option)
    except PlanError as exc:
        raise PlanError(f"{path}: {exc}") from None
    return choice, Limits.of(saved.training, saved.task, saved.margin)


def run_settings(
    algorithm: str | None = None,
    env_id: str | None = None,
    *,
    plan: Path | None = None,
    option: int = 1,
    budget: Budget | None = None,
    seed: int = 0,
    env_steps: int | None = None,
    time_s: float | None = None,
    overrides: Mapping[str, Any] | None = None,
    env_steps_from: str = "the env_steps argument",
    teacher: str | None = None,
    demos: str | None = None,
    init: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> RunSettings:
    """What ``rlbudget train`` runs. Later inputs win: a plan option (its algorithm, env,
    hyperparameters and its budget's training limits), then ``budget`` (its training
    limits replace the plan's; its env is used when none is given), then ``env_steps``,
    ``time_s`` and ``overrides`` one by one. The algorithm is checked against the env's
    spaces before anything is trained.

    :param plan: a plan written by ``rlbudget plan -o``; its option ``option`` (from 1).
    :param env_steps_from: where ``env_steps`` came from, in words (config.yaml says it).
    :param teacher: bc/dagger: a policy folder, SB3 zip or RL Zoo folder (else the budget's
        ``task.teacher``).
    :param demos: bc/dagger: a demos ``.npz`` (else the budget's ``task.demos``).
    :param init: a policy to start from (warm start; :mod:`rlbudget.agents.warmstart`).
    :param env_kwargs: ``gymnasium.make`` kwargs (else the budget's ``task.env_kwargs``).
    :raises PlanError: nothing says what to train, a bad plan file or option, or an
        algorithm that cannot train on the env (and everything :func:`resolve` raises).
    :raises RlbudgetError: a teacher, demos file or init policy that cannot be read or does
        not fit the env (checked here, before anything is written).
    """
    from rlbudget.agents.prior import IMITATION, check_prior
    from rlbudget.env_kwargs import env_kwargs_applied

    if budget is not None and env_kwargs is None:
        env_kwargs = budget.task.env_kwargs
    with env_kwargs_applied(env_id or (budget.task.env_id if budget else None) or "",
                            env_kwargs):  # fmt: skip
        settings = _run_settings(algorithm, env_id, plan=plan, option=option, budget=budget,
                                 seed=seed, env_steps=env_steps, time_s=time_s,
                                 overrides=overrides, env_steps_from=env_steps_from)  # fmt: skip
    _check_trainer_config(settings)
    if budget is not None and settings.algorithm in IMITATION:  # else the budget's are unused
        teacher, demos = teacher or budget.task.teacher, demos or budget.task.demos
    return check_prior(settings, teacher=teacher, demos=demos, init=init, env_kwargs=env_kwargs)


def _check_trainer_config(settings: RunSettings) -> None:
    """The hyperparameter checks of lean-sac/lean-td3 and mbpo, before the run folder is
    made (they run again when training starts)."""
    if settings.algorithm in ("lean-sac", "lean-td3"):
        from rlbudget.agents.offpolicy import check_config

        check_config(make_config(settings))
    elif settings.algorithm == "mbpo":
        from rlbudget.agents.model_based.mbpo import check_config as check_mbpo

        check_mbpo(make_config(settings))


def _run_settings(
    algorithm: str | None,
    env_id: str | None,
    *,
    plan: Path | None,
    option: int,
    budget: Budget | None,
    seed: int,
    env_steps: int | None,
    time_s: float | None,
    overrides: Mapping[str, Any] | None,
    env_steps_from: str,
) -> RunSettings:
    from rlbudget.envs import env_spec

    limits = Limits()
    params: dict[str, Any] = {}
    if plan is not None:
        choice, limits = read_plan(plan, option)
        algorithm, env_id, params = choice.algorithm, env_id or choice.env, dict(choice.params)
    if budget is not None:
        env_id = env_id or budget.task.env_id
        limits = Limits.from_budget(budget)
    if algorithm is None or env_id is None:
        raise PlanError(
            "say what to train: a plan file (rlbudget train plan.yaml), or --algo and --env "
            "(rlbudget train --algo q-learning --env FrozenLake-v1)"
        )
    if env_steps is None:
        env_steps, env_steps_from = limits.env_steps, "training.env_steps in the budget"
    spec = env_spec(env_id, measure_steps=0)
    check_spaces(algorithm, spec)
    return resolve(
        algorithm, env_id, env_steps=env_steps, env_steps_from=env_steps_from,
        time_s=limits.time_s if time_s is None else time_s, min_return=limits.min_return,
        reward_threshold=spec.reward_threshold, seed=seed,
        overrides={**params, **(overrides or {})}, ram_bytes=limits.ram_bytes,
        cores=limits.cores, margin=limits.margin, replay=limits.replay,
        env_step_cost_s=limits.env_step_cost_s,
    )  # fmt: skip


def load_settings(run_dir: str | os.PathLike[str]) -> RunSettings:
    """The settings a run was started with, from its config.yaml (for --resume).

    :raises RlbudgetError: no run there, or a config.yaml this version cannot read.
    """
    import yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RlbudgetError(f"{run_dir}: not a run folder (no config.yaml); check the path")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data.pop("versions", None)
        return RunSettings(**data)
    except (yaml.YAMLError, TypeError, AttributeError) as exc:
        raise RlbudgetError(f"{path}: cannot be read as a run configuration ({exc})") from None


def _replay_max_bytes(settings: RunSettings) -> int | None:
    """A compact replay buffer's byte cap: the capacity at the estimated bytes each."""
    if settings.replay_capacity is None or settings.replay_bytes_per_transition is None:
        return None
    return settings.replay_capacity * settings.replay_bytes_per_transition


def make_config(settings: RunSettings, tensorboard: str | os.PathLike[str] | None = None) -> Any:
    """The agent's own config dataclass for ``settings`` (SB3: with its TensorBoard folder)."""
    config_cls, _ = agent(settings.algorithm)
    if settings.library == "sb3":
        return config_cls(settings.algorithm, settings.n_timesteps, settings.seed,
                          dict(settings.hyperparameters), settings.n_envs,
                          settings.torch_threads or 1, settings.replay_capacity,
                          None if tensorboard is None else str(tensorboard),
                          settings.init, _replay_max_bytes(settings),
                          env_workers=settings.env_workers)  # fmt: skip
    # TabularConfig serves four algorithms and must be told which.
    names = _field_names(config_cls)
    which = {k: getattr(settings, k) for k in INPUTS if k in names}
    return config_cls(**settings.hyperparameters, **which, n_timesteps=settings.n_timesteps,
                      seed=settings.seed)  # fmt: skip
