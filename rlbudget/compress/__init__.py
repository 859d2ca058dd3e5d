"""Compression: each method takes a Policy and returns a smaller Policy, recording itself
in the provenance's ``transforms`` (:func:`with_transform`).

The package is also the stage's function: ``rlbudget.compress(policy, "int8", env_id)`` is
:func:`rlbudget.compress.pipeline.compress` (see :func:`rlbudget._lazy.callable_package`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlbudget._lazy import callable_package, submodules
from rlbudget.policy.model import Policy


def policy_bytes(policy: Policy) -> int:
    """Bytes of every array the policy stores (weights, tables, preprocess constants)."""
    return sum(policy.bytes_by_dtype().values())


def check_output(source: Path, output: Path) -> None:
    """Refuse, before any compression runs, an output folder that ``save_policy`` would
    refuse after it: the input policy itself, or a folder that is not a policy folder.

    :raises PolicyError: naming ``-o`` and what to do.
    """
    from rlbudget.errors import PolicyError

    if output.resolve() == source.resolve():
        raise PolicyError(f"-o {output} is the input policy; write the result to another "
                          "folder (nothing written)")  # fmt: skip
    if output.exists() and not (output / "policy.json").is_file():
        raise PolicyError(
            f"{output}: exists and is not a policy folder; choose another -o (nothing written)"
        )


def gate_warning(policy: Policy, name: str) -> str | None:
    """A warning for a policy whose compression gate failed (its ``compress_gate``
    provenance, :mod:`rlbudget.compress.pipeline`), naming it ``name``; None otherwise."""
    gate = policy.provenance.get("compress_gate")
    if not isinstance(gate, dict) or gate.get("passed") is not False:
        return None
    nan = float("nan")
    return (f"warning: {name} failed its compression gate (return retention "
            f"{gate.get('retention', nan):.1%}, worst 5 % drop {gate.get('tail_drop', nan):.1%}, "
            f"limit: a drop of at most {gate.get('max_return_drop', nan):.1%}); exporting it "
            "anyway")  # fmt: skip


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
