"""What the ``rlbudget`` commands print for people (rich): one function per result type,
each given a console and a finished result. Nothing is computed here; ``--json`` prints the
result's ``to_dict()`` instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rlbudget import units
from rlbudget.budget import Budget
from rlbudget.limits import LIMITS, Check, format_figure
from rlbudget.plan import Option, Plan

if TYPE_CHECKING:  # the commands that render these have already imported them
    from rlbudget.agents.common import Episode
    from rlbudget.compress.pipeline import CompressReport
    from rlbudget.devices import Device
    from rlbudget.profile.evaluate import EvalResult
    from rlbudget.profile.verdict import ProfileReport
    from rlbudget.run import RunReport
    from rlbudget.train import RunResult, RunSettings


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
    t.add_row("device.ram", units.format_bytes(d.sram_bytes), f"{d.sram_bytes} B")
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
        f"env step {step} ({ctx.step_cost_source}); training throughput {ctx.throughput}",
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


def _per_cycle(x: float) -> str:
    return f"{x:,.0f}" if x >= 1000 else f"{x:.3g}"


def render_devices(console: Console, devs: Sequence[Device]) -> None:
    """The named devices, one row each, with the latency model plan uses on each."""
    from rlbudget.fitted import latency_model

    t = Table(title="Named devices (use 'device: ID' in a budget)",
              caption="latency model: 'fitted (CORE)' = cycles fitted to emulation of the C "
                      "export (rlbudget/data/cycles/fitted.yaml), its MAC/cyc the fit's cost "
                      "per MAC alone (per-layer and per-unit cycles come on top); 'per MAC' = "
                      "devices.yaml's MACs/cycle and overheads")  # fmt: skip
    for col in ("id", "class", "core", "clock", "SRAM/RAM", "flash", "FPU", "latency model",
                "int8 MAC/cyc", "fp32 MAC/cyc", "power"):  # fmt: skip
        t.add_column(col)
    for d in devs:
        m = latency_model(d)
        model = f"fitted ({m['core']})" if m["kind"] == "fitted" else "per MAC"
        t.add_row(d.id, d.device_class, d.core, units.format_frequency(d.clock_hz),
                  units.format_bytes(d.sram_bytes), units.format_bytes(d.flash_bytes),
                  "yes" if d.fpu else "no", model, _per_cycle(m["int8_macs_per_cycle"]),
                  _per_cycle(m["fp32_macs_per_cycle"]),
                  units.format_power(d.active_power_w))  # fmt: skip
    console.print(t)


def render_train_start(console: Console, s: RunSettings) -> None:
    """What a training run is about to do: steps, target, and for SB3 envs and threads."""
    console.print(f"training {s.algorithm} on {s.env_id} for up to "
                  f"{units.format_count(s.n_timesteps)} steps ({s.n_timesteps_from}); "
                  f"target {'' if s.target_return is None else f'{s.target_return} '}"
                  f"({s.target_from})")  # fmt: skip
    if s.library == "sb3":
        where = ("in one process" if s.env_workers <= 1
                 else f"in {s.env_workers} worker processes")  # fmt: skip
        console.print(f"{s.n_envs} env(s) {where}, {s.torch_threads} torch thread(s) "
                      "(training.cores)")  # fmt: skip
    if s.parallel is not None:
        console.print(f"[cores] {s.parallel}", markup=False)
    if s.replay_from is not None:
        console.print(s.replay_from, markup=False)


def render_train_result(console: Console, result: RunResult) -> None:
    """Why a training run stopped, how far it got, and where its folder is."""
    console.print(f"stopped by {result.stopped_by} after {units.format_count(result.steps)} "
                  f"steps ({result.wall_s:.1f} s, {result.steps_per_s:,.0f} steps/s); run "
                  f"folder: {result.run_dir}")  # fmt: skip
    extra = result.extra or {}
    if "planner_return_last5" in extra:  # pets: the planner (host) and the deployed student

        def ret(key: str) -> str:
            value = extra.get(key)
            return "-" if value is None else f"{value:.4g}"

        console.print(f"last 5 training episodes: planner {ret('planner_return_last5')}, "
                      f"distilled policy {ret('student_return_last5')} (policy/ holds the "
                      "distilled policy; the planner is in model/)")  # fmt: skip


@contextlib.contextmanager
def progress_bar(console: Console, total: int, start: int = 0) -> Iterator[
    Callable[[Episode], None]
]:  # fmt: skip
    """A training progress bar on ``console`` (steps, steps/s, mean return of the last 20
    episodes, elapsed time); yields the callback that moves it at each episode's end."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"), TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[ret]}"), TimeElapsedColumn(), console=console, transient=False,
    ) as bar:  # fmt: skip
        task = bar.add_task("steps", total=total, completed=start, rate="", ret="")
        recent: list[float] = []

        def progress(ep: Episode) -> None:
            recent.append(ep.ret)
            del recent[:-20]
            rate = ep.step / ep.wall_s if ep.wall_s > 0 else 0.0
            note = f", {ep.note}" if ep.note else ""  # model-based: model loss, planned return
            bar.update(task, completed=ep.step, rate=f"{rate:,.0f} steps/s",
                       ret=f"return(20) {sum(recent) / len(recent):.3g}{note}")  # fmt: skip

        yield progress


def render_policy(console: Console, info: dict[str, Any], name: Path) -> None:
    """A policy's :meth:`~rlbudget.policy.Policy.summary`: pipeline, spaces, arrays, sizes,
    MACs and provenance."""
    t = Table(title=f"Policy {name}")
    t.add_column("")
    t.add_column("")
    t.add_row("pipeline", " → ".join([*info["preprocess"], info["body"], info["head"]]))
    obs, act = info["observation_space"], info["action_space"]
    t.add_row("observation", f"{obs['kind']} {obs['shape'] or obs['n']}")
    t.add_row("action", f"{act['kind']} {act['shape'] or act['n']}")
    for array, shape in info["arrays"].items():
        t.add_row(array, "×".join(map(str, shape)) or "scalar")
    t.add_row("parameters", f"{info['parameters']:,}")
    sizes = ", ".join(f"{units.format_bytes(n)} {d}" for d, n in info["bytes_by_dtype"].items())
    t.add_row("bytes", f"{units.format_bytes(info['bytes'])} ({sizes})")
    t.add_row("MACs/decision", f"{info['macs']:,}")
    t.add_row("working buffers", units.format_bytes(info["buffer_bytes"]))
    for key, value in info["provenance"].items():
        t.add_row(f"provenance.{key}", str(value))
    console.print(t)


def render_evaluation(console: Console, r: EvalResult) -> None:
    """Episode returns in one line: mean ± std, range, length, success rate."""
    console.print(
        f"{r.env_id}: return {r.return_mean:.3f} ± {r.return_std:.3f} (min {r.return_min:g}, "
        f"max {r.return_max:g}) over {r.episodes} episodes, mean length {r.length_mean:.1f}"
        + ("" if r.success_rate is None else f", success {r.success_rate:.0%}")
    )


def render_import(console: Console, info: dict[str, Any]) -> None:
    """An imported model (``ImportResult.to_dict()``): algorithm, env, spaces, pipeline."""
    t = Table(title=f"Imported {info['source']}")
    t.add_column("")
    t.add_column("")
    t.add_row("algorithm", f"{info['algorithm']} (from the {info['algorithm_from']})")
    t.add_row("env", str(info["env"] or "unknown (pass --env to evaluate)"))
    for what in ("observation_space", "action_space"):
        s = info[what]
        t.add_row(what.replace("_", " "), f"{s['kind']} {s['shape'] or s['n']}")
    layers = " → ".join(f"{i}×{o} {a}" for i, o, a in info["layers"])
    convs = " → ".join(f"{op} {k} → {n}" for op, k, n in info.get("conv", []))
    body = f"{info.get('body', 'mlp')} [{convs + ' → ' if convs else ''}{layers}]"
    t.add_row("pipeline", escape(" → ".join([*info["preprocess"], body, info["head"]])))
    t.add_row("parameters", f"{info['parameters']:,} ({units.format_bytes(info['bytes'])})")
    t.add_row("sha256", info["sha256"])
    t.add_row("SB3 version", str(info["sb3_version"] or "not recorded"))
    console.print(t)


def render_compress(console: Console, report: CompressReport, output: Path) -> None:
    """One row per compression step (bytes, MACs, agreement, returns), the gate's two
    drops, notes, advice when it failed, and the verdict last."""
    t = Table(title=f"Compression on {report.env_id} ({report.episodes} episodes, seed "
                    f"{report.seed}; agreement on {report.states} visited states)")  # fmt: skip
    for col in ("method", "bytes", "×", "MACs", "agreement", "return before", "return after",
                "retention", "total", ""):  # fmt: skip
        t.add_column(col, justify="left" if col == "method" else "right")
    for s in report.steps:
        agreement = f"{s.agreement.rate:.1%}"
        if s.agreement.max_abs_diff is not None:
            agreement += f" (max |Δ| {s.agreement.max_abs_diff:.3g})"
        t.add_row(s.method,
                  f"{units.format_bytes(s.bytes_before)} → {units.format_bytes(s.bytes_after)}",
                  f"{s.ratio:.2f}", f"{s.macs_before:,} → {s.macs_after:,}", agreement,
                  f"{s.return_before.mean:.1f} ± {s.return_before.std:.1f}",
                  f"{s.return_after.mean:.1f} ± {s.return_after.std:.1f}",
                  f"{s.retention:.1%}", f"{s.total_retention:.1%}",
                  "PASS" if s.passed else "FAIL")  # fmt: skip
    console.print(t)
    g = report.gate
    ci = "" if g.mean_drop_ci95 is None else " (95 % CI {:.1%} … {:.1%})".format(*g.mean_drop_ci95)
    console.print(
        f"gate (final vs input, {g.episodes} paired episodes): mean {g.mean_before:.1f} → "
        f"{g.mean_after:.1f}, drop {g.mean_drop:.1%}{ci}; "
        f"worst 5 % ({g.tail_episodes} episode{'s' if g.tail_episodes > 1 else ''}) "
        f"{g.tail_before:.1f} → {g.tail_after:.1f}, drop {g.tail_drop:.1%}",
        markup=False,
    )
    for s in report.steps:
        if s.method == "cascade":  # its MACs column is the worst case
            p = s.params
            console.print(f"cascade: the small body ({p['macs_small']:,} MACs) decides "
                          f"{p['share_small']:.1%} alone ({p['share_measured_on']}); MACs per "
                          f"decision: mean {p['macs_mean']:,.0f} ({p['macs_mean_ratio']:.1%} of "
                          f"the full {p['macs_full']:,}), worst {p['macs_worst']:,}; "
                          f"{p['rule']} threshold {p['threshold']:.4g}", markup=False)  # fmt: skip
        if s.bytes_after > s.bytes_before:
            console.print(f"note: '{s.method}' made the policy larger ({s.bytes_before:,} → "
                          f"{s.bytes_after:,} B): its constants outweigh what it saved on so "
                          "few weights")  # fmt: skip
    if not report.passed:  # the advice first: the verdict stays the last line
        console.print(
            "The first FAIL row lost the return: try a gentler setting (--sparsity, --keep, "
            "--widths), --recover after pruning, or distill,int8 where action values are close."
        )
    verdict = "PASS" if report.passed else "FAIL"
    console.print(
        f"{verdict}: {units.format_bytes(report.bytes_before)} → "
        f"{units.format_bytes(report.bytes_after)} "
        f"({report.bytes_before / report.bytes_after:.2f}× smaller), return retention "
        f"{report.retention:.1%}, worst 5 % {1 - report.gate.tail_drop:.1%} "
        f"(limit: a drop of at most {report.max_return_drop:.1%}); policy written to {output}"
    )


def render_export(console: Console, info: dict[str, Any]) -> None:
    """The files an export wrote and its sizes: C (RAM, flash, libm, Cortex-M sections)
    or ONNX (nodes, opset, file size) or TFLite (operators, file size); ``info`` is the
    ``--json`` document."""
    for f in info["files"]:
        console.print(f"wrote {f}")
    if info["format"] == "onnx":
        console.print(f"{info['nodes']} nodes, opset {info['opset']}, "
                      f"{units.format_bytes(info['file_bytes'])}")  # fmt: skip
        return
    if info["format"] == "tflite":
        console.print(f"{info['operators']} operators, {units.format_bytes(info['file_bytes'])}")
        return
    console.print(
        f"RAM {units.format_bytes(info['ram_bytes'])} (static buffers), flash "
        f"{units.format_bytes(info['flash_bytes'])} (const arrays), libm "
        + ("needed" if info["needs_libm"] else "not needed")
    )
    if "learner" in info:
        lr = info["learner"]
        console.print(f"learner: {lr['algorithm']}, {lr['dtype']}, alpha {lr['alpha']:g}, gamma "
                      f"{lr['gamma']:g}, lambda {lr['lambda']:g}, epsilon {lr['epsilon']:g} "
                      f"(from {lr['source']}); RAM counts its state")  # fmt: skip
    cortex_m = info["cortex_m"]
    if not cortex_m["available"]:
        console.print(f"Cortex-M sizes: skipped, {cortex_m['note']}")
    for target, s in (cortex_m["targets"] or {}).items():
        console.print(f"{target} (arm-none-eabi-gcc -Os): .text {s['text']:,} B, "
                      f".data {s['data']:,} B, .bss {s['bss']:,} B")  # fmt: skip


def render_profile(console: Console, result: ProfileReport, report: Path | None) -> None:
    """The checks table, target and host latency, the return, notes, and the verdict
    last (the binding limit, and what would fit, when it fails)."""
    from rlbudget.profile.report import alternatives_text, headroom_text

    t = Table(title=f"{result.policy} on {result.device} ({result.format}), margin "
                    f"{result.margin:.0%}")  # fmt: skip
    for col in ("limit", "figure", "source", "with margin", "limit value", "status", "headroom"):
        t.add_column(col, justify="left" if col in ("limit", "source") else "right")
    for c in result.checks:
        style = {"PASS": "green", "FAIL": "red"}.get(c.status, "dim")
        t.add_row(c.limit, format_figure(c.figure, c.unit), c.source,
                  format_figure(c.with_margin, c.unit), format_figure(c.limit_value, c.unit),
                  f"[{style}]{c.status}[/{style}]", headroom_text(c))  # fmt: skip
    console.print(t)
    if result.footprint.build:
        console.print(f"C build: {result.footprint.build} (its flash, RAM"
                      f"{' and emulated latency' if result.one_build else ''})")  # fmt: skip
    host = result.host_latency
    lat = result.target_latency
    source = result.target_latency_source
    if any(c.limit == "inference.latency" and c.figure is None for c in result.checks):
        console.print(f"target latency: {result.target_latency_how}", markup=False, soft_wrap=True)
    else:
        console.print(f"target latency ({source}): {format_figure(lat.low, 's')} – "
                      f"{format_figure(lat.high, 's')}, "
                      f"{'mean' if source == 'emulated' else 'typical'} "
                      f"{format_figure(lat.typical, 's')}")  # fmt: skip
    if host is not None:
        console.print(f"host latency ({host.format}, measured over {host.calls} calls): p50 "
                      f"{format_figure(host.p50_s, 's')}, p90 {format_figure(host.p90_s, 's')}, "
                      f"p99 {format_figure(host.p99_s, 's')}")  # fmt: skip
    r = result.returns
    if r is not None:
        target = "none" if r.target is None else f"{r.target:g} ({r.target_from})"
        console.print(f"return: {r.mean:.2f} ± {r.std:.2f} over {r.episodes} episodes, "
                      f"target {target}")  # fmt: skip
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    if report is not None:
        console.print(f"report written to {report} (chart {report.with_suffix('.png')})")
    binding = result.binding
    if binding is None:
        console.print("PASS: every checked limit holds with the margin")
        return
    over = format_figure(binding.with_margin, binding.unit)
    limit = format_figure(binding.limit_value, binding.unit)
    if binding.unit == "return":
        console.print(f"FAIL: binding limit {binding.limit}: mean return {over} is below "
                      f"{limit}")  # fmt: skip
    else:
        way_out = f"; {alternatives_text(result)}" if result.alternatives else ""
        console.print(f"FAIL: binding limit {binding.limit}: {over} (with margin) exceeds "
                      f"{limit}{way_out}", markup=False)  # fmt: skip


def render_run(console: Console, report: RunReport) -> None:
    """The candidates ``rlbudget run`` tried, what it exported, and the verdict last."""
    t = Table(title=f"Candidates ({report.out})")
    for col in ("#", "candidate", "verdict", "binding", "flash", "RAM", "latency", "return"):
        t.add_column(col, justify="left" if col in ("candidate", "binding") else "right")
    for c in report.candidates:
        if c.error is not None:
            t.add_row(str(c.index), c.name, "error", c.error, "", "", "", "")
            continue
        t.add_row(str(c.index), c.name, *c.status(), _or_dash(c.flash_bytes, units.format_bytes),
                  _or_dash(c.ram_bytes, units.format_bytes),
                  _or_dash(c.latency_s, lambda v: f"{v * 1e6:.3g} µs"),
                  _or_dash(c.return_mean, lambda v: f"{v:.4g}"))  # fmt: skip
    console.print(t)
    if report.export:
        console.print(f"exported ({report.export.format}): {', '.join(report.export.files)}")
    curve = ", train/curve.png" if (report.out / "train" / "curve.png").is_file() else ""
    console.print(f"report: {report.out / 'report.md'} (report.json, profile.png, "
                  f"candidates.png{curve})")  # fmt: skip
    verdict = "FITS" if report.fits else "DOES NOT FIT"
    chosen = f": {report.chosen.name}" if report.chosen else ""
    console.print(f"{verdict}{chosen} — {report.advice} ({report.wall_s:.1f} s)")
