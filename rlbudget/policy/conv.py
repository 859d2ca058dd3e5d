"""The ``cnn`` and ``cnn_int8`` bodies: convolutions over an image observation, flatten, then
dense layers (an ``mlp`` or ``mlp_int8`` body).

Layers (``op`` in ``policy.json``), each on ``[batch, height, width, channels]``:

- ``conv2d``: ``kernel`` × ``kernel`` over every input channel, ``stride``, zero ``padding``
  on each side, then ``relu`` or ``identity``; a 1×1 ``conv2d`` is the pointwise half of a
  depthwise-separable convolution;
- ``depthwise``: one ``kernel`` per channel (groups = channels, multiplier 1);
- ``maxpool``, ``avgpool``: the maximum or the mean of each window (no padding).

**Layout: channels last (NHWC)**, as TFLite Micro and CMSIS-NN run convolutions on a
microcontroller. A convolution's innermost loop then reads one pixel's channels, which lie
next to each other in memory and match the weight row ``W[(ky, kx, c), out]``; a
depthwise layer reads each channel of a pixel with the same stride. Flattening the last
activation is free (no copy), and a gymnasium image observation (``Box(0, 255, [H, W,
C], uint8)``) enters as it is. torch is channels first: importing an SB3 ``CnnPolicy``
(:mod:`rlbudget.sb3.convert`) permutes the convolution weights to this layout and the
first dense layer's rows to the channels-last flatten order, once; an observation that is
channels first (``input.layout`` ``chw``: the model was trained on ``[C, H, W]``
observations) is transposed on entry.

Weights as stored: a ``conv2d``'s ``W`` is ``[kernel_h × kernel_w × in_channels,
out_channels]`` with rows in (ky, kx, c) order, a ``depthwise``'s ``[kernel_h × kernel_w,
channels]``; ``b`` one per output channel. The int8 layers hold a
:class:`~rlbudget.policy.int8.QDense` with those ``W`` (per-channel symmetric int8), an int32
bias and the requantization constants: the accumulator of one output pixel is that of a
dense layer over its window (padding reads the input zero point, so it adds nothing), and
ends the same way (:meth:`QDense.output`); max pooling keeps the int8 values and average
pooling rounds as TFLite's int8 ``AveragePool`` (half away from zero), both with the input's
scale and zero point.

The input: ``input.shape`` ``[H, W, C]`` (the body's, channels last), ``layout``, and
``divide`` (255 for SB3's image observations: ``preprocess_obs`` divides a uint8 image by
255 in float32 before the network, :func:`stable_baselines3.common.preprocessing
.is_image_space`); an int8 body then quantizes that float input with its first
convolution's input scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from rlbudget.errors import PolicyError
from rlbudget.policy.int8 import QDense, QuantizedMLP, quantize_input
from rlbudget.policy.kernels import Array, Document, activate, affine

CONV_OPS = ("conv2d", "depthwise")
POOL_OPS = ("maxpool", "avgpool")
CONV_ACTIVATIONS = ("identity", "relu")
LAYOUTS = ("hwc", "chw")
Pair = tuple[int, int]
Shape = tuple[int, int, int]
"""(height, width, channels) of one activation."""


class DenseBody(Protocol):
    """What a CNN asks of the dense layers after its flatten (an ``mlp`` or ``mlp_int8``)."""

    @property
    def kind(self) -> str: ...

    @property
    def parameters(self) -> int: ...

    def macs(self) -> int: ...

    def apply(self, x: Array) -> Array: ...

    def document(self, prefix: str) -> Document: ...


def windows(x: Array, kernel: Pair, stride: Pair, padding: Pair, fill: float | int) -> Array:
    """``x`` [batch, H, W, C] → its windows [batch, out_h, out_w, kernel_h, kernel_w, C] (a
    view where there is no padding), ``padding`` rows and columns of ``fill`` around it."""
    (ph, pw), (sh, sw) = padding, stride
    if ph or pw:
        x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=fill)
    win = sliding_window_view(x, kernel, axis=(1, 2))[:, ::sh, ::sw]
    out: Array = win.transpose(0, 1, 2, 4, 5, 3)
    return out


def round_divide(total: Array, count: int) -> Array:
    """``total / count`` rounded half away from zero, in integers (TFLite's int8 average
    pool: ``(total ± count / 2) / count`` with C's truncating division)."""
    half = count // 2
    up = (total + half) // count
    down = -((-total + half) // count)
    out: Array = np.where(total > 0, up, down)
    return out


@dataclass(frozen=True, eq=False)
class Conv:
    """One layer before the flatten (see the module docstring): ``op``, its geometry, and
    for a convolution its float weights (``W``, ``b``, ``activation``) or, int8, ``q``."""

    op: str
    kernel: Pair
    stride: Pair
    padding: Pair = (0, 0)
    W: Array | None = None
    b: Array | None = None
    activation: str = "identity"
    q: QDense | None = None

    def out_shape(self, shape: Shape) -> Shape:
        """The output (height, width, channels) for an input of ``shape``."""
        h, w, c = shape
        oh = (h + 2 * self.padding[0] - self.kernel[0]) // self.stride[0] + 1
        ow = (w + 2 * self.padding[1] - self.kernel[1]) // self.stride[1] + 1
        weights = self.weights
        return oh, ow, c if self.op != "conv2d" or weights is None else int(weights.shape[1])

    @property
    def weights(self) -> Array | None:
        """``W`` (float or int8), None for a pool."""
        return self.q.W if self.q is not None else self.W

    @property
    def parameters(self) -> int:
        if self.q is not None:
            return int(self.q.W.size + self.q.b.size)
        return 0 if self.W is None or self.b is None else int(self.W.size + self.b.size)

    def macs(self, shape: Shape) -> int:
        """Multiply-accumulates for an input of ``shape`` (a pool: none)."""
        weights = self.weights
        oh, ow, _ = self.out_shape(shape)
        return 0 if weights is None else oh * ow * int(weights.size)

    def document(self, prefix: str) -> Document:
        entry: dict[str, Any] = {"op": self.op, "kernel": list(self.kernel),
                                 "stride": list(self.stride),
                                 "padding": list(self.padding)}  # fmt: skip
        if self.q is not None:  # one int8 dense layer's entry, its arrays named <prefix>.<x>
            layer, arrays = QuantizedMLP((self.q,)).document(prefix)

            def named(v: Any) -> Any:
                if isinstance(v, str) and v.startswith(f"{prefix}.0."):
                    return prefix + v[len(prefix) + 2 :]
                return {k: named(x) for k, x in v.items()} if isinstance(v, dict) else v

            return {**entry, **named(layer["layers"][0])}, {named(k): a for k, a in arrays.items()}
        if self.W is None or self.b is None:
            return entry, {}
        entry.update(activation=self.activation, W=f"{prefix}.W", b=f"{prefix}.b")
        return entry, {f"{prefix}.W": self.W, f"{prefix}.b": self.b}

    def apply(self, x: Array) -> Array:
        """float32 [batch, H, W, C] → float32 [batch, out_h, out_w, out_c]."""
        if self.op in POOL_OPS:
            win = windows(x, self.kernel, self.stride, self.padding, 0.0)
            if self.op == "maxpool":
                out: Array = win.max(axis=(3, 4))
                return out
            area = np.float32(self.kernel[0] * self.kernel[1])
            summed: Array = win.sum(axis=(3, 4), dtype=np.float32) / area
            return summed
        z, (n, oh, ow) = self.pre_activation(x)
        return activate(z, self.activation).reshape(n, oh, ow, -1)

    def pre_activation(self, x: Array) -> tuple[Array, tuple[int, int, int]]:
        """A convolution's float32 output before its activation, one row per output pixel
        [batch × out_h × out_w, out_c], and (batch, out_h, out_w)."""
        assert self.W is not None and self.b is not None
        win = windows(x, self.kernel, self.stride, self.padding, 0.0)
        n, oh, ow = win.shape[:3]
        if self.op == "conv2d":
            z = affine(win.reshape(n * oh * ow, -1), self.W, self.b)
        else:
            rows = win.reshape(n * oh * ow, -1, win.shape[-1])
            z = (rows * self.W).sum(axis=1, dtype=np.float32) + self.b
        return z, (n, oh, ow)

    def accumulate(self, x: Array) -> tuple[Array, tuple[int, int, int]]:
        """An int8 convolution's int32 accumulators (bias included; int64 here, as C's int32
        exactly), one row per output pixel, and (batch, out_h, out_w)."""
        q = self.q
        assert q is not None
        win = windows(x, self.kernel, self.stride, self.padding, q.input_zero_point)
        n, oh, ow = win.shape[:3]
        rows = win.reshape(n * oh * ow, -1).astype(np.int64) - q.input_zero_point
        if self.op == "conv2d":
            acc = rows @ q.W.astype(np.int64)
        else:
            acc = (rows.reshape(n * oh * ow, -1, win.shape[-1]) * q.W).sum(axis=1)
        return acc + q.b.astype(np.int64), (n, oh, ow)

    def apply_int(self, x: Array) -> Array:
        """int8 [batch, H, W, C] → int8 [batch, out_h, out_w, out_c], integers only."""
        if self.q is not None:
            acc, (n, oh, ow) = self.accumulate(x)
            return self.q.output(acc).reshape(n, oh, ow, -1)
        win = windows(x, self.kernel, self.stride, self.padding, 0)
        if self.op == "maxpool":
            top: Array = win.max(axis=(3, 4))
            return top
        total = win.sum(axis=(3, 4), dtype=np.int64)
        mean = round_divide(total, self.kernel[0] * self.kernel[1])
        return np.clip(mean, -128, 127).astype(np.int8)


@dataclass(frozen=True, eq=False)
class CNN:
    """``layers`` over the image (channels last), flatten, then ``dense`` (``mlp``: kind
    ``cnn``; ``mlp_int8`` with int8 convolutions: kind ``cnn_int8``)."""

    shape: Shape
    layers: tuple[Conv, ...]
    dense: DenseBody
    channels_first: bool = False
    divide: float | None = None

    @property
    def kind(self) -> str:
        return "cnn_int8" if isinstance(self.dense, QuantizedMLP) else "cnn"

    @property
    def int8(self) -> bool:
        return isinstance(self.dense, QuantizedMLP)

    def shapes(self) -> list[Shape]:
        """The input's (height, width, channels) and each layer's output's."""
        out = [self.shape]
        for layer in self.layers:
            out.append(layer.out_shape(out[-1]))
        return out

    @property
    def first_conv(self) -> QDense:
        """The first int8 convolution (its input quantization is the body's)."""
        return next(la.q for la in self.layers if la.q is not None)

    @property
    def parameters(self) -> int:
        return sum(la.parameters for la in self.layers) + self.dense.parameters

    def macs(self) -> int:
        """Multiply-accumulates per decision: every convolution weight at every output
        pixel, then the dense layers'."""
        convs = sum(la.macs(s) for la, s in zip(self.layers, self.shapes(), strict=False))
        return convs + self.dense.macs()

    def widths(self) -> list[int]:
        """Elements of each activation in order: the input, each layer's output (the last
        one is the flattened features), each dense layer's output."""
        dense = [int(la.W.shape[1]) for la in getattr(self.dense, "layers", ())]
        return [math.prod(s) for s in self.shapes()] + dense

    def buffer_bytes(self) -> int:
        """Two ping-pong buffers for the largest pair of consecutive activations (4 B an
        element, 1 B int8), and int8's float32 output when its last layer gives floats."""
        widths = self.widths()
        element = 1 if self.int8 else 4
        arena = element * max(a + b for a, b in pairwise(widths))
        if isinstance(self.dense, QuantizedMLP) and self.dense.layers[-1].float_output:
            arena += 4 * widths[-1]
        return arena

    def document(self, prefix: str) -> Document:
        arrays: dict[str, Array] = {}
        layers = []
        for i, layer in enumerate(self.layers):
            entry, more = layer.document(f"{prefix}.conv.{i}")
            layers.append(entry)
            arrays.update(more)
        dense, more = self.dense.document(f"{prefix}.dense")
        arrays.update(more)
        given: dict[str, Any] = {"shape": list(self.shape),
                                 "layout": "chw" if self.channels_first else "hwc"}  # fmt: skip
        if self.divide is not None:
            given["divide"] = self.divide
        return {"kind": self.kind, "input": given, "conv": layers, "dense": dense}, arrays

    def image(self, x: Array) -> Array:
        """Observations [batch, …] → float32 [batch, H, W, C] (transposed from channels
        first, divided by ``divide``)."""
        h, w, c = self.shape
        n = len(x)
        x = x.reshape(n, c, h, w).transpose(0, 2, 3, 1) if self.channels_first else x.reshape(
            n, h, w, c)  # fmt: skip
        x = x.astype(np.float32)
        if self.divide is not None:
            x = x / np.float32(self.divide)
        return x

    def apply(self, x: Array) -> Array:
        y = self.image(x)
        n = len(y)
        if isinstance(self.dense, QuantizedMLP):
            first = self.first_conv
            q = quantize_input(y, first.input_scale, first.input_zero_point)
            for layer in self.layers:
                q = layer.apply_int(q)
            return self.dense.finish(self.dense.run_int(q.reshape(n, -1)))
        for layer in self.layers:
            y = layer.apply(y)
        return self.dense.apply(y.reshape(n, -1))


# --- reading policy.json ----------------------------------------------------------------

MAX_SIDE = 4096
"""The largest image side, kernel, stride or padding a policy file may hold."""
MAX_VALUES = 2**26
"""The most values one layer's windows or output may hold per decision (256 MiB as float32;
NatureCNN on an 84×84×4 image needs 102,400): a padded kernel grows the image, so a small
file could otherwise ask for gigabytes on every decision."""


def _pair(v: Any, name: str, what: str, fail: Callable[[str], PolicyError], low: int) -> Pair:
    if (not isinstance(v, list) or len(v) != 2
            or not all(type(k) is int and low <= k <= MAX_SIDE for k in v)):  # fmt: skip
        raise fail(f"{what}: {name} must be two integers from {low} to {MAX_SIDE}, not {v!r}")
    return int(v[0]), int(v[1])


def read_cnn(
    d: Mapping[str, Any],
    width: int,
    body: Callable[[Mapping[str, Any], int, bool], tuple[Any, int]],
    qdense: Callable[[Mapping[str, Any], str, int], QDense],
    fail: Callable[[str], PolicyError],
) -> tuple[CNN, int]:
    """A ``cnn`` or ``cnn_int8`` entry of ``policy.json`` → the body and its output width,
    every value checked (the input shape against the ``width`` values the body receives,
    each layer's geometry and weights against its input, the dense layers against the
    flattened features); ``body``, ``qdense`` and ``fail`` are the policy loader's
    (:mod:`rlbudget.policy.reader`).

    :raises PolicyError: the first problem, one line.
    """
    kind = d.get("kind")
    int8 = kind == "cnn_int8"
    what = f"body ({kind})"
    given = d.get("input")
    if not isinstance(given, Mapping):
        raise fail(f"{what}: 'input' must be an object with shape, layout (and divide)")
    shape = given.get("shape")
    if (not isinstance(shape, list) or len(shape) != 3
            or not all(type(v) is int and 1 <= v <= MAX_SIDE for v in shape)):  # fmt: skip
        raise fail(f"{what}: input.shape must be [height, width, channels], three integers "
                   f"from 1 to {MAX_SIDE}, not {shape!r}")  # fmt: skip
    if math.prod(shape) != width:
        raise fail(f"{what}: input.shape {shape} holds {math.prod(shape)} values but the body "
                   f"receives {width}")  # fmt: skip
    layout, divide = given.get("layout"), given.get("divide")
    if layout not in LAYOUTS:
        raise fail(f"{what}: input.layout must be 'hwc' or 'chw', not {layout!r}")
    if divide is not None and (isinstance(divide, bool) or not isinstance(divide, int | float)
                               or not 1e-6 <= divide <= 1e10):  # fmt: skip
        # float32 holds it (1e-300 would round to 0, and every pixel divided by it to inf)
        raise fail(f"{what}: input.divide must be a number from 1e-6 to 1e10 (255 for uint8 "
                   f"images), not {divide!r}")  # fmt: skip
    entries = d.get("conv")
    if not isinstance(entries, list) or not entries or not all(
            isinstance(e, Mapping) for e in entries):  # fmt: skip
        raise fail(f"{what}: 'conv' must be a non-empty list of layer objects")
    current: Shape = (int(shape[0]), int(shape[1]), int(shape[2]))
    layers: list[Conv] = []
    for i, e in enumerate(entries):
        layer = _read_layer(e, f"{what} conv[{i}]", current, int8, body, qdense, fail)
        after = layer.out_shape(current)
        window = layer.kernel[0] * layer.kernel[1] * current[2]
        if max(math.prod(after[:2]) * window, math.prod(after)) > MAX_VALUES:
            raise fail(f"{what} conv[{i}]: its output {after[0]}×{after[1]}×{after[2]} with "
                       f"{window} inputs a pixel needs more than {MAX_VALUES:,} values a "
                       f"decision; use a smaller kernel, padding or image")  # fmt: skip
        current = after
        layers.append(layer)
    if int8 and all(la.q is None for la in layers):
        raise fail(f"{what}: an int8 body needs at least one convolution (its input scale)")
    dense_entry = d.get("dense")
    expected = "mlp_int8" if int8 else "mlp"
    if not isinstance(dense_entry, Mapping) or dense_entry.get("kind") != expected:
        raise fail(f"{what}: 'dense' must be an {expected} body object")
    dense, out = body(dense_entry, math.prod(current), False)
    cnn = CNN((int(shape[0]), int(shape[1]), int(shape[2])), tuple(layers), dense,
              layout == "chw", None if divide is None else float(divide))  # fmt: skip
    return cnn, out


def _read_layer(
    e: Mapping[str, Any],
    what: str,
    shape: Shape,
    int8: bool,
    body: Callable[[Mapping[str, Any], int, bool], tuple[Any, int]],
    qdense: Callable[[Mapping[str, Any], str, int], QDense],
    fail: Callable[[str], PolicyError],
) -> Conv:
    """One layer of a ``conv`` list, for an input of ``shape``."""
    op = e.get("op")
    if op not in (*CONV_OPS, *POOL_OPS):
        raise fail(f"{what}: unknown op {op!r}; known: {', '.join((*CONV_OPS, *POOL_OPS))}")
    kernel = _pair(e.get("kernel"), "kernel", what, fail, 1)
    stride = _pair(e.get("stride"), "stride", what, fail, 1)
    padding = _pair(e.get("padding", [0, 0]), "padding", what, fail, 0)
    if op in POOL_OPS and padding != (0, 0):
        raise fail(f"{what}: a pool takes no padding, not {list(padding)}")
    if any(p >= k for p, k in zip(padding, kernel, strict=True)):
        raise fail(f"{what}: padding {list(padding)} must be below the kernel {list(kernel)}")
    h, w, c = shape
    if h + 2 * padding[0] < kernel[0] or w + 2 * padding[1] < kernel[1]:
        raise fail(f"{what}: the kernel {list(kernel)} is larger than its input {h}×{w} "
                   f"(padding {list(padding)}); the layers do not fit the image")  # fmt: skip
    if op in POOL_OPS:
        return Conv(str(op), kernel, stride, padding)
    if e.get("activation") not in CONV_ACTIVATIONS:
        raise fail(f"{what}: activation must be one of {', '.join(CONV_ACTIVATIONS)}, not "
                   f"{e.get('activation')!r}")  # fmt: skip
    inputs = kernel[0] * kernel[1] * (c if op == "conv2d" else 1)
    if int8:
        q = qdense(e, what, inputs)
        if q.float_output:
            raise fail(f"{what}: a convolution's output is int8, not float32")
        if op == "depthwise" and q.W.shape[1] != c:
            raise fail(f"{what}: W has {q.W.shape[1]} channels but the input has {c}")
        return Conv(str(op), kernel, stride, padding, q=q)
    try:  # one dense layer over each window, read by the loader's mlp reader
        mlp, _ = body({"kind": "mlp", "layers": [e]}, inputs, False)
    except PolicyError as exc:
        raise PolicyError(str(exc).replace("body (mlp) layer 0", what, 1)) from None
    dense = mlp.layers[0]
    if op == "depthwise" and dense.W.shape[1] != c:
        raise fail(f"{what}: W has {dense.W.shape[1]} channels but the input has {c}")
    if dense.W.dtype != np.float32:
        raise fail(f"{what}: W must be float32, not {dense.W.dtype}")
    return Conv(str(op), kernel, stride, padding, dense.W, dense.b, str(e["activation"]))
