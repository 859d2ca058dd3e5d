"""Devices: the named-device database and inline devices.

The data lives in ``rlbudget/data/devices.yaml``, with a source for every figure. What a
policy costs on a device (latency, energy) is the cost model's: :mod:`rlbudget.costs`.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

import yaml

from rlbudget import units
from rlbudget.errors import DeviceError

DEVICE_CLASSES: tuple[str, ...] = ("mcu", "mcu-accel", "mpu", "gpu", "host")
INLINE_EXAMPLE = (
    "device: {class: mcu, clock: 240MHz, sram: 520KiB, flash: 4MiB, fpu: true, power: 240mW}"
)


@dataclass(frozen=True)
class Range:
    """An estimate as low / typical / high, in SI units."""

    low: float
    typical: float
    high: float

    def __mul__(self, k: float) -> Range:
        return Range(self.low * k, self.typical * k, self.high * k)

    def to_dict(self) -> dict[str, float]:
        return {"low": self.low, "typical": self.typical, "high": self.high}


@dataclass(frozen=True)
class Device:
    """A target device, all figures SI. ``sources`` maps each figure to where it came from."""

    id: str
    name: str
    device_class: str
    core: str
    clock_hz: float
    sram_bytes: int
    flash_bytes: int
    fpu: bool
    dsp: bool
    simd: str | None
    int8_macs_per_cycle: float
    fp32_macs_per_cycle: float
    layer_overhead_s: float
    invoke_overhead_s: float
    active_power_w: float
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    inline: bool = False
    word_bits: int = 32

    def macs_per_second(self, dtype: str) -> float:
        """Dense-layer throughput for ``dtype`` (int8, int16, fp16, fp32)."""
        if dtype in ("int8", "uint8"):
            per_cycle = self.int8_macs_per_cycle
        elif dtype == "int16":
            per_cycle = self.int8_macs_per_cycle / 2  # half the SIMD lanes (estimate)
        elif dtype in ("fp32", "fp16"):
            per_cycle = self.fp32_macs_per_cycle  # fp16 storage, fp32 compute on these cores
        else:
            raise DeviceError(f"unknown dtype '{dtype}'; use int8, int16, fp16 or fp32")
        return self.clock_hz * per_cycle

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: SI numbers and the sources."""
        return {
            "id": self.id,
            "name": self.name,
            "class": self.device_class,
            "core": self.core,
            "word_bits": self.word_bits,
            "clock_hz": self.clock_hz,
            "sram_bytes": self.sram_bytes,
            "flash_bytes": self.flash_bytes,
            "fpu": self.fpu,
            "dsp": self.dsp,
            "simd": self.simd,
            "int8_macs_per_cycle": self.int8_macs_per_cycle,
            "fp32_macs_per_cycle": self.fp32_macs_per_cycle,
            "layer_overhead_s": self.layer_overhead_s,
            "invoke_overhead_s": self.invoke_overhead_s,
            "active_power_w": self.active_power_w,
            "inline": self.inline,
            "sources": dict(self.sources),
        }


@functools.cache
def _data() -> dict[str, Any]:
    text = (resources.files("rlbudget") / "data" / "devices.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _device_from_entry(device_id: str, e: Mapping[str, Any]) -> Device:
    if e["class"] not in DEVICE_CLASSES:
        raise ValueError(f"devices.yaml: {device_id}: bad class {e['class']!r}")
    return Device(
        id=device_id,
        name=str(e["name"]),
        device_class=str(e["class"]),
        core=str(e["core"]),
        clock_hz=units.parse_frequency(e["clock"]),
        sram_bytes=units.parse_bytes(e["sram"]),
        flash_bytes=units.parse_bytes(e["flash"]),
        fpu=bool(e["fpu"]),
        dsp=bool(e["dsp"]),
        simd=None if e["simd"] is None else str(e["simd"]),
        int8_macs_per_cycle=float(e["int8_macs_per_cycle"]),
        fp32_macs_per_cycle=float(e["fp32_macs_per_cycle"]),
        layer_overhead_s=units.parse_time(e["layer_overhead"]),
        invoke_overhead_s=units.parse_time(e["invoke_overhead"]),
        active_power_w=units.parse_power(e["active_power"]),
        sources=MappingProxyType(dict(e["sources"])),
        word_bits=int(e["word_bits"]),
    )


@functools.cache
def _named() -> dict[str, Device]:
    return {i: _device_from_entry(i, e) for i, e in _data()["devices"].items()}


def list_devices() -> list[Device]:
    """All named devices, by class (smallest first) then clock."""
    order = {c: i for i, c in enumerate(DEVICE_CLASSES)}
    return sorted(_named().values(), key=lambda d: (order[d.device_class], d.clock_hz, d.id))


def _did_you_mean(word: str, choices: list[str]) -> str:
    """ "; did you mean 'x'?" for a close match, else "." (ends the sentence either way)."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else "."


def get_device(device_id: str) -> Device:
    """A named device by id (any case).

    :raises DeviceError: unknown id, with a did-you-mean and how to describe a device inline.
    """
    key = device_id.strip().lower()
    named = _named()
    if key in named:
        return named[key]
    raise DeviceError(
        f"unknown device '{device_id}'{_did_you_mean(key, list(named))} Run 'rlbudget devices' "
        f"to list the named devices, or describe yours inline: {INLINE_EXAMPLE}"
    )


def inline_device(
    device_class: str,
    *,
    clock_hz: float | None = None,
    sram_bytes: int | None = None,
    flash_bytes: int | None = None,
    fpu: bool | None = None,
    power_w: float | None = None,
    name: str = "inline device",
) -> Device:
    """A device described in the budget. Missing figures come from the class defaults.

    Throughput per cycle comes from the class; fixed overheads are cycles in the data
    file and scale with the given clock. Without an FPU, fp32 falls to the class's
    ``fp32_macs_per_cycle_no_fpu`` (published measurements: 10–50× slower than int8).

    :raises DeviceError: unknown class (with did-you-mean).
    """
    defaults = _data()["class_defaults"]
    if device_class not in defaults:
        raise DeviceError(
            f"unknown device class '{device_class}'"
            f"{_did_you_mean(device_class, list(DEVICE_CLASSES))} "
            f"Use one of: {', '.join(DEVICE_CLASSES)}"
        )
    d = defaults[device_class]
    src = f"class default for '{device_class}' ({d['source']})"
    clock = clock_hz if clock_hz is not None else units.parse_frequency(d["clock"])
    has_fpu = bool(d["fpu"]) if fpu is None else fpu
    sources = {
        "clock": "budget" if clock_hz is not None else src,
        "sram": "budget" if sram_bytes is not None else src,
        "flash": "budget" if flash_bytes is not None else src,
        "fpu": "budget" if fpu is not None else src,
        "active_power": "budget" if power_w is not None else src,
        "int8_macs_per_cycle": src,
        "fp32_macs_per_cycle": src,
        "layer_overhead": src,
        "invoke_overhead": src,
    }
    return Device(
        id="inline",
        name=name,
        device_class=device_class,
        core=str(d["core"]),
        clock_hz=clock,
        sram_bytes=sram_bytes if sram_bytes is not None else units.parse_bytes(d["sram"]),
        flash_bytes=flash_bytes if flash_bytes is not None else units.parse_bytes(d["flash"]),
        fpu=has_fpu,
        dsp=bool(d["dsp"]),
        simd=None,
        int8_macs_per_cycle=float(d["int8_macs_per_cycle"]),
        fp32_macs_per_cycle=float(
            d["fp32_macs_per_cycle"] if has_fpu else d["fp32_macs_per_cycle_no_fpu"]
        ),
        layer_overhead_s=float(d["layer_overhead_cycles"]) / clock,
        invoke_overhead_s=float(d["invoke_overhead_cycles"]) / clock,
        active_power_w=power_w if power_w is not None else units.parse_power(d["active_power"]),
        sources=MappingProxyType(sources),
        inline=True,
        word_bits=int(d["word_bits"]),
    )
