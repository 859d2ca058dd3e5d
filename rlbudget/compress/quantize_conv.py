"""int8 post-training quantization of a ``cnn`` body (:mod:`rlbudget.policy.conv`) into a
``cnn_int8`` body, with the rules of :mod:`rlbudget.compress.quantize` (the MLP's):

- the body input (the image after ``divide``: [0, 1] for SB3's uint8 images) is quantized
  with the scale and zero point of its calibrated range (for [0, 1]: 1/255 and -128, so
  pixel ``p`` becomes exactly ``p - 128``);
- each convolution (a dense layer over each window: :func:`~rlbudget.compress.quantize
  .quantize_layer`) gets int8 weights with a scale per output channel (TFLite's rule for
  convolutions), an int32 bias, its output range calibrated on the float activations of
  the calibration images (relu folded into the clamp), and empirical bias correction over
  every output pixel of every calibration image;
- pools keep their input's scale and zero point;
- the dense layers after the flatten are quantized as an MLP's (bias correction, tanh
  tables, a float32 last layer for argmax/clip heads), reading the last convolution's int8
  output.

Every convolution is per channel; ``per_channel`` chooses for the dense layers.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rlbudget.compress import with_transform
from rlbudget.compress.quantize import (
    REQUANTIZE_RULES,
    activation_params,
    correct_bias,
    float_ranges,
    quantize_layer,
)
from rlbudget.errors import PolicyError
from rlbudget.policy.conv import CNN, Conv
from rlbudget.policy.kernels import activate, affine
from rlbudget.policy.model import MLP, Policy, QDense, QuantizedMLP, quantize_input


def quantize_cnn(
    policy: Policy, calibration_obs: np.ndarray, per_channel: bool = True, requantize: str = "auto"
) -> Policy:
    """The policy with its ``cnn`` body quantized to int8 (see the module docstring).

    :param calibration_obs: a batch of observations (images as the env gives them).
    :param per_channel: a weight scale per output channel in the dense layers too.
    :param requantize: as :func:`~rlbudget.compress.quantize.quantize_int8`'s.
    :raises PolicyError: not a ``cnn`` body with an ``mlp``, or unusable observations.
    """
    body = policy.body
    if not isinstance(body, CNN) or not isinstance(body.dense, MLP):
        raise PolicyError(f"int8 (cnn): this policy has a {body.kind} body, not a cnn body")
    if all(la.W is None for la in body.layers):  # the int8 input scale is the first conv's
        raise PolicyError("int8 (cnn): this cnn has no convolution, only pooling; an int8 cnn "
                          "needs one (add a 1×1 conv2d, or quantize the policy without its "
                          "pools as an mlp)")  # fmt: skip
    if requantize not in REQUANTIZE_RULES:
        raise PolicyError(f"int8: unknown requantize rule '{requantize}'; use "
                          f"{' or '.join(REQUANTIZE_RULES)}")  # fmt: skip
    obs = np.asarray(calibration_obs)
    shape = tuple(policy.observation_space.shape)
    if obs.ndim != len(shape) + 1 or len(obs) == 0 or tuple(obs.shape[1:]) != shape:
        raise PolicyError(f"int8 calibration: expected a non-empty batch of observations of "
                          f"shape [N, {', '.join(map(str, shape))}], got shape "
                          f"{list(obs.shape)}")  # fmt: skip
    if np.issubdtype(obs.dtype, np.floating) and not np.all(np.isfinite(obs)):
        raise PolicyError("int8 calibration: the observations contain NaN or inf; drop them")
    x = body.image(obs)
    quant = activation_params(float(x.min()), float(x.max()))
    xq = quantize_input(x, *quant)
    layers: list[Conv] = []
    for la in body.layers:
        if la.q is None and la.W is None:  # a pool: the same scale in and out
            layers.append(la)
            x, xq = la.apply(x), la.apply_int(xq)
            continue
        assert la.W is not None and la.b is not None
        z, (n, oh, ow) = la.pre_activation(x)
        a = activate(z, la.activation)
        seen = a if la.activation == "relu" else z
        q = quantize_layer(la.W, la.b, la.activation, quant, (float(seen.min()),
                           float(seen.max())), per_channel=True,
                           requantize=requantize)  # fmt: skip
        layer = Conv(la.op, la.kernel, la.stride, la.padding, q=q)
        acc, _ = layer.accumulate(xq)
        layer = replace(layer, q=correct_bias(q, acc, z))
        layers.append(layer)
        x, xq, quant = a.reshape(n, oh, ow, -1), layer.apply_int(xq), q.out_quant
    float_head = policy.head.kind != "tanh_rescale"
    dense = _quantize_dense(body.dense, x.reshape(len(x), -1), xq.reshape(len(xq), -1), quant,
                            float_head, per_channel, requantize)  # fmt: skip
    child = replace(policy, body=CNN(body.shape, tuple(layers), dense, body.channels_first,
                                     body.divide))  # fmt: skip
    rule = {"requantize": requantize} if requantize != "auto" else {}
    return with_transform(policy, child, "int8", calibration_observations=len(obs),
                          input_normalization=False, weight_scales="per channel" if per_channel
                          else "per tensor (dense layers)", **rule)  # fmt: skip


def _quantize_dense(
    mlp: MLP,
    x: np.ndarray,
    xq: np.ndarray,
    quant: tuple[float, int],
    float_head: bool,
    per_channel: bool,
    requantize: str,
) -> QuantizedMLP:
    """The dense layers after the flatten, reading int8 features ``xq`` of ``quant`` (their
    float values ``x``): as :func:`~rlbudget.compress.quantize.quantize_int8` does an MLP's
    layers after its input."""
    dense_layers = mlp.layers
    float_last = float_head and dense_layers[-1].activation == "identity"
    ranges = float_ranges(x, dense_layers)
    out: list[QDense] = []
    for i, d in enumerate(dense_layers):
        z = affine(x, d.W, d.b)
        layer = quantize_layer(d.W, d.b, d.activation, quant, ranges[i][0],
                               float_last and i == len(dense_layers) - 1, ranges[i][1],
                               per_channel, True, requantize)  # fmt: skip
        acc = (xq.astype(np.int64) - layer.input_zero_point) @ layer.W.astype(np.int64)
        layer = correct_bias(layer, acc + layer.b.astype(np.int64), z)
        out.append(layer)
        quant, x, xq = layer.out_quant, activate(z, d.activation), layer.apply(xq)
    return QuantizedMLP(tuple(out))
