"""Plan decisions for representative budgets, and the plan's invariants."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rlbudget.budget import load_budget, parse_budget
from rlbudget.envs import env_spec
from rlbudget.plan import RULES, Plan, make_plan, widths

from .conftest import BUDGETS


def plan_for(text: str, env: str | None = None) -> Plan:
    return make_plan(parse_budget(text, "test.yaml"), env)


def test_mcu_frozenlake_is_tabular() -> None:
    p = make_plan(load_budget(BUDGETS / "rp2040-frozenlake.yaml"))
    assert p.best is not None
    assert p.best.paradigm in ("tabular", "model-based")
    assert p.best.network["body"] == "table"
    # 16 states x 2 bits = 4 bytes of table.
    assert p.best.estimates.weight_bytes == 4
    assert any(r.startswith("[discrete-obs]") for r in p.best.reasons)


def test_8bit_cartpole_is_never_an_mlp() -> None:
    p = make_plan(load_budget(BUDGETS / "arduino-uno-cartpole.yaml"))
    assert p.options, "some option must be listed"
    assert all(o.paradigm != "mlp" for o in p.options)
    assert p.best is not None and p.best.paradigm in ("tabular", "linear", "model-based")
    excluded = dict(p.excluded)
    for algo in ("ppo", "a2c", "dqn"):
        assert excluded[algo].startswith("[8-bit]")


def test_pi4_pendulum_is_sac_or_td3_mlp() -> None:
    p = make_plan(load_budget(BUDGETS / "raspberry-pi-4-pendulum.yaml"))
    assert p.best is not None
    assert p.best.algorithm in ("sac", "td3", "lean-sac", "lean-td3")
    assert p.best.paradigm == "mlp"
    assert any(r.startswith("[headroom]") for r in p.best.reasons)


def test_expensive_env_ranks_model_based_or_off_policy_above_on_policy() -> None:
    p = make_plan(load_budget(BUDGETS / "robot-cartpole-expensive.yaml"))
    assert p.context.expensive_env
    ranks = {o.algorithm: o.rank for o in p.options}
    best_sample_efficient = min(
        o.rank
        for o in p.options
        if o.trainable and (o.paradigm == "model-based" or o.algorithm == "dqn")
    )
    for on_policy in ("ppo", "a2c"):
        if on_policy in ranks:
            assert best_sample_efficient < ranks[on_policy]


def test_expensive_continuous_env_ranks_pets_first() -> None:
    p = plan_for(
        "device: raspberry-pi-4\ntraining: {time: 10h}\n"
        "task: {env: Pendulum-v1, env_step_cost: 20ms}\n"
    )
    assert p.context.expensive_env
    assert p.best is not None and p.best.algorithm == "pets"
    assert p.best.paradigm == "model-based" and p.best.trainable
    assert any(r.startswith("[model-based]") for r in p.best.reasons)
    assert all(o.trainable for o in p.options)
    # MBPO is trainable too, and ranks below PETS (the model-based rule says why)
    ranks = {o.algorithm: o.rank for o in p.options}
    mbpo = next(o for o in p.options if o.algorithm == "mbpo")
    assert ranks["pets"] < ranks["mbpo"] and mbpo.paradigm == "model-based"
    assert any(r.startswith("[model-based]") for r in mbpo.reasons)
    # the same env, cheap: PETS and MBPO are listed below SAC/TD3
    cheap = plan_for("device: raspberry-pi-4\ntask: {env: Pendulum-v1}\n")
    assert all(o.trainable for o in cheap.options)
    assert cheap.best is not None
    assert cheap.best.algorithm in ("sac", "td3", "lean-sac", "lean-td3")
    cheap_ranks = {o.algorithm: o.rank for o in cheap.options}
    assert {"pets", "mbpo"} <= set(cheap_ranks)
    assert max(cheap_ranks["sac"], cheap_ranks["td3"]) < min(
        cheap_ranks["pets"], cheap_ranks["mbpo"]
    )


def test_too_little_training_time_for_model_free_ranks_pets_first() -> None:
    # 2 minutes and 12k steps: SAC's quickest Pendulum training (its cheapest measured
    # width, 64-64: 14.6k steps by data/widths.yaml, ≈3.7 min at its host throughput) needs
    # more of both; PPO's 100k, TD3's 100k, TQC's 20k and ARS's 5M exceed
    # training.env_steps: PETS ranks first (whether its own training fits depends on its
    # measured throughput).
    p = plan_for(
        "device: teensy-4\ntraining: {env_steps: 12k, time: 2min}\n"
        "task: {env: Pendulum-v1, min_return: -200}\n"
    )
    assert p.context.expensive_env
    assert p.context.expensive_why.startswith(
        "no model-free option fits its typical training in training.env_steps (12k) and "
        "training.time (2 min): the quickest, "
    )
    first = p.options[0]
    assert first.algorithm == "pets" and first.trainable
    assert any(r.startswith("[expensive-env]") for r in first.reasons)


def test_mlp_dtype_follows_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    # the tuned shape only (no measured narrower width): tests/test_plan_widths.py has the width
    monkeypatch.setattr(widths, "width_data", lambda: {"law": {}, "steps": {}})
    roomy = plan_for("device: raspberry-pi-4\ntask: {env: Pendulum-v1}\n")
    sac = next(o for o in roomy.options if o.algorithm == "sac")
    assert sac.deploy_dtype == "fp32" and sac.network["hidden"] == [256, 256]
    tight = plan_for(
        "device: raspberry-pi-4\ninference: {flash: 100KiB}\ntask: {env: Pendulum-v1}\n"
    )
    sac = next(o for o in tight.options if o.algorithm == "sac")
    # 256-256 fp32 is ≈270 KB; int8 (≈67 KB + code) fits 100 KiB with the margin
    assert sac.deploy_dtype == "int8" and sac.network["hidden"] == [256, 256]
    assert any(r.startswith("[int8]") for r in sac.reasons)
    mcu = plan_for("device: teensy-4\ntask: {env: Pendulum-v1}\n")
    assert all(o.deploy_dtype == "int8" for o in mcu.options if o.paradigm == "mlp")


def test_impossible_budget_names_binding_limit() -> None:
    p = make_plan(load_budget(BUDGETS / "impossible-uno-latency.yaml"))
    assert not p.fits and p.best is None
    binding = p.binding()
    assert binding is not None
    assert binding["limit"].startswith("inference.")
    assert binding["over_by"] > 0
    assert binding["message"].startswith(f"nothing fits: {binding['limit']} binds")


@pytest.mark.parametrize("path", sorted(BUDGETS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_budget_plans(path: Path) -> None:
    p = make_plan(load_budget(path))
    assert p.options
    ranks = [o.rank for o in p.options]
    assert ranks == list(range(1, len(ranks) + 1))
    # fitting, trainable options come before all others
    seen_other = False
    for o in p.options:
        good = o.fits and o.trainable
        assert not (good and seen_other), f"{o.label} ranked after a non-fitting option"
        seen_other = seen_other or not good
    assert p.fits == (not path.stem.startswith("impossible"))
    for o in p.options:
        assert o.reasons, o.label
        for r in o.reasons:
            rule_id = r[1 : r.index("]")]
            assert rule_id in RULES


def test_margin_is_applied_exactly(write_budget: Callable[[str, str], Path]) -> None:
    """An option whose flash estimate equals the limit fails once the margin applies."""
    base = "device: rp2040\ntask: {env: FrozenLake-v1}\n"
    p0 = plan_for(base)
    table = next(o for o in p0.options if o.algorithm == "q-learning")
    flash = table.estimates.flash_bytes
    at_limit = plan_for(base + f"inference: {{flash: {flash}B}}\nmargin: 0\n")
    with_margin = plan_for(base + f"inference: {{flash: {flash}B}}\nmargin: 0.25\n")
    fits = {o.algorithm: o.fits for o in at_limit.options}
    assert fits["q-learning"] is True
    check = next(
        c
        for o in with_margin.options
        if o.algorithm == "q-learning"
        for c in o.checks
        if c.limit == "inference.flash"
    )
    assert check.status == "FAIL"
    assert check.with_margin == pytest.approx(flash * 1.25)


def test_replay_buffer_sized_from_training_ram() -> None:
    text = "device: raspberry-pi-4\ntraining: {ram: 600MiB}\ntask: {env: Pendulum-v1}\n"
    p = plan_for(text)
    sac = next(o for o in p.options if o.algorithm == "sac")
    e = sac.estimates
    # SB3's ReplayBuffer: float32 obs and next_obs, action, reward, done, timeout
    assert e.bytes_per_transition == 2 * 3 * 4 + 4 + 4 + 4 + 4
    assert e.replay_capacity is not None and e.replay_bytes == e.replay_capacity * 40
    assert e.train_ram_bytes * 1.25 <= 600 * 2**20 * 1.0001
    assert any(r.startswith("[replay-ram]") for r in sac.reasons)


def test_env_override_and_spec_object() -> None:
    b = load_budget(BUDGETS / "esp32-cartpole.yaml")
    p = make_plan(b, env_spec("MountainCar-v0", measure_steps=0))
    assert p.env.env_id == "MountainCar-v0"
    assert any(o.algorithm == "sarsa-lambda" for o in p.options)


def test_same_budget_same_plan() -> None:
    b = load_budget(BUDGETS / "esp32-cartpole.yaml")
    spec = env_spec("CartPole-v1", measure_steps=0)
    a, c = make_plan(b, spec).to_dict(), make_plan(b, spec).to_dict()
    assert a == c
