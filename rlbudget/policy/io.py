"""A policy on disk: ``policy.json`` (structure) + ``policy.safetensors`` (arrays).

Loading never unpickles or executes anything (safetensors is a JSON header and raw
bytes) and validates everything before a :class:`Policy` is built
(:mod:`rlbudget.policy.reader`): every problem is one :class:`~rlbudget.errors.PolicyError`
naming the file and what to do. Saving is atomic: a temporary folder beside the target,
each file fsynced, then renamed into place, so an interrupted save never leaves a
half-written policy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rlbudget import __version__
from rlbudget.errors import PolicyError, RlbudgetError
from rlbudget.fileio import atomic_write_dir, load_json, read_capped
from rlbudget.policy.kernels import Array
from rlbudget.policy.kernels import sparse_weights as sparse_weights  # where the C export looks
from rlbudget.policy.model import Policy
from rlbudget.policy.packing import ARRAYS_NAME
from rlbudget.policy.packing import pack_int8 as pack_int8
from rlbudget.policy.reader import from_document as from_document

JSON_NAME = "policy.json"
MAX_JSON_BYTES = 64 * 1024 * 1024  # the arrays live in the safetensors file


def to_document(policy: Policy) -> tuple[dict[str, Any], dict[str, Array]]:
    """The JSON structure and the arrays (by name) that describe ``policy``.

    Each part writes its own entry (``document``). A layer's ``W`` is an array name, or
    (mostly zeros, see :func:`~rlbudget.policy.kernels.sparse_weights`) ``{"format": "csr",
    "shape": [inputs, outputs], "values": …, "indices": …, "indptr": …}`` naming three
    arrays ``<W>.values``, ``<W>.indices``, ``<W>.indptr``.
    """
    entries = {prefix: part.document(prefix)[0] for prefix, part in policy.parts()}
    doc = {
        "format": "rlbudget.policy",
        "schema_version": 1,  # pack_int8 raises it where it packs
        "rlbudget_version": __version__,
        "observation_space": policy.observation_space.to_dict(),
        "action_space": policy.action_space.to_dict(),
        "preprocess": [entries[f"preprocess.{i}"] for i in range(len(policy.preprocess))],
        "body": entries["body"],
        "head": entries["head"],
        "provenance": dict(policy.provenance),
    }
    return doc, policy.arrays()


def save_policy(
    policy: Policy, path: str | os.PathLike[str], *, parents: bool = False, pack: bool = True
) -> Path:
    """Write ``policy`` as a folder atomically (replacing an existing policy folder).

    :param parents: create missing parent folders first (as ``mkdir -p``).
    :param pack: an int8 body's arrays packed into one per dtype (:func:`pack_int8`; schema
        version 2); False writes an array per layer, as rlbudget before schema 2 reads.
    :raises PolicyError: the parent folder is missing (or cannot be created), or ``path``
        is another folder.
    """
    from safetensors.numpy import save

    doc, arrays = to_document(policy)
    if pack:
        doc, arrays = pack_int8(doc, arrays)
    files = {
        ARRAYS_NAME: save(arrays),
        JSON_NAME: (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode(),
    }
    try:
        return atomic_write_dir(path, files, marker=JSON_NAME, parents=parents)
    except RlbudgetError as exc:
        raise PolicyError(str(exc)) from None


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and validate a policy folder. Nothing in it is executed.

    :raises PolicyError: missing or corrupt files, inconsistent shapes, bad values, newer schema.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    folder = Path(path)
    if not folder.is_dir():
        raise PolicyError(
            f"{folder}: no such policy folder; give the folder that holds {JSON_NAME}"
        )
    json_path, arrays_path = folder / JSON_NAME, folder / ARRAYS_NAME
    for p in (json_path, arrays_path):
        if not p.is_file():
            raise PolicyError(f"{p}: missing; a policy folder holds {JSON_NAME} and {ARRAYS_NAME}")
    try:
        doc = load_json(read_capped(json_path, MAX_JSON_BYTES, f"a {JSON_NAME}"), str(json_path))
    except RlbudgetError as exc:
        raise PolicyError(str(exc)) from None
    if not isinstance(doc, dict):
        raise PolicyError(f"{json_path}: expected a JSON object")
    try:
        arrays = load(arrays_path.read_bytes())
    except (SafetensorError, ValueError, TypeError) as exc:
        raise PolicyError(
            f"{arrays_path}: not a readable safetensors file ({exc}); it is truncated or corrupt"
        ) from None
    return from_document(doc, arrays, str(folder))
