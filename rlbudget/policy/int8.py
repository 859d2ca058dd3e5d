"""int8 layers computed with integers only, as TFLite Micro (gemmlowp's fixed point).

:class:`QuantizedMLP` is the ``mlp_int8`` body of :class:`~rlbudget.policy.model.Policy`;
the functions are the integer arithmetic it and the C export share, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlbudget.policy.kernels import (
    Array,
    Document,
    float32_fields,
    stored_weight_count,
    stored_weights,
)
from rlbudget.policy.knots import odd_half as odd_half
from rlbudget.policy.knots import odd_table as odd_table
from rlbudget.policy.knots import tanh_knots

PER_TENSOR_SCALARS = ("w_scale", "multiplier", "shift")
"""A layer with one weight scale stores these as JSON numbers instead of arrays."""

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
LUT_OUTPUT = {"tanh": (1.0 / 128, 0), "sigmoid": (1.0 / 256, -128)}
"""Output (scale, zero point) of an int8 tanh / sigmoid lookup table, as TFLite fixes them."""


def saturating_rounding_doubling_high_mul(a: Array, b: Array) -> Array:
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` on int32 values held in int64.

    ``(a * b + nudge) / 2**31`` with C's truncating division; the nudge is ``2**30`` for a
    non-negative product and ``1 - 2**30`` for a negative one.
    """
    ab = a.astype(np.int64) * b.astype(np.int64)
    t = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(t >= 0, t >> 31, -((-t) >> 31))  # truncates toward zero, as C's '/'
    out: Array = np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)
    return out


def rounding_divide_by_pot(x: Array, exponent: Array) -> Array:
    """gemmlowp's ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded half away from zero."""
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    out: Array = (x >> exponent) + (remainder > threshold)
    return out


def multiply_by_quantized_multiplier(x: Array, multiplier: Array, shift: Array) -> Array:
    """TFLite's ``MultiplyByQuantizedMultiplier``: ``x * multiplier * 2**(shift - 31)``, rounded.

    A left shift (``shift > 0``) saturates to int32 here and in the C export (TFLite leaves
    the overflow undefined).
    """
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = np.clip(x.astype(np.int64) << left, INT32_MIN, INT32_MAX)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def rounded_high_mul(x: Array, multiplier: Array, shift: Array) -> Array:
    """``x * multiplier * 2**(shift - 31)`` rounded half up, for ``shift ≤ -2``: the high
    word of the int64 product (``floor(x·m / 2**32)``), then ``k = -1 - shift`` more bits
    with one rounding: ``(high + 2**(k - 1)) >> k``. One rounding instead of TFLite's two
    (:func:`multiply_by_quantized_multiplier`) and no 64-bit shift, so fewer instructions
    in C (on Cortex-M: the high word of one ``smull``)."""
    k = -1 - shift.astype(np.int64)
    high = (x.astype(np.int64) * multiplier.astype(np.int64)) >> 32
    out: Array = (high + (np.int64(1) << (k - 1))) >> k
    return out


REQUANTIZE = ("tflite", "high_word")
"""How a :class:`QDense` requantizes: TFLite's :func:`multiply_by_quantized_multiplier`, or
:func:`rounded_high_mul` (every shift ≤ -2)."""


def quantize_input(x: Array, scale: float, zero_point: int) -> Array:
    """Float32 values → int8: ``clamp(round(x / scale) + zero_point, -128, 127)``.

    ``x / scale`` is one float32 division; it is clamped to ±512 (NaN → -512) before the
    rounding, half away from zero (C's ``lroundf``). The C export does exactly this.
    """
    v = x.astype(np.float32) / np.float32(scale)
    v = np.minimum(np.where(v >= -512, v, np.float32(-512)), np.float32(512)).astype(np.float64)
    rounded = np.sign(v) * np.floor(np.abs(v) + 0.5)
    out: Array = np.clip(rounded + zero_point, -128, 127).astype(np.int8)
    return out


def dequantize(q: Array, scale: float, zero_point: int) -> Array:
    """int8 → float32: ``(q - zero_point) * scale`` in float32 (strictly increasing in q)."""
    out: Array = (q.astype(np.int32) - zero_point).astype(np.float32) * np.float32(scale)
    return out


@dataclass(frozen=True, eq=False)
class QDense:
    """One int8 dense layer, computed as TFLite Micro's per-channel fully connected op.

    ``acc[j] = sum_i (x[i] - input_zero_point) * W[i, j] + b[j]`` (int32), then
    ``y = clamp(multiply_by_quantized_multiplier(acc, multiplier[j], shift[j])
    + output_zero_point, lo, 127)`` (``requantize`` "high_word": :func:`rounded_high_mul`)
    with ``lo = output_zero_point`` for relu (folded into the clamp) and -128 otherwise;
    tanh / sigmoid then map ``y`` through ``lut[y + 128]``.

    ``W`` holds symmetric per-output-channel weights (``W_float ≈ W * w_scale[j]``), ``b`` the
    bias in units of ``input_scale * w_scale[j]``; ``multiplier``/``shift`` encode
    ``input_scale * w_scale[j] / output_scale``. ``output_scale``/``output_zero_point``
    describe the dense output (before a lookup table); :attr:`out_quant` is what the next
    layer receives: for tanh / sigmoid, the table's output ``lut_output`` (scale, zero
    point), calibrated on the activations seen; a policy written before that field
    existed has TFLite's fixed ones (:data:`LUT_OUTPUT`).

    ``float_output`` (the last layer of a policy whose head reads floats: argmax, clip,
    identity): no requantization to int8; the int32 accumulator is dequantized per channel,
    ``float32(acc[j]) * dequant_scale[j]`` with ``dequant_scale = float32(input_scale) *
    w_scale`` (float32), so the head sees every step of the accumulator, not 256 levels.
    ``multiplier``/``shift``/``output_*`` are then unused. An 8-bit output can flip an
    argmax between near-equal action values (Q-values differ by far less than their range).
    """

    W: Array
    b: Array
    w_scale: Array
    multiplier: Array
    shift: Array
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    activation: str = "identity"
    lut: Array | None = None
    float_output: bool = False
    lut_output: tuple[float, int] | None = None
    requantize: str = "tflite"

    def __post_init__(self) -> None:
        float32_fields(self, "w_scale")
        object.__setattr__(self, "input_scale", float(np.float32(self.input_scale)))
        object.__setattr__(self, "output_scale", float(np.float32(self.output_scale)))
        if self.lut_output is not None:
            scale, zp = self.lut_output
            object.__setattr__(self, "lut_output", (float(np.float32(scale)), int(zp)))

    @property
    def dequant_scale(self) -> Array:
        """Per-channel float32 scale of the int32 accumulator (``float_output``)."""
        out: Array = np.float32(self.input_scale) * self.w_scale
        return out

    @property
    def out_quant(self) -> tuple[float, int]:
        """(scale, zero point) of the layer's int8 output, after any lookup table."""
        if self.activation in LUT_OUTPUT:
            scale, zp = self.lut_output or LUT_OUTPUT[self.activation]
            return float(np.float32(scale)), zp
        return self.output_scale, self.output_zero_point

    @property
    def clamp_low(self) -> int:
        return max(-128, self.output_zero_point) if self.activation == "relu" else -128

    def apply(self, x: Array) -> Array:
        """int8 [batch, in] → int8 [batch, out] (float32 with ``float_output``); int64
        arithmetic emulates C's int32 exactly."""
        acc = (x.astype(np.int64) - self.input_zero_point) @ self.W.astype(np.int64)
        return self.output(acc + self.b.astype(np.int64))

    def output(self, acc: Array) -> Array:
        """The int32 accumulators (bias included, held in int64) → the layer's output: int8
        after requantization, clamp and lookup table, or float32 with ``float_output``. A
        convolution (:mod:`rlbudget.policy.conv`) ends the same way."""
        if self.float_output:
            dequantized: Array = acc.astype(np.float32) * self.dequant_scale
            return dequantized
        requantize = (rounded_high_mul if self.requantize == "high_word"
                      else multiply_by_quantized_multiplier)  # fmt: skip
        y = requantize(acc, self.multiplier.astype(np.int64), self.shift.astype(np.int64))
        y = np.clip(y + self.output_zero_point, self.clamp_low, 127)
        out: Array = y.astype(np.int8) if self.lut is None else self.lut[y + 128]
        return out

    def stored_lut(self) -> Array | None:
        """The lookup table as stored: an odd tanh table as its 17 knots
        (:func:`~rlbudget.policy.knots.tanh_knots`) or else its upper half (128 entries)."""
        if self.lut is None or self.activation != "tanh":
            return self.lut
        knots, half = tanh_knots(self.lut), odd_half(self.lut)
        return knots if knots is not None else self.lut if half is None else half


@dataclass(frozen=True, eq=False)
class QuantizedMLP:
    """An int8 MLP: float input quantized with the first layer's input scale, int8 layers,
    the last layer's int8 output dequantized to float32 for the head.

    With an int8 last layer, ``argmax`` of the dequantized output equals ``argmax`` of the
    int8 output (dequantizing is strictly increasing); a ``float_output`` last layer hands
    the head float32 values, as the C export does.
    """

    layers: tuple[QDense, ...]
    kind: str = field(default="mlp_int8", init=False)

    def apply_int(self, x: Array) -> Array:
        """Float32 body input → the last layer's output: int8, or float32 with
        ``float_output`` (dequantized int32 accumulators)."""
        first = self.layers[0]
        return self.run_int(quantize_input(x, first.input_scale, first.input_zero_point))

    def run_int(self, q: Array) -> Array:
        """int8 body input (the first layer's input quantization) → as :meth:`apply_int`."""
        for layer in self.layers:
            q = layer.apply(q)
        return q

    def apply(self, x: Array) -> Array:
        return self.finish(self.apply_int(x))

    def finish(self, y: Array) -> Array:
        """The last layer's output (:meth:`apply_int`) → the float32 values the head reads."""
        if self.layers[-1].float_output:
            return y
        return dequantize(y, *self.layers[-1].out_quant)

    @property
    def parameters(self) -> int:
        """Weights (stored ones, for a CSR layer) and biases; quantization constants not."""
        return sum(stored_weight_count(la.W) + int(la.b.size) for la in self.layers)

    def macs(self) -> int:
        """Multiply-accumulates per decision: every weight (the int8 kernels run dense)."""
        return sum(int(la.W.size) for la in self.layers)

    def document(self, prefix: str) -> Document:
        """The body's ``policy.json`` entry and arrays (``<prefix>.<layer>.<name>``). A
        layer with one weight scale holds its constants as JSON numbers; a lookup table
        equal to an earlier layer's is stored once and named by both."""
        arrays: dict[str, Array] = {}
        tables: dict[bytes, str] = {}
        layers = []
        for i, q in enumerate(self.layers):
            W, w_arrays = stored_weights(f"{prefix}.{i}.W", q.W)
            arrays.update(w_arrays)
            refs: dict[str, Any] = {}
            per_tensor = q.w_scale.size == 1
            for name in ("b", *(() if per_tensor else PER_TENSOR_SCALARS)):
                refs[name] = f"{prefix}.{i}.{name}"
                arrays[refs[name]] = getattr(q, name)
            lut = q.stored_lut()
            if lut is not None:
                refs["lut"] = tables.setdefault(lut.tobytes(), f"{prefix}.{i}.lut")
                arrays.setdefault(refs["lut"], lut)
            if per_tensor:
                refs.update(w_scale=float(q.w_scale[0]), multiplier=int(q.multiplier[0]),
                            shift=int(q.shift[0]))  # fmt: skip
            layers.append({
                "activation": q.activation,
                "input_scale": q.input_scale, "input_zero_point": q.input_zero_point,
                "output_scale": q.output_scale, "output_zero_point": q.output_zero_point,
                "W": W, **refs,
                **({"output": "float32"} if q.float_output else {}),
                **({"requantize": q.requantize} if q.requantize != "tflite" else {}),
                **({"lut_output_scale": q.lut_output[0],
                    "lut_output_zero_point": q.lut_output[1]} if q.lut_output else {}),
            })  # fmt: skip
        return {"kind": self.kind, "layers": layers}, arrays
