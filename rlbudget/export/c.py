"""A Policy as dependency-free C99: ``policy.h``, ``policy.c`` and a host harness ``main.c``.

The firmware calls one function, preprocess and head included::

    float obs[RLB_OBS_DIM] = {...};
    int a = rlb_policy_act(obs, NULL);          /* discrete actions: the action index */
    float u[RLB_ACTION_DIM];
    rlb_policy_act(obs, u);                     /* Box actions: RLB_ACTION_DIM floats */

Weights and tables are ``static RLB_CONST`` arrays in flash (``const``; avr-gcc's
``const __flash`` on AVR, where a const array would be copied to SRAM); working memory is
static buffers sized exactly (no malloc, no recursion). The kernels are plain C files in
``rlbudget/export/runtime/`` (compiled on their own by the tests); this module generates
the model's data and the entry point that wires it, and pastes into ``policy.c`` the
runtime functions that policy uses (:mod:`rlbudget.export.kernels`), so the folder stays
self-contained. What the C computes, and how it matches numpy:

- ``mlp_int8``: integer-only, **bit-exact** with :class:`~rlbudget.policy.model.QuantizedMLP`
  (the same float32 division and rounding for the input, the same requantization:
  gemmlowp's fixed point or one rounding of the product's high word, the same lookup
  tables, a tanh table as 17 knots; :mod:`rlbudget.export.c_int8`). A ``tanh_rescale``
  head reads a table of the 256 possible actions per dimension computed by numpy, so the
  int8 path needs no libm.
- ``table``, ``packed_table`` (dense, or sparse: a bitmap and ranks, looked up in constant
  time with a byte popcount, no builtins), tile-coded ``linear`` (float or int8/int16):
  exact. Tile coding and discretizing compute in float32 as numpy does
  (:mod:`rlbudget.policy.preprocess`: one subtraction and one multiplication by a
  precomputed scale per dimension, then integers; no divide, no ``double``), each float
  operation its own statement (so neither a contraction nor excess precision can change
  it) and every constant printed so that it reads back to the same float (``%.9g``).
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
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from rlbudget.errors import PolicyError
from rlbudget.export.c_conv import conv_chain
from rlbudget.export.c_int8 import QUANTIZE as QUANTIZE
from rlbudget.export.c_int8 import QUANTIZE_FULL_SCALE as QUANTIZE_FULL_SCALE
from rlbudget.export.c_int8 import argmax_on_acc as argmax_on_acc
from rlbudget.export.c_int8 import (
    dense_int8_call,
    dsp_buffer,
    int8_kernel,
    int8_saturates_first,
    quantize_helper,
    requantize_helpers,
)
from rlbudget.export.c_source import (
    CTYPES,
    HEADER,
    CWriter,
    c_float,
    loop,
    policy_c,
    policy_h,
)
from rlbudget.export.kernels import instance, source
from rlbudget.policy.io import sparse_weights
from rlbudget.policy.model import (
    CNN,
    MLP,
    Array,
    Cascade,
    Discretize,
    Linear,
    Normalize,
    OneHot,
    PackedTable,
    Policy,
    QuantizedMLP,
    Table,
    TileCode,
    dequantize,
    quantize_input,
)

SOURCE, HARNESS = "policy.c", "main.c"
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


def _fail(message: str) -> PolicyError:
    return PolicyError(f"export_c: {message}")


# --- runtime functions (runtime/*.c), pasted only when used ---------------------------------

HALF = instance("half.c")
"""``rlb_h2f``, ``rlb_f2h`` and ``rlb_round_half``: float16 bit patterns, exactly."""


def _dense_kernel(
    activations: set[str], *, half: bool, index: str | None = None, pointer: str | None = None
) -> tuple[str, str]:
    """(name, C text) of a dense layer kernel for float32 or float16 weights, dense or CSR
    (``index``/``pointer``: the C types of the column indices and row starts), with code
    for the ``activations`` its layers use only."""
    kind = "sparse" if index else "dense"
    name = f"rlb_{kind}_{'f16' if half else 'f32'}"
    params: dict[str, str | int] = {"RLB_HALF": int(half), "RLB_WEIGHT": "uint16_t" if half
                                    else "float"}  # fmt: skip
    params |= {f"RLB_{a.upper()}": int(a in activations) for a in ("relu", "tanh", "sigmoid")}
    if index is not None and pointer is not None:
        name += f"_{index[:-2]}_{pointer[:-2]}"
        params |= {"RLB_INDEX": index, "RLB_POINTER": pointer}
    return name, instance(f"{kind}_float.c", **params, **{f"rlb_{kind}_f32": name})


# --- the generator ---------------------------------------------------------------------------


def _check_arrays(policy: Policy) -> None:
    half_mlp = isinstance(policy.body, MLP) and policy.body.half
    for name, a in policy.arrays().items():
        if str(a.dtype) == "float16" and not (half_mlp and name.startswith("body.")):
            raise _fail(f"array '{name}' is float16, which C99 has no type for; export the "
                        "float32 policy (or quantize it to int8)")  # fmt: skip
        if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            raise _fail(f"array '{name}' contains NaN or inf; C constants must be finite")


def split_preprocess(
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


def input_function(w: CWriter, norm: Normalize | None, clip: bool = True) -> None:
    """``rlb_input(obs, i)``: observation element i after the float preprocess (without
    the normalize step's clip where ``clip`` is False:
    :func:`~rlbudget.export.c_int8.int8_saturates_first`)."""
    if norm is None:
        w.helper("rlb_input", instance("input.c", RLB_NORMALIZE=0))
        return
    std = np.sqrt(norm.var + np.float32(norm.eps))  # exactly numpy's float32 divisor
    w.array("rlb_norm_mean", norm.mean, "normalize: mean")
    w.array("rlb_norm_std", std, "normalize: sqrt(var + eps), computed in float32")
    w.helper("rlb_input", instance("input.c", RLB_NORMALIZE=1, RLB_CLIP=c_float(norm.clip),
                                   RLB_UNCLIPPED=int(not clip)))  # fmt: skip


# A float32 compare against the largest cell must be exact: whole numbers below 2**24.
FLOAT_WHOLE = 1 << 24


def check_grid(what: str, scale: Array, top: int) -> None:
    """The C export's float32 grid needs a finite scale and a largest cell float32 holds."""
    if not np.all(np.isfinite(scale)):
        raise _fail(f"{what}: high - low is too small for a float32 scale (count / (high - "
                    "low) overflows); widen [low, high]")  # fmt: skip
    if top >= FLOAT_WHOLE:
        raise _fail(f"{what}: {top:,} cells per dimension; the C export supports fewer than "
                    f"{FLOAT_WHOLE:,}")  # fmt: skip


def state_function(w: CWriter, policy: Policy, last: Discretize | None) -> None:
    """``rlb_state(obs)``: the table row, from a Discrete observation or a discretizer."""
    if last is None:
        n = policy.observation_space.n
        if policy.observation_space.kind != "discrete" or n is None:
            raise _fail(f"a {policy.body.kind} body needs a Discrete observation or a "
                        "discretize preprocess")  # fmt: skip
        w.helper("rlb_state", instance("state.c", RLB_DISCRETIZE=0, RLB_LAST_STATE=n - 1))
        return
    bins = np.asarray(last.bins)
    check_grid("discretize", last.scale, int(bins.max()) - 1)
    w.array("rlb_disc_low", last.low, "discretize: low")
    w.array("rlb_disc_scale", last.scale,
            "discretize: bins / (high - low), computed in float32 as numpy does")  # fmt: skip
    w.const("rlb_disc_bins", bins.tolist(), "int32_t", "discretize: bins per dimension")
    w.helper("rlb_state", instance("state.c", RLB_DISCRETIZE=1, RLB_DIMS=len(bins)))


def _vector(w: CWriter, policy: Policy, last: OneHot | None, target: str, width: int,
            q: tuple[float, int] | None = None) -> None:  # fmt: skip
    """Fill ``target[0..width)`` with the body input (int8 when ``q`` gives scale, zero point)."""
    if isinstance(last, OneHot):
        state_function(w, policy, None)
        if q is None:
            w.line(loop("i", width, f"{target}[i] = 0.0f;"))
            w.line(f"    {target}[rlb_state(obs)] = 1.0f; /* one_hot */")
            return
        zero, one = quantize_input(np.array([0.0, 1.0], dtype=np.float32), *q).tolist()
        w.line(loop("i", width, f"{target}[i] = {zero};"))
        w.line(f"    {target}[rlb_state(obs)] = {one}; /* one_hot, quantized */")
        return
    if q is None:
        w.line(loop("i", width, f"{target}[i] = rlb_input(obs, i);"))
        return
    helper, scale = quantize_helper(q[0])
    w.helper("rlb_quantize", helper)
    quantize = f"rlb_quantize(rlb_input(obs, i), {c_float(scale)}, {q[1]})"
    w.line(loop("i", width, f"{target}[i] = {quantize};"))


Chain = tuple[int, str, int]
"""Where a ``cnn`` body's dense layers start (:func:`~rlbudget.export.c_conv.conv_chain`):
the arena's size, the buffer holding the features, the layers written before."""


def _mlp(
    w: CWriter, policy: Policy, body: MLP, last: OneHot | None, chain: Chain | None = None
) -> str:
    widths = [int(body.layers[0].W.shape[0])] + [int(la.W.shape[1]) for la in body.layers]
    size, x, before = chain or (max(a + b for a, b in pairwise(widths)), "rlb_arena", 0)
    if chain is None:
        w.buffer("rlb_arena", "float", size, "activations: the largest pair of live layers")
        _vector(w, policy, last, "rlb_arena", widths[0])
    half = body.half
    if half:  # float16 weights: halves in flash, float32 sums, activations rounded to half
        w.helper("half", HALF)
        w.line(loop("i", widths[0], "rlb_arena[i] = rlb_round_half(rlb_arena[i]);"))
    activations = {la.activation for la in body.layers}
    w.libm |= bool(activations & {"tanh", "sigmoid"})
    for i, la in enumerate(body.layers):
        n_in, n_out = la.W.shape
        y = f"(rlb_arena + {size - n_out})" if (i + before) % 2 == 0 else "rlb_arena"
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


def _mlp_int8(
    w: CWriter, policy: Policy, body: QuantizedMLP, last: OneHot | None, chain: Chain | None = None
) -> str:
    widths = [int(body.layers[0].W.shape[0])] + [int(la.W.shape[1]) for la in body.layers]
    size, x, before = chain or (max(a + b for a, b in pairwise(widths)), "rlb_arena", 0)
    if chain is None:
        w.buffer("rlb_arena", "int8_t", size, "int8 activations: the largest pair of live "
                 "layers")  # fmt: skip
        first = body.layers[0]
        _vector(w, policy, last, "rlb_arena", widths[0],
                (first.input_scale, first.input_zero_point))  # fmt: skip
    requantize_helpers(w, body.layers)
    dsp_buffer(w, body.layers)
    tables: dict[bytes, str] = {}  # equal odd tables: one array
    for i, la in enumerate(body.layers):
        n_in, n_out = la.W.shape
        y = f"(rlb_arena + {size - n_out})" if (i + before) % 2 == 0 else "rlb_arena"
        w.array(f"rlb_w{i}", la.W.T, f"layer {i}: int8 W [{n_out}][{n_in}]")
        w.array(f"rlb_b{i}", la.b, f"layer {i}: {la.b.dtype} bias")
        ch = int(la.w_scale.size > 1)
        if la.float_output and argmax_on_acc(policy, la):
            name = int8_kernel(w, "dense_int8_acc", la.b)
            w.buffer("rlb_acc", "int32_t", n_out, "the last layer's int32 accumulators")
            w.line(f"    {name}({x}, rlb_acc, rlb_w{i}, rlb_b{i}, {n_in}, {n_out}, "
                   f"{la.input_zero_point});")  # fmt: skip
            return "rlb_acc"
        if la.float_output:
            name = int8_kernel(w, "dense_int8_float", la.b)
            w.buffer("rlb_out", "float", n_out, "the last layer's dequantized output")
            w.array(f"rlb_scale{i}", la.dequant_scale, f"layer {i}: input_scale * w_scale")
            w.line(f"    {name}({x}, rlb_out, rlb_w{i}, rlb_b{i}, rlb_scale{i}, {ch}, "
                   f"{n_in}, {n_out}, {la.input_zero_point});")  # fmt: skip
            return "rlb_out"
        w.line(dense_int8_call(w, la, i, x, y, tables))
        x = y
    return x


def _linear(w: CWriter, policy: Policy, body: Linear, last: TileCode | OneHot | None) -> str:
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


def tile_coding(w: CWriter, tc: TileCode, per_feature: str, indent: str) -> str:
    """Tile coding as :meth:`TileCode.apply`, for the inference export (:func:`_tiles`) and
    the on-device learner (:mod:`rlbudget.export.learn`): per dimension the cell ``c`` in
    ``1 / tilings`` of a tile (float32), split once into ``q = c / tilings`` and
    ``r = c % tilings``; tiling ``t``'s tile is then ``(c + t) / tilings = q + (r + t >=
    tilings)``, no divide per tiling. Writes the grid's constants and returns the two loops
    (``d``, ``t``, ``q``, ``r`` and ``f`` declared by the caller; ``per_feature`` runs with
    ``f``, tiling ``t``'s active feature), indented by ``indent``."""
    check_grid("tile_code", tc.scale, tc.top)
    w.array("rlb_tile_low", tc.low, "tile coding: low")
    w.array("rlb_tile_scale", tc.scale, "tile coding: tilings * tiles_per_dim / (high - low), "
            "computed in float32 as numpy does")  # fmt: skip
    tilings, tpd, dims = tc.tilings, tc.tiles_per_dim, len(tc.low)
    hashed = (f"\n    f = (int32_t)((uint32_t)((uint32_t)f * UINT32_C(2654435761)) % "
              f"{tc.hash_size}u);") if tc.hash_size else ""  # fmt: skip
    text = f"""for (d = 0; d < {dims}; ++d) {{
    const float v = rlb_input(obs, d) - rlb_tile_low[d];
    const float u = v * rlb_tile_scale[d]; /* in 1/{tilings} of a tile */
    const uint32_t c = !(u >= 0.0f) ? 0u /* clip(floor(u), 0, {tc.top}); NaN: 0 */
        : (u >= {c_float(tc.top)} ? {tc.top}u : (uint32_t)u);
    q[d] = (int32_t)(c / {tilings}u);
    r[d] = (int32_t)(c % {tilings}u);
}}
for (t = 0; t < {tilings}; ++t) {{ /* one active feature per tiling */
    f = 0;
    for (d = 0; d < {dims}; ++d) {{ /* tile (c + t) / {tilings}, 0..{tpd} */
        f = f * {tpd + 1} + q[d] + (r[d] + t >= {tilings});
    }}
    f += t * {tc.per_tiling};{hashed}
{per_feature}
}}"""
    return "\n".join(indent + line if line else line for line in text.splitlines())


def _tiles(w: CWriter, body: Linear, tc: TileCode) -> str:
    """Tile coding (:func:`tile_coding`), then each output the sum of its active weights."""
    n_features, n_out = body.W.shape
    quantized = body.scale is not None
    acc = "rlb_acc" if quantized else "rlb_out"
    add = (f"    for (j = 0; j < {n_out}; ++j) {{\n"
           f"        {acc}[j] += rlb_w[f * {n_out} + j];\n    }}")  # fmt: skip
    features = tile_coding(w, tc, add, "        ")
    w.array("rlb_w", body.W, f"W [{n_features}][{n_out}], one row per feature")
    w.array("rlb_b", body.b, "b")
    if quantized:
        w.buffer("rlb_acc", "int32_t", n_out, "integer tile sums")
    w.line(loop("j", n_out, f"{acc}[j] = 0;"))
    w.line(f"""    {{ /* tile coding in float32, then integers (TileCode.apply) */
        int32_t d, f, q[{len(tc.low)}], r[{len(tc.low)}];
{features}
    }}""")
    if quantized:
        w.line(loop("j", n_out, "rlb_out[j] = (float)(rlb_acc[j] + rlb_b[j]) * rlb_scale[j];"))
    else:
        w.line(loop("j", n_out, "rlb_out[j] += rlb_b[j];"))
    return "rlb_out"


def _head(w: CWriter, policy: Policy, y: str, n: int, int8: QuantizedMLP | None) -> None:
    head = policy.head
    if policy.action_space.kind == "discrete":
        if head.kind != "argmax":
            raise _fail(f"head {head.kind!r} on discrete actions; expected argmax")
        ctype = "int8_t" if int8 else "int32_t" if y == "rlb_acc" else "float"
        row = y == "y"  # a row of the table body's constants (flash)
        suffix = "_table" if row else {"int8_t": "_int8", "int32_t": "_int32"}.get(ctype, "")
        w.helper("argmax", instance("argmax.c", RLB_VALUE=ctype, RLB_TABLE=int(row),
                                    rlb_argmax=f"rlb_argmax{suffix}"))  # fmt: skip
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
            w.line(loop("j", n, f"action[j] = rlb_head_table[j * 256 + {y}[j] + 128];"))
            w.line("    return 0;")
            return
        value = f"(float)((int32_t){y}[j] - {zp}) * {c_float(scale)}"
    else:
        value = f"{y}[j]"
    if not bounded:
        w.line(loop("j", n, f"action[j] = {value};") + "\n    return 0;")
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


def _packed_table(w: CWriter, body: PackedTable) -> None:
    """A packed table's lookup, dense or sparse (bitmap + rank), as :class:`PackedTable`."""
    padded = np.append(body.packed, np.uint8(0))  # one spare byte: reads stay inside
    w.array("rlb_packed", padded, f"actions, {body.bits} bits each, LSB first")
    sparse = body.stored is not None and body.rank is not None
    if body.stored is not None and body.rank is not None:
        w.array("rlb_stored", body.stored, "1 bit per state, LSB first: the state has an entry")
        w.array("rlb_rank", body.rank, "rank[k]: entries before state 64 * k")
    w.helper("packed", instance("packed.c", RLB_BITS=body.bits, RLB_SPARSE=int(sparse),
                                RLB_DEFAULT_ACTION=body.default))  # fmt: skip
    lookup = "rlb_sparse_action" if sparse else "rlb_packed_entry"
    w.line(f"    (void)action;\n    return {lookup}(rlb_state(obs));")


def _generate(policy: Policy) -> CWriter:
    """The writer filled with everything ``policy.c`` holds for ``policy``."""
    _check_arrays(policy)
    w = CWriter()
    if isinstance(policy.body, CNN):
        return _cnn(w, policy, policy.body)
    norm, last = split_preprocess(policy)
    if policy.observation_space.kind == "box":
        input_function(w, norm, not int8_saturates_first(policy, norm))
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
        state_function(w, policy, last)
        if isinstance(body, Table):
            n = int(body.values.shape[1])
            w.array("rlb_values", body.values, f"table [{body.values.shape[0]}][{n}]")
            w.line(f"    {{\n        RLB_CONST float *y = rlb_values + rlb_state(obs) * {n};")
            _head(w, policy, "y", n, None)
            w.line("    }")
        else:
            _packed_table(w, body)
    else:
        raise _fail(f"body kind {body.kind!r} is not supported; the C export handles mlp, "
                    "mlp_int8, table, packed_table, linear, cnn, cnn_int8")  # fmt: skip
    return w


def _cnn(w: CWriter, policy: Policy, body: CNN) -> CWriter:
    """A ``cnn`` / ``cnn_int8`` body: its convolutions (:mod:`rlbudget.export.c_conv`),
    then its dense layers continuing the same arena, then the head."""
    if policy.preprocess:
        raise _fail("a cnn body reads the observation itself; a preprocess before it is not "
                    "supported")  # fmt: skip
    chain = (*conv_chain(w, body), len(body.layers))
    dense = body.dense
    if isinstance(dense, MLP):
        y = _mlp(w, policy, dense, None, chain)
        _head(w, policy, y, int(dense.layers[-1].W.shape[1]), None)
        return w
    assert isinstance(dense, QuantizedMLP)
    y = _mlp_int8(w, policy, dense, None, chain)
    int8 = not dense.layers[-1].float_output
    _head(w, policy, y, int(dense.layers[-1].W.shape[1]), dense if int8 else None)
    return w


HARNESS_TEXT = source("main.c")
"""``main.c``: reads observations from stdin, prints one action per line."""


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

    if isinstance(policy.body, Cascade):  # each body as exported alone, then the branch
        from rlbudget.export.c_cascade import cascade_source

        def head(w: CWriter, p: Policy, y: str, n: int) -> None:
            _head(w, p, y, n, None)

        text, w = cascade_source(policy, _generate, head)
    else:
        w = _generate(policy)
        text = policy_c(policy, w)
    files = {HEADER: policy_h(policy, w), SOURCE: text, HARNESS: HARNESS_TEXT}
    folder = atomic_write_dir(out_dir, {k: v.encode() for k, v in files.items()}, marker=HEADER,
                              parents=parents)  # fmt: skip
    return ExportResult(tuple(folder / name for name in files), w.ram, w.flash, w.libm)
