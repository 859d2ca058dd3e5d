"""Measuring a policy: returns (evaluate); memory, latency and the verdict come later."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """Submodules on first use (``rlbudget.agents.sb3_import`` after ``import rlbudget``)."""
    from rlbudget._lazy import submodule

    return submodule(__name__, name)
