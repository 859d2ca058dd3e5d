"""PETS (Chua et al. 2018) with a distilled policy: the model-based trainer.

One function, :func:`train_pets`, keeps the :class:`~rlbudget.agents.common.Trainer`
contract (env-step budget, ``should_stop`` before every step, ``on_episode`` after every
episode, checkpoints, resume), so ``rlbudget train``/``run`` drive it like any built-in
agent. Per episode:

1. the first ``random_steps`` env steps take random actions (the model's first data, as
   mbrl-lib's ``initial_exploration_steps``), and the episode ends with them (a short
   first episode): uniform, or with ``random_noise_beta`` colored noise
   (:func:`colored_noise`; pink noise reaches a far, sparse goal);
2. later episodes act with the planner (:class:`~rlbudget.agents.model_based.planner.Planner`,
   CEM through the ensemble) — except every ``student_every``-th one (0: none), where the
   distilled student acts (DAgger in the real env); in both the planner labels every
   state it sees; with ``model_train_freq`` the ensemble is also refit every that many
   env steps inside an episode (as mbrl-lib's ``freq_train_model``);
3. after each episode the ensemble is refit on every real transition and the student on
   the recent labels (:mod:`~rlbudget.agents.model_based.student`);
4. with a target (``target_return``, the run's): a planner episode at or above it starts
   a check of the planner on ``planner_eval_episodes`` fresh episodes (evaluation, not
   training: nothing learns from them, as the loop's screens of other agents). If their
   mean meets the target the run stops there — the planner is what was trained, and its
   env steps are the run's — and the student is distilled from it with no more env steps
   (:func:`~rlbudget.agents.model_based.distill.distil`: DAgger in the model, until the
   int8 student keeps ``distill_keep`` of the planner's return on the same episodes);
5. when the step budget ends the run instead, the final planner relabels the last
   ``final_relabel`` labelled states and the student refits on them (DAgger's last
   round, with labels that no longer contradict each other).

The policy the loop evaluates, saves and deploys is the student — an ordinary
``normalize → mlp → clip`` Policy. The ensemble is returned as files for the run folder
(``model/ensemble.safetensors`` and ``model/model.json``), and the summary records the
planner's and the student's returns (training episodes; at a target stop, the check's
episodes: planner, fp32 and int8 student) and the model's loss.

Why PETS is the default rather than MBPO: it has no actor-critic to tune (the planner
needs only the model), and it reached its asymptote in the fewest env steps of the
methods compared in the PETS paper (Chua et al. 2018, Fig. 3); MBPO's SAC inner loop
needs many gradient steps per env step and its own hyperparameters.

Checkpoints fall on episode boundaries (the model, the student, both optimizers' state,
the transitions, the labels and every RNG); a stop in the middle of an episode returns
the policy as it is, with the checkpoint of that episode's start, so a resumed run
redoes that episode as a straight run would.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rlbudget.agents.common import (
    Checkpoint,
    Episode,
    OnEpisode,
    TrainResult,
    adam_arrays,
    env_rng_state,
    load_adam,
    open_env,
    provenance,
    rng_from_state,
)
from rlbudget.agents.model_based.distill import distil, planner_returns
from rlbudget.agents.model_based.ensemble import Ensemble
from rlbudget.agents.model_based.host import FORMAT, MODEL_FILE, MODEL_INFO
from rlbudget.agents.model_based.planner import CEM, Planner
from rlbudget.agents.model_based.student import Student
from rlbudget.errors import EnvError, TrainingError
from rlbudget.finite import sync
from rlbudget.policy.model import Policy

Array = np.ndarray
PLANNER_EVAL_SEED = 30_000  # the planner's target checks: seed + this + the step


@dataclass(frozen=True)
class PETSConfig:
    """PETS's hyperparameters; tuned values and their source:
    ``rlbudget/data/hyperparams/pets.yaml``."""

    n_timesteps: int = 100_000
    ensemble: int = 5
    model_arch: list[int] = field(default_factory=lambda: [200, 200])
    model_lr: float = 1e-3
    model_weight_decay: float = 5e-5
    model_batch_size: int = 32
    model_epochs: int = 5
    model_max_updates: int = 1000
    horizon: int = CEM.horizon  # the planner's settings, flat in the file; defaults: CEM's
    cem_population: int = CEM.population
    cem_iterations: int = CEM.iterations
    cem_elite_fraction: float = CEM.elite_fraction
    cem_alpha: float = CEM.alpha
    particles_per_member: int = CEM.particles_per_member
    aleatoric: bool = CEM.aleatoric
    replan_every: int = CEM.replan_every
    cem_keep_elites: float = CEM.keep_elites
    random_steps: int = 200
    random_noise_beta: float = 0.0  # random episodes' Box actions: 0 uniform, 1 pink noise
    net_arch: list[int] = field(default_factory=lambda: [64, 64])  # the deployed student
    activation_fn: str = "relu"  # the student's hidden activation: relu or tanh
    student_every: int = 3
    student_updates: int = 500
    label_window: int = 0  # the student learns the last this many labels (0: all of them)
    final_relabel: int = 0  # at the step budget's end: relabel this many, refit the student
    relabel_per_episode: int = 0  # after each refit: relabel this many states in the window
    student_lr: float = 1e-3
    student_batch_size: int = 256
    threads: int = 1
    seed: int = 0
    # the run's target (RunSettings.target_return, not a hyperparameter): a planner episode
    # at or above it starts a check on planner_eval_episodes fresh episodes; if their mean
    # is too, the run stops there and the student is distilled in the model (distill.py)
    target_return: float | None = None
    model_train_freq: int = 0  # also refit the model every this many env steps (0: never)
    planner_eval_episodes: int = 5
    distill_rounds: int = 6  # DAgger rounds in the model, at most
    distill_rollouts: int = 2  # model rollouts of the student per round
    distill_horizon: int = 0  # their length (0: the env's episode limit)
    distill_keep: float = 0.95  # stop when int8 keeps this share of the planner's return


@dataclass
class _Data:
    """Every real transition (model inputs and targets) and every planner label."""

    x: list[Array] = field(default_factory=list)  # [obs, action encoding]
    y: list[Array] = field(default_factory=list)  # [Δobs, reward]
    done: list[float] = field(default_factory=list)  # terminated (not truncated)
    label_obs: list[Array] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)

    def arrays(self) -> dict[str, Array]:
        return {"x": np.asarray(self.x, np.float32), "y": np.asarray(self.y, np.float32),
                "done": np.asarray(self.done, np.float32),
                "label_obs": np.asarray(self.label_obs, np.float32),
                "labels": np.asarray(self.labels)}  # fmt: skip


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise TrainingError("pets needs torch: pip install torch (see README, "
                            "'Choosing your torch build')") from None  # fmt: skip
    return torch


def train_pets(
    env_id: str,
    cfg: PETSConfig,
    *,
    gym_packages: Sequence[str] = (),
    on_episode: OnEpisode | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Checkpoint | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    checkpoint_every: int = 0,
) -> TrainResult:
    """PETS with a DAgger-distilled student; the keyword arguments work as for
    :class:`~rlbudget.agents.common.Trainer` (see the module docstring)."""
    env, obs_spec, act_spec = open_env(env_id, gym_packages)
    if obs_spec.kind != "box" or act_spec.kind not in ("box", "discrete"):
        env.close()
        raise EnvError(f"environment '{env_id}': pets needs Box observations and Box or "
                       "Discrete actions")  # fmt: skip
    torch = _torch()
    threads_before = torch.get_num_threads()  # restored at the end
    torch.set_num_threads(max(1, cfg.threads))
    discrete = act_spec.kind == "discrete"
    n_act = int(act_spec.n or 0) if discrete else act_spec.dim
    low = None if discrete else np.asarray(act_spec.low, np.float32)
    high = None if discrete else np.asarray(act_spec.high, np.float32)
    obs_dim = obs_spec.dim
    rng = np.random.default_rng(cfg.seed)
    ens = Ensemble(obs_dim + n_act, obs_dim, cfg.ensemble, list(cfg.model_arch), cfg.seed,
                   cfg.model_lr, cfg.model_weight_decay)  # fmt: skip
    cem = CEM(cfg.horizon, cfg.cem_population, cfg.cem_iterations, cfg.cem_elite_fraction,
              cfg.cem_alpha, cfg.particles_per_member, cfg.aleatoric,
              cfg.replan_every, cfg.cem_keep_elites)  # fmt: skip
    o_low, o_high = np.asarray(obs_spec.low, np.float32), np.asarray(obs_spec.high, np.float32)
    planner = Planner(ens, cem, low=low, high=high, n=n_act if discrete else None,
                      terminates=False, seed=cfg.seed, obs_low=o_low, obs_high=o_high)  # fmt: skip
    student = Student(
        obs_spec, act_spec, list(cfg.net_arch), cfg.activation_fn, cfg.seed, cfg.student_lr
    )
    data = _Data()
    episodes: list[Episode] = []
    kinds: list[str] = []  # who acted in each episode: random, planner, student
    model_loss = float("nan")
    steps, wall0 = 0, 0.0
    checks: list[list[float]] = []  # the planner's target checks: [step, mean return]
    reached: dict[str, Any] = {}  # the planner's target: when, its return, the distillation
    env.reset(seed=cfg.seed)
    if resume is not None:
        ck, arr = resume.state, resume.arrays
        steps, wall0 = int(ck["steps"]), float(ck["wall_s"])
        episodes = [Episode(**e) for e in ck["episodes"]]
        kinds, model_loss = list(ck["kinds"]), float(ck["model_loss"])
        checks = [list(c) for c in ck.get("planner_checks", [])]
        rng.bit_generator.state = ck["agent_rng"]
        env.unwrapped.np_random = rng_from_state(ck["env_rng"])
        planner.gen.set_state(torch.from_numpy(np.asarray(arr["planner_gen"])))
        ens.load_arrays(dict(arr))
        student.load_arrays(arr)
        student.trained = bool(ck["student_trained"])
        load_adam(ens.optimizer, arr, "m_")
        load_adam(student.optimizer, arr, "s_")
        data = _Data(list(arr["x"]), list(arr["y"]), list(arr["done"]),
                     list(arr["label_obs"]), list(arr["labels"]))  # fmt: skip
        _tell(planner, data)
    start = time.perf_counter() - wall0
    sync(env, steps, len(episodes) + 1)  # NaN/inf messages name the training step

    def current() -> Policy:
        prov = provenance("rlbudget.agents.model_based", "pets", env_id, cfg, steps)
        prov["distilled_from"] = f"the PETS planner, {len(data.labels)} labelled states"
        return student.policy(prov)

    def snapshot() -> Checkpoint:
        """The state at an episode boundary (the env is between episodes)."""
        state = {
            "algorithm": "pets", "steps": steps, "wall_s": time.perf_counter() - start,
            "episodes": [asdict(e) for e in episodes], "kinds": kinds,
            "model_loss": model_loss, "student_trained": student.trained,
            "planner_checks": checks,
            "agent_rng": rng.bit_generator.state, "env_rng": env_rng_state(env),
        }  # fmt: skip
        arrays = {**data.arrays(), **ens.arrays(), **student.arrays(),
                  **adam_arrays(ens.optimizer, "m_"), **adam_arrays(student.optimizer, "s_"),
                  "planner_gen": planner.gen.get_state().numpy().copy()}  # fmt: skip
        return Checkpoint(state, arrays)

    next_ck = (steps // checkpoint_every + 1) * checkpoint_every if checkpoint_every else 0
    stopped = requested = False  # requested: by should_stop or on_episode (time, target)
    try:
        while steps < cfg.n_timesteps:
            at_start = snapshot()  # a stop in the middle of this episode returns it
            kind = _who_acts(steps, cfg, student.trained, kinds)
            obs, _ = env.reset()
            planner.reset()
            acting = student.policy({}) if kind == "student" else None  # fixed for the episode
            noise = None
            if kind == "random" and cfg.random_noise_beta > 0 and low is not None:
                assert high is not None
                seq = colored_noise(cfg.random_noise_beta, _episode_limit(env), len(low), rng)
                noise = np.clip((low + high) / 2 + seq * (high - low) / 2, low, high)
            ret, n, planned = 0.0, 0, []
            done = False
            while not done and steps < cfg.n_timesteps:
                if should_stop is not None and should_stop():
                    stopped = requested = True
                    break
                x = np.asarray(obs, np.float32).ravel()
                if kind == "random":
                    action: Any = (int(rng.integers(n_act)) if low is None or high is None
                                   else noise[n % len(noise)] if noise is not None
                                   else rng.uniform(low, high).astype(np.float32))  # fmt: skip
                else:
                    label = planner.act(x)
                    planned.append(planner.last_planned)
                    data.label_obs.append(x)
                    data.labels.append(label)
                    action = label if acting is None else acting.act(x)
                obs, reward, terminated, truncated, _ = env.step(action)
                r = float(reward)  # the guard stops at NaN/inf
                x2 = np.asarray(obs, np.float32).ravel()
                enc = np.eye(n_act, dtype=np.float32)[action] if discrete else action
                data.x.append(np.concatenate([x, np.asarray(enc, np.float32).ravel()]))
                data.y.append(np.concatenate([x2 - x, [r]]).astype(np.float32))
                data.done.append(float(terminated))
                steps += 1
                ret += r
                n += 1
                # a random episode ends with the random steps (a short first episode)
                done = bool(terminated or truncated) or (kind == "random"
                                                         and steps >= cfg.random_steps)  # fmt: skip
                if (cfg.model_train_freq and kind != "random" and not done
                        and steps % cfg.model_train_freq == 0):  # fmt: skip
                    model_loss = _fit_model(ens, data, cfg, rng, steps)
                    _tell(planner, data)
            if stopped or not done:  # stopped, or the step budget ran out mid-episode
                stopped = True
                break
            model_loss = _learn(ens, planner, student, data, cfg, rng, steps)
            _tell(planner, data)
            p = float(np.mean(planned)) if planned else math.nan
            kinds.append(kind)
            ep = Episode(steps, len(episodes), ret, n, time.perf_counter() - start,
                         1.0 if kind == "random" else 0.0,
                         note=f"{kind} acted, model NLL {model_loss:.3g}"
                              + (f", planned return {p:.4g}" if planned else ""))  # fmt: skip
            episodes.append(ep)
            if on_episode is not None and on_episode(ep, current):
                requested = True
                break
            target = cfg.target_return
            if target is not None and kind == "planner" and ret >= target:
                seeds = [cfg.seed + PLANNER_EVAL_SEED + steps + i
                         for i in range(cfg.planner_eval_episodes)]  # fmt: skip
                returns = planner_returns(planner, env_id, seeds, gym_packages)
                checks.append([steps, float(np.mean(returns))])
                if float(np.mean(returns)) >= target:
                    at = time.perf_counter() - start
                    reached = {"target_step": steps, "target_wall_s": at,
                               "planner_return": float(np.mean(returns)),
                               "planner_returns": returns}  # fmt: skip
                    reached.update(distil(
                        planner=planner, ens=ens, student=student, obs=data.label_obs,
                        labels=data.labels, cfg=cfg, env_id=env_id, eval_seeds=seeds,
                        planner_return=reached["planner_return"], target=target, rng=rng,
                        episode_steps=_episode_limit(env), gym_packages=gym_packages,
                        encode=(lambda a: np.eye(n_act, dtype=np.float32)[int(a)])
                        if discrete else (lambda a: np.asarray(a, np.float32).ravel()),
                    ))  # fmt: skip
                    reached["distill_s"] = time.perf_counter() - start - at
                    break
            if on_checkpoint is not None and checkpoint_every and steps >= next_ck:
                on_checkpoint(snapshot())
                next_ck = (steps // checkpoint_every + 1) * checkpoint_every
        at_budget = not requested and not reached and steps >= cfg.n_timesteps
        if at_budget and cfg.final_relabel > 0 and data.labels:
            _final_pass(planner, student, data, cfg, rng, steps)
    finally:
        env.close()
        torch.set_num_threads(threads_before)
    policy = current()
    checkpoint = at_start if stopped else snapshot()
    extra = {**_summary(episodes, kinds, model_loss, len(data.x), len(data.labels), student),
             "planner_checks": checks, **reached}  # fmt: skip
    files = _model_files(ens, planner, cfg, obs_spec.dim, n_act, low, high)
    return TrainResult(policy, tuple(episodes), steps, time.perf_counter() - start, checkpoint,
                       extra=extra, files=files, stopped_by="target" if reached else None,
                       eval_return=reached.get("int8_return"))  # fmt: skip


def colored_noise(beta: float, n: int, dim: int, rng: np.random.Generator) -> Array:
    """``[n, dim]`` Gaussian noise with power spectrum ∝ 1/f^beta and unit variance (beta
    0: white, 1: pink, 2: red). Random actions correlated in time explore much further
    than independent ones: pink noise reaches MountainCarContinuous's goal where white
    noise does not (Eberhard et al. 2023, "Pink noise is all you need", ICLR)."""
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0
    shape = (dim, len(freqs))
    spectrum = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) * freqs ** (-beta / 2)
    x = np.fft.irfft(spectrum, n=n, axis=-1)
    std = x.std(axis=-1, keepdims=True)
    return np.asarray((x / np.where(std > 0, std, 1.0)).T, np.float32)


def _episode_limit(env: Any) -> int:
    """The env's episode length limit (its TimeLimit), else 1,000."""
    spec = getattr(env, "spec", None)
    limit = getattr(spec, "max_episode_steps", None)
    return int(limit) if limit else 1000


def _tell(planner: Planner, data: _Data) -> None:
    """What the planner learns from the real data: does the env terminate, and the range
    of the rewards (predicted ones are clipped to it)."""
    rewards = np.asarray([y[-1] for y in data.y])
    planner.terminates = bool(np.any(np.asarray(data.done) > 0))
    if len(rewards):
        planner.reward_range = (float(rewards.min()), float(rewards.max()))


def _who_acts(steps: int, cfg: PETSConfig, trained: bool, kinds: list[str]) -> str:
    if steps < cfg.random_steps:
        return "random"
    if not trained or cfg.student_every <= 0:
        return "planner"
    since = sum(1 for k in kinds if k != "random")
    return "student" if since % cfg.student_every == cfg.student_every - 1 else "planner"


def _learn(ens: Ensemble, planner: Planner, student: Student, data: _Data, cfg: PETSConfig,
           rng: np.random.Generator, steps: int) -> float:  # fmt: skip
    """Refit the ensemble on every transition, relabel ``relabel_per_episode`` states of
    the label window with the refit planner (a random run of consecutive ones, so each
    decision warm-starts the next), and refit the student on the window's labels."""
    loss = _fit_model(ens, data, cfg, rng, steps)
    arrays = data.arrays()
    if cfg.relabel_per_episode > 0 and data.labels:
        _tell(planner, data)
        first = max(0, len(data.labels) - cfg.label_window) if cfg.label_window > 0 else 0
        count = min(cfg.relabel_per_episode, len(data.labels) - first)
        start = int(rng.integers(first, len(data.labels) - count + 1))
        _relabel(planner, data, start, count)
        arrays = data.arrays()
    if len(data.labels):
        # The planner improves as its model does: its early labels contradict its later
        # ones, so the student may learn only the most recent (label_window).
        recent = slice(-cfg.label_window, None) if cfg.label_window > 0 else slice(None)
        s_loss = student.fit(arrays["label_obs"][recent], arrays["labels"][recent],
                             updates=cfg.student_updates, batch_size=cfg.student_batch_size,
                             rng=rng)  # fmt: skip
        if not math.isfinite(s_loss):
            raise TrainingError(f"pets: the student's loss became {s_loss} at step {steps} "
                                "(lower student_lr)")  # fmt: skip
    return loss


def _fit_model(ens: Ensemble, data: _Data, cfg: PETSConfig, rng: np.random.Generator,
               steps: int) -> float:  # fmt: skip
    """Refit the ensemble on every real transition; its loss (NaN/inf: one line)."""
    loss = ens.fit(np.asarray(data.x, np.float32), np.asarray(data.y, np.float32),
                   np.asarray(data.done, np.float32), epochs=cfg.model_epochs,
                   batch_size=cfg.model_batch_size, rng=rng,
                   max_updates=cfg.model_max_updates)  # fmt: skip
    if not math.isfinite(loss):
        raise TrainingError(f"pets: the model's loss became {loss} at step {steps} "
                            "(lower model_lr)")  # fmt: skip
    return loss


def _final_pass(planner: Planner, student: Student, data: _Data, cfg: PETSConfig,
                rng: np.random.Generator, steps: int) -> None:  # fmt: skip
    """DAgger's last round at the step budget's end (no env steps): the final planner
    relabels the last ``final_relabel`` labelled states (the early planner's labels
    contradict its later ones) and the student refits on them. Not done on a stop by
    time (no time left) nor by target (the confirmed policy is the one saved)."""
    n = min(cfg.final_relabel, len(data.labels))
    _relabel(planner, data, len(data.labels) - n, n)
    window = max(cfg.label_window, n)
    obs = np.asarray(data.label_obs[-window:], np.float32)
    loss = student.fit(obs, np.asarray(data.labels[-window:]), updates=cfg.student_updates,
                       batch_size=cfg.student_batch_size, rng=rng)  # fmt: skip
    if not math.isfinite(loss):
        raise TrainingError(f"pets: the student's loss became {loss} at step {steps} "
                            "(lower student_lr)")  # fmt: skip


def _relabel(planner: Planner, data: _Data, start: int, count: int) -> None:
    """The planner's labels for states ``start`` … ``start + count - 1``, in order."""
    planner.reset()
    for i in range(start, start + count):
        data.labels[i] = planner.label(data.label_obs[i])
    planner.reset()


def _summary(episodes: list[Episode], kinds: list[str], loss: float, transitions: int,
             labels: int, student: Student) -> dict[str, Any]:  # fmt: skip
    """What summary.json records beyond the common fields."""

    def last(kind: str) -> float | None:
        rets = [e.ret for e, k in zip(episodes, kinds, strict=False) if k == kind][-5:]
        return float(np.mean(rets)) if rets else None

    return {
        "planner_return_last5": last("planner"),
        "student_return_last5": last("student"),
        "returns_note": "mean return of the last 5 training episodes in which the planner "
                        "(resp. the distilled student) acted",
        "model_nll": loss if math.isfinite(loss) else None,
        "student_loss": student.last_loss if math.isfinite(student.last_loss) else None,
        "transitions": transitions,
        "labelled_states": labels,
    }  # fmt: skip


def _model_files(ens: Ensemble, planner: Planner, cfg: PETSConfig, obs_dim: int, n_act: int,
                 low: Array | None, high: Array | None) -> dict[str, bytes]:  # fmt: skip
    """The ensemble and what rebuilds it and the planner, for the run folder
    (:func:`rlbudget.agents.model_based.host.planner_for` reads them back)."""
    from safetensors.numpy import save

    def bounds(t: Any) -> list[float] | None:
        return None if t is None else [float(v) for v in t.tolist()]

    info = {
        "format": FORMAT, "obs_dim": obs_dim, "action_dim": n_act, "discrete": low is None,
        "action_low": bounds(low), "action_high": bounds(high),
        "obs_low": bounds(planner.obs_low), "obs_high": bounds(planner.obs_high),
        "terminates": planner.terminates, "reward_range": list(planner.reward_range),
        "members": cfg.ensemble, "model_arch": list(cfg.model_arch),
        "planner": {"horizon": cfg.horizon, "population": cfg.cem_population,
                    "iterations": cfg.cem_iterations, "elite_fraction": cfg.cem_elite_fraction,
                    "alpha": cfg.cem_alpha, "particles_per_member": cfg.particles_per_member,
                    "aleatoric": cfg.aleatoric, "replan_every": cfg.replan_every,
                    "keep_elites": cfg.cem_keep_elites},
    }  # fmt: skip
    return {MODEL_FILE: save(ens.arrays()), MODEL_INFO: json.dumps(info, indent=1).encode()}
