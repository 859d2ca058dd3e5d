"""Interruptions: SIGINT and SIGTERM end a command with exit 130 / 143 and one line.

Python turns SIGINT into :class:`KeyboardInterrupt`; :func:`install` makes SIGTERM raise
:class:`Terminated`, a ``KeyboardInterrupt`` subclass, so both unwind the same way
(``finally`` blocks run, atomic writes leave no half-written file) instead of the process
dying by the signal. Training catches both itself and stops at a step boundary with a
checkpoint saved (:func:`rlbudget.train.train_run`); a job that was stopped that way raises
:class:`Interrupted`. The CLI maps all of them to the shell's ``128 + signal`` exit code.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

EXIT_SIGINT = 128 + signal.SIGINT  # 130
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (raised by the handler :func:`install` sets)."""

    signal_name = "SIGTERM"


class Interrupted(KeyboardInterrupt):
    """A job stopped by a signal after saving its state; ``message`` says where and how
    to continue."""

    def __init__(self, signal_name: str, message: str,
                 details: dict[str, Any] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.signal_name = signal_name
        self.message = message
        self.details = details or {}


def _raise_terminated(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated()


def install() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread (SIGINT already raises
    ``KeyboardInterrupt``). Call once, from the main thread, at the start of a command."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def signal_name(exc: KeyboardInterrupt) -> str:
    """``"SIGTERM"`` for a SIGTERM (raised or recorded), else ``"SIGINT"``."""
    return str(getattr(exc, "signal_name", "SIGINT"))


def exit_code(exc: KeyboardInterrupt) -> int:
    """130 for SIGINT (Ctrl-C), 143 for SIGTERM.

    >>> exit_code(KeyboardInterrupt()), exit_code(Terminated())
    (130, 143)
    """
    return EXIT_SIGTERM if signal_name(exc) == "SIGTERM" else EXIT_SIGINT


def message(exc: KeyboardInterrupt) -> str:
    """The one line the CLI prints for an interruption."""
    if isinstance(exc, Interrupted):
        return exc.message
    return f"interrupted by {signal_name(exc)}: stopped before finishing"
