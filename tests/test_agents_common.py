"""Every trainer keeps the loop contract of :class:`rlbudget.agents.common.Trainer`, so
``train_run`` can call any of them the same way."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from rlbudget.agents.common import Trainer
from rlbudget.agents.linear import train_ars, train_sarsa_lambda
from rlbudget.agents.tabular import train_tabular
from rlbudget.sb3.training import train_sb3


@pytest.mark.parametrize("trainer", [train_tabular, train_sarsa_lambda, train_ars, train_sb3])
def test_every_trainer_keeps_the_loop_contract(trainer: Callable[..., Any]) -> None:
    contract = dict(inspect.signature(Trainer.__call__).parameters)
    del contract["self"]
    params = inspect.signature(trainer).parameters
    assert list(params)[:2] == ["env_id", "cfg"]
    for name, want in contract.items():
        got = params.get(name)
        assert got is not None, f"{trainer.__name__} lacks {name}"
        assert (got.kind, got.default) == (want.kind, want.default), name
        if name != "cfg":  # each trainer takes its own config class
            assert got.annotation == want.annotation, name
    extra = [p for n, p in params.items() if n not in contract]
    assert all(p.default is not inspect.Parameter.empty for p in extra), extra
