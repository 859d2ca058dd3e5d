"""Compressing tabular and linear policies.

- :func:`pack_table`: a ``table`` of action values → its greedy actions, ⌈log2 |A|⌉ bits
  per state (:class:`~rlbudget.policy.model.PackedTable`). Lossless for the deployed
  (greedy) policy: every state keeps exactly the action ``argmax`` chose, ties included.
- :func:`quantize_linear`: a ``linear`` body's float weights → int16 (or int8) with one
  scale for the whole matrix and an int32 bias in the same units. With one scale the
  tile-coded sums stay integers and ``argmax`` needs no multiply on the device; the
  only change is the rounding of each weight (at most half a step, ``scale / 2``).

Both return a new :class:`~rlbudget.policy.Policy` whose provenance lists the transform
with its parameters and the bytes before and after.
"""

from __future__ import annotations

import math

import numpy as np

from rlbudget.compress import policy_bytes, with_transform
from rlbudget.errors import PolicyError
from rlbudget.policy.model import Head, Linear, PackedTable, Policy, Table

INT_RANGES = {"int8": 127, "int16": 32767}
__all__ = ["pack_table", "policy_bytes", "quantize_linear"]


def pack_table(policy: Policy) -> Policy:
    """The greedy actions of a ``table`` policy, packed ⌈log2 |A|⌉ bits per state.

    :raises PolicyError: the policy is not a value table with an ``argmax`` head.
    """
    body, n = policy.body, policy.action_space.n
    if not isinstance(body, Table) or policy.head.kind != "argmax" or n is None:
        raise PolicyError(
            f"pack_table applies to a value table with an argmax head; this policy has a "
            f"{body.kind} body and a {policy.head.kind} head"
        )
    bits = max(1, math.ceil(math.log2(n)))
    actions = np.argmax(body.values, axis=1).astype(np.int64)
    planes = (actions[:, None] >> np.arange(bits)) & 1
    packed = np.packbits(planes.astype(np.uint8).ravel(), bitorder="little")
    child = Policy(policy.observation_space, policy.action_space, policy.preprocess,
                   PackedTable(packed, bits, len(actions)), Head("identity"))  # fmt: skip
    return with_transform(policy, child, "pack_table", bits=bits)


def quantize_linear(policy: Policy, dtype: str = "int16") -> Policy:
    """A ``linear`` body with ``dtype`` weights, one scale, and an int32 bias.

    ``scale = max |W| / qmax``; ``W_q = round(W / scale)``; ``b_q = round(b / scale)``.

    :param dtype: ``int16`` or ``int8``.
    :raises PolicyError: not a float linear body, or an unknown dtype.
    """
    body = policy.body
    if not isinstance(body, Linear) or body.scale is not None:
        raise PolicyError(
            f"quantize_linear applies to a float linear body; this policy has a "
            f"{body.kind} body{' that is already quantized' if isinstance(body, Linear) else ''}"
        )
    if dtype not in INT_RANGES:
        raise PolicyError(f"quantize_linear: dtype {dtype!r}; use {' or '.join(INT_RANGES)}")
    qmax = INT_RANGES[dtype]
    top = float(np.abs(body.W).max())
    scale = np.float32(top / qmax if top > 0 else 1.0)
    w = np.clip(np.round(body.W / scale), -qmax, qmax).astype(dtype)
    b = np.round(body.b / scale).astype(np.int32)
    scales = np.full(body.W.shape[1], scale, dtype=np.float32)
    child = Policy(policy.observation_space, policy.action_space, policy.preprocess,
                   Linear(w, b, scales), policy.head)  # fmt: skip
    return with_transform(policy, child, "quantize_linear", dtype=dtype, scale=float(scale))
