"""TFLite export: ``policy.tflite`` runs in TFLite Micro's Python interpreter and in LiteRT,
int8 bit-exact with rlbudget's numpy int8 path (logits before the head and actions), fp32
within 1e-5; the schema numbers match the generated bindings; the CLI writes the file and
refuses what it cannot express in one line, exit 2."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from rlbudget.cli import app
from rlbudget.compress.quantize import quantize_int8
from rlbudget.envs import SpaceSpec
from rlbudget.errors import PolicyError, RlbudgetError
from rlbudget.export.tflite import (
    ARENA_FLOOR,
    arena_bytes,
    build_model,
    export_tflite,
    litert_runner,
    rounding_warnings,
    tflite_rounding,
    tflm_runner,
)
from rlbudget.export.tflite_schema import MISSING_EXTRA, OPERATORS, TENSOR_TYPES
from rlbudget.policy import Head, Policy, load_policy, save_policy
from rlbudget.policy.model import multiply_by_quantized_multiplier, rounded_high_mul
from tests.factories import (
    cartpole_mlp,
    cartpole_table,
    observations,
    pendulum_mlp,
    random_mlp,
)

pytest.importorskip("flatbuffers", reason="the tflite extra (flatbuffers) is not installed")
runtime = pytest.importorskip(
    "tflite_micro.python.tflite_micro.runtime",
    reason="tflite-micro (TFLite Micro's Python interpreter) is not installed",
)
pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is not installed")

runner = CliRunner()
CARTPOLE, PENDULUM = "CartPole-v1", "Pendulum-v1"


def calibrated(make: Callable[[], Policy], env: str, per_channel: bool = False) -> Policy:
    return quantize_int8(make(), observations(env)[::5], per_channel=per_channel)


INT8 = {
    "tanh-argmax": lambda: calibrated(lambda: cartpole_mlp("tanh"), CARTPOLE),
    "relu-argmax-per-channel": lambda: calibrated(lambda: cartpole_mlp("relu"), CARTPOLE, True),
    "relu-clip": lambda: calibrated(lambda: pendulum_mlp("relu", "clip"), PENDULUM),
    "tanh-tanh_rescale": lambda: calibrated(lambda: pendulum_mlp("tanh", "tanh_rescale"), PENDULUM),
    "relu-tanh_rescale-per-channel": lambda: calibrated(
        lambda: pendulum_mlp("relu", "tanh_rescale"), PENDULUM, True
    ),
}


def env_of(p: Policy) -> str:
    return CARTPOLE if p.action_space.kind == "discrete" else PENDULUM


def body_out(p: Policy, obs: np.ndarray) -> np.ndarray:
    x = obs[None]
    for step in p.preprocess:
        x = step.apply(x)
    out: np.ndarray = p.body.apply(x)[0]
    return out


def write(p: Policy, tmp_path: Path) -> Path:
    path = tmp_path / "policy.tflite"
    path.write_bytes(build_model(p, body_output=True))
    return path


def run_all(run: Callable[[Any], tuple[np.ndarray, ...]], obs: np.ndarray) -> tuple[Any, Any]:
    outs = [run(o) for o in obs]
    logits = [o[-1].reshape(-1) for o in outs]  # an identity head: the action is the body's
    return np.stack([o[0].reshape(-1) for o in outs]), np.stack(logits)


@pytest.mark.parametrize("name", list(INT8))
def test_int8_bit_exact_in_tflite_micro_and_litert(name: str, tmp_path: Path) -> None:
    """TFLite Micro rounds twice (numpy's "tflite" rule), LiteRT's reference kernels once
    (numpy's "high_word"): each runtime equals numpy with its rule, to the bit, on the
    logits (the body's float32 output) and the actions, on 250 observations (half of them
    uniform over the widened bounds, half visited)."""
    p = INT8[name]()
    assert any(la.requantize == "high_word" for la in p.body.layers)  # compress's default
    path = write(p, tmp_path)
    obs = observations(env_of(p))[::40]
    for run, rule in ((tflm_runner(path), tflite_rounding(p)), (litert_runner(path), p)):
        actions, logits = run_all(run, obs)
        expected = np.asarray(rule.act(obs)).reshape(len(obs), -1)
        assert np.array_equal(actions.astype(expected.dtype), expected), name
        assert np.array_equal(logits, np.stack([body_out(rule, o) for o in obs])), name


def test_the_runtimes_round_as_stated(tmp_path: Path) -> None:
    """Where the two rules give different int8 activations, TFLite Micro follows the
    "tflite" rule and LiteRT the "high_word" rule: the differing observations are found
    by numpy, then run in both."""
    p = INT8["tanh-argmax"]()
    twice = tflite_rounding(p)
    obs = observations(CARTPOLE)
    x = p.preprocess[0].apply(obs)  # the int8 path is exact in a batch too (int64 sums)
    rows = np.flatnonzero((p.body.apply(x) != twice.body.apply(x)).any(axis=1))
    assert len(rows) >= 3, len(rows)  # rare, but not absent: about 1 activation in 2**7
    differ_obs = obs[rows[:20]]
    path = write(p, tmp_path)
    _, tflm = run_all(tflm_runner(path), differ_obs)
    _, litert = run_all(litert_runner(path), differ_obs)
    assert np.array_equal(tflm, np.stack([body_out(twice, o) for o in differ_obs]))
    assert np.array_equal(litert, np.stack([body_out(p, o) for o in differ_obs]))
    assert [int(la.shift.max()) for la in p.body.layers[:2]] == [-5, -10]
    assert rounding_warnings(p) == (
        "TFLite Micro rounds twice where int8 layer(s) 0 (1 activation in 64), 1 (1 activation "
        "in 2,048) round once ('high_word'): its results can be one step off numpy's; "
        "rlbudget compress POLICY -m tflite-rounding gives the policy it matches (LiteRT "
        "rounds once, as numpy)",
    )
    assert rounding_warnings(twice)[0].startswith(
        "LiteRT rounds once where int8 layer(s) 0 (1 activation in 64), 1 (1 activation in "
    )


def test_one_and_two_roundings_differ_on_a_tie() -> None:
    """The real multiplier 0.5 · 2**-2 = 1/8 on x = 3 (0.375). Two roundings (TFLite
    Micro): SaturatingRoundingDoublingHighMul gives round(3 · 0.5) = round(1.5) = 2, a tie
    for the division by 4 that follows, which rounds 0.5 away from zero: 1. One rounding
    (LiteRT, "high_word"): round(0.375) = 0."""
    m = np.array([2**30], np.int64)  # 0.5 in Q0.31
    shift = np.array([-2], np.int64)  # x · 0.5 · 2**-2 = x / 8 in total
    x = np.array([3], np.int64)
    assert int(multiply_by_quantized_multiplier(x, m, shift)[0]) == 1
    assert int(rounded_high_mul(x, m, shift)[0]) == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: cartpole_mlp("tanh"),
        lambda: cartpole_mlp("relu"),
        lambda: pendulum_mlp("relu", "clip"),
        lambda: pendulum_mlp("tanh", "tanh_rescale"),
        lambda: pendulum_mlp("relu", "identity"),
    ],
)
def test_fp32_within_1e5(make: Callable[[], Policy], tmp_path: Path) -> None:
    p = make()
    path = write(p, tmp_path)
    obs = observations(env_of(p))[::40]
    expected = np.asarray(p.act(obs)).reshape(len(obs), -1)
    for run in (tflm_runner(path), litert_runner(path)):
        actions, logits = run_all(run, obs)
        np.testing.assert_allclose(logits, [body_out(p, o) for o in obs], rtol=0, atol=1e-5)
        if p.action_space.kind == "discrete":  # no near-ties among these random logits
            assert np.array_equal(actions.astype(np.int64), expected)
        else:
            np.testing.assert_allclose(actions, expected, rtol=0, atol=1e-5)


def test_schema_numbers_match_the_generated_bindings(tmp_path: Path) -> None:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    for name, (code, union) in OPERATORS.items():
        assert getattr(fb.BuiltinOperator, name) == code, name
        options = {"ADD": "AddOptions", "ARG_MAX": "ArgMaxOptions", "CAST": "CastOptions",
                   "DIV": "DivOptions", "FULLY_CONNECTED": "FullyConnectedOptions",
                   "GATHER": "GatherOptions", "MUL": "MulOptions", "SUB": "SubOptions",
                   "SUM": "ReducerOptions"}.get(name)  # fmt: skip
        assert union == (getattr(fb.BuiltinOptions, options) if options else 0), name
    names = {"float32": "FLOAT32", "int32": "INT32", "int64": "INT64", "int8": "INT8"}
    for dtype, value in TENSOR_TYPES.items():
        assert getattr(fb.TensorType, names[str(dtype)]) == value
    # a written int8 model read back: per-channel weight scales, 16-byte aligned buffers
    p = INT8["relu-argmax-per-channel"]()
    data = build_model(p)
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0))
    assert model.version == 3 and data[4:8] == b"TFL3" and len(model.subgraphs) == 1
    tensors = {t.name.decode(): t for t in model.subgraphs[0].tensors}
    w0, layer = tensors["W0"], p.body.layers[0]
    assert list(w0.shape) == [64, 4] and w0.quantization.quantizedDimension == 0
    assert np.array_equal(w0.quantization.scale, layer.w_scale)
    raw = fb.Model.GetRootAsModel(data, 0)
    buffer = raw.Buffers(w0.buffer)
    assert buffer.DataAsNumpy().ctypes.data % 16 == np.frombuffer(data, np.uint8).ctypes.data % 16
    assert np.array_equal(buffer.DataAsNumpy().view(np.int8).reshape(64, 4), layer.W.T)
    meta = json.loads(bytes(model.buffers[model.metadata[0].buffer].data).decode())
    assert meta["rlbudget.pipeline"].startswith("normalize -> mlp_int8")


def test_cli_writes_policy_tflite(tmp_path: Path) -> None:
    p = tflite_rounding(INT8["relu-clip"]())
    save_policy(p, tmp_path / "policy")
    r = runner.invoke(app, ["export", str(tmp_path / "policy"), "--format", "tflite",
                            "-o", str(tmp_path / "out"), "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["format"] == "tflite" and os.listdir(tmp_path / "out") == ["policy.tflite"]
    data = (tmp_path / "out" / "policy.tflite").read_bytes()
    assert info["file_bytes"] == len(data) and data == build_model(p)
    assert info["warnings"] == list(rounding_warnings(p)) and len(info["warnings"]) == 1
    assert info["warnings"][0].startswith("LiteRT rounds once where int8 layer(s) 0 ")


def test_unsupported_policy_one_line_exit_2(tmp_path: Path) -> None:
    save_policy(cartpole_table(), tmp_path / "table")
    r = runner.invoke(app, ["export", str(tmp_path / "table"), "-f", "tflite",
                            "-o", str(tmp_path / "out")])  # fmt: skip
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert lines == [
        "error: export_tflite: body kind 'table' is not supported; the TFLite export handles "
        "mlp and mlp_int8 bodies on a Box observation (preprocess: normalize only)"
    ], r.stderr
    assert not (tmp_path / "out").exists()


def test_missing_flatbuffers_names_the_extra(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "flatbuffers", None)
    with pytest.raises(PolicyError) as e:
        export_tflite(cartpole_mlp("relu"), tmp_path / "out")
    assert (
        str(e.value)
        == MISSING_EXTRA
        == ("TFLite export needs the tflite extra: pip install 'rlbudget[tflite]'")
    )
    assert not (tmp_path / "out").exists()


def test_written_atomically_and_not_over_a_policy(tmp_path: Path, monkeypatch: Any) -> None:
    out = tmp_path / "out"
    first = export_tflite(cartpole_mlp("relu"), out)
    before = first.files[0].read_bytes()

    def killed(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        export_tflite(cartpole_mlp("tanh"), out)
    assert os.listdir(out) == ["policy.tflite"] and first.files[0].read_bytes() == before
    monkeypatch.undo()
    save_policy(cartpole_mlp("relu"), tmp_path / "pol")
    with pytest.raises(RlbudgetError, match=r"holds a policy \(policy\.json\)"):
        export_tflite(cartpole_mlp("relu"), tmp_path / "pol")


def test_profile_ram_is_the_smallest_arena_tflite_micro_runs_in(tmp_path: Path) -> None:
    """RAM: the arena found by bisection runs the model, one byte less does not; flash:
    the file plus the interpreter core figure of rlbudget/data/tflite_micro.yaml."""
    from rlbudget.devices import list_devices
    from rlbudget.profile.footprint import footprint

    p = INT8["tanh-argmax"]()
    device = list_devices()[0]
    memory = footprint(p, "tflite", device)
    data = build_model(p)
    assert memory.flash_bytes == len(data) + 16384 and memory.ram_source == "measured"

    def runs(size: int) -> bool:
        try:
            runtime.Interpreter.from_bytes(data, arena_size=size).invoke()
        except RuntimeError:
            return False
        return True

    assert runs(memory.ram_bytes) and not runs(memory.ram_bytes - 1)
    # the smallest model there is (one 1 → 1 FULLY_CONNECTED) needs more than the arena
    # the search starts from (smaller arenas crash TFLite Micro instead of failing)
    space = SpaceSpec("box", (1,), None, (-1.0,), (1.0,), "float32")
    tiny = Policy(space, space, (), random_mlp([1, 1], "relu", 0), Head("identity"), {})
    assert arena_bytes(build_model(tiny)) > ARENA_FLOOR


def test_profile_format_tflite_cli(tmp_path: Path) -> None:
    """``profile --format tflite``: RAM is TFLite Micro's arena (measured), flash the file
    and the interpreter core (estimated), the return from TFLite Micro's actions."""
    p = tflite_rounding(INT8["relu-argmax-per-channel"]())
    save_policy(p, tmp_path / "policy")
    budget = tmp_path / "b.yaml"
    budget.write_text("name: b\ndevice: esp32\ninference: {ram: 64KiB, flash: 1MiB}\n"
                      "task: {env: CartPole-v1}\n")  # fmt: skip
    r = runner.invoke(app, ["profile", str(tmp_path / "policy"), "--budget", str(budget),
                            "--format", "tflite", "-n", "1", "--json"])  # fmt: skip
    assert r.exit_code in (0, 1), r.output
    checks = {c["limit"]: c for c in json.loads(r.stdout)["checks"]}
    data = build_model(p)
    assert checks["inference.ram"]["figure"] == arena_bytes(data)
    assert checks["inference.ram"]["source"] == "measured"
    assert checks["inference.flash"]["figure"] == len(data) + 16384


def test_other_unsupported_parts_are_named(tmp_path: Path) -> None:
    from rlbudget.compress.fp16 import to_fp16
    from tests.factories import frozenlake_mlp

    def error(p: Policy) -> str:
        with pytest.raises(PolicyError) as e:
            export_tflite(p, tmp_path / "out")
        return str(e.value)

    assert error(to_fp16(cartpole_mlp("relu"))) == (
        "export_tflite: a float16 mlp is not supported; export the float32 or int8 policy"
    )
    assert error(frozenlake_mlp()) == (
        "export_tflite: a discrete observation of shape [] is not supported; the TFLite "
        "export handles mlp and mlp_int8 bodies on a Box observation (preprocess: normalize "
        "only)"
    )
    assert not (tmp_path / "out").exists()


def test_missing_tflite_micro_names_the_package(monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "tflite_micro.python.tflite_micro", None)
    with pytest.raises(PolicyError) as e:
        arena_bytes(build_model(cartpole_mlp("relu")))
    assert str(e.value) == (
        "running policy.tflite needs tflite-micro (TFLite Micro's Python interpreter): "
        "pip install tflite-micro"
    )


def test_profile_format_tflite_refuses_a_table_in_one_line(tmp_path: Path) -> None:
    save_policy(cartpole_table(), tmp_path / "table")
    budget = tmp_path / "b.yaml"
    budget.write_text("name: b\ndevice: esp32\ninference: {ram: 64KiB}\n")
    r = runner.invoke(app, ["profile", str(tmp_path / "table"), "--budget", str(budget),
                            "--format", "tflite"])  # fmt: skip
    assert r.exit_code == 2 and r.stderr.strip().splitlines() == [
        "error: export_tflite: body kind 'table' is not supported; the TFLite export handles "
        "mlp and mlp_int8 bodies on a Box observation (preprocess: normalize only)"
    ], r.stderr


# --- the rounding rule end to end: compress → export → TFLite Micro ----------------------


def compress_cli(source: Path, out: Path, *args: str) -> None:
    r = runner.invoke(app, ["compress", str(source), *args, "-n", "2", "--states", "300",
                            "-o", str(out)])  # fmt: skip
    assert r.exit_code in (0, 1), r.output  # 1: a gate failure, still written


def tflm_matches_numpy(policy_dir: Path, tflite: Path, tmp_path: Path) -> np.ndarray:
    """TFLite Micro running ``tflite`` (what the CLI wrote) against numpy's int8 path of
    the policy file it came from, on 250 observations: actions bit-identical,
    and the body's output too (the same model with the logits as a second output, which
    the CLI file is, less that output). Returns the actions."""
    p = load_policy(policy_dir)
    assert tflite.read_bytes() == build_model(p)
    obs = observations(env_of(p))[::40]
    actions, _ = run_all(tflm_runner(tflite), obs)
    expected = np.asarray(p.act(obs)).reshape(len(obs), -1)
    assert np.array_equal(actions, expected)
    _, logits = run_all(tflm_runner(write(p, tmp_path)), obs)
    assert np.array_equal(logits, np.stack([body_out(p, o) for o in obs]))
    return actions


@pytest.mark.parametrize(
    "make",
    [lambda: pendulum_mlp("tanh", "tanh_rescale"), lambda: cartpole_mlp("tanh"),
     lambda: pendulum_mlp("relu", "clip")],
    ids=["tanh-tanh_rescale", "tanh-argmax", "relu-clip"],
)  # fmt: skip
def test_cli_requantize_tflite_is_bit_exact_in_tflite_micro(
    make: Callable[[], Policy], tmp_path: Path
) -> None:
    """The issue's "done when": ``compress -m int8 --requantize tflite`` → ``export --format
    tflite`` → TFLite Micro equals numpy int8 of the same policy file: an int8 output
    (the 3-64-64-1 tanh Pendulum net, where compress's default rule moves about a third
    of the actions by a step in TFLite Micro) and a float last layer (argmax, clip)."""
    save_policy(make(), tmp_path / "float")
    compress_cli(tmp_path / "float", tmp_path / "tflm", "-m", "int8", "--requantize", "tflite")
    r = runner.invoke(app, ["export", str(tmp_path / "tflm"), "-f", "tflite",
                            "-o", str(tmp_path / "out")])  # fmt: skip
    assert r.exit_code == 0, r.output
    tflm_matches_numpy(tmp_path / "tflm", tmp_path / "out" / "policy.tflite", tmp_path)


def test_cli_export_refuses_a_policy_tflite_micro_rounds_otherwise(tmp_path: Path) -> None:
    """compress's default int8 (one rounding where exact): export --format tflite says so in
    one line naming the layers and the fixes, exit 2, nothing written. Written anyway
    (--allow-rounding-mismatch), TFLite Micro's actions are not the policy's; re-ruled
    (-m tflite-rounding), they are, bit for bit."""
    save_policy(pendulum_mlp("tanh", "tanh_rescale"), tmp_path / "float")
    src = tmp_path / "int8"
    compress_cli(tmp_path / "float", src, "-m", "int8")
    p = load_policy(src)
    shifts = [int(la.shift.max()) for la in p.body.layers]
    assert [la.requantize for la in p.body.layers] == ["high_word"] * 3 and max(shifts) <= -2
    layers = ", ".join(f"{i} (1 activation in {2 ** (1 - s):,})" for i, s in enumerate(shifts))
    out = tmp_path / "out"
    r = runner.invoke(app, ["export", str(src), "-f", "tflite", "-o", str(out)])
    assert r.exit_code == 2 and not out.exists()
    assert r.stderr.strip().splitlines() == [
        f"error: export_tflite: TFLite Micro rounds twice where {src} rounds once "
        f"('high_word': int8 layer(s) {layers}), so its actions would not all be this "
        f"policy's; re-rule it: rlbudget compress {src} -m tflite-rounding -o OUT (or quantize "
        "with -m int8 --requantize tflite; in Python: save_policy(tflite_rounding(load_policy("
        f"'{src}')), 'OUT'), tflite_rounding from rlbudget.compress.quantize); or write it as "
        "it is with --allow-rounding-mismatch (LiteRT's reference kernels round once, as it "
        "does); nothing written"
    ], r.stderr
    r = runner.invoke(app, ["export", str(src), "-f", "tflite", "-o", str(out),
                            "--allow-rounding-mismatch"])  # fmt: skip
    assert r.exit_code == 0 and r.stderr.startswith("warning: TFLite Micro rounds twice")
    obs = observations(PENDULUM)[::40]
    mismatched, _ = run_all(tflm_runner(out / "policy.tflite"), obs)
    differ = np.mean(mismatched.reshape(-1) != np.asarray(p.act(obs)).reshape(-1))
    assert differ > 0.05, differ  # 36 % on 10,000 observations (benchmarks/tflite_sizes.py)
    compress_cli(src, tmp_path / "int8-tflm", "-m", "tflite-rounding")
    r = runner.invoke(app, ["export", str(tmp_path / "int8-tflm"), "-f", "tflite",
                            "-o", str(tmp_path / "out2")])  # fmt: skip
    assert r.exit_code == 0, r.output
    actions = tflm_matches_numpy(tmp_path / "int8-tflm", tmp_path / "out2" / "policy.tflite",
                                 tmp_path)  # fmt: skip
    assert np.array_equal(actions, mismatched)  # the same file: only the reference moved


def test_profile_tflite_returns_are_numpys_for_a_tflite_rule_policy(tmp_path: Path) -> None:
    """profile --format tflite takes returns from TFLite Micro's actions: on a tflite-rule
    policy they equal numpy's on the same seeded episodes, to the bit. On the default
    rule they would not (TFLite Micro running its file gives other returns), so profile
    refuses that policy in one line."""
    from rlbudget.budget import load_budget
    from rlbudget.profile.evaluate import evaluate
    from rlbudget.profile.verdict import profile

    path = tmp_path / "b.yaml"
    path.write_text("name: b\ndevice: esp32\ninference: {ram: 64KiB, flash: 1MiB}\n"
                    "task: {env: Pendulum-v1}\n")  # fmt: skip
    budget = load_budget(path)
    high = INT8["tanh-tanh_rescale"]()
    p = tflite_rounding(high)
    report = profile(p, budget, fmt="tflite", env_id=PENDULUM, episodes=3, seed=7, calls=1000)
    numpy_run = evaluate(p, PENDULUM, episodes=3, seed=7)
    assert report.returns is not None and report.returns.runtime == "tflite"
    assert (report.returns.mean, report.returns.std) == (numpy_run.return_mean,
                                                         numpy_run.return_std)  # fmt: skip
    run = tflm_runner(export_tflite(high, tmp_path / "h", allow_rounding_mismatch=True).files[0])
    tflm_run = evaluate(high, PENDULUM, episodes=3, seed=7,
                        act=lambda o: run(o)[0].reshape(-1).astype(np.float32))  # fmt: skip
    assert tflm_run.returns != evaluate(high, PENDULUM, episodes=3, seed=7).returns
    with pytest.raises(
        PolicyError,
        match=r"^profile --format tflite: TFLite Micro rounds "
        r"twice where h8 rounds once .*; nothing measured$",
    ):
        profile(high, budget, fmt="tflite", env_id=PENDULUM, episodes=1, policy_name="h8")
