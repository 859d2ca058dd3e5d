"""rlbudget: reinforcement learning under a hardware budget.

The library comes first; the ``rlbudget`` command is a thin wrapper over it::

    from rlbudget import load_budget, make_plan
    budget = load_budget("budgets/esp32-cartpole.yaml")
    plan = make_plan(budget)          # env from task.env; or make_plan(budget, "CartPole-v1")
    print(plan.best.label if plan.best else plan.binding()["message"])

Names and submodules (``rlbudget.train``, ``rlbudget.profile.verdict`` …) are imported
on first use, so ``import rlbudget`` (and ``rlbudget --help``) stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Budget": "rlbudget.budget",
    "load_budget": "rlbudget.budget",
    "parse_budget": "rlbudget.budget",
    "Plan": "rlbudget.plan",
    "make_plan": "rlbudget.plan",
    "save_plan": "rlbudget.plan",
    "EnvSpec": "rlbudget.envs",
    "env_spec": "rlbudget.envs",
    "Device": "rlbudget.devices",
    "get_device": "rlbudget.devices",
    "list_devices": "rlbudget.devices",
    "RlbudgetError": "rlbudget.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    from rlbudget._lazy import submodule

    return submodule(__name__, name)  # rlbudget.train, rlbudget.policy, ...
