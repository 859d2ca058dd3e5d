"""The training loop: one agent run under its limits, with the run folder written as it
goes (the package docstring, :mod:`rlbudget.train`, says what stops it and what it writes)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlbudget.agents.common import Episode
from rlbudget.fileio import (
    atomic_write_bytes,
    atomic_write_text,
    check_unlocked,
    dir_lock,
    is_empty_dir,
)
from rlbudget.policy.model import Policy
from rlbudget.train.folder import (
    MetricsLog,
    TargetCheck,
    TrainSummary,
    abandoned,
    metrics_csv,
    prepare_run_dir,
    read_metrics,
    read_summary,
    write_config,
    write_curve,
    write_summary,
)
from rlbudget.train.meters import PeakRSS, RaplEnergy, TensorBoardLog
from rlbudget.train.settings import RunSettings, agent, make_config

if TYPE_CHECKING:
    from rlbudget.agents.imitation import TeacherBar


@dataclass(frozen=True)
class RunResult:
    """What :func:`train_run` returns: the settings, the folder and how the run went."""

    settings: RunSettings
    run_dir: Path
    stopped_by: str
    steps: int
    wall_s: float
    episodes: int
    last_eval: float | None
    cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    rapl_energy_j: float | None = None
    target_check: TargetCheck | None = None  # the confirmation that stopped it at its target
    extra: dict[str, Any] | None = None  # the trainer's own figures (model-based: planner)
    evals: tuple[tuple[int, float], ...] = ()  # (step, mean return) of each screen

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def summary(self) -> TrainSummary:
        """What summary.json holds."""
        s = self.settings
        return TrainSummary(str(self.run_dir), s.algorithm, s.env_id, s.seed, self.stopped_by,
                            self.steps, self.episodes, self.wall_s, self.cpu_s,
                            self.peak_rss_bytes, self.rapl_energy_j, self.steps_per_s,
                            s.target_return, self.last_eval, self.target_check,
                            self.extra, self.evals)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return self.summary.to_dict()


def train_run(
    settings: RunSettings,
    run_dir: str | os.PathLike[str],
    *,
    on_progress: Callable[[Episode], None] | None = None,
    resume: bool = False,
    should_stop: Callable[[], bool] | None = None,
    say: Callable[[str], None] | None = None,
    tensorboard: str | os.PathLike[str] | None = None,
    curve: bool = True,
) -> RunResult:
    """Train with ``settings`` and write the run folder (see the module docstring).

    SIGINT and SIGTERM stop training cleanly: the policy, metrics and a checkpoint are
    saved, and ``stopped_by`` names the signal. ``RUN_DIR/checkpoint/`` is also written
    every ``checkpoint_every`` steps, atomically, and ``metrics.csv`` grows by one row per
    finished episode. The run holds RUN_DIR's lock (``RUN_DIR/.lock``) throughout.

    :param resume: continue from ``RUN_DIR/checkpoint``; a run folder without one (killed
        before its first checkpoint) is started over with its config.yaml's settings.
    :param should_stop: extra stop condition, checked before every step (ARS: before every
        iteration; SB3: after every vectorized step) — for tests and embedding.
    :param say: told what happens beyond training itself (a run started over).
    :param tensorboard: write TensorBoard scalars under this folder (SB3: its own logger).
    :param curve: draw ``curve.png`` at the end. Drawing it imports matplotlib, ≈1 s of
        CPU: a tenth of a 10k-step PPO run (``benchmarks/sb3_overhead.py``); a caller that
        trains many short runs (a sweep's trials, a benchmark) can leave it out and draw
        it later from the folder (:func:`draw_curve`).
    :raises RlbudgetError: RUN_DIR is not empty (new run) or in use by another job;
        NaN/inf in the env or the weights (the last good checkpoint is kept).
    """
    out = Path(run_dir)
    if resume and not (out / "checkpoint").is_dir():
        check_unlocked(out)
        if not (out / "config.yaml").is_file() or not abandoned(out):
            from rlbudget.agents.common import Checkpoint

            Checkpoint.load(out / "checkpoint")  # raises: no checkpoint there
        resume = False  # killed before the first checkpoint: an empty run
        if say is not None:
            say(f"{out}: no checkpoint (the run was killed before its first one); "
                "starting it over with its config.yaml")  # fmt: skip
        say = None  # said once; prepare_run_dir clears the folder
    created = not out.exists()
    if not resume:
        prepare_run_dir(out, say)
    from rlbudget.env_kwargs import env_kwargs_applied
    from rlbudget.errors import RlbudgetError, TrainingError
    from rlbudget.finite import NonFiniteError

    try:
        with dir_lock(out), env_kwargs_applied(settings.env_id, settings.env_kwargs):
            return _train_locked(settings, out, on_progress, resume, should_stop, tensorboard,
                                 curve)  # fmt: skip
    except RlbudgetError as exc:
        # Bad input found once training began (SB3 refusing a hyperparameter, an env that
        # cannot be made): a new run that logged nothing leaves nothing behind.
        if not resume and not isinstance(exc, (NonFiniteError, TrainingError)):
            _clear_unstarted(out, created)
        raise


def _clear_unstarted(out: Path, created: bool) -> None:
    """Remove what a new run wrote before its first episode (config.yaml, the header of
    metrics.csv), and the folder itself if the run created it; anything more is kept."""
    if not out.is_dir() or not abandoned(out):
        return
    metrics = out / "metrics.csv"
    if metrics.is_file() and len(metrics.read_text().splitlines()) > 1:
        return  # episodes were logged: keep them
    for name in ("config.yaml", "metrics.csv"):
        (out / name).unlink(missing_ok=True)
    if created and is_empty_dir(out):
        out.rmdir()


def _train_locked(
    settings: RunSettings,
    out: Path,
    on_progress: Callable[[Episode], None] | None,
    resume: bool,
    should_stop: Callable[[], bool] | None,
    tensorboard: str | os.PathLike[str] | None,
    curve: bool,
) -> RunResult:
    import signal

    import numpy as np

    from rlbudget.agents.common import Checkpoint
    from rlbudget.errors import TrainingError
    from rlbudget.finite import NonFiniteError, check_learned
    from rlbudget.policy.io import save_policy
    from rlbudget.profile.evaluate import EvalWorkers, evaluate, seeding

    checkpoint = None
    # what the sessions before a resume used: CPU time, peak RSS, package energy
    cpu_before, rss_before = 0.0, 0
    rapl_before: float | None = 0.0
    evals: list[tuple[int, float]] = []  # (step, mean return) of each screen
    last_eval: float | None = None
    every = settings.eval_every
    # Evaluations fall on a fixed grid of steps (the first episode end at or after each
    # multiple of eval_every), so a resumed run evaluates where a straight run would have.
    next_eval = every
    if resume:
        checkpoint = Checkpoint.load(out / "checkpoint")
        done = int(checkpoint.state["steps"])
        next_eval = (done // every + 1) * every
        previous = read_summary(out)
        if previous is not None:
            cpu_before, rss_before = previous.cpu_s, previous.peak_rss_bytes
            rapl_before = previous.rapl_energy_j
        if previous is not None and previous.steps == done:  # written with the checkpoint
            evals, last_eval = list(previous.evals), previous.last_eval_return
            # a stop on a grid step before its screen: the screen is still due
            next_eval = (evals[-1][0] // every + 1) * every if evals else every
    else:
        write_config(settings, out)
    _, train_fn = agent(settings.algorithm)
    cfg = make_config(settings, tensorboard)
    from rlbudget.agents.imitation import teacher_bar

    bar = teacher_bar(settings.env_id, settings.teacher)  # bc/dagger: against the teacher

    stopped_by = "steps"
    done_steps = int(checkpoint.state["steps"]) if checkpoint else 0
    start = time.perf_counter() - (float(checkpoint.state["wall_s"]) if checkpoint else 0.0)
    cpu0 = time.process_time()
    caught: list[str] = []
    target_check: list[TargetCheck] = []
    so_far = checkpoint.state.get("episodes", ()) if checkpoint else ()
    metrics = MetricsLog(out / "metrics.csv", tuple(Episode(**e) for e in so_far))
    board = None
    if tensorboard is not None and settings.library != "sb3":
        board = TensorBoardLog(Path(tensorboard), max(1, settings.n_timesteps // 1000),
                               done_steps)  # fmt: skip

    # training.cores > 1 and a costly env step: evaluation episodes in worker processes
    workers = (EvalWorkers(settings.env_id, settings.eval_workers)
               if settings.eval_workers > 1 else 1)  # fmt: skip

    def handler(signum: int, _frame: Any) -> None:
        caught.append(signal.Signals(signum).name)

    def out_of_time() -> bool:
        nonlocal stopped_by
        limit = settings.time_limit_s
        if limit is not None and time.perf_counter() - start >= limit:
            stopped_by = "time"
            return True
        return False

    def stop_now() -> bool:
        nonlocal stopped_by
        if caught or out_of_time():
            return True
        if should_stop is not None and should_stop():
            stopped_by = "requested"
            return True
        return False

    def on_episode(ep: Episode, current: Callable[[], Policy]) -> bool:
        nonlocal stopped_by, last_eval, next_eval
        metrics.add(ep)
        if board is not None:
            board.episode(ep)
        if on_progress is not None:
            on_progress(ep)
        if caught or out_of_time():
            return True
        if (settings.target_return is not None or bar is not None) and ep.step >= next_eval:
            next_eval = (ep.step // every + 1) * every
            policy = current()
            if bar is not None:  # imitation: against the teacher on the same episodes
                last_eval, passed = bar.screen(policy, settings.seed + 10_000,
                                               settings.eval_episodes, screen_decided)  # fmt: skip
            else:
                target = settings.target_return
                assert target is not None
                screen = evaluate(policy, settings.env_id,
                                  **seeding(settings.seed + 10_000, settings.eval_episodes,
                                            workers),
                                  enough=lambda rs: screen_decided(rs, target))  # fmt: skip
                last_eval = screen.return_mean
                passed = last_eval >= target
            evals.append((ep.step, last_eval))
            if board is not None:
                board.scalars(ep.step, {"eval/mean_reward": last_eval})
            if passed:
                check = target_met(policy, settings, ep.step, bar, workers)
                if check is not None:
                    stopped_by, last_eval = "target", check.mean
                    target_check.append(check)
                    return True
        return False

    saved_at: list[int] = [done_steps] if checkpoint else []

    def save_checkpoint(ck: Checkpoint) -> None:
        """Only finite arrays replace the last good checkpoint."""
        check_learned(ck.arrays, "the checkpoint", int(ck.state["steps"]))
        ck.save(out / "checkpoint")
        saved_at.append(int(ck.state["steps"]))

    previous_handlers = {
        sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        # Overflow is caught below (check_learned), with one line instead of numpy's warnings.
        with PeakRSS() as rss, RaplEnergy() as rapl, np.errstate(over="ignore", invalid="ignore"):
            result = train_fn(
                settings.env_id, cfg, on_episode=on_episode, should_stop=stop_now,
                resume=checkpoint, on_checkpoint=save_checkpoint,
                checkpoint_every=settings.checkpoint_every,
            )  # fmt: skip
    except (NonFiniteError, TrainingError) as exc:  # NaN/inf from the env or in the weights
        kept = (f"the last good checkpoint ({out / 'checkpoint'}, step {saved_at[-1]}) is kept"
                if saved_at else "no checkpoint had been written yet")  # fmt: skip
        raise type(exc)(f"{exc}. Training stopped: {kept}; no policy was written") from None
    finally:
        for sig, old in previous_handlers.items():
            signal.signal(sig, old)
        metrics.close()
        if board is not None:
            board.close()
        if isinstance(workers, EvalWorkers):
            workers.close()
    if result.stopped_by is not None:  # the trainer checked the target itself (pets)
        stopped_by, last_eval = result.stopped_by, result.eval_return
    if caught:
        stopped_by = caught[0]
    wall = time.perf_counter() - start  # the whole run, setup and evaluations included
    # Nothing learned with NaN/inf is written: check both before writing either.
    check_learned(result.policy.arrays(), "the policy", result.steps)
    if result.checkpoint is not None:
        check_learned(result.checkpoint.arrays, "the checkpoint", result.steps)
        result.checkpoint.save(out / "checkpoint")
    save_policy(result.policy, out / "policy")
    for name, data in result.files.items():  # a model-based run's model, for the host
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / name, data)
    atomic_write_text(out / "metrics.csv", metrics_csv(result.episodes))
    if curve:
        write_curve(result.episodes, evals, settings, out / "curve.png")
    run = RunResult(settings, out, stopped_by, result.steps, wall, len(result.episodes),
                    last_eval, cpu_before + time.process_time() - cpu0,
                    max(rss_before, rss.peak),
                    None if rapl.joules is None or rapl_before is None
                    else rapl_before + rapl.joules,
                    target_check[0] if target_check else None,
                    dict(result.extra) or None, tuple(evals))  # fmt: skip
    write_summary(run.summary, out)
    return run


def draw_curve(run_dir: str | os.PathLike[str]) -> Path:
    """Draw ``RUN_DIR/curve.png`` of a finished run from its folder (metrics.csv, the
    screens in summary.json, config.yaml): the curve of a run trained with ``curve=False``.

    :raises RlbudgetError: not a finished run folder.
    """
    from rlbudget.errors import RlbudgetError
    from rlbudget.train.settings import load_settings

    out = Path(run_dir)
    settings = load_settings(out)
    summary = read_summary(out)
    if summary is None or not (out / "metrics.csv").is_file():
        raise RlbudgetError(f"{out}: not a finished run (no summary.json or metrics.csv)")
    write_curve(read_metrics(out / "metrics.csv"), list(summary.evals), settings,
                out / "curve.png")  # fmt: skip
    return out / "curve.png"


SCREEN_LOOKS = (5, 10, 20, 40, 80)
"""Episodes after which a screen may end early: doubling, so that it looks a few times only
and a clear screen (most of them, far below the target) costs 5 episodes, not 100."""


def screen_decided(returns: Sequence[float], target: float) -> bool:
    """Whether a screen's episodes so far settle it: at a look (:data:`SCREEN_LOOKS`), the
    95 % interval of their mean (:func:`rlbudget.stats.mean_ci95`) lies wholly below the
    target (the screen fails) or wholly at or above it (on to the confirmation,
    :func:`target_met`). Otherwise the screen plays on, to ``eval_episodes`` (100).

    >>> screen_decided([100.0, 120.0, 90.0, 110.0, 95.0], 475.0)  # far below
    True
    >>> screen_decided([400.0, 500.0, 480.0, 500.0, 470.0], 475.0)  # 470 ± 51: go on
    False
    >>> screen_decided([500.0] * 5, 475.0), screen_decided([500.0] * 4, 475.0)
    (True, False)
    """
    from rlbudget.stats import mean_ci95

    if len(returns) not in SCREEN_LOOKS:
        return False
    mean, half = mean_ci95(returns)
    assert mean is not None and half is not None
    return mean + half < target or mean - half >= target


CONFIRM_SEED = 20_000  # confirmation episodes: seed + this + the step (fresh every time)


def confirm_episodes(env_id: str) -> int:
    """Episodes of the confirmation: as many as ``rlbudget run``'s final measurement."""
    from rlbudget.envs import make_env
    from rlbudget.profile.evaluate import env_default_episodes

    env = make_env(env_id)
    try:
        return env_default_episodes(env)
    finally:
        env.close()


def target_met(policy: Policy, settings: RunSettings, step: int,
               bar: TeacherBar | None = None, workers: Any = 1) -> TargetCheck | None:  # fmt: skip
    """Confirm a policy whose screen reached the target: its mean return over
    :func:`confirm_episodes` fresh episodes (seeded from ``step``: never the screen's, nor
    an earlier confirmation's), with the 95 % lower confidence bound (Student's t).

    :param bar: bc/dagger with a teacher: the same episodes compared with the teacher's
        (:meth:`~rlbudget.agents.imitation.TeacherBar.confirm`) instead of a fixed target.
    :param workers: worker processes (or an ``EvalWorkers`` pool) for the episodes.
    :return: the confirmation when the bound is at or above the target; None when it is
        not (training goes on).
    """
    from rlbudget.profile.evaluate import evaluate, seeding
    from rlbudget.stats import mean_ci95

    n = confirm_episodes(settings.env_id)
    seed = settings.seed + CONFIRM_SEED + step
    if bar is not None:
        met = bar.confirm(policy, seed, n)
        return None if met is None else TargetCheck(n, seed, *met)
    assert settings.target_return is not None
    result = evaluate(policy, settings.env_id, **seeding(seed, n, workers))
    mean, half = mean_ci95(result.returns)
    assert mean is not None
    lower = mean - (half or 0.0)
    if lower < settings.target_return:
        return None
    return TargetCheck(n, seed, mean, lower)
