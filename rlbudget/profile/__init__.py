"""Measuring a policy against a budget: returns (evaluate), memory (footprint), latency,
the verdict with its margin (verdict) and the Markdown report (report)."""

from __future__ import annotations

from rlbudget._lazy import submodules

__getattr__ = submodules(__name__)  # submodules on first use, after import rlbudget
