"""Lean SAC and TD3 for the small networks a device runs: torch, one file, CleanRL-style.

One file, top to bottom: the config, the networks (plain lists of tensors), the update of
each algorithm, the loop. Box observations and Box actions with finite bounds.

- **SAC** (Haarnoja et al. 2018, with the automatic entropy coefficient of the 2018
  "applications" paper): a tanh-squashed Gaussian actor, twin critics, soft target
  critics, ``ent_coef="auto"`` tunes α towards ``target_entropy`` (−action dims).
- **TD3** (Fujimoto et al. 2018): a deterministic tanh actor with Gaussian exploration
  noise, twin critics, target policy smoothing, the actor and the targets updated every
  ``policy_delay`` critic updates.

What keeps it lean at 16–256 units (each step of Python costs as much as the maths):

- the twin critics are one batched module: weights ``[2, in, out]``, one ``baddbmm``
  per layer for both (no ``nn.Module``, no per-critic loop);
- Adam is ``fused``; the target networks follow with one ``_foreach_lerp_``; the actor's
  loss differentiates only the actor (``torch.autograd.grad``), α's gradient is written out;
- the replay buffer is preallocated numpy arrays that torch reads without copying
  (``replay_storage``/``replay_compress`` other than float32/none: a
  :class:`~rlbudget.replay.CompactReplay`, decoded to float32 per batch);
- the env loop acts in numpy on views of the live actor weights (no autograd, no tensor
  per step); torch runs with ``threads`` threads (``training.cores``).

Actions are learned in [−1, 1] (rescaled to the env's bounds when taken), as SB3 does. The
deployed policy is the deterministic actor: ``mlp → tanh_rescale`` (SAC: the Gaussian's
mean, squashed), so compress, export and profile take it unchanged.

Checkpoints fall on any step: every weight, Adam's moments, α, the replay buffer, both RNGs
and the env (:class:`~rlbudget.agents.common.EpisodeLog`): a resumed run continues
exactly as a straight one would (with the same ``threads``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
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
)
from rlbudget.errors import EnvError, PlanError, TrainingError
from rlbudget.finite import sync
from rlbudget.policy.model import MLP, Dense, Head, Policy

ALGORITHMS = ("lean-sac", "lean-td3")
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # SAC's log σ range (CleanRL, SpinningUp)
LOG_STD_HALF = 0.5 * (LOG_STD_MAX - LOG_STD_MIN)
Array = np.ndarray


@dataclass(frozen=True)
class OffPolicyConfig:
    """Hyperparameters; tuned values and their sources: ``rlbudget/data/hyperparams/
    lean-sac.yaml`` and ``lean-td3.yaml``."""

    algorithm: str = "lean-sac"
    n_timesteps: int = 100_000
    net_arch: list[int] = field(default_factory=lambda: [64, 64])  # actor and critics
    activation_fn: str = "relu"
    learning_rate: float = 1e-3  # critics (and α)
    policy_learning_rate: float | None = None  # the actor's; None: learning_rate
    buffer_size: int = 1_000_000
    learning_starts: int = 100  # uniformly random actions before the first update
    batch_size: int = 256
    tau: float = 0.005
    gamma: float = 0.99
    train_freq: int = 1  # env steps between updates
    gradient_steps: int = 1  # updates each time
    policy_delay: int | None = None  # critic updates per actor update; None: SAC 1, TD3 2
    ent_coef: float | str = "auto"  # SAC: a fixed α, "auto" or "auto_<initial α>"
    target_entropy: float | None = None  # SAC: None is −(action dims)
    exploration_noise: float = 0.1  # TD3: Gaussian noise σ, in units of the half range
    policy_noise: float = 0.2  # TD3: target policy smoothing σ
    noise_clip: float = 0.5  # TD3: … clipped to ±this
    threads: int = 1  # torch threads (training.cores)
    seed: int = 0
    replay_storage: str = "float32"  # rlbudget.replay: float32, float16, uint8
    replay_compress: str = "none"  # zstd, lz4


# --- the networks -------------------------------------------------------------------------


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise TrainingError("lean-sac and lean-td3 need torch: pip install torch (see README, "
                            "'Choosing your torch build')") from None  # fmt: skip
    return torch


def _init(sizes: list[int], gen: Any, copies: int = 0) -> list[Any]:
    """[W0, b0, W1, b1, …], torch's ``nn.Linear`` initialisation (U(±1/√in)); with
    ``copies`` > 0 each tensor has a leading dimension of that many independent nets."""
    torch = _torch()
    params = []
    for n_in, n_out in pairwise(sizes):
        bound = 1.0 / math.sqrt(n_in)
        lead = (copies,) if copies else ()
        w = (torch.rand(*lead, n_in, n_out, generator=gen) * 2 - 1) * bound
        b = (torch.rand(*lead, 1, n_out, generator=gen) * 2 - 1) * bound
        params += [w.requires_grad_(), b.requires_grad_()]
    return params


def _forward(params: list[Any], x: Any, activation: Any) -> Any:
    """The MLP: one ``addmm`` per layer, or ``baddbmm`` for stacked (twin) weights."""
    torch = _torch()
    last = len(params) // 2 - 1
    for i in range(last + 1):
        w, b = params[2 * i], params[2 * i + 1]
        x = torch.baddbmm(b, x, w) if w.dim() == 3 else torch.addmm(b, x, w)
        if i < last:
            x = activation(x)
    return x


def _np_forward(params: list[Array], x: Array, activation: str) -> Array:
    """The same MLP on one observation in numpy (the env loop's actor, on weight views)."""
    last = len(params) // 2 - 1
    for i in range(last + 1):
        x = x @ params[2 * i] + params[2 * i + 1][0]
        if i < last:
            x = np.maximum(x, 0, out=x) if activation == "relu" else np.tanh(x, out=x)
    return x


class Nets:
    """The actor, the twin critics and their targets (and TD3's target actor), with their
    optimizers; what a checkpoint saves and restores."""

    def __init__(self, cfg: OffPolicyConfig, obs_dim: int, act_dim: int) -> None:
        torch = _torch()
        if cfg.activation_fn not in ("relu", "tanh"):
            raise PlanError(f"{cfg.algorithm}: activation_fn '{cfg.activation_fn}' is not one it "
                            "takes; write relu or tanh")  # fmt: skip
        self.sac = cfg.algorithm == "lean-sac"
        self.act_dim = act_dim
        self.activation = getattr(torch, cfg.activation_fn)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        hidden = [int(w) for w in cfg.net_arch]
        out = 2 * act_dim if self.sac else act_dim  # SAC: mean and log σ
        self.actor = _init([obs_dim, *hidden, out], self.gen)
        self.critic = _init([obs_dim + act_dim, *hidden, 1], self.gen, copies=2)
        self.critic_target = [p.detach().clone() for p in self.critic]
        self.actor_target = [] if self.sac else [p.detach().clone() for p in self.actor]
        self.log_alpha = torch.zeros(1, requires_grad=True)
        self.fixed_alpha: float | None = None
        if self.sac:
            coef = str(cfg.ent_coef)
            if coef.startswith("auto"):
                start = float(coef[5:]) if coef.startswith("auto_") else 1.0
                self.log_alpha.data.fill_(math.log(start))
            else:
                self.fixed_alpha = float(coef)
        policy_lr = cfg.policy_learning_rate or cfg.learning_rate
        # One fused Adam for everything: one step per update; a parameter without a
        # gradient (the actor between TD3's delayed updates, a fixed α) is left alone.
        self.optimizer = torch.optim.Adam(
            [{"params": self.critic}, {"params": self.actor, "lr": policy_lr},
             {"params": [self.log_alpha]}], lr=cfg.learning_rate, fused=True)  # fmt: skip
        # numpy views of the live actor weights (Adam updates them in place)
        self.actor_np = [p.detach().numpy() for p in self.actor]

    def alpha(self) -> float:
        if self.fixed_alpha is not None:
            return self.fixed_alpha
        return float(self.log_alpha.detach().exp())

    def named(self) -> dict[str, Any]:
        """Every learned tensor by its checkpoint name."""
        groups = {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                  "actor_target": self.actor_target}  # fmt: skip
        out = {f"{k}.{i}": p for k, ps in groups.items() for i, p in enumerate(ps)}
        out["log_alpha"] = self.log_alpha
        return out

    def arrays(self) -> dict[str, Array]:
        out = {k: p.detach().numpy().copy() for k, p in self.named().items()}
        out.update(adam_arrays(self.optimizer, "adam"))
        out["torch_gen"] = self.gen.get_state().numpy().copy()
        return out

    def load(self, arrays: Any) -> None:
        torch = _torch()
        with torch.no_grad():
            for k, p in self.named().items():
                p.copy_(torch.from_numpy(np.array(arrays[k])))
        load_adam(self.optimizer, arrays, "adam")
        self.gen.set_state(torch.from_numpy(np.array(arrays["torch_gen"])))


# --- the updates --------------------------------------------------------------------------


def _sac_sample(nets: Nets, obs: Any) -> tuple[Any, Any]:
    """Reparameterized tanh-Gaussian actions in [−1, 1] and their log-probabilities."""
    torch = _torch()
    out = _forward(nets.actor, obs, nets.activation)
    mean, log_std = out[:, : nets.act_dim], out[:, nets.act_dim :]
    log_std = LOG_STD_MIN + LOG_STD_HALF * (torch.tanh(log_std) + 1)
    eps = torch.randn(mean.shape, generator=nets.gen)
    action = torch.tanh(mean + log_std.exp() * eps)
    logp = (-0.5 * eps.square() - log_std - 0.5 * math.log(2 * math.pi)
            - torch.log1p(-action.square() + 1e-6)).sum(1, keepdim=True)  # fmt: skip
    return action, logp


def _td3_target_action(nets: Nets, obs: Any, cfg: OffPolicyConfig) -> Any:
    """The target actor's action with clipped Gaussian noise (target policy smoothing)."""
    torch = _torch()
    action = torch.tanh(_forward(nets.actor_target, obs, nets.activation))
    noise = torch.randn(action.shape, generator=nets.gen) * cfg.policy_noise
    return (action + noise.clamp_(-cfg.noise_clip, cfg.noise_clip)).clamp_(-1.0, 1.0)


def _q(nets: Nets, params: list[Any], obs: Any, action: Any) -> Any:
    """Both critics at once: ``[2, batch, 1]``."""
    torch = _torch()
    x = torch.cat((obs, action), 1)
    return _forward(params, x.expand(2, *x.shape), nets.activation)


def update(nets: Nets, batch: tuple[Any, ...], cfg: OffPolicyConfig, target_entropy: float,
           n_update: int) -> Any:  # fmt: skip
    """One gradient step of the critics and, every ``policy_delay``-th, of the actor, α and
    the targets. As in the SAC paper's algorithm, all take their step at once, from the
    same critics: the actor's loss reads detached critic weights, so one backward pass
    and one fused Adam step serve both. Returns the critics' loss (a tensor)."""
    torch = _torch()
    obs, action, reward, next_obs, done = batch
    alpha = nets.alpha()
    with torch.no_grad():
        if nets.sac:
            next_action, next_logp = _sac_sample(nets, next_obs)
            next_q = _q(nets, nets.critic_target, next_obs, next_action).amin(0)
            next_q -= alpha * next_logp
        else:
            next_action = _td3_target_action(nets, next_obs, cfg)
            next_q = _q(nets, nets.critic_target, next_obs, next_action).amin(0)
        target = reward + cfg.gamma * (1.0 - done) * next_q
    critic_loss = (_q(nets, nets.critic, obs, action) - target).square().mean(dim=(1, 2)).sum()
    loss = critic_loss
    actor_step = n_update % (cfg.policy_delay or 1) == 0
    if actor_step:
        frozen = [p.detach() for p in nets.critic]  # the critics get no gradient from it
        if nets.sac:
            pi, logp = _sac_sample(nets, obs)
            loss = loss + (alpha * logp - _q(nets, frozen, obs, pi).amin(0)).mean()
        else:
            pi = torch.tanh(_forward(nets.actor, obs, nets.activation))
            loss = loss - _q(nets, frozen, obs, pi)[0].mean()  # TD3: the first critic
    nets.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if actor_step and nets.sac and nets.fixed_alpha is None:
        # d/dlog α of −log α · mean(log π + H̄), written out
        nets.log_alpha.grad = -(logp.detach().mean() + target_entropy).reshape(1)
    nets.optimizer.step()
    if actor_step:
        with torch.no_grad():
            torch._foreach_lerp_(nets.critic_target, [p.detach() for p in nets.critic], cfg.tau)
            if not nets.sac:
                torch._foreach_lerp_(nets.actor_target, [p.detach() for p in nets.actor],
                                     cfg.tau)  # fmt: skip
    return critic_loss.detach()


# --- the loop -----------------------------------------------------------------------------


def check_config(cfg: OffPolicyConfig) -> None:
    """Counts and widths at least 1, ``tau`` in (0, 1], ``gamma`` in [0, 1].

    :raises PlanError: one line naming the hyperparameter (a 0 ``train_freq`` or width
        was a ZeroDivisionError, a 0 ``batch_size`` a NaN loss called divergence).
    """
    counts = {"batch_size": cfg.batch_size, "buffer_size": cfg.buffer_size,
              "train_freq": cfg.train_freq, "gradient_steps": cfg.gradient_steps,
              "policy_delay": cfg.policy_delay or 1, "threads": cfg.threads}  # fmt: skip
    counts.update({f"net_arch[{i}]": w for i, w in enumerate(cfg.net_arch)})
    for key, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise PlanError(f"{cfg.algorithm}: hyperparameter {key} = {value!r}; write a whole "
                            "number of at least 1")  # fmt: skip
    if not isinstance(cfg.learning_starts, int) or cfg.learning_starts < 0:
        raise PlanError(f"{cfg.algorithm}: hyperparameter learning_starts = "
                        f"{cfg.learning_starts!r}; write a whole number of at least 0")  # fmt: skip
    from rlbudget.replay import Storage

    Storage.from_params({"replay_storage": cfg.replay_storage,
                         "replay_compress": cfg.replay_compress})  # fmt: skip
    if not 0.0 < cfg.tau <= 1.0 or not 0.0 <= cfg.gamma <= 1.0:
        raise PlanError(f"{cfg.algorithm}: tau = {cfg.tau}, gamma = {cfg.gamma}; tau must lie "
                        "in (0, 1] and gamma in [0, 1]")  # fmt: skip


def train_offpolicy(
    env_id: str,
    cfg: OffPolicyConfig,
    *,
    gym_packages: Sequence[str] = (),
    on_episode: OnEpisode | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Checkpoint | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    checkpoint_every: int = 0,
) -> TrainResult:
    """Lean SAC or TD3 (``cfg.algorithm``); the keyword arguments work as for
    :class:`~rlbudget.agents.common.Trainer` (stop before any step, checkpoint, exact
    resume)."""
    if cfg.algorithm not in ALGORITHMS:
        raise PlanError(f"unknown algorithm '{cfg.algorithm}'; use {', '.join(ALGORITHMS)}")
    if cfg.policy_delay is None:
        cfg = replace(cfg, policy_delay=1 if cfg.algorithm == "lean-sac" else 2)
    check_config(cfg)
    env, obs_spec, act_spec = open_env(env_id, gym_packages)
    low = np.asarray(act_spec.low, np.float32) if act_spec.low is not None else None
    high = np.asarray(act_spec.high, np.float32) if act_spec.high is not None else None
    if obs_spec.kind != "box" or act_spec.kind != "box" or low is None or high is None \
            or not (np.isfinite(low).all() and np.isfinite(high).all()):  # fmt: skip
        env.close()
        raise EnvError(f"environment '{env_id}': {cfg.algorithm} needs Box observations and "
                       "Box actions with finite bounds")  # fmt: skip
    torch = _torch()
    threads_before = torch.get_num_threads()  # restored at the end
    torch.set_num_threads(max(1, cfg.threads))
    obs_dim, act_dim = obs_spec.dim, act_spec.dim
    half, mid = (high - low) / 2, (high + low) / 2
    nets = Nets(cfg, obs_dim, act_dim)
    target_entropy = -float(act_dim) if cfg.target_entropy is None else cfg.target_entropy
    rng = np.random.default_rng([cfg.seed, 2])  # exploration: random actions, noise
    # The replay buffer, preallocated; torch reads it without a copy.
    cap = max(1, min(cfg.buffer_size, cfg.n_timesteps))
    widths = {"obs": obs_dim, "action": act_dim, "reward": 1, "next_obs": obs_dim, "done": 1}
    compact = _compact_buffer(cfg, obs_spec, act_spec, cap, env_id)
    buf = {k: np.zeros((0 if compact else cap, n), np.float32) for k, n in widths.items()}
    views = [torch.from_numpy(buf[k]) for k in ("obs", "action", "reward", "next_obs", "done")]
    size, ptr, n_update = 0, 0, 0
    log = EpisodeLog.from_state(resume.state) if resume is not None else EpisodeLog()
    loss: Any = None
    env.action_space.seed(cfg.seed)
    if resume is None:
        obs, _ = env.reset(seed=cfg.seed)
    else:
        ck, arr = resume.state, resume.arrays
        nets.load(arr)
        size, ptr, n_update = int(ck["size"]), int(ck["ptr"]), int(ck["n_update"])
        for k, a in buf.items():
            a[:size] = arr[f"buffer.{k}"]
        if compact is not None:
            compact.load(arr, "buffer.compact.")
        rng.bit_generator.state = ck["rng"]
        actions = [np.asarray(a, np.float32) for a in log.episode_actions]
        obs = restore_env(env, cfg.seed, log.episode_start, actions)
    start = time.perf_counter() - log.wall0
    x = np.asarray(obs, np.float32).ravel()

    def current() -> Policy:
        """The deterministic actor: the mean's layers (SAC), tanh rescaled to the bounds."""
        w = [p.detach().numpy() for p in nets.actor]
        n = len(w) // 2
        act = cfg.activation_fn
        layers = [Dense(w[2 * i].copy(), w[2 * i + 1][0].copy(), act if i < n - 1 else "identity")
                  for i in range(n)]  # fmt: skip
        last = layers[-1]
        layers[-1] = Dense(last.W[:, :act_dim].copy(), last.b[:act_dim].copy())
        prov = provenance("rlbudget.agents.offpolicy", cfg.algorithm, env_id, cfg, log.steps)
        return Policy(obs_spec, act_spec, (), MLP(tuple(layers)), Head("tanh_rescale", low, high),
                      prov)  # fmt: skip

    def snapshot() -> Checkpoint:
        state = {**log.state(time.perf_counter() - start), "algorithm": cfg.algorithm,
                 "size": size, "ptr": ptr, "n_update": n_update,
                 "rng": rng.bit_generator.state}  # fmt: skip
        arrays = {**nets.arrays(), **{f"buffer.{k}": a[:size].copy() for k, a in buf.items()}}
        if compact is not None:
            arrays.update(compact.arrays("buffer.compact."))
        return Checkpoint(state, arrays)

    hooks = StepHooks(should_stop, on_checkpoint, checkpoint_every, log.steps)
    sync(env, log.steps, len(log.episodes) + 1)  # NaN/inf messages name the training step
    actor_np, sac, noise = nets.actor_np, nets.sac, cfg.exploration_noise
    try:
        for t in range(log.steps, cfg.n_timesteps):
            if hooks.stop(t, snapshot):
                break
            if t < cfg.learning_starts:
                a = rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
            elif sac:
                out = _np_forward(actor_np, x, cfg.activation_fn)
                log_std = LOG_STD_MIN + LOG_STD_HALF * (np.tanh(out[act_dim:]) + 1)
                eps = rng.standard_normal(act_dim).astype(np.float32)
                a = np.tanh(out[:act_dim] + np.exp(log_std) * eps)
            else:
                out = np.tanh(_np_forward(actor_np, x, cfg.activation_fn))
                eps = rng.standard_normal(act_dim).astype(np.float32)
                a = np.clip(out + noise * eps, -1.0, 1.0)
            if t >= cfg.learning_starts and not np.isfinite(a).all():
                raise _diverged(cfg, "the actor's action", a, t + 1)
            action = (a * half + mid).astype(np.float32)
            obs, reward, terminated, truncated, _ = env.step(action)  # the guard stops at NaN/inf
            r = float(reward)
            log.record(action.tolist(), r)
            x2 = np.asarray(obs, np.float32).ravel()
            if compact is None:
                buf["obs"][ptr], buf["action"][ptr], buf["reward"][ptr] = x, a, r
                buf["next_obs"][ptr], buf["done"][ptr] = x2, float(terminated)
                ptr = (ptr + 1) % cap
                size = min(size + 1, cap)
            else:
                compact.add(x, x2, a, r, terminated, False)
                size = compact.size
            if t + 1 > cfg.learning_starts and (t + 1) % cfg.train_freq == 0:
                for _ in range(cfg.gradient_steps):
                    idx = torch.randint(size, (cfg.batch_size,), generator=nets.gen)
                    if compact is None:
                        batch = tuple(v.index_select(0, idx) for v in views)
                    else:
                        b = compact.gather(idx.numpy())
                        batch = tuple(torch.from_numpy(v.reshape(len(v), -1)) for v in
                                      (b.obs, b.action, b.reward, b.next_obs, b.done))  # fmt: skip
                    n_update += 1
                    loss = update(nets, batch, cfg, target_entropy, n_update)
            x = x2
            if terminated or truncated:
                critic_loss = math.nan if loss is None else float(loss)
                if loss is not None and not math.isfinite(critic_loss):
                    raise _diverged(cfg, "the critics' loss", critic_loss, log.steps)
                exploration = nets.alpha() if sac else noise
                ep = log.end_episode(env, time.perf_counter() - start, exploration)
                if loss is not None:
                    ep = replace(ep, note=f"critic loss {critic_loss:.3g}"
                                 + (f", alpha {exploration:.3g}" if sac else ""))  # fmt: skip
                log.episodes[-1] = ep
                obs, _ = env.reset()
                x = np.asarray(obs, np.float32).ravel()
                if on_episode is not None and on_episode(ep, current):
                    break
    finally:
        env.close()
        torch.set_num_threads(threads_before)
    wall = time.perf_counter() - start
    return TrainResult(current(), tuple(log.episodes), log.steps, wall, snapshot())


def _compact_buffer(cfg: OffPolicyConfig, obs: Any, act: Any, cap: int, env_id: str) -> Any:
    """A :class:`~rlbudget.replay.CompactReplay` for ``cfg``'s replay storage (byte cap:
    ``cap`` transitions at the estimated size), or None for the float32 arrays."""
    from rlbudget.replay import CompactReplay, Storage, transition_bytes

    storage = Storage.from_params({"replay_storage": cfg.replay_storage,
                                   "replay_compress": cfg.replay_compress})  # fmt: skip
    if not storage.compact:
        return None
    per = math.ceil(transition_bytes(obs, act, storage).estimate)
    return CompactReplay(obs, act, cap, storage, cap * per, f"environment '{env_id}'")


def _diverged(cfg: OffPolicyConfig, what: str, value: Any, step: int) -> TrainingError:
    shown = value.tolist() if isinstance(value, np.ndarray) else value
    return TrainingError(f"{cfg.algorithm}: training diverged at step {step}: {what} became "
                         f"{shown} (lower learning_rate)")  # fmt: skip


def deterministic_action(nets: Nets, obs: Any) -> Any:
    """The torch actor's deterministic action in [−1, 1] (SAC: tanh of the mean) for a
    batch of observations; what the deployed policy computes before rescaling."""
    torch = _torch()
    with torch.no_grad():
        out = _forward(nets.actor, torch.as_tensor(obs, dtype=torch.float32), nets.activation)
        return torch.tanh(out[:, : nets.act_dim])


def measure_throughput(algorithm: str, env_id: str, width: int, *, steps: int = 300,
                       layers: int = 2, threads: int = 1, seed: int = 0,
                       **overrides: Any) -> float:  # fmt: skip
    """Env steps per second of training (one update per step) at ``layers`` × ``width``
    units on this host: ``steps`` steps after one batch of random ones, timed from the
    first update. For the planner's host calibration.

    >>> measure_throughput("lean-sac", "Pendulum-v1", 16, steps=20) > 0
    True
    """
    cfg = OffPolicyConfig(algorithm=algorithm, net_arch=[width] * layers, threads=threads,
                          seed=seed, **overrides)  # fmt: skip
    warm = cfg.batch_size
    cfg = replace(cfg, learning_starts=warm, n_timesteps=warm + steps)
    calls: list[float] = []

    def clock() -> bool:
        calls.append(time.perf_counter())
        return False

    train_offpolicy(env_id, cfg, should_stop=clock)
    return steps / (time.perf_counter() - calls[warm]) if len(calls) > warm else math.nan
