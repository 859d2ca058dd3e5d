"""One vocabulary of limits (rlbudget.limits) and one cost model (rlbudget.costs): the
table every stage checks against, the check, the binding rule, the target rule, and the
int8 bytes the planner counts against what compress writes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlbudget.budget import Task, parse_budget
from rlbudget.compress.quantize import quantize_int8
from rlbudget.costs import mlp_body
from rlbudget.limits import (
    FAIL,
    LIMITS,
    NOT_CHECKED,
    PASS,
    Check,
    advice,
    binding,
    check,
    closeness,
    format_figure,
    target_return,
)
from rlbudget.plan import make_plan
from tests.factories import cartpole_obs, cartpole_tanh, pendulum_relu

BUDGET = """\
name: tight
device: esp32
inference: {ram: 512B, flash: 6KiB, latency: 2ms}
training: {env_steps: 200k}
task: {env: CartPole-v1, min_return: 400}
"""


def test_the_table_names_each_limit_once_with_its_unit_and_kind() -> None:
    assert list(LIMITS) == [
        "inference.ram", "inference.flash", "inference.latency", "inference.energy",
        "device.ram", "device.flash", "training.time", "training.env_steps", "training.ram",
        "training.energy", "task.min_return",
    ]  # fmt: skip
    assert {n: lim.unit for n, lim in LIMITS.items() if lim.unit != "B"} == {
        "inference.latency": "s", "inference.energy": "J", "training.env_steps": "steps",
        "training.time": "s", "training.energy": "J", "task.min_return": "return",
    }  # fmt: skip
    assert [n for n, lim in LIMITS.items() if lim.floor] == ["task.min_return"]
    budget = parse_budget(BUDGET)
    read = {n: lim.read(budget) for n, lim in LIMITS.items()}
    assert read["inference.ram"] == 512 and read["device.ram"] == budget.device.sram_bytes
    assert read["training.time"] is None and read["task.min_return"] == 400


def test_plan_checks_speak_the_same_names_and_units_as_profile() -> None:
    plan = make_plan(parse_budget(BUDGET))
    for option in plan.options:
        assert [c.limit for c in option.checks] == list(LIMITS)[:10]
        for c in option.checks:
            assert c.unit == LIMITS[c.limit].unit and c.source == "estimated" and c.how
    data = plan.to_dict()
    assert data["schema"] == "rlbudget.plan/2"
    assert set(data["options"][0]["checks"][0]) == {
        "limit", "unit", "figure", "source", "how", "with_margin", "limit_value", "status",
        "headroom",
    }  # fmt: skip


def test_a_cost_takes_the_margin_and_a_floor_does_not() -> None:
    cost = check("inference.flash", 1000, 1200, 0.25)
    assert (cost.status, cost.with_margin, cost.headroom) == (FAIL, 1250, pytest.approx(-1 / 24))
    floor = check("task.min_return", 450.0, 475.0, 0.25, source="measured")
    assert (floor.status, floor.with_margin) == (FAIL, 450.0)
    assert check("task.min_return", math.nan, None, 0.25).status == FAIL
    assert check("training.time", 10.0, None, 0.25).status == NOT_CHECKED
    assert Check.from_dict(cost.to_dict()) == cost


def test_binding_is_the_cost_furthest_over_then_the_return() -> None:
    ram = check("inference.ram", 1100, 1000, 0.0)  # 10 % over
    flash = check("inference.flash", 3000, 1000, 0.0)  # 200 % over
    ret = check("task.min_return", 10.0, 475.0, 0.0)
    ok = check("inference.latency", 1e-3, 2e-3, 0.25)
    assert binding([ok, ram, ret, flash]) is flash
    assert binding([ok, ret]) is ret and binding([ok]) is None
    assert ok.status == PASS
    # nearer: the lesser overshoot; among costs that pass, the higher return
    assert closeness([ram, ret]) > closeness([flash, ret])
    assert closeness([ok, check("task.min_return", 300.0, 475.0, 0.0)]) > closeness([ok, ret])


def test_advice_says_what_would_fit() -> None:
    ram = check("device.ram", 80 * 1024, 64 * 1024, 0.25)
    assert advice(ram, 0.25) == (
        "binding limit device.ram: needs 36 KiB more RAM (100 KiB with the 25% margin, "
        "limit 64 KiB), or a device with ≥ 100 KiB of RAM"
    )
    ret = check("task.min_return", 87.3, 90.0, 0.25)
    assert advice(ret, 0.25).startswith("binding limit task.min_return: the best candidate ")


def test_one_formatter_for_every_unit() -> None:
    assert [format_figure(v, u) for v, u in [
        (7200, "B"), (8.23e-5, "s"), (1.98e-5, "J"), (2e5, "steps"), (487.2, "return"),
        (None, "s"), (900.0, "s"), (72000.0, "J"),
    ]] == ["7.03 KiB", "82.3 µs", "19.8 µJ", "200k", "487.20", "—", "15 min", "20 Wh"]  # fmt: skip


def test_the_target_is_min_return_of_the_budgets_own_env_else_the_threshold() -> None:
    own = target_return(Task("CartPole-v1", 400.0), "CartPole-v1", 475.0)
    assert (own.value, own.source, own.note) == (400.0, "task.min_return", None)
    assert target_return(Task(None, 400.0), "CartPole-v1", 475.0).value == 400.0
    other = target_return(Task("Acrobot-v1", -90.0), "CartPole-v1", 475.0)
    assert (other.value, other.source) == (475.0, "CartPole-v1's reward_threshold")
    assert other.note is not None and "Acrobot-v1" in other.note
    none = target_return(None, "Pendulum-v1", None)
    assert (none.value, none.source) == (None, "none")


@pytest.mark.parametrize("make", [cartpole_tanh, pendulum_relu])
def test_plan_int8_bytes_are_the_body_arrays_compress_writes(make: object) -> None:
    policy = make()  # type: ignore[operator]
    widths = [policy.body.layers[0].W.shape[0]] + [la.W.shape[1] for la in policy.body.layers]
    activation = policy.body.layers[0].activation
    obs = policy.observation_space
    calibration = (
        cartpole_obs(500)
        if obs.dim == 4
        else np.random.default_rng(0).uniform(-1, 1, (500, 3)).astype(np.float32)
    )
    quantized = quantize_int8(policy, calibration)  # the default: one scale per layer
    written = sum(a.nbytes for k, a in quantized.arrays().items() if k.startswith("body."))
    body = mlp_body(obs, policy.action_space, widths[1:-1], activation, "int8", True)
    assert body.weight_bytes == written
