"""What learning on the device adds (budget ``inference.learn: true``): the learner's
state in RAM, and the update's latency and energy per step.

- RAM: the learner's state struct (header, the values, the traces of a tile-coded
  Sarsa(λ)), exact (:func:`~rlbudget.export.learn.learner_size`); the shipped values stay
  in flash for ``rlb_policy_reset``, so flash is the frozen export's.
- Update latency: **emulated** where the device's core is (Cortex-M, with
  ``arm-none-eabi-gcc`` and unicorn: :func:`~rlbudget.emulate.learn.emulate_update`, every
  step checked against numpy), else **estimated** from the cycles per update measured that
  way (``rlbudget/data/cycles/learner.yaml``: a fixed part plus a part per value for the
  traces' sweep), else not checked. The number format is the device's
  (:func:`~rlbudget.export.learn.learner_dtype`: float32 with an FPU, else Q16.16).

Each step the device decides and learns, so latency and energy are checked as the decision
plus the update.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

import numpy as np
import yaml

from rlbudget.agents.learner import HEADER_WORDS, learn_params, shipped_values
from rlbudget.costs import Inference, estimate_energy
from rlbudget.devices import Device, Range
from rlbudget.export.learn import LearnerSize, learner_dtype, learner_size
from rlbudget.fitted import core_key
from rlbudget.policy.model import Policy


@dataclass(frozen=True)
class LearnerCost:
    """The learner's RAM and one update's seconds on the device (None: not modelled)."""

    size: LearnerSize
    dtype: str
    update_s: float | None
    source: str  # emulated or estimated
    how: str

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size.to_dict(), "dtype": self.dtype, "update_s": self.update_s,
                "source": self.source, "how": self.how}  # fmt: skip


@functools.cache
def update_cycles() -> dict[str, Any]:
    """``rlbudget/data/cycles/learner.yaml``."""
    text = (resources.files("rlbudget") / "data" / "cycles" / "learner.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def update_estimate(kind: str, values: int, discrete_obs: bool, device: Device,
                    dtype: str) -> tuple[float | None, str]:  # fmt: skip
    """One update's seconds from ``learner.yaml`` (None where the core has no entry):
    ``kind`` ``table`` or ``tiles``, ``values`` the table's or weights' count."""
    key = core_key(device)
    cores = update_cycles()["cores"]
    entry = cores.get("cortex-m4" if key == "cortex-m4f" else key or "", {}).get(dtype)
    if entry is None:
        return None, (f"{device.core}: no measured update cost ({', '.join(cores)} have one); "
                      "not checked")  # fmt: skip
    row = "table-discrete" if kind == "table" and discrete_obs else kind
    cycles = entry[row]["fixed"] + entry[row]["per_value"] * (values if kind == "tiles" else 0)
    return cycles / device.clock_hz, (
        f"estimated: {cycles:,.0f} cycles of one {kind} update in {dtype} on {key} "
        f"(data/cycles/learner.yaml) at {device.clock_hz / 1e6:g} MHz"
    )


def estimate_update(policy: Policy, device: Device, dtype: str) -> tuple[float | None, str]:
    """:func:`update_estimate` for ``policy``'s learner."""
    kind, values = shipped_values(policy)
    return update_estimate(kind, values.size, not policy.preprocess, device, dtype)


LEARNERS = {"q-learning": "table", "sarsa": "table", "sarsa-lambda": "tiles"}
"""The algorithms with an exported learner, and what it learns."""


def planned_learner(target: Inference, algorithm: str, parameters: int, discrete_obs: bool,
                    device: Device) -> tuple[Inference, str]:  # fmt: skip
    """For ``plan`` under ``inference.learn``: ``target`` (one decision's cost model) plus
    the learner's state in RAM and one update in latency and energy, and a note."""
    kind = LEARNERS.get(algorithm)
    if kind is None:
        return target, (f"[on-device-learning] {algorithm} has no exported learner (export "
                        f"--learn runs {', '.join(LEARNERS)}): this option cannot keep "
                        "learning on the device as inference.learn asks")  # fmt: skip
    dtype = learner_dtype(device.fpu)
    traces = parameters if kind == "tiles" else 0
    ram = 4 * (HEADER_WORDS + parameters + traces)
    seconds, how = update_estimate(kind, parameters, discrete_obs, device, dtype)
    latency = target.latency_s
    if seconds is not None:
        latency = Range(latency.low + seconds, latency.typical + seconds, latency.high + seconds)
    note = (f"[on-device-learning] {algorithm} keeps learning ({dtype}): + {ram:,} B of "
            f"learner state in RAM; each step also updates, {how}")  # fmt: skip
    return replace(target, ram_bytes=target.ram_bytes + ram, latency_s=latency,
                   energy_j=estimate_energy(device, latency)), note  # fmt: skip


def learner_cost(policy: Policy, device: Device, observations: Any, *,
                 emulate: bool = True, seed: int = 0) -> LearnerCost:  # fmt: skip
    """The learner of ``policy`` on ``device``: RAM, and one update's seconds.

    :param observations: observations the device sees (visited states): the emulated steps
        walk through them (at most 40 steps, rewards ±1, an episode end in 20).
    :raises PolicyError: the policy cannot learn on the device, or its provenance has no
        learner hyperparameters.
    """
    import os

    from rlbudget.emulate.latency import ENV_SWITCH, unavailable

    emulate = emulate and os.environ.get(ENV_SWITCH, "1") != "0"
    size = learner_size(policy)
    params = learn_params(policy)
    dtype = learner_dtype(device.fpu)
    why = unavailable(device)
    if emulate and why is None:
        from rlbudget.emulate.learn import emulate_update

        obs = np.asarray(observations, dtype=np.float32)[:41]
        rng = np.random.default_rng(seed)
        n = len(obs) - 1
        rewards = rng.choice([-1.0, 1.0], n)
        dones = rng.random(n) < 0.05
        e = emulate_update(policy, params, dtype, device, obs, rewards, dones)
        return LearnerCost(size, dtype, e.latency_s, "emulated", e.how)
    seconds, how = estimate_update(policy, device, dtype)
    return LearnerCost(size, dtype, seconds, "estimated", how)
