"""Tuple and Dict observation spaces: a Tuple of Discrete is their product (a table takes
it; C, ONNX and numpy agree on Blackjack), any other Tuple/Dict is flattened with a note."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from typer.testing import CliRunner

from rlbudget.agents.tabular import TabularConfig, train_tabular
from rlbudget.cli import app
from rlbudget.envs import composite_observation, env_spec, make_env, observation_spec, space_spec
from rlbudget.errors import PolicyError
from rlbudget.export import export_c
from rlbudget.policy import load_policy, save_policy
from rlbudget.policy.model import Policy
from rlbudget.profile.evaluate import evaluate

from .conftest import BUDGETS
from .test_export_c import CFLAGS, GCC, compile_program, run_program

runner = CliRunner()
BLACKJACK = spaces.Tuple((spaces.Discrete(32), spaces.Discrete(11), spaces.Discrete(2)))


def test_tuple_of_discrete_is_their_product() -> None:
    spec = space_spec(BLACKJACK)
    assert (spec.kind, spec.n, spec.radices) == ("discrete", 704, (32, 11, 2))
    assert spec.note == (
        "Tuple(Discrete(32), Discrete(11), Discrete(2)) is read as Discrete(704): the state "
        "is the parts' mixed-radix index, row-major (radices 32, 11, 2)"
    )
    _, to_index, _ = composite_observation(BLACKJACK)
    every = [(a, b, c) for a in range(32) for b in range(11) for c in range(2)]
    assert [to_index(p) for p in every] == list(range(704))  # row-major, one to one
    assert list(spec.index(np.array(every))) == list(range(704))
    # each part counted from its start
    _, shifted, _ = composite_observation(
        spaces.Tuple((spaces.Discrete(3, start=1), spaces.Discrete(2, start=-1)))
    )
    assert [shifted(p) for p in [(1, -1), (1, 0), (2, -1), (3, 0)]] == [0, 1, 2, 5]


def test_blackjack_env_arrives_as_an_index() -> None:
    env = make_env("Blackjack-v1")
    try:
        spec = observation_spec(env, "Blackjack-v1")
        assert spec.radices == (32, 11, 2) and isinstance(env.observation_space, spaces.Discrete)
        obs, _ = env.reset(seed=5)
        assert obs == spec.index(env.unwrapped._get_obs())
    finally:
        env.close()
    assert env_spec("Blackjack-v1", measure_steps=0).observation == spec


@pytest.fixture(scope="module")
def blackjack() -> Policy:
    return train_tabular("Blackjack-v1", TabularConfig(n_timesteps=5_000, seed=1)).policy


def blackjack_parts(n_episodes: int = 200) -> np.ndarray:
    """Observations (the raw tuples) from random play, then every state once."""
    env = gymnasium.make("Blackjack-v1")
    env.action_space.seed(0)
    seen = []
    for ep in range(n_episodes):
        obs, _ = env.reset(seed=ep)
        done = False
        while not done:
            seen.append(obs)
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
    every = [(a, b, c) for a in range(32) for b in range(11) for c in range(2)]
    return np.array(seen + every, dtype=np.int64)


def test_blackjack_q_learning_policy(blackjack: Policy, tmp_path: Path) -> None:
    obs = blackjack.observation_space
    assert (obs.kind, obs.n, obs.radices) == ("discrete", 704, (32, 11, 2))
    assert blackjack.body.values.shape == (704, 2)  # type: ignore[union-attr]
    assert blackjack.preprocess == ()  # the table is indexed by the tuple's index directly
    # evaluate makes the env again and checks its spaces against the policy's
    result = evaluate(blackjack, "Blackjack-v1", episodes=20)
    assert result.episodes == 20 and -1.0 <= result.return_mean <= 1.0
    save_policy(blackjack, tmp_path / "p")
    again = load_policy(tmp_path / "p")
    assert again.observation_space == obs
    doc = json.loads((tmp_path / "p" / "policy.json").read_text())
    assert doc["schema_version"] == 1 and doc["observation_space"]["radices"] == [32, 11, 2]
    doc["observation_space"]["radices"] = [32, 11, 3]
    (tmp_path / "p" / "policy.json").write_text(json.dumps(doc))
    with pytest.raises(PolicyError, match=r"radices \[32, 11, 3\] do not multiply to its n"):
        load_policy(tmp_path / "p")


MAIN_PARTS = """#include <stdio.h>
#include "policy.h"
int main(void)
{
    int parts[RLB_OBS_PARTS];
    float obs[RLB_OBS_DIM];
    while (scanf("%d %d %d", &parts[0], &parts[1], &parts[2]) == 3) {
        obs[0] = (float)rlb_obs_index(parts);
        printf("%ld %d\\n", rlb_obs_index(parts), rlb_policy_act(obs, NULL));
    }
    return 0;
}
"""


def test_blackjack_c_matches_numpy(blackjack: Policy, tmp_path: Path) -> None:
    if GCC is None:
        pytest.skip("gcc is not installed: the C export is not compiled")
    parts = blackjack_parts()
    index = blackjack.observation_space.index(parts)
    expected = blackjack.act(index)
    result = export_c(blackjack, tmp_path / "c")
    assert "#define RLB_OBS_PARTS 3" in result.files[0].read_text()
    # the stock harness: the state index in obs[0]
    program = compile_program(tmp_path / "c", result, CFLAGS)
    assert np.array_equal([int(v) for v in run_program(program, index)], expected)
    # the tuple itself, through the header's rlb_obs_index
    (tmp_path / "c" / "main.c").write_text(MAIN_PARTS)
    program = compile_program(tmp_path / "c", result, CFLAGS)
    text = "\n".join(" ".join(map(str, row)) for row in parts) + "\n"
    lines = subprocess.run([str(program)], input=text, capture_output=True, text=True,
                           check=True).stdout.split("\n")[:-1]  # fmt: skip
    got = np.array([[int(v) for v in line.split()] for line in lines])
    assert np.array_equal(got[:, 0], index) and np.array_equal(got[:, 1], expected)


def test_blackjack_onnx_matches_numpy(blackjack: Policy, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from rlbudget.export import export_onnx
    from rlbudget.export.onnx import run_onnx

    index = blackjack.observation_space.index(blackjack_parts(50))
    result = export_onnx(blackjack, tmp_path / "onnx")
    assert np.array_equal(run_onnx(result.files[0], index), blackjack.act(index))


def test_blackjack_plan_is_not_refused() -> None:
    r = runner.invoke(app, ["plan", str(BUDGETS / "esp32-cartpole.yaml"), "--env",
                            "Blackjack-v1", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["env"]["observation"]["radices"] == [32, 11, 2]
    first = plan["options"][0]
    assert first["paradigm"] in ("tabular", "model-based")
    assert any("is read as Discrete(704)" in reason for reason in first["reasons"])


# --- Dict (and other Tuple) spaces: flattened ----------------------------------------------


DICT_ENV = "tests.fake_envs:DictObs-v0"


def test_dict_is_flattened_with_a_note() -> None:
    spec = env_spec(DICT_ENV, measure_steps=0).observation
    assert (spec.kind, spec.shape, spec.radices) == ("box", (9,), None)
    assert spec.note == (
        "the Dict observation space is flattened to a Box of 9 values by "
        "gymnasium.spaces.flatten (Discrete parts one-hot; Dict keys in sorted order: "
        "flags, mode, pos)"
    )
    assert spec.low == (0.0,) * 7 + (-1.0, -1.0) and spec.high == (1.0,) * 9
    env = make_env(DICT_ENV)
    try:
        obs, _ = env.reset(seed=3)
        raw = env.unwrapped.obs
        assert obs.dtype == np.float32
        flat = spaces.flatten(env.unwrapped.observation_space, raw)
        assert np.array_equal(obs, np.asarray(flat))
        # flags one-hot per part, then mode one-hot, then pos
        flags, mode = raw["flags"], int(raw["mode"])
        assert obs[flags[0]] == 1 and obs[2 + flags[1]] == 1 and obs[4 + mode] == 1
    finally:
        env.close()
    # a Tuple of mixed parts is flattened too
    mixed = space_spec(spaces.Tuple((spaces.Discrete(2), spaces.Box(0, 1, (3,)))))
    assert (mixed.kind, mixed.shape) == ("box", (5,)) and mixed.note is not None


def test_dict_env_trains_and_evaluates(
    tmp_path: Path, write_budget: Callable[[str, str], Path]
) -> None:
    cfg = TabularConfig(n_timesteps=3_000, bins=2, seed=0, epsilon_decay_fraction=0.3)
    policy = train_tabular(DICT_ENV, cfg).policy
    assert policy.observation_space.shape == (9,) and policy.observation_space.note
    # reward 1 when the action equals the one-hot 'mode': learnable from the flat Box
    assert evaluate(policy, DICT_ENV, episodes=10).return_mean >= 9.0
    budget = write_budget(
        f"device: esp32\ntraining: {{env_steps: 2M}}\ntask: {{env: '{DICT_ENV}', min_return: 9}}\n",
        "budget.yaml",
    )
    r = runner.invoke(app, ["plan", str(budget)])
    assert r.exit_code == 0, r.output
    assert "flattened to a Box of 9 values" in r.stdout


@pytest.mark.slow  # torch's import and SB3's set-up: ~6 s a case, more under load
@pytest.mark.parametrize(("algo", "env"), [("dqn", "Blackjack-v1"), ("ppo", DICT_ENV)])
def test_sb3_trains_on_tuple_and_dict(algo: str, env: str, tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    from rlbudget.train import resolve, train_run

    overrides = {"net_arch": [8], "n_envs": 1, "n_steps": 64, "batch_size": 32}
    if algo == "dqn":
        overrides = {"net_arch": [8], "learning_starts": 50, "batch_size": 32}
    settings = resolve(algo, env, env_steps=300, min_return=1e9, overrides=overrides)
    train_run(settings, tmp_path / "r")
    policy = load_policy(tmp_path / "r" / "policy")
    # SB3 trained on the index (one-hot) or the flat Box; the policy keeps how it was read
    assert policy.observation_space == env_spec(env, measure_steps=0).observation
    assert policy.observation_space.note is not None
    assert evaluate(policy, env, episodes=3).episodes == 3
