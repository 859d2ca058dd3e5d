"""The on-device learner (``export --format c --learn``): the C, driven through ctypes,
against the numpy reference (:class:`rlbudget.agents.learner.Learner`) bit for bit after
every step of a 10,000-step trajectory, in float32 and Q16.16; saturation; reset."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rlbudget.agents.learner import INT32_MAX, INT32_MIN, LIMIT, Learner, LearnParams
from rlbudget.errors import PolicyError
from rlbudget.export.host_learn import HostLearner
from rlbudget.export.learn import export_learner
from rlbudget.policy import Head, Linear, Policy, TileCode
from tests.factories import cartpole_table, env_policy, f32, frozenlake_table

GCC = shutil.which("gcc")
ARM_GCC = shutil.which("arm-none-eabi-gcc")
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]
needs_gcc = pytest.mark.skipif(GCC is None, reason="needs gcc on the PATH")
DTYPES = ("float32", "q16.16")


def mountaincar_learner() -> Policy:
    """8 tilings of 8 × 8 tiles hashed into 256 features → linear (zero bias) → argmax."""
    rng = np.random.default_rng(6)
    tc = TileCode(np.array([-1.2, -0.07]), np.array([0.6, 0.07]), 8, 8, 256)
    body = Linear(f32(rng, tc.features, 3), np.zeros(3, dtype=np.float32))
    return env_policy("MountainCar-v0", (tc,), body, Head("argmax"))


# (policy, learner hyperparameters, observation sampler)
Sampler = Callable[[np.random.Generator, int], np.ndarray]
CASES: dict[str, tuple[Callable[[], Policy], LearnParams, Sampler]] = {
    "frozenlake-q-learning": (
        frozenlake_table,
        LearnParams("q-learning", 0.1, 0.99, 0.0, 0.2, 3, "test"),
        lambda rng, n: rng.integers(0, 16, (n, 1)).astype(np.float32),
    ),
    "frozenlake-sarsa": (
        frozenlake_table,
        LearnParams("sarsa", 0.5, 0.9, 0.0, 0.05, 4, "test"),
        lambda rng, n: rng.integers(-2, 18, (n, 1)).astype(np.float32),  # clamped states too
    ),
    "cartpole-discretize-q-learning": (
        cartpole_table,
        LearnParams("q-learning", 0.2, 1.0, 0.0, 0.1, 5, "test"),
        lambda rng, n: rng.uniform(-4, 4, (n, 4)).astype(np.float32),
    ),
    "mountaincar-tiles-sarsa-lambda": (
        mountaincar_learner,
        LearnParams("sarsa-lambda", 0.5 / 8, 0.99, 0.9, 0.1, 6, "test"),
        lambda rng, n: rng.uniform([-1.3, -0.08], [0.7, 0.08], (n, 2)).astype(np.float32),
    ),
}
# Rewards: mostly ordinary, sometimes beyond Q16.16's range or float32's, inf and NaN.
REWARDS = np.array([0.0, 1.0, -1.0, 0.25, 3e4, -5e4, 1e38, np.inf, -np.inf, np.nan])
REWARD_P = np.array([0.4, 0.2, 0.2, 0.12, 0.02, 0.02, 0.01, 0.01, 0.01, 0.01])


SLOW = pytest.mark.slow  # a few seconds each on a shared 2-core machine; two run by default
TRAJECTORY_CASES = [c if c in ("frozenlake-q-learning", "mountaincar-tiles-sarsa-lambda")
                    else pytest.param(c, marks=SLOW) for c in sorted(CASES)]  # fmt: skip


@needs_gcc
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TRAJECTORY_CASES)
def test_c_learner_matches_numpy_bit_for_bit_every_step(
    case: str, dtype: str, tmp_path: Path
) -> None:
    make, params, sample = CASES[case]
    policy = make()
    ref, dev = Learner(policy, params, dtype), HostLearner(policy, params, dtype, tmp_path)
    n = 10_000
    rng = np.random.default_rng(7)
    obs = sample(rng, n + 1)
    # The features of all observations at once (numpy's TileCode/Discretize, batched).
    feats = policy.preprocess[0].apply(obs) if policy.preprocess else [ref.features(o) for o in obs]
    feats = [int(f) for f in feats] if ref.kind == "table" else feats
    rewards = rng.choice(REWARDS, n, p=REWARD_P)
    done = rng.random(n) < 0.05
    truncate = rng.random(n) < 0.01
    assert ref.dump() == dev.dump()  # the state before any call: reset on first use
    a = ref.explore(feats[0])
    assert dev.act_explore(obs[0]) == a
    diverged = []
    for t in range(n):
        a2 = ref.update(feats[t], a, rewards[t], feats[t + 1], bool(done[t]))
        if dev.learn(obs[t], a, rewards[t], obs[t + 1], bool(done[t])) != a2 or (
            ref.dump() != dev.dump()
        ):
            diverged.append(t)
            break
        if truncate[t]:
            ref.end_episode()
            dev.end_episode()
        a = a2
    assert diverged == []
    values = ref.ar.to_float(ref.values)
    assert np.all(np.isfinite(values))
    assert ref.steps == n
    # The trajectory moved the values (the comparison is not of untouched tables).
    assert not np.array_equal(ref.values, ref.shipped)


@needs_gcc
@pytest.mark.parametrize("dtype", DTYPES)
def test_values_saturate_instead_of_overflowing(dtype: str, tmp_path: Path) -> None:
    """With α = 1 and ``done`` the value becomes the reward in the learner's format:
    an infinite or huge reward gives the largest value (not inf, not a wrapped negative
    number), γ = 1 on the largest value stays the largest, NaN gives 0."""
    policy = frozenlake_table()
    params = LearnParams("q-learning", 1.0, 1.0, 0.0, 0.0, 0, "test")
    top, bottom = (INT32_MAX, INT32_MIN) if dtype == "q16.16" else (LIMIT, -LIMIT)
    for lr in (Learner(policy, params, dtype), HostLearner(policy, params, dtype, tmp_path)):
        seen = []
        for reward, done in ((np.inf, True), (1e38, True), (0.0, False), (np.nan, True),
                             (-np.inf, True)):  # fmt: skip
            lr.learn([5.0], 2, reward, [5.0], done)
            state = np.frombuffer(lr.dump()[32:], dtype="<i4" if dtype == "q16.16" else "<f4")
            seen.append(state[5 * 4 + 2])
        assert seen == [top, top, top, 0, bottom]


@needs_gcc
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "case", ["cartpole-discretize-q-learning", "mountaincar-tiles-sarsa-lambda"]
)
def test_reset_restores_the_shipped_policy(case: str, dtype: str, tmp_path: Path) -> None:
    """After learning, ``rlb_policy_reset`` gives back the first state, and the greedy
    action of the reset learner is the frozen policy's on every observation (the learner's
    discretizer and tile coder are the frozen export's arithmetic)."""
    make, params, sample = CASES[case]
    policy = make()
    dev = HostLearner(policy, params, dtype, tmp_path)
    first = dev.dump()
    rng = np.random.default_rng(0)
    obs = sample(rng, 2001)
    a = dev.act_explore(obs[0])
    for t in range(2000):
        a = dev.learn(obs[t], a, 1.0, obs[t + 1], False)
    assert dev.dump() != first
    dev.reset()
    assert dev.dump() == first
    frozen = policy.act(obs)
    assert [dev.act(o) for o in obs] == frozen.tolist()


@pytest.mark.skipif(GCC is None, reason="needs gcc on the PATH")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_learner_compiles_without_warnings(case: str, dtype: str, tmp_path: Path) -> None:
    make, params, _ = CASES[case]
    export_learner(make(), tmp_path / "c", params, dtype)
    compilers = [["gcc", *CFLAGS]]
    if ARM_GCC is not None:
        compilers.append(["arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb", *CFLAGS])
    for cc in compilers:
        obj = str(tmp_path / "policy.o")
        cmd = [*cc, "-c", str(tmp_path / "c" / "policy.c"), "-o", obj]
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_policies_the_learner_cannot_run_are_one_clear_error() -> None:
    params = LearnParams("q-learning", 0.1, 0.99, 0.0, 0.1, 0, "test")
    tiles = mountaincar_learner()
    with pytest.raises(PolicyError, match="does not fit a tiles policy"):
        Learner(tiles, params, "float32")
    with pytest.raises(PolicyError, match=r"unknown learner dtype 'q8\.8'"):
        Learner(frozenlake_table(), params, "q8.8")
    with pytest.raises(PolicyError, match=r"learner alpha = 1.5 is outside \[0, 1\]"):
        LearnParams("q-learning", 1.5, 0.99, 0.0, 0.1, 0, "test")
    with pytest.raises(PolicyError, match="runs q-learning, sarsa, sarsa-lambda, not 'dyna-q'"):
        LearnParams("dyna-q", 0.1, 0.99, 0.0, 0.1, 0, "test")


# --- the CLI: export --learn, import-state ----------------------------------------------------


def trained_table(tmp_path: Path) -> Path:
    """frozenlake_table with a built-in Q-learning provenance, saved as a policy folder."""
    from dataclasses import asdict, replace

    from rlbudget.agents.common import provenance
    from rlbudget.agents.tabular import TabularConfig
    from rlbudget.policy import save_policy

    cfg = TabularConfig(alpha=0.25, gamma=0.9, epsilon_end=0.125, seed=9)
    p = frozenlake_table()
    prov = provenance("rlbudget.agents.tabular", "q-learning", "FrozenLake-v1", cfg, 100)
    assert prov["hyperparameters"] == asdict(cfg)
    return save_policy(replace(p, provenance=prov), tmp_path / "policy")


@needs_gcc
def test_export_learn_then_import_state_round_trip(tmp_path: Path) -> None:
    """The CLI's learner takes α, γ, ε and the seed from the training config; its dump,
    read back by import-state, is a policy whose greedy actions are the device's."""
    from typer.testing import CliRunner

    from rlbudget.agents.learner import learn_params
    from rlbudget.cli import app
    from rlbudget.policy import load_policy

    folder = trained_table(tmp_path)
    r = CliRunner().invoke(app, ["export", str(folder), "--format", "c", "--learn", "--dtype",
                                 "q16.16", "-o", str(tmp_path / "fw"), "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    h = (tmp_path / "fw" / "learn.h").read_text()
    assert "alpha 0.25, gamma 0.9, lambda 0, epsilon 0.125, seed 9" in h
    assert "values in Q16.16" in h
    for device, fmt in (("rp2040", "Q16.16"), ("nrf52840", "float32")):  # no FPU, an FPU
        r = CliRunner().invoke(app, ["export", str(folder), "-f", "c", "--learn", "--device",
                                     device, "-o", str(tmp_path / device)])  # fmt: skip
        assert (
            r.exit_code == 0 and f"values in {fmt}" in (tmp_path / device / "learn.h").read_text()
        )
    p = load_policy(folder)
    params = learn_params(p)
    dev = HostLearner(p, params, "q16.16", tmp_path / "dev")
    rng = np.random.default_rng(2)
    a = dev.act_explore([0.0])
    for _ in range(3000):
        s, s2 = rng.integers(0, 16, 2)
        a = dev.learn([s], a, float(rng.random() < 0.1), [s2], bool(rng.random() < 0.1))
    (tmp_path / "STATE.bin").write_bytes(dev.dump())
    state, out = str(tmp_path / "STATE.bin"), str(tmp_path / "learned")
    r = CliRunner().invoke(app, ["import-state", state, "--policy", str(folder), "-o", out])
    assert r.exit_code == 0, r.output
    learned = load_policy(tmp_path / "learned")
    states = np.arange(16)
    assert learned.act(states).tolist() == [dev.act([s]) for s in states]
    assert learned.provenance["transforms"][-1]["method"] == "import-state"
    assert learned.provenance["transforms"][-1]["learn_steps"] == 3000


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:20], "STATE.bin: 20 bytes is too short for a learner state"),
        (lambda b: b[:-4], "STATE.bin: truncated (284 bytes, expected 288)"),
        (lambda b: b + b"\0" * 4, "STATE.bin: longer than the state (292 bytes, expected 288)"),
        (lambda b: b"XXXX" + b[4:], "STATE.bin: not a learner state"),
        (lambda b: b[:12] + b"\1\2\3\4" + b[16:], "STATE.bin: the state belongs to another policy"),
        (lambda b: b[:32] + np.float32(np.nan).tobytes() + b[36:], "STATE.bin: value 0 is nan"),
    ],
)
def test_import_state_refuses_a_bad_dump_with_one_line(
    tmp_path: Path, damage: Callable[[bytes], bytes], message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from typer.testing import CliRunner

    from rlbudget.agents.learner import learn_params
    from rlbudget.cli import app
    from rlbudget.policy import load_policy

    folder = trained_table(tmp_path)
    good = Learner(load_policy(folder), learn_params(load_policy(folder)), "float32").dump()
    (tmp_path / "STATE.bin").write_bytes(damage(good))
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["import-state", "STATE.bin", "--policy", str(folder), "-o",
                                 str(tmp_path / "out")])  # fmt: skip
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and message in r.output.replace("\n", "")
    assert not (tmp_path / "out").exists()


def test_learn_options_are_checked(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rlbudget.cli import app

    folder = trained_table(tmp_path)
    cases = [
        (["--dtype", "q16.16"], "--dtype, --device and --learn-param apply to --learn only"),
        (["--learn", "--device", "rp2041"], "unknown device 'rp2041'"),
        (["--learn", "--learn-param", "beta=1"], "--learn-param 'beta=1': expected NAME=VALUE"),
        (["--learn", "--learn-param", "alpha=2"], "learner alpha = 2.0 is outside [0, 1]"),
    ]
    for extra, message in cases:
        r = CliRunner().invoke(app, ["export", str(folder), "-f", "c", "-o",
                                     str(tmp_path / "fw"), *extra])  # fmt: skip
        assert r.exit_code == 2 and message in r.output.replace("\n", ""), r.output
    assert not (tmp_path / "fw").exists()


# --- the trainers in the exported precision ---------------------------------------------------


def test_tabular_trainer_learns_in_the_devices_fixed_point() -> None:
    """precision q16.16: every trained value is a whole number of 2^-16 (float64 training
    leaves fractions of that almost everywhere), the training still learns FrozenLake's
    goal values, and an algorithm without an on-device learner is refused."""
    from rlbudget.agents.tabular import TabularConfig, train_tabular
    from rlbudget.errors import TrainingError

    cfg = TabularConfig(n_timesteps=5000, alpha=0.3, precision="q16.16")
    values = train_tabular("FrozenLake-v1", cfg).policy.body.values  # type: ignore[union-attr]
    scaled = values.astype(np.float64) * 65536
    assert np.array_equal(scaled, np.round(scaled)) and values.max() > 0
    float64 = train_tabular("FrozenLake-v1", TabularConfig(n_timesteps=5000, alpha=0.3))
    scaled = float64.policy.body.values.astype(np.float64) * 65536  # type: ignore[union-attr]
    assert not np.array_equal(scaled, np.round(scaled))
    with pytest.raises(TrainingError, match="train dyna-q in float64"):
        train_tabular("FrozenLake-v1", TabularConfig(algorithm="dyna-q", precision="q16.16"))
    with pytest.raises(TrainingError, match=r"precision 'int8': use float64, float32 or q16\.16"):
        train_tabular("FrozenLake-v1", TabularConfig(precision="int8"))


# --- the budget: inference.learn, and the emulated target on an M0+ ---------------------------

EMULATOR = ARM_GCC is not None and all(
    importlib.util.find_spec(m) is not None for m in ("unicorn", "capstone")
)


@pytest.mark.skipif(not EMULATOR, reason="needs arm-none-eabi-gcc, unicorn and capstone")
def test_frozenlake_learner_on_an_m0plus_fits_4kib_and_50us() -> None:
    """The issue's target, emulated: on a Cortex-M0+ at 48 MHz (the RP2040's core at a
    SAMD21's clock) the FrozenLake Q16.16 learner's state fits in 4 KiB of RAM and its worst
    update takes at most 50 µs; every emulated step equals numpy's bit for bit (else
    emulate_update raises)."""
    from dataclasses import replace

    from rlbudget.devices import get_device
    from rlbudget.emulate.learn import emulate_update
    from rlbudget.export.learn import learner_size

    policy = frozenlake_table()
    params = LearnParams("q-learning", 0.1, 0.99, 0.0, 0.1, 0, "test")
    m0plus = replace(get_device("rp2040"), clock_hz=48e6)
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 16, (61, 1)).astype(np.float32)
    e = emulate_update(policy, params, "q16.16", m0plus, obs, rng.random(60) < 0.1,
                       rng.random(60) < 0.1)  # fmt: skip
    assert e.core == "cortex-m0plus" and e.steps == 59
    assert learner_size(policy).ram_bytes == 4 * (8 + 64) <= 4096
    assert e.latency_s <= 50e-6, e


def test_profile_counts_the_learner_when_the_budget_says_learn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """inference.learn: RAM is the frozen build's plus the learner's state; the latency is
    the decision plus the update (estimated here: RLBUDGET_EMULATE=0), and the energy
    follows it."""
    from dataclasses import replace

    from rlbudget.budget import load_budget
    from rlbudget.policy import load_policy
    from rlbudget.profile.verdict import profile

    monkeypatch.setenv("RLBUDGET_EMULATE", "0")
    policy = load_policy(trained_table(tmp_path))
    text = ("device: rp2040\ninference: {{ram: 4KiB, latency: 1ms, learn: {learn}}}\n"
            "task: {{env: FrozenLake-v1}}\n")  # fmt: skip
    (tmp_path / "frozen.yaml").write_text(text.format(learn="false"))
    (tmp_path / "learn.yaml").write_text(text.format(learn="true"))
    frozen = profile(policy, load_budget(tmp_path / "frozen.yaml"), episodes=2, calls=1000)
    learn = profile(policy, load_budget(tmp_path / "learn.yaml"), episodes=2, calls=1000)
    assert learn.footprint.ram_bytes == frozen.footprint.ram_bytes + 4 * (8 + 64)
    update = 1089 / 133e6  # learner.yaml: cortex-m0plus, q16.16 (no FPU), table-discrete
    assert learn.target_latency.typical == pytest.approx(frozen.target_latency.typical + update)
    lat = {c.limit: c for c in learn.checks}["inference.latency"]
    assert "learner.yaml" in lat.how and lat.status == "PASS"
    assert any("inference.learn" in n for n in learn.notes)
    with pytest.raises(PolicyError, match="the on-device learner is exported as C"):
        profile(policy, load_budget(tmp_path / "learn.yaml"), fmt="numpy", episodes=1,
                calls=1000)  # fmt: skip
    tiles = replace(mountaincar_learner(), provenance={"algorithm": "sarsa-lambda"})
    (tmp_path / "tiles.yaml").write_text("device: rp2040\ninference: {learn: true}\n")
    with pytest.raises(PolicyError, match="no learner hyperparameters"):
        profile(tiles, load_budget(tmp_path / "tiles.yaml"), episodes=1, calls=1000)


def test_plan_adds_the_learner_to_each_option_that_has_one(tmp_path: Path) -> None:
    """inference.learn in plan: Q-learning's FrozenLake option gains the learner's state
    (8 header words and 64 values, 4 B each) and one estimated update per step
    (learner.yaml: 1,089 cycles on the M0+ in Q16.16, at the RP2040's 133 MHz); an
    algorithm without an exported learner is not planned (rule on-device-learning)."""
    from rlbudget.budget import load_budget
    from rlbudget.plan import make_plan

    text = (
        "device: rp2040\ninference: {{ram: 4KiB, learn: {learn}}}\ntask: {{env: FrozenLake-v1}}\n"
    )
    (tmp_path / "a.yaml").write_text(text.format(learn="false"))
    (tmp_path / "b.yaml").write_text(text.format(learn="true"))
    frozen = {o.algorithm: o for o in make_plan(load_budget(tmp_path / "a.yaml")).options}
    learn = {o.algorithm: o for o in make_plan(load_budget(tmp_path / "b.yaml")).options}
    a, b = frozen["q-learning"].estimates, learn["q-learning"].estimates
    assert b.ram_bytes == a.ram_bytes + 4 * (8 + 64)
    assert b.latency_s.typical == pytest.approx(a.latency_s.typical + 1089 / 133e6)
    assert "dyna-q" in frozen and "dyna-q" not in learn


def test_plan_under_learn_fails_options_without_an_on_device_learner(tmp_path: Path) -> None:
    """inference.learn on FrozenLake (Discrete observations) and an M0+: export --learn
    exports Q-learning, SARSA and tile-coded Sarsa(λ), and Sarsa(λ) needs Box
    observations, so exactly the two tables are ranked, Q-learning first (the table order
    of the frozen plan); PPO, Dyna-Q and expected SARSA fit the frozen budget and are
    excluded with the rule's id and one sentence."""
    from rlbudget.budget import load_budget
    from rlbudget.plan import make_plan
    from rlbudget.plan.rules import RULES

    text = (
        "device: rp2040\ninference: {{ram: 16KiB, learn: {learn}}}\ntask: {{env: FrozenLake-v1}}\n"
    )
    (tmp_path / "a.yaml").write_text(text.format(learn="false"))
    (tmp_path / "b.yaml").write_text(text.format(learn="true"))
    frozen = make_plan(load_budget(tmp_path / "a.yaml"))
    plan = make_plan(load_budget(tmp_path / "b.yaml"))
    assert {"ppo", "dyna-q", "expected-sarsa"} <= {o.algorithm for o in frozen.options if o.fits}
    assert [o.algorithm for o in plan.options] == ["q-learning", "sarsa"]
    assert plan.best is not None and plan.best.algorithm == "q-learning"
    excluded = dict(plan.excluded)
    for algo in ("ppo", "dyna-q", "expected-sarsa"):
        assert excluded[algo] == (
            f"[on-device-learning] {algo} has no on-device learner (export --learn exports "
            "q-learning, sarsa, sarsa-lambda); inference.learn asks the deployed policy to "
            "keep learning"
        )
    assert "LinUCB" in RULES["on-device-learning"].text
    assert "tile-coded Sarsa(λ)" in RULES["on-device-learning"].text


def test_sarsa_lambda_trainer_learns_in_the_devices_fixed_point() -> None:
    """precision q16.16 in the Sarsa(λ) trainer: every weight is a whole number of 2^-16,
    and MountainCar's steps of -1 have moved them below zero."""
    from rlbudget.agents.linear import SarsaLambdaConfig, train_sarsa_lambda

    cfg = SarsaLambdaConfig(n_timesteps=1000, gamma=1.0, precision="q16.16")
    w = train_sarsa_lambda("MountainCar-v0", cfg).policy.body.W  # type: ignore[union-attr]
    scaled = w.astype(np.float64) * 65536
    assert np.array_equal(scaled, np.round(scaled)) and w.min() < 0


@pytest.mark.skipif(not EMULATOR, reason="needs arm-none-eabi-gcc, unicorn and capstone")
def test_float32_learner_on_an_m4f_matches_numpy() -> None:
    """The float32 learner built for a Cortex-M4F (hard float, -O2) computes numpy's bits
    in every emulated step (emulate_update raises otherwise), huge and NaN rewards too."""
    from rlbudget.devices import get_device
    from rlbudget.emulate.learn import emulate_update

    make, params, sample = CASES["cartpole-discretize-q-learning"]
    rng = np.random.default_rng(3)
    rewards = rng.choice(REWARDS, 40, p=REWARD_P)
    e = emulate_update(make(), params, "float32", get_device("nrf52840"), sample(rng, 41),
                       rewards, rng.random(40) < 0.1)  # fmt: skip
    assert e.core == "cortex-m4" and e.steps == 39 and e.cycles_max > 0


def test_bandit_plan_under_learn_excludes_the_offline_learners(tmp_path: Path) -> None:
    """A bandit with both a one-step env and logs: under inference.learn IPS and DR (they
    learn on the host from the logs) are excluded by the same rule; the online four stay."""
    from rlbudget.bandits.data import write_logged
    from rlbudget.bandits.synthetic import log_decisions, make_problem
    from rlbudget.budget import load_budget
    from rlbudget.plan import make_plan

    write_logged(log_decisions(make_problem(), 50, seed=0), tmp_path / "logs.csv")
    (tmp_path / "b.yaml").write_text(
        "device: nrf52840\ninference: {learn: true}\ntask: {kind: bandit, data: logs.csv, "
        "env: 'rlbudget.bandits.env:LinearBandit-v0'}\n"
    )
    plan = make_plan(load_budget(tmp_path / "b.yaml"))
    assert {o.algorithm for o in plan.options} == {"linucb", "thompson", "softmax",
                                                    "epsilon-greedy"}  # fmt: skip
    assert dict(plan.excluded)["dr"] == (
        "[on-device-learning] dr learns on the host from logs; inference.learn asks for an "
        "online learner"
    )


def test_run_under_learn_trains_the_top_option_and_exports_its_learner(tmp_path: Path) -> None:
    """rlbudget run with inference.learn: the plan's first option is Q-learning (the rule
    above), and the export is the learner that profile counted: learn.h beside policy.c,
    its RAM the state struct (8 header words + 16 states × 4 actions, 4 B each)."""
    from rlbudget.budget import load_budget
    from rlbudget.run import run_job

    (tmp_path / "b.yaml").write_text(
        "device: rp2040\ninference: {ram: 4KiB, learn: true}\ntraining: {env_steps: 20k}\n"
        "task: {env: FrozenLake-v1, min_return: 0}\n"
    )
    report = run_job(load_budget(tmp_path / "b.yaml"), tmp_path / "job", episodes=20)
    assert report.plan.algorithm == "q-learning" and report.fits
    assert report.export is not None and report.export.ram_bytes == 4 * (8 + 16 * 4)
    assert {Path(f).name for f in report.export.files} == {"policy.h", "learn.h", "policy.c",
                                                           "main.c"}  # fmt: skip
    assert "rlb_policy_learn" in (tmp_path / "job" / "export" / "policy.c").read_text()


def test_import_state_refuses_to_overwrite_its_policy_and_names_a_policy_without_learner(
    tmp_path: Path,
) -> None:
    """-o onto --policy would replace the shipped values that every later dump's
    fingerprint is checked against (it was written, exit 0); a policy no learner can be
    exported from is named as such, not as "longer than N bytes"."""
    from typer.testing import CliRunner

    from rlbudget.agents.learner import learn_params
    from rlbudget.cli import app
    from rlbudget.policy import load_policy

    folder = trained_table(tmp_path)
    before = (folder / "policy.safetensors").read_bytes()
    state = tmp_path / "STATE.bin"
    state.write_bytes(Learner(load_policy(folder), learn_params(load_policy(folder)),
                              "float32").dump())  # fmt: skip
    r = CliRunner().invoke(app, ["import-state", str(state), "--policy", str(folder),
                                 "-o", str(folder)])  # fmt: skip
    assert r.exit_code == 2
    assert r.output.replace("\n", "") == (
        f"error: -o {folder} is the input policy; write the result to another folder "
        "(nothing written)"
    )
    assert (folder / "policy.safetensors").read_bytes() == before
    bandit = tmp_path / "bandit"
    CliRunner().invoke(app, ["train", "--algo", "linucb", "--env",
                             "rlbudget.bandits.env:LinearBandit-v0", "--steps", "50", "-o",
                             str(bandit)])  # fmt: skip
    r = CliRunner().invoke(app, ["import-state", str(state), "--policy", str(bandit / "policy"),
                                 "-o", str(tmp_path / "out")])  # fmt: skip
    assert r.exit_code == 2
    assert "the on-device learner supports a float32 table" in r.output.replace("\n", "")
    assert not (tmp_path / "out").exists()


def test_a_policy_of_another_algorithm_is_named_not_called_untrained(tmp_path: Path) -> None:
    """A LinUCB bandit policy (its provenance has alpha but no gamma) was told it "was not
    trained by a built-in agent; retrain it with rlbudget train", which it was."""
    from dataclasses import replace

    from rlbudget.agents.learner import learn_params

    prov = {"algorithm": "linucb", "hyperparameters": {"alpha": 1.0, "ridge": 1.0}}
    with pytest.raises(PolicyError) as e:
        learn_params(replace(frozenlake_table(), provenance=prov))
    assert str(e.value) == ("the on-device learner runs q-learning, sarsa, sarsa-lambda, not "
                            "'linucb'; train with one of them")  # fmt: skip
