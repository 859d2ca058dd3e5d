"""An int8 body's arrays packed into one array per dtype (policy file schema 2): written by
:func:`pack_int8` (:func:`~rlbudget.policy.io.save_policy`), read back slice by slice by
:class:`Slices` (:mod:`rlbudget.policy.reader`), which checks each slice's range and that
the slices cover each packed array once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rlbudget.errors import PolicyError
from rlbudget.policy.kernels import Array

ARRAYS_NAME = "policy.safetensors"
PACKED_SCHEMA_VERSION = 2
"""The schema version of a document with packed arrays."""


def pack_int8(
    doc: dict[str, Any], arrays: dict[str, Array]
) -> tuple[dict[str, Any], dict[str, Array]]:
    """``doc`` and ``arrays`` with an ``mlp_int8`` body's dense arrays packed into one array
    per dtype, ``body.<dtype>`` (e.g. every int8 W and tanh table in ``body.int8``, every
    int16 bias in ``body.int16``): each reference becomes ``{"array": "body.int8",
    "offset": …, "shape": […]}``, the array's elements from ``offset`` in C order. Each
    array in a safetensors file costs ≈ 60 B of header: a 64-64 tanh net stores 2 arrays
    instead of 7. Another body, or an int8 body with nothing to pack, is returned as it is
    (schema version 1); a packed document has schema version 2."""
    body = doc["body"]
    if body.get("kind") != "mlp_int8":
        return doc, arrays
    chunks: dict[str, list[Array]] = {}
    refs: dict[str, dict[str, Any]] = {}  # a table shared by layers: one slice

    def packed(name: str) -> dict[str, Any]:
        if name not in refs:
            a = arrays[name]
            group = chunks.setdefault(str(a.dtype), [])
            refs[name] = {"array": f"body.{a.dtype}", "offset": sum(c.size for c in group),
                          "shape": list(a.shape)}  # fmt: skip
            group.append(a.ravel())
        return dict(refs[name])

    layers = [{k: packed(v) if isinstance(v, str) and v in arrays and k != "activation"
               and k != "output" else v for k, v in la.items()}
              for la in body["layers"]]  # fmt: skip
    if not refs:
        return doc, arrays
    out = {k: v for k, v in arrays.items() if k not in refs}
    out.update({f"body.{dtype}": np.concatenate(group) for dtype, group in chunks.items()})
    return {**doc, "schema_version": PACKED_SCHEMA_VERSION, "body": {**body, "layers": layers}}, out


def slice_label(ref: Any) -> str:
    """How an array reference is named in messages: its name, or ``name[start:end]``."""
    if isinstance(ref, Mapping) and "array" in ref:
        size = math.prod(ref.get("shape") or []) if isinstance(ref.get("shape"), list) else 0
        offset = ref.get("offset")
        if isinstance(offset, int) and isinstance(size, int):
            return f"{ref['array']}[{offset}:{offset + size}]"
        return str(ref["array"])
    return str(ref)


class Slices:
    """Reads slices ``{"array": …, "offset": …, "shape": […]}`` of the packed arrays in
    ``arrays``; ``fail`` makes the error a message names the policy by."""

    def __init__(self, arrays: Mapping[str, Array], fail: Callable[[str], PolicyError]) -> None:
        self.arrays = arrays
        self.fail = fail
        self.spans: dict[str, set[tuple[int, int]]] = {}  # packed array: (start, end) read

    def read(self, ref: Mapping[str, Any], what: str) -> Array:
        """The elements ``offset`` … ``offset + prod(shape)`` of a 1-D packed array, in
        ``shape``; :meth:`check` later checks that the slices read cover each packed array
        once."""
        name, offset, shape = ref.get("array"), ref.get("offset"), ref.get("shape")
        if not isinstance(name, str) or name not in self.arrays:
            raise self.fail(f"{what}: array {name!r} is missing from {ARRAYS_NAME}; the policy "
                            "is incomplete, save it again")  # fmt: skip
        whole = self.arrays[name]
        if (type(offset) is not int or offset < 0 or not isinstance(shape, list)
                or not all(type(v) is int and v >= 0 for v in shape)):  # fmt: skip
            raise self.fail(f"{what}: a slice of '{name}' needs an integer offset ≥ 0 and a "
                            f"shape of integers ≥ 0, not {offset!r} and {shape!r}")  # fmt: skip
        end = offset + math.prod(shape)
        if whole.ndim != 1 or end > whole.size:
            raise self.fail(f"{what}: slice [{offset}:{end}] of array '{name}' (shape "
                            f"{list(whole.shape)}) is out of range; the file is corrupt, save "
                            "the policy again")  # fmt: skip
        self.spans.setdefault(name, set()).add((offset, end))
        return np.ascontiguousarray(whole[offset:end].reshape(shape))

    def check(self) -> None:
        """Each packed array is read whole, by slices that do not overlap (a slice read twice,
        a shared table, counts once)."""
        for name, spans in self.spans.items():
            position = 0
            for start, end in sorted(spans):
                if start != position:
                    gap = f"leave [{position}:{start}] unread"
                    problem = gap if start > position else "overlap"
                    raise self.fail(f"the slices of array '{name}' {problem}; the file is "
                                    "corrupt, save the policy again")  # fmt: skip
                position = end
            if position != self.arrays[name].size:
                raise self.fail(f"array '{name}' has {self.arrays[name].size} elements but the "
                                f"structure reads {position}; the file is corrupt, save the "
                                "policy again")  # fmt: skip
