"""The typed stage records of run, train and sweep: each reads back what it writes, and
writes the keys the JSON schemas (rlbudget.run/1, rlbudget.sweep/1, summary.json) hold."""

from __future__ import annotations

import json

import pytest

from rlbudget.budget import load_budget
from rlbudget.candidates import Candidate, Search
from rlbudget.compress.pipeline import Gate
from rlbudget.errors import PlanError
from rlbudget.plan import PlanChoice, SavedPlan, make_plan
from rlbudget.run import Export, Interruption, RunState
from rlbudget.sweep import TrialResult
from rlbudget.sweepfile import Trial
from rlbudget.train import TargetCheck, TrainSummary

from .conftest import BUDGETS

GATE = Gate(100, 0.05, 100.0, 98.2, 0.018, (-0.007, 0.044), 5, 100.0, 63.6, 0.364)
SUMMARY = TrainSummary("r/train", "q-learning", "FrozenLake-v1", 0, "target", 15001, 1879,
                       3.5, 3.4, 10**8, None, 4286.0, 0.5, 0.706,
                       TargetCheck(500, 35001, 0.706, 0.6659))  # fmt: skip
BUILT = Candidate(1, "pack", "pack", "c/1-pack/policy", True, 1.0, GATE, None, None, 700, 300,
                  2e-5, 0.7, "PASS")  # fmt: skip
FAILED = Candidate(0, "as trained", None, "c/0/policy", False, error="PolicyError: no")


def roundtrip(record: object) -> object:
    data = json.loads(json.dumps(record.to_dict()))  # type: ignore[attr-defined]
    return type(record).from_dict(data)  # type: ignore[attr-defined]


@pytest.mark.parametrize("record", [SUMMARY, BUILT, FAILED, Search("c", (FAILED, BUILT), BUILT),
                                    Export("numpy", ("a", "b")), Export("c", ("p.c",), 10, 20,
                                                                        False)])  # fmt: skip
def test_records_read_back_what_they_write(record: object) -> None:
    assert roundtrip(record) == record


def test_candidate_keys_as_run_1_holds_them() -> None:
    assert list(FAILED.to_dict()) == ["index", "name", "methods", "policy", "fits", "error"]
    assert list(BUILT.to_dict()) == ["index", "name", "methods", "policy", "retention", "gate",
                                     "fits", "binding", "flash_bytes", "ram_bytes", "latency_s",
                                     "return_mean", "verdict"]  # fmt: skip
    assert BUILT.to_dict()["gate"]["passed"] is False
    assert BUILT.status() == ("PASS, gate FAIL", "compression gate")


def test_run_state_keeps_each_stage_and_an_empty_export() -> None:
    lake = SavedPlan.from_dict(make_plan(load_budget(BUDGETS / "rp2040-frozenlake.yaml"))
                               .to_dict())  # fmt: skip
    stopped = Interruption("SIGTERM", "profile")
    state = RunState("k", "b", None, plan=lake.choose(), train=SUMMARY,
                     search=Search("c", (FAILED,), None), exported=True, export=None,
                     status="interrupted", interrupted=stopped)  # fmt: skip
    data = json.loads(json.dumps(state.to_dict()))
    assert list(data["stages"]) == ["plan", "train", "compress", "export"]
    assert data["stages"]["export"] is None
    assert data["interrupted"] == {"signal": "SIGTERM", "stage": "profile"}
    back = RunState.from_dict(data)
    assert back == state and back.done() == ("plan", "train", "compress", "export")


def test_plan_choice_rules() -> None:
    doc = make_plan(load_budget(BUDGETS / "rp2040-frozenlake.yaml")).to_dict()
    saved = SavedPlan.from_dict(doc)
    first = saved.choose()
    assert first == PlanChoice.from_dict(first.to_dict()) and first.option == 1
    assert first.env == "FrozenLake-v1" and first.algorithm == doc["options"][0]["algorithm"]
    with pytest.raises(PlanError, match="--option 99: the plan has"):
        saved.choose(99)
    with pytest.raises(PlanError, match=r"schema 'rlbudget\.plan/9' is not rlbudget\.plan/2"):
        SavedPlan.from_dict({**doc, "schema": "rlbudget.plan/9"})


@pytest.mark.parametrize(
    ("result", "keys"),
    [(TrialResult(Trial("b.yaml", None, None, 0), "id", "plan", "ok", 0.1, fits=True,
                  option="q", flash_bytes=1.0, ram_bytes=2.0, latency_s=3e-6),
      ["trial", "id", "stage", "status", "fits", "option", "flash_bytes", "ram_bytes",
       "latency_s", "wall_s"]),
     (TrialResult(Trial("b.yaml", None, None, 0), "id", "train", "ok", 0.1, train_s=1.0,
                  train_steps=5, last_eval_return=0.5),
      ["trial", "id", "stage", "status", "train_s", "train_steps", "last_eval_return", "fits",
       "wall_s"]),
     (TrialResult(Trial("b.yaml", "esp32", "CartPole-v1", 1, {"gamma": 0.9}), "id", "run",
                  "ok", 0.1, fits=False, train_s=1.0, return_mean=9.0),
      ["trial", "id", "stage", "status", "train_s", "train_steps", "last_eval_return", "fits",
       "binding", "chosen", "return", "target", "flash_bytes", "ram_bytes", "latency_s",
       "wall_s"]),
     (TrialResult(Trial("b.yaml", None, None, 0), "id", "run", "error", 0.1, error="E: x",
                  traceback="tb"),
      ["trial", "id", "stage", "status", "error", "traceback", "wall_s"])],
    ids=["plan", "train", "run", "error"],
)  # fmt: skip
def test_trial_results_write_their_stage_keys(result: TrialResult, keys: list[str]) -> None:
    data = json.loads(json.dumps(result.to_dict()))
    assert list(data) == keys
    assert TrialResult.from_dict(data) == result
