"""What every rlbudget chart shares: a layout that keeps titles and labels inside the
figure, wrapped text, readable log ticks, and the return target drawn as a line.

matplotlib is imported inside the functions (only the commands that write a PNG pay it).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TARGET_STYLE = {"color": "tab:red", "linestyle": "--", "linewidth": 1}


def wrap(text: str, width: int = 70) -> str:
    """``text`` folded into lines of at most ``width`` characters (titles, axis labels).

    >>> wrap("a long title that does not fit", 12)
    'a long title\\nthat does\\nnot fit'
    """
    return "\n".join(textwrap.wrap(text, width)) or text


def figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    """A figure with constrained layout (titles, tick labels and the legend are fitted
    inside it, never cut off) and its axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width, height), layout="constrained")


def save(fig: Any, path: Path, dpi: int = 110) -> None:
    """Write the PNG and free the figure."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def log_axis(ax: Any, axis: str = "x", suffix: str = "") -> None:
    """A log scale labelled at 1, 2, 5 × 10^k only (as ``3×``, ``20``), no minor labels:
    the default minor labels collide on a short axis."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    which = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    which.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    which.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}{suffix}"))
    which.set_minor_formatter(NullFormatter())


def target_line(ax: Any, target: float | None, *, horizontal: bool = True) -> None:
    """The return target as a dashed red line across the axes (nothing when None)."""
    if target is None:
        return
    label = f"target {target:g}"
    if horizontal:
        ax.axhline(target, label=label, **TARGET_STYLE)
    else:
        ax.axvline(target, label=label, **TARGET_STYLE)


def target_marks(ax: Any, positions: Sequence[float], targets: Sequence[float | None]) -> None:
    """Per-bar return targets on a horizontal bar chart (bars with different envs): a short
    vertical tick at each bar's target."""
    marks = [(t, y) for y, t in zip(positions, targets, strict=True) if t is not None]
    if marks:
        ax.vlines([t for t, _ in marks], [y - 0.4 for _, y in marks],
                  [y + 0.4 for _, y in marks], label="target", **TARGET_STYLE)  # fmt: skip
