"""Interruptions and concurrency, with real signals and real processes: Ctrl-C/SIGTERM
during `run`'s training (exit 130/143, state "interrupted", rerun resumes from the
checkpoint), SIGTERM elsewhere (exit 143, one line), a killed sweep's workers, a run
folder with only config.yaml, two jobs into one folder (the lock), and training progress
when stderr is not a terminal (plain lines, metrics.csv growing, TensorBoard)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from rlbudget.budget import load_budget
from rlbudget.cli import app
from rlbudget.fileio import LOCK, dir_lock
from rlbudget.policy import save_policy
from rlbudget.run import STATE, run_job
from rlbudget.train import ProgressLog
from tests.factories import frozenlake_best_table
from tests.processes import ENV, REPO, rlbudget, start, wait_for, wait_for_file

runner = CliRunner()
# Q-learning on FrozenLake toward a return it cannot reach (≈ 0.8 is the best): it trains
# until `time`, checkpointing every 10 % of env_steps (5k steps, well under a second).
LAKE = """name: lake
device: rp2040
inference: {{ram: 4KiB, flash: 16KiB}}
training: {{env_steps: {steps}, time: {time}}}
task: {{env: FrozenLake-v1, min_return: 0.99}}
"""


def lake(tmp_path: Path, steps: str = "50k", time_limit: str = "3s") -> Path:
    path = tmp_path / "lake.yaml"
    path.write_text(LAKE.format(steps=steps, time=time_limit))
    return path


def checkpoint_step(run_dir: Path) -> int:
    return int(json.loads((run_dir / "checkpoint" / "state.json").read_text())["steps"])


@pytest.mark.slow  # ≈ 10 s of CPU: two runs, one interrupted
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])  # fmt: skip
def test_a_signal_during_run_training_stops_the_job_and_a_rerun_resumes(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    # 250k steps in 6 s, not 50k in 3 s: a quiet 2-core machine trains ≈ 23k steps/s here,
    # so the rerun reached 50k (even 100k) and stopped by steps, not time; the first
    # checkpoint (25k steps, ≈ 1 s) still comes well inside the time
    budget, out = lake(tmp_path, steps="250k", time_limit="6s"), tmp_path / "run"
    command = rlbudget("run", str(budget), "--option", "2", "-o", str(out))
    proc = start(command)
    wait_for(lambda: (out / "train" / "checkpoint" / "state.json").is_file(), proc,
             "first checkpoint")  # fmt: skip
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    state = json.loads((out / STATE).read_text())
    assert state["status"] == "interrupted" and "train" not in state["stages"]
    assert state["interrupted"]["signal"] == sig.name and state["interrupted"]["stage"] == "train"
    kept = checkpoint_step(out / "train")
    assert state["interrupted"]["steps"] == kept > 0
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith(f"interrupted by {sig.name} during train")
    # nothing was compressed or profiled from the half-trained policy
    assert not (out / "candidates").exists() and not (out / "report.json").exists()

    again = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=REPO,
                           check=False, timeout=120)  # fmt: skip
    assert again.returncode == 1, again.stderr  # trained on, then: 0.99 is out of reach
    assert "train: resuming from the checkpoint of the killed run" in again.stderr
    first_line = next(x for x in again.stderr.splitlines() if x.startswith("step "))
    assert int(first_line.split()[1].split("/")[0].replace(",", "")) > kept  # not from 0
    summary = json.loads((out / "train" / "summary.json").read_text())
    assert summary["stopped_by"] == "time" and summary["steps"] > kept
    assert json.loads((out / STATE).read_text())["status"] == "done"


def test_sigterm_outside_training_exits_143_with_one_line(tmp_path: Path) -> None:
    policy = save_policy(frozenlake_best_table(), tmp_path / "lake")
    ready = tmp_path / "ready"
    proc = start(rlbudget("evaluate", str(policy), "-n", "10000000", ready=ready))
    wait_for_file(ready, proc)  # imports done, episodes running
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143, stderr
    assert stderr.strip() == "interrupted by SIGTERM: stopped before finishing"


def test_a_run_folder_with_only_config_is_started_over(tmp_path: Path) -> None:
    out = tmp_path / "t"
    args = ["train", "--algo", "q-learning", "--env", "FrozenLake-v1", "--budget",
            str(lake(tmp_path, "1k", "1min")), "-o", str(out)]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    for child in out.iterdir():  # as a kill before the first checkpoint leaves it
        if child.name not in ("config.yaml", LOCK):
            child.unlink() if child.is_file() else shutil.rmtree(child)
    r = runner.invoke(app, ["train", "--resume", str(out)])
    assert r.exit_code == 0, r.output
    assert "no checkpoint (the run was killed before its first one); starting it over" in r.output
    assert json.loads((out / "summary.json").read_text())["steps"] == 1000
    (out / "summary.json").unlink()
    for name in ("policy", "checkpoint", "curve.png", "metrics.csv"):
        p = out / name
        p.unlink() if p.is_file() else shutil.rmtree(p)
    r = runner.invoke(app, args)  # the same command again
    assert r.exit_code == 0, r.output
    assert "holds only the config.yaml of a run killed before its first checkpoint" in r.output


def test_run_starts_over_a_training_folder_with_only_config(tmp_path: Path) -> None:
    budget, out = load_budget(lake(tmp_path, "1k", "1min")), tmp_path / "run"
    run_job(budget, out, option=2, train_only=True)
    state = json.loads((out / STATE).read_text())
    state["stages"] = {"plan": state["stages"]["plan"]}  # killed during training …
    (out / STATE).write_text(json.dumps(state))
    for child in (out / "train").iterdir():  # … before its first checkpoint
        if child.name != "config.yaml":
            child.unlink() if child.is_file() else shutil.rmtree(child)
    said: list[str] = []
    report = run_job(budget, out, option=2, train_only=True, progress=said.append)
    assert report.train.steps == 1000
    assert f"train: {out / 'train'} has no checkpoint (killed before the first one); " \
           "starting the training over" in said  # fmt: skip


@pytest.mark.parametrize("command", ["train", "run"])
def test_a_second_job_into_a_locked_folder_names_the_holder(tmp_path: Path, command: str) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    args = (["train", "--algo", "q-learning", "--env", "FrozenLake-v1", "-o", str(out)]
            if command == "train" else ["run", str(lake(tmp_path)), "-o", str(out)])  # fmt: skip
    with dir_lock(out):  # flock: a second open of the same file conflicts, even in-process
        r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert r.output.strip() == (f"error: {out}: in use by another rlbudget job (pid "
                                f"{os.getpid()}); wait for it to finish, stop it, or choose "
                                "another -o")  # fmt: skip
    assert list(out.iterdir()) == []  # nothing written (and the lock file removed)


@pytest.mark.slow  # two processes, one trains for seconds
def test_two_train_processes_into_one_folder(tmp_path: Path) -> None:
    out = tmp_path / "t"
    command = rlbudget("train", "--algo", "q-learning", "--env", "FrozenLake-v1", "--budget",
                       str(lake(tmp_path, "50k", "20s")), "-o", str(out), "-q")  # fmt: skip
    first = start(command)
    wait_for(lambda: (out / "checkpoint").is_dir(), first, "first checkpoint")
    second = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=REPO,
                            check=False, timeout=60)  # fmt: skip
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=60)
    assert second.returncode == 2, second.stderr
    assert second.stderr.strip() == (f"error: {out}: in use by another rlbudget job (pid "
                                     f"{first.pid}); wait for it to finish, stop it, or "
                                     "choose another -o")  # fmt: skip
    assert first.returncode == 143
    assert (out / "checkpoint").is_dir() and (out / "config.yaml").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_sweep_leaves_no_worker_and_resumes(tmp_path: Path, sig: signal.Signals) -> None:
    psutil = pytest.importorskip("psutil")
    lake(tmp_path, "50k", "3s")
    (tmp_path / "sweep.yaml").write_text("name: s\nbudgets: [lake.yaml]\nseeds: [0, 1]\n"
                                         "stage: train\n")  # fmt: skip
    out = tmp_path / "sweep"
    command = rlbudget("sweep", str(tmp_path / "sweep.yaml"), "-w", "2", "-o", str(out))
    proc = start(command)
    parent = psutil.Process(proc.pid)
    wait_for(lambda: any(out.glob("trials/*/run/train/checkpoint")), proc, "a checkpoint")
    workers = parent.children(recursive=True)
    assert len(workers) >= 2
    proc.send_signal(sig)
    proc.wait(timeout=30)  # not communicate(): an orphaned worker keeps the pipes open
    assert proc.returncode == (-9 if sig == signal.SIGKILL else 143)
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == [], f"workers outlived the sweep: {[p.pid for p in alive]}"
    again = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=REPO,
                           check=False, timeout=120)  # fmt: skip
    assert again.returncode == 0, again.stderr
    results = json.loads((out / "results.json").read_text())
    assert [t["status"] for t in results["trials"]] == ["ok", "ok"]
    assert all(t["train_steps"] > 0 for t in results["trials"])


@pytest.mark.slow  # a training process, interrupted
def test_progress_lines_and_growing_metrics_when_stderr_is_not_a_terminal(
    tmp_path: Path,
) -> None:
    out = tmp_path / "t"
    budget = lake(tmp_path, "50k", "20s")
    proc = start(rlbudget("train", "--algo", "q-learning", "--env", "FrozenLake-v1",
                          "--budget", str(budget), "-o", str(out)))  # fmt: skip
    wait_for(lambda: (out / "checkpoint").is_dir(), proc, "first checkpoint")
    # before the end, metrics.csv already holds every finished episode up to the checkpoint
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert rows and int(rows[-1]["step"]) >= checkpoint_step(out)
    assert not (out / "summary.json").exists()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("step ")]
    assert lines, stderr
    assert "/50,000 (" in lines[0] and " steps/s, return(" in lines[0] and ", ETA " in lines[0]
    assert "\r" not in stderr and "━" not in stderr  # no bar redrawn into a log


def test_progress_log_lines_and_a_resumed_start() -> None:
    lines: list[str] = []
    log = ProgressLog(10_000, lines.append, every_s=3600, start_step=4_000)
    from rlbudget.agents.common import Episode

    log(Episode(4_100, 0, 1.0, 100, 0.5, 0.1))
    log(Episode(4_200, 1, 3.0, 100, 0.6, 0.1))  # within every_s: no line
    assert len(lines) == 1 and lines[0].startswith("step 4,100/10,000 (41%), ")
    assert log.line(7_000, 2.0) == "step 7,000/10,000 (70%), 1,500 steps/s, return(2) 2, ETA 2 s"


def test_a_resumed_progress_bar_starts_at_the_checkpoint_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rlbudget.cli.common as cli

    out = tmp_path / "t"
    args = ["train", "--algo", "q-learning", "--env", "FrozenLake-v1", "--budget",
            str(lake(tmp_path, "3k", "1min")), "-o", str(out), "-q"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    seen: list[int] = []
    import rich.progress

    class Spy(rich.progress.Progress):
        def add_task(self, *a: object, **k: object) -> rich.progress.TaskID:
            seen.append(int(k.get("completed", 0)))  # type: ignore[call-overload]
            return super().add_task(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(rich.progress, "Progress", Spy)
    monkeypatch.setattr(cli, "err", Console(stderr=True, force_terminal=True))
    r = runner.invoke(app, ["train", "--resume", str(out)])
    assert r.exit_code == 0, r.output
    assert seen == [checkpoint_step(out)] and seen[0] == 3000


def test_tensorboard_scalars_for_a_builtin_agent(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="pip install 'rlbudget[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = tmp_path / "tb"
    args = ["train", "--algo", "q-learning", "--env", "FrozenLake-v1", "--budget",
            str(lake(tmp_path, "5k", "1min")), "-o", str(tmp_path / "t"), "-q",
            "--tensorboard", str(board)]  # fmt: skip
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    events = EventAccumulator(str(board))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"rollout/ep_rew_mean", "rollout/ep_len_mean", "time/fps",
            "eval/mean_reward"} <= tags  # fmt: skip
    steps = [e.step for e in events.Scalars("rollout/ep_rew_mean")]
    assert steps == sorted(steps) and 0 < steps[-1] <= 5000 and len(steps) > 10
