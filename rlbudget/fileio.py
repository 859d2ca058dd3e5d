"""Atomic file writes: a kill mid-write never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if sys.platform != "win32":  # Windows: run folders are not locked
    import fcntl

from rlbudget.errors import RlbudgetError


def _umask() -> int:
    """The process's umask (read by setting it, then setting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder, fsync, rename.

    :raises RlbudgetError: the folder does not exist or is not writable.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise RlbudgetError(f"{target}: the folder {folder} does not exist; create it first")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise RlbudgetError(f"{target}: cannot write there ({exc.strerror})") from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; a written file is shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(exc):
            raise disk_full(target) from None
        raise


def atomic_write_dir(
    target: str | os.PathLike[str], files: dict[str, bytes], *, marker: str, parents: bool = False
) -> Path:
    """Write a folder of files atomically: a temp folder beside ``target``, each file
    fsynced, then renamed into place (an existing folder is swapped out, then removed).

    A kill at any moment leaves either the old folder or the new one, never a mix.

    :param marker: a file name that identifies a folder this function may replace; an
        existing ``target`` without it is refused (nothing is written), unless it is empty.
    :param parents: create missing parent folders first (as ``mkdir -p``).
    :raises RlbudgetError: the parent folder is missing (or cannot be created), or
        ``target`` is another folder.
    """
    import shutil

    path = Path(target)
    parent = path.parent if str(path.parent) else Path(".")
    if parents:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RlbudgetError(f"{path}: cannot create its folder ({exc.strerror})") from None
    if not parent.is_dir():
        raise RlbudgetError(f"{path}: the folder {parent} does not exist; create it first")
    empty = path.is_dir() and not any(path.iterdir())
    if path.exists() and not empty and not (path / marker).exists():
        raise RlbudgetError(
            f"{path}: exists and is not a folder rlbudget wrote; choose another path "
            "(nothing written)"
        )
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700
        for name, data in files.items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        old = None
        if path.exists():
            old = parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(exc):
            raise disk_full(path) from None
        raise
    return path


def is_disk_full(exc: BaseException) -> bool:
    """An OSError that says the disk (or the user's quota) is full."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(path: str | os.PathLike[str] | None) -> RlbudgetError:
    """The one-line error for a full disk while writing ``path``."""
    where = str(path) if path is not None else "a file"
    return RlbudgetError(
        f"disk full writing {where}: free some space and run the command again "
        "(nothing half-written was kept in its place)"
    )


def read_capped(
    path: str | os.PathLike[str], limit: int, what: str, *, too_long: str | None = None
) -> bytes:
    """Read at most ``limit`` bytes of ``path``; more is an error. Every capped read of a
    user's file (a budget, a policy.json) goes through here.

    The cap is on the bytes read, not on ``stat``: ``/dev/zero``, a FIFO or a growing file
    have no meaningful size.

    :param what: what the file should be, for the message ("a policy.json").
    :param too_long: the message after ``PATH:`` when the file is longer (default: "longer
        than LIMIT bytes; not WHAT").
    :raises RlbudgetError: unreadable, or longer than ``limit``.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise RlbudgetError(
            f"{path}: cannot be read ({exc.strerror}); check its permissions"
        ) from None
    if len(data) > limit:
        raise RlbudgetError(f"{path}: {too_long or f'longer than {limit:,} bytes; not {what}'}")
    return data


MAX_JSON_DEPTH = 32


def json_depth_ok(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` (parsed JSON) nests at most ``limit`` lists/objects deep.

    Walks without recursion, so a hostile document cannot overflow the stack here.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > limit:
                return False
            children = v.values() if isinstance(v, dict) else v
            stack.extend((c, depth + 1) for c in children)
    return True


def load_json(text: str | bytes, where: str, *, limit: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` with a nesting cap: deep nesting is an error, not a RecursionError.

    :raises RlbudgetError: not valid JSON, or nested deeper than ``limit``.
    """
    import json

    deep = RlbudgetError(f"{where}: nested deeper than {limit} levels; the file is corrupt")
    try:
        value = json.loads(text)
    except RecursionError:
        raise deep from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RlbudgetError(f"{where}: not valid JSON ({exc}); the file is corrupt") from None
    if not json_depth_ok(value, limit):
        raise deep
    return value


LOCK = ".lock"  # in a run folder: held (flock) by the job writing there, holds its pid


def _lock_busy(folder: Path, fd: int) -> RlbudgetError:
    try:
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        pid = ""
    who = f"pid {pid}" if pid.isdigit() else "another process"
    return RlbudgetError(
        f"{folder}: in use by another rlbudget job ({who}); wait for it to finish, stop it, "
        "or choose another -o"
    )


def _open_lock(folder: Path, create: bool = True) -> int:
    try:
        return os.open(folder / LOCK, os.O_RDWR | (os.O_CREAT if create else 0), 0o666)
    except OSError as exc:
        raise RlbudgetError(f"{folder}: cannot lock it ({exc.strerror})") from None


def check_unlocked(folder: str | os.PathLike[str]) -> None:
    """Raise if another job holds ``folder``'s lock (:func:`dir_lock`); create nothing.

    :raises RlbudgetError: the folder is in use, with the other process's pid.
    """
    path = Path(folder)
    if sys.platform == "win32" or not (path / LOCK).is_file():
        return
    try:
        fd = _open_lock(path, create=False)
    except RlbudgetError:
        return  # released (and removed) meanwhile
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # conflicts only with a holder
    except BlockingIOError:
        raise _lock_busy(path, fd) from None
    finally:
        os.close(fd)  # closing releases the probe


@contextlib.contextmanager
def dir_lock(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on an existing ``folder`` (``flock`` on ``folder/.lock``,
    which holds this process's pid) while the body runs: one job per run folder. The
    kernel drops the lock when the process ends, however it ends, so a killed job never
    leaves a stale lock (only an unlocked ``.lock`` file, which is ignored); a job that
    ends normally removes the file. Where ``fcntl`` is missing (Windows) nothing is locked.

    :raises RlbudgetError: another process holds it (its pid named), or it cannot be
        created.
    """
    path = Path(folder)
    if sys.platform == "win32":
        yield
        return
    while True:
        fd = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            error = _lock_busy(path, fd)
            os.close(fd)
            raise error from None
        try:  # the file we locked may have been removed by the holder we waited out
            same = os.stat(path / LOCK).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            (path / LOCK).unlink()  # while still held: nobody can hold this file next
        os.close(fd)


def is_empty_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder holding nothing but (maybe) a :data:`LOCK` file."""
    p = Path(path)
    return p.is_dir() and all(child.name == LOCK for child in p.iterdir())


def load_npy(path: Path, where: str) -> Any:
    """A numpy ``.npy`` array, read without unpickling (``allow_pickle=False``).

    :param where: how the message names the file (e.g. the option that gave it).
    :raises RlbudgetError: no such file, or not a ``.npy`` array.
    """
    import numpy as np

    try:
        with open(path, "rb") as f:
            magic = f.read(6)
        if magic != b"\x93NUMPY":
            raise RlbudgetError(f"{where}: not a .npy file; save the observations "
                                "with numpy.save(path, array)")  # fmt: skip
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise RlbudgetError(f"{where}: no such file") from None
    except (OSError, ValueError) as exc:
        raise RlbudgetError(f"{where}: not a numpy .npy array of observations ({exc})") from None
