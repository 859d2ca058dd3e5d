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

   - an MLP: as trained, ``int8``, where the plan deploys a cascade (rule ``cascade``)
     ``int8 + cascade``, then ``prune-neurons`` keeping 50 % then 25 % with recovery
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

A contextual bandit (the plan's option is one) goes through the same stages;
:mod:`rlbudget.bandits.job` trains it and, with logged data only, takes the DR off-policy
estimate as its value (no episodes: the trained policy is the only candidate). Under
``inference.learn`` the export is the on-device learner (``export --learn``) where the
policy has one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rlbudget import units
from rlbudget.bandits import job as bandit_job
from rlbudget.budget import Budget
from rlbudget.candidates import (
    Candidate,
    CandidateSpec,
    ProfileRecord,
    Search,
    advice,
    candidate_specs,
    candidates_chart,
    candidates_markdown,
    closest,
    gate_words,
    hopeless,
)
from rlbudget.errors import RlbudgetError
from rlbudget.fileio import atomic_write_text, is_empty_dir
from rlbudget.plan import PlanChoice, SavedPlan
from rlbudget.profile.evaluate import default_episodes
from rlbudget.train.folder import TrainSummary, read_summary

SCHEMA = "rlbudget.run/1"
STAGES = ("plan", "train", "compress", "export", "profile")
STATE = "state.json"
INTERRUPTED = ("SIGINT", "SIGTERM")  # a training's stopped_by when a signal stopped it

__all__ = ["STATE", "RunReport", "candidate_specs", "default_episodes", "run_job"]


@dataclass(frozen=True)
class Export:
    """What the export stage wrote: C (with its sizes) or the numpy policy folder."""

    format: str
    files: tuple[str, ...]
    ram_bytes: int | None = None  # C only
    flash_bytes: int | None = None
    needs_libm: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": self.format, "files": list(self.files)}
        if self.format == "c":
            data.update(ram_bytes=self.ram_bytes, flash_bytes=self.flash_bytes,
                        needs_libm=self.needs_libm)  # fmt: skip
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Export:
        return cls(**{**data, "files": tuple(data["files"])})


@dataclass(frozen=True)
class Outcome:
    """The profile stage: the final (or closest) candidate's profile and the advice."""

    profile: ProfileRecord
    advice: str

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile.to_dict(), "advice": self.advice}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(ProfileRecord.from_dict(data["profile"]), data["advice"])


@dataclass(frozen=True)
class Interruption:
    """The signal that stopped a job, the stage it stopped in, and (training) the steps
    its checkpoint holds."""

    signal: str
    stage: str
    steps: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"signal": self.signal, "stage": self.stage}
        return data if self.steps is None else {**data, "steps": self.steps}


@dataclass
class RunState:
    """What ``OUT/state.json`` holds: the run's identity and each completed stage's record
    (``stages`` on disk, by stage name; ``compress-partial`` while the search runs)."""

    key: str  # hash of the budget and env: a folder holds one job
    budget: str
    env: str | None
    plan: PlanChoice | None = None
    train: TrainSummary | None = None
    tried: list[Candidate] | None = None  # the search so far ("compress-partial")
    search: Search | None = None
    exported: bool = False  # the export stage ran (export None: nothing to export)
    export: Export | None = None
    outcome: Outcome | None = None
    # "running", "interrupted" (by SIGINT/SIGTERM; rerun to resume) or "done"
    status: str = "running"
    interrupted: Interruption | None = None

    def done(self) -> tuple[str, ...]:
        """The stages completed, in order."""
        flags = (self.plan is not None, self.train is not None, self.search is not None,
                 self.exported, self.outcome is not None)  # fmt: skip
        return tuple(stage for stage, ok in zip(STAGES, flags, strict=True) if ok)

    def to_dict(self) -> dict[str, Any]:
        stages: dict[str, Any] = {}
        if self.plan is not None:
            stages["plan"] = self.plan.to_dict()
        if self.train is not None:
            stages["train"] = self.train.to_dict()
        if self.tried is not None:
            stages["compress-partial"] = {"candidates": [c.to_dict() for c in self.tried]}
        if self.search is not None:
            stages["compress"] = self.search.to_dict()
        if self.exported:
            stages["export"] = None if self.export is None else self.export.to_dict()
        if self.outcome is not None:
            stages["profile"] = self.outcome.to_dict()
        return {"key": self.key, "budget": self.budget, "env": self.env, "stages": stages,
                "status": self.status,
                "interrupted": None if self.interrupted is None
                else self.interrupted.to_dict()}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunState:
        """:raises KeyError, TypeError, ValueError: not a state this version wrote."""
        stages = data["stages"]
        tried, search = stages.get("compress-partial"), stages.get("compress")
        export, outcome = stages.get("export"), stages.get("profile")
        interrupted = data.get("interrupted")
        return cls(
            data["key"], data["budget"], data["env"],
            plan=PlanChoice.from_dict(stages["plan"]) if "plan" in stages else None,
            train=TrainSummary.from_dict(stages["train"]) if "train" in stages else None,
            tried=None if tried is None else [Candidate.from_dict(c)
                                              for c in tried["candidates"]],
            search=None if search is None else Search.from_dict(search),
            exported="export" in stages,
            export=None if export is None else Export.from_dict(export),
            outcome=None if outcome is None else Outcome.from_dict(outcome),
            status=data.get("status", "running"),
            interrupted=None if interrupted is None else Interruption(**interrupted),
        )  # fmt: skip

    def save(self, out: Path) -> None:
        atomic_write_text(out / STATE, json.dumps(self.to_dict(), indent=2) + "\n")


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
            state = RunState.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as exc:
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
    plan: PlanChoice
    train: TrainSummary
    candidates: tuple[Candidate, ...]
    chosen: Candidate | None
    export: Export | None
    profile: ProfileRecord | None  # None: trained only
    advice: str
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "fits": self.fits, "out": str(self.out),
                "resumed": list(self.resumed), "plan": self.plan.to_dict(),
                "train": self.train.to_dict(),
                "candidates": [c.to_dict() for c in self.candidates],
                "chosen": None if self.chosen is None else self.chosen.to_dict(),
                "export": None if self.export is None else self.export.to_dict(),
                "profile": {} if self.profile is None else self.profile.to_dict(),
                "advice": self.advice, "wall_s": self.wall_s}  # fmt: skip


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
    from rlbudget.env_kwargs import env_kwargs_applied

    out = Path(out_dir)
    key = job_key(budget, env_id, option, seed, overrides or {})
    # task.env_kwargs: the whole job (training, candidates' returns, the profile) sees them
    with env_kwargs_applied(env_id or budget.task.env_id or "", budget.task.env_kwargs):
        return _run_locked(budget, out, key, env_id, option, seed, episodes, progress,
                           overrides, train_only)  # fmt: skip


def _run_locked(budget: Budget, out: Path, key: str, env_id: str | None, option: int | None,
                seed: int, episodes: int | None, progress: Progress | None,
                overrides: dict[str, Any] | None, train_only: bool) -> RunReport:  # fmt: skip
    from rlbudget.fileio import check_unlocked, dir_lock

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
            stage = next((s for s in STAGES if s not in state.done()), STAGES[-1])
            steps = getattr(exc, "details", {}).get("steps")
            state.status = "interrupted"
            state.interrupted = Interruption(name, stage, steps)
            state.save(out)
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
    resumed = state.done()
    if state.status == "interrupted" and state.interrupted:
        say(f"resuming {out}: interrupted by {state.interrupted.signal} during "
            f"{state.interrupted.stage}")  # fmt: skip
    if resumed:
        say(f"resuming {out}: done before: {', '.join(resumed)}")
    if state.status != "running":
        state.status, state.interrupted = "running", None
        state.save(out)

    if state.plan is None:
        state.plan = _plan_stage(budget, env_id, option, out)
        state.save(out)
    plan = state.plan
    say(f"plan: {plan.label} (option {plan.option})")
    if episodes is None:
        episodes = default_episodes(plan.max_episode_steps)

    if state.train is None:
        choice = replace(plan, params={**plan.params, **(overrides or {})})
        state.train = _train_stage(budget, choice, seed, out, say)
        state.save(out)
    train = state.train
    if train_only:
        return RunReport(out, False, resumed, plan, train, (), None, None, None,
                         "trained only (no compression, export or profile)",
                         time.perf_counter() - start)  # fmt: skip

    if state.search is None:
        state.search = _compress_stage(budget, plan, out, state, episodes, seed, say)
        state.save(out)
    search = state.search

    if not state.exported:
        state.export, state.exported = _export_stage(search, out, budget), True
        state.save(out)

    if state.outcome is None:
        state.outcome = _report_stage(budget, state, search, out)
        state.save(out)
    if state.status != "done":
        state.status = "done"
        state.save(out)
    return RunReport(out, search.chosen is not None, resumed, plan, train, search.candidates,
                     search.chosen, state.export, state.outcome.profile, state.outcome.advice,
                     time.perf_counter() - start)  # fmt: skip


# --- stages --------------------------------------------------------------------------------


def _plan_stage(budget: Budget, env_id: str | None, option: int | None, out: Path) -> PlanChoice:
    from rlbudget.plan import make_plan

    doc = make_plan(budget, env_id).to_dict()
    atomic_write_text(out / "plan.json", json.dumps(doc, indent=2, default=str))
    return SavedPlan.from_dict(doc).choose(option)


def _train_stage(budget: Budget, plan: PlanChoice, seed: int, out: Path,
                 say: Progress) -> TrainSummary:  # fmt: skip
    from rlbudget.train import (
        Limits,
        ProgressLog,
        load_settings,
        resolve,
        start_step,
        train_run,
    )

    run_dir = out / "train"
    if bandit_job.is_bandit_choice(plan):  # rlbudget.bandits: one decision per episode
        bandit = bandit_job.train_stage(budget, plan, seed, run_dir)
        say(f"train: {bandit.algorithm} on {bandit.env}: {bandit.steps:,} decisions in "
            f"{bandit.wall_s:.1f} s; value {bandit.last_eval_return:.4f}")  # fmt: skip
        return bandit
    summary = read_summary(run_dir)
    if summary is not None and summary.stopped_by not in INTERRUPTED:
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
            plan.algorithm, plan.env, env_steps=limits.env_steps, time_s=limits.time_s,
            min_return=limits.min_return, reward_threshold=plan.reward_threshold, seed=seed,
            overrides=plan.params, ram_bytes=limits.ram_bytes, cores=limits.cores,
            margin=limits.margin, env_step_cost_s=limits.env_step_cost_s,
        )  # fmt: skip
        from rlbudget.agents.prior import IMITATION, check_prior

        task = budget.task  # the plan's prior-knowledge option learns from the budget's teacher
        imitates = settings.algorithm in IMITATION
        settings = check_prior(settings, teacher=task.teacher if imitates else None,
                               demos=task.demos if imitates else None, init=None,
                               env_kwargs=task.env_kwargs)  # fmt: skip
        say(f"train: {settings.algorithm} on {settings.env_id}, up to "
            f"{units.format_count(settings.n_timesteps)} steps, target "
            f"{settings.target_return if settings.target_return is not None else ''}"
            f"{'' if settings.target_return is not None else settings.target_from}")  # fmt: skip
        if settings.parallel is not None:
            say(f"train: [cores] {settings.parallel}")
        result = train_run(settings, run_dir, on_progress=ProgressLog(settings.n_timesteps, say),
                           say=say)  # fmt: skip
    if result.stopped_by in INTERRUPTED:  # checkpoint saved; the job stops here
        from rlbudget.interrupt import Interrupted

        raise Interrupted(result.stopped_by, "", details={"steps": result.steps})
    summary = result.summary
    say(f"train: stopped by {summary.stopped_by} after {summary.steps:,} steps, "
        f"{summary.wall_s:.1f} s; last evaluation {summary.last_eval_return}")  # fmt: skip
    return summary


def _candidate_dir(out: Path, i: int, spec: CandidateSpec) -> Path:
    slug = "".join(c if c.isalnum() else "-" for c in spec.name).strip("-")
    return out / "candidates" / f"{i}-{slug}"


def _compress_stage(budget: Budget, plan: PlanChoice, out: Path, state: RunState,
                    episodes: int, seed: int, say: Progress) -> Search:  # fmt: skip
    from rlbudget.compress.pipeline import DEFAULT_MAX_RETURN_DROP, compress
    from rlbudget.policy import load_policy, save_policy
    from rlbudget.profile.report import markdown, usage_chart
    from rlbudget.profile.verdict import default_format, profile

    trained = load_policy(out / "train" / "policy")
    fmt = default_format(budget)
    env: str | None = plan.env
    specs = candidate_specs(trained, plan.compress)  # + a cascade where the plan chose one
    if bandit_job.is_bandit_choice(plan) and bandit_job.episode_env(plan) is None:
        env, specs = None, specs[:1]
        say(f"compress: {bandit_job.NO_ENV}")
    if state.tried is None:
        state.tried = []
    tried = state.tried
    done = {c.index: c for c in tried}
    chosen = next((c for c in tried if c.fits), None)
    for i, spec in enumerate(specs):
        if chosen is not None:
            break
        if i > 0 and hopeless(done.get(0)):
            say("the trained policy misses the return target; no compression can fix that")
            break
        if i in done:
            continue
        folder = _candidate_dir(out, i, spec)
        base = Candidate(i, spec.name, spec.methods, str(folder / "policy"), fits=False)
        retention, gate = None, None
        try:
            policy = trained
            if spec.methods is not None:
                # the compression gate, as `rlbudget compress` holds it: mean and worst-5 %
                # return against the trained policy's, on the same seeded episodes
                report = compress(trained, spec.methods, plan.env, episodes=episodes,
                                  seed=seed, max_return_drop=DEFAULT_MAX_RETURN_DROP,
                                  options=spec.options)  # fmt: skip
                policy, retention, gate = report.policy, report.retention, report.gate
            save_policy(policy, folder / "policy", parents=True)
            if bandit_job.is_bandit_choice(plan):  # logged data: DR; learn: its learner
                prof = bandit_job.profile_bandit(policy, budget, plan.algorithm, fmt=fmt,
                                                 env_id=env, episodes=episodes, seed=seed,
                                                 policy_name=str(folder / "policy"))  # fmt: skip
            else:
                prof = profile(policy, budget, fmt=fmt, env_id=env, episodes=episodes,
                               seed=seed, policy_name=str(folder / "policy"))  # fmt: skip
        except RlbudgetError as exc:
            record = replace(base, retention=retention, gate=gate, error=str(exc))
            say(f"candidate {i} ({spec.name}): error: {exc}")
        else:
            data = prof.to_dict()
            atomic_write_text(folder / "profile.json", json.dumps(data, indent=2) + "\n")
            # the report of this candidate now, so the final stage need not profile again
            atomic_write_text(folder / "profile.md", markdown(prof, "profile.png"))
            usage_chart(prof, folder / "profile.png")
            latency = ProfileRecord.from_dict(data).check("inference.latency")
            value = ProfileRecord.from_dict(data).check("task.min_return")
            assert latency is not None and value is not None
            record = replace(
                base, fits=prof.verdict == "PASS" and (gate is None or gate.passed),
                retention=retention, gate=gate, binding=data["binding"],
                flash_bytes=prof.footprint.flash_bytes, ram_bytes=prof.footprint.ram_bytes,
                latency_s=latency.figure,
                return_mean=value.figure,  # the episodes' mean (bandit logs: DR estimate)
                verdict=prof.verdict,
            )  # fmt: skip
            say(f"candidate {i} ({spec.name}): {prof.verdict}"
                + (f", binding {record.binding}" if record.binding else "")
                + (f"; compression gate FAIL: {gate_words(gate)}" if record.gate_failed
                   and gate is not None else "")
                + f"; flash {units.format_bytes(prof.footprint.flash_bytes)}, return "
                f"{record.return_mean}")  # fmt: skip
        tried.append(record)
        done[i] = record
        state.save(out)  # a kill from here on resumes after this candidate
        if record.fits:
            chosen = record
    state.tried = None
    return Search(fmt, tuple(tried), chosen)


def _export_stage(search: Search, out: Path, budget: Budget) -> Export | None:
    from rlbudget.policy import load_policy
    from rlbudget.profile.learn import LEARNERS

    chosen = search.chosen
    if chosen is None:
        return None
    policy = load_policy(chosen.policy)
    target = out / "export"
    if target.exists():
        shutil.rmtree(target)  # a half-finished export of a killed run
    if search.format == "c" and budget.inference.learn and (
            policy.provenance.get("algorithm") in LEARNERS):  # fmt: skip
        # the policy keeps learning on the device: the learner that profile counted
        from rlbudget.agents.learner import learn_params
        from rlbudget.export.learn import export_learner, learner_dtype

        result = export_learner(policy, target, learn_params(policy),
                                learner_dtype(budget.device.fpu))  # fmt: skip
        return Export("c", tuple(str(f) for f in result.files), result.ram_bytes,
                      result.flash_bytes, result.needs_libm)  # fmt: skip
    if search.format == "c":
        from rlbudget.export.c import export_c

        result = export_c(policy, target)
        return Export("c", tuple(str(f) for f in result.files), result.ram_bytes,
                      result.flash_bytes, result.needs_libm)  # fmt: skip
    # elsewhere the numpy policy is what was profiled (its runtime is smaller than
    # onnxruntime's); `rlbudget export --format onnx` writes the ONNX graph of it
    shutil.copytree(chosen.policy, target)
    return Export("numpy", tuple(str(p) for p in sorted(target.iterdir())))


def _report_stage(budget: Budget, state: RunState, search: Search, out: Path) -> Outcome:
    chosen = search.chosen
    nearest = chosen or closest(search.candidates)
    if nearest is None:
        raise RlbudgetError("no candidate could be built; see the errors in "
                            f"{out / STATE}")  # fmt: skip
    # the final (or closest) candidate's profile, report and chart, written by the search
    folder = nearest.folder
    prof = ProfileRecord.read(folder)
    if chosen:
        words = "fits: every limit holds with the margin"
    elif prof.binding is None and nearest.gate_failed and nearest.gate is not None:
        words = (f"'{nearest.name}' fits every limit but loses return in compression "
                 f"({gate_words(nearest.gate)}); train longer for a policy with more "
                 "return to spare, or try gentler settings with rlbudget compress")  # fmt: skip
    else:
        words = advice(budget, prof)
    shutil.copyfile(folder / "profile.png", out / "profile.png")
    candidates_chart(budget, search.candidates, out / "candidates.png", target=prof.target)
    text = (folder / "profile.md").read_text(encoding="utf-8").replace(
        "# Profile:", "# rlbudget run: profile of", 1)  # fmt: skip
    text += candidates_markdown(search.candidates, chosen, words)
    atomic_write_text(out / "report.md", text)
    assert state.plan is not None and state.train is not None
    report = {"schema": SCHEMA, "fits": chosen is not None, "advice": words,
              "profile": prof.to_dict(), "candidates": search.to_dict()["candidates"],
              "chosen": search.to_dict()["chosen"], "plan": state.plan.to_dict(),
              "train": state.train.to_dict(),
              "export": None if state.export is None else state.export.to_dict()}  # fmt: skip
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    return Outcome(prof, words)
