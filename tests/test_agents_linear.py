"""Built-in linear agents: Sarsa(lambda) with tile coding, ARS with a linear policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlbudget.agents.linear import ARSConfig, SarsaLambdaConfig, train_ars, train_sarsa_lambda
from rlbudget.errors import EnvError
from rlbudget.policy import Linear, Normalize, TileCode, load_policy, save_policy
from rlbudget.profile.evaluate import evaluate


def test_sarsa_lambda_mountaincar_short(tmp_path: Path) -> None:
    """The default suite's version of the slow test below: the same features and body, a
    saved policy acts the same, and a few episodes already beat a random policy's -200."""
    r = train_sarsa_lambda("MountainCar-v0", SarsaLambdaConfig(n_timesteps=3_000))
    (tiles,) = r.policy.preprocess
    assert isinstance(tiles, TileCode) and tiles.hash_size is None
    assert isinstance(r.policy.body, Linear) and r.policy.body.W.shape == (648, 3)
    e = evaluate(r.policy, "MountainCar-v0", episodes=3, seed=1)
    save_policy(r.policy, tmp_path / "pol")
    again = evaluate(load_policy(tmp_path / "pol"), "MountainCar-v0", episodes=3, seed=1)
    assert again.returns == e.returns


@pytest.mark.slow
def test_sarsa_lambda_mountaincar(tmp_path: Path) -> None:
    # Sutton & Barto's setting; a random policy never reaches the flag in 200 steps (-200).
    r = train_sarsa_lambda("MountainCar-v0", SarsaLambdaConfig(n_timesteps=40_000))
    (tiles,) = r.policy.preprocess
    assert isinstance(tiles, TileCode) and tiles.hash_size is None  # 8 × 9² = 648 features
    assert isinstance(r.policy.body, Linear) and r.policy.body.W.shape == (648, 3)
    e = evaluate(r.policy, "MountainCar-v0", episodes=20, seed=1)
    assert e.return_mean >= -150
    save_policy(r.policy, tmp_path / "pol")
    again = evaluate(load_policy(tmp_path / "pol"), "MountainCar-v0", episodes=20, seed=1)
    assert again.returns == e.returns


def test_sarsa_lambda_hashes_large_spaces() -> None:
    r = train_sarsa_lambda(
        "CartPole-v1", SarsaLambdaConfig(n_timesteps=500, tiles_per_dim=6, range_steps=200)
    )
    (tiles,) = r.policy.preprocess
    assert isinstance(tiles, TileCode) and tiles.hash_size == 4096  # 8 × 7⁴ > 4096


def test_ars_cartpole() -> None:
    r = train_ars("CartPole-v1", ARSConfig(n_timesteps=60_000))
    norm = r.policy.preprocess[0]
    assert isinstance(norm, Normalize) and np.all(norm.var > 0)
    e = evaluate(r.policy, "CartPole-v1", episodes=10, seed=1)
    assert e.return_mean >= 195


def test_ars_box_actions_are_clipped() -> None:
    r = train_ars("Pendulum-v1", ARSConfig(n_timesteps=2_000, delta_std=0.5))
    assert r.policy.head.kind == "clip"
    a = r.policy.act(np.array([[1.0, 0.0, 8.0]] * 5, dtype=np.float32) * 100)
    assert a.dtype == np.float32 and a.min() >= -2.0 and a.max() <= 2.0


@pytest.mark.parametrize(
    ("train", "message"),
    [
        (lambda: train_sarsa_lambda("FrozenLake-v1", SarsaLambdaConfig(n_timesteps=10)),
         "environment 'FrozenLake-v1': Sarsa(lambda) needs Box observations and Discrete actions"),
        (lambda: train_ars("FrozenLake-v1", ARSConfig(n_timesteps=10)),
         "environment 'FrozenLake-v1': ARS needs Box observations"),
    ],
)  # fmt: skip
def test_wrong_spaces(train: object, message: str) -> None:
    with pytest.raises(EnvError) as e:
        train()  # type: ignore[operator]
    assert str(e.value) == message


def test_sarsa_lambda_resume_is_exact(tmp_path: Path) -> None:
    from rlbudget.agents.common import Checkpoint

    cfg = SarsaLambdaConfig(n_timesteps=8_000, seed=2, epsilon=0.05)
    straight = train_sarsa_lambda("MountainCar-v0", cfg)
    calls = {"n": 0}

    def stop() -> bool:  # before step 3,333: mid-episode
        calls["n"] += 1
        return calls["n"] > 3_333

    half = train_sarsa_lambda("MountainCar-v0", cfg, should_stop=stop)
    assert half.steps == 3_333 and half.checkpoint is not None
    half.checkpoint.save(tmp_path / "ck")
    rest = train_sarsa_lambda("MountainCar-v0", cfg, resume=Checkpoint.load(tmp_path / "ck"))
    assert isinstance(rest.policy.body, Linear) and isinstance(straight.policy.body, Linear)
    assert np.array_equal(rest.policy.body.W, straight.policy.body.W)
    assert [e.ret for e in rest.episodes] == [e.ret for e in straight.episodes]


def test_ars_resume_is_exact(tmp_path: Path) -> None:
    from rlbudget.agents.common import Checkpoint

    cfg = ARSConfig(n_timesteps=12_000, seed=3)
    straight = train_ars("CartPole-v1", cfg)
    calls = {"n": 0}

    def stop() -> bool:  # checked before each iteration: stop before the 4th
        calls["n"] += 1
        return calls["n"] > 3

    half = train_ars("CartPole-v1", cfg, should_stop=stop)
    assert 0 < half.steps < straight.steps and half.checkpoint is not None
    half.checkpoint.save(tmp_path / "ck")
    rest = train_ars("CartPole-v1", cfg, resume=Checkpoint.load(tmp_path / "ck"))
    assert isinstance(rest.policy.body, Linear) and isinstance(straight.policy.body, Linear)
    assert np.array_equal(rest.policy.body.W, straight.policy.body.W)
    assert [e.ret for e in rest.episodes] == [e.ret for e in straight.episodes]


def test_ars_stop_mid_iteration_keeps_the_evaluated_policy() -> None:
    seen: list[np.ndarray] = []

    def on_episode(ep: object, current: object) -> bool:
        seen.append(current().body.W.copy())  # type: ignore[operator]
        return len(seen) == 5  # in the middle of the first iteration (16 rollouts)

    r = train_ars("CartPole-v1", ARSConfig(n_timesteps=50_000, seed=1), on_episode=on_episode)
    assert isinstance(r.policy.body, Linear) and np.array_equal(r.policy.body.W, seen[-1])
    assert r.checkpoint is not None and r.checkpoint.state["steps"] == 0  # the iteration's start
