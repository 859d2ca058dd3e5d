"""What every part of a policy shares: the array type, the float32 dense product and
activations of the numpy runtime, and how a weight matrix is stored (dense, or CSR when
mostly zeros).

The parts (:mod:`rlbudget.policy.model`, :mod:`rlbudget.policy.int8`) build on this
module; nothing here knows about them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[Any]
ACTIVATIONS = ("identity", "relu", "tanh", "sigmoid")
QUANTIZATION_ARRAYS = ("scale", "w_scale", "multiplier", "shift", "lut")
"""Array names (last part) that hold quantization constants, not learned parameters."""
SPARSE_INDEX_ARRAYS = ("indices", "indptr")
"""Array names (last part) of a sparse W's positions (``policy.safetensors``), not parameters."""
Document = tuple[dict[str, Any], dict[str, Array]]
"""A part's entry in ``policy.json`` and its arrays by the names that entry gives them."""


def affine(x: Array, W: Array, b: Array) -> Array:
    """``x @ W + b`` for a batch ``x`` of shape [batch, inputs], one row at a time.

    Every row goes through BLAS's vector-matrix product, whatever the batch size, so
    ``act(obs)`` (see :meth:`~rlbudget.policy.model.MLP.apply`) and ``act(batch)[i]`` agree
    to the last bit; a plain ``x @ W`` takes the matrix-matrix kernel for a batch, which
    sums in another order. A test pins this on every body kind.
    """
    out: Array = np.matmul(x.astype(np.float32, copy=False)[:, None, :], W)[:, 0, :] + b
    return out


def activate(x: Array, name: str) -> Array:
    """One of :data:`ACTIVATIONS` applied to ``x`` (a new array; identity returns ``x``)."""
    if name == "relu":
        return np.maximum(x, 0, dtype=x.dtype)
    if name == "tanh":
        return np.asarray(np.tanh(x))
    if name == "sigmoid":
        return (1.0 / (1.0 + np.exp(-x))).astype(x.dtype)
    return x


def activate_in_place(x: Array, name: str) -> None:
    """:func:`activate` writing into ``x`` (the same values; no new arrays)."""
    if name == "relu":
        np.maximum(x, 0, out=x)
    elif name == "tanh":
        np.tanh(x, out=x)
    elif name == "sigmoid":
        x[...] = activate(x, name)


def float32_fields(obj: object, *names: str) -> None:
    """Store the named array fields of a frozen dataclass as float32 (what the C export
    computes with); a field that is None stays None."""
    for name in names:
        value = getattr(obj, name)
        if value is not None:
            object.__setattr__(obj, name, np.asarray(value, dtype=np.float32))


def sparse_weights(W: Array) -> dict[str, Array] | None:
    """``W`` [inputs, outputs] as CSR arrays when they take fewer bytes than ``W``, else None.

    The CSR rows are the outputs (the rows of ``W.T``, the layout the C export uses) and
    the column indices the inputs: ``values`` (``W``'s dtype), ``indices`` (uint8 for up
    to 256 inputs, else uint16, else uint32) and ``indptr`` (``outputs + 1`` row starts;
    uint16 for up to 65,535 stored weights, else uint32). An entry is stored when its bit
    pattern is not zero, so ``-0.0`` survives and the round trip is bit-exact. Bytes:
    ``nnz * (itemsize + index bytes) + (outputs + 1) * pointer bytes``.
    """
    n_in, n_out = (int(v) for v in W.shape)
    rows = np.ascontiguousarray(W.T)
    stored = rows.view(f"u{W.itemsize}") != 0
    nnz = int(stored.sum())
    index = np.uint8 if n_in <= 2**8 else np.uint16 if n_in <= 2**16 else np.uint32
    pointer = np.uint16 if nnz < 2**16 else np.uint32
    size = nnz * (W.itemsize + np.dtype(index).itemsize) + (n_out + 1) * np.dtype(pointer).itemsize
    if size >= W.nbytes:
        return None
    indptr = np.concatenate([[0], np.cumsum(stored.sum(axis=1))]).astype(pointer)
    return {"values": rows[stored], "indices": np.nonzero(stored)[1].astype(index),
            "indptr": indptr}  # fmt: skip


def stored_weights(name: str, W: Array) -> tuple[str | dict[str, Any], dict[str, Array]]:
    """How ``W`` is stored under ``name``: its reference in ``policy.json`` (the array's
    name, or for CSR ``{"format": "csr", "shape": [inputs, outputs], "values": …,
    "indices": …, "indptr": …}`` naming ``<name>.values`` …) and the arrays."""
    csr = sparse_weights(W)
    if csr is None:
        return name, {name: W}
    arrays = {f"{name}.{k}": v for k, v in csr.items()}
    return {"format": "csr", "shape": list(W.shape), **{k: f"{name}.{k}" for k in csr}}, arrays


def stored_weight_count(W: Array) -> int:
    """Weights ``W`` stores: all of them, or (CSR) the nonzero ones."""
    csr = sparse_weights(W)
    return int(W.size) if csr is None else len(csr["values"])


def document(prefix: str, fields: dict[str, Any], arrays: dict[str, Array | None]) -> Document:
    """A part's entry: ``fields`` and, for each array that is not None, its name
    ``<prefix>.<key>`` under ``key``; the arrays by those names."""
    named = {k: v for k, v in arrays.items() if v is not None}
    entry = {**fields, **{k: f"{prefix}.{k}" for k in named}}
    return entry, {f"{prefix}.{k}": v for k, v in named.items()}
