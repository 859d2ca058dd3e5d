"""Submodules as attributes on first use: ``rlbudget.train.resolve`` works after a bare
``import rlbudget`` without importing every submodule (and torch) up front; and packages
that are also their stage's function (``rlbudget.profile(...)``, ``rlbudget.compress(...)``)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any


def submodule(package: str, name: str) -> ModuleType:
    """Import ``package.name`` if it is a submodule, else the usual AttributeError.

    :raises AttributeError: ``name`` is not a submodule of ``package``.
    """
    if not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}") is not None:
        return importlib.import_module(f"{package}.{name}")
    raise AttributeError(f"module {package!r} has no attribute {name!r}")


def submodules(package: str) -> Callable[[str], ModuleType]:
    """A package's module-level ``__getattr__`` that imports its submodules on first use:
    ``__getattr__ = submodules(__name__)``."""

    def __getattr__(name: str) -> ModuleType:
        return submodule(package, name)

    return __getattr__


def callable_package(package: str, target: str) -> None:
    """Make the package ``package`` callable: calling it calls ``target``
    (``"module:function"``), imported on the first call.

    So ``rlbudget.profile(policy, budget)`` runs :func:`rlbudget.profile.verdict.profile`
    while ``rlbudget.profile.verdict`` stays the module: one name is both the stage's
    package and its function, whichever of them was imported first. A type checker sees
    the module; typed code imports the function from ``target``'s module.
    """
    module_name, function = target.split(":")

    class CallablePackage(ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(importlib.import_module(module_name), function)(*args, **kwargs)

    sys.modules[package].__class__ = CallablePackage
