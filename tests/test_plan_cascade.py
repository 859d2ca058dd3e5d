"""The plan's cascade (rule ``cascade``) and run's search trying it where the plan chose it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import rlbudget.compress.distill as distill_module
import rlbudget.profile.evaluate as evaluate_module
import rlbudget.train as train_module
from rlbudget.budget import load_budget
from rlbudget.costs import inference, mlp_body
from rlbudget.envs import env_spec
from rlbudget.plan import SavedPlan, make_plan
from rlbudget.policy.model import MLP, Dense, Normalize, Policy
from rlbudget.run import candidate_specs, run_job
from tests.factories import balancing_mlp

ROOT = Path(__file__).resolve().parent.parent


def esp32_budget(tmp_path: Path, energy: str) -> Path:
    """budgets/esp32-cartpole.yaml with another inference.energy."""
    doc = yaml.safe_load((ROOT / "budgets" / "esp32-cartpole.yaml").read_text())
    doc["inference"]["energy"] = energy
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_cascade_planned_only_where_energy_binds(tmp_path: Path) -> None:
    # The stock budget (0.5 mJ): a plain int8 MLP fits; no option deploys a cascade.
    plain = make_plan(load_budget(esp32_budget(tmp_path, "0.5mJ")), calibration=False)
    assert plain.fits and all(o.deploy_method is None for o in plain.options)
    assert not any("[cascade]" in r for o in plain.options for r in o.reasons)
    assert all(c.compress is None for c in SavedPlan.from_dict(plain.to_dict()).choices)
    # 5 µJ: every plain MLP width is over with the 25 % margin (16-16 int8 ≈ 5.2 µJ), but
    # its latency leaves room for a student in front of it.
    budget = load_budget(esp32_budget(tmp_path, "5uJ"))
    plan = make_plan(budget, calibration=False)
    best = plan.best
    assert best is not None and best.label.endswith("int8 + cascade")
    assert best.deploy_method == "cascade" and best.to_dict()["deploy"]["method"] == "cascade"
    assert any(r.startswith("[cascade] Energy per decision is over") for r in best.reasons)
    # CartPole's measured share is 100 % (data/cascade.yaml): the mean decision is the
    # student's alone, an int8 MLP of ⅛ of the full widths (at least 4), priced as its own
    # policy; the worst case runs both bodies.
    spec = env_spec("CartPole-v1", measure_steps=0)
    hidden, activation = best.network["hidden"], best.network["activation"]
    student = [max(4, w // 8) for w in hidden]
    obs, act, fpu = spec.observation, spec.action, budget.device.fpu
    small = inference(mlp_body(obs, act, student, activation, "int8", fpu), "int8",
                      budget.device, obs)  # fmt: skip
    full = inference(mlp_body(obs, act, hidden, activation, "int8", fpu), "int8",
                     budget.device, obs)  # fmt: skip
    checks = {c.limit: c for c in best.checks}
    assert checks["inference.energy"].figure == pytest.approx(small.energy_j.typical)
    worst = small.latency_s.typical + full.latency_s.typical
    assert checks["inference.latency"].figure == pytest.approx(worst)
    assert checks["inference.energy"].status == "PASS"
    # the plan file carries it to run: int8 first, then the cascade
    choice = SavedPlan.from_dict(plan.to_dict()).choose()
    assert choice.label == best.label and choice.compress == "int8,cascade"


def test_run_tries_the_cascade_right_after_int8_only_where_planned() -> None:
    policy = balancing_mlp(hidden=64)
    usual = [c.name for c in candidate_specs(policy)]
    assert "cascade" not in " ".join(usual)
    planned = candidate_specs(policy, "int8,cascade")
    assert [c.name for c in planned] == [*usual[:2], "int8 + cascade", *usual[2:]]
    assert planned[2].methods == "int8,cascade"


@pytest.mark.slow  # ≈ 22 s of CPU: three candidates profiled, the cascade calibrated
def test_run_picks_the_cascade_when_only_it_fits_the_energy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Training and the students' DAgger are replaced by hand-made CartPole MLPs that
    # balance (tests.factories.balancing_mlp): this test is about the plan and the search.
    # With that 4-64-2 policy on the ESP32 at 5 µJ (25 % margin: 4 µJ): as trained ≈ 8.8 µJ
    # and int8 ≈ 4.2 µJ fail; int8 + cascade (the 8-unit student decides alone on every
    # state, worst case 31 µs against 2 ms) ≈ 3.1 µJ fits.
    def fake_train_run(settings: Any, run_dir: Path, **_kwargs: Any) -> Any:
        from rlbudget.policy import save_policy
        from rlbudget.train import RunResult
        from rlbudget.train.folder import write_summary

        save_policy(balancing_mlp(hidden=64), run_dir / "policy", parents=True)
        result = RunResult(settings, run_dir, "target", 1000, 1.0, 2, 500.0)
        write_summary(result.summary, run_dir)
        return result

    def fake_distill(teacher: Policy, env_id: str, *, widths: Any, seed: int = 0,
                     **_kwargs: Any) -> Policy:  # fmt: skip
        # as distill's students do, it reads the teacher's preprocess (int8's input
        # normalization z = (x - μ) / σ): folded back, W·x + b = (σ W)·z + (b + μ·W)
        hand = balancing_mlp(hidden=int(widths[0]), seed=seed)
        first, last = hand.body.layers  # type: ignore[union-attr]
        W, b = first.W, first.b
        for step in teacher.preprocess:
            assert isinstance(step, Normalize)
            sigma = np.sqrt(step.var + np.float32(step.eps))
            W, b = (W * sigma[:, None]).astype(np.float32), (b + step.mean @ W).astype(np.float32)
        return Policy(teacher.observation_space, teacher.action_space, teacher.preprocess,
                      MLP((Dense(W, b, "relu"), last)), hand.head, {})  # fmt: skip

    monkeypatch.setattr(train_module, "train_run", fake_train_run)
    monkeypatch.setattr(distill_module, "distill", fake_distill)
    monkeypatch.setattr(evaluate_module, "env_default_episodes", lambda _env: 10)
    out = tmp_path / "run"
    report = run_job(load_budget(esp32_budget(tmp_path, "5uJ")), out, episodes=10)
    assert report.fits
    assert report.plan.label.endswith("+ cascade") and report.plan.compress == "int8,cascade"
    tried = [(c.name, c.fits) for c in report.candidates]
    assert tried == [("as trained", False), ("int8", False), ("int8 + cascade", True)]
    assert report.chosen is not None and report.chosen.name == "int8 + cascade"
    first, second, third = (json.loads((c.folder / "profile.json").read_text())
                            for c in report.candidates)  # fmt: skip
    assert first["binding"] == second["binding"] == "inference.energy"
    assert third["verdict"] == "PASS"
    assert (out / "export" / "policy.c").is_file()
