"""AVR (issue 16, item 2): the C export linked for the ATmega328P with avr-gcc, its tables
in flash, run cycle-accurately in simavr with every action checked against numpy.
Skipped when avr-gcc, avr-libc, libsimavr-dev or a host C compiler is missing."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rlbudget.budget import load_budget
from rlbudget.compress.fp16 import to_fp16
from rlbudget.compress.quantize import quantize_int8
from rlbudget.compress.tabular import quantize_linear
from rlbudget.devices import get_device
from rlbudget.emulate import avr
from rlbudget.emulate.image import read_elf
from rlbudget.errors import RlbudgetError
from rlbudget.export.c import export_c
from rlbudget.policy import MLP, Head, Policy, Table, save_policy
from rlbudget.profile.footprint import footprint
from rlbudget.profile.verdict import profile
from tests import factories

MISSING = avr.missing_tools()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"needs the AVR tools: {MISSING}")
UNO = get_device("arduino-uno")


def _pendulum_obs() -> np.ndarray:
    return factories.pendulum_obs(12)


def _sparse_mlp() -> Policy:
    """A 4-32-2 relu MLP with 90 % of its weights zero: stored and run as CSR."""
    policy = factories.cartpole_tanh(widths=(4, 32, 2))
    assert isinstance(policy.body, MLP)
    rng = np.random.default_rng(9)
    layers = tuple(replace(la, W=np.where(rng.random(la.W.shape) < 0.9, 0, la.W).astype(
        np.float32)) for la in policy.body.layers)  # fmt: skip
    return replace(policy, body=MLP(layers))


CASES = {
    "fp32 mlp": (lambda: factories.cartpole_tanh(widths=(4, 8, 2)),
                 lambda: factories.cartpole_obs(12)),
    "int8 mlp": (lambda: quantize_int8(factories.cartpole_tanh(widths=(4, 8, 2)),
                                       factories.cartpole_obs(200)),
                 lambda: factories.cartpole_obs(12)),
    "fp16 mlp": (lambda: to_fp16(factories.cartpole_tanh(widths=(4, 8, 2))),
                 lambda: factories.cartpole_obs(12)),
    "sparse mlp": (_sparse_mlp, lambda: factories.cartpole_obs(12)),
    "int8 per channel": (lambda: quantize_int8(factories.cartpole_tanh(widths=(4, 8, 2)),
                                               factories.cartpole_obs(200), per_channel=True),
                         lambda: factories.cartpole_obs(12)),
    "int8 float output": (lambda: quantize_int8(factories.pendulum_relu(head="clip"),
                                                factories.pendulum_obs(200)), _pendulum_obs),
    "int8 tanh_rescale": (lambda: quantize_int8(factories.pendulum_relu(head="tanh_rescale"),
                                                factories.pendulum_obs(200)), _pendulum_obs),
    "box action": (lambda: factories.pendulum_relu(head="clip"), _pendulum_obs),
    "table": (factories.frozenlake_table, lambda: np.arange(16)),
    "packed table": (factories.taxi_packed, lambda: np.arange(0, 500, 41)),
    "discretized table": (factories.cartpole_table, lambda: factories.cartpole_obs(12)),
    "int16 tile coder": (lambda: quantize_linear(factories.mountaincar_tiles(), "int16"),
                         lambda: factories.observations("MountainCar-v0")[::25]),
}  # fmt: skip
"""Each kind of policy and its observations: every kernel of the C runtime."""


@pytest.mark.parametrize("case", CASES)
def test_emulated_actions_equal_numpy(case: str) -> None:
    make, obs = CASES[case]
    observations = obs()
    e = avr.emulate_avr(make(), UNO, observations)  # raises on any mismatch
    assert e.observations == e.counted == len(observations)
    assert 0 < e.cycles_min <= e.cycles_mean <= e.cycles_max
    assert e.seconds_mean == pytest.approx(e.cycles_mean / 16e6)
    assert e.energy_j == pytest.approx(e.seconds_mean * UNO.active_power_w)


def test_a_mismatch_with_numpy_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Policy, "act", lambda self, obs: 3 if int(obs) == 2 else int(obs))
    table = Policy(factories.discrete(4), factories.discrete(4), (),
                   Table(np.eye(4, dtype=np.float32)), Head("argmax"))  # fmt: skip
    with pytest.raises(RlbudgetError, match="chose 2 on observation 2, numpy chose 3"):
        avr.emulate_avr(table, UNO, np.arange(4))


HAND_WRITTEN = r"""#include <avr/io.h>
static const __flash unsigned char bytes[4] = {1, 2, 3, 4};
volatile unsigned char sink;
int main(void)
{
    for (;;) {
        GPIOR0 = 1;
        __asm__ __volatile__(".rept 100\n\tadd r2, r3\n\t.endr" ::: "r2", "memory");
        GPIOR0 = 2;
        GPIOR0 = 1;
        __asm__ __volatile__("ldi r24, 10\n1:\tdec r24\n\tbrne 1b" ::: "r24", "memory");
        GPIOR0 = 2;
        GPIOR0 = 1;
        __asm__ __volatile__("lpm r0, Z+\n\tlpm r0, Z\n\tmul r24, r24\n\tnop"
                             :: "z"(bytes) : "r0", "r1", "memory");
        GPIOR0 = 2;
        __asm__ __volatile__("clr r1");
    }
}
"""


def test_cycles_of_hand_written_code_match_the_instruction_set_manual(tmp_path: Path) -> None:
    """AVR Instruction Set Manual: 100 × ADD (1 cycle) = 100; LDI 1 + 10 × DEC 1 + 9 taken
    BRNE 2 + 1 not taken = 30; LPM 3 + LPM 3 + MUL 2 + NOP 1 = 9. The runner counts from
    one GPIOR0 write to the next, less the first write's own cycle (OUT: 1)."""
    source = tmp_path / "hand.c"
    source.write_text(HAND_WRITTEN)
    image = avr.link_avr([source], tmp_path / "hand.elf", "atmega328p", 16e6)
    got = avr.simulate(image.elf, "atmega328p", 16e6, b"", 6, 0x100, 0x100, 0)
    assert [d.cycles for d in got] == [100, 30, 9, 100, 30, 9]
    assert [d.instructions for d in got[:3]] == [100, 1 + 10 + 10, 4]


def test_the_harness_adds_12_cycles_to_the_function(tmp_path: Path) -> None:
    """A policy.c whose rlb_policy_act is LDI, LDI, RET (1 + 1 + 4 = 6 cycles): 18 counted,
    the harness's 4 LDI (arguments) + CALL 4 + 2 STS (2 each, the result) = 12 on top."""
    (tmp_path / "policy.h").write_text(
        "#define RLB_OBS_DIM 4\n#define RLB_ACTION_DIM 1\n"
        "int rlb_policy_act(const float *obs, float *action);\n"
    )
    (tmp_path / "policy.c").write_text(
        '#include "policy.h"\nint rlb_policy_act(const float *obs, float *action)\n'
        "{\n    (void)obs;\n    (void)action;\n    return 0;\n}\n")  # fmt: skip
    image = avr.link_policy(tmp_path, tmp_path, UNO)
    symbols = read_elf(image.elf).symbols
    got = avr.simulate(image.elf, "atmega328p", 16e6, bytes(32), 2, symbols["rlb_obs"] & 0xFFFF,
                       symbols["rlb_out"] & 0xFFFF, 6)  # fmt: skip
    assert [(d.cycles, d.instructions) for d in got] == [(18, 10), (18, 10)]


def test_the_cycle_cap_is_a_one_line_error() -> None:
    with pytest.raises(RlbudgetError) as err:
        avr.emulate_avr(factories.cartpole_tanh(widths=(4, 8, 2)), UNO,
                        factories.cartpole_obs(2), max_cycles=1000)  # fmt: skip
    assert str(err.value).startswith("an emulated decision did not finish within 1,000 cycles "
                                     "on the atmega328p")  # fmt: skip
    assert "\n" not in str(err.value)


def test_a_simavr_run_past_its_timeout_is_a_one_line_error(tmp_path: Path) -> None:
    source = tmp_path / "spin.c"
    source.write_text("#include <avr/io.h>\nint main(void)\n{\n    GPIOR0 = 1;\n"
                      "    for (;;) {\n        __asm__ __volatile__(\"nop\");\n"
                      "    }\n}\n")  # fmt: skip
    image = avr.link_avr([source], tmp_path / "spin.elf", "atmega328p", 16e6)
    with pytest.raises(RlbudgetError) as err:
        avr.simulate(image.elf, "atmega328p", 16e6, b"", 1, 0x100, 0x100, 0,
                     max_cycles=10**15, timeout=1)  # fmt: skip
    assert str(err.value) == "simavr ran over 1 s on 1 decisions; emulate fewer observations"


def big_table(states: int) -> Policy:
    """A Discrete(states) × 2 float32 table: 8 B per state."""
    q = np.random.default_rng(0).standard_normal((states, 2)).astype(np.float32)
    return Policy(factories.discrete(states), factories.discrete(2), (),
                  Table(q), Head("argmax"))  # fmt: skip


def test_the_tables_stay_in_flash(tmp_path: Path) -> None:
    """A 16 KiB table: nothing in .data with the export's RLB_CONST (const __flash); built
    as strict C99, where __flash does not exist, the same table is copied to SRAM."""
    export_c(big_table(2048), tmp_path / "c")
    image = avr.link_policy(tmp_path / "c", tmp_path, UNO)
    assert image.sizes.data == 0 and image.sizes.text > 16 * 1024
    assert image.sizes.bss == 4 + 2 + 4  # rlb_obs[1]; rlb_out int16 + float[1], no padding
    harness = tmp_path / "rlb_avr_main.c"  # link_policy wrote it
    strict = subprocess.run(
        ["avr-gcc", "-mmcu=atmega328p", "-std=c99", "-Os", f"-I{tmp_path / 'c'}", str(harness),
         str(tmp_path / "c" / "policy.c"), "-o", str(tmp_path / "strict.elf"),
         "-Wl,--defsym=__DATA_REGION_LENGTH__=0xff00"], capture_output=True, text=True)  # fmt: skip
    assert strict.returncode == 0, strict.stderr
    sizes = subprocess.run(["avr-size", str(tmp_path / "strict.elf")], capture_output=True,
                           text=True).stdout.splitlines()[1].split()  # fmt: skip
    assert int(sizes[1]) == 2048 * 2 * 4  # .data: the whole table in SRAM


def test_an_image_too_large_for_the_chip_is_reported_with_its_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RLBUDGET_EMULATE", "1")
    policy = big_table(4090)  # 32,720 B of table alone: over 32 KiB with the code
    with pytest.raises(avr.DoesNotFit) as err:
        avr.emulate_avr(policy, UNO, np.arange(2))
    message = str(err.value)
    assert message.startswith("cannot emulate arduino-uno: the firmware needs ")
    assert message.endswith(" B of flash, the ATmega328P has 32,768 B")
    assert int(message.split("needs ")[1].split(" B")[0].replace(",", "")) > 32_720
    figure, why = avr.profile_latency_avr(policy, UNO, np.arange(2))
    assert figure is None and why == f"latency and energy estimated, not emulated: {message}"


def test_an_array_over_avr_gcc_s_limit_keeps_the_estimate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 5,000 × 2 table is 40,000 B in one array: avr-gcc refuses any object over 32,767 B.
    profile's latency keeps the estimate with the reason; its flash, the estimate's (the
    exact const bytes plus code), is over the chip's 32 KiB, so device.flash FAILs."""
    monkeypatch.setenv("RLBUDGET_EMULATE", "1")
    policy = big_table(5000)
    figure, why = avr.profile_latency_avr(policy, UNO, np.arange(2))
    assert figure is None and why == (
        "latency and energy estimated, not emulated: cannot build for the atmega328p: a "
        "constant array of policy.c is over 32,767 B, the most one avr-gcc object may hold "
        "(the chip has 32 KiB of flash in all)")  # fmt: skip
    f = footprint(policy, "c", UNO)
    assert f.flash_source == "estimated" and f.flash_bytes > 40_000 > 32 * 1024


UNO_BUDGET = """name: uno
device: arduino-uno
inference: {latency: 1s, energy: 1J}
task: {env: CartPole-v1}
margin: 0.25
"""


def test_profile_on_the_uno_is_emulated_and_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLBUDGET_EMULATE", "1")
    path = tmp_path / "uno.yaml"
    path.write_text(UNO_BUDGET)
    report = profile(factories.cartpole_table(), load_budget(path), episodes=1, calls=1000)
    checks = {c.limit: c for c in report.checks}
    assert checks["inference.latency"].source == "emulated"
    assert checks["inference.energy"].source == "emulated"
    assert "cycle-accurate in simavr" in report.target_latency_how
    assert checks["inference.flash"].source == checks["inference.ram"].source == "measured"
    assert report.footprint.target == "atmega328p"
    assert report.energy.typical == pytest.approx(report.target_latency.typical * 0.075)


def test_the_uno_footprint_counts_the_tables_in_flash(tmp_path: Path) -> None:
    policy = big_table(2048)
    exported = export_c(policy, tmp_path / "c")
    f = footprint(policy, "c", UNO)
    assert f.flash_source == f.ram_source == "measured" and f.target == "atmega328p"
    assert f.flash_bytes > exported.flash_bytes == 16 * 1024
    stack = int(f.ram_how.split("stack ")[1].split(" B")[0])
    assert f.ram_bytes == 4 + 2 + 4 + stack  # the caller's rlb_obs and rlb_out; no table


def test_without_the_tools_profile_keeps_the_estimate_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RLBUDGET_EMULATE", "1")
    monkeypatch.setattr("shutil.which", lambda name: None)
    figure, why = avr.profile_latency_avr(factories.frozenlake_table(), UNO, np.arange(2))
    assert figure is None
    assert why == ("latency and energy estimated, not emulated: avr-gcc and avr-size and a "
                   "host C compiler (cc) not installed (Debian: apt-get install gcc-avr "
                   "avr-libc libsimavr-dev)")  # fmt: skip
    monkeypatch.setenv("RLBUDGET_EMULATE", "0")
    assert avr.profile_latency_avr(factories.frozenlake_table(), UNO, np.arange(2)) == (None, "")


def test_a_runner_that_does_not_build_keeps_the_estimate_with_the_compiler_s_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RLBUDGET_EMULATE", "1")
    monkeypatch.setattr(avr, "RUNNER", "#error libsimavr is broken here\n")
    figure, why = avr.profile_latency_avr(factories.frozenlake_table(), UNO, np.arange(2))
    assert figure is None
    assert why.startswith("latency and energy estimated, not emulated: compiling the simavr "
                          "runner (libsimavr-dev) failed: ")  # fmt: skip
    assert why.endswith("libsimavr is broken here") and "\n" not in why


def test_cli_profile_over_the_cycle_cap_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from rlbudget.cli import app

    monkeypatch.setenv("RLBUDGET_EMULATE", "1")
    monkeypatch.setattr(avr, "MAX_CYCLES", 100)
    budget = tmp_path / "uno.yaml"
    budget.write_text(UNO_BUDGET)
    policy = save_policy(factories.cartpole_table(), tmp_path / "p")
    result = CliRunner().invoke(app, ["profile", str(policy), "--budget", str(budget),
                                      "--episodes", "1", "--calls", "1000"])  # fmt: skip
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "did not finish within 100 cycles" in lines[0]
