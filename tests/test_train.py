"""rlbudget train: the run folder, limits from budgets and plans, early stop, bad input."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from rlbudget.cli import app
from rlbudget.policy import load_policy
from rlbudget.profile.evaluate import evaluate

from .conftest import BUDGETS
from .processes import checkpoint_steps, metrics_rows, wait_for

runner = CliRunner()


def train(*args: str) -> dict:  # type: ignore[type-arg]
    r = runner.invoke(app, ["train", *args, "--json"])
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_run_folder(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "fl"  # parents are created
    s = train("--algo", "q-learning", "--env", "FrozenLake-v1", "--seed", "3", "-o", str(run))
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint", "config.yaml", "curve.png", "metrics.csv", "policy", "summary.json",
    ]  # fmt: skip
    assert s == json.loads((run / "summary.json").read_text())
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["algorithm"] == "q-learning" and config["seed"] == 3
    assert config["hyperparameters"]["alpha"] == 0.1 and "measured on a 2-core x86 host" in config[
        "hyperparameters_source"]  # fmt: skip
    assert config["versions"]["rlbudget"] == "0.1.0"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert list(rows[0]) == ["step", "episode", "return", "length", "wall_s", "exploration"]
    assert len(rows) == s["episodes"] and int(rows[-1]["step"]) == s["steps"]
    assert sum(int(r["length"]) for r in rows) == s["steps"]
    policy = load_policy(run / "policy")
    assert policy.provenance["seed"] == 3 and policy.provenance["steps"] == s["steps"]
    assert (run / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stops_at_target_with_a_policy_that_meets_it(tmp_path: Path) -> None:
    s = train("--algo", "q-learning", "--env", "FrozenLake-v1", "-o", str(tmp_path / "r"))
    assert s["stopped_by"] == "target" and s["last_eval_return"] >= 0.7
    assert s["steps"] < 50_000


def test_budget_step_limit(tmp_path: Path, write_budget: Callable[[str, str], Path]) -> None:
    budget = write_budget(
        "device: rp2040\ntraining: {env_steps: 3000}\ntask: {env: FrozenLake-v1, min_return: 2}\n"
    )
    s = train("--algo", "sarsa", "--budget", str(budget), "-o", str(tmp_path / "r"))
    assert (s["stopped_by"], s["steps"], s["env"]) == ("steps", 3000, "FrozenLake-v1")
    assert s["target_return"] == 2.0


def test_budget_time_limit(tmp_path: Path, write_budget: Callable[[str, str], Path]) -> None:
    budget = write_budget(
        "device: rp2040\ntraining: {time: 300ms, env_steps: 10M}\n"
        "task: {env: FrozenLake-v1, min_return: 2}\n"
    )
    s = train("--algo", "q-learning", "--budget", str(budget), "-o", str(tmp_path / "r"))
    assert s["stopped_by"] == "time"
    assert 0.3 <= s["wall_s"] < 5 and s["steps"] < 10_000_000


def test_train_from_plan(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    r = runner.invoke(app, ["plan", str(BUDGETS / "rp2040-frozenlake.yaml"), "-o", str(plan)])
    assert r.exit_code == 0
    # A few thousand steps: the test is about the plan's choice reaching train, not the return.
    s = train(str(plan), "--option", "2", "--steps", "5k", "-o", str(tmp_path / "r"))
    assert s["algorithm"] == "sarsa" and s["env"] == "FrozenLake-v1" and s["steps"] <= 5_000
    e = evaluate(load_policy(tmp_path / "r" / "policy"), "FrozenLake-v1", episodes=5)
    assert e.episodes == 5


def test_untrainable_algorithm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # every listed algorithm is trainable now; the refusal is kept for one that is not
    from rlbudget.train import settings

    monkeypatch.setattr(settings, "BUILTIN", tuple(a for a in settings.BUILTIN if a != "mbpo"))
    r = runner.invoke(app, ["train", "--algo", "mbpo", "--env", "Pendulum-v1", "-o", str(tmp_path)])
    assert r.exit_code == 2
    assert r.stderr == (
        "error: algorithm 'mbpo': rlbudget cannot train it yet; trainable algorithms: "
        "q-learning, sarsa, expected-sarsa, dyna-q, sarsa-lambda, ars, pets, lean-sac, lean-td3, "
        "bc, dagger, ppo, a2c, dqn, sac, td3, qrdqn, tqc, trpo\n"
    )


def test_algorithm_that_cannot_act_in_the_env(tmp_path: Path) -> None:
    r = runner.invoke(app, ["train", "--algo", "sarsa-lambda", "--env", "FrozenLake-v1",
                            "-o", str(tmp_path / "r")])  # fmt: skip
    assert r.exit_code == 2
    assert r.stderr == (
        "error: sarsa-lambda cannot train on FrozenLake-v1: it needs box observations; "
        "FrozenLake-v1 has discrete; choose another algorithm (rlbudget plan --env "
        "FrozenLake-v1 lists those that fit)\n"
    )
    assert not (tmp_path / "r").exists()


def test_non_empty_run_dir_refused(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    r = runner.invoke(
        app, ["train", "--algo", "sarsa", "--env", "FrozenLake-v1", "-o", str(tmp_path)]
    )
    assert r.exit_code == 2
    assert "exists and is not an empty folder; choose a new -o RUN_DIR" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_nothing_to_train() -> None:
    r = runner.invoke(app, ["train"])
    assert r.exit_code == 2
    assert r.stderr.startswith("error: say what to train: a plan file")


def test_bad_plan_option(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    runner.invoke(app, ["plan", str(BUDGETS / "rp2040-frozenlake.yaml"), "-o", str(plan)])
    r = runner.invoke(app, ["train", str(plan), "--option", "99", "-o", str(tmp_path / "r")])
    assert r.exit_code == 2
    assert r.stderr.startswith(f"error: {plan}: --option 99: the plan has ")


@pytest.mark.parametrize(
    ("edit", "problem"),
    [(lambda doc: doc.pop("schema"), "no schema: not a plan written by 'rlbudget plan -o'"),
     (lambda doc: doc.update(schema="rlbudget.plan/0"), "schema 'rlbudget.plan/0' is not "
      "rlbudget.plan/2: a plan of another rlbudget version; write it again with rlbudget plan -o"),
     (lambda doc: doc.pop("budget"), "not a plan written by 'rlbudget plan -o' (KeyError: "
      "'budget')")],
    ids=["missing", "other-version", "no-budget"],
)  # fmt: skip
def test_plan_file_schema_is_checked(
    tmp_path: Path, edit: Callable[[dict[str, object]], object], problem: str
) -> None:
    plan = tmp_path / "plan.yaml"
    runner.invoke(app, ["plan", str(BUDGETS / "rp2040-frozenlake.yaml"), "-o", str(plan)])
    doc = yaml.safe_load(plan.read_text())
    edit(doc)
    plan.write_text(yaml.safe_dump(doc))
    r = runner.invoke(app, ["train", str(plan), "-o", str(tmp_path / "r")])
    assert r.exit_code == 2
    assert r.stderr == (f"error: {plan}: {problem}; write it again with rlbudget plan BUDGET "
                        f"-o {plan}\n")  # fmt: skip
    assert not (tmp_path / "r").exists()


def test_plan_option_rlbudget_cannot_train(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    runner.invoke(app, ["plan", str(BUDGETS / "rp2040-frozenlake.yaml"), "-o", str(plan)])
    doc = yaml.safe_load(plan.read_text())
    doc["options"][0]["trainable"] = False
    plan.write_text(yaml.safe_dump(doc))
    r = runner.invoke(app, ["train", str(plan), "-o", str(tmp_path / "r")])
    assert r.exit_code == 2
    label = doc["options"][0]["label"]
    assert r.stderr == (f"error: {plan}: --option 1 ({label}) cannot be trained by rlbudget; "
                        "choose a trainable option (rlbudget plan)\n")  # fmt: skip


# --- checkpoints, resume, signals ------------------------------------------------------------

# An unreachable target (success rate 2), so runs go to their step limit.
LONG = (
    "device: rp2040\ntraining: {{env_steps: {steps}}}\n"
    "task: {{env: FrozenLake-v1, min_return: 2}}\n"
)


def _metrics_without_wall(run: Path) -> list[tuple[str, ...]]:
    rows = list(csv.reader((run / "metrics.csv").open()))
    return [tuple(r[:4] + r[5:]) for r in rows]  # drop wall_s


def test_resume_equals_straight_run(
    tmp_path: Path, write_budget: Callable[[str, str], Path]
) -> None:
    from rlbudget.train import load_settings, train_run

    budget = write_budget(LONG.format(steps=6_000))
    straight = tmp_path / "straight"
    train("--algo", "dyna-q", "--budget", str(budget), "--seed", "4", "-o", str(straight))
    # The same run, stopped after 3,000 steps (mid-episode), then resumed from the CLI.
    assert "3000" not in {row[0] for row in _metrics_without_wall(straight)}
    halves = tmp_path / "halves"
    settings = load_settings(straight)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3_000

    first = train_run(settings, halves, should_stop=stop)
    assert first.stopped_by == "requested" and first.steps == 3_000
    r = runner.invoke(app, ["train", "--resume", str(halves), "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["steps"] == 6_000
    a, b = load_policy(straight / "policy").body, load_policy(halves / "policy").body
    assert np.array_equal(a.values, b.values)  # type: ignore[union-attr]
    assert _metrics_without_wall(straight) == _metrics_without_wall(halves)


@pytest.mark.parametrize("algo", ["sarsa", "dyna-q"])
def test_tabular_algorithm_trains_as_itself(
    algo: str, tmp_path: Path, write_budget: Callable[[str, str], Path]
) -> None:
    # train_run once built TabularConfig without algorithm=, so every one trained as q-learning.
    from rlbudget.agents.tabular import TabularConfig, train_tabular

    budget = write_budget(
        "device: rp2040\ntraining: {env_steps: 1000}\ntask: {env: Taxi-v4, min_return: 100}\n"
    )  # reward -1 a step
    train("--algo", algo, "--budget", str(budget), "-o", str(tmp_path / "r"))
    policy = load_policy(tmp_path / "r" / "policy")
    assert policy.provenance["algorithm"] == algo
    assert policy.provenance["hyperparameters"]["algorithm"] == algo
    cfg = TabularConfig(**{**policy.provenance["hyperparameters"], "algorithm": "q-learning"})
    q_learning = train_tabular("Taxi-v4", cfg).policy.body
    assert not np.array_equal(policy.body.values, q_learning.values)  # type: ignore[union-attr]


def test_resume_needs_a_run(tmp_path: Path) -> None:
    r = runner.invoke(app, ["train", "--resume", str(tmp_path)])
    assert r.exit_code == 2
    assert r.stderr == f"error: {tmp_path}: not a run folder (no config.yaml); check the path\n"


def _start(run: Path, budget: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rlbudget", "train", "--algo", "q-learning", "--budget",
         str(budget), "-o", str(run), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_sigterm_saves_and_exits_143(
    tmp_path: Path, write_budget: Callable[[str, str], Path]
) -> None:
    from rlbudget.agents.common import Checkpoint

    run = tmp_path / "run"
    proc = _start(run, write_budget(LONG.format(steps="10M")))
    wait_for(lambda: metrics_rows(run) > 0, proc, "a metrics.csv row")  # training has begun
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert f"continue with: rlbudget train --resume {run}" in stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_by"] == "SIGTERM" and 0 < summary["steps"] < 10_000_000
    ck = Checkpoint.load(run / "checkpoint")
    assert ck.state["steps"] == summary["steps"]
    assert load_policy(run / "policy").provenance["steps"] == summary["steps"]


def test_kill_9_leaves_a_loadable_checkpoint(
    tmp_path: Path, write_budget: Callable[[str, str], Path]
) -> None:
    from rlbudget.agents.common import Checkpoint

    run = tmp_path / "run"
    # 100k steps: a checkpoint every 10k steps, i.e. several per second.
    proc = _start(run, write_budget(LONG.format(steps="100k")))
    # the first checkpoint replaced by the second: training is under way, writing more
    wait_for(lambda: checkpoint_steps(run) >= 20_000, proc, "a second checkpoint")
    proc.kill()
    proc.wait(timeout=30)
    ck = Checkpoint.load(run / "checkpoint")
    assert ck.state["steps"] % 10_000 == 0 and 0 < ck.state["steps"] < 100_000
    r = runner.invoke(app, ["train", "--resume", str(run), "--json"])  # and it is usable
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["steps"] == 100_000


def test_resume_takes_only_the_run_folder(tmp_path: Path) -> None:
    r = runner.invoke(app, ["train", "--resume", str(tmp_path), "--algo", "sarsa"])
    assert r.exit_code == 2
    assert r.stderr == (
        "error: --resume continues a run with the settings in its config.yaml; give only the "
        "run folder (rlbudget train --resume RUN_DIR)\n"
    )


def test_steps_time_and_hyperparams_without_a_budget(tmp_path: Path) -> None:
    run = tmp_path / "r"
    s = train("--algo", "q-learning", "--env", "FrozenLake-v1", "--steps", "2k", "--time", "1m",
              "-p", "gamma=0.9", "--hyperparams", "epsilon_end=5e-2", "-o", str(run))  # fmt: skip
    assert s["steps"] <= 2_000
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (config["n_timesteps"], config["n_timesteps_from"]) == (2_000, "--steps")
    assert config["time_limit_s"] == 60.0
    assert config["hyperparameters"]["gamma"] == 0.9
    assert config["hyperparameters"]["epsilon_end"] == 0.05  # YAML reads 5e-2 as a float


def test_train_options_override_the_budget(tmp_path: Path) -> None:
    run = tmp_path / "r"
    train("--algo", "q-learning", "--budget", str(BUDGETS / "rp2040-frozenlake.yaml"),
          "--steps", "1500", "-o", str(run))  # fmt: skip
    assert yaml.safe_load((run / "config.yaml").read_text())["n_timesteps"] == 1_500


def bad_train(tmp_path: Path, *args: str) -> str:
    out = tmp_path / "never"
    r = runner.invoke(app, ["train", "--algo", "q-learning", "--env", "FrozenLake-v1",
                            *args, "-o", str(out)])  # fmt: skip
    assert r.exit_code == 2, r.output
    assert not out.exists()
    return r.stderr


def test_bad_train_options_are_one_line(tmp_path: Path) -> None:
    assert bad_train(tmp_path, "-p", "foo=1").startswith(
        "error: hyperparameter 'foo' is not one q-learning takes; it takes "
    )
    assert bad_train(tmp_path, "-p", "gamma") == (
        "error: --hyperparams 'gamma': write KEY=VALUE, e.g. --hyperparams learning_rate=3e-4\n"
    )
    assert bad_train(tmp_path, "-p", "gamma=[").startswith(
        "error: --hyperparams gamma: value '[' is not valid YAML ("
    )
    # a string or NaN for a number reached the trainer's arithmetic (TypeError, exit 3)
    assert bad_train(tmp_path, "-p", "alpha=abc") == (
        "error: hyperparameter 'alpha' = 'abc': q-learning takes a finite number, e.g. alpha=0.1\n"
    )
    assert bad_train(tmp_path, "-p", "alpha=.nan") == (
        "error: hyperparameter 'alpha' = nan: q-learning takes a finite number, e.g. alpha=0.1\n"
    )
    # the config got n_timesteps twice (TypeError, exit 3)
    assert bad_train(tmp_path, "-p", "n_timesteps=1k") == (
        "error: hyperparameter 'n_timesteps' is the run's --steps; give --steps instead\n"
    )
    assert bad_train(tmp_path, "--steps", "2x") == (
        "error: --steps: '2x': unknown count unit 'x'; use one of: k, M, G.\n"
    )
    assert bad_train(tmp_path, "--time", "10").startswith("error: --time: ")


def test_curve_drawn_later_from_the_folder_and_screens_kept_over_a_resume(
    tmp_path: Path,
) -> None:
    # curve=False leaves curve.png out (matplotlib's import is ≈1 s of a short run);
    # summary.json keeps every screen, the screens before a resume included, so that
    # draw_curve draws the same curve later: a resumed q-learning run screens exactly
    # where and what a straight one does.
    from rlbudget.train import draw_curve, read_summary, resolve, train_run

    settings = resolve("q-learning", "FrozenLake-v1", env_steps=6_000, min_return=1e9, seed=2)
    straight = train_run(settings, tmp_path / "straight", curve=False)
    assert [s // 1000 for s, _ in straight.evals] == [1, 2, 3, 4, 5]  # one per 1,000 steps
    assert not (tmp_path / "straight" / "curve.png").exists()
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3_000

    halves = tmp_path / "halves"
    train_run(settings, halves, should_stop=stop, curve=False)
    resumed = train_run(settings, halves, resume=True, curve=False)
    assert resumed.evals == straight.evals
    summary = read_summary(halves)
    assert summary is not None and summary.evals == straight.evals
    png = draw_curve(halves)
    assert png == halves / "curve.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_curve_option_leaves_the_png_out(tmp_path: Path) -> None:
    # --no-curve reaches train_run: the run folder holds everything but curve.png.
    for flag, drawn in (("--no-curve", False), ("--curve", True)):
        out = tmp_path / flag
        r = runner.invoke(app, ["train", "--algo", "q-learning", "--env", "FrozenLake-v1",
                                "--steps", "500", "-q", "-o", str(out), flag])  # fmt: skip
        assert r.exit_code == 0, r.output
        assert (out / "summary.json").exists()
        assert (out / "curve.png").exists() is drawn
