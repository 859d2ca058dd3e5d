"""A profile as people read it: the figures in their units, a Markdown report, a chart.

Each figure is written in its unit by :func:`rlbudget.limits.format_figure` (``7.03 KiB``,
``82.3 µs``, ``19.8 µJ``); :func:`markdown` writes the whole report, and :func:`usage_chart` the PNG
bar chart of each checked resource's use (with the margin) as a share of its limit.
"""

from __future__ import annotations

from pathlib import Path

from rlbudget import units
from rlbudget.limits import NOT_CHECKED, Check, format_figure
from rlbudget.profile.verdict import FORMAT_NAMES, ProfileReport


def alternatives_text(report: ProfileReport) -> str:
    """The other formats in words, after a memory FAIL: ``as C: 12 KiB (fits); as ONNX:
    41 MiB (does not fit: inference.ram)`` — the figure of the failing kind (RAM or flash;
    both when both fail); empty when there are none."""
    failing = {c.limit.split(".")[1] for c in report.checks
               if c.status == "FAIL" and c.unit == "B"}  # fmt: skip
    parts = []
    for a in report.alternatives:
        name = FORMAT_NAMES.get(a.format, a.format)
        if a.error is not None:
            parts.append(f"as {name}: not available ({a.error})")
            continue
        figures = [f"{kind} {units.format_bytes(value)}"
                   for kind, value in (("flash", a.flash_bytes), ("RAM", a.ram_bytes))
                   if value is not None and kind.lower() in failing]  # fmt: skip
        verdict = "fits" if a.fits else f"does not fit: {', '.join(a.failing)}"
        parts.append(f"as {name}: {', '.join(figures)} ({verdict})")
    return "; ".join(parts)


def headroom_text(c: Check) -> str:
    return "—" if c.headroom is None else f"{c.headroom:+.1%}"


def markdown(report: ProfileReport, chart: str | None = None) -> str:
    """The report as Markdown: the verdict, the checks table, memory, latency, return."""
    binding = report.binding
    lines = [
        f"# Profile: {report.policy} on {report.device} ({report.format})",
        "",
        f"**Verdict: {report.verdict}**"
        + (f" — binding limit `{binding.limit}`" if binding else "")
        + f" (budget `{report.budget}`, margin {report.margin:.0%}: each cost × "
        f"{1 + report.margin:g} must stay within its limit)."
        + (
            f" Other formats, with the margin: {alternatives_text(report)}."
            if report.alternatives
            else ""
        ),
        "",
        "| limit | figure | source | with margin | limit value | status | headroom |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in report.checks:
        lines.append(
            f"| `{c.limit}` | {format_figure(c.figure, c.unit)} | {c.source} "
            f"| {format_figure(c.with_margin, c.unit)} | {format_figure(c.limit_value, c.unit)} "
            f"| {c.status} | {headroom_text(c)} |"
        )
    lines += ["", "How each figure was obtained:", ""]
    lines += [f"- `{c.limit}`: {c.how}" for c in report.checks]
    fp, lat = report.footprint, report.target_latency
    by_dtype = ", ".join(f"{k} {units.format_bytes(v)}"
                         for k, v in sorted(fp.weight_bytes_by_dtype.items()))  # fmt: skip
    lines += [
        "",
        "## Memory",
        "",
        f"Policy arrays by dtype (as stored in policy.safetensors): {by_dtype}; "
        f"working buffers of the body {units.format_bytes(fp.buffer_bytes)}; code/runtime "
        f"{units.format_bytes(fp.code_bytes)} ({fp.target})"
        + (f"; C build {fp.build}" if fp.build else "")
        + (", the one emulated" if fp.build and report.one_build else "") + ".",
        "",
        "## Latency",
        "",
        f"On the target ({report.device}): {report.target_latency_how}."
        if any(c.limit == "inference.latency" and c.figure is None for c in report.checks)
        else f"On the target ({report.device}, {report.target_latency_source}): "
        f"{format_figure(lat.low, 's')} – {format_figure(lat.high, 's')}, "
        f"{'mean' if report.target_latency_source == 'emulated' else 'typical'} "
        f"{format_figure(lat.typical, 's')}; {report.target_latency_how}.",
    ]  # fmt: skip
    host = report.host_latency
    if host is not None:
        lines.append(
            f"On this host ({host.format}, measured, {host.calls} calls after {host.warmup} "
            f"warm-up): p50 {format_figure(host.p50_s, 's')}, p90 "
            f"{format_figure(host.p90_s, 's')}, p99 {format_figure(host.p99_s, 's')}."
        )
    lines += ["", "## Return", ""]
    r = report.returns
    if r is None:
        lines.append("Not measured (no env).")
    else:
        target = "none" if r.target is None else f"{r.target:g} ({r.target_from})"
        lines.append(f"{r.env}: {r.mean:.2f} ± {r.std:.2f} over {r.episodes} episodes (seed "
                     f"{r.seed}, {r.runtime} runtime); target {target}.")  # fmt: skip
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    if chart:
        lines += ["", f"![usage against each limit]({chart})"]
    return "\n".join(lines) + "\n"


def usage_chart(report: ProfileReport, path: Path) -> None:
    """A PNG: for each checked cost, figure × (1 + margin) as a percentage of its limit."""
    from rlbudget import charts

    rows = [c for c in report.checks
            if c.status != NOT_CHECKED and c.unit != "return" and c.limit_value]  # fmt: skip
    fig, ax = charts.figure(7, 0.45 * max(len(rows), 1) + 1.6)
    names = [c.limit for c in rows][::-1]
    shares = [100 * (c.with_margin or 0.0) / (c.limit_value or 1.0) for c in rows][::-1]
    colors = ["tab:red" if c.status == "FAIL" else "tab:green" for c in rows][::-1]
    ax.barh(names, shares, color=colors)
    ax.axvline(100, color="black", linewidth=1)
    for y, share in enumerate(shares):
        ax.text(share, y, f" {share:.1f} %", va="center", fontsize=8)
    ax.set_xscale("symlog", linthresh=1)
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g} %"))
    ax.set_xlim(0, 4 * max([100.0, *shares]))  # room for the value written after each bar
    ax.set_xlabel(
        charts.wrap(
            f"use with the {report.margin:.0%} margin, % of the limit (100 % = the limit)", 80
        )
    )
    ax.set_title(charts.wrap(f"{report.policy} on {report.device}: {report.verdict}", 70))
    charts.save(fig, path)


def check_report_path(path: Path) -> None:
    """Refuse a report path that cannot be written, before the profile runs.

    :raises RlbudgetError: its folder is missing, it is a folder, or it ends in .png
        (the chart's name: the report's, with .png).
    """
    problem = (f"the folder {path.parent} does not exist; create it first"
               if not path.parent.is_dir() else
               "is a folder; give a file name such as report.md" if path.is_dir() else
               "must not end in .png (the chart is written beside the report as .png)"
               if path.suffix.lower() == ".png" else None)  # fmt: skip
    if problem:
        from rlbudget.errors import RlbudgetError

        raise RlbudgetError(f"--report {path}: {problem}")


def write_report(report: ProfileReport, path: Path) -> Path:
    """Write the Markdown report to ``path`` and its chart beside it (``path`` with .png),
    each atomically; returns the chart's path.

    :raises RlbudgetError: a file cannot be written (nothing half-written is left).
    """
    from rlbudget.errors import RlbudgetError
    from rlbudget.fileio import atomic_write_text

    chart = path.with_suffix(".png")
    tmp = chart.with_name(f".tmp-{chart.name}")  # same suffix: matplotlib reads the format from it
    try:
        usage_chart(report, tmp)
        atomic_write_text(path, markdown(report, chart.name))
        tmp.replace(chart)
    except OSError as exc:
        raise RlbudgetError(f"--report {path}: cannot write it ({exc.strerror})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return chart
