"""int8 post-training quantization: fixed-point arithmetic, calibration, save/load, counting."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rlbudget.compress import policy_bytes
from rlbudget.compress.quantize import activation_params, quantize_int8, quantize_multiplier
from rlbudget.envs import env_spec
from rlbudget.errors import PolicyError
from rlbudget.policy import (
    MLP,
    Dense,
    Head,
    Normalize,
    OneHot,
    Policy,
    Table,
    load_policy,
    save_policy,
)
from rlbudget.policy.kernels import activate, affine
from rlbudget.policy.knots import knot_table, tanh_knots
from rlbudget.policy.model import (
    QDense,
    QuantizedMLP,
    dequantize,
    multiply_by_quantized_multiplier,
    odd_table,
    quantize_input,
    rounded_high_mul,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)
from tests.factories import cartpole_obs, cartpole_tanh, pendulum_obs, pendulum_relu, random_mlp

RNG = np.random.default_rng(11)
I32_MIN, I32_MAX = -(2**31), 2**31 - 1


# --- fixed-point primitives against a line-by-line transcription of gemmlowp ---------------


def srdhm_ref(a: int, b: int) -> int:
    if a == b == I32_MIN:
        return I32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    t = ab + nudge
    return -((-t) // (1 << 31)) if t < 0 else t // (1 << 31)  # C's '/' truncates


def rdbpot_ref(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def test_rounding_divide_by_pot_by_hand() -> None:
    # Ties go away from zero, for negative values too; other values to the nearest.
    x = np.array([5, -5, 4, -4, 6, -6, 7, -7, 2, -2, 0])
    assert rounding_divide_by_pot(x, np.int64(1)).tolist() == [3, -3, 2, -2, 3, -3, 4, -4,
                                                               1, -1, 0]  # fmt: skip
    assert rounding_divide_by_pot(np.array([-6, 6, -5, 5]), np.int64(2)).tolist() == [
        -2, 2, -1, 1]  # fmt: skip


def test_srdhm_by_hand() -> None:
    half = 1 << 30  # 0.5 in Q0.31
    a = np.array([3, -3, 1, -1, 5, -5, I32_MIN, I32_MAX])
    # x × 0.5: ties round up (toward +inf) here: 1.5 → 2, -1.5 → -1, 0.5 → 1, -0.5 → 0.
    got = saturating_rounding_doubling_high_mul(a, np.full(8, half))
    assert got.tolist() == [2, -1, 1, 0, 3, -2, -(2**30), 2**30]
    both_min = saturating_rounding_doubling_high_mul(np.array([I32_MIN]), np.array([I32_MIN]))
    assert both_min.tolist() == [I32_MAX]  # the one overflow case saturates


def test_fixed_point_matches_reference_on_random_values() -> None:
    edge = [0, 1, -1, 2, -2, I32_MIN, I32_MAX, I32_MIN + 1, 255, -255]
    a = np.concatenate([edge, RNG.integers(I32_MIN, I32_MAX, 3000, endpoint=True)])
    b = np.concatenate([edge, RNG.integers(0, I32_MAX, 3000, endpoint=True)])
    got = saturating_rounding_doubling_high_mul(a, b)
    assert got.tolist() == [srdhm_ref(int(x), int(y)) for x, y in zip(a, b, strict=True)]
    e = RNG.integers(0, 32, len(a))
    got = rounding_divide_by_pot(a, e)
    assert got.tolist() == [rdbpot_ref(int(x), int(k)) for x, k in zip(a, e, strict=True)]


@pytest.mark.parametrize("real", [0.5, 0.75, 3.0, 1e-3, 0.0123, 0.999999999, 1.0, 2.0**-33])
def test_quantize_multiplier(real: float) -> None:
    m, shift = quantize_multiplier(real)
    if real < 2.0**-32:
        assert (m, shift) == (0, 0)
        return
    assert 2**30 <= m < 2**31 and -31 <= shift <= 30
    assert abs(m * 2.0 ** (shift - 31) - real) <= real * 2.0**-30


def test_multiply_by_quantized_multiplier_rounds_like_float() -> None:
    acc = RNG.integers(-(2**20), 2**20, 5000)
    for real in (0.0123, 0.3, 1.7, 40.0):
        m, shift = quantize_multiplier(real)
        got = multiply_by_quantized_multiplier(acc, np.int64(m), np.int64(shift))
        # Two roundings (high mul, then shift): within one step of the exact product.
        assert np.abs(got - acc * real).max() <= 1.0 + np.abs(acc).max() * real * 2.0**-30
    # A left shift that overflows int32 saturates (to ±2**31 × 0.5) instead of wrapping.
    m, shift = quantize_multiplier(8.0)
    assert (m, shift) == (2**30, 4)
    got = multiply_by_quantized_multiplier(np.array([2**30, -(2**30)]), np.int64(m),
                                           np.int64(shift))  # fmt: skip
    assert got.tolist() == [2**30, -(2**30)]


def test_rounded_high_mul_is_the_rounded_exact_product() -> None:
    """One rounding (half up) of ``acc · m / 2**(31 - shift)``, exactly, for shift ≤ -2 —
    Python's integers as the reference — and within half a step of TFLite's result plus
    one (its two roundings)."""
    from fractions import Fraction

    acc = np.concatenate([RNG.integers(-(2**31), 2**31, 3000), [0, 1, -1, 2**31 - 1, -(2**31)]])
    for real in (0.0123, 0.2, 0.249, 1e-6):
        m, shift = quantize_multiplier(real)
        assert shift <= -2
        got = rounded_high_mul(acc, np.int64(m), np.int64(shift))
        exact = [Fraction(int(a) * m, 2 ** (31 - shift)) for a in acc]
        assert got.tolist() == [math.floor(e + Fraction(1, 2)) for e in exact]
        tflite = multiply_by_quantized_multiplier(acc, np.int64(m), np.int64(shift))
        assert np.abs(got - tflite).max() <= 1


def test_quantize_input_rounds_half_away_and_saturates() -> None:
    x = np.array([0.5, -0.5, 1.5, -1.5, 2.4999, 126.6, -200.0, 1e30, np.nan, -0.0], np.float32)
    assert quantize_input(x, 1.0, 0).tolist() == [1, -1, 2, -2, 2, 127, -128, 127, -128, 0]
    assert quantize_input(np.array([0.0, 0.1]), 0.1, -128).tolist() == [-128, -127]
    q = np.arange(-128, 128)
    deq = dequantize(q, 0.0123, 5)
    assert deq.dtype == np.float32 and np.all(np.diff(deq) > 0)  # argmax-preserving


def test_activation_params() -> None:
    assert activation_params(0.0, 2.55) == (np.float32(0.01), -128)
    scale, zp = activation_params(-1.0, 3.0)
    assert np.isclose(scale, 4 / 255) and zp == -64
    assert activation_params(2.0, 3.0)[1] == -128  # the range always holds 0
    assert activation_params(-3.0, -2.0)[1] == 127


# --- one layer against a scalar transcription of TFLite Micro's fully connected op ----------


def reference_layer(layer: QDense, x: np.ndarray) -> list[int]:
    out = []
    for j in range(layer.W.shape[1]):
        acc = sum((int(v) - layer.input_zero_point) * int(w)
                  for v, w in zip(x, layer.W[:, j], strict=True))  # fmt: skip
        acc += int(layer.b[j])
        k = j if layer.multiplier.size > 1 else 0  # per channel, or one for the layer
        m, s = int(layer.multiplier[k]), int(layer.shift[k])
        if layer.requantize == "high_word":  # the product's high word, one rounding
            k = -1 - s
            acc = ((acc * m >> 32) + (1 << (k - 1))) >> k
        else:
            left, right = max(s, 0), max(-s, 0)
            acc = rdbpot_ref(srdhm_ref(max(I32_MIN, min(I32_MAX, acc << left)), m), right)
        acc = max(layer.clamp_low, min(127, acc + layer.output_zero_point))
        out.append(int(layer.lut[acc + 128]) if layer.lut is not None else acc)
    return out


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("activation", ["identity", "relu", "tanh", "sigmoid"])
def test_layer_matches_scalar_reference(activation: str, per_channel: bool) -> None:
    rng = np.random.default_rng(3)
    s = env_spec("CartPole-v1", measure_steps=0)
    w0, b0 = rng.standard_normal((4, 16)), rng.standard_normal(16)
    w1 = rng.standard_normal((16, 2))
    body = MLP((Dense(w0.astype(np.float32), b0.astype(np.float32), activation),
                Dense(w1.astype(np.float32), np.zeros(2, np.float32))))  # fmt: skip
    p = Policy(s.observation, s.action, (), body, Head("argmax"))
    q = quantize_int8(p, cartpole_obs(500), per_channel=per_channel)
    assert isinstance(q.body, QuantizedMLP)
    first = q.body.layers[0]
    assert first.w_scale.shape == ((16,) if per_channel else (1,))
    x = quantize_input(cartpole_obs(40, seed=1), first.input_scale, first.input_zero_point)
    got = first.apply(x)
    assert got.dtype == np.int8
    for row, out in zip(x, got, strict=True):
        assert out.tolist() == reference_layer(first, row)
    if activation == "relu":  # relu is the clamp: nothing below the output zero point
        assert got.min() >= first.output_zero_point


def test_tanh_and_sigmoid_tables() -> None:
    # The table's output range is calibrated on the activations seen (widened to hold 0),
    # not TFLite's fixed (1/128, 0) / (1/256, -128).
    rng = np.random.default_rng(4)
    for activation in ("tanh", "sigmoid"):
        s = env_spec("CartPole-v1", measure_steps=0)
        w0 = (0.1 * rng.standard_normal((4, 8))).astype(np.float32)  # |z| < 1: tanh within ±0.8
        body = MLP((Dense(w0, np.zeros(8, np.float32), activation),
                    Dense(np.ones((8, 2), np.float32), np.zeros(2, np.float32))))  # fmt: skip
        calib = cartpole_obs(500)
        policy = Policy(s.observation, s.action, (), body, Head("argmax"))
        q = quantize_int8(policy, calib, tanh_knots=False)  # the exact table
        layer = q.body.layers[0]  # type: ignore[union-attr]
        assert layer.lut is not None and layer.lut.dtype == np.int8 and layer.lut.shape == (256,)
        assert np.all(np.diff(layer.lut.astype(int)) >= 0)  # monotone
        seen = body.layers[0].W.T @ calib.T.astype(np.float64)
        seen = np.tanh(seen) if activation == "tanh" else 1 / (1 + np.exp(-seen))
        scale, zp = activation_params(float(seen.min()), float(seen.max()))
        if activation == "tanh":  # symmetric: zero point 0, the table odd and stored as half
            scale, zp = float(np.abs(seen).max()) / 127, 0
            assert layer.output_zero_point == 0
            assert np.array_equal(odd_table(layer.lut[128:]), layer.lut)
            assert q.arrays()["body.0.lut"].shape == (128,)
        assert layer.lut_output is not None and layer.out_quant[1] == zp
        assert np.isclose(layer.out_quant[0], scale, rtol=1e-4)
        assert scale < {"tanh": 1 / 128, "sigmoid": 1 / 256}[activation]  # finer than TFLite
        scale = layer.out_quant[0]
        x = layer.output_scale * (np.arange(-128, 128) - layer.output_zero_point)
        f = np.tanh(x) if activation == "tanh" else 1 / (1 + np.exp(-x))
        representable = np.clip(f, (-128 - zp) * scale, (127 - zp) * scale)  # tanh(+∞) → 127
        error = np.abs((layer.lut.astype(int) - zp) * scale - representable)
        if activation == "tanh":  # input -128 reads as -127 (odd table)
            assert layer.lut[0] == -layer.lut[255]
            error = error[1:]
        assert error.max() <= scale / 2
        assert q.body.layers[1].input_scale == np.float32(scale)  # type: ignore[union-attr]
        if activation == "tanh":  # the default: 17 knots, within one step of the exact table
            k = quantize_int8(policy, calib)
            knotted = k.body.layers[0]  # type: ignore[union-attr]
            assert knotted.out_quant == layer.out_quant and knotted.lut is not None
            assert 0 < np.abs(knotted.lut.astype(int) - layer.lut).max() <= 1
            knots = k.arrays()["body.0.lut"]
            assert knots.shape == (17,) and np.array_equal(knot_table(knots), knotted.lut)
            assert np.array_equal(knots[:16], knotted.lut[128::8])  # tanh at 0, 8, …, 120
            assert k.provenance["transforms"][-1]["tanh_knots"] is True
            assert "tanh_knots" not in q.provenance["transforms"][-1]


def test_knot_table_arithmetic() -> None:
    """The knots' table is the C export's integer interpolation, odd, -128 read as -127;
    :func:`tanh_knots` finds the knots of a table that is one (and only of such a table)."""
    knots = np.array([0, 9, 18, 27, 35, 43, 50, 57, 63, 69, 74, 79, 83, 87, 90, 93, 95], np.int8)
    table = knot_table(knots)
    a = np.arange(128)
    lo, hi = knots[a // 8].astype(int), knots[a // 8 + 1].astype(int)
    assert table[128:].tolist() == [int(v) for v in lo + ((hi - lo) * (a % 8) + 4) // 8]
    assert table[127] == -table[129] and table[0] == table[1] == -table[255]
    found = tanh_knots(table)
    assert found is not None and np.array_equal(knot_table(found), table)
    assert np.array_equal(found[:16], knots[:16])  # the last knot: any that rebuilds 120..127
    off = table.copy()
    off[128 + 5], off[128 - 5] = off[128 + 5] + 2, off[128 - 5] - 2  # no longer linear there
    assert tanh_knots(off) is None
    assert tanh_knots(np.arange(-128, 128).astype(np.int8)) is None  # not odd (-128 ≠ -127)


# --- whole policies ----------------------------------------------------------------------------


def test_integer_path_and_argmax_on_int8() -> None:
    p = cartpole_tanh()
    q = quantize_int8(p, cartpole_obs(2000))
    assert isinstance(q.body, QuantizedMLP)
    obs = cartpole_obs(3000, seed=5)
    x = q.preprocess[0].apply(obs)
    *hidden, last = q.body.layers
    assert [la.float_output for la in q.body.layers] == [False, False, True]
    h = quantize_input(x, hidden[0].input_scale, hidden[0].input_zero_point)
    for la in hidden:
        h = la.apply(h)
        assert h.dtype == np.int8
    # The last layer by hand: int32 accumulator (integers only) → float32 × per-channel scale.
    acc = (h.astype(np.int64) - last.input_zero_point) @ last.W.astype(np.int64) + last.b
    assert np.abs(acc).max() < 2**31
    expected = acc.astype(np.float32) * (np.float32(last.input_scale) * last.w_scale)
    out = q.body.apply_int(x)
    assert out.dtype == np.float32 and np.array_equal(out, expected)
    assert np.array_equal(np.argmax(expected, axis=1), q.act(obs))
    assert [q.act(o) for o in obs[:20]] == q.act(obs[:20]).tolist()  # batch = single


def test_float_last_layer_keeps_near_equal_action_values_apart() -> None:
    # Q-values with a large common offset and small gaps (a DQN on CartPole: ~105 ± 0.2). An
    # int8 output spends its 256 levels on the whole range; the int32 accumulator keeps every
    # step, so argmax follows the float policy far more often.
    p = cartpole_tanh(seed=3)
    *hidden, last = p.body.layers  # type: ignore[union-attr]
    body = MLP((*hidden, Dense(last.W * np.float32(0.01), last.b + np.float32(100), "identity")))
    dqn_like = Policy(p.observation_space, p.action_space, p.preprocess, body, p.head)
    q = quantize_int8(dqn_like, cartpole_obs(2000))
    assert isinstance(q.body, QuantizedMLP) and q.body.layers[-1].float_output
    int8_out = QuantizedMLP((*q.body.layers[:-1], replace(q.body.layers[-1], float_output=False)))
    obs = cartpole_obs(5000, seed=4)
    x = q.preprocess[0].apply(obs)
    want = dqn_like.act(obs)
    agree_float = float(np.mean(q.body.apply(x).argmax(axis=1) == want))
    agree_int8 = float(np.mean(int8_out.apply(x).argmax(axis=1) == want))
    assert agree_float >= 0.97 and agree_float - agree_int8 >= 0.2, (agree_float, agree_int8)


def test_bias_correction_centres_each_layer_error_on_the_calibration_set() -> None:
    # After correction, each layer's int32 accumulator (fed the int8 path's own input) has a
    # mean error against the float pre-activation of at most half a bias step per channel:
    # the rounding of the correction itself. Without it the DQN-like net above is off by a
    # systematic amount in every channel.
    p = cartpole_tanh(seed=3)
    *hidden, last = p.body.layers  # type: ignore[union-attr]
    body = MLP((*hidden, Dense(last.W * np.float32(0.01), last.b + np.float32(100), "identity")))
    dqn_like = Policy(p.observation_space, p.action_space, p.preprocess, body, p.head)
    calib = cartpole_obs(2000)
    q = quantize_int8(dqn_like, calib)
    assert isinstance(q.body, QuantizedMLP)
    x = q.preprocess[0].apply(calib).astype(np.float32)
    xq = quantize_input(x, q.body.layers[0].input_scale, q.body.layers[0].input_zero_point)
    for layer, dense in zip(q.body.layers, body.layers, strict=True):
        z = affine(x, dense.W, dense.b)  # float32, as quantize_int8 computes it
        acc = (xq.astype(np.int64) - layer.input_zero_point) @ layer.W.astype(np.int64) + layer.b
        step = np.float64(layer.input_scale) * layer.w_scale.astype(np.float64)
        error = (z - acc * step).mean(axis=0)
        assert np.all(np.abs(error) <= 0.5 * step + 1e-9), np.abs(error / step).max()
        x, xq = activate(z, dense.activation), layer.apply(xq)


def test_tanh_rescale_head_keeps_int8_output_and_table() -> None:
    q = quantize_int8(pendulum_relu(head="tanh_rescale"), pendulum_obs(500))
    assert not q.body.layers[-1].float_output  # type: ignore[union-attr]
    assert q.provenance["transforms"][-1]["float_output"] is False


def test_policy_without_lut_output_reads_tflite_fixed_range(tmp_path: Path) -> None:
    # A file written before lut_output existed: the table's output is TFLite's (1/128, 0).
    q = quantize_int8(cartpole_tanh(), cartpole_obs(500))
    path = save_policy(q, tmp_path / "q")
    assert load_policy(path).body.layers[0].lut_output == q.body.layers[0].lut_output  # type: ignore[union-attr]
    doc = json.loads((path / "policy.json").read_text())
    for layer in doc["body"]["layers"]:
        layer.pop("lut_output_scale", None)
        layer.pop("lut_output_zero_point", None)
    layer0 = doc["body"]["layers"][0]
    for later in doc["body"]["layers"][1:]:  # each reads the tanh before it
        later["input_scale"] = float(np.float32(1 / 128))
        later["input_zero_point"] = 0
    (path / "policy.json").write_text(json.dumps(doc))
    old = load_policy(path).body.layers[0]  # type: ignore[union-attr]
    assert old.lut_output is None and old.out_quant == (float(np.float32(1 / 128)), 0)
    layer0["lut_output_zero_point"] = 200
    (path / "policy.json").write_text(json.dumps(doc))
    with pytest.raises(PolicyError, match="lut_output_scale must be a positive finite number"):
        load_policy(path)


def test_input_range_folded_into_first_layer() -> None:
    # A raw Box observation (no preprocess): a normalize step maps the central 99 % of each
    # feature's calibration values (percentiles 0.5 and 99.5) to [-1, 1] and the first layer
    # absorbs its inverse, so the float function is unchanged and every feature uses the
    # whole int8 input grid; 1 % of the values lie outside and saturate.
    p = pendulum_relu()
    assert p.preprocess == ()
    calib = pendulum_obs(2000)
    q = quantize_int8(p, calib)
    (norm,) = q.preprocess
    assert isinstance(norm, Normalize) and norm.eps == 0.0
    z = norm.apply(calib)
    low, high = np.percentile(z, [0.5, 99.5], axis=0)
    assert np.allclose(low, -1, atol=1e-5) and np.allclose(high, 1, atol=1e-5)
    outside = np.mean(np.abs(z) > 1 + 1e-5, axis=0)
    assert np.all((outside > 0.005) & (outside <= 0.0101))
    assert q.provenance["transforms"][-1]["input_normalization"] is True
    first = q.body.layers[0]  # type: ignore[union-attr]
    # symmetric: ±1 is ±127 with zero point 0, so no layer reading the input subtracts one
    assert (first.input_scale, first.input_zero_point) == (float(np.float32(1 / 127)), 0)


def agreement_tanh() -> float:
    p = cartpole_tanh()
    q = quantize_int8(p, cartpole_obs(2000))
    obs = cartpole_obs(10_000, seed=9)
    return float(np.mean(p.act(obs) == q.act(obs)))


def test_agreement_tanh_4_64_64_2() -> None:
    assert agreement_tanh() >= 0.97


def test_relu_3_64_64_1_close_to_fp32() -> None:
    p = pendulum_relu()
    q = quantize_int8(p, pendulum_obs(2000))
    obs = pendulum_obs(10_000, seed=9)
    a, b = p.act(obs), q.act(obs)
    assert b.dtype == np.float32 and b.shape == (10_000, 1)
    # The per-tensor input scale is set by the velocity (±8): cos/sin get 1/16 of the int8
    # grid, which dominates the error. Measured: mean 0.014, 99th percentile 0.046 (bounds ±2).
    error = np.abs(a - b)
    assert error.mean() < 0.02 and np.percentile(error, 99) < 0.06


def test_round_trip_provenance_and_counts(tmp_path: Path) -> None:
    p = cartpole_tanh(widths=(4, 8, 2))
    q = quantize_int8(p, cartpole_obs(300))
    assert q.provenance["algorithm"] == "ppo"
    (t,) = q.provenance["transforms"]
    assert t == {"method": "int8", "calibration_observations": 300,
                 "input_normalization": False, "float_output": True,  # VecNormalize in front
                 "tanh_knots": True, "bytes_before": 4 * (4 * 8 + 8 + 8 * 2 + 2 + 8),
                 "bytes_after": policy_bytes(q)}  # fmt: skip
    # int8: W (48), tanh table (odd, interpolated: its 17 knots); int16: b; float32: the
    # normalize step's mean and var. One weight scale per layer: w_scale, multiplier and
    # shift are JSON numbers. (Per channel, int32 biases and a full table: 658 bytes.)
    by_dtype = {"float32": 4 * 8, "int8": 48 + 17, "int16": 2 * 10}
    assert q.bytes_by_dtype() == by_dtype
    assert q.parameters == 48 + 10 and q.macs == 48
    # 1 B per int8 activation (the largest live pair, 4 + 8) + the float32 output (2 × 4 B)
    assert (q.buffer_bytes, p.buffer_bytes) == (4 + 8 + 8, 4 * (4 + 8))
    save_policy(q, tmp_path / "q")
    r = load_policy(tmp_path / "q")
    a, b = q.arrays(), r.arrays()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    obs = cartpole_obs(2000, seed=2)
    assert np.array_equal(q.act(obs), r.act(obs))
    assert dict(r.provenance) == dict(q.provenance)
    doc = json.loads((tmp_path / "q" / "policy.json").read_text())
    layer0 = doc["body"]["layers"][0]
    # schema 2: the int8 arrays (W 4×8, the knots, W 8×2) are slices of one array per dtype
    assert doc["schema_version"] == 2 and doc["body"]["kind"] == "mlp_int8"
    assert layer0["W"] == {"array": "body.int8", "offset": 0, "shape": [4, 8]}
    assert layer0["lut"] == {"array": "body.int8", "offset": 32, "shape": [17]}
    assert layer0["b"] == {"array": "body.int16", "offset": 0, "shape": [8]}
    from safetensors.numpy import load

    stored = load((tmp_path / "q" / "policy.safetensors").read_bytes())
    assert {k: v.shape for k, v in stored.items()} == {
        "body.int8": (32 + 17 + 16,), "body.int16": (10,),
        "preprocess.0.mean": (4,), "preprocess.0.var": (4,)}  # fmt: skip
    # schema 1 (an array per layer) is still written on request and read
    save_policy(q, tmp_path / "v1", pack=False)
    old = json.loads((tmp_path / "v1" / "policy.json").read_text())
    assert old["schema_version"] == 1 and old["body"]["layers"][0]["lut"] == "body.0.lut"
    assert np.array_equal(load_policy(tmp_path / "v1").act(obs), q.act(obs))
    assert layer0["input_scale"] == q.body.layers[0].input_scale  # type: ignore[union-attr]
    assert layer0["w_scale"] == float(q.body.layers[0].w_scale[0])  # type: ignore[union-attr]


def test_tanh_layers_share_one_table(tmp_path: Path) -> None:
    """Every tanh layer requantizes into one input scale and reads one output scale, so the
    table is the same; the file stores it once (one fewer array: 128 B and its header)."""
    p = cartpole_tanh()
    obs = cartpole_obs(1000)
    q = quantize_int8(p, obs)
    own = quantize_int8(p, obs, shared_table=False)
    l0, l1 = q.body.layers[:2]  # type: ignore[union-attr]
    assert (l0.output_scale, l0.lut_output) == (l1.output_scale, l1.lut_output)
    assert np.array_equal(l0.lut, l1.lut) and l0.lut is not None
    o0, o1 = own.body.layers[:2]  # type: ignore[union-attr]
    assert not np.array_equal(o0.lut, o1.lut)  # each on its own range
    # the shared scales are the union of the two layers' own (symmetric) ranges
    assert l0.output_scale == max(o0.output_scale, o1.output_scale)
    assert l0.lut_output == max(o0.lut_output, o1.lut_output)  # type: ignore[type-var]
    assert q.provenance["transforms"][-1]["shared_table"] is True
    assert "shared_table" not in own.provenance["transforms"][-1]
    folder = save_policy(q, tmp_path / "q")
    doc = json.loads((folder / "policy.json").read_text())
    knots = {"array": "body.int8", "offset": 4 * 64, "shape": [17]}  # after layer 0's W
    assert [la.get("lut") for la in doc["body"]["layers"]] == [knots, knots, None]
    loaded = load_policy(folder)
    x = cartpole_obs(2000, seed=3)
    assert np.array_equal(loaded.act(x), q.act(x))
    assert np.array_equal(loaded.body.apply_int(x), q.body.apply_int(x))  # type: ignore[union-attr]
    # and the shared table keeps the agreement of the tables of its own
    agree = [float(np.mean(p.act(x) == c.act(x))) for c in (q, own)]
    assert agree[0] >= 0.97 and agree[0] >= agree[1] - 0.01, agree


def test_64_64_int8_arrays_shrink_3_5x() -> None:
    """Issue 14 item 13: a 64-64 net's int8 arrays (weights and every constant) are ≥ 3.5×
    smaller than float32 (per-channel constants, int32 biases and two 256-byte tanh tables
    gave 2.75×)."""
    p = cartpole_tanh()
    q = quantize_int8(p, cartpole_obs(300))
    # W 4480 int8, b 130 int16, one odd tanh table shared by both hidden layers, as its 17
    # knots, normalize (8 float32)
    assert policy_bytes(q) == 4480 + 2 * 130 + 17 + 4 * 8
    assert policy_bytes(p) / policy_bytes(q) >= 3.5
    own = quantize_int8(p, cartpole_obs(300), shared_table=False)
    assert policy_bytes(own) == policy_bytes(q) + 17  # a table per hidden layer
    exact = quantize_int8(p, cartpole_obs(300), tanh_knots=False)
    assert policy_bytes(exact) == policy_bytes(q) - 17 + 128  # the exact table's half
    per_channel = quantize_int8(p, cartpole_obs(300), per_channel=True)
    # per channel: w_scale, multiplier, shift (9 B) for each of the 64 + 64 + 2 outputs
    assert policy_bytes(per_channel) == policy_bytes(q) + (64 + 64 + 2) * 9


def test_round_trip_box_and_one_hot(tmp_path: Path) -> None:
    q = quantize_int8(pendulum_relu(head="tanh_rescale"), pendulum_obs(500))
    save_policy(q, tmp_path / "p")
    obs = pendulum_obs(500, seed=3)
    assert np.array_equal(load_policy(tmp_path / "p").act(obs), q.act(obs))
    s = env_spec("FrozenLake-v1", measure_steps=0)
    rng = np.random.default_rng(0)
    body = random_mlp([16, 8, 4], "relu", rng)
    p = Policy(s.observation, s.action, (OneHot(16),), body, Head("argmax"))
    q = quantize_int8(p, np.arange(16))
    assert np.array_equal(q.act(np.arange(16)), p.act(np.arange(16)))


def test_refuses_other_bodies_and_bad_calibration() -> None:
    s = env_spec("FrozenLake-v1", measure_steps=0)
    table = Policy(s.observation, s.action, (), Table(np.zeros((16, 4), np.float32)),
                   Head("argmax"))  # fmt: skip
    with pytest.raises(PolicyError) as e:
        quantize_int8(table, np.arange(16))
    assert str(e.value) == "int8 quantization applies to an mlp body; this policy has a table body"
    p = cartpole_tanh()
    with pytest.raises(PolicyError) as e:
        quantize_int8(p, np.zeros(4, np.float32))
    assert str(e.value) == ("int8 calibration: expected a non-empty batch of observations of "
                            "shape [N, 4], got shape [4]")  # fmt: skip
    with pytest.raises(PolicyError, match="contain NaN or inf; drop them"):
        quantize_int8(p, np.full((3, 4), np.nan, np.float32))
    q = quantize_int8(p, cartpole_obs(10))
    with pytest.raises(PolicyError, match="this policy has a mlp_int8 body"):
        quantize_int8(q, cartpole_obs(10))


# --- corrupt int8 files: one exact message each ---------------------------------------------


@pytest.fixture
def saved_int8(tmp_path: Path) -> Path:
    """A per-channel int8 policy with an array per layer (schema 1, as before packing)."""
    q = quantize_int8(cartpole_tanh(widths=(4, 8, 2)), cartpole_obs(300), per_channel=True)
    return save_policy(q, tmp_path / "q", pack=False)


@pytest.fixture
def saved_per_tensor(tmp_path: Path) -> Path:
    q = quantize_int8(cartpole_tanh(widths=(4, 8, 2)), cartpole_obs(300), per_channel=False)
    return save_policy(q, tmp_path / "q")


def edit_arrays(folder: Path, edit: Callable[[dict[str, np.ndarray]], None]) -> None:
    from safetensors.numpy import load, save

    arrays = dict(load((folder / "policy.safetensors").read_bytes()))
    edit(arrays)
    (folder / "policy.safetensors").write_bytes(save(arrays))


def edit_json(folder: Path, edit: Callable[[dict], None]) -> None:  # type: ignore[type-arg]
    doc = json.loads((folder / "policy.json").read_text())
    edit(doc)
    (folder / "policy.json").write_text(json.dumps(doc))


def layer0(doc: dict) -> dict:  # type: ignore[type-arg]
    return doc["body"]["layers"][0]  # type: ignore[no-any-return]


CORRUPT: dict[str, tuple[Callable[[Path], None], str]] = {
    "float-weights": (
        lambda f: edit_arrays(
            f, lambda a: a.update({"body.0.W": a["body.0.W"].astype(np.float32)})
        ),
        "body (mlp_int8) layer 0: array 'body.0.W' has dtype float32; expected int8",
    ),
    "bias-dtype": (
        lambda f: edit_arrays(f, lambda a: a.update({"body.1.b": a["body.1.b"].astype(np.int8)})),
        "body (mlp_int8) layer 1: array 'body.1.b' has dtype int8; expected int16, int32",
    ),
    "multiplier-shape": (
        lambda f: edit_arrays(f, lambda a: a.update({"body.0.multiplier": np.ones(3, np.int32)})),
        "body (mlp_int8) layer 0: array 'body.0.multiplier' has shape [3]; expected [8]",
    ),
    "shift-range": (
        lambda f: edit_arrays(f, lambda a: a.update({"body.0.shift": np.full(8, 31, np.int32)})),
        "body (mlp_int8) layer 0: every shift must lie in [-31, 30]",
    ),
    "negative-multiplier": (
        lambda f: edit_arrays(
            f, lambda a: a.update({"body.0.multiplier": -a["body.0.multiplier"]})
        ),
        "body (mlp_int8) layer 0: every multiplier must be ≥ 0 (a Q0.31 fixed-point number)",
    ),
    "huge-bias": (
        lambda f: edit_arrays(f, lambda a: a.update({"body.0.b": np.full(8, 2**31 - 1, np.int32)})),
        f"body (mlp_int8) layer 0: a bias exceeds ±{2**31 - 1 - 255 * 128 * 4}, so the int32 "
        "accumulator could overflow; quantize the policy again",
    ),
    "lut-missing": (
        lambda f: edit_arrays(f, lambda a: a.pop("body.0.lut")),
        "body (mlp_int8) layer 0: array 'body.0.lut' is missing from policy.safetensors; the "
        "policy is incomplete, save it again",
    ),
    "lut-shape": (
        lambda f: edit_arrays(f, lambda a: a.update({"body.0.lut": np.zeros(255, np.int8)})),
        "body (mlp_int8) layer 0: array 'body.0.lut' has shape [255]; expected [256]",
    ),
    "negative-knot": (
        lambda f: edit_arrays(f, lambda a: a.update({"body.0.lut": np.full(17, -1, np.int8)})),
        "body (mlp_int8) layer 0: array 'body.0.lut' holds tanh knots, which must be 0 to 127; "
        "quantize the policy again",
    ),
    "zero-point": (
        lambda f: edit_json(f, lambda d: layer0(d).update({"output_zero_point": 200})),
        "body (mlp_int8) layer 0: output_zero_point must be an integer from -128 to 127, not 200",
    ),
    "scale": (
        lambda f: edit_json(f, lambda d: layer0(d).update({"input_scale": 0})),
        "body (mlp_int8) layer 0: input_scale must be a positive finite number, not 0",
    ),
    "chain": (  # layer 0's table says (1/128, 0); layer 1 reads (1/128, 3)
        lambda f: edit_json(
            f,
            lambda d: (
                layer0(d).update({"lut_output_scale": 0.0078125, "lut_output_zero_point": 0}),
                d["body"]["layers"][1].update({"input_scale": 0.0078125, "input_zero_point": 3}),
            ),
        ),
        "body (mlp_int8) layer 1: input scale/zero point (0.0078125, 3) differ from layer 0's "
        "output (0.0078125, 0); quantize the policy again",
    ),
    "lut-on-relu": (
        lambda f: edit_json(f, lambda d: layer0(d).update({"activation": "relu"})),
        "body (mlp_int8) layer 0: a lookup table is only used with tanh or sigmoid",
    ),
}


CORRUPT_PER_TENSOR: dict[str, tuple[Callable[[Path], None], str]] = {
    "requantize-name": (
        lambda f: edit_json(f, lambda d: layer0(d).update({"requantize": "fast"})),
        "body (mlp_int8) layer 0: requantize must be one of tflite, high_word, not 'fast'",
    ),
    "requantize-shift": (
        lambda f: edit_json(
            f, lambda d: layer0(d).update({"requantize": "high_word", "shift": -1})
        ),
        "body (mlp_int8) layer 0: requantize 'high_word' needs every shift ≤ -2; quantize the "
        "policy again",
    ),
    "shift-range": (
        lambda f: edit_json(f, lambda d: layer0(d).update({"shift": 31})),
        "body (mlp_int8) layer 0: every shift must lie in [-31, 30]",
    ),
    "float-multiplier": (
        lambda f: edit_json(f, lambda d: layer0(d).update({"multiplier": 1.5})),
        "body (mlp_int8) layer 0: multiplier must be an int32 integer, not 1.5",
    ),
    "huge-multiplier": (
        lambda f: edit_json(f, lambda d: layer0(d).update({"multiplier": 2**31})),
        "body (mlp_int8) layer 0: multiplier must be an int32 integer, not 2147483648",
    ),
    "w-scale": (
        lambda f: edit_json(f, lambda d: layer0(d).update({"w_scale": -1.0})),
        "body (mlp_int8) layer 0: w_scale must be a positive finite number, not -1.0",
    ),
    "mixed": (
        lambda f: edit_json(f, lambda d: layer0(d).update({"shift": "body.0.shift"})),
        "body (mlp_int8) layer 0: w_scale, multiplier and shift must be all numbers (one scale "
        "for the layer) or all array names (one per channel)",
    ),
}


def layer1(doc: dict) -> dict:  # type: ignore[type-arg]
    return doc["body"]["layers"][1]  # type: ignore[no-any-return]


CORRUPT_PACKED: dict[str, tuple[Callable[[Path], None], str]] = {
    "out-of-range": (
        lambda f: edit_json(f, lambda d: layer1(d)["W"].update({"offset": 60})),
        "body (mlp_int8) layer 1: slice [60:76] of array 'body.int8' (shape [65]) is out of "
        "range; the file is corrupt, save the policy again",
    ),
    "overlap": (
        lambda f: edit_json(f, lambda d: layer1(d)["W"].update({"offset": 40})),
        "the slices of array 'body.int8' overlap; the file is corrupt, save the policy again",
    ),
    "gap": (
        lambda f: edit_arrays(
            f, lambda a: a.update({"body.int16": np.append(a["body.int16"], np.int16(0))})
        ),
        "array 'body.int16' has 11 elements but the structure reads 10; the file is corrupt, "
        "save the policy again",
    ),
    "offset-type": (
        lambda f: edit_json(f, lambda d: layer0(d)["b"].update({"offset": "0"})),
        "body (mlp_int8) layer 0: a slice of 'body.int16' needs an integer offset ≥ 0 and a "
        "shape of integers ≥ 0, not '0' and [8]",
    ),
    "missing": (
        lambda f: edit_arrays(f, lambda a: a.pop("body.int16")),
        "body (mlp_int8) layer 0: array 'body.int16' is missing from policy.safetensors; the "
        "policy is incomplete, save it again",
    ),
    "dtype": (
        lambda f: edit_arrays(
            f, lambda a: a.update({"body.int16": a["body.int16"].astype(np.int8)})
        ),
        "body (mlp_int8) layer 0: array 'body.int16[0:8]' has dtype int8; expected int16, int32",
    ),
    "shape": (
        lambda f: edit_json(f, lambda d: layer0(d)["b"].update({"shape": [4, 2]})),
        "body (mlp_int8) layer 0: array 'body.int16[0:8]' has shape [4, 2]; expected 1 "
        "dimension(s)",
    ),
    "knots": (
        lambda f: edit_json(f, lambda d: layer0(d)["lut"].update({"shape": [16]})),
        "body (mlp_int8) layer 0: array 'body.int8[32:48]' has shape [16]; expected [256]",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_PACKED))
def test_corrupt_packed_int8_policy(case: str, saved_per_tensor: Path) -> None:
    """Schema 2: slices of one array per dtype, each checked, covering the array once."""
    assert json.loads((saved_per_tensor / "policy.json").read_text())["schema_version"] == 2
    corrupt, message = CORRUPT_PACKED[case]
    corrupt(saved_per_tensor)
    with pytest.raises(PolicyError) as e:
        load_policy(saved_per_tensor)
    assert str(e.value) == f"{saved_per_tensor}: {message}"


@pytest.mark.parametrize("case", sorted(CORRUPT_PER_TENSOR))
def test_corrupt_per_tensor_int8_policy(case: str, saved_per_tensor: Path) -> None:
    """One scale for the layer: w_scale, multiplier and shift are JSON numbers, checked."""
    assert isinstance(layer0(json.loads((saved_per_tensor / "policy.json").read_text()))
                      ["multiplier"], int)  # fmt: skip
    corrupt, message = CORRUPT_PER_TENSOR[case]
    corrupt(saved_per_tensor)
    with pytest.raises(PolicyError) as e:
        load_policy(saved_per_tensor)
    assert str(e.value) == f"{saved_per_tensor}: {message}"


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_int8_policy(case: str, saved_int8: Path) -> None:
    corrupt, message = CORRUPT[case]
    corrupt(saved_int8)
    with pytest.raises(PolicyError) as e:
        load_policy(saved_int8)
    assert str(e.value) == f"{saved_int8}: {message}"
