"""rlbudget run: the whole job on small budgets, the compression search, the binding limit
when nothing fits, and resuming a killed run from its last completed stage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import rlbudget.profile.verdict as verdict
import rlbudget.train as train_module
from rlbudget.budget import load_budget
from rlbudget.cli import app
from rlbudget.run import STATE, candidate_specs, run_job
from tests.factories import balancing_mlp, frozenlake_best_table
from tests.processes import wait_for

runner = CliRunner()

# A hand-made FrozenLake table would need training; these budgets train Q-learning on
# FrozenLake (≈ 1 s). The float table links to ≈ 0.9 KB and the packed one to ≈ 0.7 KB on a
# Cortex-M0+, so a 1 KiB flash limit with the 25 % margin passes only the packed table.
LAKE = """name: lake
device: rp2040
inference: {{ram: 4KiB, flash: {flash}}}
training: {{env_steps: 300k}}
task: {{env: FrozenLake-v1, min_return: 0.5}}
margin: 0.25
"""


EPISODES = ["--episodes", "100"]
"""Per return measurement: the default (500 FrozenLake episodes, 250 Taxi) costs seconds a
candidate; these tests are about the search, and a table's compression is exact."""


def budget(tmp_path: Path, flash: str = "1KiB", name: str = "b.yaml") -> Path:
    path = tmp_path / name
    path.write_text(LAKE.format(flash=flash))
    return path


def test_candidates_are_cheapest_first() -> None:
    names = [c.name for c in candidate_specs(balancing_mlp(hidden=64))]
    assert names == ["as trained", "int8", "prune-neurons 50% + recover + int8",
                     "prune-neurons 25% + recover + int8", "distill 16 + int8",
                     "distill 8 + int8"]  # fmt: skip
    assert [c.methods for c in candidate_specs(frozenlake_best_table())] == [
        None, "pack", "pack,drop-unvisited"]  # fmt: skip


def test_search_stops_at_the_first_fit_and_writes_everything(tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = runner.invoke(app, ["run", str(budget(tmp_path)), "-o", str(out), "--json", *EPISODES])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["schema"] == "rlbudget.run/1" and data["fits"] is True
    assert data["plan"]["algorithm"] == "q-learning" and data["resumed"] == []
    first, second = data["candidates"]  # the search stopped at the packed table
    assert (first["name"], first["verdict"], first["binding"]) == (
        "as trained", "FAIL", "inference.flash")  # fmt: skip
    assert (second["name"], second["fits"]) == ("pack", True)
    assert data["chosen"]["name"] == "pack" and data["profile"]["verdict"] == "PASS"
    assert data["export"]["format"] == "c"
    for name in ("report.md", "report.json", "profile.png", "candidates.png", "plan.json",
                 "train/curve.png", "export/policy.c"):  # fmt: skip
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "**Verdict: PASS**" in report and "| 1 | pack | PASS |" in report
    saved = json.loads((out / "report.json").read_text())
    assert saved["chosen"] == data["chosen"] and saved["fits"] is True


def test_nothing_fits_names_the_binding_limit(tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = runner.invoke(app, ["run", str(budget(tmp_path, flash="64B")), "-o", str(out), *EPISODES])
    assert r.exit_code == 1, r.output
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("DOES NOT FIT — binding limit inference.flash: needs ")
    assert "more flash" in last and "or a device with ≥ " in last
    data = json.loads((out / "report.json").read_text())
    assert data["fits"] is False and data["chosen"] is None
    assert [c["name"] for c in data["candidates"]] == ["as trained", "pack",
                                                       "pack + drop-unvisited"]  # fmt: skip
    assert not (out / "export").exists()


def test_a_folder_of_another_job_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / STATE).write_text(json.dumps({"key": "0" * 16, "budget": "x", "env": None,
                                         "stages": {}}))  # fmt: skip
    r = runner.invoke(app, ["run", str(budget(tmp_path)), "-o", str(out)])
    assert r.exit_code == 2
    assert r.stderr.strip() == (
        f"error: {out}: holds a run of another budget, env, option or seed; resume it with the "
        "same arguments, or choose another -o"
    )


def test_killed_during_the_search_resumes_after_the_last_candidate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = load_budget(budget(tmp_path))
    out = tmp_path / "run"
    calls: list[str] = []
    real_profile = verdict.profile

    def killed_on_the_second(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("policy_name", ""))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies while profiling candidate 1
        return real_profile(*args, **kwargs)

    monkeypatch.setattr(verdict, "profile", killed_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        run_job(b, out, episodes=100)
    state = json.loads((out / STATE).read_text())
    assert set(state["stages"]) == {"plan", "train", "compress-partial"}
    assert [c["name"] for c in state["stages"]["compress-partial"]["candidates"]] == ["as trained"]
    steps = json.loads((out / "train" / "summary.json").read_text())["steps"]

    def no_training(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("a completed training stage was run again")

    calls.clear()
    monkeypatch.setattr(verdict, "profile", lambda *a, **k: (calls.append(k["policy_name"]),
                                                             real_profile(*a, **k))[1])  # fmt: skip
    monkeypatch.setattr(train_module, "train_run", no_training)
    report = run_job(b, out, episodes=100)
    assert report.resumed == ("plan", "train") and report.fits
    assert [c.name for c in report.candidates] == ["as trained", "pack"]
    # candidate 0 was not profiled again, and the report reuses the profile of pack
    assert [Path(c).parent.name for c in calls] == ["1-pack"]
    assert json.loads((out / "train" / "summary.json").read_text())["steps"] == steps
    again = run_job(b, out, episodes=100)  # everything done: nothing runs, the same answer
    assert again.resumed == ("plan", "train", "compress", "export", "profile")
    assert again.chosen == report.chosen


def test_sigkill_during_training_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    # Taxi Q-learning: a few seconds, checkpoints every 10 % (40k steps); a target of 7 is
    # confirmed after the first checkpoint (-1000 would be at the first screen, 20k steps).
    path = tmp_path / "slow.yaml"
    path.write_text("name: slow\ndevice: stm32f446\ntraining: {env_steps: 400k}\n"
                    "task: {env: Taxi-v4, min_return: 7}\n")  # fmt: skip
    out = tmp_path / "run"
    command = [sys.executable, "-m", "rlbudget", "run", str(path), "-o", str(out), *EPISODES]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: (out / "train" / "checkpoint").is_dir(), proc, "the first checkpoint")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = json.loads((out / STATE).read_text())
    assert "train" not in state["stages"], "training ended before the kill; make it longer"
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "train: resuming from the checkpoint of the killed run" in done.stderr
    summary = json.loads((out / "train" / "summary.json").read_text())
    # steps count across the kill: at least the first checkpoint's 10 % were kept
    assert summary["steps"] >= 40_000 and summary["stopped_by"] == "target"


def test_a_missed_return_stops_the_search_at_the_trained_policy(tmp_path: Path) -> None:
    path = tmp_path / "hard.yaml"  # FrozenLake's best success rate is ≈ 0.8: 0.99 is out of reach
    # 2k steps, not 300k: the target is never met, so training always runs to the step limit.
    path.write_text(LAKE.format(flash="16KiB").replace("min_return: 0.5", "min_return: 0.99")
                    .replace("env_steps: 300k", "env_steps: 2k"))  # fmt: skip
    out = tmp_path / "run"
    r = runner.invoke(app, ["run", str(path), "-o", str(out), "--json"])
    assert r.exit_code == 1, r.output
    data = json.loads(r.stdout)
    assert [c["name"] for c in data["candidates"]] == ["as trained"]
    assert data["candidates"][0]["binding"] == "task.min_return"
    assert data["advice"].startswith("binding limit task.min_return: the best candidate returns ")
