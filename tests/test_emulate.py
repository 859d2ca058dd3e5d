"""Emulated latency on Cortex-M (issue 16, item 1): the C export linked bare-metal with
arm-none-eabi-gcc, run in unicorn, actions checked against numpy, cycles from the TRM
tables. Skipped when the toolchain, unicorn or capstone is missing."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from rlbudget.budget import load_budget
from rlbudget.compress.quantize import quantize_int8
from rlbudget.devices import get_device
from rlbudget.emulate import emulate_policy, profile_latency, unavailable
from rlbudget.emulate.image import link
from rlbudget.emulate.machine import Machine
from rlbudget.envs import env_spec
from rlbudget.errors import RlbudgetError
from rlbudget.policy import MLP, Dense, Head, Policy, Table
from rlbudget.profile.verdict import profile

MISSING = [m for m in ("unicorn", "capstone") if importlib.util.find_spec(m) is None]
pytestmark = [
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="needs arm-none-eabi-gcc (apt-get install gcc-arm-none-eabi)"),
    pytest.mark.skipif(bool(MISSING), reason=f"needs {MISSING} (pip install rlbudget[emulate])"),
]  # fmt: skip
DEVICES = ["rp2040", "nrf52840"]  # Cortex-M0+ (software float), Cortex-M4F


def cartpole_mlp() -> Policy:
    s = env_spec("CartPole-v1", measure_steps=0)
    rng = np.random.default_rng(0)
    w1 = (0.5 * rng.standard_normal((4, 8))).astype(np.float32)
    w2 = (0.5 * rng.standard_normal((8, 2))).astype(np.float32)
    body = MLP((Dense(w1, np.full(8, 0.1, np.float32), "tanh"),
                Dense(w2, np.zeros(2, np.float32))))  # fmt: skip
    return Policy(s.observation, s.action, (), body, Head("argmax"), {"env": "CartPole-v1"})


def cartpole_obs(n: int = 30) -> np.ndarray:
    return np.random.default_rng(1).uniform(-2, 2, (n, 4)).astype(np.float32)


def frozenlake_table() -> Policy:
    s = env_spec("FrozenLake-v1", measure_steps=0)
    q = np.random.default_rng(3).standard_normal((16, 4)).astype(np.float32)
    return Policy(s.observation, s.action, (), Table(q), Head("argmax"), {"env": "FrozenLake-v1"})


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("body", ["fp32", "int8", "table"])
def test_emulated_actions_equal_numpy(device: str, body: str) -> None:
    if body == "table":
        policy, obs = frozenlake_table(), np.arange(16)
    else:
        policy, obs = cartpole_mlp(), cartpole_obs()
        if body == "int8":
            policy = quantize_int8(policy, cartpole_obs(200))
    e = emulate_policy(policy, get_device(device), obs)  # raises on any mismatch
    assert e.observations == len(obs) and 1 <= e.counted <= len(obs)
    assert 0 < e.cycles_min <= e.cycles_mean <= e.cycles_max
    assert e.seconds_mean == pytest.approx(e.cycles_mean / get_device(device).clock_hz)
    assert e.energy_j == pytest.approx(e.seconds_mean * get_device(device).active_power_w)
    assert e.unclassified == {}, e.unclassified  # every executed instruction in the table


def test_software_float_costs_more_on_the_m0plus() -> None:
    policy = cartpole_mlp()
    m0, m4 = (emulate_policy(policy, get_device(d), cartpole_obs(5)) for d in DEVICES)
    assert m0.cycles_mean > 5 * m4.cycles_mean  # soft-float library calls vs FPU instructions


def test_m7_is_the_m4_count_times_the_documented_factor() -> None:
    policy, obs = cartpole_mlp(), cartpole_obs(5)
    m4 = emulate_policy(policy, get_device("nrf52840"), obs)
    m7 = emulate_policy(policy, get_device("teensy-4"), obs)
    assert m7.cycles_mean == pytest.approx(m4.cycles_mean * 0.679)
    assert "0.679" in m7.core and "CoreMark" in m7.core


def test_a_mismatch_with_numpy_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = frozenlake_table()
    monkeypatch.setattr(Policy, "act", lambda self, obs: 7)  # numpy "chooses" action 7
    with pytest.raises(RlbudgetError, match="the export and the policy disagree"):
        emulate_policy(policy, get_device("rp2040"), np.arange(3))


def test_the_instruction_cap_is_a_one_line_error() -> None:
    with pytest.raises(RlbudgetError) as err:
        emulate_policy(cartpole_mlp(), get_device("rp2040"), cartpole_obs(2), max_instructions=100)
    assert "did not return within 100 instructions" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_core_without_a_model_says_why() -> None:
    assert "no emulated model" in (unavailable(get_device("esp32")) or "")
    assert unavailable(get_device("rp2040")) is None


HAND_WRITTEN = """
__attribute__((naked)) int adds(int n)
{
    __asm volatile(".syntax unified\\n"
                   "movs r1, #0\\n"
                   "1: adds r1, #1\\n"
                   "subs r0, #1\\n"
                   "bne 1b\\n"
                   "movs r0, r1\\n"
                   "bx lr\\n");
}
__attribute__((naked)) int loads(const int *p)
{
    __asm volatile(".syntax unified\\n"
                   "ldr r1, [r0]\\n"
                   "ldr r2, [r0, #4]\\n"
                   "adds r0, r1, r2\\n"
                   "bx lr\\n");
}
#if defined(__ARM_FP)
__attribute__((naked)) float fpu(float a, float b)
{
    __asm volatile(".syntax unified\\n"
                   "vdiv.f32 s2, s0, s1\\n"
                   "vmla.f32 s2, s0, s1\\n"
                   "vadd.f32 s0, s2, s1\\n"
                   "bx lr\\n");
}
#endif
static const int pair[2] = {40, 2};
void rlb_reset(void)
{
    adds(3);
    loads(pair);
#if defined(__ARM_FP)
    fpu(1.0f, 2.0f);
#endif
}
"""


@pytest.mark.parametrize("core", ["cortex-m0plus", "cortex-m4"])
def test_cycles_of_hand_written_code_match_the_trm(core: str, tmp_path: Path) -> None:
    """``adds(n)``: MOVS 1, n × (ADDS 1 + SUBS 1), BNE taken 2 (n−1 times) / not taken 1,
    MOVS 1, BX LR 2 = 4n + 3 on both cores. ``loads``: two LDR, ADDS, BX: 2+2+1+2 = 7 on the
    M0+; 2+1+1+2 = 6 on the M4 (the second LDR pipelines after the first). ``fpu`` (M4F):
    VDIV 14 + VMLA 3 + VADD 1 + BX 2 = 20."""
    source = tmp_path / "hand.c"
    source.write_text(HAND_WRITTEN)
    machine = Machine(link(core, [source], tmp_path / "hand.elf"), core)
    for n in (1, 5, 100):
        result, stats = machine.call("adds", n)
        assert stats is not None and result == n
        assert stats.cycles == 4 * n + 3 and stats.instructions == 3 * n + 3
        assert stats.taken_branches == n  # n−1 loop branches and the return
    result, stats = machine.call("loads", machine.symbol("pair"))
    assert result == 42 and stats is not None
    assert stats.cycles == (7 if core == "cortex-m0plus" else 6)
    if core == "cortex-m4":  # FPU table: VDIV 14, VMLA 3, VADD 1, BX 2
        _, stats = machine.call("fpu")
        assert stats is not None and stats.cycles == 14 + 3 + 1 + 2


BUDGET = """name: pico
device: rp2040
inference: {latency: 1s, energy: 1J}
task: {env: CartPole-v1}
margin: 0.25
"""


def test_profile_reports_emulated_latency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLBUDGET_EMULATE", "1")
    path = tmp_path / "pico.yaml"
    path.write_text(BUDGET)
    report = profile(cartpole_mlp(), load_budget(path), episodes=1, calls=1000)
    checks = {c.limit: c for c in report.checks}
    assert checks["inference.latency"].source == "emulated"
    assert checks["inference.energy"].source == "emulated"
    assert "cycles (min/mean/max)" in report.target_latency_how
    low, mean, high = (report.target_latency.low, report.target_latency.typical,
                       report.target_latency.high)  # fmt: skip
    assert 0 < low <= mean <= high
    assert report.energy.typical == pytest.approx(mean * get_device("rp2040").active_power_w)


def test_profile_keeps_the_estimate_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLBUDGET_EMULATE", "1")
    monkeypatch.setattr("rlbudget.emulate.latency.compiler", lambda: None)
    figure, why = profile_latency(cartpole_mlp(), get_device("rp2040"), cartpole_obs(2))
    assert figure is None
    assert why == ("latency and energy estimated, not emulated: arm-none-eabi-gcc is not "
                   "installed (Debian: apt-get install gcc-arm-none-eabi)")  # fmt: skip
    monkeypatch.setenv("RLBUDGET_EMULATE", "0")
    assert profile_latency(cartpole_mlp(), get_device("rp2040"), cartpole_obs(2)) == (None, "")


def test_a_core_without_a_model_keeps_the_estimate_quietly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RLBUDGET_EMULATE", "1")
    assert profile_latency(cartpole_mlp(), get_device("esp32"), cartpole_obs(2)) == (None, "")


def test_cli_profile_over_the_instruction_cap_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from rlbudget.cli import app
    from rlbudget.policy import save_policy

    monkeypatch.setenv("RLBUDGET_EMULATE", "1")
    monkeypatch.setattr("rlbudget.emulate.latency.MAX_INSTRUCTIONS", 100)
    budget = tmp_path / "pico.yaml"
    budget.write_text(BUDGET)
    policy = save_policy(cartpole_mlp(), tmp_path / "p")
    result = CliRunner().invoke(app, ["profile", str(policy), "--budget", str(budget),
                                      "--episodes", "1", "--calls", "1000"])  # fmt: skip
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "did not return within 100 instructions" in lines[0]
