"""``policy.json`` and the arrays of ``policy.safetensors`` → a :class:`Policy`, every value
checked first: each problem is one :class:`~rlbudget.errors.PolicyError` naming the policy
and what to do (:func:`from_document`; :func:`rlbudget.policy.io.load_policy` reads the
files).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlbudget.envs import SpaceSpec
from rlbudget.errors import PolicyError
from rlbudget.policy.cascade import Cascade, read_cascade
from rlbudget.policy.conv import read_cnn
from rlbudget.policy.int8 import (
    INT32_MAX,
    PER_TENSOR_SCALARS,
    REQUANTIZE,
    QDense,
    QuantizedMLP,
    odd_table,
)
from rlbudget.policy.kernels import ACTIVATIONS, Array
from rlbudget.policy.knots import KNOTS, knot_table
from rlbudget.policy.model import (
    HEADS,
    MLP,
    Body,
    Dense,
    Discretize,
    Head,
    Linear,
    Normalize,
    OneHot,
    PackedTable,
    Policy,
    Preprocess,
    Table,
    TileCode,
)
from rlbudget.policy.packing import ARRAYS_NAME, PACKED_SCHEMA_VERSION, Slices, slice_label

SCHEMA_VERSION = PACKED_SCHEMA_VERSION
"""2: an int8 body's arrays may be slices of one array per dtype
(:func:`~rlbudget.policy.io.pack_int8`); a file without slices is written as version 1,
which every rlbudget reads."""
# Every number a policy holds is checked against these on load: larger values are no
# trained policy's and overflow float32 arithmetic (or the C export's literals).
MAX_ABS = 1e10
MAX_COUNT = 2**31 - 1
FLOAT_DTYPES = ("float32", "float16")
ALLOWED_DTYPES = ("float32", "float16", "int8", "int16", "int32", "uint8")


def _whole(v: Any, field: str, where: str, *, low: int = 0) -> int:
    """A JSON integer ≥ ``low`` (a float with no fraction, like 4.0, is accepted)."""
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < low or v > MAX_COUNT:
        raise PolicyError(
            f"{where}: {field} must be an integer from {low} to {MAX_COUNT:,}, not {v!r}"
        )
    return v


def _real(
    v: Any, field: str, where: str, *, positive: bool = False, nonnegative: bool = False
) -> float:
    """A finite JSON number (``positive``: > 0; ``nonnegative``: ≥ 0), at most ``MAX_ABS``."""
    ok = not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)
    ok = ok and abs(v) <= MAX_ABS and (not positive or v > 0) and (not nonnegative or v >= 0)
    if not ok:
        rule = "> 0" if positive else "≥ 0" if nonnegative else "a number"
        rule = rule if rule == "a number" else f"a number {rule}"
        raise PolicyError(
            f"{where}: {field} must be {rule}, finite and at most {MAX_ABS:g} in magnitude, "
            f"not {v!r}"
        )
    return float(v)


def _space_from_json(d: Mapping[str, Any], where: str) -> SpaceSpec:
    if not isinstance(d, Mapping):
        raise PolicyError(f"{where}: the space description is invalid (not a JSON object)")
    try:

        def bound(v: Any) -> float:
            x = float(v)  # "inf"/"-inf" strings parse
            if math.isnan(x):
                raise ValueError("a bound is NaN")
            return x

        kind = str(d["kind"])
        if kind not in ("discrete", "box"):
            raise ValueError(f"kind must be 'discrete' or 'box', not {kind!r}")
        if not isinstance(d["shape"], list):
            raise ValueError("shape must be a list")
        shape = tuple(_whole(v, "the space's shape", where) for v in d["shape"])
        n = None if d.get("n") is None else _whole(d["n"], "the space's n", where, low=1)
        if kind == "discrete" and n is None:
            raise ValueError("a discrete space needs n")
        low = None if d.get("low") is None else tuple(bound(v) for v in d["low"])
        high = None if d.get("high") is None else tuple(bound(v) for v in d["high"])
        size = math.prod(shape)
        if kind == "box" and (size > MAX_COUNT or any(
                b is not None and len(b) != size for b in (low, high))):  # fmt: skip
            raise ValueError(f"low/high must list {size} bounds (the shape's size)")
        if (
            low is not None
            and high is not None
            and any(a > b for a, b in zip(low, high, strict=True))
        ):
            raise ValueError("a low bound is above its high bound")
        radices = (
            None
            if d.get("radices") is None
            else tuple(_whole(v, "the space's radices", where, low=1) for v in d["radices"])
        )
        spec = SpaceSpec(
            kind=kind, shape=shape, n=n, low=low, high=high, dtype=str(d["dtype"]),
            radices=radices, note=None if d.get("note") is None else str(d["note"]),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise PolicyError(f"{where}: the space description is invalid ({exc!r})") from None
    if spec.radices is not None and (
        spec.kind != "discrete" or min(spec.radices, default=0) < 1
        or math.prod(spec.radices) != spec.n
    ):  # fmt: skip
        raise PolicyError(
            f"{where}: the space's radices {list(spec.radices)} do not multiply to its n "
            f"({spec.n}) or it is not discrete; radices are the sizes of the Tuple's Discrete "
            "parts (write the policy again with rlbudget train)"
        )
    return spec


class _Loader:
    """Builds a Policy from a document and arrays, checking each as it goes."""

    def __init__(self, arrays: Mapping[str, Array], where: str) -> None:
        self.arrays = arrays
        self.where = where
        self.used: set[str] = set()
        self.packed = Slices(arrays, self.fail)  # schema 2: slices of packed arrays

    def fail(self, message: str) -> PolicyError:
        return PolicyError(f"{self.where}: {message}")

    def array(
        self, name: Any, *, ndim: int, what: str, floats: bool = True, dtypes: tuple[str, ...] = ()
    ) -> Array:
        if isinstance(name, Mapping) and "array" in name:
            self.used.add(str(name["array"]))
            a, name = self.packed.read(name, what), slice_label(name)
        elif not isinstance(name, str) or name not in self.arrays:
            raise self.fail(
                f"{what}: array {name!r} is missing from {ARRAYS_NAME}; the policy is "
                "incomplete, save it again"
            )
        else:
            a = self.arrays[name]
            self.used.add(name)
        allowed_here = dtypes or (FLOAT_DTYPES if floats else ALLOWED_DTYPES)
        if str(a.dtype) not in allowed_here:
            allowed = ", ".join(allowed_here)
            raise self.fail(f"{what}: array '{name}' has dtype {a.dtype}; expected {allowed}")
        if a.ndim != ndim:
            raise self.fail(
                f"{what}: array '{name}' has shape {list(a.shape)}; expected {ndim} dimension(s)"
            )
        if np.issubdtype(a.dtype, np.floating):
            if not np.all(np.isfinite(a)):
                raise self.fail(f"{what}: array '{name}' contains NaN or inf; retrain or re-export")
            if a.size and float(np.max(np.abs(a))) > MAX_ABS:
                raise self.fail(f"{what}: array '{name}' holds values beyond ±{MAX_ABS:g}; "
                                "no trained policy has them, the file is corrupt")  # fmt: skip
        return a

    def weights(self, ref: Any, *, what: str, dtypes: tuple[str, ...] = FLOAT_DTYPES) -> Array:
        """A layer's dense ``W`` [inputs, outputs], from an array name or a CSR description
        (:func:`~rlbudget.policy.kernels.sparse_weights`): shape, dtypes, row pointers and
        indices checked."""
        if not isinstance(ref, Mapping) or "array" in ref:
            return self.array(ref, ndim=2, what=what, dtypes=dtypes)
        if ref.get("format") != "csr":
            raise self.fail(f"{what}: W has format {ref.get('format')!r}; this rlbudget knows "
                            "'csr' (a newer rlbudget may have written it)")  # fmt: skip
        shape = ref.get("shape")
        if (not isinstance(shape, list) or len(shape) != 2
                or not all(type(v) is int and v >= 1 for v in shape)):  # fmt: skip
            raise self.fail(f"{what}: W's shape must be two positive integers, not {shape!r}")
        n_in, n_out = shape
        values = self.array(ref.get("values"), ndim=1, what=what, dtypes=dtypes)
        indices = self.array(ref.get("indices"), ndim=1, what=what,
                             dtypes=("uint8", "uint16", "uint32"))  # fmt: skip
        indptr = self.array(ref.get("indptr"), ndim=1, what=what, dtypes=("uint16", "uint32"))
        self.shape(indices, values.shape, what, str(ref["indices"]))
        self.shape(indptr, (n_out + 1,), what, str(ref["indptr"]))
        starts, cols = indptr.astype(np.int64), indices.astype(np.int64)
        if starts[0] != 0 or starts[-1] != len(values) or np.any(np.diff(starts) < 0):
            raise self.fail(
                f"{what}: array '{ref['indptr']}' must rise from 0 to {len(values)} (the stored "
                "weights) without decreasing; the file is corrupt, save the policy again"
            )
        rows = np.repeat(np.arange(n_out), np.diff(starts))
        same_row = rows[1:] == rows[:-1]
        if np.any(cols >= n_in) or np.any(cols[1:][same_row] <= cols[:-1][same_row]):
            raise self.fail(
                f"{what}: array '{ref['indices']}' must list each row's input indices below "
                f"{n_in}, increasing; the file is corrupt, save the policy again"
            )
        dense = np.zeros((n_out, n_in), dtype=values.dtype)
        dense[rows, cols] = values
        return np.ascontiguousarray(dense.T)

    def shape(self, a: Array, expected: tuple[int, ...], what: str, name: str) -> None:
        if tuple(a.shape) != expected:
            raise self.fail(
                f"{what}: array '{name}' has shape {list(a.shape)}; expected {list(expected)}"
            )

    def preprocess(self, d: Mapping[str, Any], i: int, width: int) -> tuple[Preprocess, int]:
        """One step and the width (or state count) it hands on."""
        kind = d.get("kind")
        what = f"preprocess[{i}] ({kind})"
        if kind == "normalize":
            mean = self.array(d.get("mean"), ndim=1, what=what)
            var = self.array(d.get("var"), ndim=1, what=what)
            self.shape(mean, (width,), what, str(d["mean"]))
            self.shape(var, (width,), what, str(d["var"]))
            if np.any(var < 0):
                raise self.fail(f"{what}: variance must be ≥ 0")
            clip = _real(d.get("clip", 10.0), f"{what}: clip", self.where, positive=True)
            eps = _real(d.get("eps", 1e-8), f"{what}: eps", self.where, nonnegative=True)
            return Normalize(mean, var, clip, eps), width
        if kind in ("discretize", "tile_code"):
            low = self.array(d.get("low"), ndim=1, what=what)
            high = self.array(d.get("high"), ndim=1, what=what)
            self.shape(low, (width,), what, str(d["low"]))
            self.shape(high, (width,), what, str(d["high"]))
            if np.any(high <= low):
                raise self.fail(f"{what}: every high must be above its low")
            if kind == "discretize":
                raw_bins = d.get("bins", ())
                if not isinstance(raw_bins, list) or len(raw_bins) != width:
                    raise self.fail(f"{what}: bins must list {width} positive counts")
                bins = tuple(_whole(b, f"{what}: bins", self.where, low=1) for b in raw_bins)
                step = Discretize(low, high, bins)
                return step, step.states
            tilings = _whole(d.get("tilings"), f"{what}: tilings", self.where, low=1)
            tiles = _whole(d.get("tiles_per_dim"), f"{what}: tiles_per_dim", self.where, low=1)
            hash_size = d.get("hash_size")
            if hash_size is not None:
                hash_size = _whole(hash_size, f"{what}: hash_size", self.where, low=1)
            tc = TileCode(low, high, tilings, tiles, hash_size)
            return tc, tc.features
        if kind == "one_hot":
            n = _whole(d.get("n"), f"{what}: n", self.where, low=1)
            return OneHot(n), n
        raise self.fail(
            f"unknown preprocess kind {kind!r}; this rlbudget knows normalize, discretize, "
            "tile_code, one_hot (a newer rlbudget may have written it)"
        )

    def body(self, d: Mapping[str, Any], width: int, indices: bool) -> tuple[Body, int]:
        kind = d.get("kind")
        what = f"body ({kind})"
        if kind == "cascade":  # bodies of the kinds below, read by this loader
            return read_cascade(d, width, indices, self.body, self.preprocess, self.fail)
        if kind in ("cnn", "cnn_int8"):  # convolutions, then an mlp body read by this loader
            return read_cnn(d, width, self.body, self.qdense, self.fail)
        if kind == "mlp":
            layers: list[Dense] = []
            for i, la in enumerate(d.get("layers", [])):
                w = self.weights(la.get("W"), what=f"{what} layer {i}")
                b = self.array(la.get("b"), ndim=1, what=f"{what} layer {i}")
                dtype = layers[0].W.dtype if layers else w.dtype
                if w.dtype != dtype or b.dtype != dtype:
                    raise self.fail(
                        f"{what} layer {i}: W and b are {w.dtype} and {b.dtype} but layer 0 is "
                        f"{dtype}; every layer of an mlp has one dtype (float32, or float16)"
                    )
                if w.shape[0] != width:
                    raise self.fail(
                        f"{what} layer {i}: W has {w.shape[0]} inputs but receives {width}"
                    )
                self.shape(b, (w.shape[1],), f"{what} layer {i}", str(la["b"]))
                if la.get("activation") not in ACTIVATIONS:
                    raise self.fail(
                        f"{what} layer {i}: unknown activation {la.get('activation')!r}; "
                        f"known: {', '.join(ACTIVATIONS)}"
                    )
                layers.append(Dense(w, b, str(la["activation"])))
                width = int(w.shape[1])
            if not layers:
                raise self.fail(f"{what}: no layers")
            return MLP(tuple(layers)), width
        if kind == "mlp_int8":
            qlayers: list[QDense] = []
            for i, la in enumerate(d.get("layers", [])):
                q = self.qdense(la, f"{what} layer {i}", width)
                if qlayers and (q.input_scale, q.input_zero_point) != qlayers[-1].out_quant:
                    raise self.fail(
                        f"{what} layer {i}: input scale/zero point ({q.input_scale!r}, "
                        f"{q.input_zero_point}) differ from layer {i - 1}'s output "
                        f"{qlayers[-1].out_quant!r}; quantize the policy again"
                    )
                qlayers.append(q)
                width = int(q.W.shape[1])
            if not qlayers:
                raise self.fail(f"{what}: no layers")
            if any(q.float_output for q in qlayers[:-1]):
                raise self.fail(f"{what}: only the last layer may have a float32 output")
            return QuantizedMLP(tuple(qlayers)), width
        if kind == "table":
            values = self.array(d.get("values"), ndim=2, what=what)
            if values.shape[0] != width:
                raise self.fail(
                    f"{what}: the table has {values.shape[0]} states but the preprocess "
                    f"produces {width}"
                )
            return Table(values), int(values.shape[1])
        if kind == "packed_table":
            return self.packed_table(d, what, width), 1  # one output: the action index
        if kind == "linear":
            quantized = "scale" in d
            w = self.array(d.get("W"), ndim=2, what=what,
                           dtypes=("int8", "int16") if quantized else ())  # fmt: skip
            b = self.array(d.get("b"), ndim=1, what=what, dtypes=("int32",) if quantized else ())
            if w.shape[0] != width:
                src = "features" if indices else "inputs"
                raise self.fail(f"{what}: W has {w.shape[0]} rows but there are {width} {src}")
            self.shape(b, (w.shape[1],), what, str(d["b"]))
            scale = None
            if quantized:
                scale = self.array(d.get("scale"), ndim=1, what=what)
                self.shape(scale, (w.shape[1],), what, str(d["scale"]))
            return Linear(w, b, scale), int(w.shape[1])
        raise self.fail(
            f"unknown body kind {kind!r}; this rlbudget knows mlp, mlp_int8, table, packed_table, "
            "linear, cascade, cnn, cnn_int8 "
            "(a newer rlbudget may have written it)"
        )

    def packed_table(self, d: Mapping[str, Any], what: str, width: int) -> PackedTable:
        """A packed table: bits, state count, array sizes; sparse (``stored`` present): the
        bitmap's padding bits clear and ``rank`` equal to its prefix counts (actions and the
        default are checked against the action space in :meth:`head`)."""
        packed = self.array(d.get("packed"), ndim=1, what=what, dtypes=("uint8",))
        bits, states = d.get("bits"), d.get("states")
        if not isinstance(bits, int) or not 1 <= bits <= 8:
            raise self.fail(f"{what}: bits must be an integer from 1 to 8, not {bits!r}")
        if states != width:
            raise self.fail(
                f"{what}: the table has {states!r} states but the preprocess produces {width}"
            )
        if "stored" not in d:
            self.shape(packed, (-(-width * bits // 8),), what, str(d["packed"]))
            return PackedTable(packed, bits, width)
        stored = self.array(d.get("stored"), ndim=1, what=what, dtypes=("uint8",))
        rank = self.array(d.get("rank"), ndim=1, what=what, dtypes=("uint16", "uint32"))
        default = d.get("default")
        if type(default) is not int or default < 0:
            raise self.fail(f"{what}: default must be an action index ≥ 0, not {default!r}")
        self.shape(stored, (-(-width // 8),), what, str(d["stored"]))
        self.shape(rank, (-(-width // PackedTable.RANK_BLOCK),), what, str(d["rank"]))
        bitmap = np.unpackbits(stored, bitorder="little")
        if bitmap[width:].any():
            raise self.fail(f"{what}: array '{d['stored']}' has bits set past state {width - 1}; "
                            "the file is corrupt, save the policy again")  # fmt: skip
        before = np.concatenate([[0], np.cumsum(bitmap)])[:: PackedTable.RANK_BLOCK][: len(rank)]
        if not np.array_equal(rank, before):
            raise self.fail(
                f"{what}: array '{d['rank']}' does not count the set bits of '{d['stored']}'; "
                "the file is corrupt, save the policy again"
            )
        entries = int(bitmap.sum())
        self.shape(packed, (-(-entries * bits // 8),), what, str(d["packed"]))
        return PackedTable(packed, bits, width, stored, rank, default)

    def qdense(self, la: Mapping[str, Any], what: str, width: int) -> QDense:
        """One int8 layer: dtypes, shapes, and ranges that keep the int32 arithmetic defined."""
        w = self.weights(la.get("W"), what=what, dtypes=("int8",))
        if w.shape[0] != width:
            raise self.fail(f"{what}: W has {w.shape[0]} inputs but receives {width}")
        out = (int(w.shape[1]),)
        vectors = {"b": ("int16", "int32"), "w_scale": ("float32",), "multiplier": ("int32",),
                   "shift": ("int8", "int32")}  # fmt: skip
        got: dict[str, Array] = {}
        scalar_form = [isinstance(la.get(n), int | float) and not isinstance(la.get(n), bool)
                       for n in PER_TENSOR_SCALARS]  # fmt: skip
        if any(scalar_form) and not all(scalar_form):
            raise self.fail(
                f"{what}: w_scale, multiplier and shift must be all numbers (one scale for the "
                "layer) or all array names (one per channel)"
            )
        for name, dtypes in vectors.items():
            if name in PER_TENSOR_SCALARS and all(scalar_form):
                v = la[name]
                if name == "w_scale":
                    if not 0 < v < np.finfo(np.float32).max:
                        raise self.fail(f"{what}: w_scale must be a positive finite number, "
                                        f"not {v!r}")  # fmt: skip
                elif not isinstance(v, int) or not -(2**31) <= v < 2**31:
                    raise self.fail(f"{what}: {name} must be an int32 integer, not {v!r}")
                got[name] = np.array([v], dtype=dtypes[0])
                continue
            got[name] = self.array(la.get(name), ndim=1, what=what, dtypes=dtypes)
            self.shape(got[name], out, what, slice_label(la[name]))
        if np.any(got["w_scale"] <= 0):
            raise self.fail(f"{what}: every w_scale must be > 0")
        if np.any(got["multiplier"] < 0):
            raise self.fail(f"{what}: every multiplier must be ≥ 0 (a Q0.31 fixed-point number)")
        if np.any((got["shift"] < -31) | (got["shift"] > 30)):
            raise self.fail(f"{what}: every shift must lie in [-31, 30]")
        headroom = INT32_MAX - 255 * 128 * width  # |(x - zp) * w| ≤ 255 × 128 per input
        if np.any(np.abs(got["b"].astype(np.int64)) > headroom):
            raise self.fail(
                f"{what}: a bias exceeds ±{headroom}, so the int32 accumulator could overflow; "
                "quantize the policy again"
            )
        scalars: dict[str, float] = {}
        for name in ("input_scale", "output_scale"):
            v = la.get(name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < np.inf:
                raise self.fail(f"{what}: {name} must be a positive finite number, not {v!r}")
            scalars[name] = float(v)
        zps: dict[str, int] = {}
        for name in ("input_zero_point", "output_zero_point"):
            v = la.get(name)
            if isinstance(v, bool) or not isinstance(v, int) or not -128 <= v <= 127:
                raise self.fail(f"{what}: {name} must be an integer from -128 to 127, not {v!r}")
            zps[name] = v
        activation = la.get("activation")
        if activation not in ACTIVATIONS:
            raise self.fail(
                f"{what}: unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}"
            )
        lut = None
        if activation in ("tanh", "sigmoid"):
            lut = self.array(la.get("lut"), ndim=1, what=what, dtypes=("int8",))
            if activation == "tanh" and lut.shape == (128,):  # odd: its half for 0..127
                lut = odd_table(lut)
            elif activation == "tanh" and lut.shape == (KNOTS,):  # odd, interpolated
                if lut.min() < 0:
                    label = slice_label(la["lut"])
                    raise self.fail(f"{what}: array '{label}' holds tanh knots, which must be "
                                    "0 to 127; quantize the policy again")  # fmt: skip
                lut = knot_table(lut)
            self.shape(lut, (256,), what, slice_label(la["lut"]))
        elif "lut" in la:
            raise self.fail(f"{what}: a lookup table is only used with tanh or sigmoid")
        lut_output = None
        if "lut_output_scale" in la or "lut_output_zero_point" in la:
            if lut is None:
                raise self.fail(f"{what}: lut_output_* belong to a tanh or sigmoid layer")
            scale, zp = la.get("lut_output_scale"), la.get("lut_output_zero_point")
            if (
                isinstance(scale, bool)
                or not isinstance(scale, int | float)
                or not 0 < scale < np.inf
            ):
                raise self.fail(f"{what}: lut_output_scale must be a positive finite number, "
                                f"not {scale!r}")  # fmt: skip
            if isinstance(zp, bool) or not isinstance(zp, int) or not -128 <= zp <= 127:
                raise self.fail(f"{what}: lut_output_zero_point must be an integer from -128 "
                                f"to 127, not {zp!r}")  # fmt: skip
            lut_output = (float(scale), zp)
        requantize = la.get("requantize", "tflite")
        if requantize not in REQUANTIZE:
            raise self.fail(f"{what}: requantize must be one of {', '.join(REQUANTIZE)}, not "
                            f"{requantize!r}")  # fmt: skip
        if requantize == "high_word" and np.any(got["shift"] > -2):
            raise self.fail(f"{what}: requantize 'high_word' needs every shift ≤ -2; quantize "
                            "the policy again")  # fmt: skip
        output = la.get("output", "int8")
        if output not in ("int8", "float32"):
            raise self.fail(f"{what}: output must be 'int8' or 'float32', not {output!r}")
        if output == "float32" and activation != "identity":
            raise self.fail(f"{what}: a float32 output needs the identity activation")
        return QDense(w, got["b"], got["w_scale"], got["multiplier"], got["shift"],
                      scalars["input_scale"], zps["input_zero_point"], scalars["output_scale"],
                      zps["output_zero_point"], str(activation), lut,
                      output == "float32", lut_output, str(requantize))  # fmt: skip

    def head(self, d: Mapping[str, Any], width: int, action: SpaceSpec, body: Body) -> Head:
        kind = d.get("kind")
        if kind not in HEADS:
            raise self.fail(f"unknown head kind {kind!r}; known: {', '.join(HEADS)}")
        if isinstance(body, PackedTable):
            if kind != "identity" or action.kind != "discrete" or action.n is None:
                raise self.fail(
                    "a packed_table gives action indices: it needs head 'identity' and a "
                    f"discrete action space (got head {kind!r}, {action.kind} actions)"
                )
            if body.default >= action.n:
                raise self.fail(
                    f"body (packed_table): default action {body.default} but the action space "
                    f"has {action.n} actions"
                )
            top = int(body.actions().max(initial=0))
            if top >= action.n:
                raise self.fail(
                    f"body (packed_table): holds action {top} but the action space has "
                    f"{action.n} actions"
                )
            return Head("identity")
        expected = action.n if action.kind == "discrete" else action.dim
        if width != expected:
            raise self.fail(
                f"head ({kind}): the body outputs {width} values but the action space needs "
                f"{expected}"
            )
        if kind in ("clip", "tanh_rescale"):
            low = self.array(d.get("low"), ndim=1, what=f"head ({kind})")
            high = self.array(d.get("high"), ndim=1, what=f"head ({kind})")
            return Head(str(kind), low, high)
        return Head(str(kind))


def from_document(doc: Mapping[str, Any], arrays: Mapping[str, Array], where: str) -> Policy:
    """Validate ``doc`` against ``arrays`` and build the Policy.

    :raises PolicyError: the first problem found, naming ``where``.
    """
    if doc.get("format") != "rlbudget.policy":
        raise PolicyError(f"{where}: not an rlbudget policy ('format' is {doc.get('format')!r})")
    version = doc.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise PolicyError(
            f"{where}: schema version {version!r} is newer than this rlbudget reads "
            f"({SCHEMA_VERSION}); upgrade rlbudget (pip install -U rlbudget)"
        )
    expected = {"observation_space": dict, "action_space": dict, "preprocess": list,
                "body": dict, "head": dict, "provenance": dict}  # fmt: skip
    for key, kind in expected.items():
        if key not in doc and key in ("preprocess", "provenance"):
            continue
        if not isinstance(doc.get(key), kind):
            raise PolicyError(f"{where}: '{key}' must be a JSON "
                              f"{'object' if kind is dict else 'list'}, not "
                              f"{json.dumps(doc.get(key))[:40]}; the file is corrupt")  # fmt: skip
    layers = doc["body"].get("layers", [])
    if not isinstance(layers, list) or not all(
        isinstance(x, dict) for x in (*doc.get("preprocess", []), *layers)
    ):
        raise PolicyError(f"{where}: every preprocess step and body layer must be a JSON object; "
                          "the file is corrupt")  # fmt: skip
    try:
        return _build(doc, arrays, where)
    except (TypeError, AttributeError, KeyError, ValueError, OverflowError, MemoryError) as exc:
        # a structure the checks above do not foresee: still one line, never a traceback
        raise PolicyError(
            f"{where}: policy.json has an unexpected structure "
            f"({type(exc).__name__}: {exc}); the file is corrupt"
        ) from None


def _build(doc: Mapping[str, Any], arrays: Mapping[str, Array], where: str) -> Policy:
    L = _Loader(arrays, where)
    obs = _space_from_json(doc.get("observation_space", {}), where)
    act = _space_from_json(doc.get("action_space", {}), where)
    width = obs.n if obs.kind == "discrete" and obs.n is not None else obs.dim
    steps: list[Preprocess] = []
    for i, p in enumerate(doc.get("preprocess", [])):
        step, width = L.preprocess(p, i, width)
        steps.append(step)
    indices = bool(steps) and isinstance(steps[-1], TileCode)
    body, width = L.body(doc.get("body", {}), width, indices)
    head = L.head(doc.get("head", {}), width, act, body)
    if isinstance(body, Cascade) and (body.rule == "gap") != (act.kind == "discrete"):
        raise PolicyError(f"{where}: body (cascade): rule {body.rule!r} is for "
                          f"{'discrete' if body.rule == 'gap' else 'continuous'} actions; this "
                          f"policy's are {act.kind} (gap: discrete, agreement: box)")  # fmt: skip
    L.packed.check()
    extra = set(arrays) - L.used
    if extra:
        raise PolicyError(f"{where}: {ARRAYS_NAME} has arrays the structure does not use: "
                          f"{', '.join(sorted(extra))}")  # fmt: skip
    return Policy(obs, act, tuple(steps), body, head, dict(doc.get("provenance", {})))
