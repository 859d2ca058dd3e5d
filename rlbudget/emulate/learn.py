"""Emulated cost of one on-device learning step (``export --format c --learn``) on a
Cortex-M device: cycles, seconds at the device's clock, joules at its active power.

The learner's C export is linked with a start-up file that calls one step,
``rlb_learn_step()``: ``rlb_policy_learn`` on arguments written into RAM by the host (so
that any ABI passes them the same way; the wrapper adds a call and five loads to the
count, which the figure includes). Each step's state (``rlb_policy_state``) is compared
with the numpy :class:`~rlbudget.agents.learner.Learner` fed the same step: a mismatch is
an error, not a figure. The cores and their cycle tables are :mod:`rlbudget.emulate.latency`'s.
"""

from __future__ import annotations

import struct
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlbudget.agents.learner import Learner, LearnParams
from rlbudget.devices import Device
from rlbudget.emulate.image import link
from rlbudget.emulate.latency import emulated_core, unavailable
from rlbudget.emulate.machine import Machine
from rlbudget.errors import RlbudgetError
from rlbudget.export.arm import DEFAULT_OPTIMIZE
from rlbudget.export.learn import export_learner
from rlbudget.policy.model import Policy

STARTUP = """#include "learn.h"
extern unsigned int _sidata, _sdata, _edata, _sbss, _ebss, _estack;
float rlb_obs[RLB_OBS_DIM];
float rlb_next_obs[RLB_OBS_DIM];
float rlb_reward;
int rlb_action_in;
int rlb_done;
volatile int rlb_result;
void rlb_reset(void);
__attribute__((section(".vectors"), used)) static void *const rlb_vectors[2] = {
    &_estack, (void *)rlb_reset};
__attribute__((used, noinline)) void rlb_learn_step(void)
{
    rlb_result = rlb_policy_learn(rlb_obs, rlb_action_in, rlb_reward, rlb_next_obs, rlb_done);
}
void rlb_reset(void)
{
    unsigned int *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) { *dst++ = *src++; }
    for (dst = &_sbss; dst < &_ebss;) { *dst++ = 0; }
    for (;;) { rlb_learn_step(); }
}
"""


@dataclass(frozen=True)
class EmulatedUpdate:
    """Cycles of one learning step over ``steps`` emulated steps (every one checked
    bit for bit against numpy), and what the worst costs on the device."""

    device: str
    core: str  # the emulated build
    dtype: str
    steps: int
    cycles_mean: float
    cycles_max: int
    latency_s: float  # the worst step at the device's clock
    energy_j: float  # the worst step at the device's active power
    how: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def emulate_update(policy: Policy, params: LearnParams, dtype: str, device: Device,
                   observations: Any, rewards: Any, dones: Any, *,
                   optimize: str = DEFAULT_OPTIMIZE) -> EmulatedUpdate:  # fmt: skip
    """Emulate ``len(rewards)`` learning steps (at least 2) of ``policy``'s learner on
    ``device``: step ``t`` learns from ``observations[t] → observations[t + 1]`` with
    ``rewards[t]`` and ``dones[t]``, the action being the one the previous step returned.
    Every step's state is checked; the cycles are of steps 1.. (step 0 also copies the
    shipped values into RAM, once after power-up or a reset).

    :raises RlbudgetError: the device's core has no emulated model, the toolchain or
        unicorn is missing (:func:`~rlbudget.emulate.latency.unavailable`), or the emulated
        state differs from numpy's.
    """
    why = unavailable(device)
    emulated = emulated_core(device)
    if why is not None or emulated is None:
        raise RlbudgetError(f"cannot emulate the learner on {device.id}: {why}")
    core, factor = emulated
    obs = np.asarray(observations, dtype=np.float32).reshape(len(observations), -1)
    ref = Learner(policy, params, dtype)
    with tempfile.TemporaryDirectory(prefix="rlbudget-learn-") as tmp:
        folder = Path(tmp)
        export_learner(policy, folder / "c", params, dtype)
        (folder / "startup.c").write_text(STARTUP)
        elf = link(core, [folder / "startup.c", folder / "c" / "policy.c"],
                   folder / "learn.elf", include=folder / "c", optimize=optimize)  # fmt: skip
        m = Machine(elf, core)
        address = m.symbol("rlb_l")  # the state struct (rlb_policy_state's bytes)
        size = len(ref.dump())
        at = {name: m.symbol(name) for name in ("rlb_obs", "rlb_next_obs", "rlb_reward",
                                                 "rlb_action_in", "rlb_done")}  # fmt: skip
        cycles: list[int] = []
        a = ref.act(obs[0])  # greedy: no draw, so both RNGs start alike
        for t in range(len(rewards)):
            m.write(at["rlb_obs"], obs[t].tobytes())
            m.write(at["rlb_next_obs"], obs[t + 1].tobytes())
            m.write(at["rlb_reward"], struct.pack("<f", float(rewards[t])))
            m.write(at["rlb_action_in"], struct.pack("<i", a))
            m.write(at["rlb_done"], struct.pack("<i", int(bool(dones[t]))))
            _, stats = m.call("rlb_learn_step")
            assert stats is not None
            if t > 0:  # step 0 also copies the shipped values (the lazy reset): once
                cycles.append(stats.cycles)
            a = ref.learn(obs[t], a, float(rewards[t]), obs[t + 1], bool(dones[t]))
            if m.read(address, size) != ref.dump():
                raise RlbudgetError(f"the emulated learner's state differs from numpy's after "
                                    f"step {t} on {core}; report this as a bug")  # fmt: skip
    if not cycles:
        raise RlbudgetError("emulate_update: give at least 2 steps")
    worst = max(cycles) * factor
    seconds = worst / device.clock_hz
    how = (f"emulated: {len(cycles)} steps of rlb_policy_learn on {core} (unicorn, "
           f"{optimize}), worst step at {device.clock_hz / 1e6:g} MHz")  # fmt: skip
    return EmulatedUpdate(device.id, core, dtype, len(cycles), float(np.mean(cycles)) * factor,
                          int(worst), seconds, seconds * device.active_power_w, how)  # fmt: skip
