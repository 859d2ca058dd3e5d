"""The framework-free policy every stage speaks: model, numpy runtime, save/load."""

from rlbudget.policy.io import load_policy, save_policy
from rlbudget.policy.model import (
    MLP,
    Dense,
    Discretize,
    Head,
    Linear,
    Normalize,
    OneHot,
    Policy,
    QDense,
    QuantizedMLP,
    Table,
    TileCode,
)

__all__ = [
    "MLP",
    "Dense",
    "Discretize",
    "Head",
    "Linear",
    "Normalize",
    "OneHot",
    "Policy",
    "QDense",
    "QuantizedMLP",
    "Table",
    "TileCode",
    "load_policy",
    "save_policy",
]
