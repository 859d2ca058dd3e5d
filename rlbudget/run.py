"""``rlbudget run``: a budget in, a policy that fits out (or the limit that binds).

Five stages, each recorded in ``OUT/state.json`` as it completes, so a killed run resumes
from its last completed stage (and a killed training from its checkpoint):

1. **plan** — :func:`rlbudget.plan.make_plan`; the first trainable option (or
   ``option``); ``OUT/plan.json``.
2. **train** — :func:`rlbudget.train.train_run` into ``OUT/train`` with the budget's
   training limits (resumed from ``OUT/train/checkpoint`` after a kill).
3. **compress** — candidates in order of expected cost, each compressed
   (:func:`rlbudget.compress.pipeline.compress`) and profiled against the budget
   (:func:`rlbudget.profile.verdict.profile`) until one passes every check with the margin,
   the return target included, and, when compressed, the compression gate: its mean return
   and its worst 5 % of episodes' (CVaR) each within 5 % of the trained policy's on the
   same seeded episodes (:class:`rlbudget.compress.pipeline.Gate`):

   - an MLP: as trained, ``int8``, ``prune-neurons`` keeping 50 % then 25 % with recovery
     + ``int8``, then ``distill`` into students of ¼ and ⅛ of the widest hidden layer
     (at least 4 units) + ``int8``;
   - a table: as trained, ``pack``, ``pack,drop-unvisited``;
   - a linear (tile-coded) policy: as trained, ``int16``, ``int8``.

   Each candidate is written to ``OUT/candidates/N-NAME/`` with its profile (``.json``,
   ``.md``, ``.png``), which the report reuses; a candidate
   that fails to build (a method error) is recorded with its error and skipped. When the
   policy as trained already misses the return target, the search stops there:
   compression does not raise a return.
4. **export** — the chosen candidate as C (``OUT/export``) for a microcontroller
   (``mcu``/``mcu-accel``), else the numpy policy folder: the format the search profiled.
5. **profile** — ``OUT/report.md`` (verdict, every check, candidates), ``OUT/report.json``
   (schema ``rlbudget.run/1``), ``OUT/profile.png`` (usage against each limit),
   ``OUT/candidates.png`` (return against flash and against latency for every candidate,
   the budget's limits drawn) and ``OUT/train/curve.png`` (the learning curve).

Without a fitting candidate the result names the binding limit of the closest one and
what would fit (``needs 18 KiB more RAM, or a device with ≥ 82 KiB``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlbudget import units
from rlbudget.budget import Budget
from rlbudget.compress.pipeline import MethodOptions
from rlbudget.errors import PlanError, RlbudgetError
from rlbudget.fileio import atomic_write_text, is_empty_dir
from rlbudget.limits import Check, advice, closeness
from rlbudget.policy.model import MLP, Policy
from rlbudget.profile.evaluate import default_episodes

SCHEMA = "rlbudget.run/1"
STAGES = ("plan", "train", "compress", "export", "profile")
STATE = "state.json"
INTERRUPTED = ("SIGINT", "SIGTERM")  # a training's stopped_by when a signal stopped it


@dataclass(frozen=True)
class CandidateSpec:
    """One compression to try: a name, the methods (None: the policy as trained) and options."""

    name: str
    methods: str | None
    options: MethodOptions = field(default_factory=MethodOptions)


def candidate_specs(policy: Policy) -> list[CandidateSpec]:
    """The candidates for ``policy``'s body, cheapest first (see the module docstring)."""
    kind = policy.body.kind
    if isinstance(policy.body, MLP):
        widest = max(int(layer.W.shape[1]) for layer in policy.body.layers[:-1]) if len(
            policy.body.layers) > 1 else 8  # fmt: skip
        depth = max(len(policy.body.layers) - 1, 1)
        specs = [CandidateSpec("as trained", None), CandidateSpec("int8", "int8")]
        for keep in (0.5, 0.25):
            options = MethodOptions(keep=keep, recover=True)
            specs.append(CandidateSpec(f"prune-neurons {keep:.0%} + recover + int8",
                                       "prune-neurons,int8", options))  # fmt: skip
        for part in (4, 8):
            width = max(4, widest // part)
            widths = (width,) * depth
            specs.append(CandidateSpec(f"distill {'-'.join(map(str, widths))} + int8",
                                       "distill,int8", MethodOptions(widths=widths)))  # fmt: skip
        return specs
    if kind == "table":
        return [CandidateSpec("as trained", None), CandidateSpec("pack", "pack"),
                CandidateSpec("pack + drop-unvisited", "pack,drop-unvisited")]  # fmt: skip
    if kind == "linear":
        return [CandidateSpec("as trained", None), CandidateSpec("int16", "int16"),
                CandidateSpec("int8", "int8")]  # fmt: skip
    return [CandidateSpec("as trained", None)]


@dataclass
class RunState:
    """What ``OUT/state.json`` holds: the run's identity and each completed stage."""

    key: str  # hash of the budget and env: a folder holds one job
    budget: str
    env: str | None
    stages: dict[str, Any] = field(default_factory=dict)
    # "running", "interrupted" (by SIGINT/SIGTERM; rerun to resume) or "done"
    status: str = "running"
    interrupted: dict[str, Any] | None = None  # signal, stage, steps done (training)

    def save(self, out: Path) -> None:
        atomic_write_text(out / STATE, json.dumps(asdict(self), indent=2) + "\n")


def job_key(budget: Budget, env_id: str | None, option: int | None, seed: int,
            overrides: dict[str, Any] | None = None) -> str:  # fmt: skip
    data = json.dumps({"budget": budget.to_dict(), "env": env_id, "option": option,
                       "seed": seed, "overrides": overrides or {}}, sort_keys=True,
                      default=str)  # fmt: skip
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def _open_state(out: Path, key: str, budget: Budget, env_id: str | None) -> RunState:
    path = out / STATE
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            state = RunState(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise RlbudgetError(f"{path}: not a run state rlbudget wrote ({exc}); choose "
                                "another -o") from None  # fmt: skip
        if state.key != key:
            raise RlbudgetError(
                f"{out}: holds a run of another budget, env, option or seed; resume it with "
                "the same arguments, or choose another -o"
            )
        return state
    if out.exists() and not is_empty_dir(out):
        raise RlbudgetError(f"{out}: exists and is not a run folder; choose another -o")
    out.mkdir(parents=True, exist_ok=True)
    state = RunState(key, budget.name, env_id)
    state.save(out)
    return state


@dataclass(frozen=True)
class RunReport:
    """The outcome of :func:`run_job`."""

    out: Path
    fits: bool
    resumed: tuple[str, ...]  # stages found complete at the start
    plan: dict[str, Any]
    train: dict[str, Any]
    candidates: tuple[dict[str, Any], ...]
    chosen: dict[str, Any] | None
    export: dict[str, Any] | None
    profile: dict[str, Any]
    advice: str
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "fits": self.fits, "out": str(self.out),
                "resumed": list(self.resumed), "plan": self.plan, "train": self.train,
                "candidates": list(self.candidates), "chosen": self.chosen,
                "export": self.export, "profile": self.profile, "advice": self.advice,
                "wall_s": self.wall_s}  # fmt: skip


Progress = Callable[[str], None]


def run_job(
    budget: Budget,
    out_dir: str | Path,
    *,
    env_id: str | None = None,
    option: int | None = None,
    seed: int = 0,
    episodes: int | None = None,
    progress: Progress | None = None,
    overrides: dict[str, Any] | None = None,
    train_only: bool = False,
) -> RunReport:
    """Plan, train, search compressions, export and profile (the module docstring).

    :param out_dir: the run folder; an existing one of the same job is resumed.
    :param option: the plan option to train (1-based; default: the first trainable).
    :param episodes: episodes per return measurement (candidates and the final profile);
        default :func:`default_episodes` of the env.
    :param overrides: hyperparameters that replace the plan option's (``rlbudget sweep``).
    :param train_only: stop after training (the report then has no candidates).
    :raises RlbudgetError: bad input, a folder holding something else, nothing trainable.
    """
    from rlbudget.fileio import check_unlocked, dir_lock

    out = Path(out_dir)
    key = job_key(budget, env_id, option, seed, overrides or {})
    check_unlocked(out)  # a running job's folder: say so, not "another run"
    _open_state(out, key, budget, env_id)  # creates the folder, or checks it is this job's
    with dir_lock(out):
        state = _open_state(out, key, budget, env_id)  # as the last holder left it
        try:
            return _run_stages(budget, out, state, env_id, option, seed, episodes,
                               progress or (lambda _msg: None), overrides, train_only)  # fmt: skip
        except KeyboardInterrupt as exc:
            from rlbudget import interrupt

            name = interrupt.signal_name(exc)
            stage = next((s for s in STAGES if s not in state.stages), STAGES[-1])
            state.status = "interrupted"
            state.interrupted = {"signal": name, "stage": stage,
                                 **getattr(exc, "details", {})}  # fmt: skip
            state.save(out)
            steps = state.interrupted.get("steps")
            where = "" if steps is None else f", training checkpoint at step {steps:,}"
            raise interrupt.Interrupted(
                name,
                f"interrupted by {name} during {stage}: state saved in {out / STATE}{where}; "
                "run the same command again to resume",
            ) from None


def _run_stages(budget: Budget, out: Path, state: RunState, env_id: str | None,
                option: int | None, seed: int, episodes: int | None, say: Progress,
                overrides: dict[str, Any] | None, train_only: bool) -> RunReport:  # fmt: skip
    start = time.perf_counter()
    resumed = tuple(s for s in STAGES if s in state.stages)
    if state.status == "interrupted" and state.interrupted:
        say(f"resuming {out}: interrupted by {state.interrupted['signal']} during "
            f"{state.interrupted['stage']}")  # fmt: skip
    if resumed:
        say(f"resuming {out}: done before: {', '.join(resumed)}")
    if state.status != "running":
        state.status, state.interrupted = "running", None
        state.save(out)

    if "plan" not in state.stages:
        state.stages["plan"] = _plan_stage(budget, env_id, option, out)
        state.save(out)
    plan = state.stages["plan"]
    say(f"plan: {plan['label']} (option {plan['option']})")
    if episodes is None:
        episodes = default_episodes(plan.get("max_episode_steps"))

    if "train" not in state.stages:
        params = {**plan["params"], **(overrides or {})}
        state.stages["train"] = _train_stage(budget, {**plan, "params": params}, seed, out, say)
        state.save(out)
    train = state.stages["train"]
    if train_only:
        return RunReport(out, False, resumed, plan, train, (), None, None, {},
                         "trained only (no compression, export or profile)",
                         time.perf_counter() - start)  # fmt: skip

    if "compress" not in state.stages:
        state.stages["compress"] = _compress_stage(budget, plan, out, state, episodes, seed, say)
        state.save(out)
    compress = state.stages["compress"]
    chosen = compress["chosen"]

    if "export" not in state.stages:
        state.stages["export"] = _export_stage(budget, compress, out)
        state.save(out)
    export = state.stages["export"]

    if "profile" not in state.stages:
        state.stages["profile"] = _report_stage(budget, state, out)
        state.save(out)
    if state.status != "done":
        state.status = "done"
        state.save(out)
    final = state.stages["profile"]
    return RunReport(out, chosen is not None, resumed, plan, train,
                     tuple(compress["candidates"]), chosen, export, final["profile"],
                     final["advice"], time.perf_counter() - start)  # fmt: skip


# --- stages --------------------------------------------------------------------------------


def _plan_stage(budget: Budget, env_id: str | None, option: int | None, out: Path) -> Any:
    from rlbudget.plan import make_plan

    plan = make_plan(budget, env_id)
    atomic_write_text(out / "plan.json", json.dumps(plan.to_dict(), indent=2, default=str))
    options = list(plan.options)
    if option is not None:
        if not 1 <= option <= len(options):
            raise PlanError(f"--option {option}: the plan has {len(options)} options")
        index = option - 1
        if not options[index].trainable:
            raise PlanError(f"--option {option} ({options[index].label}) cannot be trained by "
                            "rlbudget; choose a trainable option (rlbudget plan)")  # fmt: skip
    else:
        trainable = [i for i, o in enumerate(options) if o.trainable]
        if not trainable:
            raise PlanError("no option of the plan can be trained by rlbudget; see rlbudget plan")
        index = trainable[0]
    chosen = options[index]
    return {"option": index + 1, "label": chosen.label, "algorithm": chosen.algorithm,
            "env": plan.env.env_id, "params": dict(chosen.hyperparams),
            "fits_estimate": chosen.fits, "reward_threshold": plan.env.reward_threshold,
            "max_episode_steps": plan.env.max_episode_steps}  # fmt: skip


def _train_stage(budget: Budget, plan: dict[str, Any], seed: int, out: Path,
                 say: Progress) -> Any:  # fmt: skip
    from rlbudget.train import (
        Limits,
        ProgressLog,
        load_settings,
        resolve,
        start_step,
        train_run,
    )

    run_dir = out / "train"
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if summary.get("stopped_by") not in INTERRUPTED:
            say("train: finished before the kill; not run again")
            return summary  # killed after training, before the stage was recorded
    if (run_dir / "checkpoint").is_dir():
        say("train: resuming from the checkpoint of the killed run")
        settings = load_settings(run_dir)
        log = ProgressLog(settings.n_timesteps, say, start_step=start_step(run_dir))
        result = train_run(settings, run_dir, resume=True, on_progress=log, say=say)
    else:
        if run_dir.exists():
            say(f"train: {run_dir} has no checkpoint (killed before the first one); "
                "starting the training over")  # fmt: skip
            shutil.rmtree(run_dir)
        limits = Limits.from_budget(budget)
        settings = resolve(
            plan["algorithm"], plan["env"], env_steps=limits.env_steps, time_s=limits.time_s,
            min_return=limits.min_return, reward_threshold=plan["reward_threshold"], seed=seed,
            overrides=plan["params"], ram_bytes=limits.ram_bytes, cores=limits.cores,
            margin=limits.margin,
        )  # fmt: skip
        say(f"train: {settings.algorithm} on {settings.env_id}, up to "
            f"{units.format_count(settings.n_timesteps)} steps, target "
            f"{settings.target_return}")  # fmt: skip
        result = train_run(settings, run_dir, on_progress=ProgressLog(settings.n_timesteps, say),
                           say=say)  # fmt: skip
    summary = result.to_dict()
    if result.stopped_by in INTERRUPTED:  # checkpoint saved; the job stops here
        from rlbudget.interrupt import Interrupted

        raise Interrupted(result.stopped_by, "", details={"steps": result.steps})
    say(f"train: stopped by {summary['stopped_by']} after {summary['steps']:,} steps, "
        f"{summary['wall_s']:.1f} s; last evaluation {summary['last_eval_return']}")  # fmt: skip
    return summary


def _candidate_dir(out: Path, i: int, spec: CandidateSpec) -> Path:
    slug = "".join(c if c.isalnum() else "-" for c in spec.name).strip("-")
    return out / "candidates" / f"{i}-{slug}"


def _compress_stage(budget: Budget, plan: dict[str, Any], out: Path, state: RunState,
                    episodes: int, seed: int, say: Progress) -> Any:  # fmt: skip
    from rlbudget.compress.pipeline import DEFAULT_MAX_RETURN_DROP, compress
    from rlbudget.policy import load_policy, save_policy
    from rlbudget.profile.report import markdown, usage_chart
    from rlbudget.profile.verdict import default_format, profile

    trained = load_policy(out / "train" / "policy")
    fmt = default_format(budget)
    partial = state.stages.setdefault("compress-partial", {"candidates": []})
    done = {c["index"]: c for c in partial["candidates"]}
    chosen = next((c for c in done.values() if c.get("fits")), None)
    specs = candidate_specs(trained)
    first = _candidate_dir(out, 0, specs[0])
    for i, spec in enumerate(specs):
        if chosen is not None:
            break
        if i > 0 and _hopeless(done.get(0), first):
            say("the trained policy misses the return target; no compression can fix that")
            break
        if i in done:
            continue
        folder = _candidate_dir(out, i, spec)
        record: dict[str, Any] = {"index": i, "name": spec.name, "methods": spec.methods,
                                  "policy": str(folder / "policy")}  # fmt: skip
        gate_passed = True
        try:
            policy = trained
            if spec.methods is not None:
                # the compression gate, as `rlbudget compress` holds it: mean and worst-5 %
                # return against the trained policy's, on the same seeded episodes
                report = compress(trained, spec.methods, plan["env"], episodes=episodes,
                                  seed=seed, max_return_drop=DEFAULT_MAX_RETURN_DROP,
                                  options=spec.options)  # fmt: skip
                policy = report.policy
                record["retention"] = report.retention
                record["gate"] = report.gate.to_dict()
                gate_passed = report.passed
            save_policy(policy, folder / "policy", parents=True)
            prof = profile(policy, budget, fmt=fmt, env_id=plan["env"], episodes=episodes,
                           seed=seed, policy_name=str(folder / "policy"))  # fmt: skip
        except RlbudgetError as exc:
            record.update(fits=False, error=str(exc))
            say(f"candidate {i} ({spec.name}): error: {exc}")
        else:
            data = prof.to_dict()
            atomic_write_text(folder / "profile.json", json.dumps(data, indent=2) + "\n")
            # the report of this candidate now, so the final stage need not profile again
            atomic_write_text(folder / "profile.md", markdown(prof, "profile.png"))
            usage_chart(prof, folder / "profile.png")
            checks = {c["limit"]: c for c in data["checks"]}
            record.update(
                fits=prof.verdict == "PASS" and gate_passed, binding=data["binding"],
                flash_bytes=prof.footprint.flash_bytes, ram_bytes=prof.footprint.ram_bytes,
                latency_s=checks["inference.latency"]["figure"],
                return_mean=None if prof.returns is None else prof.returns.mean,
                verdict=prof.verdict,
            )  # fmt: skip
            say(f"candidate {i} ({spec.name}): {prof.verdict}"
                + (f", binding {data['binding']}" if data["binding"] else "")
                + ("" if gate_passed else "; compression gate FAIL: "
                   + _gate_words(record["gate"]))
                + f"; flash {units.format_bytes(prof.footprint.flash_bytes)}, return "
                f"{record['return_mean']}")  # fmt: skip
        partial["candidates"].append(record)
        done[i] = record
        state.save(out)  # a kill from here on resumes after this candidate
        if record["fits"]:
            chosen = record
    candidates = partial["candidates"]
    state.stages.pop("compress-partial", None)
    return {"format": fmt, "candidates": candidates, "chosen": chosen}


def candidate_status(candidate: dict[str, Any]) -> tuple[str, str]:
    """A built candidate's verdict and binding limit as the tables show them: a profile
    that passes but a compression gate that fails reads ``PASS, gate FAIL`` and binds at
    ``compression gate``."""
    gate_failed = candidate.get("gate", {}).get("passed") is False
    verdict = candidate["verdict"] + (", gate FAIL" if gate_failed else "")
    binding = candidate["binding"] or ("compression gate" if gate_failed else "—")
    return verdict, binding


def _gate_words(gate: dict[str, Any]) -> str:
    """A gate's two drops in words (``Gate.to_dict()``)."""
    return (f"return mean drop {gate['mean_drop']:.1%}, worst 5 % drop {gate['tail_drop']:.1%} "
            f"(limit {gate['max_return_drop']:.0%})")  # fmt: skip


def _hopeless(first: dict[str, Any] | None, folder: Path) -> bool:
    """Whether the policy as trained (the first candidate, profiled in ``folder``) misses
    the return target: compression never raises a return, so the search ends there."""
    if first is None or "error" in first or first.get("fits"):
        return False
    data = json.loads((folder / "profile.json").read_text(encoding="utf-8"))
    return any(c["limit"] == "task.min_return" and c["status"] == "FAIL" for c in data["checks"])


def _export_stage(budget: Budget, compress: dict[str, Any], out: Path) -> Any:
    from rlbudget.policy import load_policy

    chosen = compress["chosen"]
    if chosen is None:
        return None
    policy = load_policy(chosen["policy"])
    target = out / "export"
    if target.exists():
        shutil.rmtree(target)  # a half-finished export of a killed run
    if compress["format"] == "c":
        from rlbudget.export.c import export_c

        return {"format": "c", **export_c(policy, target).to_dict()}
    # elsewhere the numpy policy is what was profiled (its runtime is smaller than
    # onnxruntime's); `rlbudget export --format onnx` writes the ONNX graph of it
    shutil.copytree(chosen["policy"], target)
    return {"format": "numpy", "files": [str(p) for p in sorted(target.iterdir())]}


def _report_stage(budget: Budget, state: RunState, out: Path) -> Any:
    compress = state.stages["compress"]
    chosen = compress["chosen"]
    closest = chosen or _closest(compress["candidates"])
    if closest is None:
        raise RlbudgetError("no candidate could be built; see the errors in "
                            f"{out / STATE}")  # fmt: skip
    # the final (or closest) candidate's profile, report and chart, written by the search
    folder = Path(closest["policy"]).parent
    data = json.loads((folder / "profile.json").read_text(encoding="utf-8"))
    if chosen:
        advice = "fits: every limit holds with the margin"
    elif data["binding"] is None and closest.get("gate", {}).get("passed") is False:
        advice = (f"'{closest['name']}' fits every limit but loses return in compression "
                  f"({_gate_words(closest['gate'])}); train longer for a policy with more "
                  "return to spare, or try gentler settings with rlbudget compress")  # fmt: skip
    else:
        advice = _advice(budget, data)
    shutil.copyfile(folder / "profile.png", out / "profile.png")
    _candidates_chart(
        budget,
        compress["candidates"],
        out / "candidates.png",
        target=(data.get("return") or {}).get("target"),
    )
    text = (folder / "profile.md").read_text(encoding="utf-8").replace(
        "# Profile:", "# rlbudget run: profile of", 1)  # fmt: skip
    text += _candidates_markdown(compress["candidates"], chosen, advice)
    atomic_write_text(out / "report.md", text)
    report = {"schema": SCHEMA, "fits": chosen is not None, "advice": advice,
              "profile": data, "candidates": compress["candidates"], "chosen": chosen,
              "plan": state.stages["plan"], "train": state.stages["train"],
              "export": state.stages.get("export")}  # fmt: skip
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    return {"profile": data, "advice": advice}


def _closest(candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The built candidate whose binding check is least over its limit."""
    built = [c for c in candidates if "error" not in c]
    if not built:
        return None

    def near(c: dict[str, Any]) -> tuple[float, float]:
        data = json.loads((Path(c["policy"]).parent / "profile.json").read_text("utf-8"))
        return closeness(Check.from_dict(k) for k in data["checks"])

    return max(built, key=near)


def _advice(budget: Budget, data: dict[str, Any]) -> str:
    """What would fit, in words, from the closest candidate's binding check."""
    binding = next(c for c in data["checks"] if c["limit"] == data["binding"])
    return advice(Check.from_dict(binding), budget.margin)


def _candidates_markdown(candidates: list[dict[str, Any]], chosen: dict[str, Any] | None,
                         advice: str) -> str:  # fmt: skip
    lines = ["", "## Candidates tried", "",
             "| # | candidate | verdict | binding | flash | RAM | latency (target) | return |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in candidates:
        if "error" in c:
            lines.append(f"| {c['index']} | {c['name']} | error | {c['error']} | | | | |")
            continue
        verdict, binding = candidate_status(c)
        lines.append(
            f"| {c['index']} | {c['name']} | {verdict} | {binding} "
            f"| {units.format_bytes(c['flash_bytes'])} | {units.format_bytes(c['ram_bytes'])} "
            f"| {c['latency_s'] * 1e6:.3g} µs | "
            + ("—" if c["return_mean"] is None else f"{c['return_mean']:.4g}")
            + " |"
        )
    lines += ["", f"**Result:** {'candidate ' + chosen['name'] if chosen else 'nothing fits'}"
              f" — {advice}.", "",
              "![return against flash and latency](candidates.png)", ""]  # fmt: skip
    return "\n".join(lines)


def _candidates_chart(
    budget: Budget, candidates: list[dict[str, Any]], path: Path, target: float | None = None
) -> None:
    from rlbudget import charts

    built = [c for c in candidates if "error" not in c and c["return_mean"] is not None]
    fig, axes = charts.figure(10, 4.4, ncols=2)
    for ax, key, limit, label in (
        (axes[0], "flash_bytes", budget.inference.flash_bytes, "flash (bytes)"),
        (axes[1], "latency_s", budget.inference.latency_s, "decision latency on the target (s)"),
    ):
        for c in built:
            color = "tab:green" if c["fits"] else "tab:red"
            ax.scatter(c[key], c["return_mean"], color=color)
            ax.annotate(c["name"], (c[key], c["return_mean"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")  # fmt: skip
        if limit is not None:
            ax.axvline(limit / (1 + budget.margin), color="black", linestyle=":",
                       linewidth=1, label="limit ÷ (1 + margin)")  # fmt: skip
        charts.target_line(ax, target)
        if limit is not None or target is not None:
            ax.legend(fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("mean return")
    fig.suptitle(charts.wrap("Candidates tried (green: fits the budget, red: does not)", 90))
    charts.save(fig, path)
