"""Replay memory (issue 22, item 2): bytes per transition, capacity from training.ram, the
compact buffer's rounding and round trips, and SB3 / lean-sac training from it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlbudget.envs import SpaceSpec
from rlbudget.errors import PlanError, TrainingError
from rlbudget.replay import CompactReplay, Storage, replay_buffer, transition_bytes

PENDULUM = SpaceSpec("box", (3,), None, (-1.0, -1.0, -8.0), (1.0, 1.0, 8.0), "float32")
TORQUE = SpaceSpec("box", (1,), None, (-2.0,), (2.0,), "float32")
CARTPOLE = SpaceSpec("box", (4,), None, (-4.8, -3.4e38, -0.42, -3.4e38),
                     (4.8, 3.4e38, 0.42, 3.4e38), "float32")  # fmt: skip
TWO = SpaceSpec("discrete", (), 2, None, None, "int64")
COMPRESSORS = ("none", "zstd", "lz4")


def _transitions(n: int, seed: int = 0) -> list[tuple[Any, ...]]:
    """Pendulum-like transitions: next_obs is the next obs, episodes of 50 steps that end by
    time limit (timeout), obs inside the bounds."""
    rng = np.random.default_rng(seed)
    obs = rng.uniform(PENDULUM.low, PENDULUM.high).astype(np.float32)
    out = []
    for t in range(n):
        nxt = rng.uniform(PENDULUM.low, PENDULUM.high).astype(np.float32)
        action = rng.uniform(-1, 1, 1).astype(np.float32)
        end = (t + 1) % 50 == 0
        out.append((obs, nxt, action, np.float32(rng.normal() * 5), False, end))
        obs = nxt
    return out


def _filled(storage: str, n: int = 300, capacity: int = 1000, **kw: Any) -> CompactReplay:
    pytest.importorskip("zstandard")
    pytest.importorskip("lz4")
    buf = CompactReplay(PENDULUM, TORQUE, capacity, Storage.parse(storage), **kw)
    for tr in _transitions(n):
        buf.add(*tr)
    return buf


# --- bytes and capacity -------------------------------------------------------------------


def test_bytes_per_transition_counts_every_part() -> None:
    # SB3's float32 buffer on Pendulum: obs, next_obs 3 × 4 each, action 4, reward, done,
    # timeout 4 each = 40 B; optimize_memory_usage drops next_obs: 28 B.
    assert transition_bytes(PENDULUM, TORQUE).parts == {
        "obs": 12, "next_obs": 12, "action": 4, "reward": 4, "done": 4, "timeout": 4}  # fmt: skip
    assert transition_bytes(PENDULUM, TORQUE, Storage(optimize_memory_usage=True)).stored == 28
    # float16: obs 2 × 6, action 2, reward stays float32 (4), flags one byte each = 20 B
    assert transition_bytes(PENDULUM, TORQUE, Storage("float16")).stored == 20
    # uint8: obs 2 × 3, action float16 2, reward 4, flags 2 = 14 B
    assert transition_bytes(PENDULUM, TORQUE, Storage("uint8")).stored == 14
    # compressed: next_obs and flags assumed free, obs 6 + action 2 + reward 4 = 12 B
    assert transition_bytes(PENDULUM, TORQUE, Storage("float16", "zstd")).estimate == 12
    # DQN on CartPole in float16: obs 2 × 8, action one uint8 (2 actions), 4 + 1 + 1 = 23 B
    assert transition_bytes(CARTPOLE, TWO, Storage("float16")).stored == 23


def test_capacity_from_training_ram_per_storage() -> None:
    # room = 90 % of (ram / 1.25 − 100 MiB other) = 1,000,000 B exactly when
    # ram = (1,000,000 / 0.9 + 100 MiB) × 1.25
    other = 100 * 2**20
    ram = int((1_000_000 / 0.9 + other) * 1.25) + 1

    def fit(storage: Storage) -> int:
        return replay_buffer(10**9, 10**9, PENDULUM, TORQUE, other_ram_bytes=other,
                             ram_bytes=ram, margin=0.25, storage=storage).capacity  # fmt: skip

    assert fit(Storage()) == 1_000_000 // 40 == 25_000
    assert fit(Storage("float16")) == 1_000_000 // 20
    assert fit(Storage("float16", "zstd")) == 1_000_000 // 12 == 83_333  # 3.33× float32's
    note = replay_buffer(10**9, 10**9, PENDULUM, TORQUE, other_ram_bytes=other, ram_bytes=ram,
                         margin=0.25).note  # fmt: skip
    assert note.startswith("[replay-ram] 25k transitions fit in training.ram")
    assert note.endswith("training.replay: float16+zstd would fit ≈83.3k")


# --- what comes back ----------------------------------------------------------------------


@pytest.mark.parametrize("compress", COMPRESSORS)
def test_float16_returns_the_float16_rounding_exactly(compress: str) -> None:
    buf = _filled(f"float16+{compress}")
    data = _transitions(300)
    b = buf.gather(np.arange(300))
    obs = np.array([t[0] for t in data])
    assert np.array_equal(b.obs, obs.astype(np.float16).astype(np.float32))
    nxt = np.array([t[1] for t in data])
    assert np.array_equal(b.next_obs, nxt.astype(np.float16).astype(np.float32))
    action = np.array([t[2] for t in data])
    assert np.array_equal(b.action, action.astype(np.float16).astype(np.float32))
    assert np.array_equal(b.reward, np.array([t[3] for t in data], np.float32))  # not rounded
    assert b.timeout.tolist() == [float((t + 1) % 50 == 0) for t in range(300)]
    assert b.done.sum() == 0


@pytest.mark.parametrize("compress", COMPRESSORS)
def test_uint8_is_within_half_a_step(compress: str) -> None:
    buf = _filled(f"uint8+{compress}")
    obs = np.array([t[0] for t in _transitions(300)])
    got = buf.gather(np.arange(300)).obs
    scale = (np.array(PENDULUM.high) - np.array(PENDULUM.low)) / 255  # 2/255, 2/255, 16/255
    err = np.abs(got - obs)
    assert (err <= scale / 2 + 1e-6).all()
    assert (err.max(axis=0) > scale / 4).all()  # it does round: not float32 in disguise


@pytest.mark.parametrize("compress", ("zstd", "lz4"))
def test_compression_round_trips_exactly(compress: str) -> None:
    lossless = _filled(f"float32+{compress}")
    data = _transitions(300)
    b = lossless.gather(np.arange(300))
    assert np.array_equal(b.obs, np.array([t[0] for t in data]))
    assert np.array_equal(b.next_obs, np.array([t[1] for t in data]))
    plain = _filled("float16")
    packed = _filled(f"float16+{compress}")
    assert packed.blobs  # chunks were compressed
    every = np.arange(plain.size)
    assert plain.records(every).tobytes() == packed.records(every).tobytes()


def test_ring_keeps_the_newest_whole_chunks() -> None:
    buf = _filled("float16+zstd", n=250, capacity=100)  # chunks of 100 // 8 = 12 rows
    assert buf.chunk == 12 and buf.total == 250
    # Full at 100 held: the oldest chunk of 12 goes before transitions 100, 112, …, 244
    # come in (13 times), so 156 is the oldest held, and 94 are held.
    assert buf.oldest == 156 and buf.size == 94
    full = _filled("float16+zstd", n=100, capacity=100)
    assert (full.oldest, full.size) == (0, 100)  # every one of capacity
    newest = np.array([t[0] for t in _transitions(250)[buf.oldest :]])
    assert np.array_equal(buf.gather(np.arange(buf.size)).obs,
                          newest.astype(np.float16).astype(np.float32))  # fmt: skip
    plain = _filled("float16", n=250, capacity=100)
    assert (plain.oldest, plain.size) == (150, 100)


def test_float16_saturates_instead_of_storing_inf() -> None:
    """An observation past float16's range (an unbounded Box dimension) comes back as
    ±65504; it used to come back inf, and a critic fed inf turns NaN."""
    buf = CompactReplay(CARTPOLE, TWO, 10, Storage("float16"))
    big = np.array([1.0, 1e6, 0.1, -1e9], np.float32)
    buf.add(big, big, 1, 1.0, False, False)
    assert big[1] == 1e6  # the caller's array is left as it was
    got = buf.gather([0])
    assert np.array_equal(got.obs[0], np.array([1.0, 65504.0, 0.1, -65504.0], np.float16))
    assert np.all(np.isfinite(got.next_obs))


def test_byte_cap_drops_old_chunks() -> None:
    free = _filled("float16+zstd", n=1000, capacity=1000)
    capped = _filled("float16+zstd", n=1000, capacity=1000, max_bytes=free.nbytes // 2)
    last = max(len(b) for b in capped.blobs.values())  # what it may pass the cap by
    assert free.nbytes // 2 < capped.nbytes + last <= free.nbytes // 2 + 2 * last
    assert capped.size < free.size
    assert capped.total == free.total == 1000


def test_checkpoint_arrays_restore_the_same_buffer() -> None:
    a = _filled("uint8+lz4", n=250, capacity=100)
    b = CompactReplay(PENDULUM, TORQUE, 100, Storage("uint8", "lz4"))
    b.load(a.arrays("x/"), "x/")
    assert (b.total, b.oldest) == (a.total, a.oldest)
    assert b.blobs == a.blobs
    every = np.arange(a.oldest, a.total)
    assert a.records(every).tobytes() == b.records(every).tobytes()


@pytest.mark.parametrize(
    ("saved", "capacity", "shown"),
    [("float16", 100, "[100, 20]"), ("uint8+lz4", 50, "[94, 14]"), (None, 100, "missing")],
)
def test_a_checkpoint_for_other_settings_is_refused_in_one_line(
    saved: str | None, capacity: int, shown: str
) -> None:
    """Rows of another size, more rows than the buffer holds, or no rows: one line, not
    numpy's view error (or a ring silently overfilled)."""
    arrays = {} if saved is None else _filled(saved, n=250, capacity=100).arrays("x/")
    b = CompactReplay(PENDULUM, TORQUE, capacity, Storage("uint8", "lz4"))
    with pytest.raises(TrainingError) as e:
        b.load(arrays, "x/")
    assert str(e.value) == (
        f"the checkpoint's replay buffer ('x/records' {shown}) does not fit this run's "
        f"uint8+lz4 buffer of {capacity} transitions (14 B each): it was written with other "
        "replay settings or is corrupt; train afresh without --resume"
    )


# --- refusals -----------------------------------------------------------------------------


def test_refusals_are_one_line() -> None:
    with pytest.raises(PlanError) as e:
        CompactReplay(CARTPOLE, TWO, 10, Storage("uint8"), where="environment 'CartPole-v1'")
    assert str(e.value) == ("replay_storage=uint8 needs bounded observations; environment "
                            "'CartPole-v1''s dimensions 1, 3 are unbounded; use "
                            "replay_storage=float16")  # fmt: skip
    frozen = SpaceSpec("discrete", (), 16, None, None, "int64")
    with pytest.raises(PlanError, match="has Discrete observations"):
        CompactReplay(frozen, TWO, 10, Storage("float16"))
    with pytest.raises(PlanError) as e:
        Storage.from_params({"replay_storage": "half"})
    assert str(e.value) == ("hyperparameters: replay storage 'half' is not one rlbudget takes; "
                            "write float32, float16, uint8")  # fmt: skip
    with pytest.raises(PlanError, match="optimize_memory_usage is SB3's float32 buffer's trick"):
        Storage.from_params({"replay_storage": "float16", "optimize_memory_usage": True})


def test_missing_compressor_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(PlanError) as e:
        CompactReplay(PENDULUM, TORQUE, 10, Storage("float16", "zstd"))
    assert str(e.value) == ("replay_compress=zstd needs the zstandard package: pip install "
                            "'rlbudget[replay]' (or replay_compress=none)")  # fmt: skip


def test_missing_compressor_refuses_train_before_the_run_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Checked with the settings, so no config.yaml/metrics.csv is left behind."""
    from typer.testing import CliRunner

    from rlbudget.cli import app

    monkeypatch.setitem(sys.modules, "zstandard", None)
    run = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "--algo", "lean-sac", "--env", "Pendulum-v1", "--steps",
                                 "400", "-p", "replay_compress=zstd", "-o", str(run)])  # fmt: skip
    assert r.exit_code == 2
    assert r.output.strip().splitlines()[-1] == (
        "error: replay_compress=zstd needs the zstandard package: pip install "
        "'rlbudget[replay]' (or replay_compress=none)"
    )
    assert not run.exists()


def test_budget_key_is_checked_at_its_line(tmp_path: Path) -> None:
    from rlbudget.budget import load_budget
    from rlbudget.errors import BudgetError

    ok = tmp_path / "ok.yaml"
    ok.write_text("device: host\ntraining: {ram: 1GiB, replay: uint8+lz4}\n")
    assert load_budget(ok).training.replay == "uint8+lz4"
    bad = tmp_path / "bad.yaml"
    bad.write_text("device: host\ntraining:\n  replay: float8\n")
    with pytest.raises(BudgetError) as e:
        load_budget(bad)
    assert str(e.value) == (f"{bad}:3: training.replay: replay storage 'float8' is not one "
                            "rlbudget takes; write float32, float16, uint8")  # fmt: skip
    bad.write_text("device: host\ntraining:\n  replay: float16+\n")
    with pytest.raises(BudgetError) as e:
        load_budget(bad)
    assert str(e.value) == (f"{bad}:3: training.replay: 'float16+' names no compression after "
                            "'+'; write float16+zstd, float16+lz4 or float16")  # fmt: skip


# --- training from it ---------------------------------------------------------------------


def test_sb3_compact_buffer_samples_as_sb3s_own() -> None:
    """float32+zstd is lossless: with the same adds and numpy RNG state, SB3's ReplayBuffer
    and the compact one give the same batches (obs, actions, dones without timeouts)."""
    pytest.importorskip("zstandard")
    from gymnasium import spaces
    from stable_baselines3.common.buffers import ReplayBuffer

    from rlbudget.sb3.replay import compact_buffer_class

    obs_space = spaces.Box(np.array(PENDULUM.low, np.float32), np.array(PENDULUM.high, np.float32))
    act_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    theirs = ReplayBuffer(500, obs_space, act_space, "cpu")
    ours = compact_buffer_class()(500, obs_space, act_space, "cpu",
                                  storage=Storage("float32", "zstd"))  # fmt: skip
    for o, n, a, r, d, end in _transitions(300):
        for buf in (theirs, ours):
            buf.add(o[None], n[None], a[None], np.array([r]), np.array([d or end]),
                    [{"TimeLimit.truncated": end}])  # fmt: skip
    assert ours.size() == theirs.size() == 300
    np.random.seed(3)
    x = theirs.sample(64)
    np.random.seed(3)
    y = ours.sample(64)
    for name in ("observations", "actions", "next_observations", "dones", "rewards"):
        assert bool((getattr(x, name) == getattr(y, name)).all()), name
    assert float(x.dones.sum()) == 0  # the time-limit ends are not terminations


def test_sac_trains_and_resumes_from_a_compact_buffer(tmp_path: Path) -> None:
    pytest.importorskip("zstandard")
    from rlbudget.train import load_settings, resolve, train_run

    over = {"net_arch": [16, 16], "learning_starts": 100, "batch_size": 32, "train_freq": 8,
            "gradient_steps": 2}  # fmt: skip
    settings = resolve("sac", "Pendulum-v1", env_steps=600, replay="float16+zstd",
                       overrides=over)  # fmt: skip
    assert settings.hyperparameters["replay_storage"] == "float16"
    assert settings.replay_bytes_per_transition == 12
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= 300

    first = train_run(settings, tmp_path / "a", should_stop=stop)
    assert first.steps == 300
    from rlbudget.agents.common import Checkpoint

    before = Checkpoint.load(tmp_path / "a" / "checkpoint").arrays["replay/compact/records"]
    # 20 B each (float16 obs and action, float32 reward, 1 B flags); SB3 asks the callback
    # before it stores a step's transition, so the stop at 300 left 299 stored
    assert before.shape == (299, 20)
    a = train_run(load_settings(tmp_path / "a"), tmp_path / "a", resume=True)
    assert a.steps == 600
    after = Checkpoint.load(tmp_path / "a" / "checkpoint").arrays["replay/compact/records"]
    # the resumed run went on from the restored buffer: those still held are the same
    total, oldest = Checkpoint.load(tmp_path / "a" / "checkpoint").arrays[
        "replay/compact/counters"]  # fmt: skip
    assert total == len(after) + oldest > 299
    assert np.array_equal(after[: 299 - oldest], before[oldest:])


@pytest.mark.parametrize("storage", ("float16+zstd", "uint8"))
def test_lean_sac_resume_equals_straight_run_with_a_compact_buffer(storage: str) -> None:
    pytest.importorskip("zstandard")
    from rlbudget.agents.offpolicy import OffPolicyConfig, train_offpolicy

    dtype, _, compress = storage.partition("+")
    cfg = OffPolicyConfig(n_timesteps=260, net_arch=[8, 8], batch_size=32, learning_starts=50,
                          buffer_size=150, replay_storage=dtype,
                          replay_compress=compress or "none")  # fmt: skip
    straight = train_offpolicy("Pendulum-v1", cfg)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 130

    first = train_offpolicy("Pendulum-v1", cfg, should_stop=stop)
    assert first.checkpoint is not None
    resumed = train_offpolicy("Pendulum-v1", cfg, resume=first.checkpoint)
    assert [e.ret for e in resumed.episodes] == [e.ret for e in straight.episodes]
    p, q = straight.policy.arrays(), resumed.policy.arrays()
    assert all(np.array_equal(p[k], q[k]) for k in p)
    assert straight.checkpoint is not None
    held = straight.checkpoint.arrays["buffer.compact.records"]
    assert len(held) <= 150


def test_sb3_constructor_arguments_per_storage() -> None:
    from rlbudget.sb3.replay import compact_buffer_class
    from rlbudget.sb3.training import SB3Config, model_kwargs

    def kwargs(**hp: Any) -> dict[str, Any]:
        return model_kwargs(SB3Config("sac", 1000, 0, hp, 1, 1, 500, None, None, 6000), 1)

    assert "replay_buffer_class" not in kwargs() and "replay_buffer_kwargs" not in kwargs()
    # SB3 raises ValueError for optimize_memory_usage with handle_timeout_termination
    assert kwargs(optimize_memory_usage=True)["replay_buffer_kwargs"] == {
        "handle_timeout_termination": False}  # fmt: skip
    k = kwargs(replay_storage="uint8", replay_compress="lz4")
    assert k["replay_buffer_class"] is compact_buffer_class()
    assert k["replay_buffer_kwargs"] == {"storage": Storage("uint8", "lz4"), "max_bytes": 6000}
    assert "replay_storage" not in k and "replay_compress" not in k


def test_dqn_samples_float16_observations_and_index_actions(tmp_path: Path) -> None:
    pytest.importorskip("lz4")
    import torch

    from rlbudget.sb3.training import SB3Config, train_sb3

    hp = {"net_arch": [8], "learning_starts": 100, "batch_size": 32, "train_freq": 4,
          "replay_storage": "float16", "replay_compress": "lz4"}  # fmt: skip
    result = train_sb3("CartPole-v1", SB3Config("dqn", 400, 0, hp, 1, 1, 400))
    assert result.steps == 400
    assert result.checkpoint is not None
    held = result.checkpoint.arrays["replay/compact/records"]
    assert held.shape == (400, 4 * 2 * 2 + 1 + 4 + 1 + 1)  # obs, next_obs f16; uint8 action
    from rlbudget.sb3.replay import compact_buffer_class

    buf = compact_buffer_class()(400, *_cartpole_spaces(), "cpu", storage=Storage("float16"))
    buf.compact.load(result.checkpoint.arrays, "replay/compact/")
    batch = buf.sample(64)
    assert batch.actions.dtype == torch.int64 and set(batch.actions.flatten().tolist()) <= {0, 1}
    obs = batch.observations
    assert obs.dtype == torch.float32 and bool((obs == obs.half().float()).all())


def _cartpole_spaces() -> tuple[Any, Any]:
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    return env.observation_space, env.action_space


def test_plan_sizes_the_buffer_with_the_budgets_storage() -> None:
    from rlbudget.budget import parse_budget
    from rlbudget.envs import env_spec
    from rlbudget.plan import make_plan

    def sac(replay: str) -> Any:
        text = ("device: raspberry-pi-4\ntraining: {ram: 562.8MiB" + replay +
                "}\ntask: {env: Pendulum-v1}\n")  # fmt: skip
        plan = make_plan(parse_budget(text), env_spec("Pendulum-v1", measure_steps=0))
        return next(o for o in plan.options if o.algorithm == "sac")

    plain, packed = sac(""), sac(", replay: float16+zstd")
    assert plain.estimates.bytes_per_transition == 40
    assert packed.estimates.bytes_per_transition == 12
    # 562.8 MiB / 1.25 = 450.24 MiB, less 450 MiB of SB3 and the 64-64 net: ≈ 160 KB of
    # room, fewer than the run's 14.6k steps at 40 B and at 12 B: both capped by RAM
    a, b = plain.estimates.replay_capacity, packed.estimates.replay_capacity
    assert a is not None and b is not None and b < 14_600
    assert b / a == pytest.approx(40 / 12, rel=1e-3)
    note = next(r for r in packed.reasons if r.startswith("[replay-ram]"))
    assert "float16+zstd: obs 6, next_obs 6, action 2, reward 4, done 1, timeout 1 B" in note


def test_plan_rules_out_replay_algorithms_whose_env_the_storage_cannot_hold() -> None:
    """uint8 on CartPole's unbounded dimensions: train refuses it, so the plan may not rank
    dqn (it used to, at 15 B a transition); the algorithms without replay stay."""
    from rlbudget.budget import parse_budget
    from rlbudget.envs import env_spec
    from rlbudget.plan import make_plan

    text = "device: esp32\ntraining: {ram: 4GiB, replay: uint8}\ntask: {env: CartPole-v1}\n"
    plan = make_plan(parse_budget(text), env_spec("CartPole-v1", measure_steps=0))
    assert "dqn" not in {o.algorithm for o in plan.options}
    assert "ppo" in {o.algorithm for o in plan.options}
    assert dict(plan.excluded)["dqn"] == (
        "[replay-ram] training.replay: uint8: replay_storage=uint8 needs bounded observations; "
        "environment 'CartPole-v1''s dimensions 1, 3 are unbounded; use replay_storage=float16"
    )


def test_bad_storage_on_the_command_line_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rlbudget.cli import app

    run = tmp_path / "r"
    r = CliRunner().invoke(app, ["train", "--algo", "lean-sac", "--env", "Pendulum-v1", "-o",
                                 str(run), "-p", "replay_storage=half"])  # fmt: skip
    assert r.exit_code == 2
    assert r.stderr == ("error: hyperparameters: replay storage 'half' is not one rlbudget "
                        "takes; write float32, float16, uint8\n")  # fmt: skip
    assert not run.exists()
