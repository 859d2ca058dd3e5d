"""Emulated decision latency of a policy's C export on a Cortex-M device.

:func:`emulate_policy` exports the policy as C, links it into a bare-metal image for the
device's core (:mod:`~rlbudget.emulate.image`), runs ``rlb_policy_act`` on each observation
in unicorn (:mod:`~rlbudget.emulate.machine`), checks every emulated action against
numpy's :meth:`Policy.act` (a mismatch is an error, not a figure), and turns the counted
cycles into seconds at the device's clock and joules at its active power.

Cores: Cortex-M0+ (the M0+ table, unicorn's M0 model), Cortex-M3 (the M3 table, software
float), Cortex-M4F (the M4 table and FPU), Cortex-M7 (the M4F build's count × the
documented dual-issue factor in ``data/cycles/cortex-m7.yaml``), Cortex-M33 (built for the
M33 and run on unicorn's M33 model, counted with the M4 table: ``cortex-m33.yaml`` says
why). Other cores are not emulated: :func:`unavailable` says why, as it does when the
toolchain, unicorn or capstone is missing.

Flash wait states (``data/cycles/flash.yaml``): where a device fetches through a cache,
accelerator or TCM, the figure is at zero wait states and ``miss_bound_cycles`` is what it
would add if every taken branch missed; where it has none (``hidden: false``: the
STM32F103's prefetch buffer only streams sequential code), every taken branch and every data
read from flash (the ``const`` weights, literal pools) pays the wait states in the figure.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlbudget.devices import Device, Range
from rlbudget.emulate.image import TOOLCHAIN_HINT, build_image, compiler
from rlbudget.emulate.machine import Machine
from rlbudget.emulate.timing import load_table
from rlbudget.errors import RlbudgetError
from rlbudget.export.arm import DEFAULT_OPTIMIZE, opt_flag
from rlbudget.fitted import core_key
from rlbudget.policy.model import Policy

INSTALL_HINT = 'pip install "rlbudget[emulate]"'
MAX_INSTRUCTIONS = 50_000_000
"""Instructions one emulated decision may take: ≈ 0.3 s at 168 MHz, far beyond any budget."""
COUNT_INSTRUCTIONS = 4_000_000
"""Cycle counting costs a Python call per basic block (≈ 10 s per 4 M instructions here):
decisions are counted until this many instructions have been, then the remaining
observations run at native speed for the numpy check alone (every one is checked)."""


def emulated_core(device: Device) -> tuple[str, float] | None:
    """The emulated build and the factor on its cycle count for ``device``'s core, or None
    (the core names are :func:`rlbudget.fitted.core_key`'s: one mapping of device cores)."""
    key = core_key(device)
    if key is None or key == "avr":  # the AVR runs in simavr (rlbudget.emulate.avr)
        return None
    if key == "cortex-m4f":
        return "cortex-m4", 1.0
    if key == "cortex-m7":  # the M4F build, its count × the dual-issue factor (YAML)
        return "cortex-m4", float(load_table("cortex-m7")["factor"])
    return key, 1.0


def unavailable(device: Device) -> str | None:
    """Why ``device`` cannot be emulated here (one line), or None when it can."""
    if emulated_core(device) is None:
        return (f"{device.id}'s core ({device.core}) has no emulated model (Cortex-M0+, "
                "M3, M4F, M7 and M33 have)")  # fmt: skip
    if compiler() is None:
        return TOOLCHAIN_HINT
    missing = [m for m in ("unicorn", "capstone") if importlib.util.find_spec(m) is None]
    if missing:
        return f"{' and '.join(missing)} not installed ({INSTALL_HINT})"
    return None


@dataclass(frozen=True)
class EmulatedLatency:
    """Cycles and seconds of one decision on ``device``, over ``observations`` (cycles
    counted on the first ``counted``); ``miss_bound_cycles``: what flash wait states would
    add if every taken branch missed the cache (0 where they are already counted)."""

    device: str
    core: str
    observations: int
    counted: int
    cycles_min: int
    cycles_mean: float
    cycles_max: int
    seconds_min: float
    seconds_mean: float
    seconds_max: float
    active_power_w: float
    miss_bound_cycles: float
    how: str
    unclassified: dict[str, int] = field(default_factory=dict)

    @property
    def energy_j(self) -> float:
        """Joules per decision: the mean latency at the device's active power."""
        return self.seconds_mean * self.active_power_w

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "energy_j": self.energy_j}


AGREEMENT = "equal to numpy's (a continuous action within 1e-5)"
"""What :func:`same_action` checks, in the words of a profile's ``how``."""


def same_action(policy: Policy, obs: Any, got: Any) -> tuple[bool, Any]:
    """Whether the emulated action ``got`` is numpy's on ``obs`` (a discrete action equal, a
    continuous one within 1e-5: libm's tanh and float rounding may differ in the last
    bits), and numpy's action."""
    want = policy.act(obs)
    if policy.action_space.kind == "discrete":
        return int(got) == int(want), want
    want = np.asarray(want, dtype=np.float32)
    return bool(np.allclose(got, want, rtol=1e-5, atol=1e-5)), want


def _check_action(policy: Policy, obs: Any, got: Any, i: int) -> None:
    same, want = same_action(policy, obs, got)
    if not same:
        raise RlbudgetError(f"the emulated C policy chose {got!r} on observation {i}, numpy "
                            f"chose {want!r}: the export and the policy disagree")  # fmt: skip


def _machine(policy: Policy, core: str, exported: Path | None, max_instructions: int,
             count_flash_reads: bool, optimize: str) -> Machine:  # fmt: skip
    """The emulator with ``policy``'s image (at ``-{optimize}``) loaded: built from the C
    export in ``exported`` (``policy.c``, ``policy.h``), or from a fresh export when None."""
    from rlbudget.export.c import export_c

    with tempfile.TemporaryDirectory(prefix="rlbudget-emu-") as tmp:
        if exported is None:
            exported = Path(tmp) / "c"
            export_c(policy, exported)
        return Machine(build_image(exported, core, Path(tmp), optimize), core,
                       max_instructions=max_instructions,
                       count_flash_reads=count_flash_reads)  # fmt: skip


def emulate_policy(policy: Policy, device: Device, observations: Any, *,
                   exported: Path | None = None, max_instructions: int = MAX_INSTRUCTIONS,
                   count_instructions: int = COUNT_INSTRUCTIONS,
                   optimize: str = DEFAULT_OPTIMIZE) -> EmulatedLatency:  # fmt: skip
    """Emulate one decision per observation on ``device`` (module docstring); cycles are
    counted on the first observations, up to ``count_instructions`` in all (at least one).
    The image is built with ``-{optimize}`` (``O2`` or ``Os``).

    :param exported: a folder that already holds ``policy``'s C export (``profile`` passes
        the one it measured and compiled for the host); None exports it here.
    :raises RlbudgetError: the device cannot be emulated here (:func:`unavailable`'s
        reason), the export does not link, a call exceeds ``max_instructions``, or an
        emulated action differs from numpy's.
    """
    reason = unavailable(device)
    if reason is not None:
        raise RlbudgetError(f"cannot emulate {device.id}: {reason}")
    core, factor = emulated_core(device) or ("", 1.0)
    obs_all = np.asarray(observations)
    if len(obs_all) == 0:
        raise RlbudgetError("emulation needs at least one observation")
    flash = load_table("flash").get(device.id, {"wait_states": 0, "source": "not listed"})
    ws = int(flash["wait_states"])
    hidden = bool(flash.get("hidden", True))  # False: no cache, taken branches and reads wait
    machine = _machine(policy, core, exported, max_instructions, not hidden and ws > 0,
                       optimize)  # fmt: skip
    obs_at, act_at = machine.symbol("rlb_obs"), machine.symbol("rlb_action")
    discrete = policy.action_space.kind == "discrete"
    dim = max(policy.action_space.dim, 1)
    buffer = np.zeros(policy.observation_space.dim, dtype=np.float32)
    view = buffer.reshape(policy.observation_space.shape or (1,))
    cycles: list[float] = []
    counted = 0  # instructions counted so far
    taken: list[int] = []
    for i, obs in enumerate(obs_all):
        view[...] = obs
        machine.write(obs_at, buffer.tobytes())
        counting = counted < count_instructions
        r0, stats = machine.call("rlb_policy_act", obs_at, act_at, count=counting)
        got: Any = (r0 - (1 << 32) if r0 >= 1 << 31 else r0) if discrete else np.frombuffer(
            machine.read(act_at, 4 * dim), dtype=np.float32).copy()  # fmt: skip
        _check_action(policy, obs, got, i)
        if stats is None:
            continue
        waits = 0 if hidden else ws * (stats.taken_branches + stats.flash_reads)
        cycles.append(stats.cycles * factor + waits)
        counted += stats.instructions
        taken.append(stats.taken_branches)
    c = np.asarray(cycles)
    clock = device.clock_hz
    label = core if factor == 1.0 else (
        f"{core} × {factor:g} ({device.core} dual issue, CoreMark/MHz ratio)")  # fmt: skip
    flash_how = (f"flash {ws} wait state(s) at {clock / 1e6:g} MHz hidden by the cache" if hidden
                 else f"flash {ws} wait state(s) at {clock / 1e6:g} MHz counted on every taken "
                 "branch and every data read from flash (no cache)")  # fmt: skip
    how = (f"emulated: policy.c {opt_flag(optimize)} for {label}; every action on {len(obs_all)} "
           f"observations {AGREEMENT}, cycles counted on {len(c)}; cycles from "
           f"{machine.table.source}; {flash_how} ({flash['source']})")  # fmt: skip
    if machine.table.unclassified:
        how += (f"; {len(machine.table.unclassified)} instruction kind(s) not in the table, "
                "counted 1 cycle each")  # fmt: skip
    return EmulatedLatency(
        device.id, label, len(obs_all), len(c), round(c.min()), float(c.mean()), round(c.max()),
        float(c.min()) / clock, float(c.mean()) / clock, float(c.max()) / clock,
        device.active_power_w, float(np.mean(taken)) * ws if hidden else 0.0, how,
        dict(machine.table.unclassified),
    )  # fmt: skip


PROFILE_OBSERVATIONS = 200
ENV_SWITCH = "RLBUDGET_EMULATE"
"""``RLBUDGET_EMULATE=0`` keeps ``profile`` on the estimate even where emulation is possible
(quiet: no note); the test suite sets it for every test but the emulator's own."""


def profile_latency(policy: Policy, device: Device, observations: Any, *,
                    exported: Path | None = None, optimize: str = DEFAULT_OPTIMIZE
                    ) -> tuple[Range | None, str]:  # fmt: skip
    """For ``profile``: the emulated latency range (min, mean, max seconds) and how it was
    obtained, on the first :data:`PROFILE_OBSERVATIONS` observations; or None and the one
    line saying why not (empty when switched off with ``RLBUDGET_EMULATE=0``, or for a core
    with no emulated model, whose estimate is the only figure there is). ``exported``: the
    folder of the policy's C export, when the caller has one (:func:`emulate_policy`);
    ``optimize``: the build (``O2``, ``Os``), the one whose footprint ``profile`` reports.

    :raises RlbudgetError: an emulated action differs from numpy's, or a decision exceeds
        the instruction cap (errors, not a fallback).
    """
    if os.environ.get(ENV_SWITCH, "1") == "0" or emulated_core(device) is None:
        return None, ""  # switched off, or a core with no model (ESP32, AVR): quiet
    reason = unavailable(device)
    if reason is not None:
        return None, f"latency and energy estimated, not emulated: {reason}"
    e = emulate_policy(policy, device, np.asarray(observations)[:PROFILE_OBSERVATIONS],
                       exported=exported, max_instructions=MAX_INSTRUCTIONS,
                       optimize=optimize)  # fmt: skip
    how = (f"{e.cycles_min:,} / {e.cycles_mean:,.0f} / {e.cycles_max:,} cycles (min/mean/max) "
           f"at {device.clock_hz / 1e6:g} MHz; {e.how}")  # fmt: skip
    return Range(e.seconds_min, e.seconds_mean, e.seconds_max), how
