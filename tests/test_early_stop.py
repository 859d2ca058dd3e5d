"""Training's early stop (issue 14, item 12): a run stopped by target meets the target on
fresh episodes, because the stop is confirmed over as many fresh episodes as the final
measurement with a 95 % lower confidence bound."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

import tests.fake_envs  # noqa: F401  (registers the fake envs)
from rlbudget.cli import app
from rlbudget.policy import load_policy
from rlbudget.profile.evaluate import evaluate
from rlbudget.run import default_episodes

runner = CliRunner()
LUCKY_SEED = 77  # Coin-v0's 100 screen episodes (seed 77 + 10,000) average 0.61


def _train(tmp_path: Path, write_budget: Callable[[str, str], Path], env: str, min_return: float,
           seed: int = 0) -> dict:  # type: ignore[type-arg]  # fmt: skip
    budget = write_budget(
        f"device: rp2040\ntraining: {{env_steps: 3000}}\ntask: {{env: {env}, "
        f"min_return: {min_return}}}\n"
    )
    r = runner.invoke(app, ["train", "--algo", "q-learning", "--budget", str(budget), "--seed",
                            str(seed), "-o", str(tmp_path / "run"), "--json"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_a_lucky_screen_does_not_stop_training(
    tmp_path: Path, write_budget: Callable[[str, str], Path]
) -> None:
    # Every policy returns 0.5 on average; the screen's fixed 100 episodes say 0.61 at each
    # evaluation (1,000, 2,000, 3,000 steps). Two screens in a row stopped the run before.
    s = _train(tmp_path, write_budget, "Coin-v0", 0.6, seed=LUCKY_SEED)
    assert s["last_eval_return"] == 0.61  # the screen passed …
    assert (s["stopped_by"], s["steps"]) == ("steps", 3000)  # … but did not stop the run
    assert s["target_check"] is None
    fresh = evaluate(load_policy(tmp_path / "run" / "policy"), "Coin-v0", episodes=400, seed=1)
    assert fresh.return_mean < 0.6  # what a stop would have promised and not kept


def test_a_confirmed_stop_says_how(
    tmp_path: Path, write_budget: Callable[[str, str], Path]
) -> None:
    # TinyBox returns 10 in every episode: no spread, so the bound is the mean.
    s = _train(tmp_path, write_budget, "TinyBox-v0", 9)
    assert (s["stopped_by"], s["steps"]) == ("target", 1000)
    assert s["target_check"] == {"episodes": default_episodes(10), "seed": 0 + 20_000 + 1000,
                                 "mean": 10.0, "lower_95": 10.0}  # fmt: skip
    assert s["last_eval_return"] == 10.0
