"""Compression: each method takes a Policy and returns a smaller Policy, recording itself
in the provenance's ``transforms`` (:func:`with_transform`).

The package is also the stage's function: ``rlbudget.compress(policy, "int8", env_id)`` is
:func:`rlbudget.compress.pipeline.compress` (see :func:`rlbudget._lazy.callable_package`).
"""

from __future__ import annotations

from typing import Any

from rlbudget._lazy import callable_package, submodules
from rlbudget.policy.model import Policy


def policy_bytes(policy: Policy) -> int:
    """Bytes of every array the policy stores (weights, tables, preprocess constants)."""
    return sum(policy.bytes_by_dtype().values())


def with_transform(parent: Policy, child: Policy, method: str, **params: Any) -> Policy:
    """``child`` with ``parent``'s provenance plus one transform entry: ``method``, its
    parameters, and the bytes before and after."""
    prov = dict(parent.provenance)
    transforms = [*prov.get("transforms", []), {
        "method": method, **params,
        "bytes_before": policy_bytes(parent), "bytes_after": policy_bytes(child),
    }]  # fmt: skip
    prov["transforms"] = transforms
    return Policy(child.observation_space, child.action_space, child.preprocess, child.body,
                  child.head, prov)  # fmt: skip


__getattr__ = submodules(__name__)  # submodules on first use, after import rlbudget
callable_package(__name__, "rlbudget.compress.pipeline:compress")
