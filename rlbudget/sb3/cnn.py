"""An SB3 CNN features extractor (``CnnPolicy``: ``NatureCNN``) as the convolutions and the
first dense layers of a ``cnn`` body (:mod:`rlbudget.policy.conv`).

Two sources, one conversion (:func:`features`):

- a zip's state dict (:func:`nature_ops`): ``NatureCNN``'s parameters, ``cnn.0``, ``cnn.2``,
  ``cnn.4`` (kernels 8, 4, 3; strides 4, 2, 1; no padding; ReLU after each), then
  ``linear.0`` and a ReLU. Strides and padding are not in a state dict, so only that
  extractor is read from a file;
- a live model (:func:`module_ops`): any extractor whose leaf modules, in order, are a chain
  of ``Conv2d`` (groups 1, or one per channel: depthwise), ``MaxPool2d``, ``AvgPool2d``,
  ``ReLU``, ``Flatten``, ``Linear``; :func:`rlbudget.sb3.convert.from_model` checks the
  converted features against the module's own forward before it trusts the chain.

torch is channels first: a ``Conv2d`` weight ``[out, in, kh, kw]`` becomes rows (ky, kx, c)
by output channel, and the first ``Linear`` after the flatten has its input rows permuted
from torch's (c, y, x) order to the body's (y, x, c).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rlbudget.errors import PolicyError
from rlbudget.policy.conv import CNN, Conv
from rlbudget.policy.kernels import Array
from rlbudget.policy.model import MLP, Dense, Policy

NATURE = (("cnn.0", 4), ("cnn.2", 2), ("cnn.4", 1))
"""NatureCNN's convolutions: (state-dict prefix, stride); kernels 8, 4, 3, no padding."""

EXTRACTOR_PREFIX = {
    "ppo": "pi_features_extractor",
    "a2c": "pi_features_extractor",
    "trpo": "pi_features_extractor",
    "dqn": "q_net.features_extractor",
    "qrdqn": "quantile_net.features_extractor",
    "sac": "actor.features_extractor",
    "tqc": "actor.features_extractor",
    "td3": "actor.features_extractor",
    "ddpg": "actor.features_extractor",
}
"""Where the actor's features extractor lies in each algorithm's state dict (an
actor-critic policy before SB3 1.8, or sharing it, also has ``features_extractor``)."""


@dataclass(frozen=True)
class Op:
    """One torch layer, framework-free: ``conv`` (``W`` [out, in/groups, kh, kw]), ``maxpool``,
    ``avgpool``, ``relu``, ``flatten``, ``linear`` (``W`` [out, in])."""

    kind: str
    W: Array | None = None
    b: Array | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    kernel: tuple[int, int] = (1, 1)
    groups: int = 1


def extractor_prefix(algorithm: str, keys: Any) -> str:
    """The state-dict prefix of the actor's features extractor."""
    prefix = EXTRACTOR_PREFIX.get(algorithm)
    if prefix is None:
        raise PolicyError(f"{algorithm} model: a CNN features extractor is not supported here")
    if prefix == "pi_features_extractor" and not any(k.startswith(prefix + ".") for k in keys):
        return "features_extractor"
    return prefix


def _floats(sd: Mapping[str, Any], key: str, ndim: int) -> Array:
    if key not in sd:
        raise PolicyError(
            f"state dict: no '{key}'; the features extractor is not NatureCNN "
            "(convert the live model with rlbudget.sb3.convert.from_model)"
        )
    value = np.asarray(sd[key])
    if value.ndim != ndim or not np.issubdtype(value.dtype, np.floating):
        raise PolicyError(
            f"state dict: '{key}' has shape {list(value.shape)} ({value.dtype}); "
            f"expected {ndim} dimensions of floats"
        )
    if not np.all(np.isfinite(value)):
        raise PolicyError(f"state dict: '{key}' contains NaN or inf; retrain the model")
    return value.astype(np.float32)


def nature_ops(sd: Mapping[str, Any], prefix: str) -> list[Op]:
    """NatureCNN's layers from a state dict (its geometry is SB3's, fixed).

    :raises PolicyError: a missing or mis-shaped parameter, or more layers than NatureCNN's.
    """

    def layer(name: str, ndim: int) -> tuple[Array, Array]:
        W = _floats(sd, f"{prefix}.{name}.weight", ndim)
        b = _floats(sd, f"{prefix}.{name}.bias", 1)
        if b.shape != W.shape[:1]:
            raise PolicyError(
                f"state dict: '{prefix}.{name}.bias' has shape {list(b.shape)}; expected "
                f"[{W.shape[0]}] (the outputs of '{prefix}.{name}.weight')"
            )
        return W, b

    ops: list[Op] = []
    for name, stride in NATURE:
        W, b = layer(name, 4)
        ops += [Op("conv", W, b, (stride, stride), (0, 0), (W.shape[2], W.shape[3])), Op("relu")]
    W, b = layer("linear.0", 2)
    known = {
        f"{prefix}.{n}.{p}"
        for n in ("cnn.0", "cnn.2", "cnn.4", "linear.0")
        for p in ("weight", "bias")
    }
    extra = sorted(k for k in sd if k.startswith(prefix + ".") and k not in known)
    if extra:
        raise PolicyError(
            f"state dict: '{extra[0]}' is not a NatureCNN parameter; rlbudget "
            "reads CnnPolicy's NatureCNN from a zip (convert another features "
            "extractor from the live model: rlbudget.sb3.convert.from_model)"
        )
    return [*ops, Op("flatten"), Op("linear", W, b), Op("relu")]


def module_ops(module: Any) -> list[Op]:
    """The leaf modules of a live torch features extractor, in order, as :class:`Op`.

    :raises PolicyError: a module other than Conv2d, MaxPool2d, AvgPool2d, ReLU, Flatten,
        Linear (or Identity, Dropout, skipped).
    """

    def pair(v: Any) -> tuple[int, int]:
        return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))

    def numpy(t: Any) -> Array | None:
        return None if t is None else np.asarray(t.detach().cpu().numpy(), dtype=np.float32)

    ops: list[Op] = []
    for name, m in module.named_modules():
        if list(m.children()):
            continue
        cls = type(m).__name__
        if cls == "Conv2d":
            if (
                m.padding_mode != "zeros"
                or pair(m.dilation) != (1, 1)
                or isinstance(m.padding, str)
            ):
                raise PolicyError(
                    f"features extractor: {name} ({cls}) uses padding "
                    f"{m.padding!r} ({m.padding_mode}) or dilation {m.dilation}; "
                    "rlbudget converts zero padding given as numbers, no dilation"
                )
            ops.append(
                Op(
                    "conv",
                    numpy(m.weight),
                    numpy(m.bias),
                    pair(m.stride),
                    pair(m.padding),
                    pair(m.kernel_size),
                    int(m.groups),
                )
            )
        elif cls in ("MaxPool2d", "AvgPool2d"):
            if pair(m.padding) != (0, 0) or m.ceil_mode:
                raise PolicyError(
                    f"features extractor: {name} ({cls}) pads or uses ceil_mode; "
                    "rlbudget converts pools without either"
                )
            kernel = pair(m.kernel_size)
            stride = kernel if m.stride is None else pair(m.stride)
            ops.append(
                Op("maxpool" if cls == "MaxPool2d" else "avgpool", stride=stride, kernel=kernel)
            )
        elif cls == "ReLU":
            ops.append(Op("relu"))
        elif cls == "Flatten":
            ops.append(Op("flatten"))
        elif cls == "Linear":
            ops.append(Op("linear", numpy(m.weight), numpy(m.bias)))
        elif cls not in ("Identity", "Dropout"):
            raise PolicyError(
                f"features extractor: {name} is a {cls}; rlbudget converts Conv2d, "
                "MaxPool2d, AvgPool2d, ReLU, Flatten and Linear layers"
            )
    return ops


def features(ops: list[Op], chw: tuple[int, int, int]) -> tuple[list[Conv], list[Dense]]:
    """The ops over a ``chw`` (channels, height, width) input → the body's layers (channels
    last) and the dense layers after the flatten.

    :raises PolicyError: a layer order or shape the body cannot hold.
    """
    c, h, w = chw
    convs: list[Conv] = []
    dense: list[Dense] = []
    flat = False
    for i, op in enumerate(ops):
        if op.kind == "relu":
            last: Conv | Dense | None = (
                (dense or convs or [None])[-1] if flat else (convs[-1] if convs else None)
            )
            if (
                last is None
                or last.activation != "identity"
                or getattr(last, "op", "") in ("maxpool", "avgpool")
            ):
                raise PolicyError(
                    f"features extractor: layer {i} is a ReLU that follows no "
                    "convolution or linear layer"
                )
            if isinstance(last, Dense):
                dense[-1] = Dense(last.W, last.b, "relu")
            else:
                convs[-1] = Conv(
                    last.op, last.kernel, last.stride, last.padding, last.W, last.b, "relu"
                )
            continue
        if op.kind == "flatten":
            flat = True
            continue
        if op.kind == "linear":
            if not flat:
                raise PolicyError(f"features extractor: layer {i} (Linear) comes before Flatten")
            assert op.W is not None
            W = op.W.T
            if not dense:  # torch flattens (c, y, x); the body's features are (y, x, c)
                if W.shape[0] != c * h * w:
                    raise PolicyError(
                        f"features extractor: layer {i} (Linear) takes "
                        f"{W.shape[0]} inputs but the convolutions give "
                        f"{c * h * w}"
                    )
                W = hwc_rows(W, (h, w, c))
            b = op.b if op.b is not None else np.zeros(W.shape[1], np.float32)
            dense.append(Dense(np.ascontiguousarray(W, dtype=np.float32), b))
            continue
        if flat:
            raise PolicyError(f"features extractor: layer {i} ({op.kind}) comes after Flatten")
        if op.kind in ("maxpool", "avgpool"):
            layer = Conv(op.kind, op.kernel, op.stride)
        else:
            layer = _conv(op, c, i)
        convs.append(layer)
        h, w, c = layer.out_shape((h, w, c))
        if h < 1 or w < 1:
            raise PolicyError(
                f"features extractor: layer {i} leaves no pixels; the image is "
                "smaller than the network needs"
            )
    if not convs or not flat:
        raise PolicyError("features extractor: expected convolutions, then Flatten")
    return convs, dense


def hwc_rows(W: Array, hwc: tuple[int, int, int]) -> Array:
    """A dense ``W`` [inputs, outputs] reading torch's flatten of a ``[C, H, W]`` activation
    (rows in (c, y, x) order) → the same layer reading the body's (y, x, c) flatten."""
    h, w, c = hwc
    out: Array = W.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(c * h * w, -1)
    return np.ascontiguousarray(out)


def _conv(op: Op, c: int, i: int) -> Conv:
    """A torch Conv2d (weights [out, in/groups, kh, kw]) on ``c`` channels → a body layer."""
    assert op.W is not None
    out, per_group, kh, kw = op.W.shape
    b = op.b if op.b is not None else np.zeros(out, np.float32)
    if op.groups == 1 and per_group == c:
        W = op.W.transpose(2, 3, 1, 0).reshape(kh * kw * c, out)
        return Conv("conv2d", (kh, kw), op.stride, op.padding, np.ascontiguousarray(W), b)
    if op.groups == c and per_group == 1 and out == c:
        W = op.W[:, 0].transpose(1, 2, 0).reshape(kh * kw, c)
        return Conv("depthwise", (kh, kw), op.stride, op.padding, np.ascontiguousarray(W), b)
    raise PolicyError(
        f"features extractor: layer {i} (Conv2d) has groups={op.groups} and "
        f"weights {list(op.W.shape)} on {c} channels; rlbudget converts full "
        "(groups=1) and depthwise (groups = in = out channels) convolutions"
    )


def cnn_body(
    convs: list[Conv],
    dense: list[Dense],
    hwc: tuple[int, int, int],
    channels_first: bool,
    divide: float | None,
) -> CNN:
    """The ``cnn`` body of the converted layers."""
    return CNN(hwc, tuple(convs), MLP(tuple(dense)), channels_first, divide)


def image_divide(low: Any, high: Any, dtype: str, normalize_images: bool) -> float | None:
    """255 where SB3's ``preprocess_obs`` divides the observation by it (``normalize_images``
    and an image space: uint8 within [0, 255], ``is_image_space``), else None."""
    lo, hi = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    image = dtype == "uint8" and bool(np.all(lo == 0)) and bool(np.all(hi == 255))
    return 255.0 if normalize_images and image else None


def channels_last(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """A (C, H, W) shape as (H, W, C)."""
    c, h, w = shape
    return h, w, c


def channels_last_policy(policy: Policy) -> Policy:
    """``policy`` on ``[H, W, C]`` observations where it reads ``[C, H, W]`` ones (a ``cnn``
    body converted from SB3, whose ``VecTransposeImage`` turned the env's channels-last
    images around): the observation space transposed, the body reading them as they come.
    Any other policy is returned as it is."""
    body, obs = policy.body, policy.observation_space
    if not isinstance(body, CNN) or not body.channels_first or len(obs.shape) != 3:
        return policy
    c, h, w = obs.shape

    def moved(bounds: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if bounds is None:
            return None
        return tuple(float(v) for v in np.reshape(bounds, (c, h, w)).transpose(1, 2, 0).ravel())

    space = replace(obs, shape=(h, w, c), low=moved(obs.low), high=moved(obs.high))
    return replace(policy, observation_space=space, body=replace(body, channels_first=False))


def extractor_module(policy: Any, algorithm: str) -> Any:
    """The live features extractor of the actor (see :data:`EXTRACTOR_PREFIX`)."""
    owner = policy
    for part in extractor_prefix(algorithm, dict(policy.state_dict())).split(".")[:-1]:
        owner = getattr(owner, part)
    name = extractor_prefix(algorithm, dict(policy.state_dict())).rsplit(".", 1)[-1]
    return getattr(owner, name)


def check_features(policy: Policy, extractor: Any, space: Any, normalize_images: bool) -> None:
    """The converted body's features (its layers up to the extractor's last) against the
    torch module's own forward on a few sampled observations.

    :raises PolicyError: they differ: the module's forward is not the chain of its leaves.
    """
    import torch
    from stable_baselines3.common.preprocessing import preprocess_obs

    body = policy.body
    assert isinstance(body, CNN) and isinstance(body.dense, MLP)
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in extractor.modules())
    space.seed(0)
    obs = np.stack([space.sample() for _ in range(4)])
    with torch.no_grad():
        x = preprocess_obs(torch.as_tensor(obs), space, normalize_images=normalize_images)
        expected = extractor(x).flatten(1).cpu().numpy()
    if n_linear:
        got = replace(body, dense=MLP(body.dense.layers[:n_linear])).apply(obs)
    else:  # torch's (c, y, x) flatten against the body's (y, x, c)
        y = body.image(obs)
        for layer in body.layers:
            y = layer.apply(y)
        got = y.reshape(len(y), -1)
        expected = (
            expected.reshape(len(y), y.shape[3], y.shape[1], y.shape[2])
            .transpose(0, 2, 3, 1)
            .reshape(len(y), -1)
        )
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-3, atol=1e-4):
        raise PolicyError(
            "features extractor: its forward is not the chain of its layers in "
            "the order they were defined (rlbudget reads Conv2d, pools, ReLU, "
            "Flatten, Linear in that order); the converted features differ"
        )
