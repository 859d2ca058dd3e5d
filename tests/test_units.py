"""Units: the strict grammar, its errors, and formatting round trips."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlbudget import units
from rlbudget.errors import UnitError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("320KiB", 327680),
        ("320 KiB", 327680),
        ("4MB", 4_000_000),
        ("1kB", 1000),
        ("1KB", 1000),
        ("2MiB", 2 * 1024**2),
        ("1.5GiB", 1.5 * 1024**3),
        ("100B", 100),
        ("1GB", 10**9),
    ],
)
def test_bytes(text: str, expected: int) -> None:
    assert units.parse_bytes(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10ms", 0.01),
        ("250us", 250e-6),
        ("250µs", 250e-6),
        ("2s", 2.0),
        ("15min", 900.0),
        ("1.5h", 5400.0),
    ],
)
def test_time(text: str, expected: float) -> None:
    assert units.parse_time(text) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.5mJ", 1.5e-3),
        ("20uJ", 20e-6),
        ("20µJ", 20e-6),
        ("3J", 3.0),
        ("20Wh", 72_000.0),
        ("1mWh", 3.6),
        ("1kWh", 3.6e6),
    ],
)
def test_energy(text: str, expected: float) -> None:
    assert units.parse_energy(text) == pytest.approx(expected, rel=1e-12)


def test_power_frequency() -> None:
    assert units.parse_power("240mW") == pytest.approx(0.24)
    assert units.parse_power("2W") == 2.0
    assert units.parse_power("5µW") == pytest.approx(5e-6)
    assert units.parse_frequency("240MHz") == 240e6
    assert units.parse_frequency("32kHz") == 32e3
    assert units.parse_frequency("1.5GHz") == 1.5e9


@pytest.mark.parametrize(
    ("value", "expected"),
    [("200k", 200_000), ("1M", 10**6), ("1e6", 10**6), ("200_000", 200_000), (5000, 5000)],
)
def test_counts(value: object, expected: int) -> None:
    assert units.parse_count(value) == expected


def test_bare_number_needs_a_unit() -> None:
    with pytest.raises(UnitError) as e:
        units.parse_bytes(320)
    assert str(e.value) == (
        "'320' has no unit; write it with one of: B, kB, KB, MB, GB, KiB, MiB, GiB "
        "(for example '320KiB')"
    )
    with pytest.raises(UnitError, match="has no unit"):
        units.parse_time("320")


def test_wrong_unit_has_did_you_mean() -> None:
    with pytest.raises(UnitError) as e:
        units.parse_bytes("64kib")
    assert str(e.value) == (
        "'64kib': unknown bytes unit 'kib'; use one of: B, kB, KB, MB, GB, KiB, MiB, GiB. "
        "Did you mean 'KiB'?"
    )
    with pytest.raises(UnitError, match="unknown time unit 'MB'"):
        units.parse_time("4MB")


@pytest.mark.parametrize("bad", ["-5ms", "nanms", "inf ms", "ms", "", "5 m s", "1e400ms"])
def test_rejects_nonsense(bad: str) -> None:
    with pytest.raises(UnitError):
        units.parse_time(bad)


def test_negative_zero_nan() -> None:
    with pytest.raises(UnitError, match="negative"):
        units.parse_bytes("-1KiB")
    with pytest.raises(UnitError, match="zero"):
        units.parse_bytes("0KiB")
    assert units.parse_bytes("0KiB", allow_zero=True) == 0
    with pytest.raises(UnitError, match="not a finite number"):
        units.parse_count(float("nan"))
    with pytest.raises(UnitError, match="boolean"):
        units.parse_count(True)
    with pytest.raises(UnitError, match=r"^'1.5B' is not a whole number of bytes$"):
        units.parse_bytes("1.5B")
    with pytest.raises(UnitError, match=r"^'2.5' is not a whole number$"):
        units.parse_count("2.5")


def test_format_examples() -> None:
    assert units.format_bytes(327680) == "320 KiB"
    assert units.format_bytes(512) == "512 B"
    assert units.format_bytes(4 * 1024**2) == "4 MiB"
    assert units.format_time(0.0021) == "2.1 ms"
    assert units.format_time(900) == "15 min"
    assert units.format_energy(0.0005) == "500 µJ"
    assert units.format_energy(72000) == "20 Wh"
    assert units.format_power(0.24) == "240 mW"
    assert units.format_frequency(240e6) == "240 MHz"
    assert units.format_count(200_000) == "200k"


@given(st.integers(min_value=1, max_value=2**40))
def test_bytes_round_trip(n: int) -> None:
    # 3 significant digits: the formatted value is within 0.5 % of the original.
    fractional_bytes = units.Kind("bytes", "B", units.BYTES.units)  # no whole-number check
    back = units.parse_quantity(units.format_bytes(n), fractional_bytes)
    assert math.isclose(back, n, rel_tol=5e-3)


@given(st.integers(min_value=0, max_value=30), st.sampled_from([1, 1024, 1024**2, 1024**3]))
def test_bytes_round_trip_exact_for_round_values(k: int, scale: int) -> None:
    n = (k + 1) * scale
    assert units.parse_bytes(units.format_bytes(n)) == n


@given(st.floats(min_value=1e-7, max_value=1e6, allow_nan=False, allow_infinity=False))
def test_time_round_trip(seconds: float) -> None:
    assert math.isclose(units.parse_time(units.format_time(seconds)), seconds, rel_tol=5e-3)


@given(st.floats(min_value=1e-7, max_value=1e8, allow_nan=False, allow_infinity=False))
def test_energy_round_trip(joules: float) -> None:
    assert math.isclose(units.parse_energy(units.format_energy(joules)), joules, rel_tol=5e-3)


@given(st.integers(min_value=1, max_value=10**12))
def test_count_round_trip(n: int) -> None:
    text = units.format_count(n, digits=13)
    assert units.parse_count(text) == n
