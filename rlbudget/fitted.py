"""Cycles per decision fitted to emulation, for the cores that can be emulated (issue 16).

``plan`` (:func:`rlbudget.costs.inference`) and ``profile``'s estimate
(:func:`rlbudget.profile.latency.estimate_target`) price a body on Cortex-M0+, M3, M4F, M7,
M33 and AVR with this model where ``rlbudget/data/cycles/fitted.yaml`` has coefficients for its
core and kind; every other core, and every body kind the file lacks, keeps the per-MAC
model of :mod:`rlbudget.costs`.

The model is linear in a few counts of what the C export executes, one coefficient set
per core and per *model* (body kind and arithmetic)::

    mlp-fp32, mlp-int8      cycles = c·1 + c·layers + c·MACs + c·units + c·tanh
    linear-fp32/int16/int8  cycles = c·1 + c·inputs + c·MACs   (normalized observation)
    table-q                 cycles = c·1 + c·box + c·box_dims + c·actions
    table-packed            cycles = c·1 + c·box + c·box_dims   (one entry read)
    tile-fp32/int16/int8    cycles = c·1 + c·dims + c·tilings×dims + c·tilings×actions

``units`` counts every layer's outputs (bias, requantization, activation store), ``tanh``
the tanh/sigmoid units (hidden layers and a ``tanh_rescale`` head), ``inputs`` the
normalized observation's values. ``box`` is 1 where a discretizer runs (a Box
observation; 0 for a Discrete state), ``box_dims`` its dimensions. ``dims`` are the tile
coder's dimensions (scaled once per decision); hashing into a power-of-two table costs a
mask and is not a term. The coefficients are data: ``python benchmarks/latency_fidelity.py
--fit`` emulates a fixed grid of bodies, fits them on one half by least squares on the
relative error (non-negative) and reports the other half; the file records the date, the
toolchain, the emulator and the split. A typical value is ``cycles / clock``; the range is
``typical × [low, high]`` with the core's factors from the same file (they cover every
emulated cell of the grid, fit and holdout, with a margin).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from itertools import pairwise
from typing import Any

import yaml

from rlbudget.devices import Device, Range
from rlbudget.errors import RlbudgetError

FEATURES: dict[str, tuple[str, ...]] = {
    "mlp": ("one", "layers", "macs", "units", "tanh"),
    "linear": ("one", "inputs", "macs"),
    "table-q": ("one", "box", "box_dims", "actions"),
    "table-packed": ("one", "box", "box_dims"),
    "tile": ("one", "dims", "tiling_dims", "tiling_actions"),
}
"""The counts each model's cycles are linear in (the module docstring), by model name or,
failing that, by body kind (the name's first part)."""


def features(model: str) -> tuple[str, ...]:
    """The counts ``model`` (e.g. ``mlp-int8``, ``table-packed``) is linear in."""
    return FEATURES.get(model) or FEATURES[model.split("-")[0]]


@dataclass(frozen=True)
class Shape:
    """What the fitted model reads of a body: its model name and counts."""

    model: str  # mlp-fp32, mlp-int8, linear-*, table-q, table-packed, tile-fp32/int16/int8
    counts: Mapping[str, float]


def mlp_shape(widths: list[int], tanh: int, dtype: str) -> Shape:
    """A dense MLP of these widths (input first), ``tanh`` tanh/sigmoid units."""
    macs = sum(a * b for a, b in pairwise(widths))
    return Shape(f"mlp-{dtype}", {"one": 1, "layers": len(widths) - 1, "macs": macs,
                                  "units": sum(widths[1:]), "tanh": tanh})  # fmt: skip


def linear_shape(inputs: int, outputs: int, dtype: str) -> Shape:
    """A linear policy on the normalized observation (ARS): ``inputs`` → ``outputs``."""
    return Shape(f"linear-{dtype}", {"one": 1, "inputs": inputs, "macs": inputs * outputs})


def table_shape(box_dims: int, actions: int, packed: bool) -> Shape:
    """A table lookup after discretizing ``box_dims`` dimensions (0: a Discrete state)."""
    model = "table-packed" if packed else "table-q"
    return Shape(model, {"one": 1, "box": int(box_dims > 0), "box_dims": box_dims,
                         "actions": actions})  # fmt: skip


def tile_shape(tilings: int, dims: int, actions: int, dtype: str) -> Shape:
    """A tile-coded linear body: ``tilings`` over ``dims`` dimensions, ``actions`` outputs."""
    return Shape(f"tile-{dtype}", {"one": 1, "dims": dims, "tiling_dims": tilings * dims,
                                   "tiling_actions": tilings * actions})  # fmt: skip


def core_key(device: Device) -> str | None:
    """The fitted core for ``device``: the emulated builds' names, or None."""
    core = device.core
    if core.startswith("Cortex-M0+"):
        return "cortex-m0plus"
    if core.startswith("Cortex-M33"):  # before "Cortex-M3"
        return "cortex-m33" if device.fpu else "cortex-m33-nofp"
    if core.startswith("Cortex-M3"):
        return "cortex-m3"
    if core.startswith("Cortex-M4") and device.fpu:
        return "cortex-m4f"
    if core.startswith("Cortex-M7"):
        return "cortex-m7"
    if core.startswith("AVR"):
        return "avr"
    return None


@functools.cache
def load_fitted() -> dict[str, Any]:
    """``rlbudget/data/cycles/fitted.yaml`` (empty cores when the file is absent)."""
    path = resources.files("rlbudget") / "data" / "cycles" / "fitted.yaml"
    try:
        data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"cores": {}}
    if not isinstance(data, dict) or not isinstance(data.get("cores"), dict):
        raise RlbudgetError("rlbudget/data/cycles/fitted.yaml: no 'cores' mapping; rerun "
                            "python benchmarks/latency_fidelity.py --fit")  # fmt: skip
    return data


@dataclass(frozen=True)
class Fitted:
    """A fitted estimate: cycles, seconds (low/typical/high) and how, in words."""

    cycles: float
    latency_s: Range
    how: str


def cycles_of(coefficients: Mapping[str, float], shape: Shape) -> float:
    """Σ coefficient × count over the model's counts."""
    return sum(float(coefficients.get(k, 0.0)) * float(shape.counts.get(k, 0.0))
               for k in features(shape.model))  # fmt: skip


def fitted_latency(device: Device, shape: Shape | None) -> Fitted | None:
    """The fitted latency of ``shape`` on ``device``, or None where the file has no
    coefficients for that core and model (the caller keeps the per-MAC model)."""
    key = core_key(device)
    if shape is None or key is None:
        return None
    core = load_fitted()["cores"].get(key)
    if not core or shape.model not in core.get("models", {}):
        return None
    cycles = cycles_of(core["models"][shape.model], shape)
    low, high = (float(f) for f in core["range"])
    typical = cycles / device.clock_hz
    how = (
        f"fitted to emulation ({key} {shape.model}, data/cycles/fitted.yaml): "
        f"{cycles:,.0f} cycles at {device.clock_hz / 1e6:g} MHz; range ×{low:g}–×{high:g}"
    )
    return Fitted(cycles, Range(typical * low, typical, typical * high), how)


def latency_model(device: Device) -> dict[str, Any]:
    """Which latency model ``plan`` (and ``profile``'s estimate) uses on ``device``.

    ``kind`` is ``fitted`` where ``fitted.yaml`` has the device's core (``core``: its key),
    else ``per-mac`` (``devices.yaml``'s MACs/cycle and overheads). The MACs/cycle given
    are what the model charges per MAC: on a fitted core the inverse of the MLP models'
    MAC coefficient, per-layer and per-unit cycles not included; elsewhere the device's own
    figures. On a fitted core ``devices.yaml``'s figures serve only the bodies the file has
    no model for (float16 MLPs, sparse tables)."""
    key = core_key(device)
    core = load_fitted()["cores"].get(key) if key else None
    if not core:
        return {"kind": "per-mac", "core": None,
                "int8_macs_per_cycle": device.int8_macs_per_cycle,
                "fp32_macs_per_cycle": device.fp32_macs_per_cycle}  # fmt: skip
    models = core.get("models", {})

    def per_cycle(model: str, fallback: float) -> float:
        macs = float(models.get(model, {}).get("macs", 0.0))
        return 1.0 / macs if macs > 0 else fallback

    return {"kind": "fitted", "core": key,
            "int8_macs_per_cycle": per_cycle("mlp-int8", device.int8_macs_per_cycle),
            "fp32_macs_per_cycle": per_cycle("mlp-fp32", device.fp32_macs_per_cycle),
            "range": [float(f) for f in core["range"]]}  # fmt: skip


def device_entry(device: Device) -> dict[str, Any]:
    """``device.to_dict()`` with its ``latency_model`` (``rlbudget devices --json``)."""
    return {**device.to_dict(), "latency_model": latency_model(device)}
