"""Parallel collection on several cores (issue 22, item 3): SB3's envs in worker processes
learn the same weights as in one process, evaluation episodes in workers are the serial
ones, a run in workers keeps its step budget, checkpoints and resume, a Ctrl-C still
saves, and the decision follows the step cost against the measured IPC."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest

import rlbudget.step_cost
from rlbudget import parallel
from rlbudget.policy.model import Head
from rlbudget.profile.evaluate import EvalWorkers, episode_seeds, evaluate
from tests.factories import env_policy, random_mlp
from tests.processes import rlbudget, start, wait_for

SLOW = "rlbudget.step_cost:SlowCartPole-v1"


def test_workers_pay_for_a_1ms_step_and_not_for_cartpole() -> None:
    o = parallel.overhead()
    # 8 envs × 1 ms: 8 ms in one process, 4 ms + 2 IPC round trips in two workers
    slow = parallel.collection(8, 2, 1e-3, "task.env_step_cost", 100_000)
    assert (slow.workers, slow.envs_per_worker) == (2, (4, 4))
    assert slow.speedup == pytest.approx(8e-3 / (4e-3 + 2 * o.step_s))
    assert "task.env_step_cost" in slow.why and "4+4 envs per worker" in slow.why
    # a CartPole step (≈ 20 µs) saves less than the IPC costs
    cheap = parallel.collection(8, 2, 2e-5, "measured on this host", 100_000)
    assert cheap.workers == 1 and "under ×1.2" in cheap.why and "DummyVecEnv" in cheap.why
    assert parallel.collection(8, 1, 1e-3, "x", 100_000).workers == 1
    assert parallel.collection(1, 2, 1e-3, "x", 100_000).workers == 1  # SAC's one env
    # a run too short to win back the workers' start-up
    assert parallel.collection(8, 2, 1e-3, "x", 8).workers == 1


def test_evaluation_in_workers_is_the_serial_evaluation() -> None:
    policy = env_policy("CartPole-v1", (), random_mlp([4, 16, 2], rng=3), Head("argmax"))
    seeds = episode_seeds(7, 12)
    serial = evaluate(policy, "CartPole-v1", seeds=seeds)
    assert len(set(serial.returns)) > 1  # different episodes, not one repeated
    assert evaluate(policy, "CartPole-v1", seeds=seeds, workers=2) == serial

    def five(returns: object) -> bool:
        return len(returns) == 5  # type: ignore[arg-type]

    with EvalWorkers("CartPole-v1", 2) as pool:
        # an early stop, then a second evaluation on the same workers: the episodes the
        # first no longer needed are skipped, not handed to the second
        early = evaluate(policy, "CartPole-v1", seeds=seeds, workers=pool, enough=five)
        again = evaluate(policy, "CartPole-v1", seeds=seeds, workers=pool)
    assert early.returns == serial.returns[:5] and early.episodes == 5
    assert again == serial


def _ppo(workers: int, steps: int = 320) -> object:
    from rlbudget.sb3.training import SB3Config, train_sb3

    hp = {"n_envs": 4, "n_steps": 16, "batch_size": 32, "n_epochs": 2, "net_arch": [16, 16]}
    cfg = SB3Config("ppo", steps, 3, hp, n_envs=4, env_workers=workers)
    return train_sb3("CartPole-v1", cfg)


def test_sb3_envs_in_workers_learn_the_same_weights() -> None:
    one, two = _ppo(1), _ppo(2)
    assert one.steps == two.steps == 320  # type: ignore[attr-defined]
    a, b = one.policy.arrays(), two.policy.arrays()  # type: ignore[attr-defined]
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    episodes = [(e.step, e.ret, e.length) for e in one.episodes]  # type: ignore[attr-defined]
    assert episodes and episodes == [(e.step, e.ret, e.length)
                                     for e in two.episodes]  # type: ignore[attr-defined]  # fmt: skip


def test_a_run_in_workers_checkpoints_resumes_and_keeps_its_budget(tmp_path: Path) -> None:
    from rlbudget.train import train_run
    from rlbudget.train.settings import resolve

    settings = resolve("ppo", SLOW, env_steps=4_000, cores=2, env_step_cost_s=1e-3, seed=1,
                       overrides={"n_envs": 8, "n_steps": 16, "batch_size": 32,
                                  "n_epochs": 1})  # fmt: skip
    assert (settings.n_envs, settings.env_workers, settings.eval_workers) == (8, 2, 2)
    assert settings.parallel is not None and "4+4 envs per worker" in settings.parallel
    calls = iter(range(10**6))
    first = train_run(settings, tmp_path / "run",
                      should_stop=lambda: next(calls) >= 40)  # fmt: skip
    assert first.stopped_by == "requested" and 0 < first.steps < 4_000
    rest = train_run(settings, tmp_path / "run", resume=True)
    assert rest.stopped_by == "steps" and rest.steps == 4_000  # 500 steps of 8 envs
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "env_workers: 2" in config and "eval_workers: 2" in config


def test_cheap_envs_stay_in_one_process() -> None:
    from rlbudget.train.settings import resolve

    s = resolve("ppo", "CartPole-v1", cores=2, env_step_cost_s=1e-6)
    assert (s.env_workers, s.eval_workers) == (1, 1)
    assert s.parallel is not None and "DummyVecEnv" in s.parallel
    assert resolve("ppo", "CartPole-v1").parallel is None  # no cores, no decision
    lake = resolve("q-learning", "FrozenLake-v1", cores=2, env_step_cost_s=1e-3)
    assert lake.env_workers == 1 and lake.eval_workers == 2
    assert lake.parallel is not None and "learns from one env" in lake.parallel


@pytest.mark.slow  # a CLI process that imports torch and SB3: ≈ 10-30 s
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_process_group_saves_and_ends_the_workers(
    tmp_path: Path, sig: signal.Signals
) -> None:
    import os

    budget = tmp_path / "b.yaml"
    budget.write_text(f"device: host\ntraining: {{env_steps: 20k, cores: 2}}\n"
                      f"task: {{env: {SLOW}, env_step_cost: 1ms}}\n")  # fmt: skip
    out = tmp_path / "run"
    proc = start(rlbudget("train", "--algo", "ppo", "--budget", str(budget), "-o", str(out),
                          "-p", "n_envs=8", "-p", "n_steps=16", "-p", "batch_size=32"),
                 start_new_session=True)  # fmt: skip
    wait_for(lambda: (out / "checkpoint" / "state.json").is_file(), proc, "first checkpoint",
             timeout_s=120)  # fmt: skip
    os.killpg(proc.pid, sig)  # as Ctrl-C does: the workers get it too
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, stderr
    assert "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_by"] == sig.name
    steps = json.loads((out / "checkpoint" / "state.json").read_text())["steps"]
    assert steps == summary["steps"] > 0
    assert (out / "policy" / "policy.json").is_file()


def test_an_env_error_in_a_worker_is_one_line_not_a_worker_traceback(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Before: each worker died printing a traceback, the evaluation handed the episode to
    the next worker (which died the same way), and SB3's vectorized step got an EOFError."""
    from rlbudget.env_kwargs import env_kwargs_applied
    from rlbudget.errors import EnvError
    from rlbudget.sb3.vecenv import grouped_vec_env
    from tests import bad_envs

    policy = env_policy(bad_envs.ID, (), random_mlp([2, 4, 2], rng=3), Head("argmax"))
    with env_kwargs_applied(bad_envs.ID, {"mode": "raise"}):
        with pytest.raises(EnvError, match="raised RuntimeError in a worker process: "
                                           "simulator crashed"):  # fmt: skip
            evaluate(policy, bad_envs.ID, seeds=episode_seeds(0, 4), workers=2,
                     gym_packages=["tests.bad_envs"])  # fmt: skip
        venv = grouped_vec_env(bad_envs.ID, (1, 1))
        try:
            venv.reset()
            venv.step(np.zeros(2, np.int64))
            venv.step(np.zeros(2, np.int64))
            with pytest.raises(EnvError, match="simulator crashed"):
                venv.step(np.zeros(2, np.int64))
        finally:
            venv.close()
    assert "Traceback" not in capfd.readouterr().err


def test_closing_workers_stuck_in_a_step_does_not_hang() -> None:
    """Ctrl-C while the workers are in a step that never ends: close() used to wait for
    their answer forever (an orphaned, hung training process)."""
    import time

    from rlbudget.env_kwargs import env_kwargs_applied
    from rlbudget.sb3.vecenv import grouped_vec_env
    from tests import bad_envs

    with env_kwargs_applied(bad_envs.ID, {"mode": "hang"}):
        venv = grouped_vec_env(bad_envs.ID, (1, 1))
    venv.reset()
    venv.step(np.zeros(2, np.int64))
    venv.step(np.zeros(2, np.int64))
    venv.step_async(np.zeros(2, np.int64))  # the third step hangs in both workers
    time.sleep(0.2)
    start = time.monotonic()
    venv.close()
    assert time.monotonic() - start < 30
    assert not any(p.is_alive() for p in venv.processes)


def test_slow_cartpole_imports_no_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SlowCartPole's ``env_id`` kwarg (from a budget or policy file) named a module:EnvId
    that gymnasium imported, past make_env's check of modules nobody named."""
    from rlbudget.env_kwargs import env_kwargs_applied
    from rlbudget.envs import make_env
    from rlbudget.errors import EnvError

    (tmp_path / "planted_r2.py").write_text("raise SystemExit('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    refused = pytest.raises(EnvError, match="name a registered env id, not module:EnvId")
    with env_kwargs_applied(SLOW, {"env_id": "planted_r2:X-v0"}), refused:
        make_env(SLOW)
