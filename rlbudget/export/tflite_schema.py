"""A TFLite model (``schema.fbs``, schema version 3) written with flatbuffers' ``Builder``.

Only the tables and fields :mod:`rlbudget.export.tflite` needs: one subgraph of tensors
(shape, type, constant data, per-tensor or per-channel quantization) and builtin
operators with their options tables. The numbers below are the field slots, enum values
and union indices of TensorFlow's ``tensorflow/lite/schema/schema.fbs``; a test reads a
written model back with the generated ``schema_py_generated`` bindings that tflite-micro
and ai-edge-litert ship, and checks each number against them. No TensorFlow, no generated
code at run time: ``flatbuffers`` alone (``pip install 'rlbudget[tflite]'``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlbudget.errors import PolicyError

SCHEMA_VERSION = 3
FILE_IDENTIFIER = b"TFL3"
MISSING_EXTRA = "TFLite export needs the tflite extra: pip install 'rlbudget[tflite]'"

# TensorType
FLOAT32, INT32, INT64, INT8 = 0, 2, 4, 9
TENSOR_TYPES = {np.dtype(np.float32): FLOAT32, np.dtype(np.int32): INT32,
                np.dtype(np.int64): INT64, np.dtype(np.int8): INT8}  # fmt: skip

# ActivationFunctionType
NONE, RELU = 0, 1

# BuiltinOperator: code, and the BuiltinOptions union member its options table is (0: none)
OPERATORS = {
    "ADD": (0, 11), "ARG_MAX": (56, 40), "CAST": (53, 37), "DEQUANTIZE": (6, 0),
    "DIV": (42, 29), "FULLY_CONNECTED": (9, 8), "GATHER": (36, 23), "LOGISTIC": (14, 0),
    "MAXIMUM": (55, 0), "MINIMUM": (57, 0), "MUL": (18, 21), "QUANTIZE": (114, 0),
    "RESHAPE": (22, 0), "SUB": (41, 28), "SUM": (74, 27), "TANH": (28, 0),
}  # fmt: skip
"""Builtin operators used, by name: (BuiltinOperator code, BuiltinOptions union index).
Options are scalar fields only, written by slot (:class:`Op`)."""


@dataclass
class Tensor:
    """A tensor of the subgraph: ``data`` for a constant (its own buffer), ``scales`` and
    ``zero_points`` for a quantized one (one each, or one per channel of
    ``quantized_dimension``)."""

    name: str
    shape: tuple[int, ...]
    type: int
    data: bytes | None = None
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    quantized_dimension: int = 0


@dataclass
class Op:
    """A builtin operator: its name in :data:`OPERATORS`, input and output tensor indices,
    and its options as ``{slot: (value, flatbuffers type name)}``, e.g. ``{0: (1, "Int8")}``."""

    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[int, tuple[int, str]] = field(default_factory=dict)


@dataclass
class Model:
    """One subgraph; :meth:`serialize` writes the ``.tflite`` bytes."""

    tensors: list[Tensor] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    inputs: tuple[int, ...] = ()
    outputs: tuple[int, ...] = ()
    description: str = ""
    metadata: dict[str, bytes] = field(default_factory=dict)

    def add(self, tensor: Tensor) -> int:
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def serialize(self) -> bytes:
        try:
            import flatbuffers
        except ImportError:
            raise PolicyError(MISSING_EXTRA) from None
        return _Writer(flatbuffers.Builder(4096)).model(self)


class _Writer:
    """Writes the tables bottom-up (flatbuffers builds from the end of the buffer)."""

    def __init__(self, builder: Any) -> None:
        self.b = builder

    def ints(self, values: Any, dtype: Any) -> int:
        out: int = self.b.CreateNumpyVector(np.asarray(values, dtype=dtype))
        return out

    def offsets(self, offsets: list[int]) -> int:
        self.b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            self.b.PrependUOffsetTRelative(off)
        out: int = self.b.EndVector()
        return out

    def data(self, payload: bytes) -> int:
        """A ``[ubyte]`` vector aligned to 16 bytes (schema: ``force_align: 16``), so that
        a runtime reading the buffer in place sees aligned int32/float data."""
        b = self.b
        b.StartVector(1, len(payload), 16)
        b.head -= len(payload)
        b.Bytes[b.head : b.head + len(payload)] = payload
        b.vectorNumElems = len(payload)
        out: int = b.EndVector()
        return out

    def table(self, fields: list[tuple[int, str, Any]]) -> int:
        """A table from ``(slot, kind, value)``: kind is a flatbuffers scalar type name
        (``Int32``, ``Uint8``, …; written even when it is the default) or ``offset``."""
        b = self.b
        b.StartObject(1 + max((slot for slot, _, _ in fields), default=-1))
        for slot, kind, value in fields:
            if kind == "offset":
                b.PrependUOffsetTRelativeSlot(slot, value, 0)
            else:
                getattr(b, f"Prepend{kind}")(value)
                b.Slot(slot)
        out: int = b.EndObject()
        return out

    def quantization(self, t: Tensor) -> int:
        scales = self.ints(t.scales, np.float32)
        zero_points = self.ints(t.zero_points, np.int64)
        return self.table([(2, "offset", scales), (3, "offset", zero_points),
                           (6, "Int32", t.quantized_dimension)])  # fmt: skip

    def tensor(self, t: Tensor, buffer: int) -> int:
        name = self.b.CreateString(t.name)
        shape = self.ints(t.shape, np.int32)
        fields = [(0, "offset", shape), (1, "Int8", t.type), (2, "Uint32", buffer),
                  (3, "offset", name)]  # fmt: skip
        if t.scales:
            fields.append((4, "offset", self.quantization(t)))
        return self.table(fields)

    def operator(self, op: Op, opcode: int) -> int:
        _, union = OPERATORS[op.name]
        inputs, outputs = self.ints(op.inputs, np.int32), self.ints(op.outputs, np.int32)
        fields = [(0, "Uint32", opcode), (1, "offset", inputs), (2, "offset", outputs)]
        if union:
            options = self.table([(s, kind, v) for s, (v, kind) in sorted(op.options.items())])
            fields += [(3, "Uint8", union), (4, "offset", options)]
        return self.table(fields)

    def model(self, m: Model) -> bytes:
        b = self.b
        names = list(dict.fromkeys(op.name for op in m.ops))
        # buffer 0 is the empty sentinel; each constant tensor then has its own
        payloads = [b""] + [t.data for t in m.tensors if t.data is not None]
        payloads += list(m.metadata.values())
        buffers = [self.table([(0, "offset", self.data(p))] if p else []) for p in payloads]
        tensors, index = [], 1
        for t in m.tensors:
            tensors.append(self.tensor(t, index if t.data is not None else 0))
            index += t.data is not None
        operators = [self.operator(op, names.index(op.name)) for op in m.ops]
        subgraph = self.table([
            (0, "offset", self.offsets(tensors)), (1, "offset", self.ints(m.inputs, np.int32)),
            (2, "offset", self.ints(m.outputs, np.int32)),
            (3, "offset", self.offsets(operators)), (4, "offset", b.CreateString("main")),
        ])  # fmt: skip
        codes = []
        for name in names:  # deprecated_builtin_code is an int8: min(code, 127)
            code = OPERATORS[name][0]
            codes.append(self.table([(0, "Int8", min(code, 127)), (2, "Int32", 1),
                                     (3, "Int32", code)]))  # fmt: skip
        metadata = [
            self.table([(0, "offset", b.CreateString(key)), (1, "Uint32", index + i)])
            for i, key in enumerate(m.metadata)
        ]  # fmt: skip
        fields = [(0, "Uint32", SCHEMA_VERSION), (1, "offset", self.offsets(codes)),
                  (2, "offset", self.offsets([subgraph])),
                  (3, "offset", b.CreateString(m.description)),
                  (4, "offset", self.offsets(buffers))]  # fmt: skip
        if metadata:
            fields.append((6, "offset", self.offsets(metadata)))
        b.Finish(self.table(fields), file_identifier=FILE_IDENTIFIER)
        return bytes(b.Output())
