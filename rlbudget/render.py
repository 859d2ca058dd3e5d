"""Human rendering of budgets and plans (rich). Data comes in finished; nothing is computed here."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from rlbudget import units
from rlbudget.budget import Budget
from rlbudget.limits import LIMITS, Check, format_figure
from rlbudget.plan import Option, Plan


def _or_dash(value: float | None, fmt: object) -> str:
    return "—" if value is None else fmt(value)  # type: ignore[operator]


def render_budget(console: Console, b: Budget) -> None:
    """The normalized budget as one table: every limit in SI and in human units."""
    t = Table(title=f"Budget '{b.name}' ({b.source})")
    t.add_column("key")
    t.add_column("value")
    t.add_column("SI")
    d = b.device
    t.add_row("device", f"{d.id} ({d.device_class}, {d.core})", "")
    t.add_row("device.clock", units.format_frequency(d.clock_hz), f"{d.clock_hz:g} Hz")
    t.add_row("device.sram", units.format_bytes(d.sram_bytes), f"{d.sram_bytes} B")
    t.add_row("device.flash", units.format_bytes(d.flash_bytes), f"{d.flash_bytes} B")
    t.add_row("device.power", units.format_power(d.active_power_w), f"{d.active_power_w:g} W")
    rows: list[tuple[str, float | None, str]] = [
        (lim.name, lim.read(b), lim.unit)
        for lim in LIMITS.values()
        if lim.name.startswith(("inference.", "training."))
    ]
    rows += [("training.cores", b.training.cores, ""),
             ("task.env_step_cost", b.task.env_step_cost_s, "s")]  # fmt: skip
    for key, value, si in rows:
        shown = "not checked" if value is None else format_figure(value, si) if si else str(value)
        t.add_row(key, shown, "" if value is None else f"{value:g} {si}".strip())
    t.add_row("task.env", b.task.env_id or "—", "")
    t.add_row("task.min_return", _or_dash(b.task.min_return, lambda v: f"{v:g}"), "")
    t.add_row("margin", f"{b.margin:.0%}", f"{b.margin:g}")
    console.print(t)


def _fmt_check(c: Check) -> str:
    mark = {"PASS": "", "FAIL": " ✗", "NOT CHECKED": ""}[c.status]
    return f"{format_figure(c.figure, c.unit)}{mark}"


def _check(o: Option, name: str) -> Check:
    return next(c for c in o.checks if c.limit == name)


def render_plan(console: Console, p: Plan, *, show_all: bool = False) -> None:
    """Ranked options, the reasons of the first (or all), what was excluded, and the verdict."""
    b, env, ctx = p.budget, p.env, p.context
    target = "—" if ctx.target_return is None else f"{ctx.target_return:g}"
    step = "—" if ctx.step_cost_s is None else units.format_time(ctx.step_cost_s)
    console.print(
        f"[bold]Plan[/bold] for '{b.name}': {b.device.id} ({b.device.device_class}) × {env.env_id} "
        f"(obs {env.observation.kind}{list(env.observation.shape) or ''}, "
        f"actions {env.action.kind}), target return {target}, margin {b.margin:.0%}, "
        f"env step {step} ({ctx.step_cost_source})",
        markup=True,
    )
    t = Table(title="Options (estimated; ✗ = over the limit with the margin)")
    for col in ("#", "option", "paradigm", "fits", "flash", "RAM", "latency (typ, range)",
                "energy/decision", "env steps", "train time"):  # fmt: skip
        t.add_column(col, overflow="fold")
    for o in p.options:
        e = o.estimates
        lat = e.latency_s
        fits = "yes" if o.fits else "no"
        if not o.trainable:
            fits += " (not yet supported)"
        t.add_row(
            str(o.rank),
            o.label,
            o.paradigm,
            fits,
            _fmt_check(_check(o, "inference.flash")),
            _fmt_check(_check(o, "inference.ram")),
            f"{_fmt_check(_check(o, 'inference.latency'))} "
            f"({units.format_time(lat.low, 2)}–{units.format_time(lat.high, 2)})",
            _fmt_check(_check(o, "inference.energy")),
            _fmt_check(_check(o, "training.env_steps")),
            _fmt_check(_check(o, "training.time")),
        )
    console.print(t)
    shown = p.options if show_all else p.options[:1]
    for o in shown:
        console.print(f"[bold]#{o.rank} {o.label}[/bold] — why:", markup=True)
        for r in o.reasons:
            console.print(f"  • {r}", markup=False, soft_wrap=True)
        hp = ", ".join(f"{k}={v}" for k, v in o.hyperparams.items())
        console.print(
            f"  hyperparameters ({o.hyperparams_source}): {hp}", markup=False, soft_wrap=True
        )
    if p.excluded:
        console.print("[bold]Not considered:[/bold]", markup=True)
        for algo, why in p.excluded:
            console.print(f"  {algo}: {why}", markup=False, soft_wrap=True)
    binding = p.binding()
    if p.best is not None:
        console.print(f"[green]Recommended:[/green] {p.best.label}", markup=True)
    elif binding is not None:
        console.print(f"[red]{binding['message']}[/red]", markup=True)
    else:
        console.print("[red]nothing fits and no option can be trained yet[/red]", markup=True)
