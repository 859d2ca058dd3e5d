"""rlbudget sweep: a tiny local sweep end to end, resume, a failing trial recorded, bad
sweep files, and (slow) the same table on Ray."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import rlbudget.sweep as sw
from rlbudget.cli import app
from rlbudget.stats import mean_ci95
from rlbudget.sweep import load_sweep, run_sweep

runner = CliRunner()

LAKE = """name: lake
device: rp2040
inference: {ram: 4KiB, flash: 16KiB}
training: {env_steps: 60k, cores: 1}
task: {env: FrozenLake-v1, min_return: 0.3}
"""
# The same task on a device too small for the float table (2 KiB of flash would hold the
# packed one): a budget that fits differently.
LAKE_SMALL = LAKE.replace("name: lake", "name: lake-small").replace("flash: 16KiB", "flash: 1KiB")


def sweep_file(tmp_path: Path, extra: str = "", seeds: str = "[0, 1]") -> Path:
    (tmp_path / "lake.yaml").write_text(LAKE)
    (tmp_path / "lake-small.yaml").write_text(LAKE_SMALL)
    path = tmp_path / "sweep.yaml"
    path.write_text(f"name: tiny\nbudgets: [lake.yaml, lake-small.yaml]\nseeds: {seeds}\n" + extra)
    return path


def test_tiny_local_sweep_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = runner.invoke(app, ["sweep", str(sweep_file(tmp_path)), "-o", str(out), "--json",
                            "--workers", "2"])  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["schema"] == "rlbudget.sweep/1" and data["skipped"] == 0
    assert len(data["trials"]) == 4 and all(t["status"] == "ok" for t in data["trials"])
    rows = {row["budget"]: row for row in data["rows"]}
    assert set(rows) == {"lake", "lake-small"}
    for row in rows.values():
        assert row["seeds"] == 2 and row["errors"] == 0 and row["env"] == "FrozenLake-v1"
        returns = [t["return"] for t in data["trials"]
                   if Path(t["trial"]["budget_file"]).stem == row["budget"]]  # fmt: skip
        mean, ci = mean_ci95(returns)
        assert row["return_mean"] == mean and row["return_ci95"] == ci
    # 1 KiB of flash: the search had to pack the table (≈ 0.7 KB linked, not ≈ 0.9 KB)
    chosen = {t["chosen"] for t in data["trials"]
              if Path(t["trial"]["budget_file"]).stem == "lake-small" and t["fits"]}  # fmt: skip
    assert chosen == {"pack"}
    for name in ("results.csv", "results.json", "results.md", "results.png"):
        assert (out / name).is_file()
    assert (out / "results.csv").read_text().splitlines()[0].startswith("budget,device,env,")


def test_resume_skips_finished_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # one seed: two trials are enough; plan-only trials: skipping a finished trial is the
    # same at every stage, and a plan takes milliseconds where a run trains
    spec = load_sweep(sweep_file(tmp_path, "stage: plan\n", seeds="[0]"))
    out = tmp_path / "out"
    first = run_sweep(spec, out, workers=1)
    ran: list[str] = []
    real = sw.run_trial

    def counting(trial: Any, stage: str, folder: str) -> Any:
        ran.append(trial.id)
        return real(trial, stage, folder)

    monkeypatch.setattr(sw, "run_trial", counting)
    again = run_sweep(spec, out, workers=1)
    assert ran == [] and again.skipped == 2 and again.rows == first.rows
    # one trial's result removed: only that one runs again
    victim = spec.trials[1]
    (out / "trials" / victim.id / "result.json").unlink()
    third = run_sweep(spec, out, workers=1)
    assert ran == [victim.id] and third.skipped == 1


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    # epsilon_end as text: resolving the hyperparameters of those trials fails (stage
    # train: where they fail; the good trials need no compression search)
    grid = "stage: train\ngrid:\n  hyperparams: {epsilon_end: [0.05, oops]}\n"
    path = sweep_file(tmp_path, grid, "[0]")
    out = tmp_path / "out"
    r = runner.invoke(app, ["sweep", str(path), "-o", str(out), "--json", "--workers", "1"])
    assert r.exit_code == 1, r.output
    data = json.loads(r.stdout)
    failed = [t for t in data["trials"] if t["status"] == "error"]
    good = [t for t in data["trials"] if t["status"] == "ok"]
    assert len(failed) == 2 and len(good) == 2  # 2 budgets × 1 seed × 2 settings
    assert all(t["trial"]["hyperparams"] == {"epsilon_end": "oops"} for t in failed)
    assert all(t["error"] for t in failed)
    assert "Failed trials:" in (out / "results.md").read_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [("budgets: []\n", "'budgets' must be a non-empty list of strs, not []"),
     ("budgets: [lake.yaml]\nseed: [1]\n", "unknown key(s) seed; known: budgets, devices, "
      "envs, grid, name, random, seeds, stage"),
     ("budgets: [lake.yaml]\nstage: compress\n", "stage 'compress': use one of run, train, "
      "plan"),
     ("budgets: [nope.yaml]\n", "nope.yaml: no such file"),
     ("budgets: [lake.yaml]\ndevices: [esp33]\n", "unknown device 'esp33'")],
    ids=["empty", "typo", "stage", "missing-budget", "device"],
)  # fmt: skip
def test_bad_sweep_file_exit_2(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "lake.yaml").write_text(LAKE)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    r = runner.invoke(app, ["sweep", str(path), "-o", str(tmp_path / "out")])
    assert r.exit_code == 2, r.output
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and message in line


@pytest.mark.slow
def test_ray_gives_the_same_table_as_the_local_pool(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'rlbudget[ray]')")
    spec = load_sweep(sweep_file(tmp_path))
    local = run_sweep(spec, tmp_path / "local", workers=2)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_sweep(spec, tmp_path / "ray", ray=True)
    finally:
        ray.shutdown()
    keys = ("budget", "env", "seeds", "errors", "fits", "return_mean", "return_ci95",
            "flash_bytes", "ram_bytes", "latency_s")  # fmt: skip
    # host timings aside, training and evaluation are seeded: the same numbers
    assert [{k: r.to_dict()[k] for k in keys} for r in remote.rows] == [
        {k: r.to_dict()[k] for k in keys} for r in local.rows]  # fmt: skip
