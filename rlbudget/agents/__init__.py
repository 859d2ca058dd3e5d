"""Built-in numpy agents (tabular, linear) and what every trainer shares; SB3 training and
import live in :mod:`rlbudget.sb3`."""

from __future__ import annotations

from rlbudget._lazy import submodules

__getattr__ = submodules(__name__)  # submodules on first use, after import rlbudget
