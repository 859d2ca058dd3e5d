"""Contextual bandits (rlbudget.bandits): logged data and its validation, the online and
offline learners against the synthetic problem's known optimum, off-policy estimates and
their intervals, and the CLI (bandit-data, train, evaluate --data)."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rlbudget.bandits.data import Logged, read_logged, write_logged
from rlbudget.bandits.learners import config, run_online
from rlbudget.bandits.offline import learn_offline
from rlbudget.bandits.ope import off_policy_value
from rlbudget.bandits.ridge import ArmRidge, linear_policy, with_intercept
from rlbudget.bandits.synthetic import log_decisions, make_problem
from rlbudget.budget import parse_budget
from rlbudget.cli import app
from rlbudget.errors import BudgetError, DataError, PlanError
from rlbudget.plan import Plan, make_plan
from rlbudget.policy import save_policy

runner = CliRunner()
HEADER = "x0,x1,action,reward,propensity\n"
ENV = "rlbudget.bandits.env:LinearBandit-v0"


def _csv(tmp_path: Path, text: str, name: str = "logs.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- logged data ------------------------------------------------------------------------


BAD_ROWS = {
    # body rows (after the header), expected message after "PATH: "
    "propensity-zero": (
        "0.1,0.2,1,1.0,0.5\n0.3,0.4,0,1.0,0\n",
        "row 2 (line 3), column 'propensity': '0' is not valid; a propensity "
        "is the probability the logging policy gave the logged action, in "
        "(0, 1]; a 0 means the action could not have been logged",
    ),
    "propensity-above-one": (
        "0.1,0.2,1,1.0,1.5\n",
        "row 1 (line 2), column 'propensity': '1.5' is not valid; a "
        "propensity is the probability the logging policy gave the logged "
        "action, in (0, 1]; a 0 means the action could not have been "
        "logged",
    ),
    "nan-reward": (
        "0.1,0.2,1,1.0,0.5\n0.1,0.2,1,1.0,0.5\n0.1,0.2,1,nan,0.5\n",
        "row 3 (line 4), column 'reward': 'nan' is not valid; give a finite number (no NaN/inf)",
    ),
    "empty-cell": (
        "0.1,,1,1.0,0.5\n",
        "row 1 (line 2), column 'x1': '' is not valid; the cell is empty, give a finite number",
    ),
    "text-cell": (
        "0.1,0.2,1,good,0.5\n",
        "row 1 (line 2), column 'reward': 'good' is not valid; not a number, give a finite number",
    ),
    "fractional-action": (
        "0.1,0.2,1.5,1.0,0.5\n",
        "row 1 (line 2), column 'action': '1.5' is not valid; an action is "
        "an integer from 0 to 1,048,575 (the index of the action taken)",
    ),
    "huge-action": (  # was a MemoryError/ValueError (exit 3): int(1e18) + 1 arms allocated
        "0.1,0.2,1,1.0,0.5\n0.1,0.2,1e18,1.0,0.5\n",
        "row 2 (line 3), column 'action': '1e+18' is not valid; an action is "
        "an integer from 0 to 1,048,575 (the index of the action taken)",
    ),
    "short-row": (
        "0.1,0.2,1,1.0\n",
        "row 1 (line 2): 4 fields, the header has 5; every row needs one value per column",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_rows_are_one_line_naming_row_and_column(case: str, tmp_path: Path) -> None:
    body, expected = BAD_ROWS[case]
    path = _csv(tmp_path, HEADER + body)
    with pytest.raises(DataError) as e:
        read_logged(path)
    assert str(e.value) == f"{path}: {expected}"


def test_data_too_large_to_learn_from_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows × actions and actions × (d + 1)² float64s must fit the working-memory limit:
    here 2 rows × 1,000 arms = 16,000 B, 1,000 × 3² × 8 = 72,000 B, over a 50,000 B limit."""
    monkeypatch.setattr("rlbudget.bandits.data.MAX_WORK_BYTES", 50_000)
    path = _csv(tmp_path, HEADER + "0.1,0.2,1,1.0,0.5\n0.1,0.2,999,1.0,0.5\n")
    with pytest.raises(DataError) as e:
        read_logged(path)
    assert str(e.value) == (
        f"{path}: 2 rows, 1,000 actions (the largest logged action + 1) and 2 context columns "
        "need 70.3 KiB of float64 working memory (rows × actions, actions × (columns + 1)²), "
        "over the 48.8 KiB limit; number the actions from 0, or use fewer rows, actions or "
        "context columns"
    )
    small = _csv(tmp_path, HEADER + "0.1,0.2,1,1.0,0.5\n", "small.csv")
    assert read_logged(small, n_actions=600).n_actions == 600  # 43,200 B: within the limit


def test_rewards_that_overflow_the_regression_write_no_policy(tmp_path: Path) -> None:
    """Finite rewards of 1e308 overflow Σ w·r·x to inf: one line, exit 2, no policy (it was
    written with NaN weights, exit 0, and could not be loaded)."""
    path = _csv(tmp_path, HEADER + "0.1,0.2,0,1e308,0.5\n0.2,0.1,1,1e308,0.5\n")
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "--algo", "dr", "--data", str(path), "-o", str(out)])
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines() == [
        f"error: dr on {path}: the learned weights overflowed to NaN/inf (mean reward inf, "
        "ridge 1); keep the rewards and contexts moderate (e.g. within ±1e6) and the ridge "
        "near 1, and train again"
    ]
    assert not (out / "policy").exists()


@pytest.mark.parametrize(
    ("algo", "message"),
    [("thompson", "thompson: an arm's A⁻¹ is no longer positive definite (ridge=1e-300, 4 "
                  "arms); a larger ridge (-p ridge=1) keeps it well conditioned"),
     ("linucb", f"linucb on {ENV}: the learned weights overflowed to NaN/inf (mean reward "
                "MEAN, ridge 1e-300); keep the rewards and contexts moderate (e.g. within "
                "±1e6) and the ridge near 1, and train again")],
)  # fmt: skip
def test_a_ridge_too_small_to_learn_with_is_one_line(
    tmp_path: Path, algo: str, message: str
) -> None:
    """A⁻¹ = I/1e-300 overflows: Thompson's Cholesky failed (LinAlgError, exit 3) and
    LinUCB wrote a policy of NaN weights (exit 0)."""
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "--algo", algo, "--env", ENV, "--steps", "200",
                            "-p", "ridge=1e-300", "-o", str(out)])  # fmt: skip
    assert r.exit_code == 2, r.output
    line = r.output.strip().replace("\n", "")
    mean = line.split("mean reward ")[1].split(",")[0] if "MEAN" in message else ""
    assert line == "error: " + message.replace("MEAN", mean)
    assert not (out / "policy").exists()


def test_a_path_that_is_not_a_file_is_named_so(tmp_path: Path) -> None:
    """A folder (or a device such as /dev/zero) was reported as "no such file"."""
    for path, what in ((tmp_path, "not a regular file"), (tmp_path / "a.csv", "no such file")):
        with pytest.raises(DataError) as e:
            read_logged(path)
        assert str(e.value) == f"{path}: {what}; check the path of the logged data"


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = _csv(tmp_path, "x0,x1,action,reward\n0.1,0.2,1,1.0\n")
    with pytest.raises(DataError) as e:
        read_logged(path)
    assert str(e.value) == (
        f"{path}: missing column 'propensity'; the header has x0, x1, "
        "action, reward. Logged data needs the context columns, action, "
        "reward and propensity"
    )


def test_unknown_action_against_the_policy(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER + "0.1,0.2,1,1.0,0.5\n0.1,0.2,4,1.0,0.5\n")
    assert read_logged(path).n_actions == 5  # alone: the largest action + 1
    with pytest.raises(DataError) as e:
        read_logged(path, n_actions=4)
    assert str(e.value) == (
        f"{path}: row 2 (line 3), column 'action': '4' is not valid; "
        "unknown action: the policy has actions 0..3"
    )


def test_named_context_columns_and_extra_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path, "user,age,clicks,action,reward,propensity\nu1,31,2,0,1.0,0.25\n")
    logged = read_logged(path, context=["age", "clicks"])
    assert logged.contexts.tolist() == [[31.0, 2.0]]  # 'user' (text) is never read
    assert logged.context_columns == ("age", "clicks")


def test_csv_and_parquet_round_trip_exactly(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    logged = log_decisions(make_problem(3, 3), 50, seed=4)
    for name in ("a.csv", "a.parquet"):
        back = read_logged(write_logged(logged, tmp_path / name))
        for field in ("contexts", "actions", "rewards", "propensities"):
            assert np.array_equal(getattr(back, field), getattr(logged, field)), (name, field)


def test_parquet_is_read_within_the_size_cap_like_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Parquet file was handed to pyarrow whatever its size; CSV was capped at MAX_BYTES."""
    pytest.importorskip("pyarrow")
    path = write_logged(log_decisions(make_problem(3, 3), 50, seed=4), tmp_path / "a.parquet")
    monkeypatch.setattr("rlbudget.bandits.data.MAX_BYTES", 100)
    with pytest.raises(DataError) as e:
        read_logged(path)
    assert str(e.value) == f"{path}: longer than 100 bytes; not logged data"


def test_parquet_null_is_named_and_missing_pyarrow_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "logs.parquet"
    pq.write_table(
        pa.table(
            {"x0": [0.5, None], "action": [0, 1], "reward": [1.0, 0.0], "propensity": [0.5, 0.5]}
        ),
        path,
    )
    with pytest.raises(DataError) as e:
        read_logged(path)
    assert str(e.value) == (
        f"{path}: row 2, column 'x0': '' is not valid; the cell is empty, give a finite number"
    )
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(DataError) as e:
        read_logged(path)
    assert str(e.value) == (
        f"{path}: reading Parquet needs pyarrow: pip install "
        "'rlbudget[parquet]' (or save the data as CSV)"
    )


def test_logging_propensities_are_the_frequencies() -> None:
    """The synthetic logging policy's propensities are what it does: over 40,000 rows of
    one fixed context, each action's frequency is its propensity within 4 standard errors."""
    problem = make_problem(2, 3)
    logged = log_decisions(problem, 40_000, seed=3)
    x = logged.contexts[0]
    same = log_decisions(problem, 1, seed=3)  # the first row's context and draw again
    assert np.array_equal(same.contexts[0], x)
    from rlbudget.bandits.synthetic import logging_probabilities

    P = logging_probabilities(problem, logged.contexts)
    assert np.allclose(logged.propensities, P[np.arange(len(logged)), logged.actions])
    expected = P.mean(axis=0)
    freq = np.bincount(logged.actions, minlength=3) / len(logged)
    se = np.sqrt(expected * (1 - expected) / len(logged))
    assert np.all(np.abs(freq - expected) < 4 * se)


# --- learners ---------------------------------------------------------------------------


def test_sherman_morrison_matches_the_batch_inverse() -> None:
    rng = np.random.default_rng(0)
    X1 = with_intercept(rng.standard_normal((30, 4)))
    arms = rng.integers(0, 2, 30)
    r = rng.standard_normal(30)
    online = ArmRidge(2, 4, ridge=0.5)
    for x, a, y in zip(X1, arms, r, strict=True):
        online.update(x, int(a), float(y))
    batch = ArmRidge(2, 4, ridge=0.5)
    taken = np.eye(2)[arms]
    batch.fit(X1, np.repeat(r[:, None], 2, axis=1), taken, ridge=0.5)
    assert np.allclose(online.A_inv, batch.A_inv) and np.allclose(online.theta, batch.theta)


@pytest.mark.parametrize("algo", ["linucb", "thompson"])
def test_online_regret_is_sublinear(algo: str) -> None:
    """LinUCB's and Thompson's regret per step falls as θ is learned (O(d√T) in total): the
    last 500 of 2,000 steps cost under a quarter of the first 500; a uniform policy pays
    the same per step throughout (≈1.3 here)."""
    run = run_online(algo, make_problem(), 4, 5, 2000, seed=1)
    assert run.regret is not None
    first, last = run.regret[:500].sum(), run.regret[-500:].sum()
    assert last < 0.25 * first, (first, last)
    assert run.regret.sum() < 0.1 * 2000 * 1.3


def test_same_seed_same_run() -> None:
    a = run_online("thompson", make_problem(), 4, 5, 200, seed=7)
    b = run_online("thompson", make_problem(), 4, 5, 200, seed=7)
    assert np.array_equal(a.actions, b.actions) and np.array_equal(a.theta, b.theta)


@pytest.mark.parametrize("algo", ["ips", "dr"])
def test_offline_learning_nears_the_optimum(algo: str) -> None:
    """The model is well specified (rewards are linear per arm) and every arm is logged
    with probability ≥ 0.05, so both regressions converge to θ: on 20,000 rows the learned
    policy keeps ≥ 97 % of the optimal value (the logging policy has half of it)."""
    problem = make_problem()
    logged = log_decisions(problem, 20_000, seed=0)
    theta = learn_offline(algo, logged, config(algo))
    policy = linear_policy(theta, logged.context_columns, -np.ones(5), np.ones(5), {})
    optimum = problem.optimal_value()
    assert problem.value(policy) >= 0.97 * optimum
    assert logged.rewards.mean() < 0.6 * optimum


def test_linear_policy_acts_as_the_argmax_of_the_scores() -> None:
    theta = np.random.default_rng(2).standard_normal((3, 5))
    policy = linear_policy(theta, ["a", "b", "c", "d"], -np.ones(4), np.ones(4), {})
    X = np.random.default_rng(3).uniform(-1, 1, (200, 4)).astype(np.float32)
    expected = np.argmax(with_intercept(X) @ theta.T, axis=1)
    assert np.array_equal(policy.act(X), expected)
    assert policy.provenance["context_columns"] == ["a", "b", "c", "d"]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc on the PATH")
def test_learned_policy_in_c_acts_as_numpy(tmp_path: Path) -> None:
    """The deployed form: a DR policy's C export (compiled for this host) takes the same
    actions as Policy.act on 2,000 contexts, bit for bit (both argmax float32 scores)."""
    from rlbudget.export.host import HostPolicy

    problem = make_problem()
    logged = log_decisions(problem, 2000, seed=0)
    theta = learn_offline("dr", logged, config("dr"))
    policy = linear_policy(theta, logged.context_columns, -np.ones(5), np.ones(5), {})
    X = problem.contexts(2000, np.random.default_rng(8)).astype(np.float32)
    host = HostPolicy(policy, tmp_path / "c")
    assert [host.act(x) for x in X] == policy.act(X).tolist()


def test_bad_hyperparameters() -> None:
    from rlbudget.errors import PlanError

    with pytest.raises(PlanError, match="linucb has no hyperparameter 'alhpa'"):
        config("linucb", {"alhpa": 2})
    with pytest.raises(PlanError, match=r"epsilon=2 must be in \[0, 1\]"):
        config("epsilon-greedy", {"epsilon": 2})


# --- off-policy evaluation ----------------------------------------------------------------


def test_estimates_by_hand() -> None:
    """Four rows; the target policy always plays 0. w = [1/0.5, 0, 1/0.25, 0]:
    IPS = (2·1 + 4·3) / 4 = 3.5; SNIPS = (2·1 + 4·3) / (2 + 4) = 7/3."""
    logged = Logged(
        np.zeros((4, 1)),
        np.array([0, 1, 0, 1]),
        np.array([1.0, 5.0, 3.0, 0.0]),
        np.array([0.5, 0.5, 0.25, 0.75]),
        ("x0",),
        2,
    )
    est = off_policy_value(np.zeros(4, dtype=np.int64), logged)
    assert est.estimate("ips").value == pytest.approx(3.5)
    assert est.estimate("snips").value == pytest.approx(7 / 3)
    assert est.matched == 2 and est.effective_rows == pytest.approx(36 / 20)
    clipped = off_policy_value(np.zeros(4, dtype=np.int64), logged, clip=3.0)
    assert clipped.estimate("ips").value == pytest.approx((2 * 1 + 3 * 3) / 4)


def test_a_policy_that_never_agrees_with_the_log_is_valid_json(tmp_path: Path) -> None:
    """No matched row: SNIPS is 0/0 (NaN, interval ±inf), which `evaluate --json` could
    not write (ValueError, exit 3); it is null. IPS is 0 (every weight is 0) with no
    interval: its terms are all 0, and [0, 0] claimed a certainty the data do not give."""
    data = _csv(tmp_path, HEADER + "0.1,0.2,1,1.0,0.5\n0.3,0.1,1,0.0,0.5\n")
    always_0 = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])  # intercepts 1 and 0
    policy = linear_policy(always_0, ("x0", "x1"), -np.ones(2), np.ones(2), {})
    save_policy(policy, tmp_path / "policy")
    r = runner.invoke(app, ["evaluate", str(tmp_path / "policy"), "--data", str(data),
                            "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    snips, ips = doc["estimates"][1], doc["estimates"][0]
    assert doc["matched"] == 0 and snips == {"estimator": "snips", "value": None,
                                             "low": None, "high": None}  # fmt: skip
    assert (ips["value"], ips["low"], ips["high"]) == (0.0, None, None)


def test_dr_interval_covers_the_true_value() -> None:
    """DR with a well-specified, cross-fitted reward model is unbiased, and on 2,000 rows
    its mean is close to normal, so its 95 % interval covers the true value in ≈95 % of
    trials. 100 trials (fixed seeds): fewer than 90 covered has probability ≈1.5 % at 95 %
    (binomial), so ≥ 90 is the issue's target with little room for chance."""
    problem = make_problem()
    policy = problem.optimal_policy()
    truth = problem.value(policy)
    covered = 0
    for seed in range(100):
        dr = off_policy_value(policy, log_decisions(problem, 2000, seed=100 + seed)).estimate("dr")
        covered += dr.low <= truth <= dr.high
    assert covered >= 90, covered


# --- budget and CLI -------------------------------------------------------------------------


def test_budget_bandit_task(tmp_path: Path) -> None:
    text = (
        "device: esp32\ninference: {latency: 100us, learn: true}\n"
        "task: {kind: bandit, data: logs.csv, context: 'age, clicks'}\n"
    )
    b = parse_budget(text, str(tmp_path / "b.yaml"))
    assert (b.task.kind, b.task.data, b.task.context) == (
        "bandit",
        str(tmp_path / "logs.csv"),
        ("age", "clicks"),
    )
    assert b.inference.learn is True
    # a YAML list names the same columns (it was "expected a string, got a nested block")
    listed = parse_budget(text.replace("'age, clicks'", "[age, clicks]"), "b.yaml")
    assert listed.task.context == ("age", "clicks")
    with pytest.raises(BudgetError) as e:
        parse_budget(text.replace("'age, clicks'", "' , '"), "b.yaml")
    assert str(e.value) == "b.yaml:3: task.context: names no column; list the context columns"
    with pytest.raises(BudgetError) as e:
        parse_budget("device: esp32\ntask: {env: CartPole-v1, data: logs.csv}\n", "b.yaml")
    assert str(e.value) == (
        "b.yaml:2: task.data: is for a contextual bandit; add 'kind: bandit' to the task"
    )
    with pytest.raises(BudgetError) as e:
        parse_budget("device: esp32\ntask: {kind: bandits}\n", "b.yaml")
    assert str(e.value) == "b.yaml:2: task.kind: 'bandits' is not one of: rl, bandit"


def test_cli_generate_train_evaluate(tmp_path: Path) -> None:
    train_csv, test_csv = tmp_path / "train.csv", tmp_path / "test.csv"
    r = runner.invoke(app, ["bandit-data", "-o", str(train_csv), "--rows", "4000", "--json"])
    assert r.exit_code == 0, r.output
    truth = json.loads(r.stdout)
    runner.invoke(app, ["bandit-data", "-o", str(test_csv), "--rows", "4000", "--seed", "1"])
    run = tmp_path / "run"
    r = runner.invoke(
        app, ["train", "--algo", "dr", "--data", str(train_csv), "-o", str(run), "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["decisions"] == 4000
    r = runner.invoke(app, ["evaluate", str(run / "policy"), "--data", str(test_csv), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    dr = next(e for e in out["estimates"] if e["estimator"] == "dr")
    # The learned policy is near-optimal; its estimate on fresh logs is within 0.1 of it.
    assert math.isclose(dr["value"], truth["optimal_value"], abs_tol=0.1)
    assert out["rows"] == 4000 and [e["estimator"] for e in out["estimates"]] == [
        "ips",
        "snips",
        "dr",
    ]


def test_cli_bad_data_is_exit_2_one_line(tmp_path: Path) -> None:
    train_csv = tmp_path / "train.csv"
    runner.invoke(app, ["bandit-data", "-o", str(train_csv), "--rows", "500"])
    runner.invoke(
        app, ["train", "--algo", "ips", "--data", str(train_csv), "-o", str(tmp_path / "run")]
    )
    bad = _csv(tmp_path, "x0,x1,x2,x3,x4,action,reward,propensity\n0,0,0,0,0,1,1,-0.5\n", "bad.csv")
    r = runner.invoke(app, ["evaluate", str(tmp_path / "run" / "policy"), "--data", str(bad)])
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [
        f"error: {bad}: row 1 (line 2), column 'propensity': '-0.5' is not valid; a propensity "
        "is the probability the logging policy gave the logged action, in (0, 1]; a 0 means "
        "the action could not have been logged"
    ]
    r = runner.invoke(app, ["train", "--algo", "linucb", "-o", str(tmp_path / "r2")])
    assert r.exit_code == 2
    assert "linucb learns by acting: give a one-step env" in r.output


# --- plan -----------------------------------------------------------------------------------


def test_learning_cost_by_hand() -> None:
    """d = 5 context values, K = 4 arms, m = d + 1 = 6 with the intercept. State per arm:
    A⁻¹ (36) + b (6) + θ (6) = 48 floats, ×4 arms = 192, plus the scratch u (6) = 198
    floats = 792 B, plus a 4 B RNG state: 796 B. Update: A⁻¹x (36) + the rank-one update
    (36 + 6) + θ = A⁻¹b (36) = 114 MACs; LinUCB's score: xᵀA⁻¹x per arm (4 · 42 = 168)."""
    from rlbudget.bandits.plan import learning_cost

    ucb = learning_cost("linucb", 5, 4)
    assert (ucb.ram_bytes, ucb.macs, ucb.nonlinear) == (796, 114 + 168, 4)
    greedy = learning_cost("epsilon-greedy", 5, 4)
    assert (greedy.ram_bytes, greedy.macs) == (796, 114)


def _plan(tmp_path: Path, task: str, inference: str = "{latency: 1ms}") -> Plan:

    text = f"device: nrf52840\ninference: {inference}\ntask: {task}\n"
    return make_plan(parse_budget(text, str(tmp_path / "b.yaml")))


def test_a_bandit_task_in_a_multi_step_env_is_refused_by_plan(tmp_path: Path) -> None:
    """CartPole's episodes are 500 steps: it was planned as a bandit (LinUCB first) and
    only training stopped, at the second step of the first episode."""
    with pytest.raises(PlanError) as e:
        _plan(tmp_path, "{kind: bandit, env: CartPole-v1}")
    assert str(e.value) == (
        "CartPole-v1: its episodes last up to 500 steps; a bandit (task.kind: bandit) decides "
        "once per episode: give a one-step env (max_episode_steps: 1), or drop task.kind to "
        "plan RL"
    )


def test_plan_from_logged_data_ranks_dr_first(tmp_path: Path) -> None:
    write_logged(log_decisions(make_problem(), 300, seed=0), tmp_path / "logs.csv")
    plan = _plan(tmp_path, "{kind: bandit, data: logs.csv}")
    assert [o.algorithm for o in plan.options] == ["dr", "ips"]
    first = plan.options[0]
    assert first.paradigm == "bandit" and first.estimates.macs == 5 * 4
    assert first.estimates.env_steps == 300  # the logged rows
    assert {a for a, _ in plan.excluded} == {"epsilon-greedy", "softmax", "linucb", "thompson"}


def test_one_step_env_is_planned_as_a_bandit_and_learning_adds_its_state(tmp_path: Path) -> None:
    env = "{env: 'rlbudget.bandits.env:LinearBandit-v0'}"  # no kind: max_episode_steps is 1
    frozen = _plan(tmp_path, env)
    learning = _plan(tmp_path, env, "{latency: 1ms, learn: true}")
    assert frozen.options[0].algorithm == "linucb"
    by_algo = {o.algorithm: o for o in learning.options}
    base = {o.algorithm: o for o in frozen.options}
    assert by_algo["linucb"].estimates.ram_bytes - base["linucb"].estimates.ram_bytes == 796
    assert (by_algo["linucb"].estimates.latency_s.typical
            > base["linucb"].estimates.latency_s.typical)  # fmt: skip
    assert any("inference.learn" in r for r in by_algo["linucb"].reasons)


def test_train_a_bandit_plan_option(tmp_path: Path) -> None:
    """plan -o then train PLAN: the plan's first option (dr, from task.data) is trained on
    the budget's data (rlbudget run on a bandit budget: tests/test_run_bandit.py)."""
    write_logged(log_decisions(make_problem(), 500, seed=0), tmp_path / "logs.csv")
    budget = tmp_path / "b.yaml"
    budget.write_text("device: host\ntask: {kind: bandit, data: logs.csv}\n")
    plan = tmp_path / "plan.yaml"
    assert runner.invoke(app, ["plan", str(budget), "-o", str(plan)]).exit_code == 0
    r = runner.invoke(app, ["train", str(plan), "-o", str(tmp_path / "run"), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["algorithm"], out["decisions"]) == ("dr", 500)
    assert out["trained_on"] == str(tmp_path / "logs.csv")


def test_online_limits_from_the_budget_and_the_clock(tmp_path: Path) -> None:
    """training.env_steps bounds an online run's decisions; a time limit stops it at the
    next check (every 100 decisions): with 0 s, after exactly the first 100."""
    assert len(run_online("linucb", make_problem(), 4, 5, 10_000, time_s=0.0).actions) == 100
    budget = tmp_path / "b.yaml"
    env = "'rlbudget.bandits.env:LinearBandit-v0'"
    budget.write_text(
        f"device: host\ntraining: {{env_steps: 300}}\ntask: {{kind: bandit, env: {env}}}\n"
    )
    r = runner.invoke(
        app,
        [
            "train",
            "--algo",
            "thompson",
            "--budget",
            str(budget),
            "-o",
            str(tmp_path / "run"),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["decisions"] == 300 and out["cumulative_regret"] > 0
