"""MBPO (Janner et al. 2019): SAC trained on short rollouts of a learned model.

One function, :func:`train_mbpo`, keeps the :class:`~rlbudget.agents.common.Trainer`
contract, so ``rlbudget train``/``run`` drive it like any built-in agent. Per env step:

1. act: the first ``random_steps`` uniformly at random, then SAC's stochastic actor
   (the transition goes to the real replay buffer);
2. every ``model_train_freq`` steps from ``random_steps`` on, refit the ensemble
   (:class:`~rlbudget.agents.model_based.ensemble.Ensemble`, PETS's) on every real
   transition, then branch ``rollout_batch`` rollouts of ``rollout_length`` steps from
   states drawn from the real buffer, SAC's actor acting and a random member's Gaussian
   sampled at each step; they fill the model buffer (it keeps the last
   ``model_retain`` batches);
3. SAC takes ``updates_per_step`` gradient steps on batches of which ``real_ratio`` come
   from the real buffer and the rest from the model buffer.

**The learner is Stable-Baselines3's SAC object**, not its ``learn()`` loop: rlbudget
fills its replay buffer and calls its ``train(gradient_steps, batch_size)``. That keeps
one SAC in the project (its losses, target networks, entropy tuning), SB3's checkpoint
format (:mod:`rlbudget.sb3.checkpoint`) and its actor conversion
(:func:`rlbudget.sb3.convert.from_model`): the deployed policy is the actor's
deterministic action (``predict(deterministic=True)``), an ordinary
``mlp → tanh → affine`` Policy that compress, export and profile take unchanged. (The
built-in ``lean-sac`` was not on main when this was written.)

Predicted states are clipped to the observation space's finite bounds and predicted
rewards to the range seen in real data, as PETS's planner does; a predicted termination
(logit > 0) counts only in envs whose real data ever terminated.

**Checkpoints** fall on episode boundaries: SAC's whole state and the real buffer
(:func:`~rlbudget.sb3.checkpoint.model_checkpoint`, with torch's, numpy's and python's
global RNGs), the ensemble with its Adam moments, the model buffer, the loop's RNG and the
env's. A stop in the middle of an episode returns the checkpoint of that episode's start,
so a resumed run redoes that episode as a straight run would: resume is exact.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
from rlbudget.agents.model_based.ensemble import Ensemble
from rlbudget.agents.model_based.host import MODEL_FILE, MODEL_INFO
from rlbudget.errors import EnvError, PlanError, TrainingError
from rlbudget.finite import sync
from rlbudget.policy.model import Policy

Array = np.ndarray
FORMAT = "rlbudget-mbpo-ensemble/1"
BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones")


@dataclass(frozen=True)
class MBPOConfig:
    """MBPO's hyperparameters; tuned values and their source:
    ``rlbudget/data/hyperparams/mbpo.yaml``."""

    n_timesteps: int = 100_000
    # the model (PETS's ensemble)
    ensemble: int = 5
    model_arch: list[int] = field(default_factory=lambda: [200, 200])
    model_lr: float = 1e-3
    model_weight_decay: float = 5e-5
    model_batch_size: int = 256
    model_epochs: int = 5
    model_max_updates: int = 1000
    model_train_freq: int = 250
    # branched rollouts
    random_steps: int = 500
    rollout_batch: int = 100_000
    rollout_length: int = 1
    # [from step, to step, from length, to length]: the length grows linearly (MBPO's
    # schedule, in env steps here rather than epochs); empty: rollout_length throughout
    rollout_schedule: list[int] = field(default_factory=list)
    model_retain: int = 1
    # SAC (SB3's SAC object; names as SB3's)
    real_ratio: float = 0.05
    updates_per_step: int = 20
    learning_rate: float = 3e-4
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005
    ent_coef: Any = "auto"
    target_entropy: Any = "auto"
    net_arch: list[int] = field(default_factory=lambda: [256, 256])  # the deployed actor
    activation_fn: str = "relu"
    threads: int = 1
    seed: int = 0


def rollout_length(cfg: MBPOConfig, steps: int) -> int:
    """The rollout length at env step ``steps`` (MBPO's truncated linear schedule).

    >>> rollout_length(MBPOConfig(rollout_schedule=[1000, 3000, 1, 5]), 2000)
    3
    """
    if not cfg.rollout_schedule:
        return cfg.rollout_length
    a, b, k_a, k_b = cfg.rollout_schedule
    frac = min(max((steps - a) / max(b - a, 1), 0.0), 1.0)
    return int(k_a + frac * (k_b - k_a))


def _torch() -> Any:
    try:
        import stable_baselines3  # noqa: F401  (the SAC learner)
        import torch
    except ImportError:
        raise TrainingError("mbpo needs torch and stable-baselines3: pip install "
                            "'rlbudget[sb3]' (see README, 'Choosing your torch build')"
                            ) from None  # fmt: skip
    return torch


@functools.cache
def _mixed_buffer() -> type:
    """SB3's ReplayBuffer holding the real transitions, whose ``sample`` mixes in the model
    buffer (built on first use: SB3 is imported lazily)."""
    import torch
    from stable_baselines3.common.buffers import ReplayBuffer
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    class MixedReplay(ReplayBuffer):
        model_buffer: Any = None
        real_ratio: float = 1.0

        def sample(self, batch_size: int, env: Any = None) -> Any:
            model = self.model_buffer
            if model is None or (model.pos == 0 and not model.full):
                return super().sample(batch_size, env)
            n_real = round(batch_size * self.real_ratio)
            parts = [model.sample(batch_size - n_real, env)]
            if n_real:
                parts.insert(0, super().sample(n_real, env))
            fields = ("observations", "actions", "next_observations", "dones", "rewards")
            return ReplayBufferSamples(*(torch.cat([getattr(p, f) for p in parts])
                                         for f in fields))  # fmt: skip

    return MixedReplay


def make_sac(env: Any, cfg: MBPOConfig) -> Any:
    """SB3's SAC with the config's settings, its real buffer holding every real step."""
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import Logger

    from rlbudget.sb3.training import ACTIVATIONS

    if cfg.activation_fn not in ACTIVATIONS:
        raise PlanError(f"mbpo: activation_fn '{cfg.activation_fn}' is not one SAC's actor "
                        f"takes here; write one of {', '.join(ACTIVATIONS)}")  # fmt: skip
    model = SAC(
        "MlpPolicy", env, seed=cfg.seed, device="cpu", verbose=0,
        learning_rate=cfg.learning_rate, batch_size=cfg.batch_size, gamma=cfg.gamma,
        tau=cfg.tau, ent_coef=cfg.ent_coef, target_entropy=cfg.target_entropy,
        buffer_size=max(1, cfg.n_timesteps), replay_buffer_class=_mixed_buffer(),
        replay_buffer_kwargs={"handle_timeout_termination": False},
        policy_kwargs={"net_arch": [int(w) for w in cfg.net_arch],
                       "activation_fn": getattr(torch.nn, ACTIVATIONS[cfg.activation_fn])},
    )  # fmt: skip
    model.set_logger(Logger(None, []))  # train() records its losses; nowhere to write them
    return model


def _model_buffer(env: Any, capacity: int) -> Any:
    from stable_baselines3.common.buffers import ReplayBuffer

    return ReplayBuffer(max(1, capacity), env.observation_space, env.action_space,
                        device="cpu", handle_timeout_termination=False)  # fmt: skip


def _add_batch(buf: Any, obs: Array, act: Array, rew: Array, nxt: Array, done: Array) -> None:
    """Append rows to a one-env SB3 ReplayBuffer (wrapping around, as its ``add``)."""
    for lo in range(0, len(obs), buf.buffer_size):
        rows = slice(lo, min(lo + buf.buffer_size, len(obs)))
        n = rows.stop - rows.start
        idx = (buf.pos + np.arange(n)) % buf.buffer_size
        buf.observations[idx, 0] = obs[rows]
        buf.next_observations[idx, 0] = nxt[rows]
        buf.actions[idx, 0] = act[rows]
        buf.rewards[idx, 0] = rew[rows]
        buf.dones[idx, 0] = done[rows]
        buf.full = buf.full or buf.pos + n >= buf.buffer_size
        buf.pos = int((buf.pos + n) % buf.buffer_size)


def _filled(buf: Any, name: str) -> Array:
    n = buf.buffer_size if buf.full else buf.pos
    return np.asarray(getattr(buf, name)[:n, 0])


def check_config(cfg: MBPOConfig) -> None:
    """Counts at least 1, ``real_ratio`` in [0, 1], a four-number ``rollout_schedule``.

    :raises PlanError: one line naming the hyperparameter (``model_train_freq: 0`` was a
        ZeroDivisionError, ``real_ratio: 1.5`` a negative batch, exit 3).
    """
    counts = {k: getattr(cfg, k) for k in (
        "ensemble", "model_batch_size", "model_epochs", "model_max_updates",
        "model_train_freq", "rollout_batch", "rollout_length", "model_retain",
        "updates_per_step", "batch_size", "threads")}  # fmt: skip
    counts.update({f"net_arch[{i}]": w for i, w in enumerate(cfg.net_arch)})
    counts.update({f"model_arch[{i}]": w for i, w in enumerate(cfg.model_arch)})
    for key, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise PlanError(f"mbpo: hyperparameter {key} = {value!r}; write a whole number "
                            "of at least 1")  # fmt: skip
    if not 0.0 <= cfg.real_ratio <= 1.0:
        raise PlanError(f"mbpo: hyperparameter real_ratio = {cfg.real_ratio}; write a share "
                        "in [0, 1] (MBPO's 0.05)")  # fmt: skip
    schedule = cfg.rollout_schedule
    if schedule and (len(schedule) != 4 or not all(isinstance(v, int) and v >= 0
                                                   for v in schedule)):  # fmt: skip
        raise PlanError(
            f"mbpo: hyperparameter rollout_schedule = {schedule!r}; write [from step, to "
            "step, from length, to length], e.g. [1000, 3000, 1, 5]"
        )


def train_mbpo(
    env_id: str,
    cfg: MBPOConfig,
    *,
    gym_packages: Sequence[str] = (),
    on_episode: OnEpisode | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Checkpoint | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    checkpoint_every: int = 0,
) -> TrainResult:
    """MBPO; the keyword arguments work as for :class:`~rlbudget.agents.common.Trainer`
    (see the module docstring)."""
    check_config(cfg)
    env, obs_spec, act_spec = open_env(env_id, gym_packages)
    if obs_spec.kind != "box" or act_spec.kind != "box":
        env.close()
        raise EnvError(f"environment '{env_id}': mbpo needs Box observations and Box "
                       "actions (SAC's squashed Gaussian actor)")  # fmt: skip
    torch = _torch()
    from rlbudget.sb3.checkpoint import model_checkpoint, restore_model
    from rlbudget.sb3.convert import from_model
    from rlbudget.sb3.training import check_finite

    threads_before = torch.get_num_threads()  # restored at the end
    torch.set_num_threads(max(1, cfg.threads))
    sac = make_sac(env, cfg)
    real = sac.replay_buffer
    k_max = max(cfg.rollout_length, *(cfg.rollout_schedule[2:] or [1]))
    mbuf = _model_buffer(env, cfg.rollout_batch * k_max * max(1, cfg.model_retain))
    real.model_buffer, real.real_ratio = mbuf, cfg.real_ratio
    obs_dim, n_act = obs_spec.dim, act_spec.dim
    ens = Ensemble(obs_dim + n_act, obs_dim, cfg.ensemble, list(cfg.model_arch), cfg.seed,
                   cfg.model_lr, cfg.model_weight_decay)  # fmt: skip
    o_low, o_high = np.asarray(obs_spec.low, np.float32), np.asarray(obs_spec.high, np.float32)
    rng = np.random.default_rng(cfg.seed)
    episodes: list[Episode] = []
    model_loss, model_steps = float("nan"), 0
    steps, wall0 = 0, 0.0
    env.reset(seed=cfg.seed)
    if resume is not None:
        ck, arr = resume.state, resume.arrays
        restore_model(sac, None, resume)
        steps, wall0 = int(ck["steps"]), float(ck["wall_s"])
        episodes = [Episode(**e) for e in ck["episodes"]]
        model_loss, model_steps = float(ck["model_loss"]), int(ck["model_transitions"])
        rng.bit_generator.state = ck["agent_rng"]
        env.unwrapped.np_random = rng_from_state(ck["env_rng"])
        if ck["model_fitted"]:
            ens.load_arrays(dict(arr))
        load_adam(ens.optimizer, arr, "m_")
        for name in BUFFER_ARRAYS:
            saved = np.asarray(arr[f"mbuf/{name}"])
            getattr(mbuf, name)[: len(saved), 0] = saved
        mbuf.pos, mbuf.full = int(ck["mbuf"]["pos"]), bool(ck["mbuf"]["full"])
    start = time.perf_counter() - wall0
    sync(env, steps, len(episodes) + 1)  # NaN/inf messages name the training step

    def current() -> Policy:
        prov = provenance("rlbudget.agents.model_based (Stable-Baselines3 SAC learner)",
                          "mbpo", env_id, cfg, steps)  # fmt: skip
        return from_model(sac, None, provenance=prov)

    def snapshot() -> Checkpoint:
        """The state at an episode boundary (the env is between episodes)."""
        sac.num_timesteps = steps
        ck = model_checkpoint(sac, None, episodes, time.perf_counter() - start, "mbpo")
        state = {**ck.state, "model_loss": model_loss, "model_transitions": model_steps,
                 "model_fitted": math.isfinite(model_loss),
                 "agent_rng": rng.bit_generator.state, "env_rng": env_rng_state(env),
                 "mbuf": {"pos": int(mbuf.pos), "full": bool(mbuf.full)}}  # fmt: skip
        arrays = {**ck.arrays, **ens.arrays(), **adam_arrays(ens.optimizer, "m_"),
                  **{f"mbuf/{n}": _filled(mbuf, n).copy() for n in BUFFER_ARRAYS}}  # fmt: skip
        return Checkpoint(state, arrays)

    next_ck = (steps // checkpoint_every + 1) * checkpoint_every if checkpoint_every else 0
    stopped = False
    low, high = np.asarray(act_spec.low, np.float32), np.asarray(act_spec.high, np.float32)
    try:
        while steps < cfg.n_timesteps:
            at_start = snapshot()  # a stop in the middle of this episode returns it
            obs, _ = env.reset()
            ret, n, done = 0.0, 0, False
            exploring = steps < cfg.random_steps
            while not done and steps < cfg.n_timesteps:
                if should_stop is not None and should_stop():
                    stopped = True
                    break
                x = np.asarray(obs, np.float32).ravel()
                if steps < cfg.random_steps:
                    scaled = rng.uniform(-1.0, 1.0, n_act).astype(np.float32)
                else:
                    with torch.no_grad():
                        scaled = sac.actor(torch.from_numpy(x[None]))[0].numpy()
                action = (low + 0.5 * (scaled + 1.0) * (high - low)).astype(np.float32)
                obs, reward, terminated, truncated, _ = env.step(action)
                r = float(reward)  # the guard stops at NaN/inf
                x2 = np.asarray(obs, np.float32).ravel()
                real.add(x[None], x2[None], scaled[None], np.asarray([r]),
                         np.asarray([float(terminated)]), [{}])  # fmt: skip
                steps += 1
                ret += r
                n += 1
                done = bool(terminated or truncated)
                if steps >= cfg.random_steps:
                    if (steps - cfg.random_steps) % cfg.model_train_freq == 0:
                        model_loss = _fit(ens, real, cfg, rng, steps)
                        model_steps += _rollouts(ens, sac, real, mbuf, cfg, rng, steps,
                                                 o_low, o_high)  # fmt: skip
                    if cfg.updates_per_step > 0:
                        sac.train(gradient_steps=cfg.updates_per_step, batch_size=cfg.batch_size)
            if stopped or not done:  # stopped, or the step budget ran out mid-episode
                stopped = True
                break
            check_finite(sac, steps)
            alpha = float(torch.exp(sac.log_ent_coef.detach()).mean()) if (
                sac.log_ent_coef is not None) else float(sac.ent_coef_tensor)  # fmt: skip
            ep = Episode(steps, len(episodes), ret, n, time.perf_counter() - start,
                         1.0 if exploring else alpha,
                         note=("random acted" if exploring else "SAC acted")
                         + f", model NLL {model_loss:.3g}, {model_steps} model steps")  # fmt: skip
            episodes.append(ep)
            if on_episode is not None and on_episode(ep, current):
                break
            if on_checkpoint is not None and checkpoint_every and steps >= next_ck:
                on_checkpoint(snapshot())
                next_ck = (steps // checkpoint_every + 1) * checkpoint_every
    finally:
        env.close()
        torch.set_num_threads(threads_before)
    check_finite(sac, steps)
    policy = current()
    checkpoint = at_start if stopped else snapshot()
    extra = {
        "model_nll": model_loss if math.isfinite(model_loss) else None,
        "transitions": steps, "model_transitions": model_steps,
        "sac_updates": int(sac._n_updates),
        "rollout_length": rollout_length(cfg, steps),
    }  # fmt: skip
    return TrainResult(policy, tuple(episodes), steps, time.perf_counter() - start, checkpoint,
                       extra=extra, files=_model_files(ens, cfg, obs_dim, n_act))  # fmt: skip


def _fit(ens: Ensemble, real: Any, cfg: MBPOConfig, rng: np.random.Generator,
         steps: int) -> float:  # fmt: skip
    """Refit the ensemble on every real transition (inputs [obs, SAC's scaled action])."""
    obs, nxt = _filled(real, "observations"), _filled(real, "next_observations")
    x = np.concatenate([obs, _filled(real, "actions")], axis=1).astype(np.float32)
    y = np.concatenate([nxt - obs, _filled(real, "rewards")[:, None]], axis=1).astype(np.float32)
    loss = ens.fit(x, y, _filled(real, "dones"), epochs=cfg.model_epochs,
                   batch_size=cfg.model_batch_size, rng=rng,
                   max_updates=cfg.model_max_updates)  # fmt: skip
    if not math.isfinite(loss):
        raise TrainingError(f"mbpo: the model's loss became {loss} at step {steps} "
                            "(lower model_lr)")  # fmt: skip
    return loss


def _rollouts(ens: Ensemble, sac: Any, real: Any, mbuf: Any, cfg: MBPOConfig,
              rng: np.random.Generator, steps: int, o_low: Array,
              o_high: Array) -> int:  # fmt: skip
    """Branch ``rollout_batch`` rollouts from real states into the model buffer; returns
    the model transitions added."""
    import torch

    rewards = _filled(real, "rewards")
    r_lo, r_hi = float(rewards.min()), float(rewards.max())
    terminates = bool(_filled(real, "dones").any())
    starts = _filled(real, "observations")
    obs = starts[rng.integers(0, len(starts), cfg.rollout_batch)]
    alive = np.ones(len(obs), bool)
    added = 0
    xm, xs = ens.x_scale.mean, ens.x_scale.std
    ym, ys = ens.y_scale.mean, ens.y_scale.std
    for _ in range(rollout_length(cfg, steps)):
        with torch.no_grad():
            act = sac.actor(torch.from_numpy(obs))  # stochastic: MBPO's sac_samples_action
            x = (torch.cat([torch.from_numpy(obs), act], 1) - torch.from_numpy(xm)) / (
                torch.from_numpy(xs))  # fmt: skip
            mean, logvar, term = ens.forward(x.expand(ens.members, -1, -1))
        rows = np.arange(len(obs))
        member = rng.integers(0, ens.members, len(obs))  # TS1: one member per sample
        mu = mean.numpy()[member, rows]
        std = np.exp(0.5 * logvar.numpy()[member, rows])
        y = (mu + std * rng.standard_normal(mu.shape, np.float32)) * ys + ym
        nxt = np.clip(obs + y[:, :-1], o_low, o_high).astype(np.float32)
        rew = np.clip(y[:, -1], r_lo, r_hi).astype(np.float32)
        done = (term.numpy()[member, rows] > 0) & terminates
        _add_batch(mbuf, obs[alive], act.numpy()[alive], rew[alive], nxt[alive],
                   done[alive].astype(np.float32))  # fmt: skip
        added += int(alive.sum())
        alive &= ~done
        obs = nxt
        if not alive.any():
            break
    return added


def _model_files(ens: Ensemble, cfg: MBPOConfig, obs_dim: int, n_act: int) -> dict[str, bytes]:
    """The ensemble and what rebuilds it, for the run folder's ``model/``."""
    from safetensors.numpy import save

    info = {
        "format": FORMAT, "obs_dim": obs_dim, "action_dim": n_act,
        "action_encoding": "SAC's scaled action in [-1, 1]",
        "inputs": "[observation, action]", "targets": "[next observation - observation, reward]",
        "members": cfg.ensemble, "model_arch": list(cfg.model_arch),
    }  # fmt: skip
    return {MODEL_FILE: save(ens.arrays()), MODEL_INFO: json.dumps(info, indent=1).encode()}


__all__ = ["MBPOConfig", "rollout_length", "train_mbpo"]
