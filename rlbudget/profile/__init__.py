"""Measuring a policy: returns (evaluate); memory, latency and the verdict come later."""

from __future__ import annotations

from rlbudget._lazy import submodules

__getattr__ = submodules(__name__)  # submodules on first use, after import rlbudget
