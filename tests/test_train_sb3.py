"""rlbudget train with Stable-Baselines3: the run folder, limits, replay sizing, NaN guard,
resume and signals. Tiny nets and a few thousand steps: each test takes seconds."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium import spaces
from gymnasium.envs.registration import register
from typer.testing import CliRunner

from rlbudget.agents.common import Checkpoint
from rlbudget.cli import app
from rlbudget.policy import load_policy
from rlbudget.profile.evaluate import evaluate
from rlbudget.train import Limits, load_settings, read_plan, resolve, train_run
from tests.processes import metrics_rows, wait_for

runner = CliRunner()
NAN_AT = 2500  # the env steps before the one whose reward is NaN (messages count from 1)


class NanRewardEnv(gym.Env[Any, Any]):
    """Box(2) observations, 2 actions, episodes of 20 steps; reward NaN at step NAN_AT."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.t = self.total = 0

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 2).astype(np.float32), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        reward = float("nan") if self.total == NAN_AT else float(action)
        self.t += 1
        self.total += 1
        obs = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return obs, reward, False, self.t >= 20, {}


register(id="NanReward-v0", entry_point="tests.test_train_sb3:NanRewardEnv")
# Rewards of 3e38 every step: finite even in float32 (max 3.4e38), but two of them sum to inf.
register(id="BigReward-v0", entry_point="tests.fake_envs:BadNumberEnv", max_episode_steps=10,
         kwargs={"at": 0, "reward": 3e38})  # fmt: skip

TINY = {"net_arch": [16, 16]}
OFF_POLICY = {**TINY, "learning_starts": 100, "batch_size": 32}


def _no_target(env: str) -> float | None:
    """A target return these short runs never stop at: none where the env has no
    ``reward_threshold`` (Pendulum: then no 100-episode screens, 20k env steps each), else
    one out of reach."""
    return None if env == "Pendulum-v1" else 1e9


def _train(algo: str, env: str, steps: int, run: Path, **overrides: Any) -> Any:
    settings = resolve(algo, env, env_steps=steps, min_return=_no_target(env), overrides=overrides)
    return train_run(settings, run)


def _cli(*args: str) -> dict[str, Any]:
    r = runner.invoke(app, ["train", *args, "--json"])
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("algo", "env", "overrides"),
    [
        ("ppo", "CartPole-v1", TINY),  # Discrete actions, 8 envs, lin_ schedules
        ("a2c", "Pendulum-v1", {**TINY, "n_envs": 2}),  # Box, VecNormalize, gSDE
        ("dqn", "CartPole-v1", {**OFF_POLICY, "train_freq": 4, "gradient_steps": 1}),
        # one gradient step per 4 env steps, not per step: the run folder is the same
        ("sac", "Pendulum-v1", {**OFF_POLICY, "train_freq": 4, "gradient_steps": 1}),
        ("td3", "Pendulum-v1", {**OFF_POLICY, "train_freq": 4, "gradient_steps": 1}),
    ],
)
def test_run_folder_and_policy(
    tmp_path: Path, algo: str, env: str, overrides: dict[str, Any]
) -> None:
    run = tmp_path / "run"
    result = _train(algo, env, 1000, run, **overrides)
    assert result.stopped_by == "steps" and result.steps == 1000
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint", "config.yaml", "curve.png", "metrics.csv", "policy", "summary.json",
    ]  # fmt: skip
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["library"] == "sb3" and config["torch_threads"] == 1
    assert config["hyperparameters"]["net_arch"] == [16, 16]
    assert "Zoo" in config["hyperparameters_source"]
    assert {"torch", "stable-baselines3"} <= set(config["versions"])
    assert (config["replay_capacity"] is not None) == (algo in ("dqn", "sac", "td3"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["peak_rss_bytes"] > 100 * 2**20  # torch alone is more
    assert summary["cpu_s"] > 0 and summary["wall_s"] > 0
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert list(rows[0]) == ["step", "episode", "return", "length", "wall_s", "exploration"]
    assert len(rows) == summary["episodes"] > 0
    assert all(0 < int(r["step"]) <= 1000 for r in rows)
    policy = load_policy(run / "policy")
    assert policy.provenance["steps"] == 1000 and policy.provenance["algorithm"] == algo
    e = evaluate(policy, env, episodes=2)  # the numpy policy runs on the raw env
    assert e.episodes == 2 and np.isfinite(e.return_mean)
    ck = Checkpoint.load(run / "checkpoint")
    assert ck.state["steps"] == 1000


def test_cli_budget_steps_threads_and_plan(
    tmp_path: Path, write_budget: Callable[[str, str], Path]
) -> None:
    budget = write_budget(
        "device: raspberry-pi-4\ntraining: {env_steps: 512, cores: 2}\n"
        "task: {env: CartPole-v1, min_return: 1000}\n"
    )  # 512 steps: two of the Zoo's 8 × 32-step rollouts (two torch threads crawl under load)
    s = _cli("--algo", "ppo", "--budget", str(budget), "-o", str(tmp_path / "a"))
    assert (s["stopped_by"], s["steps"], s["algorithm"]) == ("steps", 512, "ppo")
    config = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert config["torch_threads"] == 2 and config["n_envs"] == 8  # Zoo's n_envs kept
    assert config["hyperparameters"]["learning_rate"] == "lin_0.001"
    # The same through a plan: its ppo option, its network.
    plan = tmp_path / "plan.yaml"
    assert runner.invoke(app, ["plan", str(budget), "-o", str(plan)]).exit_code in (0, 1)
    options = yaml.safe_load(plan.read_text())["options"]
    n = next(i for i, o in enumerate(options, 1) if o["algorithm"] == "ppo")
    s = _cli(str(plan), "--option", str(n), "-o", str(tmp_path / "b"))
    assert (s["algorithm"], s["steps"]) == ("ppo", 512)
    hidden = options[n - 1]["network"]["hidden"]
    config = yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())
    assert config["hyperparameters"]["net_arch"] == hidden
    assert config["torch_threads"] == 2  # the plan's budget carries training.cores
    assert read_plan(plan, n)[1] == Limits(512, None, 1000.0, None, 2, 0.25)


def test_budget_time_limit(tmp_path: Path, write_budget: Callable[[str, str], Path]) -> None:
    budget = write_budget(
        "device: host\ntraining: {time: 1s, env_steps: 10M}\n"
        "task: {env: CartPole-v1, min_return: 1000}\n"
    )
    s = _cli("--algo", "a2c", "--budget", str(budget), "-o", str(tmp_path / "r"))
    assert s["stopped_by"] == "time"
    assert 1.0 <= s["wall_s"] < 6 and 0 < s["steps"] < 10_000_000


def test_replay_capacity_from_training_ram() -> None:
    # DQN on CartPole, Zoo entry: buffer_size 100k, 50k steps, net 256-256.
    # Bytes per transition in SB3's ReplayBuffer: obs and next_obs 2 × 4 float32 = 32,
    # one int64 action = 8, float32 reward, done, timeout = 12: 52 B.
    # Room: 90 % of (565 MiB / 1.25 margin − (450 MiB SB3 process + 16 B × 67,586 params
    # of the 4-256-256-2 network)) = 914,198 B → 914,198 // 52 = 17,580 transitions.
    s = resolve("dqn", "CartPole-v1", ram_bytes=565 * 2**20, margin=0.25)
    params = 4 * 256 + 256 + 256 * 256 + 256 + 256 * 2 + 2
    room = int((565 * 2**20 / 1.25 - (450 * 2**20 + 16 * params)) * 0.9)
    assert params == 67_586 and room == 914_198
    assert s.replay_bytes_per_transition == 52 and s.replay_capacity == room // 52 == 17_580
    assert s.replay_from is not None
    assert s.replay_from.startswith("[replay-ram] 17.6k transitions fit in training.ram")
    from rlbudget.sb3.training import SB3Config, model_kwargs

    cfg = SB3Config("dqn", s.n_timesteps, 0, dict(s.hyperparameters), 1, 1, s.replay_capacity)
    assert model_kwargs(cfg, None)["buffer_size"] == 17_580  # what SB3 is given
    # Without training.ram: the tuned size, but never more than the run's steps.
    assert resolve("dqn", "CartPole-v1").replay_capacity == 50_000
    assert resolve("dqn", "CartPole-v1", ram_bytes=2**40).replay_capacity == 50_000


def test_replay_that_does_not_fit(tmp_path: Path, write_budget: Callable[[str, str], Path]) -> None:
    # 563 MiB / 1.25 is less than the SB3 process estimate alone: no room at all.
    budget = write_budget("device: host\ntraining: {ram: 563MiB}\ntask: {env: Pendulum-v1}\n")
    run = tmp_path / "r"
    r = runner.invoke(app, ["train", "--algo", "sac", "--budget", str(budget), "-o", str(run)])
    assert r.exit_code == 2
    assert r.stderr == (
        "error: training.ram leaves room for 0 replay transitions, fewer than one batch (256) "
        "of sac; raise training.ram or choose an on-policy algorithm (ppo, a2c)\n"
    )
    assert not run.exists()


def test_replay_smaller_than_a_batch_by_steps_does_not_blame_training_ram(
    tmp_path: Path,
) -> None:
    """No training.ram at all: the run's steps cap the buffer, and the line says so."""
    run = tmp_path / "r"
    r = runner.invoke(app, ["train", "--algo", "sac", "--env", "Pendulum-v1", "--steps", "64",
                            "-o", str(run)])  # fmt: skip
    assert r.exit_code == 2
    assert r.stderr == (
        "error: sac: a replay buffer of 64 transitions (the run's 64 steps, buffer_size "
        "1000000) is fewer than one batch (256); train for more steps or lower batch_size "
        "(-p batch_size=64)\n"
    )
    assert not run.exists()


def test_nan_reward_stops_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, write_budget: Callable[[str, str], Path]
) -> None:
    budget = write_budget(
        "device: host\ntraining: {env_steps: 3000}\ntask: {env: NanReward-v0, min_return: 1e9}\n"
    )
    run, run2 = tmp_path / "r", tmp_path / "r2"
    r = runner.invoke(app, ["train", "--algo", "dqn", "--budget", str(budget), "-o", str(run)])
    assert r.exit_code == 2
    assert "[replay-ram] replay buffer 3k transitions × 36 B" in r.stderr  # printed as is
    r = runner.invoke(app, ["train", "--algo", "dqn", "--budget", str(budget), "-o", str(run2),
                            "-q"])  # fmt: skip
    assert r.exit_code == 2
    assert " ".join(r.stderr.split()) == (
        f"error: environment 'NanReward-v0' returned reward nan at env step {NAN_AT + 1}; fix "
        "the environment (or wrap it to replace NaN/inf) and run again. Training stopped: the "
        f"last good checkpoint ({run2 / 'checkpoint'}, step 2000) is kept; no policy was written"
    )
    ck = Checkpoint.load(run2 / "checkpoint")  # from step 2000, before the NaN
    assert ck.state["steps"] == 2000
    assert all(np.isfinite(a).all() for a in ck.arrays.values() if a.dtype.kind == "f")
    assert not (run2 / "policy").exists()


def test_nan_weights_are_named() -> None:
    import torch
    from stable_baselines3 import DQN

    from rlbudget.errors import TrainingError
    from rlbudget.sb3.training import check_finite

    model = DQN("MlpPolicy", "CartPole-v1", policy_kwargs={"net_arch": [4]}, buffer_size=10)
    check_finite(model, 10)
    with torch.no_grad():
        model.policy.q_net.q_net[0].weight[0, 0] = float("inf")
    with pytest.raises(TrainingError) as e:
        check_finite(model, 1234)
    assert str(e.value).startswith(
        "training diverged at step 1234: policy.q_net.q_net.0.weight holds NaN/inf after an update"
    )


def test_diverged_weights_are_caught_when_they_leave_the_loop(tmp_path: Path) -> None:
    # A learning rate of 1e30 sends DQN's weights to inf, then NaN, within its first updates
    # (from step 100, one every 4 steps); DQN acts on NaN Q values without failing. By
    # default the weights are checked when they leave the loop: here the first checkpoint
    # and the first screen, both at step 300, so the message names everything since step 0.
    import tests.fake_envs  # noqa: F401  (registers TinyBox-v0)
    from rlbudget.errors import TrainingError

    overrides = {**OFF_POLICY, "train_freq": 4, "gradient_steps": 1, "learning_rate": 1e30}
    settings = resolve("dqn", "TinyBox-v0", env_steps=400, min_return=1e9, overrides=overrides)
    settings = dataclasses.replace(settings, checkpoint_every=300, eval_every=300)
    with pytest.raises(TrainingError) as e:
        train_run(settings, tmp_path / "a")
    assert str(e.value).startswith("training diverged between step 0 and step 300: policy.")
    assert str(e.value).endswith("Training stopped: no checkpoint had been written yet; no "
                                 "policy was written")  # fmt: skip
    assert set(p.name for p in (tmp_path / "a").iterdir()) <= {"config.yaml", "metrics.csv"}
    # Asked to, after every update: one rollout of 4 steps, the first bad update's.
    settings = dataclasses.replace(
        settings, hyperparameters={**settings.hyperparameters, "check_every_update": True}
    )
    with pytest.raises(TrainingError) as e:
        train_run(settings, tmp_path / "b")
    steps = re.match(r"training diverged between step (\d+) and step (\d+): policy\.",
                     str(e.value))  # fmt: skip
    assert steps is not None, str(e.value)
    first, last = int(steps[1]), int(steps[2])
    assert first >= 100 and last == first + 4


def test_nan_weights_that_fail_inside_sb3_are_named(tmp_path: Path) -> None:
    # Rewards of 3e38 are finite (the env check passes them) but their discounted sums
    # overflow float32 in SB3's rollout buffer: PPO's loss and weights are NaN after its
    # first update (the first rollout: 64 steps), and the next rollout's Categorical
    # refuses the NaN logits with a ValueError. That failure is reported as what it is.
    from rlbudget.errors import TrainingError

    overrides = {**TINY, "n_steps": 64, "batch_size": 64, "n_epochs": 1}
    settings = resolve("ppo", "BigReward-v0", env_steps=400, overrides=overrides)
    with pytest.raises(TrainingError) as e:
        train_run(settings, tmp_path / "run")
    assert str(e.value).startswith("training diverged between step 0 and step 64: policy.")
    assert "holds NaN/inf after an update" in str(e.value)


def _plain_sb3(algo: str, env_id: str, steps: int, overrides: dict[str, Any]) -> Any:
    """Plain SB3: ``learn(steps)`` with the settings rlbudget resolves, nothing else."""
    import torch
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rlbudget.sb3.convert import from_model
    from rlbudget.sb3.training import SB3Config, algorithm_class, model_kwargs

    s = resolve(algo, env_id, env_steps=steps, overrides=overrides)
    cfg = SB3Config(algo, steps, 0, dict(s.hyperparameters), s.n_envs, 1, s.replay_capacity)
    torch.set_num_threads(1)
    env = DummyVecEnv([lambda: Monitor(gym.make(env_id))] * s.n_envs)
    shape = env.action_space.shape
    model = algorithm_class(algo)(
        "MlpPolicy",
        env,
        seed=0,
        device="cpu",
        **model_kwargs(cfg, int(np.prod(shape)) if shape else None),
    )
    model.learn(steps)  # fmt: skip
    return from_model(model)


@pytest.mark.parametrize(
    ("algo", "env", "steps", "overrides"),
    [
        # 2 full rollouts of 8 envs × 32 steps: SB3 trains on both
        ("ppo", "CartPole-v1", 512, {**TINY, "n_epochs": 2}),
        # every step an update from step 100 on, the last one included
        ("sac", "Pendulum-v1", 300, OFF_POLICY),
    ],
)
def test_same_weights_as_plain_sb3(
    tmp_path: Path, algo: str, env: str, steps: int, overrides: dict[str, Any]
) -> None:
    # rlbudget's wrappers (NaN/inf check, Monitor, the loop's callback, checkpoints) change
    # nothing SB3 learns: N steps through train_run are plain SB3's learn(N), bit for bit.
    settings = resolve(algo, env, env_steps=steps, min_return=_no_target(env),
                       overrides=overrides)  # fmt: skip
    result = train_run(settings, tmp_path / "run")
    assert result.steps == steps
    ours = load_policy(tmp_path / "run" / "policy").arrays()
    plain = _plain_sb3(algo, env, steps, overrides).arrays()
    assert ours.keys() == plain.keys()
    assert all(np.array_equal(ours[k], plain[k]) for k in ours)


@pytest.mark.parametrize(
    ("algo", "env", "overrides"),
    [
        ("ppo", "CartPole-v1", TINY),
        ("dqn", "CartPole-v1", {**OFF_POLICY, "train_freq": 4, "gradient_steps": 1}),
        ("sac", "Pendulum-v1", {**OFF_POLICY, "train_freq": 8, "gradient_steps": 2}),
    ],
)
def test_resume_continues_and_is_reproducible(
    tmp_path: Path, algo: str, env: str, overrides: dict[str, Any]
) -> None:
    settings = resolve(algo, env, env_steps=2000, min_return=_no_target(env), overrides=overrides)
    half = tmp_path / "half"
    calls = {"n": 0}
    per_call = settings.n_envs  # should_stop is asked after every vectorized step

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] * per_call >= 1000

    first = train_run(settings, half, should_stop=stop)
    assert first.stopped_by == "requested" and first.steps == 1000
    first_rows = list(csv.reader((half / "metrics.csv").open()))
    copy = tmp_path / "copy"
    shutil.copytree(half, copy)
    r = runner.invoke(app, ["train", "--resume", str(half), "--json"])
    assert r.exit_code == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["steps"] == 2000 and s["stopped_by"] == "steps"
    rows = list(csv.reader((half / "metrics.csv").open()))
    assert rows[: len(first_rows)] == first_rows and len(rows) > len(first_rows)
    assert int(rows[-1][0]) > 1000
    assert load_policy(half / "policy").provenance["steps"] == 2000
    # Resuming the same checkpoint again gives the same policy, bit for bit.
    train_run(load_settings(copy), copy, resume=True)
    a, b = load_policy(half / "policy").arrays(), load_policy(copy / "policy").arrays()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_sigterm_saves_checkpoint_and_policy(
    tmp_path: Path, write_budget: Callable[[str, str], Path]
) -> None:
    budget = write_budget(
        "device: host\ntraining: {env_steps: 10M}\ntask: {env: CartPole-v1, min_return: 1000}\n"
    )
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlbudget", "train", "--algo", "ppo", "--budget", str(budget),
         "-o", str(run), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # SB3 imported, model built, training under way: the first episode is in metrics.csv
    wait_for(lambda: metrics_rows(run) > 0, proc, "a metrics.csv row")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert f"continue with: rlbudget train --resume {run}" in stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_by"] == "SIGTERM" and 0 < summary["steps"] < 10_000_000
    assert Checkpoint.load(run / "checkpoint").state["steps"] == summary["steps"]
    policy = load_policy(run / "policy")
    assert policy.provenance["steps"] == summary["steps"]
    assert evaluate(policy, "CartPole-v1", episodes=3).episodes == 3


def test_contrib_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sb3_contrib", None)  # import fails as if absent
    r = runner.invoke(app, ["train", "--algo", "qrdqn", "--env", "CartPole-v1",
                            "-o", str(tmp_path / "r")])  # fmt: skip
    assert r.exit_code == 2
    assert r.stderr == (
        "error: algorithm 'qrdqn' comes from sb3-contrib, which is not installed; install "
        "rlbudget[contrib] (pip install 'rlbudget[contrib]')\n"
    )
    assert not (tmp_path / "r").exists()


def test_contrib_algorithms_train(tmp_path: Path) -> None:
    pytest.importorskip("sb3_contrib")
    result = _train("qrdqn", "CartPole-v1", 600, tmp_path / "q", **OFF_POLICY)
    assert result.steps == 600
    assert load_policy(tmp_path / "q" / "policy").provenance["algorithm"] == "qrdqn"


def test_unknown_hyperparameter() -> None:
    from rlbudget.errors import PlanError

    with pytest.raises(PlanError) as e:
        resolve("ppo", "CartPole-v1", overrides={"lernrate": 1})
    assert str(e.value).startswith("hyperparameter 'lernrate' is not one ppo takes; it takes ")


@pytest.mark.parametrize("existing", [False, True])
def test_a_hyperparameter_sb3_refuses_is_one_line_and_leaves_nothing(
    tmp_path: Path, existing: bool
) -> None:
    """SB3 checks n_steps × n_envs > 1 when the model is built, after the run folder was
    made: exit 2 with SB3's reason, and no config.yaml or metrics.csv left (a folder the
    user made is kept, empty; one the run made is removed)."""
    out = tmp_path / "r"
    if existing:
        out.mkdir()
    result = runner.invoke(app, ["train", "--algo", "ppo", "--env", "CartPole-v1", "--steps",
                                 "1000", "-p", "n_steps=-5", "-o", str(out)])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "error: ppo refused its hyperparameters: `n_steps * n_envs` must be greater " \
        "than 1" in result.output  # fmt: skip
    assert "Traceback" not in result.output
    assert (list(out.iterdir()) == []) if existing else not out.exists()


@pytest.mark.slow
def test_ppo_reaches_cartpole_500(tmp_path: Path, write_budget: Callable[[str, str], Path]) -> None:
    budget = write_budget("device: host\ntask: {env: CartPole-v1, min_return: 500}\n")
    s = _cli("--algo", "ppo", "--budget", str(budget), "--seed", "0", "-o", str(tmp_path / "r"))
    assert s["stopped_by"] == "target" and s["last_eval_return"] == 500
    e = evaluate(load_policy(tmp_path / "r" / "policy"), "CartPole-v1", episodes=100, seed=7)
    assert e.return_mean >= 475


def test_tensorboard_is_sb3s_own_logger(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="pip install 'rlbudget[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    settings = resolve("ppo", "CartPole-v1", env_steps=1000, min_return=1e9, overrides=TINY)
    train_run(settings, tmp_path / "run", tensorboard=tmp_path / "tb")
    runs = sorted(p.name for p in (tmp_path / "tb").iterdir())
    assert runs == ["ppo_0"]  # SB3's naming: tb_log_name + run number (0: num_timesteps kept)
    events = EventAccumulator(str(tmp_path / "tb" / "ppo_0"))
    events.Reload()
    assert {"time/fps", "rollout/ep_rew_mean", "train/loss"} <= set(events.Tags()["scalars"])
