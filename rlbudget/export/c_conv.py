"""The convolutions of a ``cnn`` / ``cnn_int8`` body in ``policy.c`` (:mod:`rlbudget.policy.conv`).

Every activation lives in one arena of two ping-pong halves (the largest pair of
consecutive activations: the body's ``buffer_bytes``): the image is written at its start,
each layer writes its output at the other end, and the dense layers after the flatten
continue the same alternation (:func:`rlbudget.export.c._mlp` with the chain's state).
Flattening a channels-last activation is no copy.

- the input: each body element ``(y, x, c)`` read from the observation (channels last as
  it comes, or from ``obs[c][y][x]`` for a channels-first observation), divided by
  ``divide`` in float32 (``obs[i] / 255.0f``, numpy's ``x / float32(255)``) and, int8,
  quantized by ``rlb_quantize`` as the MLP's input;
- a layer: ``conv_float.c`` / ``conv_int8.c`` with its geometry as a constant array
  ``{h, w, c_in, out_h, out_w, c_out, kh, kw, stride_h, stride_w, pad_h, pad_w}``; the int8
  kernel is integer-only, bit-exact with :meth:`Conv.apply_int` (the same accumulator, the
  same requantization functions as the dense layers, TFLite's average-pool rounding).
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np

from rlbudget.export.c_int8 import quantize_helper, requantize_helpers
from rlbudget.export.c_source import CTYPES, CWriter, c_float, loop
from rlbudget.export.kernels import instance
from rlbudget.policy.conv import CNN, POOL_OPS, Conv

KERNEL_NAMES = {"conv2d": "conv", "depthwise": "depthwise", "maxpool": "maxpool",
                "avgpool": "avgpool"}  # fmt: skip


def conv_chain(w: CWriter, body: CNN) -> tuple[int, str]:
    """Declare the arena, fill it with the body input and emit every layer before the
    flatten; returns the arena's size (elements) and the buffer holding the features."""
    widths = body.widths()
    size = max(a + b for a, b in pairwise(widths))
    ctype = "int8_t" if body.int8 else "float"
    w.buffer("rlb_arena", ctype, size, "activations: the largest pair of consecutive layers")
    _image(w, body)
    if body.int8:
        requantize_helpers(w, (*(la.q for la in body.layers if la.q is not None),
                               *getattr(body.dense, "layers", ())))  # fmt: skip
    shapes = body.shapes()
    x = "rlb_arena"
    for k, la in enumerate(body.layers):
        n_out = math.prod(shapes[k + 1])
        y = f"(rlb_arena + {size - n_out})" if k % 2 == 0 else "rlb_arena"
        w.line(_layer(w, la, k, x, y, shapes[k], shapes[k + 1], body.int8))
        x = y
    return size, x


def _image(w: CWriter, body: CNN) -> None:
    """``rlb_arena[0..h*w*c)``: the body input, channels last (see the module docstring)."""
    h, wd, c = body.shape
    source = f"obs[(i % {c}) * {h * wd} + i / {c}]" if body.channels_first else "obs[i]"
    value = source if body.divide is None else f"{source} / {c_float(body.divide)}"
    if body.int8:
        first = body.first_conv
        helper, scale = quantize_helper(first.input_scale)
        w.helper("rlb_quantize", helper)
        value = f"rlb_quantize({value}, {c_float(scale)}, {first.input_zero_point})"
    layout = "from [c][h][w]" if body.channels_first else "channels last"
    w.line(f"    /* the image, {layout}{', divided by ' + str(body.divide) if body.divide else ''}"
           f"{', quantized' if body.int8 else ''} */")  # fmt: skip
    w.line(loop("i", h * wd * c, f"rlb_arena[i] = {value};"))


def _layer(w: CWriter, la: Conv, k: int, x: str, y: str, shape: tuple[int, int, int],
           out: tuple[int, int, int], int8: bool) -> str:  # fmt: skip
    """The call of layer ``k`` (and its constants)."""
    (h, wd, c), (oh, ow, co) = shape, out
    geometry = [h, wd, c, oh, ow, co, *la.kernel, *la.stride, *la.padding]
    g = w.const(f"rlb_g{k}", geometry, "int32_t",
                f"conv layer {k} ({la.op}): h, w, c_in, out_h, out_w, c_out, kh, kw, "
                "stride_h, stride_w, pad_h, pad_w")  # fmt: skip
    pool = la.op in POOL_OPS
    flags: dict[str, str | int] = {"RLB_POOL": int(pool),
                                   "RLB_DEPTHWISE": int(la.op == "depthwise"),
                                   "RLB_AVG": int(la.op == "avgpool")}  # fmt: skip
    note = f"/* {la.op} {la.kernel[0]}x{la.kernel[1]}/{la.stride[0]}"
    q = la.q
    if pool:
        kind = "int8" if int8 else "f32"
        name = f"rlb_{KERNEL_NAMES[la.op]}_{kind}"
        w.helper(name, instance(f"conv_{'int8' if int8 else 'float'}.c", **flags,
                                **{f"rlb_conv_{kind}": name}))  # fmt: skip
        return f"    {name}({x}, {y}, {g}); {note} */"
    if q is None:
        assert la.W is not None and la.b is not None
        name = f"rlb_{KERNEL_NAMES[la.op]}_f32"
        w.helper(name, instance("conv_float.c", **flags, rlb_conv_f32=name))
        weights = la.W.T if la.op == "conv2d" else la.W
        w.array(f"rlb_cw{k}", weights.astype(np.float32), f"conv layer {k}: W, float32")
        w.array(f"rlb_cb{k}", la.b.astype(np.float32), f"conv layer {k}: b")
        relu = int(la.activation == "relu")
        return f"    {name}({x}, {y}, rlb_cw{k}, rlb_cb{k}, {g}, {relu}); {note} {la.activation} */"
    high_word = q.requantize == "high_word"
    suffix = ("_b16" if q.b.dtype == np.int16 else "") + ("_hw" if high_word else "")
    name = f"rlb_{KERNEL_NAMES[la.op]}_int8{suffix}"
    w.helper(name, instance("conv_int8.c", **flags, RLB_BIAS=CTYPES[str(q.b.dtype)],
                            RLB_REQUANTIZE="rlb_rhm" if high_word else "rlb_mbqm",
                            rlb_conv_int8=name))  # fmt: skip
    weights = q.W.T if la.op == "conv2d" else q.W
    w.array(f"rlb_cw{k}", weights, f"conv layer {k}: int8 W")
    w.array(f"rlb_cb{k}", q.b, f"conv layer {k}: {q.b.dtype} bias")
    w.array(f"rlb_cm{k}", q.multiplier.astype(np.int32), f"conv layer {k}: multipliers (Q0.31)")
    w.array(f"rlb_cs{k}", q.shift.astype(np.int8), f"conv layer {k}: shifts")
    ch = int(q.multiplier.size > 1)
    return (f"    {name}({x}, {y}, rlb_cw{k}, rlb_cb{k}, rlb_cm{k}, rlb_cs{k}, {ch}, {g}, "
            f"{q.input_zero_point}, {q.output_zero_point}, {q.clamp_low}); {note} "
            f"{q.activation} */")  # fmt: skip
