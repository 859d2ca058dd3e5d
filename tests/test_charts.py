"""Charts: every title, label and value text lies inside the PNG, log ticks do not
overlap, and return charts draw the return target (issue 14, item 19)."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib
import pytest

matplotlib.use("Agg")
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rlbudget import charts, load_budget

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """The figures written with savefig, drawn as saved (checked before they close)."""
    figures: list[Figure] = []
    original = Figure.savefig

    def savefig(self: Figure, *args: Any, **kwargs: Any) -> None:
        if not isinstance(self.canvas, FigureCanvasAgg):
            FigureCanvasAgg(self)
        self.canvas.draw()
        self.test_renderer = self.canvas.get_renderer()  # type: ignore[attr-defined]
        figures.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return figures


def assert_inside(fig: Figure) -> None:
    """Nothing drawn (text included) extends past the figure's edges."""
    box = fig.get_tightbbox(fig.test_renderer)  # type: ignore[attr-defined]  # inches
    w, h = fig.get_size_inches()
    slack = 0.02
    assert box.x0 >= -slack and box.y0 >= -slack, (box, w, h)
    assert box.x1 <= w + slack and box.y1 <= h + slack, (box, w, h)


def target_artists(fig: Figure) -> list[Any]:
    return [a for ax in fig.axes for a in (*ax.lines, *ax.collections)
            if str(a.get_label()).startswith("target")]  # fmt: skip


def test_profile_chart_keeps_values_and_title_inside(saved: list[Figure], tmp_path: Path) -> None:
    from rlbudget.profile.report import usage_chart

    def check(limit: str, share: float, status: str) -> SimpleNamespace:
        return SimpleNamespace(limit=limit, status=status, unit="bytes", limit_value=100.0,
                               with_margin=share)  # fmt: skip

    report = SimpleNamespace(
        checks=[check("inference.flash", 137.7, "FAIL"), check("inference.ram", 0.4, "PASS")],
        margin=0.25, verdict="FAIL", device="esp32",
        policy="/a/rather/long/path/to/a/run/folder/policy-with-a-long-name-as-users-write",
    )  # fmt: skip
    usage_chart(report, tmp_path / "profile.png")  # type: ignore[arg-type]
    assert len(saved) == 1
    assert_inside(saved[0])


def sweep_rows() -> list[dict[str, Any]]:
    row = dict(budget="esp32-cartpole", device="esp32", env="CartPole-v1", hyperparams={},
               seeds=2, errors=0, fits=2, return_mean=480.0, return_ci95=10.0, target=475.0,
               flash_bytes=1.0, ram_bytes=1.0, latency_s=1e-3, train_s=3.0)  # fmt: skip
    return [row, {**row, "device": "rp2040", "fits": 0, "return_mean": 300.0,
                  "hyperparams": {"learning_rate": 0.001, "net_arch": [64, 64],
                                  "batch_size": 64, "gamma": 0.98}},
            {**row, "budget": "raspberry-pi-4-pendulum", "device": "raspberry-pi-4",
             "env": "Pendulum-v1", "return_mean": -180.0, "target": -200.0}]  # fmt: skip


def test_sweep_chart_draws_each_target_and_keeps_labels_inside(
    saved: list[Figure], tmp_path: Path
) -> None:
    from rlbudget.sweep import Row, _plot

    rows = [Row(**row) for row in sweep_rows()]
    _plot(SimpleNamespace(rows=rows, name="boards"), tmp_path / "results.png")  # type: ignore[arg-type]
    (fig,) = saved
    assert_inside(fig)
    (marks,) = target_artists(fig)
    assert sorted(seg[0][0] for seg in marks.get_segments()) == [-200.0, 475.0, 475.0]


def test_run_candidates_chart_draws_the_target(saved: list[Figure], tmp_path: Path) -> None:
    from rlbudget.candidates import Candidate, candidates_chart

    budget = load_budget(ROOT / "budgets" / "esp32-cartpole.yaml")
    tried = [("as trained", 40_000, 3e-3, 500.0, False), ("int8", 9_000, 8e-4, 498.0, True)]
    candidates = [Candidate(i, n, None, f"c/{i}/policy", ok, flash_bytes=f, latency_s=t,
                            return_mean=r) for i, (n, f, t, r, ok) in enumerate(tried)]  # fmt: skip
    candidates_chart(budget, candidates, tmp_path / "candidates.png", target=475.0)
    (fig,) = saved
    assert_inside(fig)
    lines = target_artists(fig)
    assert len(lines) == 2 and all(list(line.get_ydata()) == [475.0, 475.0] for line in lines)


def tick_boxes(fig: Figure) -> list[Any]:
    renderer = fig.test_renderer  # type: ignore[attr-defined]
    lo, hi = fig.axes[0].get_xlim()
    ax = fig.axes[0]
    labels = [*ax.get_xticklabels(), *ax.get_xticklabels(minor=True)]
    shown = [t for t in labels
             if t.get_visible() and t.get_text() and lo <= t.get_position()[0] <= hi]  # fmt: skip
    return sorted((t.get_window_extent(renderer) for t in shown), key=lambda b: b.x0)


def test_compression_chart_ticks_do_not_overlap(
    saved: list[Figure], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location(
        "compression_bench", ROOT / "benchmarks" / "compression.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # its dataclasses look themselves up
    spec.loader.exec_module(bench)
    rows = [dict(model=f"rlbudget: sarsa-lambda MountainCar-v0 seed {i}",
                 methods="prune-neurons,int8 --recover", total_bytes=(18_440, b),
                 retention=0.99, passed=True)
            for i, b in enumerate([6_714, 1_500, 9_100, 14_185, 700])]  # fmt: skip
    bench.plot(rows, tmp_path / "compression.png")
    (fig,) = saved
    assert_inside(fig)
    boxes = tick_boxes(fig)
    assert len(boxes) >= 3
    for left, right in itertools.pairwise(boxes):
        assert left.x1 < right.x0, [t.get_text() for t in fig.axes[0].get_xticklabels()]


def test_wrap_and_log_axis_labels() -> None:
    assert charts.wrap("a long title that does not fit", 12) == "a long title\nthat does\nnot fit"
    fig, ax = charts.figure(4, 2)
    ax.plot([1.5, 60], [0, 1])
    charts.log_axis(ax, "x", suffix="×")
    fig.canvas.draw()
    labels = [
        t.get_text()
        for t in [*ax.get_xticklabels(), *ax.get_xticklabels(minor=True)]
        if t.get_text()
    ]
    assert {"2×", "5×", "10×", "20×", "50×"} <= set(labels)
