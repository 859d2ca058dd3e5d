"""A Stable-Baselines3 (or sb3-contrib) actor as a framework-free :class:`Policy`.

Only the path that ``model.predict(obs, deterministic=True)`` takes is kept: the critic,
value net, target nets and log-std are dropped. What each algorithm's ``predict`` does,
and the policy it becomes:

============  ==================================================  ========================
algorithm     layers (state-dict prefix)                          head
============  ==================================================  ========================
ppo/a2c/trpo  ``mlp_extractor.shared_net`` (SB3 1.x),             argmax (Discrete); clip,
              ``mlp_extractor.policy_net``, ``action_net``        or tanh_rescale when
                                                                  ``squash_output`` (gSDE)
dqn           ``q_net.q_net``                                     argmax
qrdqn         ``quantile_net.quantile_net``, the last layer       argmax
              averaged over the quantiles (exact: the mean of
              affine maps is an affine map)
sac/tqc       ``actor.latent_pi``, ``actor.mu`` (gSDE:            tanh_rescale
              ``Hardtanh(±clip_mean)`` after it)
td3/ddpg      ``actor.mu`` (its final ``Tanh`` is the head's)     tanh_rescale
ars           ``action_net`` (an nn.Sequential, or one bare       argmax; tanh_rescale
              nn.Linear, with or without a bias)                  (``squash_output``) or clip
============  ==================================================  ========================

SB3 flattens Box observations and one-hot encodes Discrete ones; VecNormalize's
observation statistics become a ``normalize`` preprocess step, the same formula as
``VecNormalize.normalize_obs``: ``clip((obs - mean) / sqrt(var + epsilon), ±clip_obs)``.

The gSDE mean clip of SAC/TQC (``Hardtanh``) has no activation of its own in the policy
model; it is written exactly with two layers: ``relu(x + c) - relu(x - c) - c`` equals
``clip(x, -c, c)``.

torch is imported only by :func:`from_model`, and only to move tensors to numpy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlbudget.envs import SpaceSpec
from rlbudget.errors import PolicyError
from rlbudget.policy.model import (
    ACTIVATIONS,
    CNN,
    MLP,
    Array,
    Conv,
    Dense,
    Head,
    Normalize,
    OneHot,
    Policy,
)
from rlbudget.sb3.cnn import (
    Op,
    channels_last,
    channels_last_policy,
    check_features,
    cnn_body,
    extractor_module,
    extractor_prefix,
    hwc_rows,
    image_divide,
    module_ops,
    nature_ops,
)
from rlbudget.sb3.cnn import features as features_of

ACTOR_CRITIC = ("ppo", "a2c", "trpo")
ALGORITHMS = (*ACTOR_CRITIC, "dqn", "qrdqn", "sac", "tqc", "td3", "ddpg", "ars")

# torch.nn activation class name → policy activation; others are refused with a hint.
TORCH_ACTIVATIONS = {"ReLU": "relu", "Tanh": "tanh", "Identity": "identity", "Sigmoid": "sigmoid"}

# The activation each algorithm's policy uses when policy_kwargs do not say.
DEFAULT_ACTIVATION = {
    "ppo": "tanh", "a2c": "tanh", "trpo": "tanh", "dqn": "relu", "qrdqn": "relu",
    "sac": "relu", "tqc": "relu", "td3": "relu", "ddpg": "relu", "ars": "relu",
}  # fmt: skip

# SAC/TQC actors with gSDE clip the mean to ±clip_mean (SB3's default) before the tanh.
DEFAULT_CLIP_MEAN = 2.0


def activation_name(name: str, *, where: str = "policy_kwargs.activation_fn") -> str:
    """A torch activation class name (``"ReLU"``) or a policy activation (``"relu"``) →
    the policy's name for it.

    :raises PolicyError: an activation the policy model does not implement.
    """
    if name in ACTIVATIONS:
        return name
    if name in TORCH_ACTIVATIONS:
        return TORCH_ACTIVATIONS[name]
    known = ", ".join(f"nn.{k}" for k in TORCH_ACTIVATIONS)
    raise PolicyError(
        f"{where}: activation {name!r} is not supported by rlbudget policies ({known} are); "
        "retrain with policy_kwargs=dict(activation_fn=nn.ReLU) or nn.Tanh"
    )


def _check_spaces(algorithm: str, obs: SpaceSpec, act: SpaceSpec) -> None:
    if obs.kind == "box" and len(obs.shape) == 3 and algorithm != "ars":
        pass  # an image: a CNN features extractor (rlbudget.sb3.cnn)
    elif obs.kind == "box" and len(obs.shape) != 1:
        raise PolicyError(
            f"{algorithm} model: observation space Box{list(obs.shape)} is not supported; "
            "rlbudget imports MLP policies on flat Box or Discrete observations and CNN "
            "policies on [channels, height, width] images"
        )
    if obs.kind not in ("box", "discrete") or act.kind not in ("box", "discrete"):
        raise PolicyError(
            f"{algorithm} model: spaces {obs.kind}/{act.kind} are not supported; rlbudget "
            "imports Box or Discrete observations and actions"
        )
    if act.kind == "box" and len(act.shape) != 1:
        raise PolicyError(
            f"{algorithm} model: action space Box{list(act.shape)} is not supported; "
            "rlbudget imports flat (1-D) Box actions"
        )
    discrete_only = ("dqn", "qrdqn")
    box_only = ("sac", "tqc", "td3", "ddpg")
    if algorithm in discrete_only and act.kind != "discrete":
        raise PolicyError(f"{algorithm} model: needs a Discrete action space, got {act.kind}")
    if algorithm in box_only and act.kind != "box":
        raise PolicyError(f"{algorithm} model: needs a Box action space, got {act.kind}")


def _unsupported_layout(algorithm: str, keys: list[str]) -> None:
    """CNN feature extractors and Dict observations have parameters we cannot run."""
    for key in keys:
        if ".cnn." in key or key.startswith("cnn."):
            raise PolicyError(
                f"{algorithm} model: '{key}' belongs to a CNN feature extractor (CnnPolicy); "
                "rlbudget imports MlpPolicy models only"
            )
        if "extractors." in key:
            raise PolicyError(
                f"{algorithm} model: '{key}' belongs to a Dict-observation extractor "
                "(MultiInputPolicy); rlbudget imports MlpPolicy models on flat observations"
            )
        if "features_extractor." in key:
            raise PolicyError(
                f"{algorithm} model: '{key}' is a learned feature extractor; rlbudget imports "
                "policies whose features extractor is SB3's FlattenExtractor"
            )


def _array(sd: Mapping[str, Any], key: str, ndim: int) -> Array:
    value = np.asarray(sd[key])
    if value.ndim != ndim:
        raise PolicyError(
            f"state dict: '{key}' has shape {list(value.shape)}; expected {ndim} dimension(s)"
        )
    if not np.issubdtype(value.dtype, np.floating):
        raise PolicyError(f"state dict: '{key}' has dtype {value.dtype}; expected floats")
    if not np.all(np.isfinite(value)):
        raise PolicyError(
            f"state dict: '{key}' contains NaN or inf; the model diverged in training, "
            "retrain it (or import an earlier checkpoint)"
        )
    return value.astype(np.float32)


def _linear(sd: Mapping[str, Any], prefix: str) -> tuple[Array, Array]:
    """``prefix.weight`` [out, in] (and ``prefix.bias``, zeros when absent) → (W [in, out], b)."""
    W = _array(sd, f"{prefix}.weight", 2)
    b_key = f"{prefix}.bias"
    b = _array(sd, b_key, 1) if b_key in sd else np.zeros(W.shape[0], dtype=np.float32)
    if b.shape != (W.shape[0],):
        raise PolicyError(
            f"state dict: '{b_key}' has shape {list(b.shape)}; expected [{W.shape[0]}] "
            f"(the outputs of '{prefix}.weight')"
        )
    return np.ascontiguousarray(W.T), b


def _sequential(sd: Mapping[str, Any], prefix: str) -> list[tuple[Array, Array]]:
    """The Linear layers of an ``nn.Sequential`` at ``prefix``, in order."""
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.weight$")
    indices = sorted(int(m.group(1)) for k in sd if (m := pattern.match(k)))
    return [_linear(sd, f"{prefix}.{i}") for i in indices]


def _need(layers: list[tuple[Array, Array]], what: str, algorithm: str) -> None:
    if not layers:
        raise PolicyError(
            f"state dict: no '{what}' layers; this is not a {algorithm} MlpPolicy (check --algo)"
        )


def _actor_layers(
    algorithm: str, sd: Mapping[str, Any], activation: str, clip_mean: float
) -> tuple[list[Dense], bool]:
    """The actor's dense layers and whether its output is tanh-squashed by construction."""
    act = activation

    def chain(hidden: list[tuple[Array, Array]], last: list[tuple[Array, Array]]) -> list[Dense]:
        return [Dense(W, b, act) for W, b in hidden] + [Dense(W, b) for W, b in last]

    if algorithm in ACTOR_CRITIC:
        hidden = _sequential(sd, "mlp_extractor.shared_net") + _sequential(
            sd, "mlp_extractor.policy_net"
        )
        if "action_net.weight" not in sd:
            raise PolicyError(
                f"state dict: no 'action_net.weight'; this is not a {algorithm} "
                "ActorCriticPolicy (check --algo)"
            )
        return chain(hidden, [_linear(sd, "action_net")]), False
    if algorithm in ("dqn", "qrdqn"):
        prefix = "q_net.q_net" if algorithm == "dqn" else "quantile_net.quantile_net"
        layers = _sequential(sd, prefix)
        _need(layers, prefix, algorithm)
        return chain(layers[:-1], layers[-1:]), False
    if algorithm in ("sac", "tqc"):
        hidden = _sequential(sd, "actor.latent_pi")
        if "actor.mu.weight" in sd:
            return chain(hidden, [_linear(sd, "actor.mu")]), True
        mu = _sequential(sd, "actor.mu")
        if len(mu) != 1:
            raise PolicyError(
                f"state dict: no 'actor.mu.weight' or 'actor.mu.0.weight'; this is not a "
                f"{algorithm} actor (check --algo)"
            )
        return chain(hidden, []) + _hardtanh(*mu[0], clip_mean), True
    if algorithm in ("td3", "ddpg"):
        layers = _sequential(sd, "actor.mu")
        _need(layers, "actor.mu", algorithm)
        return chain(layers[:-1], layers[-1:]), True
    # ars: ``action_net`` is an nn.Sequential (``action_net.0.weight`` …), or, for a
    # LinearPolicy stored as a bare nn.Linear, ``action_net.weight`` alone when it was
    # trained with ``with_bias=False`` (the bias is then zero).
    if "action_net.weight" in sd:
        return chain([], [_linear(sd, "action_net")]), False
    layers = _sequential(sd, "action_net")
    _need(layers, "action_net", algorithm)
    return chain(layers[:-1], layers[-1:]), False


def _hardtanh(W: Array, b: Array, c: float) -> list[Dense]:
    """``clip(x @ W + b, -c, c)`` as ``relu(x + c) - relu(x - c) - c``: two exact layers."""
    n = W.shape[1]
    cc = np.float32(c)
    first = Dense(np.concatenate([W, W], axis=1), np.concatenate([b + cc, b - cc]), "relu")
    eye = np.eye(n, dtype=np.float32)
    second = Dense(np.concatenate([eye, -eye], axis=0), np.full(n, -cc, dtype=np.float32))
    return [first, second]


def _fold_quantiles(layer: Dense, n_actions: int) -> Dense:
    """QR-DQN's output ``[quantiles × actions]`` (quantile-major) → its mean per action."""
    W, b = layer.W, layer.b
    outputs = W.shape[1]
    if outputs % n_actions:
        raise PolicyError(
            f"state dict: the quantile net outputs {outputs} values, not a multiple of the "
            f"{n_actions} actions"
        )
    q = outputs // n_actions
    Wm = W.astype(np.float64).reshape(W.shape[0], q, n_actions).mean(axis=1)
    bm = b.astype(np.float64).reshape(q, n_actions).mean(axis=0)
    return Dense(Wm.astype(np.float32), bm.astype(np.float32), layer.activation)


def _check_chain(layers: list[Dense], width: int, out: int, algorithm: str) -> None:
    for i, layer in enumerate(layers):
        if layer.W.shape[0] != width:
            raise PolicyError(
                f"state dict: {algorithm} actor layer {i} takes {layer.W.shape[0]} inputs but "
                f"receives {width}; the weights do not match the observation space"
            )
        width = int(layer.W.shape[1])
    if width != out:
        raise PolicyError(
            f"state dict: the {algorithm} actor outputs {width} values but the action space "
            f"needs {out}; the weights do not match the action space"
        )


def convert(
    algorithm: str,
    state_dict: Mapping[str, Any],
    observation_space: SpaceSpec,
    action_space: SpaceSpec,
    *,
    activation: str,
    normalize: Normalize | None = None,
    provenance: Mapping[str, Any] | None = None,
    squash_output: bool = False,
    clip_mean: float = DEFAULT_CLIP_MEAN,
    features_ops: list[Op] | None = None,
    normalize_images: bool = True,
) -> Policy:
    """Turn an SB3 policy's state dict (numpy arrays) into a :class:`Policy`.

    :param algorithm: one of :data:`ALGORITHMS` (lowercase).
    :param state_dict: ``model.policy.state_dict()`` with numpy values.
    :param observation_space: flat Box or Discrete (one-hot encoded, as SB3 does).
    :param action_space: Discrete or 1-D Box.
    :param activation: hidden-layer activation (``"relu"``, ``"tanh"`` … or the torch class
        name ``"ReLU"``, ``"Tanh"``).
    :param normalize: VecNormalize's observation statistics, applied first.
    :param provenance: recorded in the policy (``transforms`` defaults to ``[]``).
    :param squash_output: PPO/A2C/TRPO with gSDE and ``squash_output=True``, or ARS's
        MlpPolicy: the output is tanh-squashed and rescaled to the bounds, not clipped.
    :param clip_mean: SAC/TQC gSDE actors only (``actor.mu`` followed by ``Hardtanh``).
    :param features_ops: an image observation (a ``[C, H, W]`` Box, SB3's channels-first
        layout): the features extractor's layers (:func:`rlbudget.sb3.cnn.module_ops`);
        None reads NatureCNN (``CnnPolicy``) from the state dict. The policy gets a ``cnn``
        body on channels-first observations (:func:`rlbudget.sb3.cnn.channels_last_policy`
        moves it to the env's ``[H, W, C]``).
    :param normalize_images: SB3's policy keyword: a uint8 image in [0, 255] is divided by
        255 first.
    :raises PolicyError: unknown algorithm, unsupported spaces or layout, an unsupported
        activation, NaN/inf weights, shapes that do not fit the spaces.
    """
    algo = algorithm.lower()
    if algo not in ALGORITHMS:
        raise PolicyError(
            f"unknown algorithm {algorithm!r}; rlbudget imports {', '.join(ALGORITHMS)}"
        )
    act = activation_name(activation)
    _check_spaces(algo, observation_space, action_space)
    obs = observation_space
    image = obs.kind == "box" and len(obs.shape) == 3
    convs: list[Conv] = []
    features: list[Dense] = []
    if image:
        ops = features_ops or nature_ops(state_dict, extractor_prefix(algo, state_dict))
        convs, features = features_of(ops, (obs.shape[0], obs.shape[1], obs.shape[2]))
        state_dict = {k: v for k, v in state_dict.items() if "features_extractor." not in k}
    _unsupported_layout(algo, list(state_dict))
    layers, squashed = _actor_layers(algo, state_dict, act, clip_mean)
    discrete = action_space.kind == "discrete"
    n_out = int(action_space.n or 0) if discrete else action_space.dim
    if algo == "qrdqn":
        layers[-1] = _fold_quantiles(layers[-1], n_out)
    width = int(obs.n or 0) if obs.kind == "discrete" else obs.dim
    if image:
        shape = channels_last(obs.shape)
        for la in convs:
            shape = la.out_shape(shape)
        width = int(features[-1].W.shape[1]) if features else math.prod(shape)
    _check_chain(layers, width, n_out, algo)
    if image and not features:  # the actor reads torch's flatten of the last activation
        layers[0] = Dense(hwc_rows(layers[0].W, shape), layers[0].b, layers[0].activation)
    steps: list[Normalize | OneHot] = []
    if image and normalize is not None:
        raise PolicyError("VecNormalize statistics were given for an image observation; "
                          "rlbudget imports CNN policies on raw images (leave --vecnormalize "
                          "out, or retrain without VecNormalize's norm_obs)")  # fmt: skip
    if obs.kind == "discrete":
        if normalize is not None:
            raise PolicyError(
                "VecNormalize statistics were given for a Discrete observation space; "
                "SB3 does not normalize Discrete observations (leave --vecnormalize out)"
            )
        steps.append(OneHot(width))
    elif normalize is not None:
        if normalize.mean.shape != (width,) or normalize.var.shape != (width,):
            raise PolicyError(
                f"VecNormalize statistics have shape {list(normalize.mean.shape)} but the "
                f"observation has {width} values; they belong to another env"
            )
        steps.append(normalize)
    if discrete:
        head = Head("argmax")
    else:
        low, high = np.asarray(action_space.low), np.asarray(action_space.high)
        if squashed or squash_output:
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
                raise PolicyError(
                    f"{algo} model: a tanh-squashed actor needs finite action bounds, got "
                    f"low={low.tolist()} high={high.tolist()}"
                )
            head = Head("tanh_rescale", low, high)
        else:
            head = Head("clip", low, high)
    prov: dict[str, Any] = {"algorithm": algo, "transforms": []}
    if algo in ("sac", "tqc") and "actor.mu.weight" not in state_dict:
        prov["gsde_clip_mean"] = clip_mean  # the two layers after actor.mu are its Hardtanh
    prov.update(provenance or {})
    body: MLP | CNN = MLP(tuple(layers))
    if image:
        divide = image_divide(obs.low, obs.high, obs.dtype, normalize_images)
        body = cnn_body(convs, features + layers, channels_last(obs.shape), True, divide)
    return Policy(observation_space, action_space, tuple(steps), body, head, prov)


# --- live models -------------------------------------------------------------------------


def algorithm_of(model: Any) -> str:
    """``PPO`` → ``"ppo"`` … from the model's class (its own or an SB3 base class).

    :raises PolicyError: a model class rlbudget does not convert.
    """
    for cls in type(model).__mro__:
        name = cls.__name__.lower()
        if name in ALGORITHMS:
            return name
    raise PolicyError(
        f"{type(model).__name__}: not an algorithm rlbudget converts ({', '.join(ALGORITHMS)})"
    )


def _space(space: Any, what: str, algorithm: str) -> SpaceSpec:
    from gymnasium import spaces

    from rlbudget.envs import space_spec

    if not isinstance(space, (spaces.Box, spaces.Discrete)):
        raise PolicyError(
            f"{algorithm} model: {what} space {type(space).__name__} is not supported; "
            "rlbudget imports Box or Discrete spaces"
        )
    if isinstance(space, spaces.Discrete) and int(space.start) != 0:
        raise PolicyError(
            f"{algorithm} model: Discrete {what} space starts at {int(space.start)}; rlbudget "
            "supports Discrete spaces that start at 0"
        )
    return space_spec(space, what=what)


def normalize_from_stats(mean: Any, var: Any, clip_obs: float, epsilon: float) -> Normalize:
    """VecNormalize's ``obs_rms`` mean/var, ``clip_obs`` and ``epsilon`` as a preprocess step.

    :raises PolicyError: non-finite or negative statistics.
    """
    m = np.asarray(mean, dtype=np.float64).ravel()
    v = np.asarray(var, dtype=np.float64).ravel()
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(v))) or np.any(v < 0):
        raise PolicyError("VecNormalize statistics contain NaN, inf or a negative variance")
    if not (math.isfinite(clip_obs) and clip_obs > 0 and math.isfinite(epsilon) and epsilon >= 0):
        raise PolicyError(
            f"VecNormalize clip_obs={clip_obs} / epsilon={epsilon} are invalid; expected "
            "clip_obs > 0 and epsilon ≥ 0"
        )
    return Normalize(m, v, float(clip_obs), float(epsilon))


def _env_id(model: Any) -> str | None:
    """The gymnasium id of the model's (first) training env, when it has one."""
    try:
        spec = model.get_env().get_attr("spec", indices=[0])[0]
    except (AttributeError, IndexError, TypeError):
        return None
    env_id = getattr(spec, "id", None)
    return env_id if isinstance(env_id, str) else None


def from_model(
    model: Any, vecnormalize: Any | None = None, *, provenance: Mapping[str, Any] | None = None
) -> Policy:
    """Convert a live SB3/sb3-contrib model (trained in this process; never loaded from an
    untrusted file) and, optionally, its VecNormalize wrapper.

    :param model: e.g. ``stable_baselines3.PPO``; its ``policy.state_dict()`` is read.
    :param vecnormalize: a ``VecNormalize`` whose observation statistics are applied first
        (ignored when it was made with ``norm_obs=False``).
    :param provenance: merged over ``{"source": "stable-baselines3", "algorithm": …,
        "sb3_version": …, "transforms": []}``.
    :raises PolicyError: as :func:`convert`.
    """
    import stable_baselines3

    algo = algorithm_of(model)
    policy = model.policy
    state = {k: v.detach().cpu().numpy() for k, v in policy.state_dict().items()}
    act_fn = getattr(policy, "activation_fn", None)
    activation = act_fn.__name__ if isinstance(act_fn, type) else DEFAULT_ACTIVATION[algo]
    obs = _space(model.observation_space, "observation", algo)
    act = _space(model.action_space, "action", algo)
    normalize = None
    if vecnormalize is not None and getattr(vecnormalize, "norm_obs", False):
        rms = vecnormalize.obs_rms
        if isinstance(rms, dict):
            raise PolicyError("VecNormalize over Dict observations is not supported")
        normalize = normalize_from_stats(
            rms.mean, rms.var, float(vecnormalize.clip_obs), float(vecnormalize.epsilon)
        )
    image = isinstance(model.observation_space.shape, tuple) and len(
        model.observation_space.shape) == 3  # fmt: skip
    extractor = extractor_module(policy, algo) if image else None
    normalize_images = bool(getattr(policy, "normalize_images", True))
    squash = algo in (*ACTOR_CRITIC, "ars") and bool(getattr(policy, "squash_output", False))
    clip_mean = float(getattr(getattr(policy, "actor", None), "clip_mean", DEFAULT_CLIP_MEAN))
    prov: dict[str, Any] = {
        "source": "stable-baselines3",
        "algorithm": algo,
        "env": _env_id(model),
        "sb3_version": stable_baselines3.__version__,
        "transforms": [],
    }
    prov.update(provenance or {})
    out = convert(
        algo, state, obs, act, activation=activation, normalize=normalize, provenance=prov,
        squash_output=squash, clip_mean=clip_mean,
        features_ops=None if extractor is None else module_ops(extractor),
        normalize_images=normalize_images,
    )  # fmt: skip
    if extractor is None:
        return out
    check_features(out, extractor, model.observation_space, normalize_images)
    from stable_baselines3.common.vec_env import VecTransposeImage, unwrap_vec_wrapper

    env = model.get_env()
    transposed = env is not None and unwrap_vec_wrapper(env, VecTransposeImage) is not None
    return channels_last_policy(out) if transposed else out
