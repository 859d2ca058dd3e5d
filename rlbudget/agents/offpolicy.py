"""Lean SAC and TD3 for the small networks a device runs: numpy, one file, CleanRL-style.

One file, top to bottom: the config, the networks (views into one flat parameter vector),
their forward and backward passes written out, the update of each algorithm, the loop.
Box observations and Box actions with finite bounds.

- **SAC** (Haarnoja et al. 2018, with the automatic entropy coefficient of the 2018
  "applications" paper): a tanh-squashed Gaussian actor, twin critics, soft target
  critics, ``ent_coef="auto"`` tunes α towards ``target_entropy`` (−action dims).
- **TD3** (Fujimoto et al. 2018): a deterministic tanh actor with exploration noise
  (Gaussian; Ornstein-Uhlenbeck as the RL Zoo uses on MountainCarContinuous; or pink noise,
  Eberhard et al. 2023, "Pink noise is all you need": correlated in time, it reaches a far
  sparse goal where white noise does not), twin critics, target policy smoothing, the actor
  and the targets updated every ``policy_delay`` critic updates.

Why numpy and not torch: at 16–256 units and a batch of 256 an update is ≈ 20 small matrix
products and ≈ 60 element-wise operations. torch spends more time dispatching them, in its
autograd engine and in ``torch.optim.Adam``'s Python than in the maths; numpy calls BLAS
directly. The gradients are written out (each layer's backward is three lines) and
checked against torch's autograd in ``tests/test_offpolicy.py``. What keeps it lean:

- every learned number is in one float32 vector (critics, then actor, then log α); each
  layer's weights are views into it, so Adam and the target networks' Polyak averaging are
  a few operations on one vector, not a loop over tensors;
- the twin critics are stacked: weights ``[2, in, out]``, one batched product per layer;
- the replay buffer is one preallocated array (a sampled batch is one gather); with
  ``replay_storage``/``replay_compress`` other than float32/none it is a
  :class:`~rlbudget.replay.CompactReplay`, decoded to float32 per batch;
- acting in the env loop is the same forward pass on one observation, on the live weights.

Actions are learned in [−1, 1] (rescaled to the env's bounds when taken), as SB3 does. The
deployed policy is the deterministic actor: ``mlp → tanh_rescale`` (SAC: the Gaussian's
mean, squashed), so compress, export and profile take it unchanged.

Checkpoints fall on any step: the parameter vector, the targets, Adam's moments, the
replay buffer, the RNG, the exploration noise and the env
(:class:`~rlbudget.agents.common.EpisodeLog`): a resumed run continues exactly as a
straight one would (with the same ``threads``: BLAS threads, ``training.cores``).
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
    open_env,
    provenance,
    restore_env,
)
from rlbudget.errors import EnvError, PlanError, TrainingError
from rlbudget.finite import sync
from rlbudget.policy.model import MLP, Dense, Head, Policy

ALGORITHMS = ("lean-sac", "lean-td3")
NOISE_TYPES = ("normal", "ornstein-uhlenbeck", "pink")
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # SAC's log σ range (CleanRL, SpinningUp)
LOG_STD_HALF = 0.5 * (LOG_STD_MAX - LOG_STD_MIN)
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, as SB3 and CleanRL
OU_THETA, OU_DT = 0.15, 1e-2  # SB3's OrnsteinUhlenbeckActionNoise defaults
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
    exploration_noise: float = 0.1  # TD3: the noise's σ, in units of the half range
    noise_type: str = "normal"  # TD3: "normal", "ornstein-uhlenbeck" (SB3's, θ 0.15, dt 0.01)
    # or "pink" (1/f, Eberhard et al. 2023: one sequence per episode; also the random phase's)
    policy_noise: float = 0.2  # TD3: target policy smoothing σ
    noise_clip: float = 0.5  # TD3: … clipped to ±this
    threads: int = 1  # BLAS threads (training.cores)
    seed: int = 0
    replay_storage: str = "float32"  # rlbudget.replay: float32, float16, uint8
    replay_compress: str = "none"  # zstd, lz4


# --- the networks -------------------------------------------------------------------------


def layer_shapes(sizes: list[int], copies: int = 0) -> list[tuple[int, ...]]:
    """[W0, b0, W1, b1, …]'s shapes; with ``copies`` a leading dimension of that many nets."""
    lead = (copies,) if copies else ()
    return [s for n_in, n_out in pairwise(sizes) for s in ((*lead, n_in, n_out), (*lead, 1, n_out))]


def param_views(flat: Array, shapes: list[tuple[int, ...]]) -> list[Array]:
    """Consecutive views of ``flat`` with these shapes."""
    out, at = [], 0
    for shape in shapes:
        n = math.prod(shape)
        out.append(flat[at : at + n].reshape(shape))
        at += n
    return out


def _size(shapes: list[tuple[int, ...]]) -> int:
    return sum(math.prod(s) for s in shapes)


def forward(params: list[Array], x: Array, activation: str) -> tuple[Array, list[Array]]:
    """The MLP; returns its output and each layer's input (for :func:`backward`). Stacked
    (twin) weights ``[2, in, out]`` give ``[2, batch, out]``, from a shared ``x``."""
    inputs = [x]
    last = len(params) // 2 - 1
    for i in range(last + 1):
        z = inputs[-1] @ params[2 * i] + params[2 * i + 1]
        if i == last:
            return z, inputs
        inputs.append(np.maximum(z, 0, out=z) if activation == "relu" else np.tanh(z, out=z))
    raise AssertionError("unreachable")


def backward(params: list[Array], grads: list[Array] | None, inputs: list[Array], d_out: Array,
             activation: str) -> Array | None:  # fmt: skip
    """Back through :func:`forward` from the output's gradient ``d_out``: writes the weights'
    gradients into ``grads``; with ``grads`` None, returns the input's gradient instead."""
    for i in range(len(params) // 2 - 1, -1, -1):
        h = inputs[i]
        if grads is not None:
            np.matmul(h.swapaxes(-1, -2), d_out, out=grads[2 * i])
            np.sum(d_out, axis=-2, keepdims=True, out=grads[2 * i + 1])
            if i == 0:
                return None
        d_out = d_out @ params[2 * i].swapaxes(-1, -2)
        if i > 0:  # through the activation: relu' is h > 0, tanh' is 1 − h²
            d_out *= (h > 0) if activation == "relu" else 1 - h * h
    return d_out


class Nets:
    """The actor, the twin critics, log α (one vector ``theta``: critics, actor, log α), the
    targets, Adam's state; what a checkpoint saves and restores."""

    def __init__(self, cfg: OffPolicyConfig, obs_dim: int, act_dim: int) -> None:
        if cfg.activation_fn not in ("relu", "tanh"):
            raise PlanError(f"{cfg.algorithm}: activation_fn '{cfg.activation_fn}' is not one it "
                            "takes; write relu or tanh")  # fmt: skip
        self.sac = cfg.algorithm == "lean-sac"
        self.obs_dim, self.act_dim, self.activation = obs_dim, act_dim, cfg.activation_fn
        hidden = [int(w) for w in cfg.net_arch]
        out = 2 * act_dim if self.sac else act_dim  # SAC: mean and log σ
        critic_shapes = layer_shapes([obs_dim + act_dim, *hidden, 1], copies=2)
        actor_shapes = layer_shapes([obs_dim, *hidden, out])
        self.n_critic, n_actor = _size(critic_shapes), _size(actor_shapes)
        self.theta = np.zeros(self.n_critic + n_actor + 1, np.float32)
        self.grad = np.zeros_like(self.theta)
        self.critic = param_views(self.theta[: self.n_critic], critic_shapes)
        self.actor = param_views(self.theta[self.n_critic : -1], actor_shapes)
        self.critic_grad = param_views(self.grad[: self.n_critic], critic_shapes)
        self.actor_grad = param_views(self.grad[self.n_critic : -1], actor_shapes)
        # torch's nn.Linear initialisation, U(±1/√in) for weights and biases
        rng = np.random.default_rng([cfg.seed, 1])
        for params in (self.critic, self.actor):
            for w, b in zip(params[::2], params[1::2], strict=True):
                bound = 1.0 / math.sqrt(w.shape[-2])
                w[...] = rng.uniform(-bound, bound, w.shape)
                b[...] = rng.uniform(-bound, bound, b.shape)
        self.fixed_alpha: float | None = None
        if self.sac:
            coef = str(cfg.ent_coef)
            if coef.startswith("auto"):
                self.theta[-1] = math.log(float(coef[5:]) if coef.startswith("auto_") else 1.0)
            else:
                self.fixed_alpha = float(coef)
        self.critic_target_flat = self.theta[: self.n_critic].copy()
        self.actor_target_flat = self.theta[self.n_critic : -1].copy()
        self.critic_target = param_views(self.critic_target_flat, critic_shapes)
        self.actor_target = param_views(self.actor_target_flat, actor_shapes)
        # Adam: the critics' part steps every update, the actor's and log α's with the actor
        self.m, self.v = np.zeros_like(self.theta), np.zeros_like(self.theta)
        self.lr = np.full_like(self.theta, cfg.learning_rate)
        self.lr[self.n_critic : -1] = cfg.policy_learning_rate or cfg.learning_rate
        self.t_critic, self.t_actor = 0, 0

    def alpha(self) -> float:
        return self.fixed_alpha if self.fixed_alpha is not None else math.exp(self.theta[-1])

    def adam(self, part: slice, t: int) -> None:
        """One Adam step (torch.optim.Adam's arithmetic) of ``theta[part]``."""
        (b1, b2), g, m, v = ADAM_BETAS, self.grad[part], self.m[part], self.v[part]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        denom = np.sqrt(v) / math.sqrt(1 - b2**t) + ADAM_EPS
        self.theta[part] -= self.lr[part] / (1 - b1**t) * m / denom

    def arrays(self) -> dict[str, Array]:
        names = {"theta": self.theta, "critic_target": self.critic_target_flat,
                 "actor_target": self.actor_target_flat, "adam_m": self.m,
                 "adam_v": self.v}  # fmt: skip
        return {k: a.copy() for k, a in names.items()}

    def load(self, arrays: Any, state: Any) -> None:
        for k, a in self.arrays().items():
            if k not in arrays or np.shape(arrays[k]) != a.shape:
                raise TrainingError(
                    f"the checkpoint's '{k}' is missing or has another shape: it was written by "
                    "another version of lean-sac/lean-td3 or another network; train afresh "
                    "without --resume")  # fmt: skip
        self.theta[:] = arrays["theta"]
        self.critic_target_flat[:] = arrays["critic_target"]
        self.actor_target_flat[:] = arrays["actor_target"]
        self.m[:], self.v[:] = arrays["adam_m"], arrays["adam_v"]
        self.t_critic, self.t_actor = int(state["t_critic"]), int(state["t_actor"])


# --- the updates --------------------------------------------------------------------------


def _cat(obs: Array, action: Array) -> Array:
    return np.concatenate((obs, action), axis=1)


def _sac_sample(nets: Nets, out: Array, eps: Array) -> tuple[Array, Array, Array, Array]:
    """Reparameterized tanh-Gaussian actions in [−1, 1] from the actor's output and the
    noise ``eps``; their log-probabilities, σ and tanh of the raw log σ (for the backward)."""
    a = nets.act_dim
    tanh_raw = np.tanh(out[:, a:])
    log_std = LOG_STD_MIN + LOG_STD_HALF * (tanh_raw + 1)
    std = np.exp(log_std)
    action = np.tanh(out[:, :a] + std * eps)
    logp = (-0.5 * eps * eps - log_std - LOG_SQRT_2PI
            - np.log1p(-action * action + 1e-6)).sum(1, keepdims=True)  # fmt: skip
    return action, logp, std, tanh_raw


def gradients(nets: Nets, batch: Sequence[Array], cfg: OffPolicyConfig, noise: Sequence[Array],
              actor_step: bool, target_entropy: float) -> float:  # fmt: skip
    """Write the gradient of the losses into ``nets.grad`` (critics always; actor and log α
    when ``actor_step``); return the critics' loss. ``noise``: SAC's ε for the next and the
    current states' actions, TD3's target smoothing noise, each ``[batch, action dims]``.

    The losses (all from the weights before the step, as in the SAC paper's algorithm):
    critics Σᵢ mean (Qᵢ(s, a) − y)², y = r + γ (1 − done) (minᵢ Q'ᵢ(s', a') [− α log π(a'|s')]);
    SAC's actor mean(α log π(ã|s) − minᵢ Qᵢ(s, ã)), TD3's −mean Q₁(s, π(s)); log α:
    −log α · mean(log π + target entropy). The critics get no gradient from the actor's loss.
    """
    obs, action, reward, next_obs, done = batch
    n, act, alpha = obs.shape[0], nets.activation, nets.alpha()
    if nets.sac:
        next_action, next_logp, _, _ = _sac_sample(nets, forward(nets.actor, next_obs, act)[0],
                                                   noise[0])  # fmt: skip
        next_q = forward(nets.critic_target, _cat(next_obs, next_action), act)[0].min(0)
        next_q -= alpha * next_logp
    else:
        smoothing = np.clip(noise[0] * cfg.policy_noise, -cfg.noise_clip, cfg.noise_clip)
        target_action = np.tanh(forward(nets.actor_target, next_obs, act)[0])
        next_action = np.clip(target_action + smoothing, -1.0, 1.0)
        next_q = forward(nets.critic_target, _cat(next_obs, next_action), act)[0].min(0)
    y = reward + cfg.gamma * (1.0 - done) * next_q
    q, inputs = forward(nets.critic, _cat(obs, action), act)
    error = q - y  # [2, batch, 1]
    backward(nets.critic, nets.critic_grad, inputs, error * (2.0 / n), act)
    if not actor_step:
        return float(np.square(error).mean(axis=(1, 2)).sum())
    out, actor_inputs = forward(nets.actor, obs, act)
    if nets.sac:
        pi, logp, std, tanh_raw = _sac_sample(nets, out, noise[1])
        q_pi, critic_inputs = forward(nets.critic, _cat(obs, pi), act)
        second = q_pi[1] < q_pi[0]  # which critic is the minimum (the gradient goes there)
        d_q = np.stack((~second, second)).astype(np.float32) * (-1.0 / n)
        d_input = backward(nets.critic, None, critic_inputs, d_q, act)
        assert d_input is not None
        d_pi = d_input.sum(0)[:, nets.obs_dim :]
        d_pi += (alpha / n) * 2 * pi / (1 - pi * pi + 1e-6)  # α log π's −log(1 − ã² + 1e-6)
        d_u = d_pi * (1 - pi * pi)  # through tanh
        d_log_std = d_u * std * noise[1] - alpha / n  # the sample's σ ε, and −log σ in log π
        d_out = np.concatenate((d_u, d_log_std * LOG_STD_HALF * (1 - tanh_raw * tanh_raw)), 1)
        nets.grad[-1] = 0.0 if nets.fixed_alpha is not None else -(logp.mean() + target_entropy)
    else:
        pi = np.tanh(out)
        first = [p[0] for p in nets.critic]  # TD3's actor follows the first critic
        _, critic_inputs = forward(first, _cat(obs, pi), act)
        d_q = np.full((n, 1), -1.0 / n, np.float32)
        d_input = backward(first, None, critic_inputs, d_q, act)
        assert d_input is not None
        d_out = d_input[:, nets.obs_dim :] * (1 - pi * pi)
    backward(nets.actor, nets.actor_grad, actor_inputs, d_out, act)
    return float(np.square(error).mean(axis=(1, 2)).sum())


def update(nets: Nets, batch: Sequence[Array], cfg: OffPolicyConfig, target_entropy: float,
           n_update: int, rng: np.random.Generator) -> float:  # fmt: skip
    """One gradient step of the critics and, every ``policy_delay``-th, of the actor, α and
    the targets (Polyak averaging). Returns the critics' loss."""
    actor_step = n_update % (cfg.policy_delay or 1) == 0
    shape = (batch[0].shape[0], nets.act_dim)
    noise = [rng.standard_normal(shape, np.float32) for _ in range(2 if nets.sac else 1)]
    loss = gradients(nets, batch, cfg, noise, actor_step, target_entropy)
    nets.t_critic += 1
    nets.adam(slice(0, nets.n_critic), nets.t_critic)
    if actor_step:
        nets.t_actor += 1
        nets.adam(slice(nets.n_critic, None), nets.t_actor)
        nets.critic_target_flat += cfg.tau * (nets.theta[: nets.n_critic] - nets.critic_target_flat)
        if not nets.sac:
            actor = nets.theta[nets.n_critic : -1]
            nets.actor_target_flat += cfg.tau * (actor - nets.actor_target_flat)
    return loss


# --- the loop -----------------------------------------------------------------------------


def check_config(cfg: OffPolicyConfig) -> None:
    """Counts and widths at least 1, ``tau`` in (0, 1], ``gamma`` in [0, 1], a known
    ``noise_type``.

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
    if cfg.noise_type not in NOISE_TYPES:
        raise PlanError(f"{cfg.algorithm}: hyperparameter noise_type = {cfg.noise_type!r}; "
                        f"write one of {', '.join(NOISE_TYPES)}")  # fmt: skip


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
    from threadpoolctl import threadpool_limits

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
    obs_dim, act_dim = obs_spec.dim, act_spec.dim
    half, mid = (high - low) / 2, (high + low) / 2
    nets = Nets(cfg, obs_dim, act_dim)
    target_entropy = -float(act_dim) if cfg.target_entropy is None else cfg.target_entropy
    rng = np.random.default_rng([cfg.seed, 2])  # exploration, batches, the updates' noise
    # The replay buffer: one row per transition, [obs | action | reward | next_obs | done].
    cap = max(1, min(cfg.buffer_size, cfg.n_timesteps))
    cols = np.cumsum([0, obs_dim, act_dim, 1, obs_dim, 1])
    compact = _compact_buffer(cfg, obs_spec, act_spec, cap, env_id)
    buf = np.zeros((0 if compact else cap, int(cols[-1])), np.float32)
    size, ptr, n_update = 0, 0, 0
    ou = np.zeros(act_dim, np.float32)  # TD3's Ornstein-Uhlenbeck state (reset per episode)
    limit = int(getattr(env.spec, "max_episode_steps", None) or 1000)
    pink = _pink(cfg, limit, act_dim, rng)  # this episode's pink noise (None: not pink)
    log = EpisodeLog.from_state(resume.state) if resume is not None else EpisodeLog()
    loss: float | None = None
    env.action_space.seed(cfg.seed)
    if resume is None:
        obs, _ = env.reset(seed=cfg.seed)
    else:
        ck, arr = resume.state, resume.arrays
        try:
            nets.load(arr, ck)
        except TrainingError:
            env.close()
            raise
        size, ptr, n_update = int(ck["size"]), int(ck["ptr"]), int(ck["n_update"])
        buf[:size] = arr["buffer"]
        if compact is not None:
            compact.load(arr, "buffer.compact.")
        rng.bit_generator.state = ck["rng"]
        ou[:] = ck["ou"]
        pink = np.array(arr["pink"]) if "pink" in arr else None
        loss = ck.get("loss")
        actions = [np.asarray(a, np.float32) for a in log.episode_actions]
        obs = restore_env(env, cfg.seed, log.episode_start, actions)
    start = time.perf_counter() - log.wall0
    x = np.asarray(obs, np.float32).ravel()

    def current() -> Policy:
        """The deterministic actor: the mean's layers (SAC), tanh rescaled to the bounds."""
        w, n, act = nets.actor, len(nets.actor) // 2, cfg.activation_fn
        layers = [Dense(w[2 * i].copy(), w[2 * i + 1][0].copy(), act if i < n - 1 else "identity")
                  for i in range(n)]  # fmt: skip
        last = layers[-1]
        layers[-1] = Dense(last.W[:, :act_dim].copy(), last.b[:act_dim].copy())
        prov = provenance("rlbudget.agents.offpolicy", cfg.algorithm, env_id, cfg, log.steps)
        return Policy(obs_spec, act_spec, (), MLP(tuple(layers)), Head("tanh_rescale", low, high),
                      prov)  # fmt: skip

    def snapshot() -> Checkpoint:
        state = {**log.state(time.perf_counter() - start), "algorithm": cfg.algorithm,
                 "size": size, "ptr": ptr, "n_update": n_update, "t_critic": nets.t_critic,
                 "t_actor": nets.t_actor, "rng": rng.bit_generator.state, "ou": ou.tolist(),
                 "loss": loss}  # fmt: skip
        extra = {} if pink is None else {"pink": pink.copy()}
        if compact is not None:
            extra.update(compact.arrays("buffer.compact."))
        return Checkpoint(state, {**nets.arrays(), "buffer": buf[:size].copy(), **extra})

    hooks = StepHooks(should_stop, on_checkpoint, checkpoint_every, log.steps)
    sync(env, log.steps, len(log.episodes) + 1)  # NaN/inf messages name the training step
    sac, sigma, ou_noise = nets.sac, cfg.exploration_noise, cfg.noise_type == "ornstein-uhlenbeck"
    ou_decay, ou_scale = 1.0 - OU_THETA * OU_DT, sigma * math.sqrt(OU_DT)
    # NaN/inf in the weights is caught below, with one line instead of numpy's warnings
    with threadpool_limits(limits=cfg.threads, user_api="blas"), np.errstate(all="ignore"):
        try:
            for t in range(log.steps, cfg.n_timesteps):
                if hooks.stop(t, snapshot):
                    break
                if t < cfg.learning_starts:
                    a = (rng.uniform(-1.0, 1.0, act_dim).astype(np.float32) if pink is None
                         else np.clip(pink[log.ep_len % limit], -1.0, 1.0))  # fmt: skip
                elif sac:
                    out = forward(nets.actor, x[None], cfg.activation_fn)[0][0]
                    log_std = LOG_STD_MIN + LOG_STD_HALF * (np.tanh(out[act_dim:]) + 1)
                    eps = rng.standard_normal(act_dim, np.float32)
                    a = np.tanh(out[:act_dim] + np.exp(log_std) * eps)
                else:
                    out = np.tanh(forward(nets.actor, x[None], cfg.activation_fn)[0][0])
                    if pink is not None:
                        eps = pink[log.ep_len % limit]
                    else:
                        eps = rng.standard_normal(act_dim, np.float32)
                    if ou_noise:  # x ← x − θ x dt + σ √dt ε (SB3's, mean 0)
                        ou[:] = ou_decay * ou + ou_scale * eps
                    a = np.clip(out + (ou if ou_noise else sigma * eps), -1.0, 1.0)
                if t >= cfg.learning_starts and not np.isfinite(a).all():
                    raise _diverged(cfg, "the actor's action", a, t + 1)
                action = (a * half + mid).astype(np.float32)
                obs, reward, terminated, truncated, _ = env.step(action)  # guarded: NaN/inf
                r = float(reward)
                log.record(action.tolist(), r)
                x2 = np.asarray(obs, np.float32).ravel()
                if compact is None:
                    row = buf[ptr]
                    row[cols[0] : cols[1]], row[cols[1] : cols[2]], row[cols[2]] = x, a, r
                    row[cols[3] : cols[4]], row[cols[4]] = x2, float(terminated)
                    ptr = (ptr + 1) % cap
                    size = min(size + 1, cap)
                else:
                    compact.add(x, x2, a, r, terminated, False)
                    size = compact.size
                if t + 1 > cfg.learning_starts and (t + 1) % cfg.train_freq == 0:
                    for _ in range(cfg.gradient_steps):
                        idx = rng.integers(0, size, cfg.batch_size)
                        if compact is None:
                            rows = buf[idx]
                            batch = [rows[:, cols[i] : cols[i + 1]] for i in range(5)]
                        else:
                            b = compact.gather(idx)
                            batch = [v.reshape(len(v), -1) for v in
                                     (b.obs, b.action, b.reward, b.next_obs, b.done)]  # fmt: skip
                        n_update += 1
                        loss = update(nets, batch, cfg, target_entropy, n_update, rng)
                x = x2
                if terminated or truncated:
                    if loss is not None and not math.isfinite(loss):
                        raise _diverged(cfg, "the critics' loss", loss, log.steps)
                    exploration = nets.alpha() if sac else sigma
                    ep = log.end_episode(env, time.perf_counter() - start, exploration)
                    if loss is not None:
                        ep = replace(ep, note=f"critic loss {loss:.3g}"
                                     + (f", alpha {exploration:.3g}" if sac else ""))  # fmt: skip
                    log.episodes[-1] = ep
                    ou[:] = 0.0
                    pink = _pink(cfg, limit, act_dim, rng)
                    obs, _ = env.reset()
                    x = np.asarray(obs, np.float32).ravel()
                    if on_episode is not None and on_episode(ep, current):
                        break
        finally:
            env.close()
    wall = time.perf_counter() - start
    return TrainResult(current(), tuple(log.episodes), log.steps, wall, snapshot())


def _pink(cfg: OffPolicyConfig, n: int, act_dim: int, rng: np.random.Generator) -> Array | None:
    """An episode's pink noise, ``[n, act_dim]`` with unit variance, when ``noise_type`` is
    pink (TD3); None otherwise."""
    if cfg.algorithm != "lean-td3" or cfg.noise_type != "pink":
        return None
    from rlbudget.agents.model_based.pets import colored_noise

    return colored_noise(1.0, n, act_dim, rng)


def _compact_buffer(cfg: OffPolicyConfig, obs: Any, act: Any, cap: int, env_id: str) -> Any:
    """A :class:`~rlbudget.replay.CompactReplay` for ``cfg``'s replay storage (byte cap:
    ``cap`` transitions at the estimated size), or None for the float32 array."""
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


def deterministic_action(nets: Nets, obs: Any) -> Array:
    """The actor's deterministic action in [−1, 1] (SAC: tanh of the mean) for a batch of
    observations; what the deployed policy computes before rescaling."""
    out = forward(nets.actor, np.asarray(obs, np.float32), nets.activation)[0]
    return np.asarray(np.tanh(out[:, : nets.act_dim]))


def measure_throughput(algorithm: str, env_id: str, width: int, *, steps: int = 300,
                       layers: int = 2, threads: int = 1, seed: int = 0,
                       clock: Callable[[], float] = time.perf_counter,
                       **overrides: Any) -> float:  # fmt: skip
    """Env steps per second of training (one update per step) at ``layers`` × ``width``
    units on this host: ``steps`` steps after one batch of random ones, timed from the
    first update. For the planner's host calibration. ``clock=time.process_time`` counts
    this process's CPU time instead of wall time (on a shared host: what the host would do
    alone, with one thread).

    >>> measure_throughput("lean-sac", "Pendulum-v1", 16, steps=20) > 0
    True
    """
    cfg = OffPolicyConfig(algorithm=algorithm, net_arch=[width] * layers, threads=threads,
                          seed=seed, **overrides)  # fmt: skip
    warm = cfg.batch_size
    cfg = replace(cfg, learning_starts=warm, n_timesteps=warm + steps)
    calls: list[float] = []

    def tick() -> bool:
        calls.append(clock())
        return False

    train_offpolicy(env_id, cfg, should_stop=tick)
    return steps / (clock() - calls[warm]) if len(calls) > warm else math.nan
