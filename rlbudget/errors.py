"""One error hierarchy. Every error carries a message a user can act on.

The CLI turns an :class:`RlbudgetError` into one red line and exit code 2; anything
else is a bug: one line and exit code 3 (the traceback with ``RLBUDGET_DEBUG=1``).
"""

from __future__ import annotations


class RlbudgetError(Exception):
    """Bad input: a message that names the file, key or value and how to fix it."""

    exit_code = 2


class UnitError(RlbudgetError, ValueError):
    """A quantity that does not follow the number + unit grammar."""


class BudgetError(RlbudgetError):
    """A budget file that cannot be loaded or is impossible."""


class DeviceError(RlbudgetError):
    """An unknown device id or an invalid device description."""


class EnvError(RlbudgetError):
    """An environment that cannot be made or whose spaces are unsupported."""


class PlanError(RlbudgetError):
    """A plan that cannot be made or read."""


class PolicyError(RlbudgetError):
    """A policy folder that cannot be loaded: missing, corrupt, inconsistent or too new."""


class TrainingError(RlbudgetError):
    """Training that cannot go on: diverged (NaN/inf weights) or a missing optional extra."""


class DataError(RlbudgetError):
    """Logged bandit data that cannot be read: a missing column, a bad value (row named)."""
