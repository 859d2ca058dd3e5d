"""``profile --optimize`` (issue 16.4 follow-up): flash, RAM and the emulated latency of a C
policy describe ONE build, ``-O2`` (the default) or ``-Os``. The int8 DSP path exists at
``-O2`` on a core with the DSP extension only, and with it ``rlb_x16``: 2 B per input of
the widest int8 layer, which the ``-O2`` figures must hold and the ``-Os`` ones must not."""

from __future__ import annotations

import importlib.util
import shutil
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from rlbudget.budget import load_budget
from rlbudget.compress.quantize import quantize_int8
from rlbudget.devices import get_device
from rlbudget.emulate.image import build_image, read_elf
from rlbudget.envs import env_spec
from rlbudget.errors import RlbudgetError
from rlbudget.export.arm import firmware_cost, opt_flag
from rlbudget.export.c import export_c
from rlbudget.policy import MLP, Dense, Head, Policy
from rlbudget.profile import footprint as fp
from rlbudget.profile.verdict import profile

ARM = shutil.which("arm-none-eabi-gcc") is not None
MISSING = [m for m in ("unicorn", "capstone") if importlib.util.find_spec(m) is None]
needs_arm = pytest.mark.skipif(not ARM, reason="needs arm-none-eabi-gcc")
WIDEST = 24  # the layer inputs are 4, 24 and 12: rlb_x16 holds 2 B for each of 24
SCRATCH = 2 * WIDEST


def int8_policy() -> Policy:
    """A CartPole int8 net 4-24-12-2 (tanh), argmax head."""
    s = env_spec("CartPole-v1", measure_steps=0)
    rng = np.random.default_rng(3)
    sizes = [4, WIDEST, 12, 2]
    layers = tuple(Dense((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32),
                         (0.1 * rng.standard_normal(b)).astype(np.float32),
                         "tanh" if i < len(sizes) - 2 else "identity")
                   for i, (a, b) in enumerate(pairwise(sizes)))  # fmt: skip
    parent = Policy(s.observation, s.action, (), MLP(layers), Head("argmax"), {})
    return quantize_int8(parent, rng.uniform(-2, 2, (300, 4)).astype(np.float32))


def test_an_unknown_build_is_refused_in_one_line() -> None:
    with pytest.raises(RlbudgetError, match=r"^unknown optimization 'O3'; use one of O2, Os$"):
        opt_flag("O3")
    assert (opt_flag("O2"), opt_flag("Os")) == ("-O2", "-Os")


@needs_arm
def test_the_o2_m4f_link_holds_the_dsp_scratch_and_the_os_one_does_not(tmp_path: Path) -> None:
    policy = int8_policy()
    exported = export_c(policy, tmp_path / "c")
    io = 4 * (4 + 1)  # the caller's observation and action (int) buffers
    small = firmware_cost(tmp_path / "c", "cortex-m4f", "Os")
    fast = firmware_cost(tmp_path / "c", "cortex-m4f", "O2")
    assert small is not None and fast is not None
    assert small.data + small.bss == exported.ram_bytes + io
    assert fast.data + fast.bss == exported.ram_bytes + io + SCRATCH
    # the M0+ has no DSP extension: no scratch at -O2 either
    m0 = firmware_cost(tmp_path / "c", "cortex-m0plus", "O2")
    assert m0 is not None and m0.data + m0.bss == exported.ram_bytes + io


@needs_arm
@pytest.mark.parametrize("optimize", ["O2", "Os"])
def test_profile_ram_is_the_builds(optimize: str, tmp_path: Path) -> None:
    policy = int8_policy()
    f = fp.footprint(policy, "c", get_device("stm32f446"), optimize)
    statics = int(f.ram_how.split(".bss ")[1].split(" B")[0])
    stack = int(f.ram_how.split("stack ")[1].split(" B")[0])
    scratch = SCRATCH if optimize == "O2" else 0
    assert statics == export_c(policy, tmp_path / "c").ram_bytes + 4 * (4 + 1) + scratch
    assert f.ram_bytes == statics + stack
    assert f.build == f"arm-none-eabi-gcc -{optimize}"
    assert f"-{optimize}, linked for cortex-m4f" in f.flash_how
    assert f"gcc -fstack-usage -{optimize})" in f.ram_how


def test_the_estimate_adds_the_scratch_at_o2_on_the_m4f(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    policy, m4f, m0 = int8_policy(), get_device("stm32f446"), get_device("rp2040")
    fast, small = fp.footprint(policy, "c", m4f, "O2"), fp.footprint(policy, "c", m4f, "Os")
    assert fast.ram_source == small.ram_source == "estimated"
    assert fast.ram_bytes - small.ram_bytes == SCRATCH
    assert fast.flash_bytes == small.flash_bytes  # the code table is of -Os builds
    assert f"DSP input buffer {SCRATCH} B (exact, -O2)" in fast.ram_how
    assert fp.footprint(policy, "c", m0, "O2").ram_bytes == fp.footprint(
        policy, "c", m0, "Os").ram_bytes  # fmt: skip


BUDGET = """name: nrf
device: nrf52840
inference: {latency: 1s, energy: 1J}
margin: 0.25
"""


@needs_arm
@pytest.mark.skipif(bool(MISSING), reason=f"needs {MISSING} (pip install rlbudget[emulate])")
def test_profile_emulates_the_build_whose_memory_it_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLBUDGET_EMULATE", "1")
    monkeypatch.setattr("rlbudget.emulate.latency.PROFILE_OBSERVATIONS", 5)
    path = tmp_path / "nrf.yaml"
    path.write_text(BUDGET)
    budget, policy = load_budget(path), int8_policy()
    reports = {o: profile(policy, budget, episodes=1, calls=1000, optimize=o) for o in ("O2", "Os")}
    for o, report in reports.items():
        assert report.footprint.build == f"arm-none-eabi-gcc -{o}"
        assert f"emulated: policy.c -{o} for cortex-m4;" in report.target_latency_how
    fast, small = reports["O2"], reports["Os"]
    from rich.console import Console

    from rlbudget.render import render_profile

    console = Console(record=True, width=200)
    render_profile(console, fast, None)
    assert "C build: arm-none-eabi-gcc -O2 (its flash, RAM and emulated latency)" in (
        console.export_text())  # fmt: skip
    # the -O2 build is the DSP one: its RAM holds rlb_x16 (and a deeper stack), and it is
    # faster than the -Os build's portable loop
    assert fast.target_latency.typical < small.target_latency.typical
    assert fast.footprint.ram_bytes >= small.footprint.ram_bytes + SCRATCH
    # and the image the emulator ran at each level has the scratch exactly when the
    # footprint counted it
    exported = tmp_path / "c"
    export_c(policy, exported)
    for o, has in (("O2", True), ("Os", False)):
        (tmp_path / o).mkdir()
        elf = build_image(exported, "cortex-m4", tmp_path / o, o)
        assert ("rlb_x16" in read_elf(elf).symbols) == has


@needs_arm
def test_cli_profile_names_the_build(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rlbudget.cli import app
    from rlbudget.policy import save_policy

    path = tmp_path / "nrf.yaml"
    path.write_text(BUDGET)
    folder = save_policy(int8_policy(), tmp_path / "p")
    args = ["profile", str(folder), "--budget", str(path), "--episodes", "1", "--calls", "1000"]
    result = CliRunner().invoke(app, [*args, "--optimize", "Os"])
    # RLBUDGET_EMULATE=0 here: the latency is the model's, not the build's
    assert "C build: arm-none-eabi-gcc -Os (its flash, RAM)" in result.output
    bad = CliRunner().invoke(app, [*args, "--optimize", "O3"])
    assert bad.exit_code == 2 and "'O3' is not one of" in bad.output


def test_an_os_build_is_not_priced_by_the_o2_fit(tmp_path: Path) -> None:
    """plan's model is fitted to -O2 emulation; at -Os an int8 MLP loses the DSP path
    (2.3-3.3x slower), so without the emulator the latency and energy are NOT CHECKED
    rather than passed on the -O2 figure. -O2 keeps the fitted estimate."""
    path = tmp_path / "nrf.yaml"
    path.write_text(BUDGET)  # RLBUDGET_EMULATE=0 here (conftest): the estimate path
    budget, policy = load_budget(path), int8_policy()
    small = profile(policy, budget, episodes=1, calls=1000, optimize="Os")
    checks = {c.limit: c for c in small.checks}
    for limit in ("inference.latency", "inference.energy"):
        assert checks[limit].status == "NOT CHECKED" and checks[limit].figure is None
        assert checks[limit].how.startswith("not checked: plan's model is fitted to -O2 "
                                            "emulation and a -Os build is slower")  # fmt: skip
    fast = {c.limit: c for c in profile(policy, budget, episodes=1, calls=1000).checks}
    assert fast["inference.latency"].status == "PASS"
    assert "fitted to emulation" in fast["inference.latency"].how


def test_tflite_latency_on_a_microcontroller_is_not_checked(tmp_path: Path) -> None:
    """The cost model is of the C export: TFLite Micro's interpreter is not in it."""
    pytest.importorskip("tflite_micro", reason="needs tflite-micro")
    from rlbudget.compress.quantize import tflite_rounding

    path = tmp_path / "nrf.yaml"
    path.write_text(BUDGET)
    report = profile(tflite_rounding(int8_policy()), load_budget(path), episodes=1,
                     calls=1000, fmt="tflite")  # fmt: skip
    latency = next(c for c in report.checks if c.limit == "inference.latency")
    assert latency.status == "NOT CHECKED"
    assert latency.how.startswith("not checked: TFLite Micro's interpreter and kernels")


def test_memory_and_latency_are_one_build_only_where_the_core_is_built() -> None:
    """The M0+/M4F footprints are the builds the emulator runs (the M7 runs the M4F
    build, its cycles scaled); an M3 or M33 is emulated on its own core while its
    footprint is a stand-in's, so the output must not call them one build."""
    from rlbudget.profile.verdict import same_build

    assert same_build(get_device("rp2040"), "cortex-m0plus")
    assert same_build(get_device("nrf52840"), "cortex-m4f")
    assert same_build(get_device("teensy-4"), "cortex-m4f")
    assert not same_build(get_device("stm32f103"), "cortex-m0plus")
    assert not same_build(get_device("rp2350"), "cortex-m4f")
