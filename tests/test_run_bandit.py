"""``rlbudget run`` on a contextual-bandit budget (issue 20), both kinds of task: logged
data (the value is the DR off-policy estimate, the trained policy the only candidate) and
a one-step env (an episode is one decision; ``inference.learn`` adds LinUCB's state).
The problem is the synthetic one whose optimal value is known: 1.4056 for
``make_problem()`` (``rlbudget bandit-data``'s default), its logger's 0.70."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rlbudget.bandits.data import write_logged
from rlbudget.bandits.ope import evaluate_on_data
from rlbudget.bandits.synthetic import log_decisions, make_problem
from rlbudget.cli import app
from rlbudget.policy import load_policy

runner = CliRunner()
ENV = "rlbudget.bandits.env:LinearBandit-v0"


def _run(tmp_path: Path, text: str) -> tuple[int, Path, dict[str, Any]]:
    (tmp_path / "b.yaml").write_text(text)
    out = tmp_path / "job"
    r = runner.invoke(app, ["run", str(tmp_path / "b.yaml"), "-o", str(out), "--episodes", "100"])
    report = json.loads((out / "report.json").read_text()) if r.exit_code in (0, 1) else {}
    assert r.exit_code in (0, 1), r.output
    return r.exit_code, out, report


def _check(report: dict[str, Any], limit: str) -> dict[str, Any]:
    return next(c for c in report["profile"]["checks"] if c["limit"] == limit)


@pytest.mark.parametrize("min_return", [1.0, 2.0])
def test_run_a_budget_of_logged_data(tmp_path: Path, min_return: float) -> None:
    """DR learns from 500 logged rows; its value is the DR estimate of the trained policy on
    those rows (computed here again by evaluate's own function). Above the logger's 0.70
    and near the optimum 1.41, it passes min_return 1.0 (exit 0: every file of a run,
    the numpy export on a host) and cannot reach 2.0, above the optimum (exit 1: the
    return binds, nothing exported). Compression is not tried: one candidate."""
    write_logged(log_decisions(make_problem(), 500, seed=0), tmp_path / "logs.csv")
    task = f"{{kind: bandit, data: logs.csv, min_return: {min_return}}}"
    code, out, report = _run(
        tmp_path, f"device: host\ninference: {{latency: 10ms}}\ntask: {task}\n"
    )
    dr = evaluate_on_data(load_policy(out / "train" / "policy"), str(tmp_path / "logs.csv"))
    value = _check(report, "task.min_return")
    assert value["figure"] == dr.estimate("dr").value == report["train"]["last_eval_return"]
    assert value["source"] == "estimated" and "DR off-policy estimate on 500" in value["how"]
    assert report["plan"]["algorithm"] == "dr" and report["train"]["steps"] == 500
    assert [c["name"] for c in report["candidates"]] == ["as trained"]
    assert (code, report["fits"], value["status"]) == (
        (0, True, "PASS") if min_return == 1.0 else (1, False, "FAIL"))  # fmt: skip
    for name in ("plan.json", "state.json", "report.md", "profile.png", "candidates.png",
                 "train/policy", "candidates/0-as-trained/profile.json"):  # fmt: skip
        assert (out / name).exists(), name
    assert (out / "export" / "policy.json").is_file() == (code == 0)
    assert "only logged data (task.data), no env" in (out / "report.md").read_text()


@pytest.mark.parametrize("ram", ["4KiB", "768B"])
def test_run_a_one_step_env_that_keeps_learning(tmp_path: Path, ram: str) -> None:
    """LinUCB learns 300 decisions in the one-step env; under inference.learn its state
    (A⁻¹, b, θ per arm for 5 features and 4 arms: 4·(4·(36 + 12) + 6) + 4 = 796 B, as
    plan counts it) is added to the C export's RAM: 4 KiB fits (exit 0, C exported);
    768 B cannot hold the state alone (exit 1, inference.ram binds)."""
    code, out, report = _run(tmp_path, f"device: nrf52840\ninference: {{ram: {ram}, "
                             "latency: 1ms, learn: true}\ntraining: {env_steps: 300}\n"
                             f"task: {{kind: bandit, env: '{ENV}'}}\n")  # fmt: skip
    assert report["plan"]["algorithm"] == "linucb" and report["train"]["steps"] == 300
    ram_check = _check(report, "inference.ram")
    assert "+ 796 B of linucb's learner state" in ram_check["how"] and ram_check["figure"] > 796
    returns = report["profile"]["return"]  # 100 one-decision episodes in the env
    assert returns["episodes"] == 100 and returns["mean"] == _check(report, "task.min_return")[
        "figure"]  # fmt: skip
    if ram == "4KiB":
        assert code == 0 and report["fits"] and (out / "export" / "policy.c").is_file()
    else:
        assert code == 1 and not report["fits"] and not (out / "export").exists()
        assert report["profile"]["binding"] == "inference.ram"
