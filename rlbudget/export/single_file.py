"""Write a one-file export (``policy.onnx``, ``policy.tflite``) into a folder, atomically."""

from __future__ import annotations

import os
from pathlib import Path

from rlbudget.errors import RlbudgetError
from rlbudget.fileio import atomic_write_bytes


def write_single_file(out_dir: str | os.PathLike[str], filename: str, data: bytes) -> Path:
    """Write ``data`` as ``out_dir/filename`` (the folder made if need be) and return its path.

    :raises RlbudgetError: the folder holds a C export or a policy (the formats are kept
        apart, so that one folder is one deployable thing), or cannot be written; nothing is
        written then.
    """
    folder = Path(out_dir)
    for other, what in (("policy.h", "a C export"), ("policy.json", "a policy")):
        if (folder / other).exists():
            raise RlbudgetError(f"{folder}: holds {what} ({other}); write {filename} to "
                                "another folder (nothing written)")  # fmt: skip
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / filename, data)
    except OSError as exc:
        raise RlbudgetError(f"{folder}: cannot write {filename} there ({exc.strerror})") from None
    return folder / filename
