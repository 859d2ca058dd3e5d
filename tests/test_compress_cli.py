"""``rlbudget compress`` / ``rlbudget export`` and the pipeline behind them: the report's
numbers against the written policy, the retention gate, exact error lines."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from rlbudget.cli import app
from rlbudget.compress import methods, policy_bytes
from rlbudget.compress import pipeline as pl
from rlbudget.compress.quantize import quantize_int8
from rlbudget.envs import env_spec
from rlbudget.errors import PolicyError
from rlbudget.export.arm import TOOLCHAIN_HINT
from rlbudget.policy import load_policy, save_policy
from rlbudget.policy.model import MLP, Dense, Head, Linear, Policy
from rlbudget.profile.evaluate import evaluate
from tests.conftest import ZOO, needs_zoo
from tests.factories import balancing_mlp, frozenlake_best_table

runner = CliRunner()
FAST = ["--episodes", "3", "--states", "300"]
METHOD_LIST = (
    "int8, tflite-rounding, int16, fp16, prune, prune-neurons, distill, cascade, pack, "
    "drop-unvisited"
)


@pytest.fixture
def cartpole(tmp_path: Path) -> Path:
    return save_policy(balancing_mlp(), tmp_path / "cartpole")


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return save_policy(frozenlake_best_table(), tmp_path / "lake")


def invoke(*args: str | Path) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def error_line(r: Any) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return str(lines[0])


# --- compress: the report against the policy it wrote -------------------------------------


def test_int8_json_matches_written_policy(cartpole: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8"
    r = invoke("compress", cartpole, "-m", "int8", "-o", out, "--json", *FAST)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    loaded, parent = load_policy(out), balancing_mlp()
    assert loaded.body.kind == "mlp_int8"
    assert [t["method"] for t in loaded.provenance["transforms"]] == ["int8"]
    assert data["schema"] == "rlbudget.compress/1" and data["env"] == "CartPole-v1"
    assert data["output"] == str(out) and data["passed"] is True
    (step,) = data["steps"]
    assert step["method"] == "int8"
    params = step["params"]
    assert params == {"calibration": "visited states", "calibration_observations": 300,
                      "weight_scales": "per tensor",
                      "agreement_per_tensor": params["agreement_per_tensor"],
                      "agreement_per_channel": params["agreement_per_channel"]}  # fmt: skip
    # one scale per layer is kept: it agrees within a point of a scale per channel
    assert params["agreement_per_tensor"] >= params["agreement_per_channel"] - 0.01
    assert step["bytes_before"] == data["bytes_before"] == policy_bytes(parent)
    assert step["bytes_after"] == data["bytes_after"] == policy_bytes(loaded)
    assert step["ratio"] == pytest.approx(policy_bytes(parent) / policy_bytes(loaded))
    # 4·32 + 32·2 weights: every one is a MAC, before and after
    assert step["macs_before"] == step["macs_after"] == 4 * 32 + 32 * 2
    assert step["agreement"]["states"] == 300 and step["agreement"]["max_abs_diff"] is None
    # the returns are those of the same seeded episodes (seeds 0, 1, 2), for the parent and
    # the written child
    assert step["return_before"]["returns"] == list(evaluate(parent, "CartPole-v1",
                                                             seeds=range(3)).returns)  # fmt: skip
    assert step["return_after"]["returns"] == list(evaluate(loaded, "CartPole-v1",
                                                            seeds=range(3)).returns)  # fmt: skip
    assert step["return_before"]["mean"] == 500.0
    before, after = step["return_before"]["mean"], step["return_after"]["mean"]
    assert step["retention"] == data["retention"] == 1 - (before - after) / abs(before)


def test_int8_shares_one_tanh_table_unless_it_costs_agreement(tmp_path: Path) -> None:
    """Two tanh layers: ``compress -m int8`` tries one table for both against a table each
    and keeps the shared one unless its agreement is more than a point below."""
    p = balancing_mlp()
    W1 = p.body.layers[0].W  # type: ignore[union-attr]
    rng = np.random.default_rng(1)
    W2 = (0.05 * rng.standard_normal((32, 8))).astype(np.float32)
    W2[0, 0], W2[1, 1] = 2.0, 2.0  # the two balancing units, through a second tanh
    W3 = (0.05 * rng.standard_normal((8, 2))).astype(np.float32)
    W3[0], W3[1] = [0, 1], [1, 0]
    body = MLP((Dense(W1, np.zeros(32, np.float32), "tanh"),
                Dense(W2, np.zeros(8, np.float32), "tanh"),
                Dense(W3, np.zeros(2, np.float32))))  # fmt: skip
    two = save_policy(replace(p, body=body), tmp_path / "two")
    r = invoke("compress", two, "-m", "int8", "-o", tmp_path / "q", "--json", *FAST)
    assert r.exit_code in (0, 1), r.output
    params = json.loads(r.stdout)["steps"][0]["params"]
    shared, own = params["agreement_shared_table"], params["agreement_own_tables"]
    assert params["tanh_tables"] == ("shared" if shared >= own - 0.01 else "per layer")
    l0, l1, _ = load_policy(tmp_path / "q").body.layers  # type: ignore[union-attr]
    assert np.array_equal(l0.lut, l1.lut) == (params["tanh_tables"] == "shared")


def test_int8_calibration_file(cartpole: Path, tmp_path: Path) -> None:
    obs = np.random.default_rng(0).uniform(-0.2, 0.2, (64, 4)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    r = invoke("compress", cartpole, "-m", "int8", "--calibration", tmp_path / "obs.npy",
               "-o", tmp_path / "q", "--json", *FAST)  # fmt: skip
    assert r.exit_code in (0, 1), r.output
    step = json.loads(r.stdout)["steps"][0]
    params = step["params"]
    assert {k: params[k] for k in ("calibration", "calibration_observations")} == {
        "calibration": "given", "calibration_observations": 64}  # fmt: skip
    per_channel = params["weight_scales"] == "per channel"
    assert per_channel == (params["agreement_per_tensor"] < params["agreement_per_channel"] - 0.01)
    # the same policy as quantizing with the file directly
    direct = quantize_int8(balancing_mlp(), obs, per_channel=per_channel)
    probe = np.random.default_rng(1).uniform(-1, 1, (500, 4)).astype(np.float32)
    outputs = []
    for policy in (load_policy(tmp_path / "q"), direct):
        x = probe
        for step in policy.preprocess:
            x = step.apply(x)
        outputs.append(policy.body.apply(x))
    assert np.array_equal(outputs[0], outputs[1])


def test_gate_failure_exits_1_and_still_writes(
    cartpole: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A relative -o: the verdict line names it, and a deep tmp folder (pytest-xdist adds
    # one level) would wrap that line at the 200 columns used when stdout is not a terminal.
    monkeypatch.chdir(tmp_path)
    out = Path("pruned")
    r = invoke("compress", cartpole, "-m", "prune", "--sparsity", "0.9", "-o", out, *FAST)
    assert r.exit_code == 1, r.output
    assert load_policy(out).provenance["transforms"][-1]["method"] == "prune_magnitude"
    assert "FAIL" in r.stdout.splitlines()[-5]  # the row (the table ends with a rule)
    assert r.stdout.splitlines()[-3].startswith("gate (final vs input, 3 paired episodes): ")
    verdict = r.stdout.strip().splitlines()[-1]
    assert verdict.startswith("FAIL: ") and verdict.endswith(f"policy written to {out}")
    assert "(limit: a drop of at most 5.0%)" in verdict
    assert r.stdout.strip().splitlines()[-2].startswith("The first FAIL row lost the return")
    gate = load_policy(out).provenance["compress_gate"]
    assert gate["passed"] is False and gate["methods"] == ["prune"] and gate["retention"] < 0.95
    # exporting a policy that failed its gate warns (on stderr) but still exports
    r = invoke("export", out, "--format", "c", "-o", tmp_path / "fw")
    assert r.exit_code == 0 and r.stderr.startswith(f"warning: {out} failed its compression gate")


def test_gate_per_step_and_total(cartpole: Path, tmp_path: Path) -> None:
    """Lossless fp16 then a ruinous prune: the first row passes, the second and the whole
    fail; the second step's 'before' is the first step's 'after' (evaluated once)."""
    out = tmp_path / "o"
    r = invoke("compress", cartpole, "-m", "fp16,prune", "--sparsity", "0.9", "-o", out,
               "--json", "--max-return-drop", "50%", *FAST)  # fmt: skip
    assert r.exit_code == 1, r.output
    data = json.loads(r.stdout)
    first, second = data["steps"]
    assert first["passed"] is True and second["passed"] is False and data["passed"] is False
    assert second["return_before"] == first["return_after"]
    assert first["bytes_after"] == second["bytes_before"]
    assert data["max_return_drop"] == 0.5
    assert second["total_retention"] == data["retention"] < 0.5


def test_each_parent_evaluated_and_rolled_out_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import rlbudget.profile.evaluate as ev

    calls = {"evaluate": 0, "visited": 0}
    real_evaluate, real_visited = ev.evaluate, pl.visited_observations

    def counting_evaluate(*a: Any, **k: Any) -> Any:
        calls["evaluate"] += 1
        return real_evaluate(*a, **k)

    def counting_visited(*a: Any, **k: Any) -> Any:
        calls["visited"] += 1
        return real_visited(*a, **k)

    monkeypatch.setattr(ev, "evaluate", counting_evaluate)
    monkeypatch.setattr(pl, "visited_observations", counting_visited)
    report = pl.compress(balancing_mlp(), "prune-neurons,fp16,int8", "CartPole-v1",
                         episodes=2, states=200)  # fmt: skip
    # input + 3 children evaluated; each of the 3 parents rolled out twice (fit, held out)
    assert calls == {"evaluate": 4, "visited": 6}
    assert [s.method for s in report.steps] == ["prune-neurons", "fp16", "int8"]
    assert report.steps[0].params == {"keep": 0.5, "neurons": [16], "recover": False}
    assert report.policy.body.kind == "mlp_int8"


def test_table_pack_and_drop_unvisited(lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    # the gate is off: return on unseen episodes may drop (states the fitting rollouts
    # never reached act the default), which the next assertions do not depend on
    r = invoke("compress", lake, "-m", "pack,drop-unvisited", "-o", out, "--json",
               "--episodes", "20", "--states", "400", "--max-return-drop", "100%")  # fmt: skip
    assert r.exit_code == 0, r.output
    pack, drop = json.loads(r.stdout)["steps"]
    assert pack["bytes_before"] == 16 * 4 * 4  # float32 values
    assert pack["bytes_after"] == 16 * 2 // 8  # 2 bits per state
    # packing is lossless: every action and every (slippery, same-seed) episode the same
    assert pack["agreement"]["rate"] == 1.0
    assert pack["return_after"] == pack["return_before"]
    assert drop["params"]["visited_observations"] == 400
    dropped = load_policy(out)
    assert dropped.body.kind == "packed_table"
    # Every state of the fitting rollouts (seed + 10000) keeps its action; agreement is
    # measured on other, held-out rollouts (seed + 20000), where it need not be 100 %.
    context = methods.Context(load_policy(lake), np.zeros((0,)), "", 0, pl.MethodOptions(), (), ())
    packed = methods.METHODS["pack"].run(context)[0]
    fit = pl.visited_observations(packed, "FrozenLake-v1", states=400, seed=pl.FIT_SEED_OFFSET)
    assert np.array_equal(dropped.act(fit), packed.act(fit))
    held_out = pl.visited_observations(packed, "FrozenLake-v1", states=400,
                                       seed=pl.CHECK_SEED_OFFSET)  # fmt: skip
    assert drop["agreement"]["rate"] == np.mean(dropped.act(held_out) == packed.act(held_out))


def test_human_table(cartpole: Path, tmp_path: Path) -> None:
    r = invoke("compress", cartpole, "-m", "fp16", "-o", tmp_path / "h", *FAST)
    assert r.exit_code == 0, r.output
    row = next(line for line in r.stdout.splitlines() if "fp16" in line)
    # (4·32 + 32 + 32·2 + 2) float32 = 904 B; float16 halves it
    for cell in ("904 B → 452 B", "2.00", "192 → 192", "100.0%", "500.0 ± 0.0", "PASS"):
        assert cell in row, row
    assert r.stdout.strip().splitlines()[-1].startswith("PASS: ")


def test_output_replaced_only_when_complete(cartpole: Path, tmp_path: Path) -> None:
    out = save_policy(frozenlake_best_table(), tmp_path / "existing")
    r = invoke("compress", cartpole, "-m", "int9", "-o", out, *FAST)
    assert r.exit_code == 2
    assert load_policy(out).body.kind == "table"  # untouched
    (tmp_path / "other").mkdir()
    r = invoke("compress", cartpole, "-m", "int8", "-o", tmp_path / "other", *FAST)
    assert r.exit_code == 2
    assert error_line(r) == (
        f"error: {tmp_path / 'other'}: exists and is not a policy folder; choose another -o "
        "(nothing written)"
    )


# --- compress: bad input, one line, exit 2 -------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "args", "line"),
    [
        ("cartpole", ["-m", "int9"],
         f"unknown method 'int9'; did you mean 'int8'? (methods: {METHOD_LIST})"),
        ("cartpole", ["-m", "prune,,quantise"],
         f"unknown method 'quantise' (methods: {METHOD_LIST})"),
        ("lake", ["-m", "distill", "--widths", "8,8"],
         "method 'distill' does not apply to this policy's table body; methods for table "
         "bodies: pack, drop-unvisited"),
        ("lake", ["-m", "int8"],
         "method 'int8' does not apply to this policy's table body; methods for table "
         "bodies: pack, drop-unvisited"),
        ("cartpole", ["-m", "pack"],
         "method 'pack' does not apply to this policy's mlp body; methods for mlp bodies: "
         "int8, fp16, prune, prune-neurons, distill, cascade"),
        ("cartpole", ["-m", "int8,fp16"],
         "method 'fp16' does not apply to the mlp_int8 body left by 'int8'; methods for "
         "mlp_int8 bodies: tflite-rounding, prune, distill, cascade"),
        ("cartpole", ["-m", "int8", "--recover"],
         "--recover applies to prune and prune-neurons; the methods given are int8"),
        ("cartpole", ["-m", "int8,prune", "--recover"],
         "--recover fine-tunes a float mlp, but 'prune' gets an mlp_int8 body here; prune "
         "before int8 (--method prune,int8 --recover)"),
        ("cartpole", ["-m", "distill"],
         "distill needs the student's hidden widths: --widths 8,8 or --budget FILE (widths "
         "chosen to fit it)"),
        ("cartpole", ["-m", "distill", "--widths", "8,x"],
         "--widths '8,x': give whole numbers separated by commas, e.g. 16,16"),
        ("cartpole", ["-m", "prune-neurons", "--sparsity", "0.8"],
         "--sparsity is an option of prune, which is not among the methods given "
         "(prune-neurons)"),
        ("cartpole", ["-m", "int8", "--calibration", "missing.npy"],
         "--calibration missing.npy: no such file"),
        ("cartpole", ["-m", "int8", "--max-return-drop", "five"],
         "--max-return-drop 'five': give a fraction (0.05) or a percentage (5%), 0 or more"),
        ("cartpole", ["-m", "int8", "--max-return-drop", "-5%"],
         "--max-return-drop '-5%': give a fraction (0.05) or a percentage (5%), 0 or more"),
        ("cartpole", ["-m", "int8", "--max-return-drop", "5"],
         "--max-return-drop '5' is a fraction of 500%; did you mean '5%'? (a fraction above 1 "
         "is written with %, e.g. 150%)"),
        ("cartpole", ["-m", "distill", "--widths", "8,5000"],
         "distill: widths [8, 5000] must be one or more hidden layer widths from 1 to 4096, "
         "e.g. 8,8"),
        ("cartpole", ["-m", "distill", "--widths", "8,8", "--budget", "b.yaml"],
         "distill takes --widths or --budget (widths chosen to fit it), not both"),
    ],
    ids=["typo", "no-match", "distill-table", "int8-table", "pack-mlp", "chain", "recover",
         "recover-int8", "distill-widths", "bad-widths", "unused-option", "calibration",
         "drop-word", "drop-negative", "drop-bare-5", "distill-too-wide", "widths-and-budget"],
)  # fmt: skip
def test_bad_input_one_line_exit_2(
    policy: str, args: list[str], line: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    path = request.getfixturevalue(policy)
    out = tmp_path / "out"
    if "b.yaml" in args:
        budget = tmp_path / "b.yaml"
        budget.write_text("name: b\ndevice: esp32\ninference: {flash: 256KiB}\n")
        args = [str(budget) if a == "b.yaml" else a for a in args]
    r = invoke("compress", path, *args, "-o", out, *FAST)
    assert r.exit_code == 2, r.output
    assert error_line(r) == f"error: {line}"
    assert r.stdout == "" and not out.exists()


def test_missing_policy_exit_2(tmp_path: Path) -> None:
    r = invoke("compress", tmp_path / "nope", "-m", "int8", "-o", tmp_path / "out")
    assert r.exit_code == 2
    assert error_line(r) == (
        f"error: {tmp_path / 'nope'}: no such policy folder; give the folder that holds policy.json"
    )


def test_env_from_provenance_or_flag(tmp_path: Path) -> None:
    p = balancing_mlp()
    bare = save_policy(Policy(p.observation_space, p.action_space, p.preprocess, p.body,
                              p.head, {}), tmp_path / "bare")  # fmt: skip
    r = invoke("compress", bare, "-m", "fp16", "-o", tmp_path / "o", *FAST)
    assert r.exit_code == 2
    assert error_line(r) == (
        f"error: {bare}: the policy does not say which env it is for; pass --env ID"
    )
    r = invoke("compress", bare, "-m", "fp16", "--env", "CartPole-v1", "-o", tmp_path / "o",
               "--json", *FAST)  # fmt: skip
    assert r.exit_code == 0 and json.loads(r.stdout)["env"] == "CartPole-v1"


# --- the library's definitions ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"), [("5%", 0.05), ("0.05", 0.05), ("7%", 0.07), ("0", 0.0), (" 12.5% ", 0.125)]
)
def test_parse_fraction(text: str, value: float) -> None:
    assert pl.parse_fraction(text) == value


def test_return_drop_for_positive_negative_and_zero_returns() -> None:
    assert pl.return_drop(200.0, 190.0) == pytest.approx(0.05)
    assert pl.return_drop(-150.0, -165.0) == pytest.approx(0.1)  # more negative: a drop
    assert pl.return_drop(-150.0, -135.0) == pytest.approx(-0.1)  # a gain
    assert pl.return_drop(0.0, -1.0) == 1.0  # absolute when the parent scores 0


def test_continuous_agreement_within_five_percent_of_span() -> None:
    """Pendulum (span 4): the child adds 0.05·v to the parent's 0.1·v, so they agree where
    0.05·|v| ≤ 0.2, |v| ≤ 4."""
    s = env_spec("Pendulum-v1", measure_steps=0)
    head = Head("clip", np.array([-2.0]), np.array([2.0]))

    def policy(k: float) -> Policy:
        W = np.array([[0.0], [0.0], [k]], dtype=np.float32)
        return Policy(s.observation, s.action, (), MLP((Dense(W, np.zeros(1, np.float32)),)),
                      head)  # fmt: skip

    v = np.array([-8, -3, -1, 0, 1, 3, 5, 8], dtype=np.float32)
    obs = np.stack([np.ones(8), np.zeros(8), v], axis=1).astype(np.float32)
    a = pl.action_agreement(policy(0.1), policy(0.15), obs)
    assert a.states == 8 and a.rate == 5 / 8
    assert a.tolerance == pytest.approx((0.2,))
    assert a.max_abs_diff == pytest.approx(0.4, rel=1e-6)
    assert a.mean_abs_diff == pytest.approx(0.05 * 29 / 8, rel=1e-6)


# --- export ---------------------------------------------------------------------------------


def test_export_c(cartpole: Path, tmp_path: Path) -> None:
    out = tmp_path / "c"
    r = invoke("export", cartpole, "--format", "c", "-o", out, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["format"] == "c"
    assert sorted(Path(f).name for f in data["files"]) == ["main.c", "policy.c", "policy.h"]
    assert all(Path(f).is_file() and Path(f).parent == out for f in data["files"])
    assert data["needs_libm"] is False  # relu and argmax
    # the const arrays hold at least the float32 weights and biases
    assert data["flash_bytes"] >= policy_bytes(balancing_mlp())
    cortex_m = data["cortex_m"]
    if shutil.which("arm-none-eabi-gcc") is None:
        assert cortex_m == {"available": False, "targets": None, "note": TOOLCHAIN_HINT}
    else:
        assert sorted(cortex_m["targets"]) == ["cortex-m0plus", "cortex-m4f"]
        for sizes in cortex_m["targets"].values():
            assert sizes["bss"] == data["ram_bytes"] and sizes["text"] >= data["flash_bytes"]
    r = invoke("export", cartpole, "--format", "c", "-o", out)
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[3].endswith("libm not needed")
    assert lines[4:] == (
        [f"Cortex-M sizes: skipped, {TOOLCHAIN_HINT}"] if cortex_m["targets"] is None else [
            f"{t} (arm-none-eabi-gcc -Os): .text {s['text']:,} B, .data 0 B, .bss {s['bss']:,} B"
            for t, s in cortex_m["targets"].items()]
    )  # fmt: skip


def test_export_onnx(cartpole: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="the onnx extra is not installed")
    out = tmp_path / "onnx"
    r = invoke("export", cartpole, "-f", "onnx", "-o", out)
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0] == f"wrote {out / 'policy.onnx'}"
    assert (out / "policy.onnx").stat().st_size > policy_bytes(balancing_mlp())


def test_export_unknown_format_exit_2(cartpole: Path, tmp_path: Path) -> None:
    r = invoke("export", cartpole, "--format", "tvm", "-o", tmp_path / "x")
    assert r.exit_code == 2
    assert "'tvm' is not one of 'c', 'onnx', 'tflite'" in r.output
    assert not (tmp_path / "x").exists()


# --- methods that train (torch, a few seconds) and continuous actions ----------------------


def test_distill_and_recover(cartpole: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="distillation needs torch")
    out = tmp_path / "student"
    r = invoke("compress", cartpole, "-m", "distill", "--widths", "8", "-o", out, "--json", *FAST)
    assert r.exit_code in (0, 1), r.output  # the gate depends on training; the numbers do not
    (step,) = json.loads(r.stdout)["steps"]
    assert step["params"] == {"widths": [8], "widths_from": "given"}
    assert step["bytes_after"] == (4 * 8 + 8 + 8 * 2 + 2) * 4 == policy_bytes(load_policy(out))
    assert step["macs_after"] == 4 * 8 + 8 * 2
    assert load_policy(out).provenance["transforms"][-1]["method"] == "distill"

    out = tmp_path / "recovered"
    r = invoke("compress", cartpole, "-m", "prune", "--sparsity", "0.6", "--recover", "-o", out,
               "--json", *FAST)  # fmt: skip
    assert r.exit_code in (0, 1), r.output
    (step,) = json.loads(r.stdout)["steps"]
    assert step["params"] == {"sparsity": 0.6, "recover": True}
    recovered = load_policy(out)
    assert [t["method"] for t in recovered.provenance["transforms"]] == [
        "prune_magnitude", "recover"
    ]  # fmt: skip
    assert isinstance(recovered.body, MLP)
    zeros = sum(int((la.W == 0).sum()) for la in recovered.body.layers)
    assert zeros == round(0.6 * (4 * 32 + 32 * 2))  # recovery keeps the pruned zeros


def test_budget_widths_count_the_bytes_of_the_steps_after() -> None:
    assert methods.bytes_per_weight(("int8",)) == 1
    assert methods.bytes_per_weight(("prune", "fp16")) == 2
    assert methods.bytes_per_weight(()) == 4


def test_pendulum_int8_reports_continuous_agreement(tmp_path: Path) -> None:
    s = env_spec("Pendulum-v1", measure_steps=0)
    rng = np.random.default_rng(1)
    W1 = (rng.standard_normal((3, 16)) / 2).astype(np.float32)
    W2 = (rng.standard_normal((16, 1)) / 4).astype(np.float32)
    body = MLP((Dense(W1, np.zeros(16, np.float32), "relu"), Dense(W2, np.zeros(1, np.float32))))
    p = Policy(s.observation, s.action, (), body, Head("clip", np.array([-2.0]), np.array([2.0])),
               {"env": "Pendulum-v1"})  # fmt: skip
    folder = save_policy(p, tmp_path / "pendulum")
    r = invoke("compress", folder, "-m", "int8", "-o", tmp_path / "q", "--json",
               "--episodes", "2", "--states", "400", "--max-return-drop", "100%")  # fmt: skip
    assert r.exit_code == 0, r.output
    agreement = json.loads(r.stdout)["steps"][0]["agreement"]
    assert agreement["tolerance"] == [pytest.approx(0.2)]  # 5 % of the span 4
    assert 0 < agreement["max_abs_diff"] < 0.2 and agreement["rate"] == 1.0
    assert agreement["mean_abs_diff"] <= agreement["max_abs_diff"]


def test_help_and_no_torch_without_distillation(cartpole: Path, tmp_path: Path) -> None:
    r = invoke("--help")
    assert "compress" in r.stdout and "export" in r.stdout
    code = (
        "import sys\n"
        "from rlbudget.cli import app\n"
        f"args = ['compress', {str(cartpole)!r}, '-m', 'prune,int8', '-o', "
        f"{str(tmp_path / 'q')!r}, '--episodes', '1', '--states', '50']\n"
        "try:\n"
        "    app(args, standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', "
        "'stable_baselines3')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert load_policy(tmp_path / "q").body.kind == "mlp_int8"


@needs_zoo("ppo-CartPole-v1")
def test_zoo_ppo_cartpole_structured_prune_and_int8(tmp_path: Path) -> None:
    """The issue's target: structured pruning + int8, ≥ 10× fewer bytes, ≥ 95 % retention."""
    pytest.importorskip("torch", reason="importing an SB3 zip reads its weights with torch")
    policy = tmp_path / "ppo"
    assert invoke("import", ZOO / "ppo-CartPole-v1", "-o", policy).exit_code == 0
    r = invoke("compress", policy, "-m", "prune-neurons,int8", "--keep", "0.25", "-o",
               tmp_path / "small", "--json", "--episodes", "5", "--states", "1000")  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["bytes_before"] / data["bytes_after"] >= 10
    assert data["retention"] >= 0.95 and data["passed"] is True
    assert data["steps"][0]["params"]["neurons"] == [16, 16]


def test_linear_int16_and_int8() -> None:
    s = env_spec("CartPole-v1", measure_steps=0)
    w = np.array([0.1, 0.5, 3.0, 1.0], dtype=np.float32)
    body = Linear(np.stack([-w, w], 1), np.zeros(2, np.float32))
    linear = Policy(s.observation, s.action, (), body, Head("argmax"))
    for method, weight_bytes in (("int16", 2), ("int8", 1)):
        report = pl.compress(linear, method, "CartPole-v1", episodes=2, states=100)
        (step,) = report.steps
        assert step.params == {"dtype": method}
        assert step.bytes_before == (4 * 2 + 2) * 4  # float32 W and b
        # W in the new dtype, b int32, one float32 scale per output
        assert step.bytes_after == 4 * 2 * weight_bytes + 2 * 4 + 2 * 4
        # int8 has 1/127 of max|W| per step: a held-out state near the decision boundary
        # may flip; int16 (1/32767) keeps every one of these 100
        assert step.agreement.rate >= (1.0 if method == "int16" else 0.97)
        assert report.retention == 1.0
    with pytest.raises(PolicyError, match=r"^quantize_linear applies to a float linear body; "
                       r"this policy has a linear body that is already quantized$"):  # fmt: skip
        pl.compress(linear, "int16,int8", "CartPole-v1", episodes=1, states=10)


def test_output_equal_to_input_refused(cartpole: Path) -> None:
    before = (cartpole / "policy.safetensors").read_bytes()
    r = invoke("compress", cartpole, "-m", "int8", "-o", cartpole, *FAST)
    assert r.exit_code == 2
    assert error_line(r) == (
        f"error: -o {cartpole} is the input policy; write the result to another folder "
        "(nothing written)"
    )
    assert (cartpole / "policy.safetensors").read_bytes() == before


def test_calibration_file_checked(cartpole: Path, tmp_path: Path) -> None:
    csv = tmp_path / "obs.csv"
    csv.write_text("0.1,0.2,0.3,0.4\n")
    r = invoke("compress", cartpole, "-m", "int8", "--calibration", csv, "-o", tmp_path / "o",
               *FAST)  # fmt: skip
    assert r.exit_code == 2
    assert error_line(r) == (
        f"error: --calibration {csv}: not a .npy file; save the observations with "
        "numpy.save(path, array)"
    )
    narrow = tmp_path / "narrow.npy"
    np.save(narrow, np.zeros((10, 3), np.float32))  # CartPole observations have 4 values
    r = invoke("compress", cartpole, "-m", "int8", "--calibration", narrow, "-o",
               tmp_path / "o", *FAST)  # fmt: skip
    assert r.exit_code == 2
    assert error_line(r).startswith("error: int8 calibration: expected a non-empty batch of "
                                    "observations of shape [N, 4], got shape [10, 3]")  # fmt: skip


def test_export_creates_parents_and_fills_an_empty_folder(cartpole: Path, tmp_path: Path) -> None:
    r = invoke("export", cartpole, "--format", "c", "-o", tmp_path / "a" / "b" / "fw")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "a" / "b" / "fw" / "policy.c").is_file()
    (tmp_path / "empty").mkdir()
    r = invoke("export", cartpole, "--format", "c", "-o", tmp_path / "empty")
    assert r.exit_code == 0, r.output
    assert sorted(f.name for f in (tmp_path / "empty").iterdir()) == [
        "main.c", "policy.c", "policy.h"]  # fmt: skip


def test_onnx_refuses_a_c_export_folder(cartpole: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="the onnx extra is not installed")
    fw = tmp_path / "fw"
    assert invoke("export", cartpole, "--format", "c", "-o", fw).exit_code == 0
    r = invoke("export", cartpole, "--format", "onnx", "-o", fw)
    assert r.exit_code == 2
    assert error_line(r) == (
        f"error: {fw}: holds a C export (policy.h); write policy.onnx to another folder "
        "(nothing written)"
    )
    assert not (fw / "policy.onnx").exists()


def test_linear_bias_far_above_the_weights_does_not_overflow() -> None:
    from rlbudget.compress.tabular import quantize_linear

    s = env_spec("CartPole-v1", measure_steps=0)
    w = np.full((4, 2), 1e-4, np.float32)
    w[:, 1] = -1e-4
    body = Linear(w, np.array([0.0, 10.0], np.float32))  # action 1 always wins
    linear = Policy(s.observation, s.action, (), body, Head("argmax"))
    obs = np.random.default_rng(0).uniform(-1, 1, (100, 4)).astype(np.float32)
    for dtype in ("int16", "int8"):
        q = quantize_linear(linear, dtype)
        assert q.body.b.dtype == np.int32 and q.body.b[1] > 0  # type: ignore[union-attr]
        assert np.array_equal(q.act(obs), linear.act(obs))


def test_macs_count_the_weights_a_sparse_layer_stores() -> None:
    p = balancing_mlp()
    pruned = pl.compress(p, "prune", "CartPole-v1", episodes=1, states=50,
                         options=pl.MethodOptions(sparsity=0.9)).policy  # fmt: skip
    stored = sum(int(np.count_nonzero(la.W)) for la in pruned.body.layers)  # type: ignore[union-attr]
    assert p.macs == sum(la.W.size for la in p.body.layers)  # type: ignore[union-attr]
    assert pruned.macs == stored < p.macs
