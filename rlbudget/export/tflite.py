"""A Policy as one TFLite flatbuffer, ``policy.tflite``: preprocess, body and head included,
written without TensorFlow (:mod:`rlbudget.export.tflite_schema`).

Input ``obs``: float32 ``[1, n]`` (one observation; TFLite Micro has fixed shapes). Output
``action``: int32 ``[1]`` for discrete actions, float32 ``[1, n]`` for Box actions. Builtin
operators only, all in TFLite Micro's ``AllOpsResolver`` and in LiteRT. What the model
computes, and how it matches :meth:`~rlbudget.policy.model.Policy.act`:

- ``normalize``: SUB, DIV by the float32 ``sqrt(var + eps)``, MAXIMUM/MINIMUM (the clip).
- ``mlp``: FULLY_CONNECTED in float32 (relu fused), TANH / LOGISTIC: **within 1e-5**.
- ``mlp_int8``: QUANTIZE (TFLite's ``round(x / scale)``: float32 division, half away from
  zero, as numpy's :func:`~rlbudget.policy.model.quantize_input`), then per layer an int8
  FULLY_CONNECTED with an int32 bias and the policy's weight scales (one per layer, or one
  per output channel: quantized dimension 0), relu fused (TFLite's clamp at the output
  zero point is numpy's). The runtime derives the multiplier and shift from
  ``double(input_scale) · double(w_scale[j]) / double(output_scale)``, as ``compress``
  does (:func:`_check_multipliers` refuses a policy whose constants are not those), and
  requantizes (see "Which rounding" below). A tanh / sigmoid layer is then CAST (int8 →
  int32), ADD 128, GATHER in its 256-entry int8 table: numpy's table, bit for bit,
  whatever its scales (TFLite's own int8 TANH and LOGISTIC fix the output scale at 1/128
  and 1/256 and compute otherwise). A ``float_output`` last layer (argmax, clip or
  identity head) is CAST to float32, ADD ``-zero_point``, a float32 FULLY_CONNECTED of
  the integer weights and bias (every partial sum an integer below ``2**24``: exact, in
  any order), MUL by the float32 dequantization scale: numpy's ``float32(acc) ·
  dequant_scale``. **Bit-exact** with numpy's int8 path, logits and actions.
- heads: ARG_MAX (int32; the first largest, as numpy), MAXIMUM/MINIMUM (``clip``),
  TANH · half_span + mid (``tanh_rescale``, within 1e-6); after an int8 output,
  ``tanh_rescale`` is a GATHER in the table of its 256 results per dimension, exact.

Which rounding: TFLite Micro (its PyPI interpreter) requantizes with two roundings
(``SaturatingRoundingDoublingHighMul`` then ``RoundingDivideByPOT``): numpy's ``"tflite"``
rule. LiteRT 2.3 (ai-edge-litert, its reference kernels) rounds once, as TFLite's
``TFLITE_SINGLE_ROUNDING`` option does: numpy's ``"high_word"`` rule, which ``compress``
picks wherever every shift is ≤ -2 (the usual case). The two agree unless the first
rounding lands on a tie of the second and the exact value lies below it: about one
activation in ``2**(1 - shift)``, one int8 step apart. Few, but not rare per decision: on
the tests' 4-64-64-2 tanh CartPole net (layer 0's shift -5), 54 % of 10,000 observations
have one activation or more that differs, 0.5 % an action; on a 3-64-64-1 tanh Pendulum
net with an int8 output, 36 % of the actions differ by a step. The model file cannot
choose the rule. So :func:`export_tflite` refuses (:func:`rounding_mismatch`) a policy
with a ``"high_word"`` layer: TFLite Micro would not compute it. The policy it computes
bit for bit is quantized with ``rlbudget compress -m int8 --requantize tflite``, or
re-ruled with ``-m tflite-rounding`` (:func:`~rlbudget.compress.quantize.tflite_rounding`:
every layer on the ``"tflite"`` rule, the same multipliers), each scored again by
``compress``. ``allow_rounding_mismatch`` writes the policy as it is, bit-exact in
LiteRT's reference kernels; :attr:`TfliteExportResult.warnings` names the layers whose
rule a runtime does not share.
LiteRT's optimized kernels (its default resolver) requantize otherwise again and are one
step off now and then: :func:`litert_runner` uses the reference ones.

Not supported (a one-line error naming what is): table, packed-table and linear bodies,
float16 MLPs, and the discretize / one_hot / tile_code preprocess steps.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlbudget import __version__
from rlbudget.compress.quantize import tflite_rounding as tflite_rounding
from rlbudget.errors import PolicyError
from rlbudget.export.single_file import write_single_file
from rlbudget.export.tflite_schema import (
    FLOAT32,
    INT8,
    INT32,
    NONE,
    RELU,
    TENSOR_TYPES,
    Model,
    Op,
    Tensor,
)
from rlbudget.policy.model import MLP, Array, Normalize, Policy, QDense, QuantizedMLP, dequantize

FILENAME = "policy.tflite"
RUNTIMES_MISSING = ("running policy.tflite needs tflite-micro (TFLite Micro's Python "
                    "interpreter): pip install tflite-micro")  # fmt: skip
ARENA_FLOOR = 512
"""Bytes of tensor arena below which :func:`arena_bytes` never runs TFLite Micro."""
SUPPORTED = "mlp and mlp_int8 bodies on a Box observation (preprocess: normalize only)"


@dataclass(frozen=True)
class TfliteExportResult:
    """What :func:`export_tflite` wrote: the file, its size, the operator count, and where
    a runtime rounds otherwise than the policy (module docstring), in words."""

    files: tuple[Path, ...]
    file_bytes: int
    operators: int
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"files": [str(f) for f in self.files], "file_bytes": self.file_bytes,
                "operators": self.operators, "warnings": list(self.warnings)}  # fmt: skip


def _shares(policy: Policy, rule: str) -> list[str]:
    """The int8 layers (not ``float_output``) on ``rule``, each with the share of its
    activations that the other rule can put one step apart (``2**(shift - 1)``)."""
    body = policy.body
    layers = body.layers if isinstance(body, QuantizedMLP) else ()
    return [f"{i} (1 activation in {2 ** (1 - int(la.shift.max())):,})"
            for i, la in enumerate(layers)
            if not la.float_output and la.requantize == rule]  # fmt: skip


def rounding_mismatch(policy: Policy, name: str = "POLICY") -> str | None:
    """Why TFLite Micro would not compute ``policy`` bit for bit (int8 layers on the
    one-rounding ``"high_word"`` rule, where it rounds twice), and the fix, in one line
    (``name``: the policy folder, for the command); None when it would."""
    once = _shares(policy, "high_word")
    if not once:
        return None
    return (
        f"TFLite Micro rounds twice where {name} rounds once ('high_word': int8 layer(s) "
        f"{', '.join(once)}), so its actions would not all be this policy's; re-rule it: "
        f"rlbudget compress {name} -m tflite-rounding -o OUT (or quantize with -m int8 "
        "--requantize tflite; in Python: save_policy(tflite_rounding(load_policy("
        f"{str(name)!r})), 'OUT'), tflite_rounding from rlbudget.compress.quantize)"
    )


def rounding_warnings(policy: Policy) -> tuple[str, ...]:
    """Where TFLite Micro or LiteRT rounds otherwise than ``policy``'s int8 layers (module
    docstring), one line per runtime, each layer with the share of its activations that
    can differ by one step (``2**(shift - 1)``); none for a float policy."""
    once, twice = _shares(policy, "high_word"), _shares(policy, "tflite")
    out = []
    if once:
        out.append(f"TFLite Micro rounds twice where int8 layer(s) {', '.join(once)} round "
                   "once ('high_word'): its results can be one step off numpy's; "
                   "rlbudget compress POLICY -m tflite-rounding gives the policy it matches "
                   "(LiteRT rounds once, as numpy)")  # fmt: skip
    if twice:
        out.append(f"LiteRT rounds once where int8 layer(s) {', '.join(twice)} round twice "
                   "('tflite'): its results can be one step off numpy's (TFLite Micro rounds "
                   "twice, as numpy)")  # fmt: skip
    return tuple(out)


def _fail(message: str) -> PolicyError:
    return PolicyError(f"export_tflite: {message}")


class _Graph:
    """The model being built; each helper adds one operator and returns its output."""

    def __init__(self) -> None:
        self.m = Model()

    def const(self, value: Any, dtype: Any, name: str, **quant: Any) -> int:
        array = np.ascontiguousarray(value, dtype=dtype)
        return self.m.add(Tensor(name, tuple(array.shape), TENSOR_TYPES[array.dtype],
                                 array.astype(array.dtype.newbyteorder("<")).tobytes(),
                                 **quant))  # fmt: skip

    def op(
        self,
        name: str,
        inputs: tuple[int, ...],
        out: Tensor,
        options: dict[int, tuple[int, str]] | None = None,
    ) -> int:
        index = self.m.add(out)
        self.m.ops.append(Op(name, inputs, (index,), options or {}))
        return index

    def like(self, x: int, name: str, type_: int | None = None, **quant: Any) -> Tensor:
        t = self.m.tensors[x]
        return Tensor(name, t.shape, t.type if type_ is None else type_, **quant)

    def binary(self, name: str, x: int, c: int, label: str) -> int:
        """ADD / SUB / MUL / DIV / MAXIMUM / MINIMUM of ``x`` and a broadcast constant."""
        options = {0: (NONE, "Int8")} if name in ("ADD", "SUB", "MUL", "DIV") else {}
        return self.op(name, (x, c), self.like(x, label), options)

    def cast(self, x: int, type_: int, label: str) -> int:
        return self.op("CAST", (x,), self.like(x, label, type_),
                       {0: (self.m.tensors[x].type, "Int8"), 1: (type_, "Int8")})  # fmt: skip


def _normalize(g: _Graph, x: int, step: Normalize) -> int:
    std = np.sqrt(step.var + np.float32(step.eps))  # numpy's float32 divisor
    x = g.binary("SUB", x, g.const(step.mean[None], np.float32, "norm_mean"), "centered")
    x = g.binary("DIV", x, g.const(std[None], np.float32, "norm_std"), "standardized")
    clip = np.float32(step.clip)
    x = g.binary("MAXIMUM", x, g.const([-clip], np.float32, "norm_low"), "clipped_low")
    return g.binary("MINIMUM", x, g.const([clip], np.float32, "norm_high"), "normalized")


def _mlp(g: _Graph, x: int, body: MLP) -> int:
    if body.half:
        raise _fail("a float16 mlp is not supported; export the float32 or int8 policy")
    for i, layer in enumerate(body.layers):
        W = g.const(layer.W.T, np.float32, f"W{i}")
        b = g.const(layer.b, np.float32, f"b{i}")
        fused = RELU if layer.activation == "relu" else NONE
        out = Tensor(f"dense{i}", (1, int(layer.W.shape[1])), FLOAT32)
        x = g.op("FULLY_CONNECTED", (x, W, b), out, {0: (fused, "Int8")})
        if layer.activation in ("tanh", "sigmoid"):
            op = "TANH" if layer.activation == "tanh" else "LOGISTIC"
            x = g.op(op, (x,), g.like(x, f"{layer.activation}{i}"))
    return x


def _quant(scale: float | Array, zero_point: int | Array = 0) -> dict[str, Any]:
    scales = np.atleast_1d(np.asarray(scale, dtype=np.float32))
    zps = np.broadcast_to(np.asarray(zero_point, dtype=np.int64), scales.shape)
    return {"scales": tuple(float(s) for s in scales),
            "zero_points": tuple(int(z) for z in zps)}  # fmt: skip


def _check_multipliers(i: int, layer: QDense) -> None:
    """The multiplier and shift TFLite derives per channel (``QuantizeMultiplier`` of
    ``double(input_scale) · double(w_scale[j]) / double(output_scale)``) must be the
    layer's: else the file would compute something else than the policy."""
    from rlbudget.compress.quantize import quantize_multiplier

    n = int(layer.W.shape[1])
    w_scale = np.broadcast_to(layer.w_scale, (n,))
    mult, shift = np.broadcast_to(layer.multiplier, (n,)), np.broadcast_to(layer.shift, (n,))
    for j in range(n):
        real = layer.input_scale * float(w_scale[j]) / layer.output_scale
        if quantize_multiplier(real) != (int(mult[j]), int(shift[j])):
            raise _fail(f"int8 layer {i}, channel {j}: multiplier {int(mult[j])} and shift "
                        f"{int(shift[j])} are not those TFLite derives from its scales "
                        f"{quantize_multiplier(real)}; re-quantize the policy "
                        "(rlbudget compress -m int8)")  # fmt: skip


def _lookup(g: _Graph, q: int, table: int, label: str, **quant: Any) -> int:
    """``table[q + 128]``: CAST int8 → int32, ADD 128, GATHER (axis 0)."""
    index = g.binary("ADD", g.cast(q, INT32, f"{label}_int32"),
                     g.const([128], np.int32, "lut_offset"), f"{label}_index")  # fmt: skip
    t = g.m.tensors[table]
    out = Tensor(label, g.m.tensors[index].shape, t.type, **quant)
    return g.op("GATHER", (table, index), out, {0: (0, "Int32"), 1: (0, "Int32")})


def _int8_layer(g: _Graph, i: int, q: int, layer: QDense) -> int:
    n_out = int(layer.W.shape[1])
    _check_multipliers(i, layer)
    # one scale (per layer) or one per output channel (quantized dimension 0 of [out, in])
    W = g.const(layer.W.T, np.int8, f"W{i}", **_quant(layer.w_scale), quantized_dimension=0)
    bias_scale = np.float32(layer.input_scale) * layer.w_scale  # LiteRT checks the bias's
    b = g.const(layer.b, np.int32, f"b{i}", **_quant(bias_scale))
    fused = RELU if layer.activation == "relu" else NONE
    out = Tensor(f"dense{i}", (1, n_out), INT8,
                 **_quant(layer.output_scale, layer.output_zero_point))  # fmt: skip
    y = g.op("FULLY_CONNECTED", (q, W, b), out, {0: (fused, "Int8")})
    if layer.lut is None:
        return y
    scale, zero_point = layer.out_quant
    lut = g.const(layer.lut, np.int8, f"lut{i}", **_quant(scale, zero_point))
    return _lookup(g, y, lut, f"{layer.activation}{i}", **_quant(scale, zero_point))


def _float_layer(g: _Graph, i: int, q: int, layer: QDense) -> int:
    """``float32(acc) * dequant_scale`` with ``acc = (q - zp) @ W + b``: CAST to float32,
    ADD ``-zp``, a float32 FULLY_CONNECTED of the integer-valued weights and bias, MUL by
    the per-channel scale. Every product and partial sum is an integer below ``2**24``
    (checked), so float32 holds it exactly, in any summation order: the int32 sum, as
    numpy computes it. (TFLite Micro's SUM takes no int32, FULLY_CONNECTED no int32 output.)
    """
    n_out = int(layer.W.shape[1])
    bound = np.abs(layer.W.astype(np.int64)).sum(axis=0) * 255 + np.abs(layer.b.astype(np.int64))
    if int(bound.max()) > 2**24:
        raise _fail(f"int8 layer {i}: its accumulator can exceed 2**24 ({int(bound.max()):,}), "
                    "beyond float32's exact integers; the TFLite export cannot compute it "
                    "exactly")  # fmt: skip
    x = g.cast(q, FLOAT32, f"x{i}_float")
    if layer.input_zero_point:
        zp = g.const([-layer.input_zero_point], np.float32, f"minus_zp{i}")
        x = g.binary("ADD", x, zp, f"x{i}_centered")
    W = g.const(layer.W.T, np.float32, f"W{i}")
    b = g.const(layer.b, np.float32, f"b{i}")
    acc = g.op("FULLY_CONNECTED", (x, W, b), Tensor(f"acc{i}", (1, n_out), FLOAT32),
               {0: (NONE, "Int8")})  # fmt: skip
    return g.binary("MUL", acc, g.const(layer.dequant_scale[None], np.float32, f"dq{i}"),
                    f"dense{i}")  # fmt: skip


def _mlp_int8(g: _Graph, x: int, body: QuantizedMLP) -> tuple[int, tuple[int, float, int] | None]:
    """The body; and, after an int8 last layer, (int8 tensor, scale, zero point)."""
    first = body.layers[0]
    q = g.op(
        "QUANTIZE",
        (x,),
        g.like(x, "obs_int8", INT8, **_quant(first.input_scale, first.input_zero_point)),
    )
    for i, layer in enumerate(body.layers):
        if layer.float_output:
            return _float_layer(g, i, q, layer), None
        q = _int8_layer(g, i, q, layer)
    scale, zero_point = body.layers[-1].out_quant
    y = g.op("DEQUANTIZE", (q,), g.like(q, "body_out", FLOAT32))
    return y, (q, scale, zero_point)


def _head(g: _Graph, y: int, int8: tuple[int, float, int] | None, policy: Policy) -> int:
    head, discrete = policy.head, policy.action_space.kind == "discrete"
    if head.kind == "argmax":
        if not discrete:
            raise _fail("an argmax head needs discrete actions")
        axis = g.const([1], np.int32, "axis1")
        return g.op("ARG_MAX", (y, axis), Tensor("action", (1,), INT32),
                    {0: (INT32, "Int8")})  # fmt: skip
    if discrete:
        raise _fail(f"head {head.kind!r} on discrete actions; expected argmax")
    if head.kind == "identity" or head.low is None or head.high is None:
        return y
    if head.kind == "clip":
        y = g.binary("MAXIMUM", y, g.const(head.low[None], np.float32, "low"), "clip_low")
        return g.binary("MINIMUM", y, g.const(head.high[None], np.float32, "high"), "action")
    if int8 is not None:  # tanh_rescale of an int8 output: the table of its 256 results
        q, scale, zero_point = int8
        dims = len(head.half_span)
        levels = dequantize(np.arange(-128, 128), scale, zero_point)[:, None]
        table = head.apply(np.repeat(levels, dims, axis=1))  # [256, dims], numpy's values
        flat = g.const(table.ravel(), np.float32, "head_table")
        index = g.cast(q, INT32, "head_q")  # flat index (q + 128) * dims + d
        if dims > 1:
            index = g.binary("MUL", index, g.const([dims], np.int32, "dims"), "head_row")
        offsets = 128 * dims + np.arange(dims)
        index = g.binary("ADD", index, g.const(offsets[None], np.int32, "head_col"), "head_i")
        return g.op("GATHER", (flat, index), Tensor("action", (1, dims), FLOAT32),
                    {0: (0, "Int32"), 1: (0, "Int32")})  # fmt: skip
    y = g.op("TANH", (y,), g.like(y, "squashed"))
    y = g.binary("MUL", y, g.const(head.half_span[None], np.float32, "half_span"), "scaled")
    return g.binary("ADD", y, g.const(head.mid[None], np.float32, "mid"), "action")


def _metadata(policy: Policy) -> dict[str, bytes]:
    summary = policy.summary()
    pipeline = " -> ".join([*summary["preprocess"], summary["body"], summary["head"]])
    info = {"rlbudget.version": __version__, "rlbudget.pipeline": pipeline,
            "rlbudget.provenance": summary["provenance"],
            "rlbudget.observation_space": summary["observation_space"],
            "rlbudget.action_space": summary["action_space"]}  # fmt: skip
    return {"rlbudget": json.dumps(info, sort_keys=True, default=str).encode()}


def build_model(policy: Policy, *, body_output: bool = False) -> bytes:
    """The ``.tflite`` bytes of ``policy`` (see the module docstring). ``body_output``: a
    second output, the body's float32 output before the head (the dequantized logits),
    for tests.

    :raises PolicyError: the tflite extra is missing, or a part the export does not support.
    """
    obs, body = policy.observation_space, policy.body
    if not isinstance(body, MLP | QuantizedMLP):
        kind = getattr(body, "kind", type(body).__name__)
        raise _fail(f"body kind {kind!r} is not supported; the TFLite export handles {SUPPORTED}")
    if obs.kind != "box" or len(obs.shape) != 1:
        raise _fail(f"a {obs.kind} observation of shape {list(obs.shape)} is not supported; "
                    f"the TFLite export handles {SUPPORTED}")  # fmt: skip
    for step in policy.preprocess:
        if not isinstance(step, Normalize):
            raise _fail(f"preprocess kind {step.kind!r} is not supported; the TFLite export "
                        f"handles {SUPPORTED}")  # fmt: skip
    g = _Graph()
    x = g.m.add(Tensor("obs", (1, int(obs.shape[0])), FLOAT32))
    g.m.inputs = (x,)
    for step in policy.preprocess:
        x = _normalize(g, x, step)  # type: ignore[arg-type]
    int8 = None
    if isinstance(body, MLP):
        y = _mlp(g, x, body)
    else:
        y, int8 = _mlp_int8(g, x, body)
    action = _head(g, y, int8, policy)
    g.m.tensors[action].name = "action"
    g.m.outputs = (action, y) if body_output and y != action else (action,)
    meta = _metadata(policy)
    g.m.description = f"rlbudget {__version__}: {json.loads(meta['rlbudget'])['rlbudget.pipeline']}"
    g.m.metadata = meta
    return g.m.serialize()


def export_tflite(
    policy: Policy,
    out_dir: str | os.PathLike[str],
    *,
    allow_rounding_mismatch: bool = False,
    name: str = "POLICY",
) -> TfliteExportResult:
    """Write ``policy.tflite`` to ``out_dir`` (created if needed; written to a temporary
    file there and renamed into place, so nothing is half-written).

    :param allow_rounding_mismatch: write it even when TFLite Micro would round some int8
        layer otherwise than the policy (:func:`rounding_mismatch`; the warnings say
        where); by default that is refused.
    :param name: the policy's folder, named in the refusal's command.
    :raises PolicyError: the tflite extra is missing (``pip install 'rlbudget[tflite]'``),
        a part the TFLite export does not support (module docstring), or a rounding
        mismatch (nothing written).
    :raises RlbudgetError: ``out_dir`` holds another export, or cannot be written.
    """
    mismatch = None if allow_rounding_mismatch else rounding_mismatch(policy, name)
    if mismatch is not None:
        raise _fail(
            f"{mismatch}; or write it as it is with --allow-rounding-mismatch "
            "(LiteRT's reference kernels round once, as it does); nothing written"
        )
    data = build_model(policy)
    path = write_single_file(out_dir, FILENAME, data)
    return TfliteExportResult((path,), len(data), _count_ops(data), rounding_warnings(policy))


def _count_ops(data: bytes) -> int:
    """Operators in a model this module wrote (read back with flatbuffers' table reader)."""
    from flatbuffers import table

    root = table.Table(data, int.from_bytes(data[0:4], "little"))
    subgraphs = root.Vector(root.Offset(8))
    sub = table.Table(data, root.Indirect(subgraphs))
    return int(sub.VectorLen(sub.Offset(10)))


# --- running it ----------------------------------------------------------------------------


def _tflm(data: bytes, arena_size: int | None = None) -> Any:
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise PolicyError(RUNTIMES_MISSING) from None
    return runtime.Interpreter.from_bytes(data, arena_size=arena_size)


def tflm_runner(path: str | os.PathLike[str]) -> Callable[[Any], tuple[Array, ...]]:
    """TFLite Micro's Python interpreter on ``policy.tflite``: a function from one
    observation to the model's outputs (``action`` first).

    :raises PolicyError: tflite-micro is missing.
    """
    data = Path(path).read_bytes()
    interpreter = _tflm(data, max(10 * len(data), 2**16))  # ample: arena_bytes sizes it
    n_out = _output_count(data)

    def run(obs: Any) -> tuple[Array, ...]:
        interpreter.set_input(np.asarray(obs, dtype=np.float32).reshape(1, -1), 0)
        interpreter.invoke()
        return tuple(np.array(interpreter.get_output(k)) for k in range(n_out))

    return run


def litert_runner(path: str | os.PathLike[str]) -> Callable[[Any], tuple[Array, ...]]:
    """LiteRT's interpreter on ``policy.tflite`` with its reference kernels (the optimized
    ones and the XNNPACK delegate requantize int8 otherwise), one thread.

    :raises PolicyError: ai-edge-litert is missing.
    """
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError:
        raise PolicyError("running policy.tflite in LiteRT needs ai-edge-litert: "
                          "pip install ai-edge-litert") from None  # fmt: skip
    interpreter = litert.Interpreter(
        model_path=str(path),
        num_threads=1,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
    )
    interpreter.allocate_tensors()
    feed = interpreter.get_input_details()[0]["index"]
    outputs = [d["index"] for d in interpreter.get_output_details()]

    def run(obs: Any) -> tuple[Array, ...]:
        interpreter.set_tensor(feed, np.asarray(obs, dtype=np.float32).reshape(1, -1))
        interpreter.invoke()
        return tuple(np.array(interpreter.get_tensor(k)) for k in outputs)

    return run


def _output_count(data: bytes) -> int:
    from flatbuffers import table

    root = table.Table(data, int.from_bytes(data[0:4], "little"))
    sub = table.Table(data, root.Indirect(root.Vector(root.Offset(8))))
    return int(sub.VectorLen(sub.Offset(8)))


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null (the C++ runtime writes there, not to sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def arena_bytes(data: bytes) -> int:
    """The smallest tensor arena TFLite Micro's interpreter runs ``data`` in (a bisection
    over arena sizes, each one a fresh interpreter that must allocate and invoke): the
    RAM the model's tensors, the interpreter's own structures and the kernels' scratch
    take on a device, alignment included.

    :raises PolicyError: tflite-micro is missing.
    """

    def runs(size: int) -> bool:
        try:
            with _quiet_stderr():  # TFLite Micro reports each failed allocation there
                _tflm(data, size).invoke()
        except (RuntimeError, ValueError):
            return False
        return True

    high = max(4096, len(data) * 2)
    while not runs(high):
        high *= 2
        if high > 2**28:
            raise PolicyError("TFLite Micro does not run policy.tflite with a 256 MiB arena")
    # An arena too small for the interpreter's own objects crashes TFLite Micro (a
    # segmentation fault below 512 B, tflite-micro 0.dev2026) instead of failing: the
    # search never tries one; 512 B does not hold an interpreter and its tensors.
    low = ARENA_FLOOR
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if runs(mid) else (mid, high)
    return high
