"""Compressing tabular and linear policies.

- :func:`pack_table`: a ``table`` of action values → its greedy actions, ⌈log2 |A|⌉ bits
  per state (:class:`~rlbudget.policy.model.PackedTable`). Lossless for the deployed
  (greedy) policy: every state keeps exactly the action ``argmax`` chose, ties included.
- :func:`drop_unvisited`: a table (or packed table) whose states never visited act one
  default action; the packed form then stores a bitmap and the actions of the states
  that differ from the default (see the function for when that is smaller).
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
__all__ = ["drop_unvisited", "pack_table", "policy_bytes", "quantize_linear"]


def _pack(actions: np.ndarray, bits: int) -> np.ndarray:
    """``actions`` as one little-endian bit string, ``bits`` bits each (PackedTable)."""
    planes = (actions.astype(np.int64)[:, None] >> np.arange(bits)) & 1
    return np.packbits(planes.astype(np.uint8).ravel(), bitorder="little")


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
    child = Policy(policy.observation_space, policy.action_space, policy.preprocess,
                   PackedTable(_pack(actions, bits), bits, len(actions)),
                   Head("identity"))  # fmt: skip
    return with_transform(policy, child, "pack_table", bits=bits)


def _visited_states(policy: Policy, visited_obs: np.ndarray, states: int) -> np.ndarray:
    """The distinct state indices that ``visited_obs`` reach through the preprocess."""
    obs = np.asarray(visited_obs)
    shape = tuple(policy.observation_space.shape)
    if obs.ndim != len(shape) + 1 or obs.shape[1:] != shape:
        expected = ", ".join(["n", *map(str, shape)])
        raise PolicyError(
            f"drop_unvisited: visited_obs has shape {list(obs.shape)}; expected [{expected}] "
            "(one row per observation)"
        )
    x = obs
    for step in policy.preprocess:
        x = step.apply(x)
    idx = np.asarray(x).astype(np.int64).ravel()
    bad = idx[(idx < 0) | (idx >= states)]
    if len(bad):
        raise PolicyError(
            f"drop_unvisited: visited_obs holds state {int(bad[0])} but the table has {states} "
            f"states (0 to {states - 1})"
        )
    return np.unique(idx)


def drop_unvisited(
    policy: Policy, visited_obs: np.ndarray, *, default_action: int | None = None
) -> Policy:
    """Greedy actions of the visited states only; every other state acts ``default_action``.

    A ``table`` is packed first (:func:`pack_table`, also listed in the provenance). Every
    state that ``visited_obs`` reaches keeps its greedy action exactly; the others act the
    default, by default the most common greedy action among the distinct visited states
    (ties: the lowest action index). That choice also makes the table smallest: a visited
    state whose action *is* the default needs no entry either.

    Storage (``S`` states, ``b`` bits per action, ``E`` visited states whose action
    differs from the default; see :class:`~rlbudget.policy.model.PackedTable`):

    - bitmap: ``⌈S/8⌉`` bytes of bitmap + ``⌈S/64⌉`` rank entries of 2 bytes (4 from
      65,536 entries) + ``⌈E·b/8⌉`` bytes of actions;
    - dense: ``⌈S·b/8⌉`` bytes, every unvisited state holding the default.

    The bitmap is kept only when it is strictly smaller: roughly when ``E/S < 1 - 1.25/b``
    (never for 2 actions, ``b = 1``; below 37.5 % of the states for ``b = 2``, 58 % for
    ``b = 3``), as in a finely discretized continuous space the policy visits a small part
    of. The provenance says which (``stored: "bitmap"`` or ``"dense"``) with the default,
    the number of distinct visited states and ``non_default_states`` (``E``).

    :param visited_obs: raw observations ``[n, *observation_shape]`` (e.g. from the
        policy's own episodes); they go through the policy's preprocess to state indices.
    :param default_action: the action of every unvisited state.
    :raises PolicyError: not a table / packed table policy, ``visited_obs`` of the wrong
        shape or outside the table, ``default_action`` outside the action space, or no
        visited state and no ``default_action``.
    """
    if isinstance(policy.body, Table):
        policy = pack_table(policy)
    body, n = policy.body, policy.action_space.n
    if not isinstance(body, PackedTable) or n is None:
        raise PolicyError(
            f"drop_unvisited applies to a table or packed_table policy; this policy has a "
            f"{body.kind} body"
        )
    if default_action is not None and not 0 <= default_action < n:
        raise PolicyError(
            f"drop_unvisited: default_action {default_action} is not an action; the action "
            f"space has {n} actions (0 to {n - 1})"
        )
    if default_action is not None:
        default_action = int(default_action)  # a numpy integer too: it goes into the JSON
    visited = _visited_states(policy, visited_obs, body.states)
    actions = body.actions()
    if default_action is None:
        if not len(visited):
            raise PolicyError("drop_unvisited: visited_obs is empty; give observations the "
                              "policy visits, or a default_action")  # fmt: skip
        default_action = int(np.bincount(actions[visited], minlength=n).argmax())
    own = np.zeros(body.states, dtype=bool)
    own[visited] = actions[visited] != default_action
    kept = actions[own]
    S, bits = body.states, body.bits
    rank_dtype = np.uint16 if len(kept) < 2**16 else np.uint32
    block = PackedTable.RANK_BLOCK
    sparse_bytes = -(-S // 8) + -(-S // block) * np.dtype(rank_dtype).itemsize
    sparse_bytes += -(-len(kept) * bits // 8)
    if sparse_bytes < -(-S * bits // 8):
        rank = np.concatenate([[0], np.cumsum(own)])[::block][: -(-S // block)]
        table = PackedTable(_pack(kept, bits), bits, S, np.packbits(own, bitorder="little"),
                            rank.astype(rank_dtype), default_action)  # fmt: skip
        stored = "bitmap"
    else:
        table = PackedTable(_pack(np.where(own, actions, default_action), bits), bits, S)
        stored = "dense"
    child = Policy(policy.observation_space, policy.action_space, policy.preprocess, table,
                   policy.head)  # fmt: skip
    return with_transform(policy, child, "drop_unvisited", default_action=default_action,
                          visited_states=len(visited), non_default_states=len(kept),
                          stored=stored)  # fmt: skip


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
    # The int32 sum of every weight row plus the bias must not overflow: a bias far larger
    # than the weights widens the scale (the weights then use fewer levels) instead.
    headroom = (2**31 - 1) - qmax * int(body.W.shape[0])
    bias_top = float(np.abs(body.b.astype(np.float64)).max(initial=0.0))
    scale = np.float32(max(top / qmax, bias_top / headroom) if top > 0 or bias_top > 0 else 1.0)
    w = np.clip(np.round(body.W / scale), -qmax, qmax).astype(dtype)
    b = np.clip(np.round(body.b / scale), -headroom, headroom).astype(np.int32)
    scales = np.full(body.W.shape[1], scale, dtype=np.float32)
    child = Policy(policy.observation_space, policy.action_space, policy.preprocess,
                   Linear(w, b, scales), policy.head)  # fmt: skip
    return with_transform(policy, child, "quantize_linear", dtype=dtype, scale=float(scale))
