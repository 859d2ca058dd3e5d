"""Emulated latency on Cortex-M3 and Cortex-M33 (issue 16, item 1 for the other cores):
the STM32F103 (M3, software float, flash wait states on taken branches) and the RP2350
(M33 with FPU, counted with the M4 table). Skipped when the toolchain, unicorn or capstone
is missing."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from rlbudget.budget import load_budget
from rlbudget.compress.quantize import quantize_int8
from rlbudget.devices import get_device
from rlbudget.emulate import emulate_policy, emulated_core
from rlbudget.emulate.image import build_image, link
from rlbudget.emulate.machine import Machine
from rlbudget.export.c import export_c
from rlbudget.policy import Policy
from rlbudget.profile.verdict import profile
from rlbudget.render import render_profile
from tests.test_emulate import cartpole_mlp, cartpole_obs

MISSING = [m for m in ("unicorn", "capstone") if importlib.util.find_spec(m) is None]
pytestmark = [
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="needs arm-none-eabi-gcc (apt-get install gcc-arm-none-eabi)"),
    pytest.mark.skipif(bool(MISSING), reason=f"needs {MISSING} (pip install rlbudget[emulate])"),
]  # fmt: skip
DEVICES = ["stm32f103", "rp2350"]  # Cortex-M3 (software float), Cortex-M33 with FPU


def test_the_cores_map_to_their_builds() -> None:
    assert emulated_core(get_device("stm32f103")) == ("cortex-m3", 1.0)
    assert emulated_core(get_device("rp2350")) == ("cortex-m33", 1.0)  # not the M3's


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("body", ["fp32", "int8"])
def test_emulated_actions_equal_numpy(device: str, body: str) -> None:
    policy, obs = cartpole_mlp(), cartpole_obs(20)
    if body == "int8":
        policy = quantize_int8(policy, cartpole_obs(200))
    # every action checked; cycles counted on the first decisions only (seconds, not ten)
    e = emulate_policy(policy, get_device(device), obs, count_instructions=100_000)
    assert e.observations == len(obs) and e.counted >= 1
    assert 0 < e.cycles_min <= e.cycles_mean <= e.cycles_max
    assert e.energy_j == pytest.approx(e.seconds_mean * get_device(device).active_power_w)
    assert e.unclassified == {}, e.unclassified  # every executed instruction in the table


HAND_WRITTEN = """
__attribute__((naked)) int macs(int n)
{
    __asm volatile(".syntax unified\\n"
                   "movs r1, #0\\n"
                   "1: mla r1, r0, r0, r1\\n"
                   "subs r0, #1\\n"
                   "bne 1b\\n"
                   "mov r0, r1\\n"
                   "bx lr\\n");
}
__attribute__((naked)) int longmul(int a)
{
    __asm volatile(".syntax unified\\n"
                   "umull r0, r1, r0, r0\\n"
                   "smlal r0, r1, r0, r0\\n"
                   "bx lr\\n");
}
void rlb_reset(void) { macs(3); longmul(2); }
"""


@pytest.mark.parametrize("core", ["cortex-m3", "cortex-m33", "cortex-m33-nofp"])
def test_cycles_of_hand_written_code_match_the_trm(core: str, tmp_path: Path) -> None:
    """``macs(n)``: MOVS 1, n × (MLA + SUBS 1), BNE taken 2 (n−1 times) / not taken 1, MOV 1,
    BX 2. The M3 TRM (DDI 0337I Table 3.1) has MLA 2: 5n + 3; the M33 is counted with the M4
    table, MLA 1: 4n + 3. ``longmul``: M3 UMULL 3–5 counted 4, SMLAL 4–7 counted 5, BX 2 =
    11; M4 table: 1 + 1 + 2 = 4. An M33 without its optional FPU (``cortex-m33-nofp``, soft
    float) is counted with the same table."""
    source = tmp_path / "hand.c"
    source.write_text(HAND_WRITTEN)
    machine = Machine(link(core, [source], tmp_path / "hand.elf"), core)
    per_mac = 5 if core == "cortex-m3" else 4
    for n in (1, 7, 50):
        result, stats = machine.call("macs", n)
        assert result == sum(k * k for k in range(1, n + 1)) and stats is not None
        assert stats.cycles == per_mac * n + 3
    _, stats = machine.call("longmul", 3)
    assert stats is not None and stats.cycles == (4 + 5 + 2 if core == "cortex-m3" else 4)


def test_the_blue_pill_pays_its_wait_states_on_taken_branches(tmp_path: Path) -> None:
    """No cache on the STM32F103: 2 flash wait states at 72 MHz (RM0008) on every taken
    branch and every data read from flash (the weights are ``static const``, in flash),
    added to the zero-wait-state count; and ``exported`` is emulated as given."""
    policy, obs = cartpole_mlp(), cartpole_obs(1)
    export_c(policy, tmp_path / "c")
    machine = Machine(build_image(tmp_path / "c", "cortex-m3", tmp_path), "cortex-m3",
                      count_flash_reads=True)  # fmt: skip
    buffer = np.ascontiguousarray(obs[0], dtype=np.float32).tobytes()
    machine.write(machine.symbol("rlb_obs"), buffer)
    _, stats = machine.call("rlb_policy_act", machine.symbol("rlb_obs"),
                            machine.symbol("rlb_action"))  # fmt: skip
    assert stats is not None
    assert stats.flash_reads >= 4 * 8 + 8 * 2  # at least every weight is read once
    e = emulate_policy(policy, get_device("stm32f103"), obs, exported=tmp_path / "c")
    assert e.cycles_mean == stats.cycles + 2 * (stats.taken_branches + stats.flash_reads)
    assert e.miss_bound_cycles == 0.0  # counted, not a bound
    assert "counted on every taken branch and every data read from flash (no cache)" in e.how


BUDGET = """name: {device}
device: {device}
inference: {{latency: 1s, energy: 1J}}
task: {{env: CartPole-v1}}
margin: 0.25
"""


@pytest.mark.parametrize("device", DEVICES)
def test_profile_reports_emulated_latency_from_one_export(
    device: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rlbudget.export.c
    import rlbudget.export.host

    monkeypatch.setenv("RLBUDGET_EMULATE", "1")
    monkeypatch.setattr("rlbudget.emulate.latency.PROFILE_OBSERVATIONS", 20)  # seconds, not 15
    exports: list[Path] = []
    real = rlbudget.export.c.export_c

    def counted(policy: Policy, out_dir: Path, *args: object, **kwargs: object) -> object:
        exports.append(Path(out_dir))
        return real(policy, out_dir, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rlbudget.export.c, "export_c", counted)
    monkeypatch.setattr(rlbudget.export.host, "export_c", counted)
    path = tmp_path / "b.yaml"
    path.write_text(BUDGET.format(device=device))
    report = profile(cartpole_mlp(), load_budget(path), episodes=1, calls=1000)
    checks = {c.limit: c for c in report.checks}
    assert checks["inference.latency"].source == "emulated"
    assert checks["inference.energy"].source == "emulated"
    assert len(exports) == 1, exports  # measured, compiled for the host and emulated
    how = report.target_latency_how
    assert "cycles (min/mean/max)" in how
    assert ("DDI 0337I" in how) if device == "stm32f103" else ("M33 ≈ M4 timing" in how)
    assert report.target_latency_source == "emulated"
    console = Console(record=True, width=200)
    render_profile(console, report, None)
    line = next(ln for ln in console.export_text().splitlines() if "target latency" in ln)
    assert line.startswith("target latency (emulated): ") and ", mean " in line, line
