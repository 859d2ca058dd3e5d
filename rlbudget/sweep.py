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
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import itertools
import json
import math
import os
import statistics
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from rlbudget.budget import Budget, Task, load_budget
from rlbudget.errors import PlanError, RlbudgetError
from rlbudget.fileio import atomic_write_text

SCHEMA = "rlbudget.sweep/1"
STAGES = ("run", "train", "plan")
KEYS = {"name", "budgets", "devices", "envs", "seeds", "stage", "grid", "random"}
# Student's t, two-sided 95 %, by degrees of freedom (1..30); 1.96 beyond.
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
       2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
       2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


@dataclass(frozen=True)
class Trial:
    """One combination: a budget (file and device), env, seed and hyperparameters."""

    budget_file: str
    device: str | None
    env: str | None
    seed: int
    hyperparams: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """A stable folder name: readable parts and a hash of the whole."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
        parts = [Path(self.budget_file).stem, self.device, self.env, f"s{self.seed}"]
        readable = "-".join(p for p in parts if p).replace("/", "_").replace(":", "_")
        return f"{readable}-{digest.hexdigest()[:8]}"

    @property
    def group(self) -> tuple[str, str | None, str | None, str]:
        """The row a trial belongs to: everything but the seed."""
        return (self.budget_file, self.device, self.env,
                json.dumps(self.hyperparams, sort_keys=True))  # fmt: skip


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file."""

    name: str
    stage: str
    trials: tuple[Trial, ...]
    source: str


def _fail(source: str, message: str) -> PlanError:
    return PlanError(f"{source}: {message}")


def _list(doc: Mapping[str, Any], key: str, source: str, kind: type) -> list[Any] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(
            isinstance(v, kind) and not isinstance(v, bool) for v in value):  # fmt: skip
        raise _fail(source, f"'{key}' must be a non-empty list of {kind.__name__}s, not "
                            f"{json.dumps(value, default=str)}")  # fmt: skip
    return value


def _grid(spec: Any, source: str) -> list[dict[str, Any]]:
    if not isinstance(spec, dict) or set(spec) - {"hyperparams"}:
        raise _fail(source, "'grid' takes 'hyperparams': a mapping of name → list of values")
    params = spec.get("hyperparams") or {}
    if not isinstance(params, dict) or not all(isinstance(v, list) and v for v in params.values()):
        raise _fail(source, "grid.hyperparams: each name needs a non-empty list of values")
    names = sorted(params)
    return [dict(zip(names, values, strict=True))
            for values in itertools.product(*(params[n] for n in names))]  # fmt: skip


def _random(spec: Any, source: str, seed: int = 0) -> list[dict[str, Any]]:
    import numpy as np

    if not isinstance(spec, dict) or set(spec) - {"n", "hyperparams", "seed"}:
        raise _fail(source, "'random' takes 'n', 'hyperparams' and optionally 'seed'")
    n, params = spec.get("n"), spec.get("hyperparams") or {}
    if type(n) is not int or n < 1:
        raise _fail(source, f"random.n must be a whole number ≥ 1, not {n!r}")
    rng = np.random.default_rng(int(spec.get("seed", seed)))
    draws: list[dict[str, Any]] = [{} for _ in range(n)]
    for name in sorted(params):
        values = params[name]
        if not isinstance(values, list) or len(values) < 2:
            raise _fail(source, f"random.hyperparams.{name}: give [low, high] or a list of "
                                "3+ choices")  # fmt: skip
        for draw in draws:
            if len(values) == 2 and all(isinstance(v, int | float) for v in values):
                low, high = sorted(float(v) for v in values)
                if low > 0 and high / low >= 10:
                    value: Any = float(math.exp(rng.uniform(math.log(low), math.log(high))))
                else:
                    value = float(rng.uniform(low, high))
                if all(isinstance(v, int) for v in values):
                    value = round(value)
            else:
                value = values[int(rng.integers(len(values)))]
            draw[name] = value
    return draws


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file; every budget it names is loaded (and so checked).

    :raises PlanError: a missing file, unknown keys, bad lists, an unknown stage.
    :raises BudgetError: a budget file that does not load.
    """
    p = Path(path)
    source = str(path)
    if not p.is_file():
        raise _fail(source, "no such sweep file; see README 'Sweeps' for the format")
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _fail(source, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise _fail(source, "expected a mapping with 'budgets' (and devices, envs, seeds …)")
    unknown = set(doc) - KEYS
    if unknown:
        raise _fail(source, f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; known: "
                            f"{', '.join(sorted(KEYS))}")  # fmt: skip
    budgets = _list(doc, "budgets", source, str)
    if budgets is None:
        raise _fail(source, "'budgets' is missing: list one or more budget files")
    files = [str((p.parent / b) if not Path(b).is_absolute() else Path(b)) for b in budgets]
    for f in files:
        load_budget(f)  # fail now, not in a worker
    devices = _list(doc, "devices", source, str) or [None]
    envs = _list(doc, "envs", source, str) or [None]
    seeds = _list(doc, "seeds", source, int) or [0]
    if any(s < 0 for s in seeds):
        raise _fail(source, "seeds must be ≥ 0")
    stage = doc.get("stage", "run")
    if stage not in STAGES:
        raise _fail(source, f"stage '{stage}': use one of {', '.join(STAGES)}")
    if "grid" in doc and "random" in doc:
        raise _fail(source, "give 'grid' or 'random', not both")
    settings = ([{}] if "grid" not in doc and "random" not in doc
                else _grid(doc["grid"], source) if "grid" in doc
                else _random(doc["random"], source))  # fmt: skip
    if devices != [None]:
        from rlbudget.devices import get_device

        for d in devices:
            get_device(d)  # an unknown device fails here, with its did-you-mean
    trials = tuple(
        Trial(f, d, e, s, h)
        for f, d, e, h, s in itertools.product(files, devices, envs, settings, seeds)
    )
    return Sweep(str(doc.get("name", p.stem)), stage, trials, source)


def trial_budget(trial: Trial) -> Budget:
    """The budget of one trial: its file, with the device and env replaced if given."""
    from rlbudget.devices import get_device

    budget = load_budget(trial.budget_file)
    if trial.device is not None:
        budget = replace(budget, device=get_device(trial.device))
    if trial.env is not None:  # the budget's min_return holds only for its own env
        from rlbudget.limits import target_return

        own = target_return(budget.task, trial.env, None).value
        budget = replace(budget, task=Task(trial.env, own, budget.task.env_step_cost_s))
    return budget


def run_trial(trial: Trial, stage: str, folder: str) -> dict[str, Any]:
    """Run one trial in ``folder`` and return its result (also written as result.json).

    Never raises for a trial's own failure: the error is the result.
    """
    import time

    out = Path(folder)
    start = time.perf_counter()
    result: dict[str, Any] = {"trial": asdict(trial), "id": trial.id, "stage": stage}
    try:
        budget = trial_budget(trial)
        if stage == "plan":
            from rlbudget.plan import make_plan

            plan = make_plan(budget, trial.env)
            result.update(status="ok", fits=plan.fits)
            if plan.options:
                best = plan.options[0]
                result.update(option=best.label, flash_bytes=best.estimates.flash_bytes,
                              ram_bytes=best.estimates.ram_bytes,
                              latency_s=best.estimates.latency_s.typical)  # fmt: skip
        else:
            from rlbudget.run import run_job

            report = run_job(budget, out / "run", env_id=trial.env, seed=trial.seed,
                             overrides=trial.hyperparams, train_only=stage == "train")  # fmt: skip
            result.update(status="ok", **_summary(report.to_dict(), stage))
    except (RlbudgetError, Exception) as exc:  # a failed trial is a result, not a crash
        result.update(status="error", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=5))  # fmt: skip
    result["wall_s"] = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "result.json", json.dumps(result, indent=2, default=str) + "\n")
    return result


def _summary(run: dict[str, Any], stage: str) -> dict[str, Any]:
    train = run.get("train") or {}
    base = {"train_s": train.get("wall_s"), "train_steps": train.get("steps"),
            "last_eval_return": train.get("last_eval_return")}  # fmt: skip
    if stage == "train":
        return {**base, "fits": None}
    prof = run.get("profile") or {}
    figures = {c["limit"]: c.get("figure") for c in prof.get("checks", [])}
    ret = prof.get("return") or {}
    return {**base, "fits": run["fits"], "binding": prof.get("binding"),
            "chosen": (run.get("chosen") or {}).get("name"), "return": ret.get("mean"),
            "target": ret.get("target"), "flash_bytes": figures.get("inference.flash"),
            "ram_bytes": figures.get("inference.ram"),
            "latency_s": figures.get("inference.latency")}  # fmt: skip


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
               on_result: Callable[[dict[str, Any]], None]) -> None:  # fmt: skip
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
             on_result: Callable[[dict[str, Any]], None]) -> None:  # fmt: skip
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
    results: tuple[dict[str, Any], ...]
    rows: tuple[dict[str, Any], ...]
    skipped: int  # trials found finished (resume)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "name": self.name, "out": str(self.out),
                "skipped": self.skipped, "rows": list(self.rows),
                "trials": list(self.results)}  # fmt: skip


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

    def on_result(r: dict[str, Any]) -> None:
        what = r.get("error") or ("fits" if r.get("fits") else "does not fit")
        say(f"trial {r['id']}: {r['status']}: {what} ({r['wall_s']:.1f} s)")

    if todo:
        if ray:
            _run_ray(sweep, todo, out, ray_address, on_result)
        else:
            _run_local(sweep, todo, out, workers or default_workers(todo), on_result)
    results = tuple(json.loads((out / "trials" / t.id / "result.json").read_text("utf-8"))
                    for t in sweep.trials)  # fmt: skip
    rows = tuple(table(sweep, results))
    report = SweepReport(sweep.name, out, results, rows, skipped)
    _write(report, out)
    return report


def mean_ci95(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and the half-width of its 95 % confidence interval (Student's t; None for
    one value).

    >>> mean_ci95([1.0, 2.0, 3.0])
    (2.0, 2.4841)
    """
    if not values:
        return None, None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    t = T95[len(values) - 2] if len(values) - 1 <= len(T95) else 1.96
    return mean, round(t * statistics.stdev(values) / math.sqrt(len(values)), 4)


def table(sweep: Sweep, results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per budget × device × env × setting, across seeds."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for trial, r in zip(sweep.trials, results, strict=True):
        groups.setdefault(trial.group, []).append(r)
    rows = []
    for (budget_file, device, env, params), rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]

        def mean(key: str, among: list[dict[str, Any]] = ok) -> float | None:
            values = [r[key] for r in among if r.get(key) is not None]
            return statistics.fmean(values) if values else None

        ret, ci = mean_ci95([r["return"] for r in ok if r.get("return") is not None])
        fitting = [r for r in ok if r.get("fits")]
        if env is None:  # the budget's own task
            env = load_budget(budget_file).task.env_id
        rows.append({
            "budget": Path(budget_file).stem, "device": device, "env": env,
            "hyperparams": json.loads(params), "seeds": len(rs), "errors": len(rs) - len(ok),
            "fits": len(fitting), "return_mean": ret, "return_ci95": ci,
            "target": mean("target"), "flash_bytes": mean("flash_bytes", fitting or ok),
            "ram_bytes": mean("ram_bytes", fitting or ok),
            "latency_s": mean("latency_s", fitting or ok), "train_s": mean("train_s"),
        })  # fmt: skip
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
        ret = "—" if r["return_mean"] is None else f"{r['return_mean']:.4g}" + (
            "" if r["return_ci95"] is None else f" ± {r['return_ci95']:.3g}")  # fmt: skip
        setting = ", ".join(f"{k}={v}" for k, v in r["hyperparams"].items()) or "—"
        lines.append(
            f"| {r['budget']} | {r['device'] or '—'} | {r['env'] or '—'} | {setting} "
            f"| {r['fits']}/{r['seeds']}"
            + (f" ({r['errors']} failed)" if r["errors"] else "")
            + f" | {ret} | {size(r['flash_bytes'])} | {size(r['ram_bytes'])} | "
            + ("—" if r["latency_s"] is None else f"{r['latency_s'] * 1e6:.3g} µs")
            + " | "
            + ("—" if r["train_s"] is None else f"{r['train_s']:.1f} s")
            + " |"
        )
    failed = [r for r in report.results if r["status"] == "error"]
    if failed:
        lines += ["", "Failed trials:", ""] + [f"- `{r['id']}`: {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"


def _write(report: SweepReport, out: Path) -> None:
    data = report.to_dict()
    atomic_write_text(out / "results.json", json.dumps(data, indent=2, default=str) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for row in report.rows:
        writer.writerow({**row, "hyperparams": json.dumps(row["hyperparams"], sort_keys=True)})
    atomic_write_text(out / "results.csv", buffer.getvalue())
    atomic_write_text(out / "results.md", markdown(report))
    _plot(report, out / "results.png")


def _plot(report: SweepReport, path: Path) -> None:
    from rlbudget import charts

    rows = [r for r in report.rows if r["return_mean"] is not None][::-1]
    fig, ax = charts.figure(8, 0.45 * max(len(rows), 1) + 1.8)
    labels = [charts.wrap(" · ".join(str(x) for x in (r["budget"], r["device"], r["env"]) if x)
                          + (f" {r['hyperparams']}" if r["hyperparams"] else ""), 45)
              for r in rows]  # fmt: skip
    y = list(range(len(rows)))
    ax.barh(y, [r["return_mean"] for r in rows], xerr=[r["return_ci95"] or 0.0 for r in rows],
            color=["tab:green" if r["fits"] == r["seeds"] else "tab:orange" if r["fits"]
                   else "tab:red" for r in rows])  # fmt: skip
    ax.set_yticks(y, labels, fontsize=7)
    charts.target_marks(ax, y, [r.get("target") for r in rows])
    if any(r.get("target") is not None for r in rows):
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
