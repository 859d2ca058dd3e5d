"""Imitation: behaviour cloning (``bc``) and DAgger (``dagger``) from a teacher or demos.

The teacher is any policy rlbudget reads (:func:`rlbudget.agents.prior.load_teacher`: a
policy folder, an SB3 zip or an RL Zoo folder, never unpickled); demonstrations are an
``.npz`` of recorded transitions (:func:`rlbudget.agents.prior.load_demos`).

- ``bc`` with ``--demos`` only: the student is fitted to the file's (observation,
  action) pairs (``demo_updates`` Adam steps); no env step is taken.
- ``bc`` with ``--teacher``: the teacher acts, every state it visits is labelled with its
  action, the student is fitted on all pairs so far every ``round_steps`` steps.
- ``dagger`` (Ross, Gordon & Bagnell 2011): round 0 as ``bc``; in round ``i`` the teacher
  acts with probability ``beta_decay ** i`` and the student otherwise, the teacher labels
  every visited state, and the student is fitted on the aggregated dataset. It needs a
  teacher; demos, when given too, seed the dataset.

Every env step counts against the run's step budget (``n_timesteps``), whoever acts;
the training the teacher itself took is not counted. The loop is
:class:`~rlbudget.agents.common.Trainer`'s: episodes are reported as they end (the
greedy policy is the current student), and the run stops exactly at ``n_timesteps``.

The student is what the plan chose (``student``):

- ``mlp``: :class:`rlbudget.agents.model_based.student.Student` (the DAgger student of
  PETS: Adam on minibatches of the whole dataset, cross-entropy for Discrete actions,
  mean squared error on the action for Box), hidden widths ``net_arch`` (``[]``: one linear
  layer), a ``normalize → mlp → argmax/clip`` policy;
- ``table`` (Discrete observations and actions): each state's most frequent label, a
  ``table`` policy (unlabelled states act 0).

A resumed run continues exactly where the checkpoint left it: the dataset, the states of
the unfinished round (labelled when it ends), the student's weights, normalization and
Adam moments, the random stream and the env, so it equals a run that never stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlbudget.agents.common import (
    Checkpoint,
    EpisodeLog,
    OnEpisode,
    StepHooks,
    TrainResult,
    adam_arrays,
    load_adam,
    open_env,
    provenance,
    restore_env,
    rng_from_state,
)
from rlbudget.agents.prior import TEACHER_MARGIN
from rlbudget.envs import SpaceSpec
from rlbudget.errors import PlanError
from rlbudget.policy.model import Head, Policy, Table

ALGORITHMS = ("bc", "dagger")
STUDENTS = ("auto", "mlp", "table")


@dataclass(frozen=True)
class ImitationConfig:
    """Hyperparameters (``rlbudget/data/hyperparams/bc.yaml``, ``dagger.yaml``) and where
    the knowledge comes from (``teacher``/``demos``: paths, from the run's settings)."""

    algorithm: str = "dagger"
    n_timesteps: int = 10_000
    teacher: str | None = None
    demos: str | None = None
    student: str = "auto"  # auto: table for Discrete observations, else mlp
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    activation_fn: str = "relu"
    learning_rate: float = 1e-3
    batch_size: int = 256
    updates: int = 500  # Adam steps after each round
    round_steps: int = 1_000  # env steps per round
    beta_decay: float = 0.5  # DAgger: the teacher acts with probability beta_decay ** round
    demo_updates: int = 2_000  # Adam steps on a demos file before any env step
    seed: int = 0


class TableStudent:
    """A table of label counts per state; the policy acts on each state's most frequent."""

    def __init__(self, obs_spec: SpaceSpec, act_spec: SpaceSpec) -> None:
        self.obs_spec, self.act_spec = obs_spec, act_spec
        self.counts = np.zeros((int(obs_spec.n or 0), int(act_spec.n or 0)), np.float32)
        self.fitted = 0

    def fit(self, obs: np.ndarray, labels: np.ndarray, **_: Any) -> float:
        new_obs, new_labels = obs[self.fitted :], labels[self.fitted :]
        np.add.at(self.counts, (new_obs.astype(np.int64), new_labels.astype(np.int64)), 1.0)
        self.fitted = len(obs)
        return 0.0

    def policy(self, prov: dict[str, Any]) -> Policy:
        return Policy(self.obs_spec, self.act_spec, (), Table(self.counts.copy()),
                      Head("argmax"), dict(prov))  # fmt: skip

    def arrays(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts}

    def load_arrays(self, arrays: dict[str, Any], fitted: int) -> None:
        self.counts[...] = arrays["counts"]
        self.fitted = fitted


def make_student(cfg: ImitationConfig, obs_spec: SpaceSpec, act_spec: SpaceSpec) -> Any:
    """The student the config names, for these spaces.

    :raises PlanError: a student that cannot take these spaces, or an unknown one.
    """
    kind = cfg.student
    if kind not in STUDENTS:
        raise PlanError(f"{cfg.algorithm}: student '{kind}' is not one of "
                        f"{', '.join(STUDENTS)}")  # fmt: skip
    if kind == "auto":
        kind = "table" if obs_spec.kind == "discrete" else "mlp"
    if kind == "table":
        if obs_spec.kind != "discrete" or act_spec.kind != "discrete":
            raise PlanError(f"{cfg.algorithm}: a table student needs Discrete observations and "
                            "actions; use student=mlp")  # fmt: skip
        return TableStudent(obs_spec, act_spec)
    if obs_spec.kind != "box":
        raise PlanError(f"{cfg.algorithm}: an mlp student needs Box observations; use "
                        "student=table for Discrete ones")  # fmt: skip
    from rlbudget.agents.model_based.student import Student

    return Student(obs_spec, act_spec, [int(w) for w in cfg.net_arch], cfg.activation_fn,
                   cfg.seed, cfg.learning_rate)  # fmt: skip


def _labels(teacher: Policy, obs: np.ndarray) -> np.ndarray:
    """The teacher's actions for a batch of states (int64 or float32 [N, dim])."""
    acts = np.asarray(teacher.act(obs))
    if teacher.action_space.kind == "discrete":
        return acts.astype(np.int64)
    return acts.reshape(len(obs), -1).astype(np.float32)


class TeacherBar:
    """bc and dagger's stop rule with a teacher: the student against the teacher on the
    *same* start states, not against a fixed return.

    Episode ``i`` of a measurement is reset with seed ``seed + i`` for both, and the student
    passes when its mean return is at most :data:`TEACHER_MARGIN` of the teacher's mean
    below the teacher's mean on those episodes. On envs whose return depends mostly on the
    start state (Pendulum-v1: the teacher's standard deviation over 100 episodes is ≈ 80),
    a fixed target with a confidence bound over fresh episodes is one the teacher itself
    fails about half the time; the paired difference removes the start state's share.
    ``rlbudget.train``'s loop asks :meth:`screen` at each evaluation, then :meth:`confirm`.
    """

    def __init__(self, teacher: Policy, env_id: str, margin: float = TEACHER_MARGIN) -> None:
        self.teacher, self.env_id, self.margin = teacher, env_id, margin
        self._screens: dict[tuple[int, int], np.ndarray] = {}

    def _teacher(self, seed: int, episodes: int) -> np.ndarray:
        from rlbudget.profile.evaluate import evaluate

        seeds = list(range(seed, seed + episodes))
        return np.asarray(evaluate(self.teacher, self.env_id, seeds=seeds).returns)

    def bar(self, teacher_returns: np.ndarray) -> float:
        """The lowest mean of (student − teacher) that passes: −margin × |teacher's mean|."""
        return -self.margin * abs(float(np.mean(teacher_returns)))

    def screen(
        self, policy: Policy, seed: int, episodes: int,
        decided: Callable[[Sequence[float], float], bool],
    ) -> tuple[float, bool]:  # fmt: skip
        """The student's mean return over up to ``episodes`` (``decided``: whether the paired
        differences so far settle it, :func:`rlbudget.train.loop.screen_decided`), and
        whether it passes. The teacher's returns on the screen's seeds are measured once."""
        from rlbudget.profile.evaluate import evaluate

        key = (seed, episodes)
        if key not in self._screens:
            self._screens[key] = self._teacher(seed, episodes)
        t = self._screens[key]

        def enough(returns: Sequence[float]) -> bool:
            k = len(returns)
            return decided([r - x for r, x in zip(returns, t[:k], strict=True)], self.bar(t[:k]))

        seeds = list(range(seed, seed + episodes))
        s = np.asarray(evaluate(policy, self.env_id, seeds=seeds, enough=enough).returns)
        k = len(s)
        return float(s.mean()), float(np.mean(s - t[:k])) >= self.bar(t[:k])

    def confirm(self, policy: Policy, seed: int, episodes: int) -> tuple[float, float] | None:
        """Fresh paired episodes: the student's mean and the 95 % lower bound of its mean
        measured against the teacher's (the teacher's mean + the lower bound of the mean
        paired difference, Student's t), when that bound reaches the bar; else None."""
        from rlbudget.profile.evaluate import evaluate
        from rlbudget.stats import mean_ci95

        t = self._teacher(seed, episodes)
        seeds = list(range(seed, seed + episodes))
        s = np.asarray(evaluate(policy, self.env_id, seeds=seeds).returns)
        gap, half = mean_ci95(list(s - t))
        assert gap is not None
        lower = gap - (half or 0.0)
        if lower < self.bar(t):
            return None
        return float(s.mean()), float(t.mean()) + lower


def teacher_bar(env_id: str, teacher: str | None) -> TeacherBar | None:
    """The paired stop rule of a run with a teacher (``RunSettings.teacher``: bc/dagger, or
    in a library call any run measured against a teacher, as
    ``benchmarks/prior_knowledge.py`` measures training from scratch); None without one."""
    if not teacher:
        return None
    from rlbudget.agents.prior import load_teacher

    return TeacherBar(load_teacher(teacher, env_id), env_id)


def train_imitation(
    env_id: str,
    cfg: ImitationConfig,
    *,
    gym_packages: Sequence[str] = (),
    on_episode: OnEpisode | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Checkpoint | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    checkpoint_every: int = 0,
) -> TrainResult:
    """Train a student by BC or DAgger; a :class:`~rlbudget.agents.common.Trainer`.

    :raises PlanError: no teacher and no demos, DAgger without a teacher, a student that
        does not fit the spaces.
    :raises RlbudgetError: a teacher or demos file that cannot be read or does not match
        the env (:mod:`rlbudget.agents.prior`).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small student trains fastest on one thread (as distill's)
    try:
        return _train(env_id, cfg, gym_packages, on_episode, should_stop, resume, on_checkpoint,
                      checkpoint_every)  # fmt: skip
    finally:
        torch.set_num_threads(threads)


def _train(
    env_id: str,
    cfg: ImitationConfig,
    gym_packages: Sequence[str],
    on_episode: OnEpisode | None,
    should_stop: Callable[[], bool] | None,
    resume: Checkpoint | None,
    on_checkpoint: Callable[[Checkpoint], None] | None,
    checkpoint_every: int,
) -> TrainResult:
    from rlbudget.agents.prior import check_sources, load_demos, load_teacher

    if cfg.algorithm not in ALGORITHMS:
        raise PlanError(f"unknown imitation algorithm '{cfg.algorithm}'; use bc or dagger")
    check_sources(cfg.algorithm, cfg.teacher, cfg.demos)
    teacher = load_teacher(cfg.teacher, env_id) if cfg.teacher else None
    demos = load_demos(cfg.demos, env_id) if cfg.demos else None
    env, obs_spec, act_spec = open_env(env_id, gym_packages)
    student = make_student(cfg, obs_spec, act_spec)
    rng = np.random.default_rng(cfg.seed)
    data_obs: list[np.ndarray] = []
    data_labels: list[np.ndarray] = []
    if demos is not None:
        data_obs.append(np.asarray(demos.observations))
        data_labels.append(demos.actions)
    log = EpisodeLog.from_state(resume.state) if resume is not None else EpisodeLog()
    start = time.perf_counter() - log.wall0
    rounds = 0

    def dataset() -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(data_obs), np.concatenate(data_labels)

    def fit(updates: int) -> None:
        obs, labels = dataset()
        student.fit(obs, labels, updates=updates, batch_size=cfg.batch_size, rng=rng)

    def current() -> Policy:
        prov = provenance("rlbudget.agents.imitation", cfg.algorithm, env_id, cfg, log.steps)
        prov["teacher"] = cfg.teacher
        prov["demos"] = cfg.demos
        policy: Policy = student.policy(prov)
        return policy

    obs_shape = tuple(env.observation_space.shape or ())
    round_obs: list[Any] = []  # the states of the round under way, labelled when it ends

    def snapshot() -> Checkpoint:
        obs, labels = dataset() if data_obs else (np.zeros(0), np.zeros(0))
        pending = np.asarray(round_obs).reshape(len(round_obs), *obs_shape)
        trained = not isinstance(student, TableStudent) and student.trained
        state = {**log.state(time.perf_counter() - start), "rounds": rounds,
                 "rng": dict(rng.bit_generator.state), "algorithm": cfg.algorithm,
                 "student_trained": trained}  # fmt: skip
        optimizer = {} if isinstance(student, TableStudent) else adam_arrays(student.optimizer,
                                                                             "adam_")  # fmt: skip
        return Checkpoint(state, {**student.arrays(), **optimizer, "data_obs": obs,
                                  "data_labels": labels, "round_obs": pending})  # fmt: skip

    if resume is not None:
        rounds = int(resume.state["rounds"])
        rng = rng_from_state(resume.state["rng"])
        data_obs[:] = [np.asarray(resume.arrays["data_obs"])]
        data_labels[:] = [np.asarray(resume.arrays["data_labels"])]
        if not len(data_obs[0]):  # stopped before the first label: no dataset yet
            data_obs.clear()
            data_labels.clear()
        if "round_obs" in resume.arrays:  # (a checkpoint of rlbudget 0.x before it lacks them)
            round_obs[:] = list(np.asarray(resume.arrays["round_obs"]))
        if isinstance(student, TableStudent):
            student.load_arrays(dict(resume.arrays), len(data_obs[0]) if data_obs else 0)
        else:
            student.load_arrays(resume.arrays)
            student.trained = bool(resume.state.get("student_trained", bool(data_obs)))
            load_adam(student.optimizer, resume.arrays, "adam_")
        # Box actions replayed as the float32 arrays the policies gave, not the logged lists
        # (Pendulum's physics in float64 would drift from the run's)
        box = act_spec.kind == "box"
        actions = [np.asarray(a, env.action_space.dtype) if box else a
                   for a in log.episode_actions]  # fmt: skip
        obs = restore_env(env, cfg.seed, log.episode_start, actions)
    else:
        if demos is not None:
            fit(cfg.demo_updates)
        env.action_space.seed(cfg.seed)
        obs, _ = env.reset(seed=cfg.seed)
    policy = current()
    hooks = StepHooks(should_stop, on_checkpoint, checkpoint_every, log.steps)
    round_start = log.steps - len(round_obs)
    stop = False
    while teacher is not None and log.steps < cfg.n_timesteps and not stop:
        if hooks.stop(log.steps, snapshot):
            break
        # Who acts: BC and DAgger's round 0 the teacher, later rounds the mixture.
        beta = 1.0 if cfg.algorithm == "bc" or rounds == 0 else cfg.beta_decay**rounds
        coin = rng.random()
        actor = teacher if coin < beta and teacher is not None else policy
        round_obs.append(obs)
        action = actor.act(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        log.record(action.tolist() if isinstance(action, np.ndarray) else int(action),
                   float(reward))  # fmt: skip
        end_round = log.steps - round_start >= cfg.round_steps or log.steps == cfg.n_timesteps
        if end_round and teacher is not None:
            batch = np.asarray(round_obs)
            data_obs.append(batch)
            data_labels.append(_labels(teacher, batch))
            round_obs, round_start = [], log.steps
            fit(cfg.updates)
            rounds += 1
            policy = current()
        if terminated or truncated:
            ep = log.end_episode(env, time.perf_counter() - start, beta)
            if on_episode is not None:
                stop = on_episode(ep, current)
            obs, _ = env.reset()
    env.close()
    # States of an unfinished round (a stop before its end) are not labelled (the checkpoint
    # keeps them for a resume): the policy returned is the one the last evaluation saw.
    if not data_obs:
        raise PlanError(f"{cfg.algorithm}: stopped before any state was labelled; give more "
                        "steps")  # fmt: skip
    n = sum(len(o) for o in data_obs)
    extra = {"dataset_states": n, "rounds": rounds,
             "demo_episodes": None if demos is None else demos.episodes}  # fmt: skip
    return TrainResult(current(), tuple(log.episodes), log.steps,
                       time.perf_counter() - start, snapshot(), extra)  # fmt: skip
