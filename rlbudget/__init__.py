"""rlbudget: reinforcement learning under a hardware budget.

The library comes first; the ``rlbudget`` command is a thin wrapper over it. One function
per stage, as the pipeline runs::

    from rlbudget import (load_budget, make_plan, train_run, compress, export_c, export_onnx,
                          profile, run_job, import_model, load_policy)

    budget = load_budget("budgets/esp32-cartpole.yaml")
    plan = make_plan(budget)          # env from task.env; or make_plan(budget, "CartPole-v1")
    report = run_job(budget, "out")   # plan, train, compress, export and profile in one go

``compress`` and ``profile`` are also the packages of their stage (``rlbudget.profile.
verdict`` …): calling the package calls :func:`rlbudget.compress.pipeline.compress` /
:func:`rlbudget.profile.verdict.profile`, so ``rlbudget.profile(policy, budget)`` and
``rlbudget.profile.verdict`` both work, whichever is used first. A type checker sees the
package; typed code imports the function from its module.

Names and submodules (``rlbudget.train``, ``rlbudget.profile.verdict`` …) are imported
on first use, so ``import rlbudget`` (and ``rlbudget --help``) stays fast and never
imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # one function per stage (README "Library first"); compress and profile are packages
    "load_budget": "rlbudget.budget",
    "make_plan": "rlbudget.plan",
    "train_run": "rlbudget.train",
    "export_c": "rlbudget.export.c",
    "export_onnx": "rlbudget.export.onnx",
    "run_job": "rlbudget.run",
    "import_model": "rlbudget.sb3.importer",
    "load_policy": "rlbudget.policy.io",
    "save_policy": "rlbudget.policy.io",
    # the types they take and return
    "Budget": "rlbudget.budget",
    "parse_budget": "rlbudget.budget",
    "Plan": "rlbudget.plan",
    "save_plan": "rlbudget.plan",
    "Policy": "rlbudget.policy.model",
    "EnvSpec": "rlbudget.envs",
    "env_spec": "rlbudget.envs",
    "Device": "rlbudget.devices",
    "get_device": "rlbudget.devices",
    "list_devices": "rlbudget.devices",
    "RlbudgetError": "rlbudget.errors",
}

# the names above and the two callable packages (written out: linters read it)
__all__ = [
    "Budget", "Device", "EnvSpec", "Plan", "Policy", "RlbudgetError", "__version__",
    "compress", "env_spec", "export_c", "export_onnx", "get_device", "import_model",
    "list_devices", "load_budget", "load_policy", "make_plan", "parse_budget", "profile",
    "run_job", "save_plan", "save_policy", "train_run",
]  # fmt: skip

if TYPE_CHECKING:  # what the names are, for type checkers; at run time __getattr__ imports
    from rlbudget import compress, profile
    from rlbudget.budget import Budget, load_budget, parse_budget
    from rlbudget.devices import Device, get_device, list_devices
    from rlbudget.envs import EnvSpec, env_spec
    from rlbudget.errors import RlbudgetError
    from rlbudget.export.c import export_c
    from rlbudget.export.onnx import export_onnx
    from rlbudget.plan import Plan, make_plan, save_plan
    from rlbudget.policy.io import load_policy, save_policy
    from rlbudget.policy.model import Policy
    from rlbudget.run import run_job
    from rlbudget.sb3.importer import import_model
    from rlbudget.train import train_run


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    from rlbudget._lazy import submodule

    return submodule(__name__, name)  # rlbudget.train, rlbudget.profile, ...


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
