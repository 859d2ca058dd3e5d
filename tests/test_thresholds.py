"""Built-in agents reach the issue's thresholds with fixed seeds (deterministic runs).

Each trains with rlbudget's defaults until a 100-episode greedy screen meets the
threshold and a confirmation on fresh episodes puts its 95 % lower bound at or above it
(the criterion itself). A fresh evaluation with another seed must then agree within two
standard errors: on slippery FrozenLake the best policy succeeds only ≈74 % of the time,
so 100 fresh episodes land under 0.70 by chance quite often.
The longer cases are marked slow; FrozenLake (≈ 3 s) runs by default.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rlbudget.policy import load_policy
from rlbudget.profile.evaluate import evaluate
from rlbudget.train import resolve, train_run

# Sarsa on Taxi needs ≈ 200k steps (more than its tuned 150k) to confirm 7.5 with
# its 95 % bound; until issue 14 it had trained as Q-learning, which confirms by ≈ 70k.
CASES = [
    pytest.param("q-learning", "FrozenLake-v1", 0.70, None, id="frozenlake-q"),
    pytest.param("q-learning", "Taxi-v4", 7.5, None, id="taxi-q", marks=pytest.mark.slow),
    pytest.param("sarsa", "Taxi-v4", 7.5, 400_000, id="taxi-sarsa", marks=pytest.mark.slow),
    pytest.param(
        "sarsa-lambda",
        "MountainCar-v0",
        -130.0,
        None,
        id="mountaincar",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "dyna-q",
        "FrozenLake8x8-v1",
        0.70,
        None,
        id="frozenlake8x8-dyna",
        marks=pytest.mark.slow,
    ),
    pytest.param("ars", "CartPole-v1", 475.0, None, id="cartpole-ars", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("algo", "env", "threshold", "env_steps"), CASES)
def test_reaches_threshold(
    algo: str, env: str, threshold: float, env_steps: int | None, tmp_path: Path
) -> None:
    settings = resolve(algo, env, min_return=threshold, seed=0, env_steps=env_steps)
    run = train_run(settings, tmp_path / "run")
    assert run.stopped_by == "target" and run.last_eval is not None
    assert run.last_eval >= threshold
    e = evaluate(load_policy(tmp_path / "run" / "policy"), env, episodes=100, seed=123)
    standard_error = e.return_std / 10  # sqrt(100 episodes)
    assert e.return_mean >= threshold - 2 * standard_error
