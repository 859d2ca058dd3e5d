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
from rlbudget.policy.model import Head
from rlbudget.profile.evaluate import evaluate
from rlbudget.run import default_episodes
from tests.factories import env_policy, random_mlp

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


def test_a_screen_ends_once_its_interval_is_clear_of_the_target() -> None:
    from rlbudget.train.loop import screen_decided

    # mean 103, s = √145 = 12.04, half-width t95(4) 2.776 · 12.04 / √5 = 14.95: 117.95 < 475
    assert screen_decided([100.0, 120.0, 90.0, 110.0, 95.0], 475.0)
    # mean 470, s = √1700 = 41.23, half-width 51.19: 418.8 to 521.2 holds 475, play on
    assert not screen_decided([400.0, 500.0, 480.0, 500.0, 470.0], 475.0)
    # no spread: the interval is the mean, at or above (confirm) or below (fail) the target
    assert screen_decided([500.0] * 5, 475.0) and screen_decided([500.0] * 5, 501.0)
    assert not screen_decided([500.0] * 4, 475.0)  # 4 episodes is not a look
    assert not screen_decided([500.0] * 6, 475.0)  # nor is 6
    # TinyBox returns 10 in every episode: its screen stops at the first look, 5 episodes
    policy = env_policy("TinyBox-v0", (), random_mlp([2, 4, 3]), Head("argmax"))
    screen = evaluate(policy, "TinyBox-v0", episodes=100, seed=0,
                      enough=lambda returns: screen_decided(returns, 9.0))  # fmt: skip
    assert (screen.episodes, screen.returns) == (5, (10.0,) * 5)
