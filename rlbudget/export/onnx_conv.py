"""The convolutions of a ``cnn`` / ``cnn_int8`` body in ``policy.onnx``
(:mod:`rlbudget.policy.conv`); :mod:`rlbudget.export.onnx` adds the dense layers and head.

ONNX convolutions are channels first (NCHW): the image is reshaped to the observation's
layout, divided by ``divide`` (float32 Div, as numpy), transposed to NCHW where it came
channels last, and after the last layer transposed back to NHWC and flattened, so the
features are in the body's (y, x, c) order.

- float: ``Conv`` (weights ``[out, in, kh, kw]``; a depthwise layer ``group`` = channels,
  ``[c, 1, kh, kw]``), ``Relu``, ``MaxPool``, ``AveragePool``: **within 1e-5** (another
  summation order).
- int8, **bit-exact** with the numpy int8 path: the input quantized as the MLP's,
  ``ConvInteger`` (int8 × int8 → int32 with the input zero point; onnxruntime pads with
  that zero point, so padding adds nothing, as numpy's), plus the int32 bias, then the
  dense layers' exact int64 requantization per output channel (on NHWC, channels last),
  the clamp and a Cast to int8. Max pooling runs on the int8 values cast to float32 (exact
  small integers); average pooling sums in float32 (exact: at most kh·kw·128 in
  magnitude) and divides, then rounds half away from zero (``Sign · Floor(|v| + 0.5)``):
  a quotient of two integers is a half exactly when it is one, and otherwise at least
  ``1 / (2 kh kw)`` away from one, far more than float32's error, so this is TFLite's
  integer rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rlbudget.policy.conv import CNN, Conv
from rlbudget.policy.int8 import QDense

FLOAT, INT8, INT32, INT64 = 1, 3, 6, 7  # ONNX TensorProto element types (the ONNX spec's)
NHWC_TO_NCHW, NCHW_TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


def conv_graph(
    g: Any,
    x: str,
    body: CNN,
    quantize: Callable[[Any, str, float, int], str],
    requantize: Callable[[Any, str, QDense], str],
) -> str:
    """The body's layers up to the flatten: the float32 features ``[batch, h·w·c]``, or
    (``cnn_int8``) the int8 ones. ``g`` is :mod:`rlbudget.export.onnx`'s graph;
    ``quantize`` and ``requantize`` are its input quantization and exact requantization.
    """
    h, w, c = body.shape
    layout = [-1, c, h, w] if body.channels_first else [-1, h, w, c]
    y = g.op("Reshape", x, g.const(np.array(layout, np.int64), "image_shape"))
    if body.divide is not None:
        y = g.op("Div", y, g.const(np.float32(body.divide), "divide"))
    if body.int8:
        first = body.first_conv
        y = quantize(g, y, first.input_scale, first.input_zero_point)
    if not body.channels_first:
        y = g.op("Transpose", y, perm=NHWC_TO_NCHW)
    for k, la in enumerate(body.layers):
        y = _int8_layer(g, y, la, k, requantize) if body.int8 else _float_layer(g, y, la, k)
    y = g.op("Transpose", y, perm=NCHW_TO_NHWC)
    out: str = g.op("Flatten", y, axis=1, hint="features")
    return out


def _attrs(la: Conv) -> dict[str, Any]:
    ph, pw = la.padding
    return {"kernel_shape": list(la.kernel), "strides": list(la.stride), "pads": [ph, pw, ph, pw]}


def _oihw(la: Conv, W: np.ndarray) -> np.ndarray:
    """The body's ``W`` as ONNX's ``[out, in / group, kh, kw]``."""
    kh, kw = la.kernel
    if la.op == "depthwise":
        return np.ascontiguousarray(W.reshape(kh, kw, -1).transpose(2, 0, 1)[:, None])
    return np.ascontiguousarray(W.reshape(kh, kw, -1, W.shape[1]).transpose(3, 2, 0, 1))


def _float_layer(g: Any, y: str, la: Conv, k: int) -> str:
    if la.op in ("maxpool", "avgpool"):
        op = "MaxPool" if la.op == "maxpool" else "AveragePool"
        return str(g.op(op, y, kernel_shape=list(la.kernel), strides=list(la.stride)))
    assert la.W is not None and la.b is not None
    W = _oihw(la, la.W)
    group = W.shape[0] if la.op == "depthwise" else 1
    z = g.op("Conv", y, g.const(W, f"conv_W{k}"), g.const(la.b, f"conv_b{k}"), group=group,
             **_attrs(la))  # fmt: skip
    return str(g.op("Relu", z) if la.activation == "relu" else z)


def _int8_layer(g: Any, y: str, la: Conv, k: int, requantize: Callable[[Any, str, QDense],
                str]) -> str:  # fmt: skip
    q = la.q
    if q is None:
        v = g.op("Cast", y, to=FLOAT)
        if la.op == "maxpool":
            return str(g.op("Cast", g.op("MaxPool", v, kernel_shape=list(la.kernel),
                                         strides=list(la.stride)), to=INT8))  # fmt: skip
        mean = g.op("AveragePool", v, kernel_shape=list(la.kernel), strides=list(la.stride))
        half = g.const(np.float32(0.5), "half_f32")
        rounded = g.op("Mul", g.op("Sign", mean), g.op("Floor", g.op("Add", g.op("Abs", mean),
                                                                    half)))  # fmt: skip
        return str(g.op("Cast", rounded, to=INT8))
    W = _oihw(la, q.W)
    group = W.shape[0] if la.op == "depthwise" else 1
    acc = g.op("ConvInteger", y, g.const(W.astype(np.int8), f"conv_W{k}"),
               g.const(np.int8(q.input_zero_point), "conv_in_zp"), group=group,
               **_attrs(la))  # fmt: skip
    acc = g.op("Transpose", acc, perm=NCHW_TO_NHWC)  # per-channel constants on the last axis
    acc = g.op("Add", acc, g.const(q.b.astype(np.int32), f"conv_b{k}"))
    z = g.op("Add", requantize(g, acc, q), g.const(q.output_zero_point, "out_zp", np.int64))
    z = g.op("Clip", z, g.const(q.clamp_low, "lo", np.int64), g.const(127, "hi", np.int64))
    return str(g.op("Transpose", g.op("Cast", z, to=INT8), perm=NHWC_TO_NCHW))
