"""The statistics rlbudget reports: a mean and its 95 % confidence interval.

One rule everywhere: the two-sided 95 % interval of a mean uses Student's t with
``n - 1`` degrees of freedom (:func:`t95`). ``sweep`` puts it around the return over
seeds, ``train``'s early stop takes its lower bound over the confirmation episodes, and
the compression gate puts it around the paired per-episode return drop.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

# Student's t, two-sided 95 %, by degrees of freedom 1..30 (beyond: t95's expansion).
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
       2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
       2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip
Z95 = 1.959963984540054
"""The two-sided 95 % normal quantile (t's limit as the degrees of freedom grow)."""


def t95(df: int) -> float:
    """The two-sided 95 % quantile of Student's t with ``df`` degrees of freedom: the table
    up to 30, then the Cornish–Fisher expansion around the normal quantile (Abramowitz &
    Stegun 26.7.5, four terms; within 1e-5 of the exact value from 30 on).

    >>> t95(2), round(t95(99), 4), round(t95(10**9), 4)
    (4.303, 1.9842, 1.96)
    """
    if df < 1:
        raise ValueError(f"t95: degrees of freedom must be ≥ 1, not {df}")
    if df <= len(T95):
        return T95[df - 1]
    z, z2 = Z95, Z95 * Z95
    g1 = (z2 + 1) * z / 4
    g2 = ((5 * z2 + 16) * z2 + 3) * z / 96
    g3 = (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / 384
    g4 = ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) * z / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def ci95_half_width(values: Sequence[float]) -> float | None:
    """The half-width of the 95 % interval of the mean of ``values`` (None for fewer than
    two): ``t95(n - 1) · s / √n``."""
    n = len(values)
    if n < 2:
        return None
    return t95(n - 1) * statistics.stdev(values) / math.sqrt(n)


def mean_ci95(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and the half-width of its 95 % confidence interval, rounded to 4 decimals
    (None, None for no value; the half-width None for one value).

    >>> mean_ci95([1.0, 2.0, 3.0])
    (2.0, 2.4843)
    """
    if not values:
        return None, None
    half = ci95_half_width(values)
    return statistics.fmean(values), None if half is None else round(half, 4)


def return_drop(before: float, after: float) -> float:
    """``(before - after) / |before|``; ``before - after`` when ``before`` is 0.

    >>> return_drop(200.0, 190.0), return_drop(-150.0, -165.0), return_drop(0.0, -1.0)
    (0.05, 0.1, 1.0)
    """
    return (before - after) / abs(before) if before != 0 else before - after
