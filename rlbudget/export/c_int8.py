"""The ``mlp_int8`` pieces of ``policy.c``: which runtime functions an int8 layer needs and
how they are instantiated (:mod:`rlbudget.export.kernels`), bit-exact with
:class:`~rlbudget.policy.model.QuantizedMLP`.

- the input: ``rlb_quantize`` (``quantize.c``), and ``rlb_input`` without the normalize
  step's clip where the quantization saturates first (:func:`int8_saturates_first`);
- a layer: ``dense_int8.c`` with its requantization constants as two arguments (one scale
  for the layer) or arrays (per channel), requantized with one rounding of the product's
  high word (``high_word.c``, ``requantize`` "high_word") or TFLite's two
  (``fixed_point.c``), and its tanh table as 17 knots (``knots.c``), an odd half or a full
  table (:func:`tanh_table`);
- the last layer of a float head: its int32 accumulators, dequantized or, for an argmax
  head, as they are (:func:`argmax_on_acc`);
- on a core with the DSP extension (Cortex-M4/M7), every int8 kernel multiplies with SMLAD
  (``dsp_int8.c``, chosen by the compiler: ``#if`` :data:`DSP` in ``policy.c``) on the
  input expanded to int16 in ``rlb_x16`` (:func:`dsp_buffer`).

:mod:`rlbudget.export.c` wires the layers together.
"""

from __future__ import annotations

import numpy as np

from rlbudget.export.c_source import CTYPES, CWriter
from rlbudget.export.kernels import instance
from rlbudget.policy.knots import tanh_knots
from rlbudget.policy.model import (
    Array,
    Normalize,
    Policy,
    QDense,
    QuantizedMLP,
    odd_half,
    quantize_input,
)

QUANTIZE = instance("quantize.c", RLB_HALF_SCALE=1)
"""``rlb_quantize(v, scale / 2, zero_point)``: float32 → int8, half away from zero."""
QUANTIZE_FULL_SCALE = instance("quantize.c", RLB_HALF_SCALE=0)
"""The quantization when ``scale / 2`` is not exact in float32 (a scale below 2**-125)."""
DSP = "defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && !defined(__OPTIMIZE_SIZE__)"
"""Where the int8 kernels take their DSP path (``dsp_int8.c``): a core with the DSP extension
(Cortex-M4/M7), a compiler with GNU inline assembly (gcc, clang), a build not optimized for
size (at ``-Os`` the portable loop is ~340 B smaller, and the int8 object stays ≥ 3.5×
smaller than float32's)."""
ODD_LOW = -127
"""The clamp's lower bound of a layer with an odd table or knots: input -128 reads as -127."""


def quantize_helper(scale: float) -> tuple[str, float]:
    """The C of ``rlb_quantize`` for the input ``scale`` and the scale to pass it:
    :data:`QUANTIZE` with ``scale / 2`` (fewer float operations: a division, two compares
    and a conversion) where halving is exact, else :data:`QUANTIZE_FULL_SCALE`."""
    full = np.float32(scale)
    half = full / np.float32(2)
    if half * np.float32(2) == full and half >= np.finfo(np.float32).tiny:
        return QUANTIZE, float(half)
    return QUANTIZE_FULL_SCALE, float(full)


def int8_saturates_first(policy: Policy, norm: Normalize | None) -> bool:
    """The int8 body's input quantization maps the normalize step's clip bounds to -128 and
    127: then the clip changes no int8 input (quantizing is monotone; NaN passes both) and
    the C export leaves it out."""
    if norm is None or not isinstance(policy.body, QuantizedMLP):
        return False
    first = policy.body.layers[0]
    bounds = np.array([-norm.clip, norm.clip], dtype=np.float32)
    ends = quantize_input(bounds, first.input_scale, first.input_zero_point)
    return [int(v) for v in ends] == [-128, 127]


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


def requantize_helpers(w: CWriter, layers: tuple[QDense, ...]) -> None:
    """The requantization functions the int8 ``layers`` call: ``rlb_rhm`` where one has
    ``requantize`` "high_word", TFLite's ``rlb_mbqm`` where one has not (with the left
    shift only where such a layer shifts left)."""
    requantized = [la for la in layers if not la.float_output]
    if any(la.requantize == "high_word" for la in requantized):
        w.helper("rlb_rhm", instance("high_word.c"))
    tflite = [la for la in requantized if la.requantize != "high_word"]
    if tflite:
        left = any(bool((la.shift > 0).any()) for la in tflite)
        w.helper("fixed_point", instance("fixed_point.c", RLB_LEFT_SHIFT=int(left)))


def tanh_table(la: QDense) -> tuple[str, Array | None, str]:
    """How an int8 layer's odd tanh table is exported: ("knots", its 17 knots, note),
    ("odd", its half for 0..127, note), or ("", None, "") for any other table or none."""
    if la.lut is None or la.activation != "tanh":
        return "", None, ""
    knots = tanh_knots(la.lut)
    if knots is not None:
        return "knots", knots, "17 knots, inputs 0, 8, ..., 128"
    half = odd_half(la.lut)
    return ("odd", half, "inputs 0..127") if half is not None else ("", None, "")


def dsp_buffer_bytes(layers: tuple[QDense, ...]) -> int:
    """Bytes of ``rlb_x16`` (:func:`dsp_buffer`): two int32 per group of four inputs of the
    widest int8 layer (2 B per input), at least one word."""
    return 4 * max(1, max(int(la.W.shape[0]) // 4 * 2 for la in layers))


def dsp_buffer(w: CWriter, layers: tuple[QDense, ...]) -> None:
    """The DSP kernels' helpers and ``rlb_x16``, the expanded input of the widest int8 layer
    (:func:`dsp_buffer_bytes`), declared only where the DSP path is compiled (:data:`DSP`):
    not in ``ram_bytes`` (``RLB_RAM_BYTES``), which is every other build's; its size is in
    its comment. ``profile``'s footprint of an ``-O2`` build counts it (it links that build,
    or adds :func:`dsp_buffer_bytes` to its estimate)."""
    words = dsp_buffer_bytes(layers) // 4
    w.helper("dsp_int8", instance("dsp_int8.c"))
    w.buffers.append(
        f"#if {DSP}\nstatic int32_t rlb_x16[{words}]; /* {4 * words} B more RAM: "
        "the widest int8 input minus its zero point, as int16 pairs */\n#endif"
    )


def int8_kernel(w: CWriter, name: str, bias: Array, la: QDense | None = None) -> str:
    """Emit the int8 kernel ``name`` (``dense_int8``, ``dense_int8_acc``,
    ``dense_int8_float``) for ``bias``'s C type (int16 or int32) and, for ``dense_int8``,
    the layer ``la``'s table (:func:`tanh_table`), requantization and constants (per
    channel: arrays); its C name: ``rlb_<name>`` plus ``_b16``, ``_odd``/``_knots``,
    ``_pc`` (per channel) and ``_hw`` (high word)."""
    suffix = "_b16" if bias.dtype == np.int16 else ""
    params: dict[str, str | int] = {"RLB_BIAS": CTYPES[str(bias.dtype)]}
    if name == "dense_int8" and la is not None:
        table = tanh_table(la)[0]
        per_channel, high_word = la.w_scale.size > 1, la.requantize == "high_word"
        suffix += (f"_{table}" if table else "") + ("_pc" if per_channel else "")
        suffix += "_hw" if high_word else ""
        params |= {"RLB_PER_CHANNEL": int(per_channel), "RLB_KNOTS": int(table == "knots"),
                   "RLB_ODD_LUT": int(table == "odd"),
                   "RLB_REQUANTIZE": "rlb_rhm" if high_word else "rlb_mbqm"}  # fmt: skip
        if table == "knots":
            w.helper("rlb_knots", instance("knots.c"))
    rename = {f"rlb_{name}": f"rlb_{name}{suffix}"}
    w.helper(name + suffix, instance(f"{name}.c", **params, **rename))
    return f"rlb_{name}{suffix}"


def dense_int8_call(
    w: CWriter, la: QDense, i: int, x: str, y: str, tables: dict[bytes, str]
) -> str:
    """Emit the call of layer ``i`` (``la``, requantized to int8) from ``x`` into ``y`` and
    the arrays it reads (a tanh table equal to an earlier one's, in ``tables``, is
    exported once)."""
    n_in, n_out = la.W.shape
    name = int8_kernel(w, "dense_int8", la.b, la)
    table, stored, note = tanh_table(la)
    requant = f"{int(la.multiplier[0])}, {int(la.shift[0])}"  # one for the layer
    if la.w_scale.size > 1:
        w.array(f"rlb_m{i}", la.multiplier, f"layer {i}: requantization multipliers (Q0.31)")
        w.array(f"rlb_s{i}", la.shift.astype(np.int8), f"layer {i}: requantization shifts")
        requant = f"rlb_m{i}, rlb_s{i}, 1"
    lut, low = "0", max(la.clamp_low, ODD_LOW) if table else la.clamp_low
    if stored is not None:
        lut = tables.get(stored.tobytes()) or w.array(
            f"rlb_lut{i}", stored, f"layer {i}: tanh lookup table, {note} (odd)"
        )
        tables[stored.tobytes()] = lut
    elif la.lut is not None:
        lut = w.array(f"rlb_lut{i}", la.lut, f"layer {i}: {la.activation} lookup table")
    return (f"    {name}({x}, {y}, rlb_w{i}, rlb_b{i}, {requant}, {n_in}, {n_out}, "
            f"{la.input_zero_point}, {la.output_zero_point}, {low}, {lut}); "
            f"/* {la.activation} */")  # fmt: skip
