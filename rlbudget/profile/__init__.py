"""Measuring a policy against a budget: returns (``evaluate``), memory (``footprint``),
latency (``latency``), the verdict (``verdict``) and its report (``report``).

The package is also the stage's function: ``rlbudget.profile(policy, budget, ...)`` is
:func:`rlbudget.profile.verdict.profile` (see :func:`rlbudget._lazy.callable_package`).
"""

from __future__ import annotations

from rlbudget._lazy import callable_package, submodules

__getattr__ = submodules(__name__)  # submodules on first use, after import rlbudget
callable_package(__name__, "rlbudget.profile.verdict:profile")
