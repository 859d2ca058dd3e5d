"""Training runs for the built-in agents: limits, early stop, and the run folder.

``resolve`` decides what to train (algorithm, env, hyperparameters with their source,
step budget, target); ``train_run`` runs the agent and stops at the first of

- the step budget: ``training.env_steps`` from the budget, else the hyperparameter
  file's ``n_timesteps`` for this env (tuned, or the generic default — said which);
- ``training.time`` (checked at the end of each episode);
- the target return (``task.min_return``, else the env's ``reward_threshold``), in two
  stages (:func:`target_met`): every ``eval_every`` steps the greedy policy is screened
  over ``eval_episodes`` (100) episodes on a separate evaluation env; when the screen's
  mean reaches the target, the policy is confirmed on fresh episodes, as many as the
  final measurement of ``rlbudget run`` takes (:func:`rlbudget.profile.evaluate.default_episodes`:
  100 to 1,000, e.g. 500 for FrozenLake), and training stops only when the 95 % lower
  confidence bound of their mean return is at or above the target. A policy stopped
  this way meets the target on fresh episodes (``benchmarks/early_stop.py``), where a
  100-episode screen alone stops on lucky evaluations;

and writes the run folder::

    RUN_DIR/policy/        the trained policy (policy.json + policy.safetensors)
    RUN_DIR/config.yaml    everything resolved: algorithm, env, seed, hyperparameters
                           (with their source), limits, versions
    RUN_DIR/metrics.csv    step, episode, return, length, wall_s, exploration
    RUN_DIR/summary.json   why it stopped, steps, wall time, steps/s, last evaluation
    RUN_DIR/curve.png      the learning curve

Every file is written atomically, and ``RUN_DIR/checkpoint/`` is kept (every
``checkpoint_every`` steps and at the stop; ARS at iteration boundaries, SB3 at rollout
boundaries) so that ``resume=True`` continues (exactly for the built-in agents; for
Stable-Baselines3 see :mod:`rlbudget.sb3.checkpoint` for what a resume reproduces);
Ctrl-C/SIGTERM stop a run cleanly with everything saved. summary.json also holds the
run's ``peak_rss_bytes`` (psutil, sampled every 0.2 s), ``rapl_energy_j`` (the CPU
package's RAPL counter where the host has one, else null), ``wall_s`` and ``cpu_s`` (process
CPU time), accumulated over resumes.

Stable-Baselines3 algorithms (PPO, A2C, DQN, SAC, TD3; QR-DQN, TQC, TRPO with
``rlbudget[contrib]``) run through the same ``train_run``: :func:`resolve` also fixes
their ``n_envs``, torch threads (``training.cores``, default 1) and replay capacity
(:func:`rlbudget.costs.replay_buffer`, from ``training.ram``), all written to config.yaml.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from rlbudget import __version__
from rlbudget.agents.common import Episode, TrainResult
from rlbudget.budget import DEFAULT_MARGIN, Budget, Task
from rlbudget.errors import PlanError, RlbudgetError, TrainingError
from rlbudget.fileio import LOCK, atomic_write_text, check_unlocked, dir_lock, is_empty_dir
from rlbudget.hyperparams import AlgorithmInfo, algorithm_info, get_hyperparams
from rlbudget.limits import target_return
from rlbudget.policy.model import Policy

RSS_SAMPLE_S = 0.2  # how often the peak-RSS sampler looks
BUILTIN = ("q-learning", "sarsa", "expected-sarsa", "dyna-q", "sarsa-lambda", "ars")
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


@dataclass(frozen=True)
class Limits:
    """The training limits a run obeys: from a budget, a plan's budget, or none."""

    env_steps: int | None = None
    time_s: float | None = None
    min_return: float | None = None
    ram_bytes: int | None = None
    cores: int | None = None
    margin: float = DEFAULT_MARGIN

    @classmethod
    def from_budget(cls, budget: Budget) -> Limits:
        t = budget.training
        return cls(t.env_steps, t.time_s, budget.task.min_return, t.ram_bytes, t.cores,
                   budget.margin)  # fmt: skip


@dataclass(frozen=True)
class RunResult:
    settings: RunSettings
    run_dir: Path
    stopped_by: str
    steps: int
    wall_s: float
    episodes: int
    last_eval: float | None
    cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    rapl_energy_j: float | None = None
    # The confirmation that stopped the run at its target: episodes, mean, lower_95, seed.
    target_check: dict[str, Any] | None = None

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "algorithm": self.settings.algorithm,
            "env": self.settings.env_id,
            "seed": self.settings.seed,
            "stopped_by": self.stopped_by,
            "steps": self.steps,
            "episodes": self.episodes,
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "peak_rss_bytes": self.peak_rss_bytes,
            "rapl_energy_j": self.rapl_energy_j,
            "steps_per_s": self.steps_per_s,
            "target_return": self.settings.target_return,
            "last_eval_return": self.last_eval,
            "target_check": self.target_check,
        }


def _agent(algorithm: str) -> tuple[type, Callable[..., TrainResult]]:
    from rlbudget.agents import linear, tabular
    from rlbudget.sb3 import training as sb3

    if algorithm in sb3.ALGORITHMS:
        return sb3.SB3Config, sb3.train_sb3
    if algorithm in tabular.ALGORITHMS:
        return tabular.TabularConfig, tabular.train_tabular
    if algorithm == "sarsa-lambda":
        return linear.SarsaLambdaConfig, linear.train_sarsa_lambda
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
) -> RunSettings:
    """Resolve hyperparameters, the step budget and the target for one run.

    :param env_steps: ``training.env_steps`` (None: the hyperparameter file's n_timesteps).
    :param env_steps_from: where ``env_steps`` came from, in words (config.yaml says it).
    :param time_s: ``training.time`` (None: no time limit).
    :param min_return: ``task.min_return`` (None: the env's ``reward_threshold``).
    :param overrides: hyperparameters that replace the file's (e.g. a plan's).
    :param ram_bytes: ``training.ram``: bounds an SB3 replay buffer (with ``margin``).
    :param cores: ``training.cores``: SB3's torch threads (None: 1).

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
    extra: dict[str, Any] = {}
    if info.id in sb3_ids:
        extra = _resolve_sb3(info, env_id, merged, n_timesteps, ram_bytes, cores, margin)
        params = merged
    else:
        params = _builtin_params(info.id, merged)
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


def check_spaces(algorithm: str, spec: Any) -> None:
    """Refuse an algorithm that cannot act in ``spec``'s spaces (the planner's rule), before
    an agent (or SB3's own assertion) does.

    :param spec: the env's :class:`~rlbudget.envs.EnvSpec`.
    :raises PlanError: naming the algorithm, the env and what it needs.
    """
    from rlbudget.plan import compatible

    info = algorithm_info(algorithm)
    reason = compatible(info, spec)
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


def _builtin_params(algorithm: str, merged: dict[str, Any]) -> dict[str, Any]:
    config_cls, _ = _agent(algorithm)
    names = _field_names(config_cls) - {"algorithm"}  # the algorithm is not a hyperparameter
    params: dict[str, Any] = {}
    for key, value in merged.items():
        key = RENAMED.get(key, key)
        if key in names:
            params[key] = value
        elif key not in IGNORED:
            raise PlanError(
                f"hyperparameter '{key}' is not one {algorithm} takes; it takes "
                f"{', '.join(sorted(names - {'seed', 'n_timesteps'}))}"
            )
    return params


def _resolve_sb3(
    info: AlgorithmInfo,
    env_id: str,
    params: dict[str, Any],
    n_timesteps: int,
    ram_bytes: int | None,
    cores: int | None,
    margin: float,
) -> dict[str, Any]:
    """n_envs, torch threads and the replay capacity of an SB3 run (RunSettings fields)."""
    from rlbudget.sb3.training import EXPLORATION, check_hyperparameters

    check_hyperparameters(info.id, params)
    out: dict[str, Any] = {
        "library": "sb3",
        "n_envs": int(params.get("n_envs", 1)),
        "torch_threads": int(cores or 1),
        "exploration": EXPLORATION,
    }
    if info.replay_buffer:
        from rlbudget.costs import mlp_parameters, replay_buffer, training_ram_bytes
        from rlbudget.envs import env_spec

        spec = env_spec(env_id, measure_steps=0)
        hidden = [int(w) for w in params.get("net_arch", [64, 64])]
        other = training_ram_bytes("sb3", mlp_parameters(spec.observation, spec.action, hidden))
        replay = replay_buffer(
            int(params.get("buffer_size", 1_000_000)), n_timesteps, spec.observation,
            spec.action, other_ram_bytes=other, ram_bytes=ram_bytes, margin=margin,
            optimize_memory_usage=bool(params.get("optimize_memory_usage", False)),
        )  # fmt: skip
        batch = int(params.get("batch_size", 256))
        if replay.capacity < batch:
            raise PlanError(
                f"training.ram leaves room for {replay.capacity} replay transitions, fewer than "
                f"one batch ({batch}) of {info.id}; raise training.ram or choose an on-policy "
                "algorithm (ppo, a2c)"
            )
        out.update(replay_capacity=replay.capacity,
                   replay_bytes_per_transition=replay.bytes_per_transition,
                   replay_from=replay.note)  # fmt: skip
    return out


def read_plan(path: Path, option: int = 1) -> tuple[str, str, dict[str, Any], Limits]:
    """Algorithm, env, hyperparameters and the budget's training limits of one option of
    a plan written by ``rlbudget plan -o``.

    :raises PlanError: a missing or malformed plan file, or no such option.
    """
    import yaml

    if not path.is_file():
        raise PlanError(f"{path}: no such plan file; write one with rlbudget plan BUDGET -o {path}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        options = doc["options"]
        chosen = options[option - 1]
        training, task = doc["budget"]["training"], doc["budget"]["task"]
        limits = Limits(training.get("env_steps"), training.get("time_s"),
                        task.get("min_return"), training.get("ram_bytes"), training.get("cores"),
                        float(doc["budget"].get("margin", DEFAULT_MARGIN)))  # fmt: skip
        return (str(chosen["algorithm"]), str(doc["env"]["env_id"]),
                dict(chosen["hyperparams"]["params"]), limits)  # fmt: skip
    except IndexError:
        raise PlanError(f"{path}: --option {option}: the plan has {len(options)} options") from None
    except (yaml.YAMLError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise PlanError(
            f"{path}: not a plan written by 'rlbudget plan -o' ({type(exc).__name__}: {exc})"
        ) from None


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
) -> RunSettings:
    """What ``rlbudget train`` runs. Later inputs win: a plan option (its algorithm, env,
    hyperparameters and its budget's training limits), then ``budget`` (its training
    limits replace the plan's; its env is used when none is given), then ``env_steps``,
    ``time_s`` and ``overrides`` one by one. The algorithm is checked against the env's
    spaces before anything is trained.

    :param plan: a plan written by ``rlbudget plan -o``; its option ``option`` (from 1).
    :param env_steps_from: where ``env_steps`` came from, in words (config.yaml says it).
    :raises PlanError: nothing says what to train, a bad plan file or option, or an
        algorithm that cannot train on the env (and everything :func:`resolve` raises).
    """
    from rlbudget.envs import env_spec

    limits = Limits()
    params: dict[str, Any] = {}
    if plan is not None:
        algorithm, plan_env, params, limits = read_plan(plan, option)
        env_id = env_id or plan_env
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
        cores=limits.cores, margin=limits.margin,
    )  # fmt: skip


def locate_run(target: Path) -> tuple[Path, Path | None]:
    """The policy folder ``target`` names, and the training run folder that holds it: a
    policy folder gives itself and None; a run folder (``rlbudget train -o RUN``, or any
    folder with ``summary.json`` or ``policy/`` and no ``policy.json``) gives RUN/policy
    and RUN.

    :raises RlbudgetError: a run folder that lacks summary.json or policy/.
    """
    run = not (target / "policy.json").exists() and (
        (target / "summary.json").exists() or (target / "policy").is_dir()
    )
    if not run:
        return target, None
    for needed in ("summary.json", "policy"):
        if not (target / needed).exists():
            raise RlbudgetError(f"{target}: a run folder needs {needed} (rlbudget train -o "
                                "writes both); give the policy folder itself to profile "
                                "the policy alone")  # fmt: skip
    return target / "policy", target


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


def _versions(library: str = "builtin") -> dict[str, str]:
    from importlib import metadata

    import gymnasium
    import numpy

    versions = {
        "rlbudget": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "gymnasium": gymnasium.__version__,
    }
    if library == "sb3":
        for dist in ("torch", "stable-baselines3", "sb3-contrib"):
            with contextlib.suppress(metadata.PackageNotFoundError):  # sb3-contrib: optional
                versions[dist] = metadata.version(dist)
    return versions


class PeakRSS:
    """The process's peak resident memory, sampled by a daemon thread (psutil): torch
    allocations are invisible to tracemalloc."""

    def __init__(self, every_s: float = RSS_SAMPLE_S) -> None:
        import threading

        import psutil

        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.every_s = every_s
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="rlbudget-rss", daemon=True)

    def _run(self) -> None:
        while not self.done.wait(self.every_s):
            self.sample()

    def sample(self) -> int:
        self.peak = max(self.peak, self.process.memory_info().rss)
        return self.peak

    def __enter__(self) -> PeakRSS:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.sample()


RAPL_PACKAGE = Path("/sys/class/powercap/intel-rapl:0")


class RaplEnergy:
    """Joules of CPU package 0 over a span, from Linux's RAPL counter
    (``/sys/class/powercap/intel-rapl:0/energy_uj``), wrap-around included. The counter
    is the whole package's (every process on it), so it is an upper bound for the run.
    ``joules`` is None where the host has no readable counter (VMs, non-Intel/AMD CPUs,
    no permission)."""

    def __init__(self, root: Path = RAPL_PACKAGE) -> None:
        self.root = root
        self.joules: float | None = None
        self._start: int | None = None

    def _read(self, name: str) -> int | None:
        try:
            return int((self.root / name).read_text().strip())
        except (OSError, ValueError):
            return None

    def __enter__(self) -> RaplEnergy:
        self._start = self._read("energy_uj")
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._read("energy_uj")
        if self._start is None or end is None:
            return
        delta = end - self._start
        if delta < 0:  # the counter wrapped once
            delta += self._read("max_energy_range_uj") or 0
        self.joules = delta / 1e6 if delta >= 0 else None


# what a run killed before its first checkpoint leaves
ABANDONED = {"config.yaml", "metrics.csv", LOCK}


def _abandoned(path: Path) -> bool:
    """A run folder killed before its first checkpoint: config.yaml (and the metrics.csv
    it began) but no checkpoint, policy or summary."""
    names = {child.name for child in path.iterdir()}
    return "config.yaml" in names and names <= ABANDONED


def prepare_run_dir(
    run_dir: str | os.PathLike[str], say: Callable[[str], None] | None = None
) -> Path:
    """Create RUN_DIR (and its parents); refuse one that already holds files, unless it
    holds only what a run killed before its first checkpoint leaves (config.yaml): that
    one is an empty run, cleared and started over (``say`` is told).

    :raises RlbudgetError: RUN_DIR holds other files, or another job holds its lock.
    """
    path = Path(run_dir)
    check_unlocked(path)
    if path.is_dir() and _abandoned(path):
        for name in ABANDONED - {LOCK}:
            (path / name).unlink(missing_ok=True)
        if say is not None:
            say(f"{path}: holds only the config.yaml of a run killed before its first "
                "checkpoint; starting it over")  # fmt: skip
    if path.exists() and not is_empty_dir(path):
        raise RlbudgetError(
            f"{path}: exists and is not an empty folder; choose a new -o RUN_DIR "
            "(nothing was overwritten)"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RlbudgetError(f"{path}: cannot create the run folder ({exc.strerror})") from None
    return path


METRICS_HEADER = ("step", "episode", "return", "length", "wall_s", "exploration")


def _metrics_row(e: Episode) -> list[Any]:
    return [e.step, e.episode, f"{e.ret:.6g}", e.length, f"{e.wall_s:.4f}", f"{e.epsilon:.4g}"]


class MetricsLog:
    """``metrics.csv`` as training goes: one row per finished episode, flushed, so that
    ``tail -f`` and a kill see every finished episode (the end of a run rewrites it
    atomically from the episodes kept)."""

    def __init__(self, path: Path, episodes: tuple[Episode, ...] = ()) -> None:
        atomic_write_text(path, _metrics_csv(episodes))  # a resume: the checkpoint's rows
        self.file = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self.writer = csv.writer(self.file, lineterminator="\n")

    def add(self, ep: Episode) -> None:
        self.writer.writerow(_metrics_row(ep))
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class ProgressLog:
    """Plain progress lines for a log file (stderr that is not a terminal): steps,
    steps/s, the mean return of the last 20 episodes and the ETA; the first after the first
    episode, then one every ``every_s`` seconds. Rates count this session's steps, so a
    resumed run's ETA is right.

    :param total: the step budget. :param start_step: the step a resumed run starts at.
    """

    def __init__(self, total: int, write: Callable[[str], None], *, every_s: float = 10.0,
                 start_step: int = 0) -> None:  # fmt: skip
        self.total, self.write, self.every_s = total, write, every_s
        self.start_step = start_step
        self.t0 = time.perf_counter()
        self.last: float | None = None
        self.recent: list[float] = []

    def __call__(self, ep: Episode) -> None:
        self.recent.append(ep.ret)
        del self.recent[:-20]
        now = time.perf_counter()
        if self.last is not None and now - self.last < self.every_s:
            return
        self.last = now
        self.write(self.line(ep.step, now - self.t0))

    def line(self, step: int, elapsed_s: float) -> str:
        """One progress line at ``step``, ``elapsed_s`` seconds into this session.

        >>> log = ProgressLog(1000, print, start_step=200)
        >>> log.recent = [1.0, 2.0]
        >>> log.line(600, 2.0)
        'step 600/1,000 (60%), 200 steps/s, return(2) 1.5, ETA 2 s'
        """
        rate = (step - self.start_step) / elapsed_s if elapsed_s > 0 else 0.0
        ret = sum(self.recent) / len(self.recent) if self.recent else float("nan")
        # the first second is mostly setup: no ETA from it
        eta = f"{(self.total - step) / rate:,.0f} s" if rate > 0 and elapsed_s >= 1 else "?"
        return (f"step {step:,}/{self.total:,} ({step / max(self.total, 1):.0%}), "
                f"{rate:,.0f} steps/s, return({len(self.recent)}) {ret:.4g}, "
                f"ETA {eta}")  # fmt: skip


class TensorBoardLog:
    """The scalars SB3 writes (``rollout/ep_rew_mean``, ``rollout/ep_len_mean`` over the
    last 100 episodes, ``rollout/exploration_rate``, ``time/fps``) and the evaluations
    (``eval/mean_reward``) for a built-in agent, as TensorBoard event files under ``logdir``
    (tensorboard's own writer: ``pip install 'rlbudget[tensorboard]'``), at most every
    ``every`` steps."""

    def __init__(self, logdir: Path, every: int, start_step: int = 0) -> None:
        try:
            from tensorboard.compat.proto.event_pb2 import Event
            from tensorboard.compat.proto.summary_pb2 import Summary
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError:
            raise TrainingError(
                "--tensorboard needs TensorBoard: pip install 'rlbudget[tensorboard]'"
            ) from None
        try:
            logdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RlbudgetError(f"--tensorboard {logdir}: cannot create it ({exc.strerror})"
                                ) from None  # fmt: skip
        self.event, self.summary = Event, Summary
        self.writer = EventFileWriter(str(logdir))
        self.every, self.next = max(1, every), start_step + max(1, every)
        self.t0, self.step0 = time.perf_counter(), start_step
        self.rets: list[float] = []
        self.lens: list[int] = []

    def scalars(self, step: int, values: dict[str, float]) -> None:
        summary = self.summary(value=[self.summary.Value(tag=k, simple_value=float(v))
                                      for k, v in values.items()])  # fmt: skip
        self.writer.add_event(self.event(wall_time=time.time(), step=step, summary=summary))

    def episode(self, ep: Episode) -> None:
        self.rets.append(ep.ret)
        self.lens.append(ep.length)
        del self.rets[:-100], self.lens[:-100]
        if ep.step < self.next:
            return
        self.next = (ep.step // self.every + 1) * self.every
        elapsed = time.perf_counter() - self.t0
        self.scalars(ep.step, {
            "rollout/ep_rew_mean": sum(self.rets) / len(self.rets),
            "rollout/ep_len_mean": sum(self.lens) / len(self.lens),
            "rollout/exploration_rate": ep.epsilon,
            "time/fps": (ep.step - self.step0) / elapsed if elapsed > 0 else 0.0,
        })  # fmt: skip

    def close(self) -> None:
        self.writer.close()


def _metrics_csv(episodes: tuple[Episode, ...]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(METRICS_HEADER)
    for e in episodes:
        w.writerow(_metrics_row(e))
    return buf.getvalue()


def _curve(
    episodes: tuple[Episode, ...],
    evals: list[tuple[int, float]],
    s: RunSettings,
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if episodes:
        steps = np.array([e.step for e in episodes])
        rets = np.array([e.ret for e in episodes])
        window = max(1, len(rets) // 50)
        smooth = np.convolve(rets, np.ones(window) / window, mode="valid")
        ax.plot(steps, rets, ".", alpha=0.2, markersize=2, label="training episode return")
        ax.plot(steps[window - 1 :], smooth, label=f"training, mean of {window} (with exploration)")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", color="tab:green",
                label=f"greedy policy, {s.eval_episodes} evaluation episodes")  # fmt: skip
    if s.target_return is not None:
        ax.axhline(s.target_return, color="tab:red", linestyle="--", label="target")
    ax.set_xlabel("env steps")
    ax.set_ylabel("return")
    ax.set_title(f"{s.algorithm} on {s.env_id} (seed {s.seed})")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def train_run(
    settings: RunSettings,
    run_dir: str | os.PathLike[str],
    *,
    on_progress: Callable[[Episode], None] | None = None,
    resume: bool = False,
    should_stop: Callable[[], bool] | None = None,
    say: Callable[[str], None] | None = None,
    tensorboard: str | os.PathLike[str] | None = None,
) -> RunResult:
    """Train with ``settings`` and write the run folder (see the module docstring).

    SIGINT and SIGTERM stop training cleanly: the policy, metrics and a checkpoint are
    saved, and ``stopped_by`` names the signal. ``RUN_DIR/checkpoint/`` is also written
    every ``checkpoint_every`` steps, atomically, and ``metrics.csv`` grows by one row per
    finished episode. The run holds RUN_DIR's lock (``RUN_DIR/.lock``) throughout.

    :param resume: continue from ``RUN_DIR/checkpoint``; a run folder without one (killed
        before its first checkpoint) is started over with its config.yaml's settings.
    :param should_stop: extra stop condition, checked before every step (ARS: before every
        iteration; SB3: after every vectorized step) — for tests and embedding.
    :param say: told what happens beyond training itself (a run started over).
    :param tensorboard: write TensorBoard scalars under this folder (SB3: its own logger).
    :raises RlbudgetError: RUN_DIR is not empty (new run) or in use by another job;
        NaN/inf in the env or the weights (the last good checkpoint is kept).
    """
    out = Path(run_dir)
    if resume and not (out / "checkpoint").is_dir():
        check_unlocked(out)
        if not (out / "config.yaml").is_file() or not _abandoned(out):
            from rlbudget.agents.common import Checkpoint

            Checkpoint.load(out / "checkpoint")  # raises: no checkpoint there
        resume = False  # killed before the first checkpoint: an empty run
        if say is not None:
            say(f"{out}: no checkpoint (the run was killed before its first one); "
                "starting it over with its config.yaml")  # fmt: skip
        say = None  # said once; prepare_run_dir clears the folder
    if not resume:
        prepare_run_dir(out, say)
    with dir_lock(out):
        return _train_locked(settings, out, on_progress, resume, should_stop, tensorboard)


def _train_locked(
    settings: RunSettings,
    out: Path,
    on_progress: Callable[[Episode], None] | None,
    resume: bool,
    should_stop: Callable[[], bool] | None,
    tensorboard: str | os.PathLike[str] | None,
) -> RunResult:
    import signal

    import numpy as np

    from rlbudget.agents.common import Checkpoint
    from rlbudget.errors import TrainingError
    from rlbudget.finite import NonFiniteError, check_learned
    from rlbudget.policy.io import save_policy
    from rlbudget.profile.evaluate import evaluate

    checkpoint = None
    before: dict[str, Any] = {"cpu_s": 0.0, "peak_rss_bytes": 0, "rapl_energy_j": 0.0}
    if resume:
        checkpoint = Checkpoint.load(out / "checkpoint")
        if (out / "summary.json").is_file():
            previous = json.loads((out / "summary.json").read_text(encoding="utf-8"))
            before = {k: previous.get(k, v) for k, v in before.items()}
    else:
        config = {**asdict(settings), "versions": _versions(settings.library)}
        atomic_write_text(out / "config.yaml", _yaml(config))
    config_cls, train_fn = _agent(settings.algorithm)
    if settings.library == "sb3":
        cfg = config_cls(settings.algorithm, settings.n_timesteps, settings.seed,
                         dict(settings.hyperparameters), settings.n_envs,
                         settings.torch_threads or 1, settings.replay_capacity,
                         None if tensorboard is None else str(tensorboard))  # fmt: skip
    else:
        # TabularConfig serves four algorithms and must be told which.
        which = {"algorithm": settings.algorithm} if "algorithm" in _field_names(config_cls) else {}
        cfg = config_cls(**settings.hyperparameters, **which, n_timesteps=settings.n_timesteps,
                         seed=settings.seed)  # fmt: skip

    stopped_by = "steps"
    last_eval: float | None = None
    evals: list[tuple[int, float]] = []
    done_steps = int(checkpoint.state["steps"]) if checkpoint else 0
    # Evaluations fall on a fixed grid of steps, so a resumed run evaluates where a
    # straight run would have.
    next_eval = (done_steps // settings.eval_every + 1) * settings.eval_every
    start = time.perf_counter() - (float(checkpoint.state["wall_s"]) if checkpoint else 0.0)
    cpu0 = time.process_time()
    caught: list[str] = []
    target_check: dict[str, Any] = {}
    so_far = checkpoint.state.get("episodes", ()) if checkpoint else ()
    metrics = MetricsLog(out / "metrics.csv", tuple(Episode(**e) for e in so_far))
    board = None
    if tensorboard is not None and settings.library != "sb3":
        board = TensorBoardLog(Path(tensorboard), max(1, settings.n_timesteps // 1000),
                               done_steps)  # fmt: skip

    def handler(signum: int, _frame: Any) -> None:
        caught.append(signal.Signals(signum).name)

    def out_of_time() -> bool:
        nonlocal stopped_by
        limit = settings.time_limit_s
        if limit is not None and time.perf_counter() - start >= limit:
            stopped_by = "time"
            return True
        return False

    def stop_now() -> bool:
        nonlocal stopped_by
        if caught or out_of_time():
            return True
        if should_stop is not None and should_stop():
            stopped_by = "requested"
            return True
        return False

    def on_episode(ep: Episode, current: Callable[[], Policy]) -> bool:
        nonlocal stopped_by, last_eval, next_eval
        metrics.add(ep)
        if board is not None:
            board.episode(ep)
        if on_progress is not None:
            on_progress(ep)
        if caught or out_of_time():
            return True
        if settings.target_return is not None and ep.step >= next_eval:
            next_eval = (ep.step // settings.eval_every + 1) * settings.eval_every
            policy = current()
            screen = evaluate(policy, settings.env_id, episodes=settings.eval_episodes,
                              seed=settings.seed + 10_000)  # fmt: skip
            last_eval = screen.return_mean
            evals.append((ep.step, last_eval))
            if board is not None:
                board.scalars(ep.step, {"eval/mean_reward": last_eval})
            if last_eval >= settings.target_return:
                check = target_met(policy, settings, ep.step)
                if check is not None:
                    stopped_by, last_eval = "target", check["mean"]
                    target_check.update(check)
                    return True
        return False

    saved_at: list[int] = [done_steps] if checkpoint else []

    def save_checkpoint(ck: Checkpoint) -> None:
        """Only finite arrays replace the last good checkpoint."""
        check_learned(ck.arrays, "the checkpoint", int(ck.state["steps"]))
        ck.save(out / "checkpoint")
        saved_at.append(int(ck.state["steps"]))

    previous_handlers = {
        sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        # Overflow is caught below (check_learned), with one line instead of numpy's warnings.
        with PeakRSS() as rss, RaplEnergy() as rapl, np.errstate(over="ignore", invalid="ignore"):
            result = train_fn(
                settings.env_id, cfg, on_episode=on_episode, should_stop=stop_now,
                resume=checkpoint, on_checkpoint=save_checkpoint,
                checkpoint_every=settings.checkpoint_every,
            )  # fmt: skip
    except (NonFiniteError, TrainingError) as exc:  # NaN/inf from the env or in the weights
        kept = (f"the last good checkpoint ({out / 'checkpoint'}, step {saved_at[-1]}) is kept"
                if saved_at else "no checkpoint had been written yet")  # fmt: skip
        raise type(exc)(f"{exc}. Training stopped: {kept}; no policy was written") from None
    finally:
        for sig, old in previous_handlers.items():
            signal.signal(sig, old)
        metrics.close()
        if board is not None:
            board.close()
    if caught:
        stopped_by = caught[0]
    wall = time.perf_counter() - start  # the whole run, setup and evaluations included
    # Nothing learned with NaN/inf is written: check both before writing either.
    check_learned(result.policy.arrays(), "the policy", result.steps)
    if result.checkpoint is not None:
        check_learned(result.checkpoint.arrays, "the checkpoint", result.steps)
        result.checkpoint.save(out / "checkpoint")
    save_policy(result.policy, out / "policy")
    atomic_write_text(out / "metrics.csv", _metrics_csv(result.episodes))
    _curve(result.episodes, evals, settings, out / "curve.png")
    run = RunResult(settings, out, stopped_by, result.steps, wall, len(result.episodes),
                    last_eval, float(before["cpu_s"]) + time.process_time() - cpu0,
                    max(int(before["peak_rss_bytes"]), rss.peak),
                    None if rapl.joules is None or before["rapl_energy_j"] is None
                    else float(before["rapl_energy_j"]) + rapl.joules,
                    target_check or None)  # fmt: skip
    atomic_write_text(out / "summary.json", json.dumps(run.to_dict(), indent=2) + "\n")
    return run


def start_step(run_dir: str | os.PathLike[str]) -> int:
    """The step a resumed run starts at: its checkpoint's (0 without one)."""
    path = Path(run_dir) / "checkpoint" / "state.json"
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


CONFIRM_SEED = 20_000  # confirmation episodes: seed + this + the step (fresh every time)


def confirm_episodes(env_id: str) -> int:
    """Episodes of the confirmation: as many as ``rlbudget run``'s final measurement."""
    from rlbudget.envs import make_env
    from rlbudget.profile.evaluate import env_default_episodes

    env = make_env(env_id)
    try:
        return env_default_episodes(env)
    finally:
        env.close()


def target_met(policy: Policy, settings: RunSettings, step: int) -> dict[str, Any] | None:
    """Confirm a policy whose screen reached the target: its mean return over
    :func:`confirm_episodes` fresh episodes (seeded from ``step``: never the screen's, nor
    an earlier confirmation's), with the 95 % lower confidence bound (Student's t).

    :return: ``episodes``, ``seed``, ``mean``, ``lower_95`` when the bound is at or above
        the target; None when it is not (training goes on).
    """
    from rlbudget.profile.evaluate import evaluate
    from rlbudget.sweep import mean_ci95

    assert settings.target_return is not None
    n = confirm_episodes(settings.env_id)
    seed = settings.seed + CONFIRM_SEED + step
    result = evaluate(policy, settings.env_id, episodes=n, seed=seed)
    mean, half = mean_ci95(result.returns)
    assert mean is not None
    lower = mean - (half or 0.0)
    if lower < settings.target_return:
        return None
    return {"episodes": n, "seed": seed, "mean": mean, "lower_95": lower}


def _yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
