"""A Policy as dependency-free C99: ``policy.h``, ``policy.c`` and a host harness ``main.c``.

The firmware calls one function, preprocess and head included::

    float obs[RLB_OBS_DIM] = {...};
    int a = rlb_policy_act(obs, NULL);          /* discrete actions: the action index */
    float u[RLB_ACTION_DIM];
    rlb_policy_act(obs, u);                     /* Box actions: RLB_ACTION_DIM floats */

Weights and tables are ``static const`` arrays (flash); working memory is static buffers
sized exactly (no malloc, no recursion). What the C computes, and how it matches numpy:

- ``mlp_int8``: integer-only, **bit-exact** with :class:`~rlbudget.policy.model.QuantizedMLP`
  (the same float32 division and rounding for the input, the same gemmlowp fixed-point
  requantization, the same lookup tables). A ``tanh_rescale`` head reads a table of the
  256 possible actions per dimension computed by numpy, so the int8 path needs no libm.
- ``table``, ``packed_table`` (dense, or sparse: a bitmap and ranks, looked up in constant
  time with a byte popcount, no builtins), tile-coded ``linear`` (float or int8/int16):
  exact. Tile coding and discretizing compute in double, as numpy does, with every
  constant printed so that it reads back to the same number (``%.17g``; floats ``%.9g``).
- ``mlp`` and ``linear`` on float features: float32, within ~1e-6 of numpy (the sums run
  in another order; ``tanhf``/``expf`` come from libm: link with ``-lm``).
- float16 ``mlp`` (``compress.fp16``): C99 has no half type, so weights and biases are
  ``uint16_t`` bit patterns (half the flash), converted exactly by ``rlb_h2f`` (no libm);
  sums run in float32 and the input and hidden activations are rounded to half by
  ``rlb_f2h`` (round to nearest even, numpy's cast), as numpy does. Activations stay
  ``float`` in RAM. Within ~1e-3 of numpy: a sum that lands on a tie between two halves
  may round the other way when summed in another order.
- A float layer that ``policy.safetensors`` stores as CSR (mostly zeros, see
  :func:`~rlbudget.policy.io.sparse_weights`) is stored and run as CSR here too (only the
  kept weights in flash, one multiply each). ``mlp_int8`` layers stay dense in C.

A Discrete observation is passed as ``obs[0]`` = the state index (clamped to the space).
Right shifts of negative int32 values are assumed arithmetic (GCC, Clang, Arm, IAR).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from rlbudget import __version__
from rlbudget.envs import SpaceSpec
from rlbudget.errors import PolicyError
from rlbudget.policy.io import sparse_weights
from rlbudget.policy.knots import tanh_knots
from rlbudget.policy.model import (
    MLP,
    Array,
    Discretize,
    Linear,
    Normalize,
    OneHot,
    PackedTable,
    Policy,
    QDense,
    QuantizedMLP,
    Table,
    TileCode,
    dequantize,
    odd_half,
    quantize_input,
)

HEADER, SOURCE, HARNESS = "policy.h", "policy.c", "main.c"
CTYPES = {"float32": "float", "float64": "double", "int8": "int8_t", "int16": "int16_t",
          "int32": "int32_t", "uint8": "uint8_t", "uint16": "uint16_t",
          "uint32": "uint32_t"}  # fmt: skip
ACTIVATION_CODES = {"identity": 0, "relu": 1, "tanh": 2, "sigmoid": 3}


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_c` wrote and what it costs on the device.

    ``flash_bytes`` counts the ``const`` arrays (weights, tables, constants), not the code;
    ``ram_bytes`` the static working buffers (the stack holds a few scalars on top).
    """

    files: tuple[Path, ...]
    ram_bytes: int
    flash_bytes: int
    needs_libm: bool

    def to_dict(self) -> dict[str, Any]:
        return {"files": [str(f) for f in self.files], "ram_bytes": self.ram_bytes,
                "flash_bytes": self.flash_bytes, "needs_libm": self.needs_libm}  # fmt: skip


def c_float(v: float) -> str:
    """A float32 constant that reads back bit for bit: ``%.9g`` plus ``f``."""
    s = f"{float(np.float32(v)):.9g}"
    return (s if any(c in s for c in ".e") else s + ".0") + "f"


def c_double(v: float) -> str:
    """A double constant that reads back bit for bit (``%.17g``)."""
    s = f"{float(v):.17g}"
    return s if any(c in s for c in ".e") else s + ".0"


def c_int(v: int) -> str:
    """An integer constant (INT32_MIN spelled so that no constant overflows)."""
    return str(v) if v != -(2**31) else "(-2147483647 - 1)"


def _c_intv(v: Any) -> str:
    return c_int(int(v))


class _Writer:
    """Collects the pieces of ``policy.c``: constants, buffers, helpers, the entry point."""

    def __init__(self) -> None:
        self.consts: list[str] = []
        self.buffers: list[str] = []
        self.helpers: dict[str, str] = {}
        self.code: list[str] = []
        self.flash = 0
        self.ram = 0
        self.libm = False

    def const(self, name: str, values: Iterable[Any], ctype: str, comment: str = "") -> str:
        items = list(values)
        fmt: Callable[[Any], str] = {"float": c_float, "double": c_double}.get(ctype, _c_intv)
        per_line = 6 if ctype in ("float", "double") else 12
        rows = [", ".join(fmt(v) for v in items[i : i + per_line])
                for i in range(0, len(items), per_line)]  # fmt: skip
        note = f"/* {comment} */\n" if comment else ""
        body = ",\n    ".join(rows)
        self.consts.append(f"{note}static const {ctype} {name}[{len(items)}] = {{\n    {body}\n}};")
        self.flash += len(items) * _sizeof(ctype)
        return name

    def array(self, name: str, a: Array, comment: str = "", ctype: str | None = None) -> str:
        return self.const(name, np.asarray(a).ravel().tolist(), ctype or CTYPES[str(a.dtype)],
                          comment)  # fmt: skip

    def buffer(self, name: str, ctype: str, n: int, comment: str) -> str:
        self.buffers.append(f"static {ctype} {name}[{n}]; /* {comment} */")
        self.ram += n * _sizeof(ctype)
        return name

    def helper(self, name: str, text: str) -> None:
        self.helpers.setdefault(name, text.strip("\n"))

    def line(self, text: str) -> None:
        self.code.append(text)


def _sizeof(ctype: str) -> int:
    return {"float": 4, "double": 8, "int8_t": 1, "uint8_t": 1, "int16_t": 2, "int32_t": 4,
            "uint16_t": 2, "uint32_t": 4}[ctype]  # fmt: skip


def _fail(message: str) -> PolicyError:
    return PolicyError(f"export_c: {message}")


def _loop(var: str, n: int, statement: str) -> str:
    """``for (var = 0; var < n; ++var) { statement }`` at the entry point's indentation."""
    return f"    for ({var} = 0; {var} < {n}; ++{var}) {{\n        {statement}\n    }}"


# --- helpers (C text), emitted only when used ----------------------------------------------

QUANTIZE = """
/* float32 -> int8: clamp(round(v / scale) + zero_point), half away from zero (no libm).
   half_scale is scale / 2 (exact), so s = v / half_scale is 2 v / scale exactly, and
   round(v / scale) = (trunc(s) + sign(s)) / 2 with C's truncating division; s saturates
   where the result does (-128, 127), so no clamp is left after the rounding */
static int8_t rlb_quantize(float v, float half_scale, int32_t zero_point)
{
    float s = v / half_scale;
    const float lo = (float)(2 * (-128 - zero_point)), hi = (float)(2 * (127 - zero_point));
    int32_t r;
    if (!(s >= lo)) {
        s = lo; /* NaN too */
    }
    if (s > hi) {
        s = hi;
    }
    r = (int32_t)s; /* truncates */
    return (int8_t)((r + (r > 0) - (r < 0)) / 2 + zero_point);
}
"""
QUANTIZE_FULL_SCALE = """
/* float32 -> int8: clamp(round(v / scale) + zero_point), half away from zero (no libm);
   s saturates where the result does (-128, 127) */
static int8_t rlb_quantize(float v, float scale, int32_t zero_point)
{
    float s = v / scale;
    const float lo = (float)(-128 - zero_point), hi = (float)(127 - zero_point);
    int32_t r;
    float frac;
    if (!(s >= lo)) {
        s = lo; /* NaN too */
    }
    if (s > hi) {
        s = hi;
    }
    r = (int32_t)s; /* truncates */
    frac = s - (float)r;
    if (frac >= 0.5f) {
        r += 1;
    } else if (frac <= -0.5f) {
        r -= 1;
    }
    return (int8_t)(r + zero_point);
}
"""
"""The quantization when ``scale / 2`` is not exact in float32 (a scale below 2**-125)."""


def quantize_helper(scale: float) -> tuple[str, float]:
    """The C of ``rlb_quantize`` for the input ``scale`` and the scale to pass it:
    :data:`QUANTIZE` with ``scale / 2`` (fewer float operations: a division, two compares
    and a conversion) where halving is exact, else :data:`QUANTIZE_FULL_SCALE`."""
    full = np.float32(scale)
    half = full / np.float32(2)
    if half * np.float32(2) == full and half >= np.finfo(np.float32).tiny:
        return QUANTIZE, float(half)
    return QUANTIZE_FULL_SCALE, float(full)


FIXED_POINT = """
/* gemmlowp SaturatingRoundingDoublingHighMul; b (a multiplier >= 0) is never INT32_MIN */
static int32_t rlb_srdhm(int32_t a, int32_t b)
{
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* C division truncates */
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent, rounded half away from zero */
static int32_t rlb_rdbpot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)((UINT32_C(1) << exponent) - 1u); /* exponent <= 31 */
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier; the left shift saturates (as rlbudget's numpy) */
static int32_t rlb_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
@LEFT
    return rlb_rdbpot(rlb_srdhm(x, multiplier), @RIGHT);
}
"""

HIGH_WORD = """
/* x * multiplier * 2^(shift - 31) rounded half up, for shift <= -2: the high word of the
   product, then k = -1 - shift bits with one rounding (rlbudget's rounded_high_mul) */
static int32_t rlb_rhm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t k = -1 - shift;
    const int32_t high = (int32_t)(((int64_t)x * multiplier) >> 32);
    return (high + (1 << (k - 1))) >> k;
}
"""

DENSE_INT8 = """
/* one int8 fully connected layer (TFLite Micro); w is [n_out][n_in]; @WHAT */
static void rlb_dense_int8@S(const int8_t *x, int8_t *y, const int8_t *w, const @B *b,
                           @REQUANT,
                           int32_t n_in, int32_t n_out, int32_t in_zp, int32_t out_zp,
                           int32_t lo, const int8_t *lut)
{
    int32_t i, j, acc;
    const int32_t hi = 127 - out_zp; /* clamp(acc + out_zp, lo, 127), no overflow */
    lo -= out_zp;
    for (j = 0; j < n_out; ++j) {
        const int8_t *row = w + j * n_in;
        acc = b[j];
        for (i = 0; i < n_in; ++i) {
            acc += ((int32_t)x[i] - in_zp) * (int32_t)row[i];
        }
        acc = @RQ(acc, @MULTIPLIER);
        acc = (acc < lo ? lo : (acc > hi ? hi : acc)) + out_zp;
        y[j] = @LUT;
    }
}
"""
DENSE_INT8_ACC = """
/* the last int8 layer of an argmax head with one dequantization scale: the int32
   accumulators themselves (their argmax is the dequantized values') */
static void rlb_dense_int8_acc@S(const int8_t *x, int32_t *y, const int8_t *w, const @B *b,
                               int32_t n_in, int32_t n_out, int32_t in_zp)
{
    int32_t i, j, acc;
    for (j = 0; j < n_out; ++j) {
        const int8_t *row = w + j * n_in;
        acc = b[j];
        for (i = 0; i < n_in; ++i) {
            acc += ((int32_t)x[i] - in_zp) * (int32_t)row[i];
        }
        y[j] = acc;
    }
}
"""
ACC_EXACT = 2**23
"""Accumulators below this magnitude are exact in float32 and no two of them round to one
product with a positive scale (the products differ by at least the scale, more than half
an ulp), so numpy's ``argmax(float32(acc) * scale)`` is ``argmax(acc)``, first index of
equals included."""


def argmax_on_acc(policy: Policy, la: QDense) -> bool:
    """The last layer ``la`` may hand the argmax head its int32 accumulators."""
    scale = la.dequant_scale
    bound = 255 * 128 * int(la.W.shape[0]) + int(np.abs(la.b.astype(np.int64)).max(initial=0))
    return (policy.head.kind == "argmax" and scale.size == 1 and 1e-30 < float(scale[0]) < 1e30
            and bound < ACC_EXACT)  # fmt: skip


LEFT_SHIFT = """    if (shift > 0) {
        int64_t s = (int64_t)x * ((int64_t)1 << shift);
        if (s > INT32_MAX) {
            s = INT32_MAX;
        }
        if (s < INT32_MIN) {
            s = INT32_MIN;
        }
        x = (int32_t)s;
    }"""
"""The left shift of :data:`FIXED_POINT`, emitted only when a layer has a shift > 0."""

FULL_LUT = "lut ? lut[acc + 128] : (int8_t)acc"
ODD_LUT = "(int8_t)(acc < 0 ? -lut[-acc] : lut[acc])"
"""An odd table (tanh) holds its entries for 0..127; input -128 reads as -127, so its
layer clamps at -127 (:data:`ODD_LOW`)."""
KNOT_LUT = "rlb_knots(lut, acc)"
ODD_LOW = -127
KNOTS_HELPER = """
/* an odd int8 tanh from its 17 knots, its values at the inputs 0, 8, ..., 128, linear
   between them (rlbudget.policy.knots); v in [-127, 127] */
static int8_t rlb_knots(const int8_t *knots, int32_t v)
{
    const int32_t a = v < 0 ? -v : v;
    const int8_t *k = knots + (a >> 3);
    const int32_t t = k[0] + (((k[1] - k[0]) * (a & 7) + 4) >> 3);
    return (int8_t)(v < 0 ? -t : t);
}
"""

DENSE_INT8_FLOAT = """
/* the last int8 layer: int32 accumulators dequantized per channel (ch = 1) or with one
   scale (ch = 0), no requantization */
static void rlb_dense_int8_float@S(const int8_t *x, float *y, const int8_t *w, const @B *b,
                                 const float *scale, int32_t ch, int32_t n_in, int32_t n_out,
                                 int32_t in_zp)
{
    int32_t i, j, acc;
    for (j = 0; j < n_out; ++j) {
        const int8_t *row = w + j * n_in;
        acc = b[j];
        for (i = 0; i < n_in; ++i) {
            acc += ((int32_t)x[i] - in_zp) * (int32_t)row[i];
        }
        y[j] = (float)acc * scale[j * ch];
    }
}
"""


PER_CHANNEL = {
    "@WHAT": "multiplier and shift per output channel (ch = 1) or one for the layer (ch = 0)",
    "@REQUANT": "const int32_t *multiplier, const int8_t *shift, int32_t ch",
    "@MULTIPLIER": "multiplier[j * ch], shift[j * ch]",
}
PER_TENSOR = {
    "@WHAT": "one multiplier and shift for the layer",
    "@REQUANT": "int32_t multiplier, int32_t shift",
    "@MULTIPLIER": "multiplier, shift",
}
"""The requantization constants of :data:`DENSE_INT8`: arrays (per channel, ``_pc``), or
two arguments (one scale for the layer: no arrays, no loads)."""


def _kernel(
    w: _Writer,
    name: str,
    text: str,
    bias: Array,
    table: str = "",
    per_channel: bool = False,
    high_word: bool = False,
) -> str:
    """Emit the kernel ``name`` for ``bias``'s C type (int16 or int32), ``table``: ""
    (a full lookup table or none), "odd" (a half table, :data:`ODD_LUT`) or "knots"
    (:data:`KNOT_LUT`), per-channel requantization constants (:data:`PER_CHANNEL`, else
    :data:`PER_TENSOR`) and the requantization (``high_word``: :data:`HIGH_WORD`, else
    TFLite's :data:`FIXED_POINT`); its C name."""
    for key, value in (PER_CHANNEL if per_channel else PER_TENSOR).items():
        text = text.replace(key, value)
    text = text.replace("@RQ", "rlb_rhm" if high_word else "rlb_mbqm")
    suffix = ("_b16" if bias.dtype == np.int16 else "") + (f"_{table}" if table else "")
    suffix += ("_pc" if per_channel else "") + ("_hw" if high_word else "")
    if table == "knots":
        w.helper("rlb_knots", KNOTS_HELPER)
    text = text.replace("@LUT", {"odd": ODD_LUT, "knots": KNOT_LUT}.get(table, FULL_LUT))
    w.helper(name + suffix, text.replace("@S", suffix).replace("@B", CTYPES[str(bias.dtype)]))
    return f"rlb_{name}{suffix}"


def _argmax(ctype: str) -> str:
    """C for ``rlb_argmax[_int8](y, n)``: the index of the first largest value (numpy's)."""
    suffix = {"int8_t": "_int8", "int32_t": "_int32"}.get(ctype, "")
    return f"""
/* index of the first largest value (numpy's argmax) */
static int rlb_argmax{suffix}(const {ctype} *y, int32_t n)
{{
    int32_t i, best = 0;
    for (i = 1; i < n; ++i) {{
        if (y[i] > y[best]) {{
            best = i;
        }}
    }}
    return (int)best;
}}
"""


HALF = """
/* IEEE 754 half (bit pattern) -> float, exact (every half is a float) */
static float rlb_h2f(uint16_t h)
{
    union {
        uint32_t u;
        float f;
    } v;
    uint32_t exponent = ((uint32_t)h >> 10) & 0x1fu;
    uint32_t mantissa = (uint32_t)h & 0x3ffu;
    const uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    if (exponent == 0x1fu) {
        v.u = sign | 0x7f800000u | (mantissa << 13); /* inf, NaN */
    } else if (exponent != 0u) {
        v.u = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    } else if (mantissa == 0u) {
        v.u = sign;
    } else { /* subnormal: shift the leading 1 up to the implicit bit */
        exponent = 113u;
        while (!(mantissa & 0x400u)) {
            mantissa <<= 1;
            --exponent;
        }
        v.u = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
    }
    return v.f;
}

/* float -> IEEE 754 half (bit pattern), round to nearest even (numpy's cast) */
static uint16_t rlb_f2h(float f)
{
    union {
        float f;
        uint32_t u;
    } v;
    uint32_t sign, exponent, mantissa, shift, half, rest, halfway;
    v.f = f;
    sign = (v.u >> 16) & 0x8000u;
    exponent = (v.u >> 23) & 0xffu;
    mantissa = v.u & 0x7fffffu;
    if (exponent == 0xffu) {
        return (uint16_t)(sign | 0x7c00u | (mantissa ? 0x200u : 0u)); /* inf, NaN */
    }
    if (exponent > 142u) {
        return (uint16_t)(sign | 0x7c00u); /* |f| >= 2^16: inf */
    }
    if (exponent >= 113u) { /* a normal half; a carry out of the mantissa is right too */
        half = ((exponent - 112u) << 10) | (mantissa >> 13);
        rest = mantissa & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) {
            ++half;
        }
        return (uint16_t)(sign | half);
    }
    if (exponent < 102u) {
        return (uint16_t)sign; /* below half the smallest subnormal: zero */
    }
    mantissa |= 0x800000u; /* a subnormal half: units of 2^-24 */
    shift = 126u - exponent;
    half = mantissa >> shift;
    rest = mantissa & ((1u << shift) - 1u);
    halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (half & 1u))) {
        ++half;
    }
    return (uint16_t)(sign | half);
}

/* f rounded to the nearest half, as a float (numpy: float32(float16(f))) */
static float rlb_round_half(float f)
{
    return rlb_h2f(rlb_f2h(f));
}
"""


def _dense_kernel(
    activations: set[str], *, half: bool, index: str | None = None, pointer: str | None = None
) -> tuple[str, str]:
    """(name, C text) of a dense layer kernel for float32 or float16 weights, dense or CSR.

    Dense: ``w`` is [n_out][n_in]. CSR (``index``/``pointer`` give the C types): output
    ``j`` sums ``x[col[k]] * w[k]`` for ``k`` from ``start[j]`` to ``start[j + 1]``, in
    increasing input order (the skipped zeros add nothing). float16: weights and bias are
    half bit patterns, converted exactly; with ``to_half`` the output is rounded to half.
    """
    cases = {
        "relu": "acc = acc < 0.0f ? 0.0f : acc;",
        "tanh": "acc = tanhf(acc);",
        "sigmoid": "acc = 1.0f / (1.0f + expf(-acc));",
    }
    branches = "\n".join(
        f"        if (act == {ACTIVATION_CODES[a]}) {{\n            {cases[a]}\n        }}"
        for a in sorted(activations) if a in cases
    )  # fmt: skip
    unused = "" if branches else "    (void)act;\n"
    wtype, value = ("uint16_t", "rlb_h2f({})") if half else ("float", "{}")
    precision = "float16" if half else "float32"
    name = f"rlb_{'sparse' if index else 'dense'}_{'f16' if half else 'f32'}"
    if index is not None and pointer is not None:
        name += f"_{index[:-2]}_{pointer[:-2]}"
        params = (f"const float *x, float *y, const {wtype} *w, const {index} *col,\n    "
                  f"const {pointer} *start, const {wtype} *b, int32_t n_out, int act")  # fmt: skip
        declare = "    int32_t j;\n    uint32_t k;\n"
        loop = f"""        for (k = start[j]; k < start[j + 1]; ++k) {{
            acc += x[col[k]] * {value.format("w[k]")};
        }}"""
        what = f"one {precision} CSR layer: y = act(W x + b); row j of W lists output j's weights"
    else:
        params = (f"const float *x, float *y, const {wtype} *w, const {wtype} *b,\n"
                  "    int32_t n_in, int32_t n_out, int act")  # fmt: skip
        declare = "    int32_t i, j;\n"
        loop = f"""        const {wtype} *row = w + j * n_in;
        acc = 0.0f;
        for (i = 0; i < n_in; ++i) {{
            acc += x[i] * {value.format("row[i]")};
        }}"""
        what = f"one {precision} dense layer: y = act(W x + b); w is [n_out][n_in]"
    if index is not None:
        loop = "        acc = 0.0f;\n" + loop
    store = "y[j] = to_half ? rlb_round_half(acc) : acc;" if half else "y[j] = acc;"
    params += ", int to_half" if half else ""
    return (
        name,
        f"""
/* {what}; act: 0 identity,
   1 relu, 2 tanh, 3 sigmoid{"; to_half: round y to float16" if half else ""} */
static void {name}({params})
{{
{declare}    float acc;
{unused}    for (j = 0; j < n_out; ++j) {{
{loop}
        acc += {value.format("b[j]")};
{branches}
        {store}
    }}
}}
""",
    )


# --- the generator ---------------------------------------------------------------------------


def _check_arrays(policy: Policy) -> None:
    half_mlp = isinstance(policy.body, MLP) and policy.body.half
    for name, a in policy.arrays().items():
        if str(a.dtype) == "float16" and not (half_mlp and name.startswith("body.")):
            raise _fail(f"array '{name}' is float16, which C99 has no type for; export the "
                        "float32 policy (or quantize it to int8)")  # fmt: skip
        if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            raise _fail(f"array '{name}' contains NaN or inf; C constants must be finite")


def _split_preprocess(
    policy: Policy,
) -> tuple[Normalize | None, Discretize | TileCode | OneHot | None]:
    steps = list(policy.preprocess)
    norm = steps[0] if steps and isinstance(steps[0], Normalize) else None
    rest = steps[1:] if norm else steps
    last = rest[0] if len(rest) == 1 and not isinstance(rest[0], Normalize) else None
    if len(rest) != (last is not None) or (isinstance(last, OneHot) and norm is not None):
        kinds = " → ".join(p.kind for p in policy.preprocess)
        raise _fail(
            f"the preprocess {kinds} is not supported; the C export handles an optional "
            "normalize followed by at most one of discretize, tile_code (or one_hot alone)"
        )
    return norm, last


def _input_function(w: _Writer, norm: Normalize | None, clip: bool = True) -> None:
    """``rlb_input(obs, i)``: observation element i after the float preprocess (without
    the normalize step's clip where ``clip`` is False: :func:`_int8_saturates_first`)."""
    if norm is None:
        w.helper(
            "rlb_input",
            """
static float rlb_input(const float *obs, int32_t i)
{
    return obs[i];
}
""",
        )
        return
    std = np.sqrt(norm.var + np.float32(norm.eps))  # exactly numpy's float32 divisor
    w.array("rlb_norm_mean", norm.mean, "normalize: mean")
    w.array("rlb_norm_std", std, "normalize: sqrt(var + eps), computed in float32")
    if not clip:
        w.helper("rlb_input", """
/* normalize: (x - mean) / sqrt(var + eps); its clip is left to the int8 quantization,
   which saturates first */
static float rlb_input(const float *obs, int32_t i)
{
    return (obs[i] - rlb_norm_mean[i]) / rlb_norm_std[i];
}
""")  # fmt: skip
        return
    clip_c = c_float(norm.clip)
    w.helper(
        "rlb_input",
        f"""
/* normalize: clip((x - mean) / sqrt(var + eps), +-{norm.clip:g}) */
static float rlb_input(const float *obs, int32_t i)
{{
    float z = (obs[i] - rlb_norm_mean[i]) / rlb_norm_std[i];
    if (z < -{clip_c}) {{
        z = -{clip_c};
    }}
    if (z > {clip_c}) {{
        z = {clip_c};
    }}
    return z;
}}
""",
    )


def _int8_saturates_first(policy: Policy, norm: Normalize | None) -> bool:
    """The int8 body's input quantization maps the normalize step's clip bounds to -128 and
    127: then the clip changes no int8 input (quantizing is monotone; NaN passes both) and
    the C export leaves it out."""
    if norm is None or not isinstance(policy.body, QuantizedMLP):
        return False
    first = policy.body.layers[0]
    bounds = np.array([-norm.clip, norm.clip], dtype=np.float32)
    ends = quantize_input(bounds, first.input_scale, first.input_zero_point)
    return [int(v) for v in ends] == [-128, 127]


def _bin(top: str) -> str:
    """C for ``clip(floor(s), 0, top)`` without libm (NaN → 0)."""
    return f"!(s >= 0.0) ? 0 : (s >= (double){top} ? (int32_t){top} : (int32_t)s)"


def _state_function(w: _Writer, policy: Policy, last: Discretize | None) -> None:
    """``rlb_state(obs)``: the table row, from a Discrete observation or a discretizer."""
    if last is None:
        n = policy.observation_space.n
        if policy.observation_space.kind != "discrete" or n is None:
            raise _fail(f"a {policy.body.kind} body needs a Discrete observation or a "
                        "discretize preprocess")  # fmt: skip
        w.helper(
            "rlb_state",
            f"""
/* a Discrete observation: obs[0] is the state, clamped to 0..{n - 1} */
static int32_t rlb_state(const float *obs)
{{
    const float v = obs[0];
    if (!(v >= 0.0f)) {{
        return 0;
    }}
    return v > {c_float(n - 1)} ? {n - 1} : (int32_t)v;
}}
""",
        )
        return
    bins = np.asarray(last.bins)
    w.array("rlb_disc_low", last.low.astype(np.float64), "discretize: low (float64)")
    w.array("rlb_disc_range", (last.high - last.low).astype(np.float64),
            "discretize: high - low, computed in float32 as numpy does")  # fmt: skip
    w.const("rlb_disc_bins", bins.tolist(), "int32_t", "discretize: bins per dimension")
    w.helper(
        "rlb_state",
        f"""
/* discretize: row-major index of clip(floor((x - low) / (high - low) * bins), 0, bins - 1) */
static int32_t rlb_state(const float *obs)
{{
    int32_t d, k, state = 0;
    double s;
    for (d = 0; d < {len(bins)}; ++d) {{
        s = ((double)rlb_input(obs, d) - rlb_disc_low[d]) / rlb_disc_range[d]
            * (double)rlb_disc_bins[d];
        k = {_bin("(rlb_disc_bins[d] - 1)")};
        state = state * rlb_disc_bins[d] + k;
    }}
    return state;
}}
""",
    )


def _vector(w: _Writer, policy: Policy, last: OneHot | None, target: str, width: int,
            q: tuple[float, int] | None = None) -> None:  # fmt: skip
    """Fill ``target[0..width)`` with the body input (int8 when ``q`` gives scale, zero point)."""
    if isinstance(last, OneHot):
        _state_function(w, policy, None)
        if q is None:
            w.line(_loop("i", width, f"{target}[i] = 0.0f;"))
            w.line(f"    {target}[rlb_state(obs)] = 1.0f; /* one_hot */")
            return
        zero, one = quantize_input(np.array([0.0, 1.0], dtype=np.float32), *q).tolist()
        w.line(_loop("i", width, f"{target}[i] = {zero};"))
        w.line(f"    {target}[rlb_state(obs)] = {one}; /* one_hot, quantized */")
        return
    if q is None:
        w.line(_loop("i", width, f"{target}[i] = rlb_input(obs, i);"))
        return
    helper, scale = quantize_helper(q[0])
    w.helper("rlb_quantize", helper)
    quantize = f"rlb_quantize(rlb_input(obs, i), {c_float(scale)}, {q[1]})"
    w.line(_loop("i", width, f"{target}[i] = {quantize};"))


def _mlp(w: _Writer, policy: Policy, body: MLP, last: OneHot | None) -> str:
    widths = [int(body.layers[0].W.shape[0])] + [int(la.W.shape[1]) for la in body.layers]
    size = max(a + b for a, b in pairwise(widths))
    w.buffer("rlb_arena", "float", size, "activations: the largest pair of live layers")
    _vector(w, policy, last, "rlb_arena", widths[0])
    half = body.half
    if half:  # float16 weights: halves in flash, float32 sums, activations rounded to half
        w.helper("half", HALF)
        w.line(_loop("i", widths[0], "rlb_arena[i] = rlb_round_half(rlb_arena[i]);"))
    activations = {la.activation for la in body.layers}
    w.libm |= bool(activations & {"tanh", "sigmoid"})
    x = "rlb_arena"
    for i, la in enumerate(body.layers):
        n_in, n_out = la.W.shape
        y = f"(rlb_arena + {size - n_out})" if i % 2 == 0 else "rlb_arena"
        dtype = "float16 bit patterns" if half else "float32"

        def values(a: Array) -> Array:
            return a.view(np.uint16) if half else a.astype(np.float32)

        b = w.array(f"rlb_b{i}", values(la.b), f"layer {i}: b, {dtype}")
        csr = sparse_weights(la.W)
        if csr is None:
            name, text = _dense_kernel(activations, half=half)
            w.array(f"rlb_w{i}", values(la.W.T), f"layer {i}: W [{n_out}][{n_in}], {dtype}")
            args = f"rlb_w{i}, {b}, {n_in}, {n_out}"
        else:
            index, pointer = CTYPES[str(csr["indices"].dtype)], CTYPES[str(csr["indptr"].dtype)]
            name, text = _dense_kernel(activations, half=half, index=index, pointer=pointer)
            nnz = len(csr["values"])
            note = f"layer {i}: W [{n_out}][{n_in}] as CSR, {nnz} stored weights, {dtype}"
            w.array(f"rlb_w{i}", values(csr["values"]), note)
            w.array(f"rlb_col{i}", csr["indices"], f"layer {i}: input index of each weight")
            w.array(f"rlb_start{i}", csr["indptr"], f"layer {i}: first weight of each output")
            args = f"rlb_w{i}, rlb_col{i}, rlb_start{i}, {b}, {n_out}"
        w.helper(name, text)
        to_half = f", {int(i < len(body.layers) - 1)}" if half else ""
        w.line(f"    {name}({x}, {y}, {args}, {ACTIVATION_CODES[la.activation]}{to_half});"
               f" /* {la.activation} */")  # fmt: skip
        x = y
    return x


def _tanh_table(la: QDense) -> tuple[str, Array | None, str]:
    """How an int8 layer's odd tanh table is exported: ("knots", its 17 knots, note),
    ("odd", its half for 0..127, note), or ("", None, "") for any other table or none."""
    if la.lut is None or la.activation != "tanh":
        return "", None, ""
    knots = tanh_knots(la.lut)
    if knots is not None:
        return "knots", knots, "17 knots, inputs 0, 8, ..., 128"
    half = odd_half(la.lut)
    return ("odd", half, "inputs 0..127") if half is not None else ("", None, "")


def _mlp_int8(w: _Writer, policy: Policy, body: QuantizedMLP, last: OneHot | None) -> str:
    widths = [int(body.layers[0].W.shape[0])] + [int(la.W.shape[1]) for la in body.layers]
    size = max(a + b for a, b in pairwise(widths))
    w.buffer("rlb_arena", "int8_t", size, "int8 activations: the largest pair of live layers")
    first = body.layers[0]
    _vector(w, policy, last, "rlb_arena", widths[0], (first.input_scale, first.input_zero_point))
    requantized = [la for la in body.layers if not la.float_output]
    if any(la.requantize == "high_word" for la in requantized):
        w.helper("rlb_rhm", HIGH_WORD)
    tflite = [la for la in requantized if la.requantize != "high_word"]
    left = any(bool((la.shift > 0).any()) for la in tflite)
    if tflite:
        w.helper("fixed_point", FIXED_POINT.replace("@LEFT\n", LEFT_SHIFT + "\n" if left else "")
                 .replace("@RIGHT", "shift > 0 ? 0 : -shift" if left else "-shift"))  # fmt: skip
    x = "rlb_arena"
    tables: dict[bytes, str] = {}  # equal odd tables: one array
    for i, la in enumerate(body.layers):
        n_in, n_out = la.W.shape
        y = f"(rlb_arena + {size - n_out})" if i % 2 == 0 else "rlb_arena"
        w.array(f"rlb_w{i}", la.W.T, f"layer {i}: int8 W [{n_out}][{n_in}]")
        w.array(f"rlb_b{i}", la.b, f"layer {i}: {la.b.dtype} bias")
        ch = int(la.w_scale.size > 1)
        if la.float_output and argmax_on_acc(policy, la):
            name = _kernel(w, "dense_int8_acc", DENSE_INT8_ACC, la.b)
            w.buffer("rlb_acc", "int32_t", n_out, "the last layer's int32 accumulators")
            w.line(f"    {name}({x}, rlb_acc, rlb_w{i}, rlb_b{i}, {n_in}, {n_out}, "
                   f"{la.input_zero_point});")  # fmt: skip
            return "rlb_acc"
        if la.float_output:
            name = _kernel(w, "dense_int8_float", DENSE_INT8_FLOAT, la.b)
            w.buffer("rlb_out", "float", n_out, "the last layer's dequantized output")
            w.array(f"rlb_scale{i}", la.dequant_scale, f"layer {i}: input_scale * w_scale")
            w.line(f"    {name}({x}, rlb_out, rlb_w{i}, rlb_b{i}, rlb_scale{i}, {ch}, "
                   f"{n_in}, {n_out}, {la.input_zero_point});")  # fmt: skip
            return "rlb_out"
        table, stored, note = _tanh_table(la)
        name = _kernel(w, "dense_int8", DENSE_INT8, la.b, table, bool(ch),
                       la.requantize == "high_word")  # fmt: skip
        requant = f"{int(la.multiplier[0])}, {int(la.shift[0])}"  # one for the layer
        if ch:
            w.array(f"rlb_m{i}", la.multiplier, f"layer {i}: requantization multipliers (Q0.31)")
            w.array(f"rlb_s{i}", la.shift.astype(np.int8), f"layer {i}: requantization shifts")
            requant = f"rlb_m{i}, rlb_s{i}, {ch}"
        lut, low = "0", max(la.clamp_low, ODD_LOW) if table else la.clamp_low
        if stored is not None:
            lut = tables.get(stored.tobytes()) or w.array(
                f"rlb_lut{i}", stored, f"layer {i}: tanh lookup table, {note} (odd)"
            )
            tables[stored.tobytes()] = lut
        elif la.lut is not None:
            lut = w.array(f"rlb_lut{i}", la.lut, f"layer {i}: {la.activation} lookup table")
        w.line(f"    {name}({x}, {y}, rlb_w{i}, rlb_b{i}, {requant}, {n_in}, "
               f"{n_out}, {la.input_zero_point}, {la.output_zero_point}, {low}, "
               f"{lut}); /* {la.activation} */")  # fmt: skip
        x = y
    return x


def _linear(w: _Writer, policy: Policy, body: Linear, last: TileCode | OneHot | None) -> str:
    n_in, n_out = body.W.shape
    w.buffer("rlb_out", "float", n_out, "body outputs")
    quantized = body.scale is not None
    if quantized:
        assert body.scale is not None
        w.array("rlb_scale", body.scale, "one scale per output")
    if isinstance(last, TileCode):
        return _tiles(w, body, last)
    w.buffer("rlb_x", "float", n_in, "body inputs")
    _vector(w, policy, last, "rlb_x", n_in)
    w.array("rlb_w", body.W.T, f"W [{n_out}][{n_in}]")
    w.array("rlb_b", body.b, "b")
    weight = "(float)rlb_w[j * {n}] * rlb_scale[j]" if quantized else "rlb_w[j * {n}]"
    bias = "(float)rlb_b[j] * rlb_scale[j]" if quantized else "rlb_b[j]"
    w.line(f"""    for (j = 0; j < {n_out}; ++j) {{
        float acc = 0.0f;
        for (i = 0; i < {n_in}; ++i) {{
            acc += rlb_x[i] * ({weight.format(n=f"{n_in} + i")});
        }}
        rlb_out[j] = acc + {bias};
    }}""")
    return "rlb_out"


def _tiles(w: _Writer, body: Linear, tc: TileCode) -> str:
    n_features, n_out = body.W.shape
    width = (tc.high - tc.low) / tc.tiles_per_dim  # float32, as TileCode.apply
    w.array("rlb_tile_low", tc.low.astype(np.float64), "tile coding: low (float64)")
    w.array("rlb_tile_width", width.astype(np.float64),
            "tile coding: tile width, computed in float32 as numpy does")  # fmt: skip
    w.array("rlb_w", body.W, f"W [{n_features}][{n_out}], one row per feature")
    w.array("rlb_b", body.b, "b")
    quantized = body.scale is not None
    if quantized:
        w.buffer("rlb_acc", "int32_t", n_out, "integer tile sums")
    acc = "rlb_acc" if quantized else "rlb_out"
    tpd, dims = tc.tiles_per_dim, len(tc.low)
    hashed = (f"\n        f = (int32_t)((uint32_t)((uint32_t)f * UINT32_C(2654435761)) % "
              f"{tc.hash_size}u);") if tc.hash_size else ""  # fmt: skip
    w.line(_loop("j", n_out, f"{acc}[j] = 0;"))
    w.line(f"""    for (t = 0; t < {tc.tilings}; ++t) {{ /* one active feature per tiling */
        int32_t d, k, f = 0;
        double s;
        for (d = 0; d < {dims}; ++d) {{
            s = ((double)rlb_input(obs, d) - rlb_tile_low[d]) / rlb_tile_width[d]
                + (double)t / {c_double(tc.tilings)};
            k = {_bin(str(tpd))};
            f = f * {tpd + 1} + k;
        }}
        f += t * {tc.per_tiling};{hashed}
        for (j = 0; j < {n_out}; ++j) {{
            {acc}[j] += rlb_w[f * {n_out} + j];
        }}
    }}""")
    if quantized:
        w.line(_loop("j", n_out, "rlb_out[j] = (float)(rlb_acc[j] + rlb_b[j]) * rlb_scale[j];"))
    else:
        w.line(_loop("j", n_out, "rlb_out[j] += rlb_b[j];"))
    return "rlb_out"


def _head(w: _Writer, policy: Policy, y: str, n: int, int8: QuantizedMLP | None) -> None:
    head = policy.head
    if policy.action_space.kind == "discrete":
        if head.kind != "argmax":
            raise _fail(f"head {head.kind!r} on discrete actions; expected argmax")
        ctype = "int8_t" if int8 else "int32_t" if y == "rlb_acc" else "float"
        w.helper("argmax", _argmax(ctype))
        suffix = {"int8_t": "_int8", "int32_t": "_int32"}.get(ctype, "")
        w.line(f"    (void)action;\n    return rlb_argmax{suffix}({y}, {n});")
        return
    if head.kind == "argmax":
        raise _fail("an argmax head needs discrete actions")
    bounded = (
        head.kind in ("clip", "tanh_rescale") and head.low is not None and head.high is not None
    )
    if int8 is not None:
        scale, zp = int8.layers[-1].out_quant
        if bounded and head.kind == "tanh_rescale":
            table = head.apply(
                np.repeat(dequantize(np.arange(-128, 128), scale, zp)[:, None], n, 1)
            )
            w.array("rlb_head_table", table.T, "tanh_rescale of each int8 output, per dimension")
            w.line(_loop("j", n, f"action[j] = rlb_head_table[j * 256 + {y}[j] + 128];"))
            w.line("    return 0;")
            return
        value = f"(float)((int32_t){y}[j] - {zp}) * {c_float(scale)}"
    else:
        value = f"{y}[j]"
    if not bounded:
        w.line(_loop("j", n, f"action[j] = {value};") + "\n    return 0;")
        return
    assert head.low is not None and head.high is not None
    if head.kind == "clip":
        w.array("rlb_low", head.low, "action bounds: low")
        w.array("rlb_high", head.high, "action bounds: high")
        w.line(f"""    for (j = 0; j < {n}; ++j) {{
        float v = {value};
        if (v < rlb_low[j]) {{
            v = rlb_low[j];
        }}
        if (v > rlb_high[j]) {{
            v = rlb_high[j];
        }}
        action[j] = v;
    }}
    return 0;""")
        return
    w.libm = True
    w.array("rlb_half_span", head.half_span, "(high - low) / 2")
    w.array("rlb_mid", head.mid, "low + (high - low) / 2")
    w.line(f"""    for (j = 0; j < {n}; ++j) {{ /* tanh_rescale, as numpy: tanh · half_span + mid */
        action[j] = tanhf({value}) * rlb_half_span[j] + rlb_mid[j];
    }}
    return 0;""")


POPCOUNT8 = """
/* set bits of one byte (SWAR, no builtins) */
static int32_t rlb_popcount8(uint32_t v)
{
    v = v - ((v >> 1) & 0x55u);
    v = (v & 0x33u) + ((v >> 2) & 0x33u);
    return (int32_t)((v + (v >> 4)) & 0x0fu);
}
"""


def _packed_table(w: _Writer, body: PackedTable) -> None:
    """A packed table's lookup, dense or sparse (bitmap + rank), as :class:`PackedTable`."""
    padded = np.append(body.packed, np.uint8(0))  # one spare byte: reads stay inside
    w.array("rlb_packed", padded, f"actions, {body.bits} bits each, LSB first")
    w.helper("rlb_packed_entry", f"""
/* entry i of rlb_packed: bits i*{body.bits} .. i*{body.bits}+{body.bits - 1}, LSB first */
static int rlb_packed_entry(int32_t i)
{{
    const int32_t bit = i * {body.bits};
    const uint32_t word = (uint32_t)rlb_packed[bit >> 3]
                          | ((uint32_t)rlb_packed[(bit >> 3) + 1] << 8);
    return (int)((word >> (bit & 7)) & {(1 << body.bits) - 1}u);
}}
""")  # fmt: skip
    lookup = "rlb_packed_entry"
    if body.stored is not None and body.rank is not None:
        w.array("rlb_stored", body.stored, "1 bit per state, LSB first: the state has an entry")
        w.array("rlb_rank", body.rank, "rank[k]: entries before state 64 * k")
        w.helper("rlb_popcount8", POPCOUNT8)
        w.helper("rlb_sparse_action", f"""
/* a stored state's entry is its rank: rlb_rank[s / 64] plus the set bits before it in its
   block (at most 8 bitmap bytes); any other state acts the default */
static int rlb_sparse_action(int32_t s)
{{
    const uint32_t byte = rlb_stored[s >> 3];
    int32_t k, r;
    if (!((byte >> (s & 7)) & 1u)) {{
        return {body.default};
    }}
    r = (int32_t)rlb_rank[s >> 6];
    for (k = (s >> 6) << 3; k < (s >> 3); ++k) {{
        r += rlb_popcount8(rlb_stored[k]);
    }}
    r += rlb_popcount8(byte & ((1u << (s & 7)) - 1u));
    return rlb_packed_entry(r);
}}
""")  # fmt: skip
        lookup = "rlb_sparse_action"
    w.line(f"    (void)action;\n    return {lookup}(rlb_state(obs));")


def _generate(policy: Policy) -> _Writer:
    """The writer filled with everything ``policy.c`` holds for ``policy``."""
    _check_arrays(policy)
    w = _Writer()
    norm, last = _split_preprocess(policy)
    if policy.observation_space.kind == "box":
        _input_function(w, norm, not _int8_saturates_first(policy, norm))
    body = policy.body
    if isinstance(body, MLP | QuantizedMLP | Linear) and isinstance(last, Discretize):
        raise _fail(f"a {body.kind} body after discretize is not supported")
    if isinstance(body, MLP | QuantizedMLP):
        if isinstance(last, TileCode):
            raise _fail(f"a {body.kind} body after tile_code is not supported")
        gen = _mlp if isinstance(body, MLP) else _mlp_int8
        y = gen(w, policy, body, last)  # type: ignore[arg-type]
        n = int(body.layers[-1].W.shape[1])
        int8 = isinstance(body, QuantizedMLP) and not body.layers[-1].float_output
        _head(w, policy, y, n, body if int8 else None)  # type: ignore[arg-type]
    elif isinstance(body, Linear):
        y = _linear(w, policy, body, last)  # type: ignore[arg-type]
        _head(w, policy, y, int(body.W.shape[1]), None)
    elif isinstance(body, Table | PackedTable):
        if isinstance(last, TileCode | OneHot):
            raise _fail(f"a {body.kind} body after {last.kind} is not supported")
        _state_function(w, policy, last)
        if isinstance(body, Table):
            n = int(body.values.shape[1])
            w.array("rlb_values", body.values, f"table [{body.values.shape[0]}][{n}]")
            w.line(f"    {{\n        const float *y = rlb_values + rlb_state(obs) * {n};")
            _head(w, policy, "y", n, None)
            w.line("    }")
        else:
            _packed_table(w, body)
    else:
        raise _fail(f"body kind {body.kind!r} is not supported; the C export handles mlp, "
                    "mlp_int8, table, packed_table, linear")  # fmt: skip
    return w


def _source(policy: Policy, w: _Writer) -> str:
    code = "\n".join(w.code)
    loops = [v for v in ("i", "j", "t") if f"({v} = 0;" in code]
    declare = f"    int32_t {', '.join(loops)};\n" if loops else ""
    includes = "#include <stdint.h>" + ("\n#include <math.h>" if w.libm else "")
    sections = [
        f"/* Generated by rlbudget {__version__}: {_origin(policy)}. Do not edit. */",
        f'#include "{HEADER}"\n\n{includes}',
        "/* --- constants (flash) --- */",
        *w.consts,
        "/* --- working buffers (RAM) --- */" if w.buffers else "",
        *w.buffers,
        *w.helpers.values(),
        f"int rlb_policy_act(const float *obs, float *action)\n{{\n{declare}{code}\n}}",
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def _origin(policy: Policy) -> str:
    prov = policy.provenance
    parts = [str(prov[k]) for k in ("algorithm", "env") if prov.get(k)]
    parts += [t.get("method", "?") for t in prov.get("transforms", []) if isinstance(t, dict)]
    pipeline = " -> ".join([*(p.kind for p in policy.preprocess), policy.body.kind,
                            policy.head.kind])  # fmt: skip
    return pipeline + (f" ({', '.join(parts)})" if parts else "")


def _header(policy: Policy, w: _Writer) -> str:
    obs, act = policy.observation_space, policy.action_space
    discrete = act.kind == "discrete"
    n_actions = f"#define RLB_N_ACTIONS {act.n}\n" if discrete else ""
    obs_note = ("obs[0] holds the state index (a Discrete observation)" if obs.kind == "discrete"
                else f"obs holds the {obs.dim} observation values, in the env's order")  # fmt: skip
    returns = (f"the action index, 0..{(act.n or 1) - 1}; action is not used (may be NULL)"
               if discrete else f"0, after writing {act.dim} floats to action")  # fmt: skip
    if obs.radices is not None:
        obs_note += f"; rlb_obs_index(parts) gives it for a Tuple of {len(obs.radices)} Discrete"
    libm = " -lm" if w.libm else ""
    no_libm = "" if w.libm else ", no libm"
    return f"""/* Generated by rlbudget {__version__}: {_origin(policy)}. Do not edit.
 *
 * int rlb_policy_act(const float *obs, float *action);
 *   {obs_note}.
 *   Returns {returns}.
 *   Not reentrant: it uses static buffers (RLB_RAM_BYTES). No malloc{no_libm}.
 *
 * Host test: cc -std=c99 -O2 policy.c main.c -o policy{libm} && ./policy < observations.txt
 */
#ifndef RLB_POLICY_H
#define RLB_POLICY_H

#define RLB_OBS_DIM {obs.dim}
#define RLB_ACTION_DIM {1 if discrete else act.dim}
#define RLB_DISCRETE_ACTIONS {int(discrete)}
{n_actions}#define RLB_RAM_BYTES {w.ram}
#define RLB_FLASH_BYTES {w.flash}

{_index_function(obs)}#ifdef __cplusplus
extern "C" {{
#endif

int rlb_policy_act(const float *obs, float *action);

#ifdef __cplusplus
}}
#endif

#endif /* RLB_POLICY_H */
"""


def _index_function(obs: SpaceSpec) -> str:
    """For a Discrete read from a Tuple of Discrete spaces: ``rlb_obs_index(parts)``, the
    state index that ``obs[0]`` takes (row-major mixed radix, as ``SpaceSpec.index``)."""
    if obs.radices is None:
        return ""
    k = len(obs.radices)
    terms = "parts[0]"
    for i, radix in enumerate(obs.radices[1:], start=1):
        terms = f"({terms}) * {radix} + parts[{i}]"
    return f"""
/* The observation is a Tuple of {k} Discrete parts, sizes {", ".join(map(str, obs.radices))};
 * parts[i] counted from 0 (subtract the part's start). Returns the state for obs[0]. */
#define RLB_OBS_PARTS {k}
static inline long rlb_obs_index(const int *parts)
{{
    return {terms};
}}

"""


HARNESS_TEXT = """/* Host harness generated by rlbudget: reads observations from stdin (RLB_OBS_DIM
 * whitespace-separated floats each, one observation per line) and prints one action per
 * line (an integer, or RLB_ACTION_DIM floats printed with %.9g). Exit 2 on bad input. */
#include <stdio.h>

#include "policy.h"

int main(void)
{
    float obs[RLB_OBS_DIM];
    float action[RLB_ACTION_DIM];
    int i, got;
    for (;;) {
        for (i = 0; i < RLB_OBS_DIM; ++i) {
            got = scanf("%f", &obs[i]);
            if (got != 1) {
                if (i == 0 && got == EOF) {
                    return 0;
                }
                fprintf(stderr, "observation value %d: expected a number\\n", i);
                return 2;
            }
        }
#if RLB_DISCRETE_ACTIONS
        printf("%d\\n", rlb_policy_act(obs, action));
#else
        rlb_policy_act(obs, action);
        for (i = 0; i < RLB_ACTION_DIM; ++i) {
            printf(i ? " %.9g" : "%.9g", (double)action[i]);
        }
        printf("\\n");
#endif
    }
}
"""


def export_c(
    policy: Policy, out_dir: str | os.PathLike[str], *, parents: bool = False
) -> ExportResult:
    """Write ``policy.h``, ``policy.c`` and ``main.c`` (a stdin/stdout harness) to ``out_dir``.

    The folder is written atomically; an existing folder is replaced only if rlbudget
    wrote it (it holds ``policy.h``) or it is empty. ``parents``: create missing parent
    folders first.

    :param policy: any policy whose parts the C export supports (see the module docstring).
    :param out_dir: the folder to create or replace.
    :returns: the files, RAM bytes of the static buffers, flash bytes of the const arrays,
        and whether ``policy.c`` needs libm (float tanh/sigmoid only).
    :raises PolicyError: a part the C export does not support, or non-finite constants.
    :raises RlbudgetError: the parent folder is missing, or ``out_dir`` is another folder.
    """
    from rlbudget.fileio import atomic_write_dir

    w = _generate(policy)
    files = {HEADER: _header(policy, w), SOURCE: _source(policy, w), HARNESS: HARNESS_TEXT}
    folder = atomic_write_dir(out_dir, {k: v.encode() for k, v in files.items()}, marker=HEADER,
                              parents=parents)  # fmt: skip
    return ExportResult(tuple(folder / name for name in files), w.ram, w.flash, w.libm)
