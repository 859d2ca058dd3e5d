"""The latency model fitted to emulation (issue 16, item 6): what it counts, its arithmetic,
plan and profile reading the same model, and the data file's promises."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from rlbudget import costs, fitted
from rlbudget.compress.quantize import quantize_int8
from rlbudget.compress.tabular import quantize_linear
from rlbudget.devices import get_device
from rlbudget.fitted import Shape, core_key, features, fitted_latency, load_fitted
from rlbudget.policy import Policy
from rlbudget.profile.latency import estimate_target, policy_shape
from tests.factories import (
    cartpole_obs,
    cartpole_table,
    cartpole_tanh,
    env_spaces,
    mountaincar_tiles,
    pendulum_linear,
    pendulum_relu,
    taxi_packed,
)

CORES = ("cortex-m0plus", "cortex-m3", "cortex-m4f", "cortex-m7", "cortex-m33", "avr")
MODELS = ("mlp-fp32", "mlp-int8", "linear-fp32", "linear-int16", "table-q", "table-packed",
          "tile-fp32", "tile-int16", "tile-int8")  # fmt: skip


def test_policy_shape_counts_what_the_c_export_runs() -> None:
    mlp = policy_shape(cartpole_tanh())  # 4-64-64-2, tanh hidden, argmax
    assert mlp is not None and mlp.model == "mlp-fp32"
    # MACs 4·64 + 64·64 + 64·2; units 64 + 64 + 2; tanh on the 128 hidden units
    assert dict(mlp.counts) == {"one": 1, "layers": 3, "macs": 4480, "units": 130, "tanh": 128}
    sac = policy_shape(pendulum_relu(head="tanh_rescale"))  # 3-64-64-1 relu, tanh head
    assert sac is not None and dict(sac.counts)["tanh"] == 1
    assert dict(sac.counts)["macs"] == 3 * 64 + 64 * 64 + 64
    ars = policy_shape(quantize_linear(pendulum_linear(), "int16"))  # normalize → 3 → 1
    assert ars == Shape("linear-int16", {"one": 1, "inputs": 3, "macs": 3})
    table = policy_shape(cartpole_table())  # 4 discretized dims, 2 actions
    assert table == Shape("table-q", {"one": 1, "box": 1, "box_dims": 4, "actions": 2})
    packed = policy_shape(taxi_packed())  # a Discrete state: nothing to discretize
    assert packed == Shape("table-packed", {"one": 1, "box": 0, "box_dims": 0, "actions": 6})
    tiles = policy_shape(quantize_linear(mountaincar_tiles(), "int16"))  # 8 tilings, 2 dims
    assert tiles == Shape("tile-int16", {"one": 1, "dims": 2, "tiling_dims": 16,
                                         "tiling_actions": 24})  # fmt: skip
    hashed = policy_shape(mountaincar_tiles(hash_size=64))  # hashing: a mask, not a term
    assert hashed == Shape("tile-fp32", {"one": 1, "dims": 2, "tiling_dims": 16,
                                         "tiling_actions": 24})  # fmt: skip


def test_each_device_reads_its_core() -> None:
    want = {"rp2040": "cortex-m0plus", "stm32f103": "cortex-m3", "nrf52840": "cortex-m4f",
            "max78000": "cortex-m4f", "teensy-4": "cortex-m7", "rp2350": "cortex-m33",
            "arduino-uno": "avr", "esp32": None, "raspberry-pi-4": None}  # fmt: skip
    assert {d: core_key(get_device(d)) for d in want} == want


def test_the_fitted_arithmetic(monkeypatch: pytest.MonkeyPatch) -> None:
    data: dict[str, Any] = {"cores": {"cortex-m4f": {"range": [0.5, 2.0], "models": {
        "mlp-int8": {"one": 7, "layers": 100, "macs": 2, "units": 10, "tanh": 0}}}}}  # fmt: skip
    monkeypatch.setattr(fitted, "load_fitted", lambda: data)
    policy = quantize_int8(cartpole_tanh(), cartpole_obs(200))
    latency, how = estimate_target(policy, get_device("nrf52840"))
    cycles = 7 + 100 * 3 + 2 * 4480 + 10 * 130  # = 10,567
    assert latency.typical == pytest.approx(cycles / 64e6)  # nRF52840: 64 MHz
    assert (latency.low, latency.high) == pytest.approx((cycles / 32e6 / 4, cycles / 32e6))
    assert "10,567 cycles" in how and "cortex-m4f mlp-int8" in how
    # A model or a core the file lacks keeps the per-MAC model.
    _, how = estimate_target(cartpole_tanh(), get_device("nrf52840"))
    assert "M MAC/s" in how
    esp32 = get_device("esp32")
    assert core_key(esp32) is None
    assert fitted_latency(esp32, policy_shape(policy)) is None


@pytest.mark.parametrize(
    "device", ["rp2040", "stm32f103", "nrf52840", "teensy-4", "rp2350", "arduino-uno"]
)
def test_plan_and_profile_read_the_same_model(device: str) -> None:
    d = get_device(device)
    o, a = env_spaces("CartPole-v1")
    int8 = quantize_int8(cartpole_tanh(), cartpole_obs(200))
    check(int8, costs.mlp_body(o, a, [64, 64], "tanh", "int8", d.fpu), "int8", device)
    o, a = env_spaces("Pendulum-v1")
    sac = pendulum_relu(head="tanh_rescale")
    check(sac, costs.mlp_body(o, a, [64, 64], "relu", "fp32", d.fpu), "fp32", device)
    check(pendulum_linear(), costs.linear_body(o, a, 4), "fp32", device)
    o, _ = env_spaces("Taxi-v4")
    check(taxi_packed(), costs.table_body(500, 6, o, None), "uint8", device)
    o, _ = env_spaces("MountainCar-v0")
    tiles = costs.tile_coding_body(o, 3, {"tilings": 8, "tiles_per_dim": 8}, True, "fp32")
    check(mountaincar_tiles(), tiles, "fp32", device)


def check(policy: Policy, body: costs.Body, dtype: str, device: str) -> None:
    d = get_device(device)
    plan = costs.inference(body, dtype, d, policy.observation_space).latency_s
    prof, how = estimate_target(policy, d)
    assert "fitted to emulation" in how, how
    assert prof.to_dict() == pytest.approx(plan.to_dict())


def test_the_fitted_file_covers_every_core_and_meets_its_target() -> None:
    data = load_fitted()
    for key in ("source", "toolchain", "split", "method"):
        assert data.get(key), key
    for core in CORES:
        entry = data["cores"][core]
        low, high = entry["range"]
        assert 0 < low < 1 < high
        for model in MODELS:
            coef = entry["models"][model]
            assert set(coef) == set(features(model))
            assert all(v >= 0 for v in coef.values())
        # Written by the benchmark from every cell: the ×1.5 target, fit and holdout.
        for split in ("fit", "holdout"):
            lo, hi = entry["fidelity"][split]
            assert 1 / 1.5 <= lo <= hi <= 1.5, (core, split, lo, hi)
            assert low <= lo and hi <= high  # the range covers every cell


def test_the_m7_is_the_m4f_fit_times_the_dual_issue_factor() -> None:
    cores = load_fitted()["cores"]
    for model in MODELS:
        m4, m7 = cores["cortex-m4f"]["models"][model], cores["cortex-m7"]["models"][model]
        for k, v in m4.items():
            assert m7[k] == pytest.approx(v * 0.679, rel=1e-3, abs=1e-3)


def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """benchmarks/latency_fidelity.py, which writes fitted.yaml, as a module."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "latency_fidelity.py"
    spec = importlib.util.spec_from_file_location("latency_fidelity", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look themselves up
    spec.loader.exec_module(module)
    return module


def test_the_fit_is_least_squares_on_relative_error_and_non_negative(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nnls = bench(monkeypatch).nnls_relative
    n = np.array([1.0, 2.0, 4.0, 8.0])
    x = np.stack([np.ones(4), n], axis=1)
    assert nnls(x, 5 + 3 * n) == pytest.approx([5, 3])  # exactly linear: recovered
    # Falling cycles would need a negative slope: the slope is dropped, the constant refitted
    # to minimise Σ (c/y − 1)², i.e. c = Σ(1/y) / Σ(1/y²).
    y = np.array([10.0, 9.0, 8.0, 7.0])
    c = nnls(x, y)
    assert c[1] == 0 and c[0] == pytest.approx((1 / y).sum() / (1 / y**2).sum())


def test_no_held_out_cell_repeats_a_fitted_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    cells = bench(monkeypatch).grid()
    shapes = {c.name: policy_shape(c.make()) for c in cells}
    fitted_shapes = [shapes[c.name] for c in cells if c.split == "fit"]
    held_out = [c for c in cells if c.split == "holdout"]
    assert 0.3 < len(held_out) / len(cells) < 0.6  # about half the grid
    for c in held_out:
        assert shapes[c.name] not in fitted_shapes, c.name
    assert {s.model for s in fitted_shapes if s} == set(MODELS)  # every model is fitted


MISSING = [m for m in ("unicorn", "capstone") if importlib.util.find_spec(m) is None]
needs_emulator = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or bool(MISSING),
    reason="needs arm-none-eabi-gcc, unicorn and capstone",
)


@needs_emulator
@pytest.mark.parametrize("device", ["rp2040", "nrf52840"])
def test_a_held_out_body_emulates_within_the_target(device: str) -> None:
    """A 4-32-32-2 int8 MLP is in no fit cell (the fit has 16-16, 64-64 and 256-256)."""
    from rlbudget.emulate import emulate_policy

    d = get_device(device)
    policy = quantize_int8(cartpole_tanh(widths=(4, 32, 32, 2)), cartpole_obs(200))
    e = emulate_policy(policy, d, cartpole_obs(4, seed=3))
    estimate, _ = estimate_target(policy, d)
    assert 1 / 1.5 <= e.seconds_mean / estimate.typical <= 1.5
    assert estimate.low <= e.seconds_mean <= estimate.high
    assert np.isfinite(e.cycles_mean)
