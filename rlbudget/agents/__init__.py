"""Built-in numpy agents (tabular, linear) and, later, Stable-Baselines3 training."""

from __future__ import annotations

from rlbudget._lazy import submodules

__getattr__ = submodules(__name__)  # submodules on first use, after import rlbudget
