"""Sparse rewards: which envs have them (``data/exploration.yaml``, or the budget's
``task.sparse_reward``) and the exploration bonus that rule ``sparse-reward`` turns on in
an option's hyperparameters: the count bonus of Sarsa(λ) (``bonus_coef``,
:func:`rlbudget.agents.linear.count_bonus`) or Random Network Distillation for SB3 PPO,
SAC and DQN (``rnd_coef``, :mod:`rlbudget.sb3.rnd`)."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml


@functools.cache
def _table() -> dict[str, Any]:
    path = resources.files("rlbudget").joinpath("data").joinpath("exploration.yaml")
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def sparse_reason(env_id: str, declared: bool | None) -> str:
    """Why ``env_id``'s reward is sparse, or "" when it is not (or the budget says not).

    :param declared: the budget's ``task.sparse_reward`` (None: the table decides).
    """
    if declared is False:
        return ""
    entry = _table()["sparse_envs"].get(env_id)
    if entry is not None:
        return f"{env_id}: {entry['why']} ({entry['source']})"
    return "task.sparse_reward is true in the budget" if declared else ""


def bonus(algorithm: str, *, planned: bool = True) -> dict[str, float]:
    """The hyperparameter that turns ``algorithm``'s exploration bonus on, with its
    coefficient, or {} when the algorithm has none.

    :param planned: only a bonus that plan turns on (``planned: true`` in the table: one
        measured to help here); False: any bonus the algorithm has.
    """
    entry = _table()["bonus"].get(algorithm)
    if entry is None or (planned and not entry["planned"]):
        return {}
    return {str(entry["key"]): float(entry["value"])}
