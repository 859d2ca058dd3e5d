"""``rlbudget sweep``: many budgets, devices, envs, seeds and settings at once.

A sweep file (YAML) lists what to combine; every combination is one **trial**::

    name: which-board                # free text
    budgets: [budgets/rp2040-frozenlake.yaml]   # relative to the sweep file
    devices: [rp2040, nrf52840]      # optional: each replaces the budgets' device
    envs: [FrozenLake-v1]            # optional: each replaces task.env
    seeds: [0, 1, 2]                 # default [0]
    stage: run                       # run (default), train or plan
    grid:                            # optional: every combination of these
      hyperparams: {alpha: [0.1, 0.5]}   #   training hyperparameters (the plan option's)
    random:                          # optional, instead of grid: n draws
      n: 4
      hyperparams: {alpha: [0.05, 0.5]}  #   [low, high]: uniform (log-uniform if both > 0
                                         #   and high/low ≥ 10); a list of 3+: a choice

A trial is ``rlbudget run`` (or only its plan, or plan and train) on one budget × env ×
seed × setting, in its own folder ``OUT/trials/ID/`` with ``result.json``. Trials run in
a local process pool (``workers``; default: the cores the machine has divided by the
largest ``training.cores``, so torch threads never oversubscribe) or as Ray tasks
(:func:`run_sweep` with ``ray=True``; ``rlbudget[ray]``), each requesting its budget's
``training.cores`` CPUs and ``training.ram`` memory. A trial that raises is recorded with
its error and never stops the sweep; running the sweep again skips trials whose
``result.json`` exists (resume).

Results, one row per budget × env (× setting) across seeds: how many seeds fit, the
return's mean with a 95 % confidence interval (Student's t over seeds), flash, RAM and
target latency of the chosen policies (means), training time. Written as
``results.csv``, ``results.json``, ``results.md`` and ``results.png``.

The sweep file is read by :mod:`rlbudget.sweepfile`; this module runs the trials and
writes the results.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import statistics
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlbudget.budget import load_budget
from rlbudget.errors import PlanError, RlbudgetError
from rlbudget.fileio import atomic_write_text
from rlbudget.stats import mean_ci95
from rlbudget.sweepfile import Sweep, Trial, load_sweep, trial_budget

if TYPE_CHECKING:
    from rlbudget.run import RunReport

SCHEMA = "rlbudget.sweep/1"

__all__ = ["Row", "SweepReport", "TrialResult", "load_sweep", "markdown", "run_sweep"]


@dataclass(frozen=True)
class TrialResult:
    """One trial's ``result.json``: its status and the figures its stage gives (plan: the
    first option's estimates; train: the training; run: the verdict and the chosen
    policy's figures); a failed trial has its error instead."""

    trial: Trial
    id: str
    stage: str
    status: str  # "ok" or "error"
    wall_s: float = 0.0
    error: str | None = None
    traceback: str | None = None
    fits: bool | None = None
    option: str | None = None  # plan: the first option's label
    train_s: float | None = None
    train_steps: int | None = None
    last_eval_return: float | None = None
    binding: str | None = None
    chosen: str | None = None
    return_mean: float | None = None  # "return" in the JSON
    target: float | None = None
    flash_bytes: float | None = None
    ram_bytes: float | None = None
    latency_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The keys of the stage that ran (the JSON of ``rlbudget.sweep/1``)."""
        data: dict[str, Any] = {"trial": self.trial.to_dict(), "id": self.id,
                                "stage": self.stage, "status": self.status}  # fmt: skip
        sizes = {"flash_bytes": self.flash_bytes, "ram_bytes": self.ram_bytes,
                 "latency_s": self.latency_s}  # fmt: skip
        training = {"train_s": self.train_s, "train_steps": self.train_steps,
                    "last_eval_return": self.last_eval_return}  # fmt: skip
        if self.status == "error":
            data.update(error=self.error, traceback=self.traceback)
        elif self.stage == "plan":
            data["fits"] = self.fits
            if self.option is not None:
                data.update(option=self.option, **sizes)
        elif self.stage == "train":
            data.update(**training, fits=self.fits)
        else:
            data.update(**training, fits=self.fits, binding=self.binding, chosen=self.chosen)
            data.update({"return": self.return_mean, "target": self.target, **sizes})
        return {**data, "wall_s": self.wall_s}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialResult:
        fields = {k: v for k, v in data.items() if k not in ("trial", "return")}
        return cls(trial=Trial.from_dict(data["trial"]), return_mean=data.get("return"),
                   **fields)  # fmt: skip


def run_trial(trial: Trial, stage: str, folder: str) -> TrialResult:
    """Run one trial in ``folder`` and return its result (also written as result.json).

    Never raises for a trial's own failure: the error is the result.
    """
    import time

    out = Path(folder)
    start = time.perf_counter()
    figures: dict[str, Any] = {}
    try:
        budget = trial_budget(trial)
        if stage == "plan":
            from rlbudget.plan import make_plan

            plan = make_plan(budget, trial.env)
            figures.update(status="ok", fits=plan.fits)
            if plan.options:
                best = plan.options[0]
                figures.update(option=best.label, flash_bytes=best.estimates.flash_bytes,
                               ram_bytes=best.estimates.ram_bytes,
                               latency_s=best.estimates.latency_s.typical)  # fmt: skip
        else:
            from rlbudget.run import run_job

            report = run_job(budget, out / "run", env_id=trial.env, seed=trial.seed,
                             overrides=trial.hyperparams, train_only=stage == "train")  # fmt: skip
            figures.update(status="ok", **_figures(report, stage))
    except (RlbudgetError, Exception) as exc:  # a failed trial is a result, not a crash
        figures = {"status": "error", "error": f"{type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc(limit=5)}  # fmt: skip
    result = TrialResult(trial, trial.id, stage, wall_s=time.perf_counter() - start, **figures)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result.to_dict(), indent=2, default=str) + "\n"
    atomic_write_text(out / "result.json", text)
    return result


def _figures(report: RunReport, stage: str) -> dict[str, Any]:
    """A run's figures for its trial result."""
    train = report.train
    base = {"train_s": train.wall_s, "train_steps": train.steps,
            "last_eval_return": train.last_eval_return}  # fmt: skip
    prof = report.profile
    if stage == "train" or prof is None:
        return base
    figures = {c.limit: c.figure for c in prof.checks}
    return {**base, "fits": report.fits, "binding": prof.binding,
            "chosen": None if report.chosen is None else report.chosen.name,
            "return_mean": prof.return_mean, "target": prof.target,
            "flash_bytes": figures.get("inference.flash"),
            "ram_bytes": figures.get("inference.ram"),
            "latency_s": figures.get("inference.latency")}  # fmt: skip


def read_result(path: Path) -> TrialResult:
    """A trial's result.json. :raises RlbudgetError: one this version cannot read."""
    try:
        return TrialResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise RlbudgetError(f"{path}: not a trial result this version of rlbudget wrote "
                            f"({exc}); delete it to run the trial again") from None  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One row of the results: a budget × device × env × setting, across seeds."""

    budget: str
    device: str | None
    env: str | None
    hyperparams: dict[str, Any]
    seeds: int
    errors: int
    fits: int
    return_mean: float | None
    return_ci95: float | None
    target: float | None
    flash_bytes: float | None
    ram_bytes: float | None
    latency_s: float | None
    train_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_workers(trials: Sequence[Trial]) -> int:
    """The machine's cores divided by the largest ``training.cores`` (1 if unset)."""
    cores = max((trial_budget(t).training.cores or 1) for t in trials) if trials else 1
    return max(1, (os.cpu_count() or 1) // cores)


def _pending(sweep: Sweep, out: Path) -> list[Trial]:
    return [t for t in sweep.trials if not (out / "trials" / t.id / "result.json").is_file()]


WATCHDOG_S = 0.5  # how often a pool worker checks that its parent is alive


def _worker_init(parent: int) -> None:
    """A pool worker dies with the sweep that started it, however the sweep ends (kill -9
    included): Linux's parent-death signal where there is one, and a watchdog thread that
    sees the worker re-parented. SIGINT (a Ctrl-C reaches the whole process group) is left
    to the parent, which stops the workers itself; SIGTERM ends a worker at once (every
    file is written atomically, and a trial's run resumes from its checkpoint)."""
    import signal
    import threading
    import time

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)

    def watchdog() -> None:
        while os.getppid() == parent:
            time.sleep(WATCHDOG_S)
        os.kill(os.getpid(), signal.SIGKILL)

    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watchdog, name="rlbudget-watchdog", daemon=True).start()


def _stop_workers(pool: Any) -> None:
    """End a pool's workers now (SIGTERM, then SIGKILL after 5 s) and drop queued trials."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for p in processes:
        with contextlib.suppress(OSError):
            p.terminate()
    for p in processes:
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join(1)
    pool.shutdown(wait=False, cancel_futures=True)


def _run_local(sweep: Sweep, trials: list[Trial], out: Path, workers: int,
               on_result: Callable[[TrialResult], None]) -> None:  # fmt: skip
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if workers == 1:
        for t in trials:
            on_result(run_trial(t, sweep.stage, str(out / "trials" / t.id)))
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                               initargs=(os.getpid(),))  # fmt: skip
    try:
        futures = [pool.submit(run_trial, t, sweep.stage, str(out / "trials" / t.id))
                   for t in trials]  # fmt: skip
        for f in as_completed(futures):
            on_result(f.result())
    except BaseException:  # Ctrl-C, SIGTERM (interrupt.Terminated) or a bug: no orphans
        _stop_workers(pool)
        raise
    pool.shutdown(wait=True)


def _run_ray(sweep: Sweep, trials: list[Trial], out: Path, address: str | None,
             on_result: Callable[[TrialResult], None]) -> None:  # fmt: skip
    try:
        import ray  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise PlanError("--ray needs Ray: pip install 'rlbudget[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(run_trial)
        refs = []
        for t in trials:
            training = trial_budget(t).training
            options: dict[str, Any] = {"num_cpus": training.cores or 1}
            if training.ram_bytes:
                options["memory"] = int(training.ram_bytes)
            refs.append(remote.options(**options).remote(t, sweep.stage,
                                                        str(out / "trials" / t.id)))  # fmt: skip
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            on_result(ray.get(done[0]))
    finally:
        if started:
            ray.shutdown()


@dataclass(frozen=True)
class SweepReport:
    """Every trial's result and the table across seeds."""

    name: str
    out: Path
    results: tuple[TrialResult, ...]
    rows: tuple[Row, ...]
    skipped: int  # trials found finished (resume)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "name": self.name, "out": str(self.out),
                "skipped": self.skipped, "rows": [r.to_dict() for r in self.rows],
                "trials": [r.to_dict() for r in self.results]}  # fmt: skip


def run_sweep(
    sweep: Sweep,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    ray: bool = False,
    ray_address: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> SweepReport:
    """Run every unfinished trial of ``sweep`` and write the results (module docstring)."""
    out = Path(out_dir)
    (out / "trials").mkdir(parents=True, exist_ok=True)
    say = progress or (lambda _m: None)
    todo = _pending(sweep, out)
    skipped = len(sweep.trials) - len(todo)
    if skipped:
        say(f"resume: {skipped} of {len(sweep.trials)} trials already finished")

    def on_result(r: TrialResult) -> None:
        what = r.error or ("fits" if r.fits else "does not fit")
        say(f"trial {r.id}: {r.status}: {what} ({r.wall_s:.1f} s)")

    if todo:
        if ray:
            _run_ray(sweep, todo, out, ray_address, on_result)
        else:
            _run_local(sweep, todo, out, workers or default_workers(todo), on_result)
    results = tuple(read_result(out / "trials" / t.id / "result.json") for t in sweep.trials)
    rows = tuple(table(sweep, results))
    report = SweepReport(sweep.name, out, results, rows, skipped)
    _write(report, out)
    return report


def table(sweep: Sweep, results: Sequence[TrialResult]) -> list[Row]:
    """One row per budget × device × env × setting, across seeds."""
    groups: dict[tuple[Any, ...], list[TrialResult]] = {}
    for trial, r in zip(sweep.trials, results, strict=True):
        groups.setdefault(trial.group, []).append(r)
    rows = []
    for (budget_file, device, env, params), rs in groups.items():
        ok = [r for r in rs if r.status == "ok"]
        fitting = [r for r in ok if r.fits]
        chosen = fitting or ok  # the sizes of the fitting policies, if any

        def mean(values: Sequence[float | None]) -> float | None:
            known = [v for v in values if v is not None]
            return statistics.fmean(known) if known else None

        ret, ci = mean_ci95([r.return_mean for r in ok if r.return_mean is not None])
        if env is None:  # the budget's own task
            env = load_budget(budget_file).task.env_id
        rows.append(Row(
            Path(budget_file).stem, device, env, json.loads(params), len(rs), len(rs) - len(ok),
            len(fitting), ret, ci, mean([r.target for r in ok]),
            mean([r.flash_bytes for r in chosen]), mean([r.ram_bytes for r in chosen]),
            mean([r.latency_s for r in chosen]), mean([r.train_s for r in ok]),
        ))  # fmt: skip
    return rows


COLUMNS = ("budget", "device", "env", "hyperparams", "seeds", "errors", "fits", "return_mean",
           "return_ci95", "target", "flash_bytes", "ram_bytes", "latency_s", "train_s")  # fmt: skip


def markdown(report: SweepReport) -> str:
    from rlbudget import units

    def size(v: float | None) -> str:
        return "—" if v is None else units.format_bytes(round(v))

    lines = [f"# Sweep: {report.name}", "",
             "| budget | device | env | setting | fits (seeds) | return (mean ± 95 % CI) "
             "| flash | RAM | latency | training |", "|---|---|---|---|---|---|---|---|---|"
             "---|"]  # fmt: skip
    for r in report.rows:
        ret = "—" if r.return_mean is None else f"{r.return_mean:.4g}" + (
            "" if r.return_ci95 is None else f" ± {r.return_ci95:.3g}")  # fmt: skip
        setting = ", ".join(f"{k}={v}" for k, v in r.hyperparams.items()) or "—"
        lines.append(
            f"| {r.budget} | {r.device or '—'} | {r.env or '—'} | {setting} "
            f"| {r.fits}/{r.seeds}"
            + (f" ({r.errors} failed)" if r.errors else "")
            + f" | {ret} | {size(r.flash_bytes)} | {size(r.ram_bytes)} | "
            + ("—" if r.latency_s is None else f"{r.latency_s * 1e6:.3g} µs")
            + " | "
            + ("—" if r.train_s is None else f"{r.train_s:.1f} s")
            + " |"
        )
    failed = [r for r in report.results if r.status == "error"]
    if failed:
        lines += ["", "Failed trials:", ""] + [f"- `{r.id}`: {r.error}" for r in failed]
    return "\n".join(lines) + "\n"


def _write(report: SweepReport, out: Path) -> None:
    data = report.to_dict()
    atomic_write_text(out / "results.json", json.dumps(data, indent=2, default=str) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for row in report.rows:
        writer.writerow({**row.to_dict(), "hyperparams": json.dumps(row.hyperparams,
                                                                    sort_keys=True)})  # fmt: skip
    atomic_write_text(out / "results.csv", buffer.getvalue())
    atomic_write_text(out / "results.md", markdown(report))
    _plot(report, out / "results.png")


def _plot(report: SweepReport, path: Path) -> None:
    from rlbudget import charts

    rows = [r for r in report.rows if r.return_mean is not None][::-1]
    fig, ax = charts.figure(8, 0.45 * max(len(rows), 1) + 1.8)
    labels = [charts.wrap(" · ".join(str(x) for x in (r.budget, r.device, r.env) if x)
                          + (f" {r.hyperparams}" if r.hyperparams else ""), 45)
              for r in rows]  # fmt: skip
    y = list(range(len(rows)))
    ax.barh(y, [r.return_mean for r in rows], xerr=[r.return_ci95 or 0.0 for r in rows],
            color=["tab:green" if r.fits == r.seeds else "tab:orange" if r.fits
                   else "tab:red" for r in rows])  # fmt: skip
    ax.set_yticks(y, labels, fontsize=7)
    charts.target_marks(ax, y, [r.target for r in rows])
    if any(r.target is not None for r in rows):
        ax.legend(fontsize=7, loc="best")
    ax.set_xlabel(
        charts.wrap(
            "mean return over seeds (95 % CI); green: every seed fits, "
            "orange: some, red: none; dashed: the return target",
            80,
        )
    )
    ax.set_title(charts.wrap(f"Sweep {report.name}", 70))
    charts.save(fig, path)
