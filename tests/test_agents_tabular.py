"""Built-in tabular agents and evaluation of numpy policies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rlbudget.agents.tabular import ALGORITHMS, TabularConfig, train_tabular
from rlbudget.cli import app
from rlbudget.envs import env_spec
from rlbudget.errors import EnvError
from rlbudget.policy import Discretize, Head, Policy, Table, save_policy
from rlbudget.profile.evaluate import evaluate


# dyna-q plans 10 model steps per env step (≈50 s under load): its learning run is slow;
# test_same_seed_same_table trains it briefly in the default suite.
@pytest.mark.parametrize(
    "algo", [pytest.param(a, marks=pytest.mark.slow) if a == "dyna-q" else a for a in ALGORITHMS]
)
def test_learns_frozenlake(algo: str) -> None:
    # A random policy succeeds ≈1.5 % of the time on slippery FrozenLake 4x4.
    r = train_tabular("FrozenLake-v1", TabularConfig(algorithm=algo, n_timesteps=30_000))
    assert r.steps == 30_000
    e = evaluate(r.policy, "FrozenLake-v1", episodes=200, seed=1)
    assert e.return_mean >= 0.3, f"{algo}: success {e.return_mean}"
    assert r.policy.provenance["algorithm"] == algo and r.policy.provenance["steps"] == 30_000


def test_same_seed_same_table() -> None:
    # 10k steps (half the earlier 20k) reach the goal: enough to tell two seeds apart
    cfg = TabularConfig(algorithm="dyna-q", n_timesteps=10_000, seed=7)
    a = train_tabular("FrozenLake-v1", cfg).policy.body
    b = train_tabular("FrozenLake-v1", cfg).policy.body
    assert isinstance(a, Table) and isinstance(b, Table)
    assert a.values.any()  # it reached the goal and learned something
    assert np.array_equal(a.values, b.values)
    c = train_tabular(
        "FrozenLake-v1", TabularConfig(algorithm="dyna-q", n_timesteps=10_000, seed=8)
    )
    assert isinstance(c.policy.body, Table) and not np.array_equal(a.values, c.policy.body.values)


def test_box_observations_are_discretized() -> None:
    r = train_tabular("CartPole-v1", TabularConfig(n_timesteps=2_000, bins=6, range_steps=500))
    (disc,) = r.policy.preprocess
    assert isinstance(disc, Discretize) and disc.bins == (6, 6, 6, 6)
    assert np.all(np.isfinite(disc.low)) and np.all(disc.high > disc.low)
    assert disc.low[0] == pytest.approx(-4.8)  # the cart position's own bound is used
    assert isinstance(r.policy.body, Table) and r.policy.body.values.shape == (6**4, 2)


def test_box_actions_rejected() -> None:
    with pytest.raises(EnvError) as e:
        train_tabular("Pendulum-v1", TabularConfig(n_timesteps=10))
    assert str(e.value) == (
        "environment 'Pendulum-v1' has Box actions; tabular agents need Discrete"
    )


def tiny_policy() -> Policy:
    s = env_spec("tests.fake_envs:TinyBox-v0", measure_steps=0, trusted=True)
    disc = Discretize(np.array([-1.0, -1.0]), np.array([1.0, 1.0]), (2, 2))
    values = np.zeros((4, 3), dtype=np.float32)
    return Policy(s.observation, s.action, (disc,), Table(values), Head("argmax"),
                  {"env": "tests.fake_envs:TinyBox-v0"})  # fmt: skip


def test_evaluate_exact() -> None:
    # TinyBox pays 1 per step and truncates at 10 steps, whatever the actions.
    e = evaluate(tiny_policy(), "tests.fake_envs:TinyBox-v0", episodes=4)
    assert (e.return_mean, e.return_std, e.return_min, e.return_max) == (10.0, 0.0, 10.0, 10.0)
    assert e.length_mean == 10 and e.episodes == 4 and e.success_rate is None


def test_evaluate_space_mismatch() -> None:
    with pytest.raises(EnvError) as e:
        evaluate(tiny_policy(), "CartPole-v1", episodes=1)
    assert str(e.value) == (
        "environment 'CartPole-v1' has a box observation space [4], but the policy's is box "
        "[2]; evaluate it on the env it was trained for"
    )


def test_evaluate_cli_json_without_torch(tmp_path: Path) -> None:
    save_policy(tiny_policy(), tmp_path / "pol")
    r = CliRunner().invoke(app, ["evaluate", str(tmp_path / "pol"), "-n", "3", "--json"])
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    for key in ("return_mean", "return_std", "return_min", "return_max", "episodes"):
        assert key in data
    assert data["return_mean"] == 10.0 and data["episodes"] == 3
    code = (
        "import sys\n"
        "from rlbudget.cli import app\n"
        f"app(['evaluate', {str(tmp_path / 'pol')!r}, '-n', '2'], standalone_mode=False)\n"
        "heavy = ('torch', 'stable_baselines3')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]"


def test_ucb_bonus_explores_without_epsilon() -> None:
    # With ε = 0 and all-zero Q, argmax always picks LEFT and never finds the goal; the
    # count-based bonus makes untried actions look better, so the agent reaches it.
    greedy = TabularConfig(n_timesteps=20_000, epsilon_start=0.0, epsilon_end=0.0)
    body = train_tabular("FrozenLake-v1", greedy).policy.body
    assert isinstance(body, Table) and not body.values.any()
    ucb = TabularConfig(n_timesteps=20_000, epsilon_start=0.0, epsilon_end=0.0, ucb_c=1.0)
    body = train_tabular("FrozenLake-v1", ucb).policy.body
    assert isinstance(body, Table) and body.values.max() > 0


@pytest.mark.parametrize(("algo", "env"), [("expected-sarsa", "CartPole-v1"), ("sarsa", "Taxi-v4")])
def test_resume_is_exact(algo: str, env: str, tmp_path: Path) -> None:
    from rlbudget.agents.common import Checkpoint

    cfg = TabularConfig(algorithm=algo, n_timesteps=6_000, seed=5, range_steps=300)
    straight = train_tabular(env, cfg)
    calls = {"n": 0}

    def stop() -> bool:  # before step 2,999: mid-episode in both envs
        calls["n"] += 1
        return calls["n"] > 2_999

    half = train_tabular(env, cfg, should_stop=stop)
    assert half.steps == 2_999 and half.checkpoint is not None
    half.checkpoint.save(tmp_path / "ck")
    rest = train_tabular(env, cfg, resume=Checkpoint.load(tmp_path / "ck"))
    assert isinstance(rest.policy.body, Table) and isinstance(straight.policy.body, Table)
    assert np.array_equal(rest.policy.body.values, straight.policy.body.values)
    assert [e.ret for e in rest.episodes] == [e.ret for e in straight.episodes]
