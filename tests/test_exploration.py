"""Exploration bonuses: the count bonus of Sarsa(λ) (rlbudget.agents.linear.count_bonus)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlbudget.agents.common import Checkpoint
from rlbudget.agents.linear import SarsaLambdaConfig, count_bonus, train_sarsa_lambda
from rlbudget.budget import parse_budget
from rlbudget.errors import BudgetError
from rlbudget.hyperparams import get_hyperparams
from rlbudget.plan import RULES, Plan, make_plan, sparse
from rlbudget.policy import Linear, TileCode


def torch_no_grad() -> Any:
    import torch

    return torch.no_grad()


def test_count_bonus_by_hand_on_a_tiny_tile_coder() -> None:
    # 1 dim over [0, 1], 2 tilings of 2 tiles (+1 for the offset): 3 tiles per tiling, the
    # second tiling's indices start at 3. Cells are quarters (tilings × tiles = 4):
    # x=0.1 is cell 0 → tiles (0+0)//2=0 and 3+(0+1)//2=3; x=0.3 is cell 1 → 0 and 3+1=4.
    tiles = TileCode(np.array([0.0]), np.array([1.0]), tilings=2, tiles_per_dim=2)
    a, b = tiles.apply(np.array([[0.1], [0.3]], dtype=np.float32))
    assert a.tolist() == [0, 3] and b.tolist() == [0, 4]
    counts = np.zeros(tiles.features)
    beta = 0.5
    assert count_bonus(counts, a, beta) == beta  # first visit: n̂ = (1 + 1) / 2 = 1
    assert count_bonus(counts, a, beta) == pytest.approx(beta / math.sqrt(2))  # n̂ = 2
    # A neighbour shares tile 0 (seen twice) and has a new tile 4: n̂ = (3 + 1) / 2 = 2.
    assert count_bonus(counts, b, beta) == pytest.approx(beta / math.sqrt(2))
    assert counts.tolist() == [3, 0, 0, 2, 1, 0]


def test_count_bonus_counts_a_hashed_collision_once() -> None:
    counts = np.zeros(4)
    # Two tilings hashed to the same feature: that feature counts both visits.
    assert count_bonus(counts, np.array([1, 1]), 1.0) == pytest.approx(1 / math.sqrt(2))
    assert counts.tolist() == [0, 2, 0, 0]


def test_bonus_off_by_default() -> None:
    assert SarsaLambdaConfig().bonus_coef == 0.0
    for env_id in ("MountainCar-v0", "CartPole-v1", "Acrobot-v1", "Pendulum-v1"):
        assert get_hyperparams("sarsa-lambda", env_id).params["bonus_coef"] == 0.0


def test_bonus_off_is_the_agent_before_the_bonus() -> None:
    """bonus_coef 0 trains exactly as the agent did before the bonus existed: the episode
    returns and the weights' sum below were printed by commit fabf501's linear.py (main
    before this change) with the same config; the checkpoint holds no counts."""
    cfg = SarsaLambdaConfig(n_timesteps=8_000, seed=1, epsilon=0.05)
    r = train_sarsa_lambda("MountainCar-v0", cfg)
    before = [-200.0] * 23 + [-169.0, -200.0, -166.0, -171.0, -131.0, -117.0, -200.0, -177.0,
              -200.0, -173.0, -153.0, -157.0, -167.0, -200.0, -170.0, -144.0, -123.0,
              -167.0, -178.0, -154.0]  # fmt: skip
    assert [e.ret for e in r.episodes] == before
    assert isinstance(r.policy.body, Linear)
    assert float(r.policy.body.W.astype(np.float64).sum()) == pytest.approx(-6683.284269997632)
    assert r.checkpoint is not None and "counts" not in r.checkpoint.arrays


def test_bonus_changes_learning_not_the_logged_return() -> None:
    cfg = SarsaLambdaConfig(n_timesteps=2_000, seed=1, bonus_coef=1.0)
    r = train_sarsa_lambda("MountainCar-v0", cfg)
    # The logged returns are the env's (-1 a step, 200-step episodes), not the bonus's.
    assert [e.ret for e in r.episodes] == [-200.0] * 10
    assert r.checkpoint is not None
    counts = r.checkpoint.arrays["counts"]
    assert counts.sum() == 2_000 * 8  # every step's next state, 8 tilings
    (tiles,) = r.policy.preprocess
    assert isinstance(tiles, TileCode) and counts.shape == (tiles.features,)


def test_resume_with_counts_is_exact(tmp_path: Path) -> None:
    cfg = SarsaLambdaConfig(n_timesteps=6_000, seed=2, bonus_coef=0.5)
    straight = train_sarsa_lambda("MountainCar-v0", cfg)
    calls = {"n": 0}

    def stop() -> bool:  # before step 2,345: mid-episode
        calls["n"] += 1
        return calls["n"] > 2_345

    half = train_sarsa_lambda("MountainCar-v0", cfg, should_stop=stop)
    assert half.steps == 2_345 and half.checkpoint is not None
    assert half.checkpoint.arrays["counts"].sum() == 2_345 * 8
    half.checkpoint.save(tmp_path / "ck")
    rest = train_sarsa_lambda("MountainCar-v0", cfg, resume=Checkpoint.load(tmp_path / "ck"))
    assert isinstance(rest.policy.body, Linear) and isinstance(straight.policy.body, Linear)
    assert np.array_equal(rest.policy.body.W, straight.policy.body.W)
    assert [e.ret for e in rest.episodes] == [e.ret for e in straight.episodes]
    assert rest.checkpoint is not None and straight.checkpoint is not None
    assert np.array_equal(rest.checkpoint.arrays["counts"], straight.checkpoint.arrays["counts"])


# --- plan: rule sparse-reward -------------------------------------------------------------


def _plan(env: str, task: str = "") -> Plan:
    text = f"device: raspberry-pi-4\ntask: {{env: {env}{task}}}\n"
    return make_plan(parse_budget(text, "test.yaml"))


def test_sparse_reward_rule_fires_for_mountaincar_and_turns_the_bonus_on() -> None:
    p = _plan("MountainCar-v0")
    assert "sparse-reward" in RULES
    assert p.context.sparse_reward.startswith("MountainCar-v0: -1 every step")
    for o in p.options:
        fired = [r for r in o.reasons if r.startswith("[sparse-reward]")]
        assert len(fired) == 1
        key = {"sarsa-lambda": "bonus_coef", "ppo": "rnd_coef", "dqn": "rnd_coef"}.get(o.algorithm)
        if key == "rnd_coef":  # offered, not turned on: RND was not measured to help here
            assert "rnd_coef" not in o.hyperparams
            offered = "not turned on (not measured to help here; to try it: -p rnd_coef=1)"
            assert offered in fired[0]
        elif key is None:
            assert f"{o.algorithm} has none in rlbudget" in fired[0]
            assert "rnd_coef" not in o.hyperparams and "bonus_coef" not in o.hyperparams
        else:
            assert o.hyperparams[key] == sparse.bonus(o.algorithm)[key] > 0
            assert f"turned on: {key} = " in fired[0]


def test_sparse_reward_rule_not_for_cartpole_unless_the_budget_says_so() -> None:
    p = _plan("CartPole-v1")
    assert p.context.sparse_reward == ""
    assert not any(r.startswith("[sparse-reward]") for o in p.options for r in o.reasons)
    assert all(o.hyperparams.get("bonus_coef", 0.0) == 0.0 for o in p.options)
    assert all("rnd_coef" not in o.hyperparams for o in p.options)
    declared = _plan("CartPole-v1", ", sparse_reward: true")
    assert declared.context.sparse_reward == "task.sparse_reward is true in the budget"
    sarsa_on = next(o for o in declared.options if o.algorithm == "sarsa-lambda")
    assert sarsa_on.hyperparams["bonus_coef"] == sparse.bonus("sarsa-lambda")["bonus_coef"]
    off = _plan("MountainCar-v0", ", sparse_reward: false")
    assert off.context.sparse_reward == ""
    sarsa = next(o for o in off.options if o.algorithm == "sarsa-lambda")
    assert sarsa.hyperparams["bonus_coef"] == 0.0


def test_sparse_reward_key_must_be_a_boolean() -> None:
    with pytest.raises(BudgetError) as e:
        parse_budget("device: esp32\ntask:\n  env: MountainCar-v0\n  sparse_reward: maybe\n",
                     "b.yaml")  # fmt: skip
    assert str(e.value) == "b.yaml:4: task.sparse_reward: 'maybe' is not true or false"


# --- Random Network Distillation ----------------------------------------------------------


def test_rnd_bonus_shape_and_normalization() -> None:
    pytest.importorskip("torch")
    from rlbudget.sb3.rnd import RND

    rng = np.random.default_rng(0)
    obs = [rng.normal(size=(4, 3)) for _ in range(50)]
    dones = np.zeros(4, dtype=bool)
    a, b = RND(3, 4, seed=1), RND(3, 4, seed=1)
    with torch_no_grad():  # b's target says 10× a's: raw errors 100× larger
        for p in b.target[-1].parameters():
            p.mul_(10.0)
    for x in obs:
        ra, rb = a.bonus(x, dones), b.bonus(x, dones)
        assert ra.shape == (4,) and ra.dtype == np.float64 and np.all(ra >= 0)
    # Normalized by the running std of the discounted intrinsic return, the last rewards
    # do not depend on the raw scale (the predictors learn differently, so not exactly).
    assert np.all(rb > 0) and 0.2 < float(rb.mean() / ra.mean()) < 5
    assert float(b.error(obs[-1]).mean() / a.error(obs[-1]).mean()) > 20


def test_rnd_bonus_is_larger_for_novel_observations() -> None:
    pytest.importorskip("torch")
    from rlbudget.sb3.rnd import RND

    rnd = RND(2, 1, seed=0, batch=32)
    seen = np.array([[0.5, -0.5]])
    for _ in range(600):  # the predictor learns the one observation it sees
        rnd.bonus(seen + 0.01 * np.random.default_rng(_).normal(size=(1, 2)), np.zeros(1))
    rnd.obs_stats.var[:] = 1.0  # compare both points on the same normalization
    assert rnd.error(np.array([[3.0, 3.0]]))[0] > 10 * rnd.error(seen)[0]


def test_rnd_training_keeps_the_env_return_and_the_policy_kind() -> None:
    pytest.importorskip("stable_baselines3")
    from rlbudget.sb3.training import SB3Config, train_sb3

    hp = {"n_steps": 64, "batch_size": 64, "n_epochs": 1, "rnd_coef": 5.0}
    r = train_sb3("CartPole-v1", SB3Config("ppo", n_timesteps=512, hyperparameters=hp))
    assert r.steps == 512 and r.episodes
    # CartPole pays 1 a step: a logged return equal to the length carries no bonus.
    assert all(e.ret == e.length for e in r.episodes)
    assert r.policy.body.kind == "mlp" and r.policy.head.kind == "argmax"


@pytest.mark.parametrize(
    ("algo", "env_id"),
    [("sarsa-lambda", "MountainCar-v0"), ("ppo", "MountainCar-v0"), ("dqn", "MountainCar-v0"),
     ("sac", "MountainCarContinuous-v0")],
)  # fmt: skip
def test_the_offered_bonus_is_a_hyperparameter_the_trainer_takes(algo: str, env_id: str) -> None:
    if algo != "sarsa-lambda":
        pytest.importorskip("stable_baselines3")
    from rlbudget.train import resolve

    ((key, value),) = sparse.bonus(algo, planned=False).items()
    settings = resolve(algo, env_id, overrides={key: value})  # refuses an unknown key
    assert settings.hyperparameters[key] == value > 0
