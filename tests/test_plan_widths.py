"""The plan chooses an MLP's width for the training budget too (issue 18.3): a fake host
calibration and fake steps-to-target data give widths whose training times are worked out
by hand below; the calibration cache round-trips, a corrupt one is one clear line, and
plan reads a cache without importing torch."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from rlbudget.budget import load_budget
from rlbudget.cli import app
from rlbudget.errors import RlbudgetError
from rlbudget.hyperparams import algorithm_info, get_hyperparams
from rlbudget.plan import make_plan, widths
from rlbudget.plan.calibrate import (
    SCHEMA,
    Calibration,
    HostKey,
    host_key,
    load_calibration,
    save_calibration,
)
from rlbudget.plan.model import Option
from rlbudget.plan.widths import REFERENCE_STEP_S, dense_macs, step_seconds

from .conftest import BUDGETS, ROOT

runner = CliRunner()
RATES = {16: 500.0, 32: 400.0, 64: 250.0, 256: 50.0}  # fake SAC env steps/s per width


def fake_calibration(key: HostKey | None = None) -> Calibration:
    return Calibration(key=key or host_key(), measured="2026-12-03T12:00:00Z",
                       env_id="Pendulum-v1", observation_dim=3, action_dim=1, env_step_s=0.0,
                       steps=300, threads=1, steps_per_s={"sac": dict(RATES)})  # fmt: skip


@pytest.fixture
def fake_steps(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[int, float]], None]:
    """Replace data/widths.yaml's steps-to-target factors for SAC on Pendulum-v1."""

    def use(factors: dict[int, float]) -> None:
        data: dict[str, Any] = {"law": {}, "steps": {"sac": {"Pendulum-v1": {
            "widths": factors, "source": "test"}}}}  # fmt: skip
        monkeypatch.setattr(widths, "width_data", lambda: data)

    return use


BUDGET = """\
name: m7-pendulum
device: stm32h743
inference: {{ram: 64KiB, flash: {flash}, latency: 1ms}}
training: {{time: {time}, ram: 4GiB, cores: 1}}
task: {{env: Pendulum-v1, min_return: -200, env_step_cost: 100us}}
margin: 0.25
"""


def sac_option(path: Path) -> Option:
    plan = make_plan(load_budget(path), calibration=fake_calibration())
    return next(o for o in plan.options if o.algorithm == "sac")


def test_training_time_chooses_the_cheapest_width_that_fits(
    write_budget: Callable[[str], Path], fake_steps: Callable[[dict[int, float]], None]
) -> None:
    # Seconds per step = 1/rate (calibrated, env_step_s 0, + one CartPole step) + the
    # declared 100 µs env step beyond the CartPole step already counted = 1/rate + 100 µs.
    # Steps = 20,000 (RL Zoo's n_timesteps) × the factor:
    #   256-256: 20,000 × (1/50  + 1e-4) = 402 s; × 1.25 = 502 s > 300 s: over training.time
    #   64-64:   20,000 × (1/250 + 1e-4) = 82 s
    #   32-32:   30,000 × (1/400 + 1e-4) = 78 s   ← the cheapest, and it fits
    #   16-16:   60,000 × (1/500 + 1e-4) = 126 s
    assert get_hyperparams("sac", "Pendulum-v1").n_timesteps == 20_000
    fake_steps({64: 1.0, 32: 1.5, 16: 3.0})
    sac = sac_option(write_budget(BUDGET.format(flash="256KiB", time="5min")))
    assert sac.label == "sac mlp 32-32 int8" and sac.fits
    assert sac.hyperparams["net_arch"] == [32, 32]
    assert sac.estimates.env_steps == 30_000
    assert sac.estimates.train_time_s == pytest.approx(78.0)
    width = next(r for r in sac.reasons if r.startswith("[width]"))
    assert width.startswith("[width] 32-32, chosen by training.time: 256-256 (tuned) is over "
                            "training.time; 32-32 fits every limit")  # fmt: skip
    assert any(r.startswith("[throughput] sac mlp 32-32 int8: calibrated on this host "
                            "(2026-12-03)") for r in sac.reasons)  # fmt: skip


def test_device_flash_chooses_the_width_when_time_is_plenty(
    write_budget: Callable[[str], Path], fake_steps: Callable[[dict[int, float]], None]
) -> None:
    # 32-32 now needs 32,000 steps: 83.2 s, so 64-64 (82 s) would be the cheapest, but its
    # int8 flash is 4,352 weights + 2 × 129 bias bytes + 4,096 B of code = 8,706 B, × 1.25 =
    # 10,883 B > 7 KiB (7,168 B); 32-32's is 1,152 + 130 + 4,096 = 5,378 B, × 1.25 = 6,723 B.
    fake_steps({64: 1.0, 32: 1.6, 16: 3.0})
    sac = sac_option(write_budget(BUDGET.format(flash="7KiB", time="1h")))
    assert sac.label == "sac mlp 32-32 int8" and sac.fits
    assert sac.estimates.flash_bytes == 5_378
    assert sac.estimates.train_time_s == pytest.approx(83.2)
    width = next(r for r in sac.reasons if r.startswith("[width]"))
    assert width.startswith(
        "[width] 32-32, chosen by inference.flash: 256-256 (tuned) is over inference.flash; "
        "64-64 is over inference.flash; 32-32 fits"
    )


def test_the_tuned_shape_stays_when_it_fits_and_no_width_is_measured(
    write_budget: Callable[[str], Path], fake_steps: Callable[[dict[int, float]], None]
) -> None:
    fake_steps({})  # narrower widths unmeasured: tried only when the tuned shape fails
    sac = sac_option(write_budget(BUDGET.format(flash="256KiB", time="1h")))
    assert sac.label == "sac mlp 256-256 int8"
    assert sac.estimates.train_time_s == pytest.approx(402.0)


def test_width_law_without_calibration(monkeypatch: pytest.MonkeyPatch) -> None:
    law = {"sac": {"net": [256, 256], "observation_dim": 3, "action_dim": 1, "fixed": 0.5}}
    monkeypatch.setattr(widths, "width_data", lambda: {"law": law, "steps": {}})
    info = algorithm_info("sac")
    # MACs on Pendulum (3 → h → h → 1): 64-64 = 192 + 4,096 + 64 = 4,352; 256-256 = 66,560.
    assert dense_macs(3, (64, 64), 1) == 4_352 and dense_macs(3, (256, 256), 1) == 66_560
    cost = step_seconds(info, (64, 64), 4_352, None)
    assert cost.seconds == pytest.approx((1 / 44) * (0.5 + 0.5 * 4_352 / 66_560))
    assert cost.how.startswith("not calibrated: algorithms.yaml's ≈44 steps/s at 256-256")


def test_calibration_interpolates_in_macs() -> None:
    # 48-48 on Pendulum: 144 + 2,304 + 48 = 2,496 MACs, between 32-32 (1,152: 1/400 s) and
    # 64-64 (4,352: 1/250 s): 0.0025 + 0.0015 × 1,344 / 3,200 = 0.00313 s, + a CartPole step.
    cost = step_seconds(algorithm_info("sac"), (48, 48), 2_496, fake_calibration())
    assert cost.seconds == pytest.approx(0.00313 + REFERENCE_STEP_S)
    below = step_seconds(algorithm_info("sac"), (8, 8), dense_macs(3, (8, 8), 1),
                         fake_calibration())  # fmt: skip
    assert below.seconds == pytest.approx(1 / 500 + REFERENCE_STEP_S)  # flat below 16-16


def test_cache_round_trip_keeps_other_hosts(tmp_path: Path) -> None:
    path = tmp_path / "calibration.yaml"
    other = HostKey("Other CPU", "2.0.0", 8)
    save_calibration(fake_calibration(other), path)
    mine = fake_calibration()
    save_calibration(mine, path)
    assert load_calibration(path, mine.key) == mine
    assert load_calibration(path, other) == fake_calibration(other)
    assert load_calibration(path, HostKey("Third CPU", "2.0.0", 8)) is None
    assert load_calibration(tmp_path / "absent.yaml", mine.key) is None


@pytest.mark.parametrize(
    ("text", "why"),
    [("hosts: [unclosed\n", "not YAML: while parsing a flow sequence"),
     ("schema: other/1\nhosts: {}\n", f"schema is not {SCHEMA}"),
     (f"schema: {SCHEMA}\nhosts:\n  KEY: {{measured: x}}\n", "hosts.KEY has no 'env'")],
)  # fmt: skip
def test_corrupt_cache_is_one_line_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, why: str
) -> None:
    key = host_key()
    path = tmp_path / "calibration.yaml"
    path.write_text(text.replace("KEY", json.dumps(key.text)), encoding="utf-8")
    monkeypatch.setenv("RLBUDGET_CACHE_DIR", str(tmp_path))
    budget = str(BUDGETS / "esp32-cartpole.yaml")
    r = runner.invoke(app, ["plan", budget], terminal_width=400)
    assert r.exit_code == 2, r.output
    assert r.output.strip() == (
        f"error: {path}: not a readable calibration cache ({why.replace('KEY', key.text)}); "
        "delete it, or run `rlbudget calibrate` to measure again and replace it"
    )
    assert runner.invoke(app, ["plan", "--no-calibration", budget]).exit_code == 0
    # calibrate replaces a corrupt cache rather than failing on it
    save_calibration(fake_calibration(), path)
    assert load_calibration(path) == fake_calibration()


def test_plan_reads_a_calibration_without_importing_torch(tmp_path: Path) -> None:
    save_calibration(fake_calibration(), tmp_path / "calibration.yaml")
    code = (
        "import sys\n"
        "from rlbudget.budget import load_budget\n"
        "from rlbudget.plan import make_plan\n"
        f"p = make_plan(load_budget({str(BUDGETS / 'teensy-4-pendulum.yaml')!r}))\n"
        "print(p.context.throughput)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'stable_baselines3')))\n"
    )
    env = {**os.environ, "RLBUDGET_CACHE_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    throughput, heavy = r.stdout.strip().splitlines()[-2:]
    assert throughput.startswith("calibrated on this host (2026-12-03, ")
    assert heavy == "[]"


def test_calibrate_refuses_an_unknown_algorithm() -> None:
    r = runner.invoke(app, ["calibrate", "--algo", "dqn"])
    assert r.exit_code == 2
    assert "--algo dqn: cannot be calibrated; choose from sac, td3, ppo" in r.output


def test_the_m7_pendulum_budget_plans_a_width_it_can_train_in_5_minutes() -> None:
    # Not calibrated: SAC's 256-256 at algorithms.yaml's 44 steps/s needs 20k steps ≈ 7.6 min
    # (9.5 with the margin) > 5 min; 64-64 (the width law, and data/widths.yaml's measured
    # steps to -200) trains in time. Whatever ranks first is a small network that fits.
    plan = make_plan(load_budget(BUDGETS / "stm32h743-pendulum-5min.yaml"), calibration=False)
    assert plan.context.throughput.startswith("not calibrated: ")
    sac = next(o for o in plan.options if o.algorithm == "sac")
    assert sac.fits and sac.network["hidden"] == [64, 64]
    assert any(r.startswith("[width] 64-64, chosen by training.time: 256-256 (tuned) is over "
                            "training.time;") for r in sac.reasons)  # fmt: skip
    assert plan.best is not None and plan.best.paradigm == "mlp"
    assert max(plan.best.network["hidden"]) <= 64


def test_width_data_has_a_source_for_every_figure() -> None:
    data = widths.width_data()
    for algo, law in data["law"].items():
        assert set(law) == {"net", "observation_dim", "action_dim", "fixed", "source"}, algo
        assert 0.0 <= law["fixed"] <= 1.0 and law["source"].startswith("net: "), algo
    for algo, envs in data["steps"].items():
        for env_id, entry in envs.items():
            assert entry["source"] and all(f > 0 for f in entry["widths"].values()), (algo, env_id)


def test_calibrating_one_algorithm_keeps_the_others_of_this_host(tmp_path: Path) -> None:
    """`calibrate --algo td3` after a full calibration adds td3; SAC's figures stay."""
    path = tmp_path / "calibration.yaml"
    save_calibration(fake_calibration(), path)
    td3 = dataclasses.replace(fake_calibration(), steps_per_s={"td3": {64: 300.0}})
    save_calibration(td3, path)
    assert load_calibration(path, td3.key).steps_per_s == {  # type: ignore[union-attr]
        "sac": RATES, "td3": {64: 300.0}}  # fmt: skip
    again = dataclasses.replace(fake_calibration(), steps_per_s={"sac": {32: 10.0}})
    save_calibration(again, path)  # an algorithm measured again replaces its own figures
    assert load_calibration(path, td3.key).steps_per_s == {  # type: ignore[union-attr]
        "td3": {64: 300.0}, "sac": {32: 10.0}}  # fmt: skip


@pytest.mark.parametrize(
    ("rates", "why"),
    [("{0: 100.0}", "a width is below 1"),
     ("{16: .inf}", "a steps_per_s figure is not a finite positive number"),
     ("{16: true}", "a steps_per_s figure is True, not a number"),
     ("{wide: 5.0}", "a width is 'wide', not a number")],
)  # fmt: skip
def test_a_cache_figure_plan_cannot_use_is_refused(tmp_path: Path, rates: str, why: str) -> None:
    key = host_key()
    path = tmp_path / "calibration.yaml"
    entry = dict(fake_calibration().to_dict(), steps_per_s="RATES")
    text = yaml.safe_dump({"schema": SCHEMA, "hosts": {key.text: entry}})
    path.write_text(text.replace("RATES", f"\n      sac: {rates}"), encoding="utf-8")
    with pytest.raises(RlbudgetError) as exc:
        load_calibration(path, key)
    assert str(exc.value) == (
        f"{path}: not a readable calibration cache (hosts.{key.text}: {why}); delete it, "
        "or run `rlbudget calibrate` to measure again and replace it"
    )


def test_calibrate_checks_the_cache_folder_before_measuring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache folder that is a file raised FileExistsError (exit 3) after the minutes of
    measuring; now one line before any (measure is replaced by a failure to prove it)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("RLBUDGET_CACHE_DIR", str(blocker))
    monkeypatch.setattr("rlbudget.plan.calibrate.calibrate", lambda *a, **k: pytest.fail("ran"))
    r = runner.invoke(app, ["calibrate", "--algo", "sac"], terminal_width=400)
    assert r.exit_code == 2, r.output
    assert r.output.strip() == (
        f"error: {blocker}: cannot hold the calibration cache (File exists); set "
        "RLBUDGET_CACHE_DIR to a writable folder"
    )
