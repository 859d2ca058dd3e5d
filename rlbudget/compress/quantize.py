"""int8 post-training quantization of MLP policies, the way TFLite Micro runs them.

:func:`quantize_int8` turns an ``mlp`` body into an ``mlp_int8`` body
(:class:`~rlbudget.policy.model.QuantizedMLP`):

- **weights**: int8, symmetric (zero point 0), with one scale for the layer
  (``w_scale = max |W| / 127``), or (``per_channel``) one per output channel as TFLite
  (``w_scale[j] = max |W[:, j]| / 127``); ``W_q = round(W / w_scale)`` in [-127, 127]. One
  scale per layer also means one multiplier and shift, so the deployed constants are a few
  scalars instead of 9 bytes per output channel (for a 64-64 net, 1.1 KB next to 4.5 KB of
  weights);
- **bias**: in units of ``input_scale × w_scale[j]``, stored as int16 when every value fits
  (the usual case; half the bytes of TFLite's int32), else int32;
- **activations**: int8 with a scale and zero point per tensor, calibrated from the
  min/max of each layer's float activations on the calibration observations (after the
  float preprocess), widened to include 0: ``scale = (max - min) / 255``,
  ``zero_point = round(-128 - min / scale)``. The body input is calibrated the same way;
- **requantization**: ``input_scale × w_scale[j] / output_scale`` as an int32 multiplier
  and a shift (TFLite's ``QuantizeMultiplier``), applied with gemmlowp's
  ``SaturatingRoundingDoublingHighMul`` and ``RoundingDivideByPOT``, or, where every
  shift is ≤ -2 (a multiplier below 1/4, the usual case), with one rounding of the
  product's high word (:func:`~rlbudget.policy.model.rounded_high_mul`, ``requantize``
  "high_word": as exact, fewer instructions in C). The two rules give results one step
  apart on about one activation in ``2**(1 - shift)``; TFLite Micro rounds twice, so
  ``requantize="tflite"`` (``rlbudget compress -m int8 --requantize tflite``) keeps every
  layer on the two roundings, the policy ``export --format tflite`` matches bit for bit
  there; :func:`tflite_rounding` moves an int8 policy onto that rule afterwards;
- **relu** is the clamp's lower bound (the output zero point); **tanh** and **sigmoid** go
  through a 256-entry int8 table. A tanh layer's output and its table's output are
  quantized symmetrically (zero point 0), so its table is odd and is stored and exported
  as its 128 entries for the inputs 0..127 (:func:`~rlbudget.policy.model.odd_half`;
  input -128 reads as -127, where tanh is saturated). Its input range is calibrated on the
  pre-activation values clipped to ±4 (tanh) and ±8 (sigmoid): beyond that the output is
  saturated at int8 resolution, so the wider range would only cost precision. Its output range is
  calibrated on the activations seen (``lut_output``), where TFLite fixes it at (1/128, 0)
  and (1/256, -128): a trained PPO CartPole's hidden tanh units stay within ±0.4, and
  TFLite's fixed scale would give them ≈ 100 of the 256 levels. By default every tanh
  layer uses the union of the tanh layers' ranges, so they share one table, stored and
  exported once (``shared_table``). That table is by default the linear interpolation of
  tanh at 17 knots, the inputs 0, 8, …, 128 (``tanh_knots``, :mod:`rlbudget.policy.knots`):
  17 bytes stored and exported, a few integer operations in C, and within one step of
  the exact table at every input (else the exact table is kept).

Two choices go beyond TFLite's converter, both because a policy's action is decided by
small differences:

- **per-feature input range**: one int8 scale for the whole observation gives a feature
  with a small range (CartPole's pole angle, ±0.2, next to velocities of ±3) a handful of
  levels. When the body reads the raw Box observation, a float ``normalize`` step is put in
  front of it (``(x - center) / half_range`` per feature, from the calibration min/max; its
  ``clip`` at 4 half-ranges) and folded exactly into the first layer's float weights
  (``W' = half_range[:, None] * W``, ``b' = b + center @ W``) before they are quantized, so
  every feature spans the int8 input range, quantized symmetrically (±1 as ±127, zero
  point 0: the first layer subtracts no zero point, and its C call passes a constant 0
  like the tanh layers'). The range is the central 99 % of the
  calibration values (percentiles 0.5 and 99.5, :data:`INPUT_PERCENTILE`); the rarer ones
  saturate. On the Zoo's PPO CartPole this raised agreement from 96.6 % to 97.2 %. A body
  behind VecNormalize already sees standardized features and is left as it is.
- **bias correction**: after each layer is quantized, the int8 path is run on the
  calibration observations and the mean error of that layer's accumulator against the
  float pre-activation is folded into its int32 bias (empirical bias correction, Nagel et
  al. 2019, "Data-Free Quantization"). It removes the systematic part of the error the
  layers before have added. The Zoo's DQN CartPole (Q-values ≈ 100 that differ by ≈ 0.1)
  went from 51 % agreement and a return of 12 to 78 % and ≈ 300 with it: still a failing
  int8 policy (distill it first), but no longer a random one.
- **float last layer** (argmax, clip and identity heads): the last layer's int32
  accumulators are dequantized per channel (``float_output``) instead of requantized to 256
  levels, which would tie or swap Q-values and logits that differ by much less than their
  range. A ``tanh_rescale`` head keeps the int8 output and its exact 256-entry table (no
  libm on the device).

The numpy int8 path (:meth:`QuantizedMLP.apply`) is integer-only from the input
quantization to the output dequantization, and is the reference the C export matches bit
for bit. Heads: ``argmax`` works on the int8 output; ``clip``/``tanh_rescale`` get the
dequantized float32 output.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from rlbudget.compress import with_transform
from rlbudget.errors import PolicyError
from rlbudget.policy.kernels import activate, affine
from rlbudget.policy.knots import KNOT_STEP, knot_table
from rlbudget.policy.knots import tanh_knots as tanh_knots_of
from rlbudget.policy.model import (
    INT32_MAX,
    LUT_OUTPUT,
    MLP,
    Array,
    Dense,
    Normalize,
    Policy,
    Preprocess,
    QDense,
    QuantizedMLP,
    quantize_input,
)

NORMALIZE_CLIP = 4.0  # clip of the folded input normalization, in calibrated half-ranges
INPUT_PERCENTILE = 0.5
"""The folded input range of each feature: its calibration values from this percentile to
``100 -`` it (the rarer values beyond saturate at the int8 range's ends)."""

SATURATION = {"tanh": 4.0, "sigmoid": 8.0}
"""Pre-activation magnitude beyond which the int8 table's output no longer changes."""

INT16_MAX = 2**15 - 1
REQUANTIZE_RULES = ("auto", "tflite")
"""``quantize_int8``'s ``requantize``: ``auto`` (one rounding where every shift is ≤ -2,
else two) or ``tflite`` (two roundings everywhere: TFLite Micro's)."""


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real ≈ multiplier × 2**(shift - 31)``.

    ``multiplier`` is in [2**30, 2**31) (Q0.31), or 0 when ``real`` is 0 or below 2**-32;
    a shift above 30 (``real`` ≥ 2**30, a degenerate layer) saturates.

    >>> quantize_multiplier(0.5)
    (1073741824, 0)
    >>> quantize_multiplier(0.75)
    (1610612736, 0)
    >>> quantize_multiplier(3.0)
    (1610612736, 2)
    """
    if real <= 0.0:
        return 0, 0
    q, shift = math.frexp(real)  # real = q × 2**shift, q in [0.5, 1)
    q_fixed = math.floor(q * (1 << 31) + 0.5)  # std::round: half away from zero (q > 0)
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return INT32_MAX, 30
    return q_fixed, shift


def activation_params(low: float, high: float) -> tuple[float, int]:
    """int8 (scale, zero point) covering [low, high] widened to include 0.

    >>> activation_params(0.0, 2.55)
    (0.009999999776482582, -128)
    >>> activation_params(-1.0, 1.0)
    (0.007843137718737125, 0)
    """
    low, high = min(low, 0.0), max(high, 0.0)
    scale = float(np.float32(max((high - low) / 255.0, 1e-8)))
    zero_point = math.floor(-128.0 - low / scale + 0.5)
    return scale, int(np.clip(zero_point, -128, 127))


def _lut(
    activation: str, scale: float, zero_point: int, output: tuple[float, int] | None = None
) -> Array:
    """int8 → int8 table of ``activation`` for inputs (scale, zero_point) and outputs
    ``output`` (scale, zero point; None: TFLite's fixed :data:`LUT_OUTPUT`)."""
    x = scale * (np.arange(-128, 128, dtype=np.float64) - zero_point)
    y = np.tanh(x) if activation == "tanh" else 1.0 / (1.0 + np.exp(-x))
    out_scale, out_zp = output or LUT_OUTPUT[activation]
    out_scale = float(np.float32(out_scale))  # the scale the next layer reads
    v = y / out_scale
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) + out_zp
    out: Array = np.clip(q, -128, 127).astype(np.int8)
    if activation == "tanh" and zero_point == 0 and out_zp == 0:
        out[0] = -out[255]  # input -128 as -127: the table is odd, stored as its half
    return out


def _knot_lut(exact: Array, scale: float, out_scale: float) -> Array:
    """The odd tanh table ``exact`` (inputs of ``scale``, outputs of ``out_scale``, zero
    points 0) as :func:`~rlbudget.policy.knots.knot_table` of tanh's values at the knots,
    when that stays within one step of ``exact`` at every input; else ``exact``."""
    x = np.float64(scale) * np.arange(0, 129, KNOT_STEP)
    v = np.tanh(x) / float(np.float32(out_scale))
    table = knot_table(np.clip(np.floor(v + 0.5), 0, 127).astype(np.int8))
    close = np.abs(table.astype(np.int16) - exact.astype(np.int16)).max() <= 1
    return table if close else exact


def _symmetric(r: tuple[float, float]) -> tuple[float, int]:
    """int8 (scale, zero point 0) covering [-t, t], t = the larger magnitude of ``r``."""
    top = max(abs(r[0]), abs(r[1]))
    return float(np.float32(max(top / 127.0, 1e-8))), 0


def _range(values: Array, activation: str) -> tuple[float, float]:
    limit = SATURATION.get(activation, np.inf)
    return float(max(values.min(), -limit)), float(min(values.max(), limit))


def quantize_layer(
    W: Array,
    b: Array,
    activation: str,
    input_quant: tuple[float, int],
    out_range: tuple[float, float],
    float_output: bool = False,
    lut_range: tuple[float, float] | None = None,
    per_channel: bool = False,
    knots: bool = False,
    requantize: str = "auto",
) -> QDense:
    """One float dense layer → :class:`QDense`, given its input and output quantization
    (``lut_range``: the range of the tanh / sigmoid outputs, which sets the table's;
    ``per_channel``: a weight scale per output channel, else one for the layer; ``knots``:
    a tanh table interpolated between 17 knots where it stays within one step of the
    exact one, :func:`_knot_lut`; ``requantize``: :data:`REQUANTIZE_RULES`)."""
    in_scale, in_zp = input_quant
    top = np.abs(W.astype(np.float64)).max(axis=0)
    if not per_channel:
        top = top.max(keepdims=True)
    w_scale = np.where(top > 0, top / 127.0, 1.0).astype(np.float32)
    w_q = np.clip(np.rint(W / w_scale), -127, 127).astype(np.int8)
    bias_scale = in_scale * w_scale.astype(np.float64)
    headroom = INT32_MAX - 255 * 128 * W.shape[0]  # the io loader's accumulator bound
    b_q = np.clip(np.rint(b.astype(np.float64) / bias_scale), -headroom, headroom)
    out_scale, out_zp = activation_params(*out_range)
    lut_output = activation_params(*lut_range) if lut_range and activation in LUT_OUTPUT else None
    if activation == "tanh":  # symmetric in and out: an odd table, half of it stored
        out_scale, out_zp = _symmetric(out_range)
        lut_output = _symmetric(lut_range) if lut_range else None
    pairs = [quantize_multiplier(float(s) / out_scale) for s in bias_scale]
    multiplier = np.array([m for m, _ in pairs], dtype=np.int32)
    shift = np.array([s for _, s in pairs], dtype=np.int8)  # in [-31, 30]
    lut = None
    if activation in LUT_OUTPUT:
        lut = _lut(activation, out_scale, out_zp, lut_output)
        if activation == "tanh" and knots:
            lut = _knot_lut(lut, out_scale, (lut_output or LUT_OUTPUT["tanh"])[0])
    high_word = (requantize == "auto" and not float_output
                 and int(shift.max()) <= -2)  # fmt: skip  # see rounded_high_mul
    return QDense(w_q, _narrow(b_q), w_scale, multiplier, shift, in_scale, in_zp,
                  out_scale, out_zp, activation, lut, float_output, lut_output,
                  "high_word" if high_word else "tflite")  # fmt: skip


def quantize_int8(
    policy: Policy,
    calibration_obs: np.ndarray,
    per_channel: bool = False,
    shared_table: bool = True,
    tanh_knots: bool = True,
    requantize: str = "auto",
) -> Policy:
    """The policy with its ``mlp`` body quantized to int8 (see the module docstring).

    :param policy: a policy with an ``mlp`` body (any preprocess and head).
    :param calibration_obs: a batch of observations, ideally visited by the policy in its
        env; they set each activation's range.
    :param per_channel: a weight scale per output channel in every layer (TFLite's
        default), else one per layer (fewer bytes; ``rlbudget compress -m int8`` keeps it
        unless it costs action agreement, see
        :data:`~rlbudget.compress.pipeline.PER_TENSOR_AGREEMENT_SLACK`).
    :param shared_table: one tanh table for every tanh layer (their input and output
        ranges widened to the union of theirs; a table less per further tanh layer), else
        one per layer, each on its own range (``rlbudget compress -m int8`` keeps the
        shared one unless it costs action agreement, as for ``per_channel``).
    :param tanh_knots: a tanh table that is the linear interpolation of 17 knots (17 B
        stored and exported instead of 128; within one step of the exact table, else the
        exact table).
    :param requantize: ``auto``: one rounding (``high_word``) on the layers where it is
        exact, two elsewhere; ``tflite``: two roundings on every layer, as TFLite Micro
        (the bias correction then runs on that rule too).
    :returns: a new policy with an ``mlp_int8`` body and the transform in its provenance
        (method ``int8``, ``calibration_observations``, bytes before and after; ``requantize``
        when ``tflite``).
    :raises PolicyError: not an ``mlp`` body, no usable calibration observations, or an
        unknown ``requantize``.
    """
    if requantize not in REQUANTIZE_RULES:
        raise PolicyError(f"int8: unknown requantize rule '{requantize}'; use "
                          f"{' or '.join(REQUANTIZE_RULES)}")  # fmt: skip
    body = policy.body
    if not isinstance(body, MLP):
        raise PolicyError(
            f"int8 quantization applies to an mlp body; this policy has a {body.kind} body"
            + (" (use quantize_linear for a linear body)" if body.kind == "linear" else "")
            + (" (use rlbudget.compress.quantize_conv.quantize_cnn)" if body.kind == "cnn" else "")
        )
    obs = np.asarray(calibration_obs)
    obs_ndim = len(policy.observation_space.shape)
    if (obs.ndim != obs_ndim + 1 or len(obs) == 0
            or tuple(obs.shape[1:]) != tuple(policy.observation_space.shape)):  # fmt: skip
        raise PolicyError(
            f"int8 calibration: expected a non-empty batch of observations of shape "
            f"[N, {', '.join(map(str, policy.observation_space.shape))}], got shape "
            f"{list(obs.shape)}"
        )
    if np.issubdtype(obs.dtype, np.floating) and not np.all(np.isfinite(obs)):
        raise PolicyError("int8 calibration: the observations contain NaN or inf; drop them")
    preprocess, dense_layers = policy.preprocess, body.layers
    x = obs
    for step in preprocess:
        x = step.apply(x)
    x = np.asarray(x, dtype=np.float32)
    folded = not preprocess and policy.observation_space.kind == "box"
    if folded:
        norm, dense_layers = _fold_input_range(x, dense_layers)
        preprocess, x = (norm,), norm.apply(x)
    # folded: every feature's calibrated range is [-1, 1]; rarer values saturate
    low, high = (-1.0, 1.0) if folded else (float(x.min()), float(x.max()))
    quant = _symmetric((low, high)) if folded else activation_params(low, high)
    float_last = policy.head.kind != "tanh_rescale" and dense_layers[-1].activation == "identity"
    ranges = float_ranges(x, dense_layers)
    shared = shared_table and sum(d.activation == "tanh" for d in dense_layers) > 1
    if shared:
        ranges = _share_tanh_ranges(ranges, dense_layers)
    layers: list[QDense] = []
    xq = quantize_input(x, *quant)  # what the int8 path sees, to correct its bias against
    for i, dense in enumerate(dense_layers):
        z = affine(x, dense.W, dense.b)
        a = activate(z, dense.activation)
        layer = quantize_layer(dense.W, dense.b, dense.activation, quant, ranges[i][0],
                                float_last and i == len(dense_layers) - 1,
                                ranges[i][1], per_channel, tanh_knots,
                                requantize)  # fmt: skip
        layer = _correct_bias(layer, xq, z)
        layers.append(layer)
        quant, x, xq = layer.out_quant, a, layer.apply(xq)
    knotted = any(la.lut is not None and tanh_knots_of(la.lut) is not None for la in layers)
    child = Policy(policy.observation_space, policy.action_space, preprocess,
                   QuantizedMLP(tuple(layers)), policy.head)  # fmt: skip
    rule = {"requantize": requantize} if requantize != "auto" else {}
    return with_transform(policy, child, "int8", calibration_observations=len(obs),
                          input_normalization=folded, float_output=float_last,
                          **({"shared_table": True} if shared else {}),
                          **({"tanh_knots": True} if knotted else {}), **rule)  # fmt: skip


def tflite_rounding(policy: Policy) -> Policy:
    """``policy`` with every int8 layer on the ``"tflite"`` requantization rule (two
    roundings; the same multipliers, shifts and biases): the policy whose numpy int8 path
    ``export --format tflite`` matches bit for bit in TFLite Micro, with a
    ``tflite-rounding`` transform in its provenance. Any other policy (a float one, or one
    on that rule already) is returned as it is. Its actions can differ from ``policy``'s
    (one int8 step on about one activation in ``2**(1 - shift)``): score it again
    (``rlbudget compress POLICY -m tflite-rounding -o OUT`` does).

    >>> from rlbudget.policy import load_policy, save_policy  # doctest: +SKIP
    >>> save_policy(tflite_rounding(load_policy("int8")), "int8-tflm")  # doctest: +SKIP
    """
    body = policy.body
    if not isinstance(body, QuantizedMLP) or all(la.requantize == "tflite" for la in body.layers):
        return policy
    moved = [i for i, la in enumerate(body.layers) if la.requantize != "tflite"]
    layers = tuple(dataclasses.replace(la, requantize="tflite") for la in body.layers)
    child = dataclasses.replace(policy, body=QuantizedMLP(layers))
    return with_transform(policy, child, "tflite-rounding", requantize="tflite", layers=moved)


Ranges = list[tuple[tuple[float, float], tuple[float, float]]]


def float_ranges(x: Array, layers: tuple[Dense, ...]) -> Ranges:
    """Per layer, the calibrated range of what its int8 output quantizes (the
    pre-activation, clipped where the table saturates; relu's output, folded into the
    clamp) and of its activation (a tanh / sigmoid table's output)."""
    out = []
    for dense in layers:
        z = affine(x, dense.W, dense.b)
        x = activate(z, dense.activation)
        seen = x if dense.activation == "relu" else z  # relu folds into the output clamp
        out.append((_range(seen, dense.activation), (float(x.min()), float(x.max()))))
    return out


def _share_tanh_ranges(ranges: Ranges, layers: tuple[Dense, ...]) -> Ranges:
    """``ranges`` with every tanh layer's widened to the union of all tanh layers' (each
    symmetric): their tables then have the same input and output scales, so they are the
    same table, stored and exported once (a table less per further tanh layer: 17 B as
    knots, 128 B as an odd half)."""
    tanh = [i for i, d in enumerate(layers) if d.activation == "tanh"]
    top_in = max(max(abs(v) for v in ranges[i][0]) for i in tanh)
    top_out = max(max(abs(v) for v in ranges[i][1]) for i in tanh)
    shared = ((-top_in, top_in), (-top_out, top_out))
    return [shared if i in tanh else r for i, r in enumerate(ranges)]


def _correct_bias(layer: QDense, xq: Array, z: Array) -> QDense:
    """``layer`` with its int32 bias shifted by the mean error of its accumulator (the
    dequantized pre-activation of the int8 path, fed the int8 path's own input ``xq``)
    against the float pre-activation ``z``: empirical bias correction (Nagel et al., 2019),
    which removes the systematic part of the error this and the earlier layers add."""
    acc = (xq.astype(np.int64) - layer.input_zero_point) @ layer.W.astype(np.int64)
    return correct_bias(layer, acc + layer.b.astype(np.int64), z)


def correct_bias(layer: QDense, acc: Array, z: Array) -> QDense:
    """:func:`_correct_bias` given the int8 path's accumulators ``acc`` (bias included,
    [rows, outputs]) and the float pre-activations ``z`` of the same rows (a convolution's
    rows are its output pixels, :mod:`rlbudget.compress.quantize_conv`)."""
    bias_scale = np.float64(layer.input_scale) * layer.w_scale.astype(np.float64)
    error = (z.astype(np.float64) - acc * bias_scale).mean(axis=0)
    headroom = INT32_MAX - 255 * 128 * layer.W.shape[0]
    b = np.clip(layer.b.astype(np.int64) + np.rint(error / bias_scale), -headroom, headroom)
    return dataclasses.replace(layer, b=_narrow(b))


def _narrow(b: Array) -> Array:
    """The int32 bias as int16 when every value fits (half the bytes; the same integers)."""
    out: Array = b.astype(np.int16 if np.abs(b).max(initial=0) <= INT16_MAX else np.int32)
    return out


def _fold_input_range(x: Array, layers: tuple[Dense, ...]) -> tuple[Preprocess, tuple[Dense, ...]]:
    """A ``normalize`` step mapping each feature's calibrated [min, max] to [-1, 1], and the
    layers with its inverse folded into the first one: the float function is unchanged (up
    to float32 rounding) for inputs within ±NORMALIZE_CLIP half-ranges of the center."""
    low = np.percentile(x, INPUT_PERCENTILE, axis=0).astype(np.float64)
    high = np.percentile(x, 100 - INPUT_PERCENTILE, axis=0).astype(np.float64)
    center = (low + high) / 2
    half = np.where(high > low, (high - low) / 2, 1.0)
    norm = Normalize(center.astype(np.float32), (half**2).astype(np.float32),
                     clip=NORMALIZE_CLIP, eps=0.0)  # fmt: skip
    std = np.sqrt(norm.var).astype(np.float64)  # what Normalize divides by (float32 sqrt)
    first = layers[0]
    W = first.W.astype(np.float64)
    folded = Dense((std[:, None] * W).astype(np.float32),
                   (first.b + norm.mean.astype(np.float64) @ W).astype(np.float32),
                   first.activation)  # fmt: skip
    return norm, (folded, *layers[1:])
