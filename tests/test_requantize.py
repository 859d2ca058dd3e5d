"""The requantization rule ``compress`` gives int8 layers: by default one rounding
(``high_word``) where it is exact, else two; ``--requantize tflite`` (and the
``tflite-rounding`` method, :func:`tflite_rounding`) every layer on TFLite Micro's two
roundings. The runtime side (TFLite Micro computes those bit for bit) is in
test_export_tflite.py; here the policies, the options' checks and the report's returns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rlbudget.cli import app
from rlbudget.compress.methods import MethodOptions, check_plan
from rlbudget.compress.quantize import quantize_int8, tflite_rounding
from rlbudget.errors import PolicyError
from rlbudget.policy import load_policy, save_policy
from rlbudget.policy.model import QDense
from rlbudget.profile.evaluate import evaluate
from tests.factories import cartpole_mlp, observations, pendulum_linear, pendulum_mlp

runner = CliRunner()
PENDULUM = "Pendulum-v1"


def int8_pendulum(requantize: str = "auto") -> tuple[QDense, ...]:
    return quantize_int8(pendulum_mlp("tanh", "tanh_rescale"), observations(PENDULUM)[::5],
                         requantize=requantize).body.layers  # fmt: skip


def test_auto_rounds_once_where_every_shift_allows_it_tflite_everywhere_twice() -> None:
    """``auto``: "high_word" exactly on the layers whose every shift is ≤ -2 (where one
    rounding is exact, see rounded_high_mul), "tflite" on the others; ``tflite``: every
    layer, whatever its shift, with the same weights, multipliers and shifts (the rule
    changes only the bias correction, which runs on the int8 path)."""
    auto, tflite = int8_pendulum(), int8_pendulum("tflite")
    assert [la.requantize for la in auto] == [
        "high_word" if int(la.shift.max()) <= -2 else "tflite" for la in auto
    ]
    assert "high_word" in [la.requantize for la in auto]  # else this test shows nothing
    assert [la.requantize for la in tflite] == ["tflite"] * len(tflite)
    for a, t in zip(auto, tflite, strict=True):
        assert np.array_equal(a.W, t.W) and np.array_equal(a.multiplier, t.multiplier)
        assert np.array_equal(a.shift, t.shift)


def test_the_rule_is_recorded_and_an_unknown_one_refused() -> None:
    obs = observations(PENDULUM)[::5]
    p = quantize_int8(pendulum_mlp("relu", "clip"), obs, requantize="tflite")
    assert p.provenance["transforms"][-1]["requantize"] == "tflite"
    assert "requantize" not in quantize_int8(pendulum_mlp("relu", "clip"), obs).provenance[
        "transforms"][-1]  # fmt: skip
    with pytest.raises(PolicyError) as e:
        quantize_int8(pendulum_mlp("relu", "clip"), obs, requantize="high_word")
    assert str(e.value) == "int8: unknown requantize rule 'high_word'; use auto or tflite"


def test_tflite_rounding_changes_the_rule_only() -> None:
    p = quantize_int8(cartpole_mlp("tanh"), observations("CartPole-v1")[::5])
    q = tflite_rounding(p)
    moved = [i for i, la in enumerate(p.body.layers) if la.requantize == "high_word"]
    assert moved and [la.requantize for la in q.body.layers] == ["tflite"] * len(p.body.layers)
    for a, b in zip(p.body.layers, q.body.layers, strict=True):
        for name in ("W", "b", "multiplier", "shift", "w_scale"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
    last = q.provenance["transforms"][-1]
    assert (last["method"], last["requantize"], last["layers"]) == ("tflite-rounding", "tflite",
                                                                    moved)  # fmt: skip
    assert tflite_rounding(q) is q  # on the rule already
    float_policy = cartpole_mlp("tanh")
    assert tflite_rounding(float_policy) is float_policy


def test_requantize_is_an_int8_option_of_an_mlp() -> None:
    with pytest.raises(PolicyError) as e:
        check_plan(pendulum_mlp("relu", "clip"), ["prune"], MethodOptions(requantize="tflite"))
    assert str(e.value) == (
        "--requantize is an option of int8, which is not among the methods given (prune)"
    )
    with pytest.raises(PolicyError) as e:
        check_plan(pendulum_linear(), ["int8"], MethodOptions(requantize="tflite"))
    assert str(e.value) == (
        "--requantize applies to int8 of an mlp; a linear body's int8 weights are not "
        "requantized (drop --requantize)"
    )
    int8 = quantize_int8(pendulum_mlp("relu", "clip"), observations(PENDULUM)[::5])
    with pytest.raises(PolicyError, match="method 'tflite-rounding' does not apply to this "
                                          "policy's mlp body"):  # fmt: skip
        check_plan(pendulum_mlp("relu", "clip"), ["tflite-rounding"], MethodOptions())
    check_plan(int8, ["tflite-rounding"], MethodOptions())


def test_cli_requantize_tflite_reports_the_returns_of_the_policy_it_writes(
    tmp_path: Path,
) -> None:
    """The report's return after int8 is the written policy's on the same seeded
    episodes (seed + i), to the bit: the rule is chosen before the policy is scored."""
    save_policy(pendulum_mlp("tanh", "tanh_rescale"), tmp_path / "float")
    out = tmp_path / "tflm"
    r = runner.invoke(app, ["compress", str(tmp_path / "float"), "-m", "int8", "--requantize",
                            "tflite", "-n", "3", "--states", "300", "--seed", "4", "-o",
                            str(out), "--json"])  # fmt: skip
    assert r.exit_code in (0, 1), r.output
    step = json.loads(r.stdout)["steps"][0]
    assert step["params"]["requantize"] == "tflite"
    written = load_policy(out)
    assert {la.requantize for la in written.body.layers} == {"tflite"}
    again = evaluate(written, PENDULUM, seeds=range(4, 7), seed=4)
    assert step["return_after"]["returns"] == list(again.returns)
    r = runner.invoke(app, ["compress", str(tmp_path / "float"), "-m", "int8", "--requantize",
                            "twice", "-o", str(tmp_path / "x")])  # fmt: skip
    assert r.exit_code == 2 and "'twice' is not one of 'auto', 'tflite'" in r.output
