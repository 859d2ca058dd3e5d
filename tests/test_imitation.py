"""Imitation (bc, dagger), warm start (--init) and env kwargs: what the student learns, the
exact step budget, and every bad input as one line, exit 2, nothing written."""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rlbudget.agents.imitation import ImitationConfig, train_imitation
from rlbudget.cli import app
from rlbudget.policy import save_policy
from rlbudget.policy.model import MLP, Dense, Head, Policy

from .conftest import ZOO, needs_zoo
from .factories import balancing_mlp, frozenlake_best_table, pendulum_relu

runner = CliRunner()


@pytest.fixture
def teacher(tmp_path: Path) -> Path:
    """The hand-made CartPole balancer (return 500) as a policy folder."""
    return save_policy(balancing_mlp(), tmp_path / "teacher")


def _demos(path: Path, n: int = 40, **change: object) -> Path:
    """A valid CartPole demos file of ``n`` rows (two episodes), with keys replaced or
    dropped (value None) as ``change`` says."""
    rng = np.random.default_rng(0)
    arrays: dict[str, object] = {
        "observations": rng.normal(size=(n, 4)).astype(np.float32),
        "actions": rng.integers(0, 2, n),
        "rewards": np.ones(n, np.float32),
        "terminations": np.arange(n) % 20 == 19,
        "truncations": np.zeros(n, bool),
    }
    for key, value in change.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def _teacher_states(n: int, seed: int) -> np.ndarray:
    import gymnasium as gym

    env, policy, out = gym.make("CartPole-v1"), balancing_mlp(), []
    obs, _ = env.reset(seed=seed)
    for _ in range(n):
        out.append(obs)
        obs, _, terminated, truncated, _ = env.step(policy.act(obs))
        if terminated or truncated:
            obs, _ = env.reset()
    return np.asarray(out, dtype=np.float32)


def test_bc_student_takes_the_teachers_actions_on_its_states(teacher: Path) -> None:
    # a linear student (net_arch []): the teacher's decision is nearly linear
    cfg = ImitationConfig("bc", n_timesteps=1_000, teacher=str(teacher), net_arch=[],
                          round_steps=1_000, updates=600, learning_rate=3e-2, seed=1)  # fmt: skip
    result = train_imitation("CartPole-v1", cfg)
    obs = _teacher_states(400, seed=123)  # fresh episodes (training's seed was 1)
    agree = np.mean(result.policy.act(obs) == balancing_mlp().act(obs))
    # the teacher's own states hover at its decision boundary (it balances by flipping
    # sides), so a few disagree; the return says the student balances as the teacher does
    assert agree >= 0.9, agree
    assert result.extra["dataset_states"] == 1_000
    from rlbudget.profile.evaluate import evaluate

    assert evaluate(result.policy, "CartPole-v1", episodes=5, seed=7).returns == (500.0,) * 5


def test_dagger_takes_exactly_the_step_budget_and_the_student_acts(teacher: Path) -> None:
    cfg = ImitationConfig("dagger", n_timesteps=1_234, teacher=str(teacher), net_arch=[8],
                          round_steps=500, updates=20, beta_decay=0.0, seed=0)  # fmt: skip
    result = train_imitation("CartPole-v1", cfg)
    assert result.steps == 1_234
    # rounds of 500, 500 and the last 234: every visited state labelled once
    assert result.extra == {"dataset_states": 1_234, "rounds": 3, "demo_episodes": None}
    # β = 0 after round 0: the episodes after step 500 were the student's (exploration 0)
    late = [e for e in result.episodes if e.step - e.length >= 500]
    assert late and all(e.epsilon == 0.0 for e in late)


def test_bc_from_demos_takes_no_env_step_and_fits_a_table(tmp_path: Path) -> None:
    best = frozenlake_best_table()
    states = np.repeat(np.arange(16), 3)
    acts = best.act(states)
    path = tmp_path / "d.npz"
    np.savez(path, observations=states, actions=acts, rewards=np.zeros(48),
             terminations=np.zeros(48, bool), truncations=np.zeros(48, bool))  # fmt: skip
    cfg = ImitationConfig("bc", n_timesteps=1_000, demos=str(path))
    result = train_imitation("FrozenLake-v1", cfg)
    assert result.steps == 0
    assert np.array_equal(result.policy.act(np.arange(16)), best.act(np.arange(16)))


# --- bad input: one line, exit 2, nothing written ------------------------------------------


def _refused(tmp_path: Path, args: list[str]) -> str:
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "--env", "CartPole-v1", "-o", str(out), "-q", *args])
    assert r.exit_code == 2, r.output
    assert not out.exists()
    lines = r.output.strip().splitlines()
    assert len(lines) == 1, r.output
    return lines[0].removeprefix("error: ")


def test_teacher_for_other_spaces(tmp_path: Path) -> None:
    pend = save_policy(pendulum_relu(), tmp_path / "pend")
    line = _refused(tmp_path, ["--algo", "dagger", "--teacher", str(pend)])
    assert line == (
        f"--teacher {pend}: environment 'CartPole-v1' has a box observation space [4], but "
        "the teacher's is box [3]; give a teacher trained on CartPole-v1"
    )


@needs_zoo("sac-Pendulum-v1")
def test_zoo_teacher_for_other_spaces(tmp_path: Path) -> None:
    line = _refused(tmp_path, ["--algo", "bc", "--teacher", str(ZOO / "sac-Pendulum-v1")])
    assert "the teacher's is box [3]; give a teacher trained on CartPole-v1" in line


def test_dagger_without_teacher(tmp_path: Path) -> None:
    line = _refused(tmp_path, ["--algo", "dagger", "--demos", str(_demos(tmp_path / "d.npz"))])
    assert line == ("dagger needs a teacher to label the student's states: add --teacher "
                    "POLICY (or use --algo bc with --demos FILE)")  # fmt: skip


def test_teacher_with_an_algorithm_that_does_not_imitate(tmp_path: Path, teacher: Path) -> None:
    line = _refused(tmp_path, ["--algo", "ppo", "--teacher", str(teacher)])
    assert line == ("--teacher is for --algo bc or dagger; to start ppo from an existing "
                    "policy, use --init POLICY")  # fmt: skip


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"actions": None}, "key 'actions' is missing; a demos file holds observations, "
         "actions, rewards, terminations, truncations (it has observations, rewards, "
         "terminations, truncations)"),
        ({"actions": np.zeros((40, 2), np.int64)}, "'actions' has shape (40, 2), expected "
         "(40,): CartPole-v1's actions are discrete 2"),
        ({"observations": np.zeros((40, 3), np.float32)}, "'observations' has shape (40, 3), "
         "expected (40, 4): CartPole-v1's observations are box [4]"),
        ({"rewards": np.ones(39)}, "'rewards' has shape (39,), expected (40,) (one value per "
         "row of 'observations')"),
        ({"observations": np.where(np.arange(160).reshape(40, 4) == 29, np.nan, 0.0)},
         "'observations' holds NaN or inf (first at row 7); drop those transitions"),
        ({"actions": np.full(40, 2)}, "'actions' holds 2 at row 0, outside CartPole-v1's "
         "Discrete(2) actions"),
        ({"actions": np.array([{"a": 1}] * 40, dtype=object)}, "'actions' is a pickled object "
         "array, which rlbudget never loads; save plain numeric arrays"),
    ],
)  # fmt: skip
def test_bad_demos(tmp_path: Path, change: dict[str, object], expected: str) -> None:
    path = _demos(tmp_path / "d.npz", **change)
    line = _refused(tmp_path, ["--algo", "bc", "--demos", str(path)])
    assert line == f"--demos {path}: {expected}"


class _Touch:
    """Unpickling this creates the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def _npy(shape: tuple[int, ...]) -> bytes:
    """A float32 ``.npy`` header declaring ``shape``, with no data after it."""
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape!r}, }}"
    header += " " * (-(10 + len(header) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()


def test_demos_declaring_huge_arrays_are_refused_before_reading(tmp_path: Path) -> None:
    # a 1 kB file whose header declares 1.5 TiB: numpy allocated it first (MemoryError, exit
    # 3); a compressed file of zeros under the 2 GiB file cap likewise took all memory
    path = _demos(tmp_path / "d.npz")
    with zipfile.ZipFile(path, "a") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the duplicate name: the last entry is read
        zf.writestr("observations.npy", _npy((10**11, 4)))
    line = _refused(tmp_path, ["--algo", "bc", "--demos", str(path)])
    assert (
        line == f"--demos {path}: its arrays hold 1490.1 GiB once read (more than 2 GiB); split it"
    )


def test_demos_that_are_a_folder_or_a_device_are_named_so(tmp_path: Path) -> None:
    # both were "no such file"
    line = _refused(tmp_path, ["--algo", "bc", "--demos", str(tmp_path)])
    assert line.startswith(f"--demos {tmp_path}: a folder; give an .npz written by numpy")
    line = _refused(tmp_path, ["--algo", "bc", "--demos", "/dev/null"])
    assert line.startswith("--demos /dev/null: not a regular file; give an .npz")


def test_complex_demos_are_refused(tmp_path: Path) -> None:
    # numpy counts complex as a number; the float cast dropped the imaginary part silently
    path = _demos(tmp_path / "d.npz", rewards=np.ones(40, complex))
    line = _refused(tmp_path, ["--algo", "bc", "--demos", str(path)])
    assert line == f"--demos {path}: 'rewards' has dtype complex128; write real numbers"


def test_demos_that_are_a_pickle_are_never_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    marker = tmp_path / "ran"
    path.write_bytes(pickle.dumps({"observations": _Touch(marker)}))
    line = _refused(tmp_path, ["--algo", "bc", "--demos", str(path)])
    assert line.startswith(f"--demos {path}: not an .npz (numpy.savez) file")
    assert not marker.exists()


def test_init_with_other_spaces(tmp_path: Path) -> None:
    table = save_policy(frozenlake_best_table(), tmp_path / "fl")
    line = _refused(tmp_path, ["--algo", "q-learning", "--init", str(table)])
    assert line == (
        f"--init {table}: environment 'CartPole-v1' has a box observation space [4], but the "
        "--init policy's is discrete 16; start from a policy for CartPole-v1"
    )


def test_init_with_another_body(tmp_path: Path, teacher: Path) -> None:
    line = _refused(tmp_path, ["--algo", "q-learning", "--init", str(teacher)])
    assert line == (f"--init {teacher}: q-learning starts from a table policy (float32 "
                    "values); this one has a mlp body")  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"length": 2}', "environment 'CartPole-v1' does not take the env kwargs length "
         "(gymnasium.make refused them); for physics its constructor lacks, write "
         '{"attributes": {"NAME": VALUE}}'),
        ('{"attributes": {"pole": 2}}', "env kwargs attributes.pole: environment "
         "'CartPole-v1' has no numeric attribute 'pole' to set; name one of its physics "
         "constants"),
        ("[1]", "--env-kwargs: write a JSON object of gymnasium.make kwargs, such as "
         """'{"g": 9.81}', not list"""),
        # JSON's NaN/Infinity reached the physics (NaN observations after the run folder
        # was written); render_mode "human" opened a window or failed at the first reset
        ('{"attributes": {"force_mag": NaN}}', "--env-kwargs: 'attributes.force_mag' is "
         "nan; env kwargs hold finite numbers (NaN or inf would reach the physics)"),
        ('{"render_mode": "human"}', "--env-kwargs: 'render_mode' is not an env kwarg "
         "rlbudget trains with (it changes how the env is stepped or rendered); remove it"),
        # the constructor's own ValueError was exit 3; 10**12 was taken and its first
        # screen never ended
        ('{"max_episode_steps": -5}', "--env-kwargs: 'max_episode_steps' must be an integer "
         "from 1 to 1,000,000, not -5 (an evaluation episode runs to it)"),
        ('{"max_episode_steps": 1000000000000}', "--env-kwargs: 'max_episode_steps' must be "
         "an integer from 1 to 1,000,000, not 1000000000000 (an evaluation episode runs to "
         "it)"),
    ],
)  # fmt: skip
def test_bad_env_kwargs(tmp_path: Path, text: str, expected: str) -> None:
    line = _refused(tmp_path, ["--algo", "q-learning", "--env-kwargs", text])
    assert line == expected


def test_an_int_attribute_takes_whole_numbers_only() -> None:
    from rlbudget.envs import make_env
    from rlbudget.errors import EnvError

    # Pendulum's max_speed is the int 8: int(8.5) was 8 silently, int(inf) an OverflowError
    with pytest.raises(EnvError, match=r"^env kwargs attributes.max_speed: 8.5 for "
                       r"'Pendulum-v1', whose max_speed is a whole number \(8\)$"):  # fmt: skip
        make_env("Pendulum-v1", attributes={"max_speed": 8.5})
    assert make_env("Pendulum-v1", attributes={"max_speed": 9.0}).unwrapped.max_speed == 9


def test_env_kwargs_reach_training_and_evaluation() -> None:
    from rlbudget.env_kwargs import env_kwargs_applied
    from rlbudget.envs import make_env

    with env_kwargs_applied("CartPole-v1", {"attributes": {"force_mag": 8.0}}):
        assert make_env("CartPole-v1").unwrapped.force_mag == 8.0
    assert make_env("CartPole-v1").unwrapped.force_mag == 10.0  # only within the block


# --- warm start, budget keys, plan ---------------------------------------------------------


def test_tabular_warm_start_begins_from_the_init_table(tmp_path: Path) -> None:
    from rlbudget.agents.tabular import TabularConfig, train_tabular

    best = frozenlake_best_table()
    init = save_policy(best, tmp_path / "init")
    cfg = TabularConfig("q-learning", n_timesteps=1, init=str(init))
    values = train_tabular("FrozenLake-v1", cfg).policy.body.values  # type: ignore[union-attr]
    changed = np.argwhere(values != best.body.values)  # type: ignore[union-attr]
    assert len(changed) <= 1  # one step: one Q update, the rest is the init table


def test_sarsa_lambda_init_with_other_tiling(tmp_path: Path) -> None:
    from .factories import mountaincar_tiles

    init = save_policy(mountaincar_tiles(), tmp_path / "init")
    line = _refused(tmp_path, ["--algo", "sarsa-lambda", "--init", str(init), "-p", "tilings=4"])
    assert line.startswith(f"--init {init}: environment 'CartPole-v1' has a box observation")
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "--algo", "sarsa-lambda", "--env", "MountainCar-v0", "-o",
                            str(out), "-q", "--init", str(init), "-p", "tilings=4"])  # fmt: skip
    assert r.exit_code == 2 and not out.exists()
    assert r.output.strip() == (
        f"error: --init {init}: its tile coder has 8 tilings × 8 tiles, this run 4 × 8; train "
        "with -p tilings=8 -p tiles_per_dim=8"
    )


def test_budget_prior_keys(tmp_path: Path) -> None:
    from rlbudget.budget import parse_budget

    text = ("device: raspberry-pi-4\ntask:\n  env: Pendulum-v1\n  teacher: zoo/sac\n"
            "  env_kwargs: {g: 5.0}\n")  # fmt: skip
    b = parse_budget(text, str(tmp_path / "b.yaml"))
    assert b.task.teacher == str(tmp_path / "zoo" / "sac")  # relative to the budget's folder
    assert b.task.env_kwargs == {"g": 5.0}


def test_plan_ranks_imitation_first_only_with_prior_knowledge(tmp_path: Path) -> None:
    from rlbudget.budget import parse_budget
    from rlbudget.envs import env_spec
    from rlbudget.plan import make_plan

    spec = env_spec("CartPole-v1", measure_steps=0)
    plain = make_plan(parse_budget("device: raspberry-pi-4\n"), spec)
    assert all(o.algorithm not in ("bc", "dagger") for o in plain.options)
    assert ("dagger", "[prior-knowledge] learns from a teacher: needs task.teacher") in (
        plain.excluded
    )
    text = "device: raspberry-pi-4\ntask: {env: CartPole-v1, teacher: /t}\n"
    plan = make_plan(parse_budget(text), spec)
    assert [o.algorithm for o in plan.options[:2]] == ["dagger", "bc"]
    assert any(r.startswith("[prior-knowledge]") for r in plan.options[0].reasons)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_dagger_resume_mid_round_equals_a_straight_run(env_id: str, tmp_path: Path) -> None:
    from rlbudget.agents.common import Checkpoint

    made = balancing_mlp() if env_id == "CartPole-v1" else pendulum_relu()
    teacher = save_policy(made, tmp_path / "teacher")
    cfg = ImitationConfig("dagger", n_timesteps=1_500, teacher=str(teacher), net_arch=[8],
                          round_steps=500, updates=10, seed=0)  # fmt: skip
    straight = train_imitation(env_id, cfg)
    calls = iter(range(10_000))
    first = train_imitation(env_id, cfg, should_stop=lambda: next(calls) >= 700)
    assert first.steps == 700 and first.checkpoint is not None
    # round 1 is under way: its 200 states wait in the checkpoint, unlabelled
    assert len(first.checkpoint.arrays["data_obs"]) == 500
    assert len(first.checkpoint.arrays["round_obs"]) == 200
    # through the files, as `rlbudget train --resume` reads it
    checkpoint = Checkpoint.load(first.checkpoint.save(tmp_path / "checkpoint"))
    rest = train_imitation(env_id, cfg, resume=checkpoint)
    assert rest.steps == 1_500 and rest.extra == straight.extra
    assert rest.extra["dataset_states"] == 1_500 and rest.extra["rounds"] == 3
    assert [e.ret for e in rest.episodes] == [e.ret for e in straight.episodes]
    a, b = straight.policy.arrays(), rest.policy.arrays()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# --- the paired stop rule: the student against the teacher on the same start states ------


def _pusher() -> Policy:
    """A CartPole policy that always pushes left (the pole falls within ≈ 10 steps)."""
    s = balancing_mlp()
    layer = Dense(np.zeros((4, 2), np.float32), np.array([1.0, 0.0], np.float32), "identity")
    return Policy(s.observation_space, s.action_space, (), MLP((layer,)), Head("argmax"), {})


def test_a_copy_of_the_teacher_passes_the_paired_bar_exactly() -> None:
    from rlbudget.agents.imitation import TeacherBar
    from rlbudget.profile.evaluate import evaluate

    teacher = pendulum_relu(0)  # a random net: its return depends on the start state
    returns = evaluate(teacher, "Pendulum-v1", seeds=list(range(5, 35))).returns
    mean = float(np.mean(returns))
    bar = TeacherBar(pendulum_relu(0), "Pendulum-v1")
    # paired differences are all 0: the lower bound is the teacher's mean itself
    assert bar.confirm(pendulum_relu(0), 5, 30) == (mean, mean)
    assert bar.bar(np.asarray(returns)) == -0.05 * abs(mean)


def test_a_worse_student_fails_screen_and_confirmation() -> None:
    from rlbudget.agents.imitation import TeacherBar
    from rlbudget.train.loop import screen_decided

    bar = TeacherBar(balancing_mlp(), "CartPole-v1")
    looks: list[int] = []

    def decided(gaps: Sequence[float], target: float) -> bool:
        looks.append(len(gaps))
        assert target == -0.05 * 500.0  # 5 % of the teacher's 500 on these episodes
        return screen_decided(gaps, target)

    mean, passed = bar.screen(_pusher(), 0, 20, decided)
    assert not passed and mean < 20 and looks[-1] == 5  # settled at the first look
    assert bar.confirm(_pusher(), 0, 20) is None
    assert bar.confirm(balancing_mlp(), 0, 20) == (500.0, 500.0)


def test_dagger_run_stops_at_the_teachers_return_on_the_same_episodes(tmp_path: Path) -> None:
    import dataclasses

    from rlbudget.agents.prior import PAIRED_TARGET, check_prior
    from rlbudget.train import resolve, train_run

    # FrozenLake (slippery): the same seeds and the same actions slip the same way, so a
    # table student that acts as the teacher on every state it meets returns what it returns
    teacher = save_policy(frozenlake_best_table(), tmp_path / "teacher")
    settings = resolve("dagger", "FrozenLake-v1", env_steps=20_000, min_return=0.1,
                       overrides={"round_steps": 500})  # fmt: skip
    settings = check_prior(settings, teacher=str(teacher), demos=None, init=None,
                           env_kwargs=None)  # fmt: skip
    assert settings.target_return is None and settings.target_from == PAIRED_TARGET
    run = train_run(dataclasses.replace(settings, eval_every=500), tmp_path / "run")
    assert run.stopped_by == "target" and run.target_check is not None and run.steps < 20_000
    t = run.target_check
    assert t.mean >= t.lower_95 > 0.0
