"""Submodules as attributes on first use: ``rlbudget.train.resolve`` works after a bare
``import rlbudget`` without importing every submodule (and torch) up front."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from types import ModuleType


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
