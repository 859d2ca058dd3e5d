"""Training agents: the built-in numpy ones (tabular, linear) and Stable-Baselines3
(training, and reading SB3 models without unpickling them)."""

from __future__ import annotations

from rlbudget._lazy import submodules

__getattr__ = submodules(__name__)  # submodules on first use, after import rlbudget
