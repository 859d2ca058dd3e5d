"""Child processes for tests that signal or kill a running command: a test waits for a
file that the child writes once it is under way (with a timeout), never for a fixed time.

Most commands already write such a file (a run folder's ``checkpoint/state.json``, its
``metrics.csv`` growing one row per episode); for the others run them through this
module: ``python -m tests.processes READY ARGS...`` runs ``rlbudget ARGS...`` in this
process and writes the file READY when the policy chooses its first action, i.e. after
start-up (imports, signal handlers, loading) and once the work itself has begun.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
"""The environment for a child: this checkout's rlbudget (and ``tests``) first."""


def rlbudget(*args: str, ready: Path | None = None) -> list[str]:
    """The command line of ``rlbudget ARGS`` (through this module when ``ready`` is given)."""
    if ready is None:
        return [sys.executable, "-m", "rlbudget", *args]
    return [sys.executable, "-m", "tests.processes", str(ready), *args]


def start(command: list[str], **kwargs: Any) -> subprocess.Popen[str]:
    """Start ``command`` in the repository root with :data:`ENV`, stdout and stderr piped."""
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE,
                               "text": True, "env": ENV, "cwd": REPO, **kwargs}  # fmt: skip
    return subprocess.Popen(command, **options)


def wait_for(ready: Callable[[], bool], proc: subprocess.Popen[str], what: str,
             timeout_s: float = 60) -> None:  # fmt: skip
    """Poll ``ready()`` until it is true; fail the test (killing ``proc``) if ``proc`` ends
    first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"the child ended before {what}: {err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} after {timeout_s} s")
        time.sleep(0.02)


def wait_for_file(path: Path, proc: subprocess.Popen[str], timeout_s: float = 60) -> None:
    """:func:`wait_for` ``path`` to exist."""
    wait_for(path.exists, proc, f"ready file {path}", timeout_s)


def checkpoint_steps(run_dir: Path) -> int:
    """The steps of the run folder's last complete checkpoint (0 before the first)."""
    try:
        return int(json.loads((run_dir / "checkpoint" / "state.json").read_text())["steps"])
    except (FileNotFoundError, ValueError):  # none yet, or replaced while being read
        return 0


def metrics_rows(run_dir: Path) -> int:
    """Finished episodes in the run folder's ``metrics.csv`` so far (0 before the first)."""
    try:
        return max(0, len((run_dir / "metrics.csv").read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def _main(argv: list[str]) -> None:
    from rlbudget.cli import main
    from rlbudget.policy import Policy

    ready, args = Path(argv[0]), argv[1:]
    act = Policy.act

    def first_act(self: Policy, obs: Any) -> Any:
        Policy.act = act  # type: ignore[method-assign]
        ready.write_text(f"{os.getpid()}\n")
        return act(self, obs)

    Policy.act = first_act  # type: ignore[method-assign]
    sys.argv = ["rlbudget", *args]
    main()


if __name__ == "__main__":
    _main(sys.argv[1:])
