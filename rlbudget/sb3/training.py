"""Training with Stable-Baselines3 (PPO, A2C, DQN, SAC, TD3; QR-DQN, TQC, TRPO with
``pip install rlbudget[contrib]``), behind the same loop contract as the built-in agents.

:func:`train_sb3` is a :class:`~rlbudget.agents.common.Trainer`, as the built-in agents
are (``on_episode``, ``should_stop``, ``resume``, ``on_checkpoint``); it returns a
:class:`~rlbudget.agents.common.TrainResult` whose policy is the framework-free numpy
policy (:func:`rlbudget.sb3.convert.from_model`), so ``rlbudget.train.train_run`` runs
it with the same limits, evaluation, signals and run folder. torch and SB3 are imported
inside the functions only.

**Hyperparameters** are the RL Zoo files' (``rlbudget/data/hyperparams/``): ``lin_X`` is
a linear schedule from X to 0 over the run; ``net_arch``, ``activation_fn``,
``log_std_init`` and ``ortho_init`` go to ``policy_kwargs``; ``normalize: true`` wraps the
envs in ``VecNormalize`` (observation and reward, as the Zoo does; the observation
statistics become the policy's normalize step, so the policy acts on raw observations);
``noise_type``/``noise_std`` make TD3's action noise. ``n_envs`` envs (the tuned rollout
shape is kept) run in one process (``DummyVecEnv``), or in ``env_workers`` worker
processes where ``training.cores`` > 1 and the env's step cost pays for their IPC
(:mod:`rlbudget.parallel`, :mod:`rlbudget.sb3.vecenv`: the same weights either way);
``training.cores`` sets the torch threads (``torch.set_num_threads``, default 1). The
replay capacity comes from :func:`rlbudget.replay.replay_buffer` (the planner's formula),
never SB3's 1M default; the hyperparameters ``replay_storage`` and ``replay_compress``
store it compactly (:mod:`rlbudget.sb3.replay`).
``features_extractor`` (``depthwise`` or ``nature``) picks an image encoder for pixel
observations (:mod:`rlbudget.pixels.encoder`).

**Exploration bonus.** ``rnd_coef`` > 0 adds Random Network Distillation's bonus to the
reward SB3 learns from, above Monitor (:mod:`rlbudget.sb3.rnd`): training only.

**Stops.** The run never exceeds its step budget: it stops before the vectorized step
that would (so with ``n_envs`` envs it ends on a multiple of ``n_envs``). A budget that
ends with a rollout is trained on that rollout, as SB3's own ``learn(N)`` does (a run of N
steps is then the same as plain SB3's, weight for weight: ``benchmarks/sb3_overhead.py``);
one that ends mid-rollout drops that partial rollout (it is counted in the steps but not
trained on), where SB3 would overshoot to the next full rollout.

**Exploration column** of metrics.csv: DQN/QR-DQN ε (``exploration_rate``); SAC/TQC the
entropy coefficient α; TD3 the action-noise standard deviation (mean over dimensions);
PPO/A2C/TRPO with Box actions the policy's standard deviation ``exp(log_std)`` (mean),
with Discrete actions the policy's entropy in nats (mean over the observations of all
envs at the first episode end after each update: the policy is the same until the next).

**NaN/inf.** A wrapper under ``VecNormalize`` checks every observation and reward before
SB3 (or the running statistics) sees them and stops with the env step named
(:class:`~rlbudget.errors.EnvError`; one vectorized check per step, env by env only when
it fails). Every weight is checked (:class:`~rlbudget.errors.TrainingError`, naming the
tensor and the steps since the last check) whenever the model leaves the training loop:
before a checkpoint is taken, before a policy is converted for an evaluation, and at the
end, and when training fails (NaN weights fail in SB3's own ways first: a distribution's
``ValueError``, a NaN action the env answers with a NaN observation). Either way no
checkpoint or policy is written with bad numbers: the last good checkpoint stays. The
hyperparameter ``check_every_update: true`` (rlbudget's own key, e.g. ``--hyperparams
check_every_update=true``) also checks after every update (at each rollout start), to
name the first bad update's step; it costs ≈ 10 % of a SAC step at 256-256.

**Checkpoints and resume**: :mod:`rlbudget.sb3.checkpoint` says what a checkpoint holds
and what a resumed run reproduces (a faithful, reproducible continuation, not a
bit-for-bit replay of a straight run).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlbudget.agents.common import (
    Checkpoint,
    Episode,
    OnEpisode,
    StepHooks,
    TrainResult,
    provenance,
)
from rlbudget.envs import SpaceSpec
from rlbudget.errors import PlanError, TrainingError
from rlbudget.finite import check_observation, check_reward
from rlbudget.policy.model import Policy
from rlbudget.sb3.checkpoint import attribute, model_checkpoint, restore_model

# id → (module, class, needs sb3-contrib)
ALGORITHMS: dict[str, tuple[str, str, bool]] = {
    "ppo": ("stable_baselines3", "PPO", False),
    "a2c": ("stable_baselines3", "A2C", False),
    "dqn": ("stable_baselines3", "DQN", False),
    "sac": ("stable_baselines3", "SAC", False),
    "td3": ("stable_baselines3", "TD3", False),
    "qrdqn": ("sb3_contrib", "QRDQN", True),
    "tqc": ("sb3_contrib", "TQC", True),
    "trpo": ("sb3_contrib", "TRPO", True),
}
# Hyperparameter-file keys that are not constructor arguments: rlbudget turns them into
# policy_kwargs, env wrappers or action noise.
POLICY_KWARGS = (
    "net_arch",
    "activation_fn",
    "log_std_init",
    "ortho_init",
    "n_quantiles",
    "n_critics",
    "features_extractor",
)
WRAPPER_KEYS = ("n_envs", "normalize", "noise_type", "noise_std", "rnd_coef", "check_every_update",
                "replay_storage", "replay_compress")  # fmt: skip
# Constructor arguments rlbudget sets itself.
RESERVED = ("policy", "env", "seed", "verbose", "device", "_init_setup_model", "tensorboard_log")
ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "elu": "ELU", "leaky_relu": "LeakyReLU"}


@dataclass(frozen=True)
class SB3Config:
    """One SB3 run, resolved: the hyperparameters as in the file (with rlbudget's keys)."""

    algorithm: str = "ppo"
    n_timesteps: int = 100_000
    seed: int = 0
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    n_envs: int = 1
    torch_threads: int = 1
    replay_capacity: int | None = None
    tensorboard_log: str | None = None  # SB3's own TensorBoard logger writes here
    init: str | None = None  # warm start: a policy folder to clone the actor from
    replay_max_bytes: int | None = None  # a compact replay buffer's byte cap
    env_workers: int = 1  # processes the envs step in (1: DummyVecEnv in this process)


def algorithm_class(algorithm: str) -> Any:
    """The SB3 (or sb3-contrib) class of ``algorithm``.

    :raises TrainingError: sb3-contrib is needed and not installed.
    """
    module, name, contrib = ALGORITHMS[algorithm]
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        if not contrib:
            raise
        raise TrainingError(
            f"algorithm '{algorithm}' comes from sb3-contrib, which is not installed; "
            "install rlbudget[contrib] (pip install 'rlbudget[contrib]')"
        ) from None


def check_hyperparameters(algorithm: str, params: Mapping[str, Any]) -> None:
    """Refuse a key the algorithm does not take, naming those it does.

    :raises PlanError: an unknown key.
    """
    cls = algorithm_class(algorithm)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", *RESERVED}
    accepted |= {*POLICY_KWARGS, *WRAPPER_KEYS}
    for key in params:
        if key not in accepted:
            raise PlanError(
                f"hyperparameter '{key}' is not one {algorithm} takes; it takes "
                f"{', '.join(sorted(accepted))}"
            )


class LinearSchedule:
    """RL Zoo's ``lin_X``: X × progress remaining (X at the start, 0 at the end)."""

    def __init__(self, initial: float) -> None:
        self.initial = initial

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial


def _value(v: Any) -> Any:
    if isinstance(v, str) and v.startswith("lin_"):
        return LinearSchedule(float(v[4:]))
    return v


def model_kwargs(cfg: SB3Config, n_actions: int | None) -> dict[str, Any]:
    """SB3 constructor arguments from the hyperparameter file's keys (what
    ``benchmarks/sb3_overhead.py`` gives plain SB3 too)."""
    import torch

    hp = dict(cfg.hyperparameters)
    kwargs = {k: _value(v) for k, v in hp.items() if k not in (*POLICY_KWARGS, *WRAPPER_KEYS)}
    policy_kwargs = {k: hp[k] for k in POLICY_KWARGS if k in hp}
    if "activation_fn" in policy_kwargs:
        policy_kwargs["activation_fn"] = getattr(
            torch.nn, ACTIVATIONS[str(policy_kwargs["activation_fn"])]
        )
    if "net_arch" in policy_kwargs:
        policy_kwargs["net_arch"] = [int(w) for w in policy_kwargs["net_arch"]]
    if "features_extractor" in policy_kwargs:  # image observations (rlbudget.pixels)
        from rlbudget.pixels.encoder import policy_kwargs as encoder_kwargs

        policy_kwargs = encoder_kwargs(policy_kwargs.pop("features_extractor"), policy_kwargs)
    if policy_kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    if cfg.replay_capacity is not None:
        kwargs["buffer_size"] = cfg.replay_capacity
    if any(k in hp for k in ("replay_storage", "replay_compress", "optimize_memory_usage")):
        from rlbudget.replay import Storage
        from rlbudget.sb3.replay import buffer_kwargs

        given = kwargs.pop("replay_buffer_kwargs", None)
        kwargs.update(buffer_kwargs(Storage.from_params(hp), cfg.replay_max_bytes, given))
    if "noise_type" in hp and n_actions is not None:
        from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

        sigma = float(hp.get("noise_std", 0.1)) * np.ones(n_actions)
        noise = {"normal": NormalActionNoise, "ornstein-uhlenbeck": OrnsteinUhlenbeckActionNoise}
        kwargs["action_noise"] = noise[str(hp["noise_type"])](np.zeros(n_actions), sigma)
    return kwargs


def _all_finite(values: Any) -> bool:
    arr = np.asarray(values)
    return arr.dtype.kind not in "fc" or bool(np.isfinite(arr).all())


@functools.cache
def _finite_wrapper() -> type:
    """A VecEnv wrapper that stops at the first NaN/inf observation or reward (built on
    first use: SB3 is imported lazily)."""
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class FiniteCheck(VecEnvWrapper):
        def __init__(self, venv: Any, env_id: str, steps: int) -> None:
            super().__init__(venv)
            self.env_id, self.steps = env_id, steps

        def _check_obs(self, obs: Any, step: int) -> None:
            for i, one in enumerate(np.asarray(obs)):
                check_observation(one, self.env_id, f"at env step {step + i}")

        def reset(self) -> Any:
            obs = self.venv.reset()
            self._check_obs(obs, self.steps)  # before the first step: "step 0"
            return obs

        def step_wait(self) -> Any:
            obs, rewards, dones, infos = self.venv.step_wait()
            if not (_all_finite(rewards) and _all_finite(obs)):  # then find which, env by env
                for i, r in enumerate(rewards):
                    check_reward(r, self.env_id, f"at env step {self.steps + i + 1}")
                self._check_obs(obs, self.steps + 1)
            self.steps += self.num_envs
            return obs, rewards, dones, infos

    return FiniteCheck


def check_finite(model: Any, step: int, since: int | None = None) -> None:
    """Every weight of ``model`` finite, else stop: training diverged by ``step`` (after
    ``since``, the step of the last check that passed, when given).

    :raises TrainingError: the first tensor with NaN/inf, named.
    """
    when = f"at step {step}" if since is None else f"between step {since} and step {step}"
    state_dicts, variables = model._get_torch_save_params()
    for name in state_dicts:
        obj = attribute(model, name)
        tensors = obj.state_dict().items() if name == "policy" else []
        for key, tensor in tensors:
            if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
                raise TrainingError(
                    f"training diverged {when}: {name}.{key} holds NaN/inf after an "
                    "update; nothing was saved over the last good checkpoint (lower the "
                    "learning rate, or normalize observations and rewards)"
                )
    for name in variables:
        if not bool(attribute(model, name).isfinite().all()):
            raise TrainingError(f"training diverged {when}: {name} holds NaN/inf")


def _rollout_ends(local: Mapping[str, Any]) -> bool:
    """Whether the env step SB3 just took (its ``collect_rollouts`` locals) completes the
    rollout, so that SB3 trains on it next."""
    from stable_baselines3.common.utils import should_collect_more_steps

    if "n_rollout_steps" in local:  # on-policy: n_steps is counted after the callback
        return int(local["n_steps"]) + 1 >= int(local["n_rollout_steps"])
    episodes = int(local["num_collected_episodes"]) + int(np.sum(local["dones"]))
    return not should_collect_more_steps(local["train_freq"], local["num_collected_steps"],
                                         episodes)  # fmt: skip


EXPLORATION = (
    "DQN/QR-DQN: epsilon; SAC/TQC: entropy coefficient alpha; TD3: action-noise std; "
    "PPO/A2C/TRPO: policy std exp(log_std) (Box actions) or policy entropy in nats "
    "(Discrete actions)"
)


def _exploration(model: Any, algorithm: str, obs: Any, entropy: dict[int, float]) -> float:
    """The metrics.csv exploration value (see the module docstring). A Discrete policy's
    entropy (a forward pass, ≈1 ms) is computed once per update: ``entropy`` caches it by
    ``model._n_updates`` (on the observations of the first episode end after the update)."""
    import torch

    if hasattr(model, "exploration_rate"):
        return float(model.exploration_rate)
    if hasattr(model, "log_ent_coef") and model.log_ent_coef is not None:
        return float(torch.exp(model.log_ent_coef.detach()).mean())
    if hasattr(model, "ent_coef_tensor") and getattr(model, "ent_coef_tensor", None) is not None:
        return float(model.ent_coef_tensor.mean())
    if algorithm == "td3":
        noise = model.action_noise
        sigma = getattr(noise, "_sigma", None)
        return float(np.mean(sigma)) if sigma is not None else 0.0
    log_std = getattr(model.policy, "log_std", None)
    if log_std is not None:
        return float(torch.exp(log_std.detach()).mean())
    updates = int(model._n_updates)
    if updates not in entropy:
        with torch.no_grad():
            tensor, _ = model.policy.obs_to_tensor(obs)
            value = float(model.policy.get_distribution(tensor).entropy().mean())
        entropy.clear()
        entropy[updates] = value
    return entropy[updates]


def _vec_env(env_id: str, n_envs: int, normalize: bool, gamma: float, steps: int,
             rnd_coef: float = 0.0, seed: int = 0, workers: int = 1) -> Any:  # fmt: skip
    """``n_envs`` Monitor-wrapped envs in a DummyVecEnv (or in ``workers`` processes), the
    NaN/inf check, then VecNormalize when ``normalize``. Returns (venv, vecnormalize or
    None)."""
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from rlbudget.envs import make_env

    def one() -> Any:
        return Monitor(make_env(env_id, guard=False))  # FiniteCheck counts the steps

    if workers > 1:
        from rlbudget.parallel import split
        from rlbudget.sb3.vecenv import grouped_vec_env

        inner = grouped_vec_env(env_id, split(n_envs, workers))
    else:
        inner = DummyVecEnv([one] * n_envs)
    venv = _finite_wrapper()(inner, env_id, steps)
    if rnd_coef:  # the RND exploration bonus, training only (rlbudget.sb3.rnd)
        from rlbudget.sb3.rnd import rnd_wrapper

        venv = rnd_wrapper()(venv, rnd_coef, seed)
    if not normalize:
        return venv, None
    vecnorm = VecNormalize(venv, gamma=gamma)
    return vecnorm, vecnorm


def _observation_read_as(env_id: str) -> SpaceSpec | None:
    """The spec of a Tuple/Dict observation space as rlbudget reads it (with its note and
    radices), which SB3's model, trained on the wrapped env, does not know; else None."""
    from rlbudget.envs import make_env, observation_spec

    probe = make_env(env_id, guard=False)
    try:
        spec = observation_spec(probe, env_id)
    finally:
        probe.close()
    return spec if spec.note is not None else None


def train_sb3(
    env_id: str,
    cfg: SB3Config,
    *,
    on_episode: OnEpisode | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Checkpoint | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    checkpoint_every: int = 0,
) -> TrainResult:
    """Train ``cfg.algorithm`` with SB3 on ``env_id``, or continue from ``resume``.

    :param on_episode: called after every finished episode (of any of the envs) with the
        episode and a function that converts the current model to a numpy Policy;
        returning True stops training.
    :param should_stop: checked after every vectorized env step; True stops.
    :param resume: a checkpoint of an earlier call with the same ``cfg``.
    :param on_checkpoint: called with a checkpoint at the first rollout boundary after
        every ``checkpoint_every`` steps.
    :return: the numpy policy, the episodes, and a checkpoint of the state at the stop.
    :raises EnvError: an observation or reward is NaN/inf (the step is named).
    :raises TrainingError: the weights became NaN/inf, or sb3-contrib is missing.
    """
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    from rlbudget.sb3.convert import from_model

    torch.set_num_threads(cfg.torch_threads)
    cls = algorithm_class(cfg.algorithm)
    done_steps = int(resume.state["steps"]) if resume is not None else 0
    gamma = float(cfg.hyperparameters.get("gamma", 0.99))
    rnd_coef = float(cfg.hyperparameters.get("rnd_coef", 0.0))
    env, vecnorm = _vec_env(env_id, cfg.n_envs, bool(cfg.hyperparameters.get("normalize")),
                                gamma, done_steps, rnd_coef, cfg.seed,
                                cfg.env_workers)  # fmt: skip
    if "features_extractor" in cfg.hyperparameters:  # SB3 would assert, or torch fail, later
        from rlbudget.pixels.encoder import check_image

        try:
            check_image(cfg.hyperparameters["features_extractor"], env.observation_space, env_id)
        except PlanError:
            env.close()
            raise

    shape = env.action_space.shape
    n_actions = int(np.prod(shape)) if shape else None
    kwargs = model_kwargs(cfg, n_actions)
    try:
        model = cls("MlpPolicy", env, seed=cfg.seed, device="cpu", verbose=0,
                    tensorboard_log=cfg.tensorboard_log, **kwargs)  # fmt: skip
    except (AssertionError, ValueError, TypeError) as exc:  # SB3's checks of its arguments
        env.close()
        raise PlanError(f"{cfg.algorithm} refused its hyperparameters: {exc} (fix them in "
                        "--hyperparams or the hyperparameter file)") from None  # fmt: skip
    episodes: list[Episode] = []
    wall0 = 0.0
    warm_start = None
    if cfg.init and resume is None:
        from rlbudget.agents.warmstart import pretrain_sb3

        assert vecnorm is None, "checked by rlbudget.agents.prior.check_prior"
        warm_start = pretrain_sb3(model, cfg.algorithm, cfg.init, env_id, cfg.seed)
    if resume is not None:
        restore_model(model, vecnorm, resume)
        episodes = [Episode(**e) for e in resume.state["episodes"]]
        wall0 = float(resume.state["wall_s"])
        # Envs cannot be restored mid-episode: reset them, seeded from the step count.
        env.seed(cfg.seed + done_steps)
    start = time.perf_counter() - wall0
    read_as = _observation_read_as(env_id)
    checked = [done_steps]  # the last step at which every weight was finite

    def check_weights() -> None:
        steps = int(model.num_timesteps)
        check_finite(model, steps, since=checked[0])
        checked[0] = steps

    def current() -> Policy:
        check_weights()
        prov = provenance(f"rlbudget.sb3 (Stable-Baselines3 {cls.__name__})",
                          cfg.algorithm, env_id, cfg, int(model.num_timesteps))  # fmt: skip
        policy: Policy = from_model(model, vecnorm, provenance=prov)
        if read_as is not None:  # SB3 saw the index or flat Box; keep how it was read
            policy = dataclasses.replace(policy, observation_space=read_as)
        return policy

    def snapshot() -> Checkpoint:
        check_weights()
        wall_s = time.perf_counter() - start
        return model_checkpoint(model, vecnorm, episodes, wall_s, cfg.algorithm)

    hooks = StepHooks(None, on_checkpoint, checkpoint_every, done_steps)
    n_envs, n_timesteps = cfg.n_envs, cfg.n_timesteps
    every_update = bool(cfg.hyperparameters.get("check_every_update", False))
    entropy: dict[int, float] = {}  # _exploration's cache

    class Loop(BaseCallback):
        """Episodes → on_episode, stop checks, checkpoints (and weight checks when asked).
        Called after every vectorized env step: nothing here that can wait."""

        def _on_rollout_start(self) -> None:
            if every_update:
                check_weights()
            hooks.stop(int(model.num_timesteps), snapshot)

        def _episodes_end(self, steps: int, ended: list[int]) -> bool:
            """Log the episodes that ``ended`` (env indices) at ``steps``; True: stop."""
            # one exploration value and time for all: the same model and observations
            explore = _exploration(model, cfg.algorithm, self.locals["new_obs"], entropy)
            wall_s = time.perf_counter() - start
            for i in ended:
                ep_info = self.locals["infos"][i]["episode"]
                ep = Episode(steps - n_envs + i + 1, len(episodes), float(ep_info["r"]),
                             int(ep_info["l"]), wall_s, explore)  # fmt: skip
                episodes.append(ep)
                if on_episode is not None and on_episode(ep, current):
                    return True
            return False

        def _on_step(self) -> bool:
            steps = int(model.num_timesteps)
            ended = [i for i, info in enumerate(self.locals["infos"]) if "episode" in info]
            if ended and self._episodes_end(steps, ended):
                return False
            if should_stop is not None and should_stop():
                return False
            if steps + n_envs <= n_timesteps:
                return True
            # The budget ends here: a complete rollout is trained on (SB3 stops after it
            # by itself), a partial one dropped.
            return steps >= n_timesteps and _rollout_ends(self.locals)

    if done_steps + n_envs <= n_timesteps:
        try:
            model.learn(n_timesteps - done_steps, callback=Loop(), reset_num_timesteps=False,
                        progress_bar=False, tb_log_name=cfg.algorithm)  # fmt: skip
        except Exception:
            # NaN weights fail in SB3's own ways before the next check (a distribution's
            # ValueError, a NaN action that the env returns as a NaN observation): say so.
            check_weights()
            raise
    steps = int(model.num_timesteps)
    env.close()
    ck = snapshot()  # checks the weights
    extra = {"warm_start": warm_start} if warm_start else {}
    return TrainResult(current(), tuple(episodes), steps, time.perf_counter() - start, ck, extra)
