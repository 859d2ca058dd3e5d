"""Budget files: good ones load into SI units, each bad one gets one exact, positioned error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rlbudget.budget import load_budget, parse_budget
from rlbudget.errors import BudgetError

from .conftest import BUDGETS

DESIGN_EXAMPLE = """\
name: esp32-balance            # free text
device: esp32                  # a named device from the database
inference:                     # limits for ONE deployed policy on the device
  ram: 64KiB                   # working memory for the policy (activations, buffers)
  flash: 256KiB                # storage for weights and code
  latency: 2ms                 # per decision
  energy: 0.5mJ                # per decision
training:                      # limits for training, on the host that trains
  time: 10min
  env_steps: 200k
  ram: 4GiB
  energy: 20Wh
  cores: 2
task:
  env: CartPole-v1             # a gymnasium id (or module:EnvId); --env overrides it
  min_return: 475              # optional; else the env's reward_threshold
  env_step_cost: 5ms           # optional; what one real env step costs (robot, slow simulator)
margin: 0.25                   # safety margin, 0.2–0.3 recommended; measured × (1+margin) ≤ limit
"""


def test_design_example_loads_in_si_units() -> None:
    b = parse_budget(DESIGN_EXAMPLE, "design.yaml")
    assert b.name == "esp32-balance"
    assert b.device.id == "esp32"
    assert b.inference.ram_bytes == 64 * 1024
    assert b.inference.flash_bytes == 256 * 1024
    assert b.inference.latency_s == pytest.approx(0.002)
    assert b.inference.energy_j == pytest.approx(0.0005)
    assert b.training.time_s == 600
    assert b.training.env_steps == 200_000
    assert b.training.ram_bytes == 4 * 1024**3
    assert b.training.energy_j == pytest.approx(72_000)
    assert b.training.cores == 2
    assert b.task.env_id == "CartPole-v1"
    assert b.task.min_return == 475
    assert b.task.env_step_cost_s == pytest.approx(0.005)
    assert b.margin == 0.25
    assert b.warnings == ()


def test_design_inline_device_loads() -> None:
    text = (
        "device: {class: mcu, clock: 240MHz, sram: 520KiB, flash: 4MiB, fpu: true, power: 240mW}\n"
    )
    b = parse_budget(text, "inline.yaml")
    d = b.device
    assert d.inline and d.device_class == "mcu"
    assert (d.clock_hz, d.sram_bytes, d.flash_bytes) == (240e6, 520 * 1024, 4 * 1024**2)
    assert d.fpu is True and d.active_power_w == pytest.approx(0.24)
    assert b.name == "inline"  # defaults to the file name
    assert b.inference.ram_bytes is None  # left out = not checked


def test_margin_percent_and_warning() -> None:
    b = parse_budget("device: esp32\nmargin: 10%\n", "m.yaml")
    assert b.margin == pytest.approx(0.1)
    assert b.warnings == (
        "margin 0.1 is outside the recommended 0.2–0.3 (estimates of device latency vary up to "
        "~3x between software stacks)",
    )


@pytest.mark.parametrize("path", sorted(BUDGETS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_loads(path: Path) -> None:
    b = load_budget(path)
    assert b.device.sram_bytes > 0
    assert b.task.env_id or b.task.data  # a bandit may learn from logged data only


# (file text, exact error message after "FILE:"). Every message: line, key, what is wrong, a fix.
BAD = {
    "bare-number": (
        "device: esp32\ninference:\n  ram: 320\n",
        "3: inference.ram: '320' has no unit; write it with one of: B, kB, KB, MB, GB, KiB, MiB, "
        "GiB (for example '320KiB')",
    ),
    "wrong-unit": (
        "device: esp32\ninference:\n  latency: 2MB\n",
        "3: inference.latency: '2MB': unknown time unit 'MB'; "
        "use one of: us, µs, ms, s, m, min, h.",
    ),
    "unit-case": (
        "device: esp32\ninference:\n  flash: 256kib\n",
        "3: inference.flash: '256kib': unknown bytes unit 'kib'; use one of: B, kB, KB, MB, GB, "
        "KiB, MiB, GiB. Did you mean 'KiB'?",
    ),
    "unknown-key": (
        "device: esp32\ninference:\n  ramm: 64KiB\n",
        "3: inference.ramm: unknown key; did you mean 'ram'? allowed here: ram, flash, latency, "
        "energy, learn",
    ),
    "unknown-top-key": (
        "device: esp32\ntrainig:\n  time: 10min\n",
        "2: trainig: unknown key; did you mean 'training'? allowed here: name, device, inference, "
        "training, task, margin",
    ),
    "duplicate-key": (
        "device: esp32\ninference:\n  ram: 64KiB\n  ram: 32KiB\n",
        "4: inference.ram: duplicate key (first given on line 3); keep only one",
    ),
    "negative": (
        "device: esp32\ntraining:\n  time: -5min\n",
        "3: training.time: '-5min' is negative; a time limit must be positive",
    ),
    "zero": (
        "device: esp32\ninference:\n  energy: 0mJ\n",
        "3: inference.energy: '0mJ' is zero; leave the key out if it should not be checked",
    ),
    "nan": (
        "device: esp32\ntask:\n  min_return: .nan\n",
        "3: task.min_return: '.nan' is not a number; write a plain number such as 475",
    ),
    "margin-range": (
        "device: esp32\nmargin: 1.5\n",
        "2: margin: 1.5 is outside 0–1; the margin is a fraction (0.25 means measured × 1.25 "
        "must stay within each limit)",
    ),
    "ram-over-device": (
        "device: esp32\ninference:\n  ram: 600KiB\n",
        "3: inference.ram: 600 KiB is more than the device has (esp32: 520 KiB SRAM); the budget "
        "is impossible. Lower it to at most 520 KiB or pick a bigger device",
    ),
    "unknown-device": (
        "device: esp23\n",
        "1: device: unknown device 'esp23'; did you mean 'esp32'? Run 'rlbudget devices' to list "
        "the named devices, or describe yours inline: device: {class: mcu, clock: 240MHz, "
        "sram: 520KiB, flash: 4MiB, fpu: true, power: 240mW}",
    ),
    "alias": (
        "device: esp32\ninference:\n  ram: &r 64KiB\n  flash: *r\n",
        "3: YAML anchors and aliases (&name, *name) are not allowed in a budget; write each value "
        "out in full",
    ),
    "tag": (
        "device: !!python/object/apply:os.system ['true']\n",
        "1: YAML tags such as '!!python/object/apply:os.system' are not allowed in a budget; "
        "remove the tag and write a plain value",
    ),
    "deep-nesting": (
        "device: esp32\ntask: " + "[" * 50 + "]" * 50 + "\n",
        "2: nesting deeper than 8 levels; a budget has at most section → key → value (see "
        "README, 'The budget file')",
    ),
    "section-not-mapping": (
        "device: esp32\ninference: 64KiB\n",
        "2: inference: expected a mapping with keys ram, flash, latency, energy, learn; indent "
        "them under 'inference' as 'key: value' lines",
    ),
    "missing-device": (
        "name: x\ninference:\n  ram: 1KiB\n",
        "1: device: missing; name a device (see 'rlbudget devices') or describe one inline, "
        "e.g. device: {class: mcu, clock: 240MHz, sram: 520KiB, flash: 4MiB}",
    ),
    "inline-unknown-class": (
        "device:\n  class: mcro\n  clock: 48MHz\n",
        "2: device.class: unknown device class 'mcro'; did you mean 'mcu'? Use one of: mcu, "
        "mcu-accel, mpu, gpu, host",
    ),
    "syntax": (
        "device: esp32\ninference:\n  ram: 64KiB\n flash: 1KiB\n",
        "4: not valid YAML: expected <block end>, but found '<block mapping start>'; check the "
        "indentation and colons",
    ),
    "fpu-not-bool": (
        "device:\n  class: mcu\n  fpu: maybe\n",
        "3: device.fpu: 'maybe' is not true or false",
    ),
    "count-fraction": (
        "device: esp32\ntraining:\n  env_steps: 1.5\n",
        "3: training.env_steps: '1.5' is not a whole number",
    ),
    "tabs": (
        "device: esp32\ninference:\n\tram: 64KiB\n",
        "3: not valid YAML: found character '\\t' that cannot start any token; YAML indents "
        "with spaces, not tabs: replace the tabs with spaces",
    ),
    "device-list": (
        "device: [esp32]\n",
        "1: device: expected one device; name a device (see 'rlbudget devices') or describe one "
        "inline, e.g. device: {class: mcu, clock: 240MHz, sram: 520KiB, flash: 4MiB}",
    ),
    "device-empty": (
        "device:\n",
        "1: device: is empty; name a device (see 'rlbudget devices') or describe one "
        "inline, e.g. device: {class: mcu, clock: 240MHz, sram: 520KiB, flash: 4MiB}",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_budget_exact_error(case: str, write_budget: Callable[[str, str], Path]) -> None:
    text, expected = BAD[case]
    path = write_budget(text, f"{case}.yaml")
    with pytest.raises(BudgetError) as e:
        load_budget(path)
    assert str(e.value) == f"{path}:{expected}"


def test_missing_file() -> None:
    with pytest.raises(BudgetError) as e:
        load_budget("nope/budget.yaml")
    assert str(e.value) == (
        "nope/budget.yaml: no such file; check the path (example budgets are in budgets/)"
    )


def test_too_large_file(write_budget: Callable[[str, str], Path]) -> None:
    path = write_budget("device: esp32\n" + "#" * (1024 * 1024) + "\n")
    with pytest.raises(BudgetError, match=r"over the 1 MiB limit for a budget"):
        load_budget(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"device: esp32\nname: caf\xe9\n")
    with pytest.raises(BudgetError) as e:
        load_budget(path)
    assert str(e.value) == f"{path}:2: not UTF-8 text; save the budget as UTF-8"


def test_empty_file(write_budget: Callable[[str, str], Path]) -> None:
    path = write_budget("# nothing but a comment\n")
    with pytest.raises(BudgetError, match="the budget is empty; start from an example"):
        load_budget(path)


def test_yaml11_coercions_do_not_change_figures() -> None:
    # `1e3` is a string in YAML 1.1 and `no` a boolean; both are read from their text here.
    b = parse_budget("name: no\ndevice: esp32\ntraining:\n  env_steps: 1e3\n", "c.yaml")
    assert b.name == "no"
    assert b.training.env_steps == 1000


def test_very_deep_nesting_does_not_crash(write_budget: Callable[[str, str], Path]) -> None:
    path = write_budget("device: esp32\ntask: " + "[" * 100_000 + "\n")
    with pytest.raises(BudgetError, match="nesting deeper than 8 levels"):
        load_budget(path)
