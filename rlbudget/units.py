"""Quantities with units: a strict "number + unit" grammar, SI numbers inside.

Every budget figure goes through here, so the grammar is strict and every error
says which units are accepted::

    >>> parse_bytes("320KiB")
    327680
    >>> parse_time("10ms")
    0.01
    >>> parse_energy("1.5mJ")
    0.0015
    >>> parse_count("200k")
    200000
    >>> format_bytes(327680)
    '320 KiB'

Decimal prefixes are powers of 1000 (``kB``/``KB``, ``MB``, ``GB``), binary ones
powers of 1024 (``KiB``, ``MiB``, ``GiB``). Unit spelling is case-sensitive
(``mW`` is not ``MW``); a wrong case gets a did-you-mean.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rlbudget.errors import UnitError

_NUMBER = r"[+-]?(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>[^\d\s.+-][^\s]*)?\s*$")


@dataclass(frozen=True)
class Kind:
    """One kind of quantity: its SI unit and the spellings accepted for it."""

    name: str
    si: str
    units: dict[str, float]
    needs_unit: bool = True
    integer: bool = False


BYTES = Kind(
    "bytes",
    "B",
    {
        "B": 1,
        "kB": 1e3,
        "KB": 1e3,
        "MB": 1e6,
        "GB": 1e9,
        "KiB": 1024,
        "MiB": 1024**2,
        "GiB": 1024**3,
    },
    integer=True,
)
TIME = Kind(
    "time",
    "s",
    {"us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0},
)
ENERGY = Kind(
    "energy",
    "J",
    {
        "µJ": 1e-6,
        "μJ": 1e-6,
        "uJ": 1e-6,
        "mJ": 1e-3,
        "J": 1.0,
        "mWh": 3.6,
        "Wh": 3600.0,
        "kWh": 3.6e6,
    },
)
POWER = Kind("power", "W", {"µW": 1e-6, "μW": 1e-6, "uW": 1e-6, "mW": 1e-3, "W": 1.0})
FREQUENCY = Kind("frequency", "Hz", {"Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9})
COUNT = Kind("count", "", {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}, needs_unit=False, integer=True)

KINDS = {k.name: k for k in (BYTES, TIME, ENERGY, POWER, FREQUENCY, COUNT)}


def _accepted(kind: Kind) -> str:
    names = [u for u in kind.units if u and u not in ("μs", "μJ", "μW")]
    return ", ".join(names)


def _no_unit(number: str, kind: Kind) -> UnitError:
    unit = _example(kind).lstrip("0123456789.")
    return UnitError(
        f"'{number}' has no unit; write it with one of: {_accepted(kind)} "
        f"(for example '{number}{unit}')"
    )


def _example(kind: Kind) -> str:
    return {
        "bytes": "320KiB",
        "time": "10ms",
        "energy": "1.5mJ",
        "power": "240mW",
        "frequency": "240MHz",
        "count": "200k",
    }[kind.name]


def parse_quantity(value: object, kind: Kind | str, *, allow_zero: bool = False) -> float:
    """Parse ``value`` (a string such as ``"4MiB"``, or a bare number for counts).

    :param value: the raw value, usually as read from YAML.
    :param kind: a :class:`Kind` or its name (``"bytes"``, ``"time"`` …).
    :param allow_zero: accept 0 (for limits where zero means something).
    :return: the value in SI units (bytes, seconds, joules, watts, hertz, a count).
    :raises UnitError: with a message naming the accepted units.
    """
    k = KINDS[kind] if isinstance(kind, str) else kind
    if isinstance(value, bool):
        raise UnitError(f"expected a {k.name} such as '{_example(k)}', got the boolean {value}")
    if isinstance(value, (int, float)):
        if k.needs_unit:
            raise _no_unit(str(value), k)
        number, scale, text = float(value), 1.0, str(value)
    elif isinstance(value, str):
        text = value
        m = _QUANTITY.match(value)
        if m is None:
            raise UnitError(
                f"'{value}' is not a {k.name}: write a number and a unit, "
                f"such as '{_example(k)}' (units: {_accepted(k)})"
            )
        number = float(m.group("num").replace("_", ""))
        unit = m.group("unit") or ""
        if unit not in k.units:
            if unit == "" and k.needs_unit:
                raise _no_unit(value.strip(), k)
            hint = ""
            for u in k.units:
                if u and u.lower() == unit.lower():
                    hint = f" Did you mean '{u}'?"
                    break
            raise UnitError(
                f"'{value}': unknown {k.name} unit '{unit}'; use one of: {_accepted(k)}.{hint}"
            )
        scale = k.units[unit]
    else:
        raise UnitError(
            f"expected a {k.name} such as '{_example(k)}', got {type(value).__name__} {value!r}"
        )
    if math.isnan(number) or math.isinf(number):
        raise UnitError(f"'{text}' is not a finite number")
    result = number * scale
    if math.isinf(result):
        raise UnitError(f"'{text}' is too large")
    if result < 0:
        raise UnitError(f"'{text}' is negative; a {k.name} limit must be positive")
    if result == 0 and not allow_zero:
        raise UnitError(f"'{text}' is zero; leave the key out if it should not be checked")
    if k.integer:
        rounded = round(result)
        if abs(result - rounded) > 1e-9 * max(1.0, abs(result)):
            of = " of bytes" if k is BYTES else ""
            raise UnitError(f"'{text}' is not a whole number{of}")
        if rounded == 0 and not allow_zero:
            of = " bytes" if k is BYTES else ""
            raise UnitError(
                f"'{text}' rounds to 0{of}; give at least 1 "
                "(or leave the key out if it should not be checked)"
            )
        return float(rounded)
    return result


def parse_bytes(value: object, *, allow_zero: bool = False) -> int:
    """``"320KiB"`` → 327680."""
    return int(parse_quantity(value, BYTES, allow_zero=allow_zero))


def parse_time(value: object, *, allow_zero: bool = False) -> float:
    """``"10ms"`` → 0.01 (seconds)."""
    return parse_quantity(value, TIME, allow_zero=allow_zero)


def parse_energy(value: object, *, allow_zero: bool = False) -> float:
    """``"1.5mJ"`` → 0.0015 (joules); ``"20Wh"`` → 72000."""
    return parse_quantity(value, ENERGY, allow_zero=allow_zero)


def parse_power(value: object, *, allow_zero: bool = False) -> float:
    """``"240mW"`` → 0.24 (watts)."""
    return parse_quantity(value, POWER, allow_zero=allow_zero)


def parse_frequency(value: object, *, allow_zero: bool = False) -> float:
    """``"240MHz"`` → 2.4e8 (hertz)."""
    return parse_quantity(value, FREQUENCY, allow_zero=allow_zero)


def parse_count(value: object, *, allow_zero: bool = False) -> int:
    """``"200k"``, ``"1M"``, ``"1e6"``, ``"200_000"``, ``200000`` → an int."""
    return int(parse_quantity(value, COUNT, allow_zero=allow_zero))


def _format(value: float, steps: list[tuple[str, float]], digits: int) -> str:
    """Pick the largest unit not above ``value`` and print ``digits`` significant digits."""
    if value == 0:
        return f"0 {steps[0][0]}".rstrip()
    unit, scale = steps[0]
    for u, s in steps:
        if abs(value) >= s:
            unit, scale = u, s
    # Round to `digits` significant digits, then print without an exponent (the grammar
    # has none next to a unit): 144.06 with 2 digits → "140".
    rounded = float(f"{value / scale:.{digits}g}")
    text = f"{rounded:.15g}"
    if "e" in text:
        text = f"{rounded:.{digits}f}".rstrip("0").rstrip(".")
    return f"{text} {unit}".rstrip()


def format_bytes(n: float, digits: int = 3) -> str:
    """Binary units, as a device engineer reads a map file: 327680 → ``"320 KiB"``."""
    return _format(n, [("B", 1), ("KiB", 1024), ("MiB", 1024**2), ("GiB", 1024**3)], digits)


def format_time(seconds: float, digits: int = 3) -> str:
    """0.0021 → ``"2.1 ms"``; 900 → ``"15 min"``."""
    steps = [("µs", 1e-6), ("ms", 1e-3), ("s", 1.0), ("min", 60.0), ("h", 3600.0)]
    return _format(seconds, steps, digits)


def format_energy(joules: float, digits: int = 3) -> str:
    """0.0005 → ``"500 µJ"``; 72000 → ``"20 Wh"``."""
    steps = [("µJ", 1e-6), ("mJ", 1e-3), ("J", 1.0), ("Wh", 3600.0), ("kWh", 3.6e6)]
    return _format(joules, steps, digits)


def format_power(watts: float, digits: int = 3) -> str:
    """0.24 → ``"240 mW"``."""
    return _format(watts, [("µW", 1e-6), ("mW", 1e-3), ("W", 1.0)], digits)


def format_frequency(hz: float, digits: int = 3) -> str:
    """2.4e8 → ``"240 MHz"``."""
    return _format(hz, [("Hz", 1.0), ("kHz", 1e3), ("MHz", 1e6), ("GHz", 1e9)], digits)


def format_count(n: float, digits: int = 3) -> str:
    """200000 → ``"200k"``."""
    return _format(n, [("", 1), ("k", 1e3), ("M", 1e6), ("G", 1e9)], digits).replace(" ", "")
