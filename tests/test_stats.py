"""rlbudget.stats: one 95 % interval (Student's t) for sweep, early stop and the gate."""

from __future__ import annotations

import pytest

from rlbudget.stats import mean_ci95, t95


def test_mean_ci95() -> None:
    assert mean_ci95([]) == (None, None)
    assert mean_ci95([3.0]) == (3.0, None)
    mean, ci = mean_ci95([1.0, 2.0, 3.0])  # t(2) = 4.303, s = 1, n = 3
    assert mean == 2.0 and ci == pytest.approx(4.303 / 3**0.5, abs=1e-4)


@pytest.mark.parametrize(
    ("df", "exact"),  # scipy.stats.t.ppf(0.975, df)
    [(1, 12.7062047), (30, 2.0422725), (31, 2.0395134), (40, 2.0210754), (99, 1.9842169),
     (499, 1.9647293), (10_000, 1.9602012)],
)  # fmt: skip
def test_t95_is_students_quantile_beyond_the_table(df: int, exact: float) -> None:
    assert t95(df) == pytest.approx(exact, abs=5e-4 if df <= 30 else 1e-6)


def test_t95_refuses_no_degrees_of_freedom() -> None:
    with pytest.raises(ValueError, match="degrees of freedom"):
        t95(0)
