"""The cascade policy (issue 22.1): its branch, MACs and share by hand, saving and loading,
threshold calibration, and bad input."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from rlbudget.compress.cascade import (
    NEVER,
    calibrate,
    small_share,
    threshold_for_share,
)
from rlbudget.compress.methods import MethodOptions, check_plan
from rlbudget.compress.quantize import quantize_int8
from rlbudget.errors import PolicyError
from rlbudget.policy import load_policy, save_policy
from rlbudget.policy.cascade import Cascade, confidence, decides
from rlbudget.policy.model import Policy
from tests.factories import cartpole_obs, cartpole_tanh, pendulum_obs, pendulum_relu


def _cascade(discrete: bool = True, threshold: float = 0.5) -> Policy:
    """A 4-4-2 int8 student (or two 3-4-1 ones) before a 64-64 full body."""
    if discrete:  # the student reads the full policy's normalization
        full, obs = cartpole_tanh(0), cartpole_obs(200)
        students = [quantize_int8(cartpole_tanh(1, (4, 4, 2)), obs)]
    else:  # no preprocess: int8 folds each student's input range in front of it
        full, obs = pendulum_relu(0), pendulum_obs(200)
        students = [quantize_int8(pendulum_relu(s), obs) for s in (1, 2)]
    small = tuple(s.body for s in students)
    inputs = tuple(s.preprocess[-1] if not discrete else None for s in students)
    body = Cascade(
        small,
        full.body,
        "gap" if discrete else "agreement",
        threshold,  # type: ignore[arg-type]
        inputs,
    )  # type: ignore[arg-type]
    return Policy(full.observation_space, full.action_space, full.preprocess, body, full.head,
                  {"env": "CartPole-v1" if discrete else "Pendulum-v1"})  # fmt: skip


def test_macs_by_hand() -> None:
    p = _cascade()
    body = p.body
    assert isinstance(body, Cascade)
    # small 4·4 + 4·2 = 24; full 4·64 + 64·64 + 64·2 = 4480
    assert body.small_macs() == 24 and p.macs == 24 + 4480
    assert body.mean_macs(0.75) == 24 + 0.25 * 4480 == 1144


def test_confidence_and_share_by_hand() -> None:
    gaps = confidence("gap", [np.array([[1.0, 3.0], [2.0, 2.25], [5.0, -1.0]], np.float32)])
    assert gaps.tolist() == [2.0, 0.25, 6.0]
    assert decides("gap", gaps, 2.0).tolist() == [True, False, True]  # ≥: a tie decides
    spread = confidence("agreement", [np.array([[0.0], [1.0]], np.float32),
                                      np.array([[0.5], [-1.0]], np.float32)])  # fmt: skip
    assert spread.tolist() == [0.5, 2.0]
    assert decides("agreement", spread, 0.5).tolist() == [True, False]


@pytest.mark.parametrize("discrete", [True, False])
def test_branch_takes_small_or_full(discrete: bool) -> None:
    """Each decision is the small body's where it is confident, the full body's elsewhere,
    and a single observation acts as its row of a batch."""
    p = _cascade(discrete, threshold=0.3 if discrete else 0.2)
    body = p.body
    assert isinstance(body, Cascade)
    obs = cartpole_obs(300, seed=5) if discrete else pendulum_obs(300, seed=5)
    x = obs
    for step in p.preprocess:
        x = step.apply(x)
    ok = body.confident(x)
    assert 0 < ok.mean() < 1  # both branches taken
    first = x if body.inputs[0] is None else body.inputs[0].apply(x)
    expected = np.where(ok[:, None], body.small[0].apply(first), body.full.apply(x))
    got = body.apply(x)
    np.testing.assert_array_equal(got, expected.astype(np.float32))
    batch = np.asarray(p.act(obs))
    one = np.array([p.act(o) for o in obs])
    np.testing.assert_array_equal(batch, one)
    assert small_share(p, obs) == pytest.approx(float(ok.mean()))


def test_student_alone_when_always_confident() -> None:
    """A disagreement threshold no pair reaches: the cascade acts as its first int8 student
    policy, the student's own input normalization included."""
    p = _cascade(False, threshold=1e9)  # agreement within 1e9: always the first student
    student = quantize_int8(pendulum_relu(1), pendulum_obs(200))
    obs = pendulum_obs(300, seed=7)
    np.testing.assert_array_equal(np.asarray(p.act(obs)), np.asarray(student.act(obs)))


def test_save_load_round_trip(tmp_path: Path) -> None:
    for discrete in (True, False):
        p = _cascade(discrete)
        folder = save_policy(p, tmp_path / str(discrete))
        q = load_policy(folder)
        assert isinstance(q.body, Cascade) and q.body.threshold == p.body.threshold  # type: ignore[union-attr]
        obs = cartpole_obs(100) if discrete else pendulum_obs(100)
        np.testing.assert_array_equal(np.asarray(q.act(obs)), np.asarray(p.act(obs)))


def _edit(tmp_path: Path, change: dict[str, object], discrete: bool = True) -> Path:
    folder = save_policy(_cascade(discrete), tmp_path / "p")
    doc = json.loads((folder / "policy.json").read_text())
    doc["body"].update(change)
    (folder / "policy.json").write_text(json.dumps(doc))
    return folder


@pytest.mark.parametrize(("change", "message"), [
    ({"rule": "vote"}, "body (cascade): rule must be one of gap, agreement, not 'vote'"),
    ({"threshold": -1}, "body (cascade): threshold must be a number ≥ 0, at most 1e+10, not -1"),
    ({"rule": "agreement"}, "rule 'agreement' reads 2 small bod(ies)"),
])  # fmt: skip
def test_bad_cascade_file(tmp_path: Path, change: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy(_edit(tmp_path, change))
    assert message in str(err.value)


def test_rule_must_match_the_actions(tmp_path: Path) -> None:
    folder = _edit(tmp_path, {"rule": "gap"}, discrete=False)  # two students, box actions
    with pytest.raises(PolicyError, match="reads 1 small"):
        load_policy(folder)
    doc = json.loads((folder / "policy.json").read_text())
    doc["body"]["small"] = doc["body"]["small"][:1]
    (folder / "policy.json").write_text(json.dumps(doc))
    with pytest.raises(PolicyError, match="rule 'gap' is for discrete actions; this policy's "
                                          "are box"):  # fmt: skip
        load_policy(folder)


def test_threshold_for_share_is_monotone() -> None:
    figures = np.random.default_rng(0).exponential(1.0, 1000).astype(np.float32)
    shares = np.linspace(0, 1, 21)
    gap = [threshold_for_share("gap", figures, s) for s in shares]
    spread = [threshold_for_share("agreement", figures, s) for s in shares]
    assert all(a >= b for a, b in pairwise(gap))  # more share: lower gap
    assert all(a <= b for a, b in pairwise(spread))
    for s, t in zip(shares, gap, strict=True):  # the share it promises, up to rounding
        assert np.mean(decides("gap", figures, t)) >= s - 1e-9
    assert gap[0] == NEVER and spread[0] == 0.0


def test_calibration_keeps_the_largest_share_that_holds_the_target() -> None:
    """Retention falls as the share grows; a stricter target never keeps a larger share."""
    figures = np.arange(100, dtype=np.float32)

    def retention(t: float) -> float:  # the share decided is (100 - t) / 100
        return 1.0 - 0.1 * (100 - t) / 100

    kept = []
    for target in (0.9, 0.95, 0.97, 0.99, 1.0):
        t, tries = calibrate(retention, "gap", figures, target)
        assert tries[-1]["threshold"] == t and (tries[-1]["retention"] >= target
                                                or tries[-1]["share"] == 0)  # fmt: skip
        kept.append(tries[-1]["share"])
    assert kept == sorted(kept, reverse=True) and kept[0] == 1.0 and kept[-1] == 0.0


def test_cascade_applies_to_mlps_only() -> None:
    from tests.factories import frozenlake_table

    with pytest.raises(PolicyError, match="method 'cascade' does not apply to this policy's "
                                          "table body"):  # fmt: skip
        check_plan(frozenlake_table(), ["cascade"], MethodOptions())
    check_plan(cartpole_tanh(), ["cascade"], MethodOptions(widths=(4, 4)))  # accepted


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
@pytest.mark.parametrize("discrete", [True, False])
def test_c_export_agrees_with_numpy(tmp_path: Path, discrete: bool) -> None:
    """Both branches taken. With an int8 full body every action is bit-exact. With a float
    full body the states the int8 student decides are bit-exact, and the float body agrees
    as any float export does (continuous: within 1e-5; discrete: the same argmax but where
    its two scores are within float rounding)."""
    from rlbudget.export.host import HostPolicy

    p = _cascade(discrete, threshold=0.3 if discrete else 0.2)
    body = p.body
    assert isinstance(body, Cascade)
    obs = cartpole_obs(300, seed=3) if discrete else pendulum_obs(300, seed=3)
    full_int8 = quantize_int8(replace(p, body=body.full, provenance={}), obs).body
    int8_full = replace(p, body=replace(body, full=full_int8))
    x = obs
    for step in p.preprocess:
        x = step.apply(x)
    small = body.confident(x)
    assert 0 < small.mean() < 1  # both branches taken
    for policy, exact in ((int8_full, True), (p, False)):
        host = HostPolicy(policy, tmp_path / f"c-{exact}")
        c = np.array([host.act(o) for o in obs])
        n = np.array([policy.act(o) for o in obs])
        np.testing.assert_array_equal(c[small], n[small])
        if exact:
            np.testing.assert_array_equal(c, n)
        elif discrete:
            assert np.mean(c == n) >= 0.98
        else:
            np.testing.assert_allclose(c, n, atol=1e-5)


def test_cli_refuses_bad_input(tmp_path: Path) -> None:
    """One line, exit 2, nothing written: cascade on a table, --widths 0, ONNX export."""
    from typer.testing import CliRunner

    from rlbudget.cli import app
    from tests.factories import frozenlake_table

    runner = CliRunner()
    lake = save_policy(frozenlake_table(), tmp_path / "lake")
    r = runner.invoke(app, ["compress", str(lake), "-m", "cascade", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and not (tmp_path / "o").exists()
    assert r.output.strip() == (
        "error: method 'cascade' does not apply to this policy's table body; methods for "
        "table bodies: pack, drop-unvisited"
    )
    folder = save_policy(_cascade(), tmp_path / "cascade")
    r = runner.invoke(app, ["export", str(folder), "--format", "onnx", "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and not (tmp_path / "x").exists()
    assert r.output.strip() == (
        "error: export_onnx: a cascade's branch (the full body runs only where the small one "
        "is not confident) is not exported to ONNX; export it as C (--format c), or export "
        "the full policy"
    )


@pytest.mark.slow
def test_compress_cascade_end_to_end(tmp_path: Path) -> None:
    """``compress -m cascade`` on a CartPole policy that balances: the written policy is a
    cascade whose reported mean MACs follow from its share, and it loads and acts."""
    from typer.testing import CliRunner

    from rlbudget.cli import app
    from tests.factories import balancing_mlp

    src = save_policy(balancing_mlp(), tmp_path / "cartpole")
    out = tmp_path / "cascade"
    r = CliRunner().invoke(app, ["compress", str(src), "-m", "cascade", "--widths", "4",
                                 "--episodes", "5", "--states", "300", "-o", str(out),
                                 "--json"])  # fmt: skip
    assert r.exit_code in (0, 1), r.output
    params = json.loads(r.stdout)["steps"][0]["params"]
    p = load_policy(out)
    assert isinstance(p.body, Cascade) and p.body.threshold == params["threshold"]
    share, full = params["share_small"], params["macs_full"]
    assert params["macs_mean"] == pytest.approx(params["macs_small"] + (1 - share) * full)
    assert params["macs_worst"] == p.macs == params["macs_small"] + full
    assert params["macs_small"] == 4 * 4 + 4 * 2
