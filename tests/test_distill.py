"""Distillation (DAgger), recovery of a pruned student, and student widths for a budget."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rlbudget.budget import parse_budget
from rlbudget.compress.distill import Dagger, distill, recover, widths_for_budget
from rlbudget.envs import env_spec, make_env
from rlbudget.errors import PolicyError
from rlbudget.policy import MLP, Head, Policy, Table, load_policy, save_policy
from rlbudget.policy.model import Linear, Normalize, TileCode
from rlbudget.profile.evaluate import evaluate
from tests.conftest import ZOO, needs_zoo
from tests.factories import random_mlp

FAST = Dagger(steps=500, updates=200)
"""A shorter loop than the defaults, enough for the hand-made teachers below."""


def balancer() -> Policy:
    """CartPole teacher: push right when ``θ + 0.5 θ̇ > 0`` (holds the pole for 500 steps)."""
    s = env_spec("CartPole-v1", measure_steps=0)
    W = np.zeros((4, 2), np.float32)
    W[:, 1] = [0.0, 0.0, 1.0, 0.5]
    return Policy(s.observation, s.action, (), Linear(W, np.zeros(2, np.float32)),
                  Head("argmax"), {"algorithm": "hand-made", "transforms": []})  # fmt: skip


def pendulum_teacher(head: str) -> Policy:
    """A fixed random tanh 3-32-32-1 net: a smooth, non-linear target for the student."""
    s = env_spec("Pendulum-v1", measure_steps=0)
    body = random_mlp([3, 32, 32, 1], "tanh", np.random.default_rng(3))
    return Policy(s.observation, s.action, (), body, Head(head, np.array([-2.0]), np.array([2.0])))


def visited(policy: Policy, env_id: str, steps: int, seed: int) -> np.ndarray:
    """Observations of ``steps`` env steps with ``policy`` acting."""
    env = make_env(env_id)
    obs, _ = env.reset(seed=seed)
    out = []
    for _ in range(steps):
        out.append(obs)
        obs, _, terminated, truncated, _ = env.step(policy.act(obs))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.stack(out)


def body_output(policy: Policy, obs: np.ndarray) -> np.ndarray:
    x = obs
    for step in policy.preprocess:
        x = step.apply(x)
    return np.asarray(policy.body.apply(x))


# --- distill ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cartpole_student() -> Policy:
    return distill(balancer(), "CartPole-v1", widths=(8, 8))  # the defaults: 8 iterations


def test_discrete_student_agrees_and_keeps_the_return(cartpole_student: Policy) -> None:
    teacher, student = balancer(), cartpole_student
    obs = visited(teacher, "CartPole-v1", 2000, seed=123)
    agreement = float(np.mean(student.act(obs) == teacher.act(obs)))
    assert agreement >= 0.95
    before = evaluate(teacher, "CartPole-v1", episodes=5, seed=7).return_mean
    after = evaluate(student, "CartPole-v1", episodes=5, seed=7).return_mean
    assert before == 500.0
    assert after >= 0.95 * before


def test_student_shape_and_provenance(cartpole_student: Policy) -> None:
    body = cartpole_student.body
    assert isinstance(body, MLP)
    assert [la.W.shape for la in body.layers] == [(4, 8), (8, 8), (8, 2)]
    # A linear teacher has no hidden activation: relu; the output layer is identity.
    assert [la.activation for la in body.layers] == ["relu", "relu", "identity"]
    assert all(la.W.dtype == np.float32 and la.b.dtype == np.float32 for la in body.layers)
    assert cartpole_student.head.kind == "argmax" and cartpole_student.preprocess == ()
    (entry,) = cartpole_student.provenance["transforms"]
    # 8 iterations × 1000 labelled states; 8-8 fp32: (4·8 + 8 + 8·8 + 8 + 8·2 + 2) · 4 B.
    assert {k: entry[k] for k in ("method", "widths", "iterations", "states")} == {
        "method": "distill", "widths": [8, 8], "iterations": 8, "states": 8000}  # fmt: skip
    assert entry["bytes_after"] == 130 * 4
    assert cartpole_student.provenance["algorithm"] == "hand-made"


def test_student_round_trips_through_the_files(cartpole_student: Policy, tmp_path: Path) -> None:
    save_policy(cartpole_student, tmp_path / "student")
    loaded = load_policy(tmp_path / "student")
    for a, b in zip(loaded.body.layers, cartpole_student.body.layers, strict=True):  # type: ignore[union-attr]
        assert a.W.tobytes() == b.W.tobytes() and a.b.tobytes() == b.b.tobytes()


def test_same_seed_same_student_bit_for_bit() -> None:
    cfg = Dagger(steps=200, updates=50)

    def run(seed: int) -> list[bytes]:
        student = distill(balancer(), "CartPole-v1", widths=(8, 8), iterations=2, seed=seed,
                          dagger=cfg)  # fmt: skip
        assert isinstance(student.body, MLP)
        return [a.tobytes() for la in student.body.layers for a in (la.W, la.b)]

    first = run(0)
    assert run(0) == first
    assert run(1) != first


@pytest.mark.parametrize("head", ["clip", "tanh_rescale"])
def test_continuous_student_matches_the_pre_squash_output(head: str) -> None:
    teacher = pendulum_teacher(head)
    student = distill(teacher, "Pendulum-v1", widths=(16, 16), iterations=4, dagger=FAST)
    assert student.head.kind == head
    obs = visited(teacher, "Pendulum-v1", 2000, seed=5)
    target = body_output(teacher, obs)
    mse = float(np.mean((body_output(student, obs) - target) ** 2))
    # The student must explain ≥ 99 % of the target's variance on the teacher's states
    # (R² ≥ 0.99): a 16-16 net fits a smooth 3-input function that well; predicting the
    # mean, or a linear fit of this tanh net, does not.
    assert mse <= 0.01 * float(target.var())


def test_a_tile_coded_teacher_gives_a_student_on_the_scaled_box() -> None:
    s = env_spec("MountainCar-v0", measure_steps=0)
    tiles = TileCode(np.array([-1.2, -0.07]), np.array([0.6, 0.07]), 4, 4)
    W = np.random.default_rng(0).standard_normal((tiles.features, 3)).astype(np.float32)
    teacher = Policy(s.observation, s.action, (tiles,), Linear(W, np.zeros(3, np.float32)),
                     Head("argmax"))  # fmt: skip
    student = distill(teacher, "MountainCar-v0", widths=(4,), iterations=1,
                      dagger=Dagger(steps=20, updates=1))  # fmt: skip
    (norm,) = student.preprocess
    assert isinstance(norm, Normalize)
    # The tile coder's box [low, high] becomes [-1, 1] (to float32 rounding).
    corners = norm.apply(np.array([[-1.2, -0.07], [0.6, 0.07], [-0.3, 0.0]], np.float32))
    np.testing.assert_allclose(corners, [[-1, -1], [1, 1], [0, 0]], atol=1e-6)
    assert [la.W.shape for la in student.body.layers] == [(2, 4), (4, 3)]  # type: ignore[union-attr]


def test_a_table_teacher_is_refused() -> None:
    s = env_spec("FrozenLake-v1", measure_steps=0)
    table = Policy(s.observation, s.action, (), Table(np.zeros((16, 4), np.float32)),
                   Head("argmax"))  # fmt: skip
    with pytest.raises(PolicyError) as err:
        distill(table, "FrozenLake-v1", widths=(8, 8))
    assert str(err.value) == (
        "distill applies to mlp, mlp_int8 and linear policies; this teacher has a table body "
        "(a table policy is compressed with pack / drop-unvisited)"
    )


def test_an_env_with_other_spaces_is_refused() -> None:
    with pytest.raises(PolicyError) as err:
        distill(balancer(), "Pendulum-v1", widths=(8, 8))
    assert str(err.value) == (
        "environment 'Pendulum-v1' has a box observation space [3], but the teacher's is box "
        "[4]; distill on the env the teacher was trained on"
    )


# --- recover ------------------------------------------------------------------------------


def pruned_student(seed: int = 4) -> Policy:
    """A random CartPole 4-16-16-2 tanh net with every other weight of each layer zeroed
    (tanh: no dead unit, so every weight has a gradient)."""
    body = random_mlp([4, 16, 16, 2], "tanh", np.random.default_rng(seed))
    layers = []
    for la in body.layers:
        W = la.W.copy()
        W.reshape(-1)[::2] = 0.0
        layers.append(replace(la, W=W))
    t = balancer()
    return Policy(t.observation_space, t.action_space, (), MLP(tuple(layers)), t.head)


def test_recover_keeps_every_zero_and_trains_the_rest() -> None:
    student = pruned_student()
    out = recover(student, balancer(), "CartPole-v1", iterations=3, dagger=FAST)
    for old, new in zip(student.body.layers, out.body.layers, strict=True):  # type: ignore[union-attr]
        zero = old.W == 0
        assert np.all(new.W[zero] == 0) and not np.signbit(new.W[zero]).any()
        assert np.all(new.W[~zero] != old.W[~zero])
    # From chance (the random student agrees on 50 %) to ≥ 90 % in three short iterations
    # (seeds 0-2 give 91-95 %; half the weights of a 16-16 net are gone).
    obs = visited(balancer(), "CartPole-v1", 1000, seed=9)
    assert np.mean(student.act(obs) == balancer().act(obs)) < 0.6
    assert np.mean(out.act(obs) == balancer().act(obs)) >= 0.9
    assert out.provenance["transforms"][-1]["method"] == "recover"


def test_recover_without_keep_zeros_fills_them() -> None:
    student = pruned_student()
    out = recover(student, balancer(), "CartPole-v1", iterations=1, keep_zeros=False,
                  dagger=FAST)  # fmt: skip
    W0, W1 = student.body.layers[0].W, out.body.layers[0].W  # type: ignore[union-attr]
    assert np.all(W1[W0 == 0] != 0)


def test_recover_refuses_a_non_mlp_student() -> None:
    with pytest.raises(PolicyError) as err:
        recover(balancer(), balancer(), "CartPole-v1")
    assert str(err.value) == (
        "recover fine-tunes a float32 mlp student; this one has a linear body "
        "(recover before fp16 or int8, then convert)"
    )


# --- widths for a budget ------------------------------------------------------------------

BUDGET = """\
name: hand
device: {{class: mcu, clock: 64MHz, sram: {sram}, flash: {flash}, fpu: true, power: 10mW}}
"""


def cartpole_64() -> Policy:
    t = balancer()
    return replace(t, body=random_mlp([4, 64, 64, 2], "tanh", np.random.default_rng(0)))


@pytest.mark.parametrize(
    ("sram", "flash", "bytes_per_weight", "expected"),
    [
        # Parameters of 4-w-w-2: w² + 8w + 2. fp32 flash ×1.25: w=32 → 1282·4·1.25 = 6410 B,
        # w=16 → 386·4·1.25 = 1930 B. RAM (fp32): live pair 2w·4 + w int32 accumulators = 12w,
        # ×1.25 = 15w: w=64 → 960 B.
        ("1MiB", "6409B", 4, (16, 16)),
        ("1MiB", "6410B", 4, (32, 32)),
        ("1MiB", "1MiB", 4, (64, 64)),  # never wider than the teacher
        ("959B", "1MiB", 4, (32, 32)),  # RAM binds: w=32 → 480 B
        # int8: 1 B per parameter; w=64 → 4610·1.25 = 5762.5 B, w=32 → 1602.5 B;
        # RAM 2w + 4w = 6w, ×1.25: w=64 → 480 B.
        ("1MiB", "5762B", 1, (32, 32)),
        ("1MiB", "5763B", 1, (64, 64)),
    ],
)
def test_widths_for_budget_by_hand(
    sram: str, flash: str, bytes_per_weight: int, expected: tuple[int, ...]
) -> None:
    budget = parse_budget(BUDGET.format(sram=sram, flash=flash))
    assert widths_for_budget(cartpole_64(), budget, bytes_per_weight=bytes_per_weight) == expected


def test_widths_for_budget_honours_inference_limits() -> None:
    text = BUDGET.format(sram="1MiB", flash="1MiB") + "inference: {flash: 6409B}\n"
    assert widths_for_budget(cartpole_64(), parse_budget(text)) == (16, 16)


def test_no_width_fits() -> None:
    # 4-4: 16 + 8 + 2 + ... = 4² + 8·4 + 2 = 50 parameters = 200 B, 250 B with the margin.
    budget = parse_budget(BUDGET.format(sram="1MiB", flash="249B"))
    with pytest.raises(PolicyError) as err:
        widths_for_budget(cartpole_64(), budget)
    assert str(err.value) == (
        "no student fits budget 'hand': even 4-4 needs 200 B (250 B with the 25% margin) over "
        "the device.flash limit of 249 B; raise the limit or use a linear or table policy"
    )


# --- the zoo target -----------------------------------------------------------------------


@needs_zoo("ppo-CartPole-v1")
def test_zoo_ppo_cartpole_64_64_to_8_8_keeps_95_percent() -> None:
    folder = ZOO / "ppo-CartPole-v1"
    from rlbudget.sb3.importer import import_model

    teacher = import_model(folder).policy
    student = distill(teacher, "CartPole-v1", widths=(8, 8))
    assert [la.W.shape for la in student.body.layers] == [(4, 8), (8, 8), (8, 2)]  # type: ignore[union-attr]
    before = evaluate(teacher, "CartPole-v1", episodes=10, seed=1000).return_mean
    after = evaluate(student, "CartPole-v1", episodes=10, seed=1000).return_mean
    assert after >= 0.95 * before
