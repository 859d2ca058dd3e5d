"""C export: every generated program compiled with -Wall -Wextra -Werror -pedantic, run on
10,000 observations and compared with numpy (int8, tables, tile-coded linear: exact)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from rlbudget.compress.quantize import quantize_int8
from rlbudget.compress.tabular import pack_table, quantize_linear
from rlbudget.errors import PolicyError, RlbudgetError
from rlbudget.export import ExportResult, export_c
from rlbudget.export.arm import TOOLCHAIN_HINT, cortex_m_sizes, sizes_to_dict
from rlbudget.export.c import QUANTIZE, QUANTIZE_FULL_SCALE, quantize_helper
from rlbudget.policy import (
    Discretize,
    Head,
    Normalize,
    Policy,
    Table,
    TileCode,
)
from rlbudget.policy.model import QuantizedMLP, quantize_input
from tests.factories import (
    N_OBS,
    cartpole_mlp,
    cartpole_table,
    env_policy,
    frozenlake_mlp,
    frozenlake_table,
    int8,
    mountaincar_tiles,
    observations,
    pendulum_linear,
    pendulum_mlp,
    random_mlp,
    taxi_packed,
)

GCC = shutil.which("gcc")
ARM_GCC = shutil.which("arm-none-eabi-gcc")
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]


def left_shift(p: Policy) -> Policy:
    """``p`` with layer 1's requantization as a left shift by 2 and a smaller multiplier
    (about the same scale): the C export then keeps the saturating left shift it leaves out
    otherwise."""
    body = p.body
    assert isinstance(body, QuantizedMLP)
    la = body.layers[1]
    m = np.rint(la.multiplier * 2.0 ** (la.shift.astype(float) - 2)).astype(np.int32)
    la = replace(la, multiplier=m, shift=np.full_like(la.shift, 2), requantize="tflite")
    return replace(p, body=QuantizedMLP((body.layers[0], la, *body.layers[2:])))


def tflite_requantize(p: Policy) -> Policy:
    """``p`` with every int8 layer requantized as TFLite does (a policy quantized before
    ``requantize`` "high_word" existed)."""
    body = p.body
    assert isinstance(body, QuantizedMLP)
    layers = tuple(replace(la, requantize="tflite") for la in body.layers)
    return replace(p, body=QuantizedMLP(layers))


def zero_layer(p: Policy) -> Policy:
    """``p`` with its second layer's weights all zero (its bias kept)."""
    layers = list(p.body.layers)
    layers[1] = replace(layers[1], W=np.zeros_like(layers[1].W))
    return replace(p, body=replace(p.body, layers=tuple(layers)))


@dataclass(frozen=True)
class Case:
    make: Callable[[], Policy]
    env_id: str
    exact: bool  # bit-exact, or fp32 within 1e-5


CASES: dict[str, Case] = {
    "cartpole-mlp-tanh": Case(cartpole_mlp, "CartPole-v1", False),
    "cartpole-mlp-tanh-int8": Case(int8(cartpole_mlp, "CartPole-v1"), "CartPole-v1", True),
    "cartpole-mlp-tanh-int8-per-channel": Case(
        lambda: quantize_int8(cartpole_mlp(), observations("CartPole-v1")[::5], per_channel=True),
        "CartPole-v1",
        True,
    ),
    "cartpole-mlp-tanh-int8-exact-table": Case(  # as before knots and the high word
        lambda: tflite_requantize(
            quantize_int8(cartpole_mlp(), observations("CartPole-v1")[::5], tanh_knots=False)
        ),
        "CartPole-v1",
        True,
    ),
    "cartpole-mlp-tanh-int8-own-tables": Case(
        lambda: quantize_int8(cartpole_mlp(), observations("CartPole-v1")[::5], shared_table=False),
        "CartPole-v1",
        True,
    ),
    "cartpole-mlp-relu-int8-left-shift": Case(
        lambda: left_shift(quantize_int8(cartpole_mlp("relu"), observations("CartPole-v1")[::5])),
        "CartPole-v1",
        True,
    ),
    "cartpole-mlp-sigmoid-int8": Case(
        int8(lambda: cartpole_mlp("sigmoid"), "CartPole-v1"), "CartPole-v1", True
    ),
    "pendulum-mlp-relu-clip": Case(lambda: pendulum_mlp("relu", "clip"), "Pendulum-v1", False),
    "pendulum-mlp-relu-clip-int8": Case(
        int8(lambda: pendulum_mlp("relu", "clip"), "Pendulum-v1"), "Pendulum-v1", True
    ),
    "pendulum-mlp-tanh-squash": Case(
        lambda: pendulum_mlp("tanh", "tanh_rescale"), "Pendulum-v1", False
    ),
    "pendulum-mlp-tanh-squash-int8": Case(
        int8(lambda: pendulum_mlp("tanh", "tanh_rescale"), "Pendulum-v1"), "Pendulum-v1", True
    ),
    "pendulum-mlp-identity-int8": Case(
        int8(lambda: pendulum_mlp("relu", "identity"), "Pendulum-v1"), "Pendulum-v1", True
    ),
    "frozenlake-onehot-mlp": Case(frozenlake_mlp, "FrozenLake-v1", False),
    "frozenlake-onehot-mlp-int8": Case(
        int8(frozenlake_mlp, "FrozenLake-v1"), "FrozenLake-v1", True
    ),
    "frozenlake-table": Case(frozenlake_table, "FrozenLake-v1", True),
    "cartpole-discretize-table": Case(cartpole_table, "CartPole-v1", True),
    "cartpole-packed": Case(lambda: pack_table(cartpole_table()), "CartPole-v1", True),
    "taxi-packed": Case(taxi_packed, "Taxi-v4", True),
    "mountaincar-tiles": Case(mountaincar_tiles, "MountainCar-v0", True),
    "mountaincar-tiles-hashed": Case(lambda: mountaincar_tiles(512), "MountainCar-v0", True),
    "mountaincar-tiles-int16": Case(
        lambda: quantize_linear(mountaincar_tiles()), "MountainCar-v0", True
    ),
    "mountaincar-tiles-int8": Case(
        lambda: quantize_linear(mountaincar_tiles(), "int8"), "MountainCar-v0", True
    ),
    # an all-zero W is stored as CSR with no weight: C has no zero-length array
    "pendulum-mlp-zero-layer": Case(
        lambda: zero_layer(pendulum_mlp("relu", "clip")), "Pendulum-v1", False
    ),
    "pendulum-linear": Case(pendulum_linear, "Pendulum-v1", False),
    "pendulum-linear-int8": Case(
        lambda: quantize_linear(pendulum_linear(), "int8"), "Pendulum-v1", False
    ),
}


@dataclass(frozen=True)
class Built:
    policy: Policy
    result: ExportResult
    program: Path


def compile_program(folder: Path, result: ExportResult, flags: list[str]) -> Path:
    program = folder / "policy_host"
    cmd = ["gcc", *flags, str(folder / "policy.c"), str(folder / "main.c"), "-o", str(program)]
    run = subprocess.run([*cmd, *(["-lm"] if result.needs_libm else [])],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0, f"{' '.join(cmd)}\n{run.stderr}"
    return program


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    """Every case exported and compiled once (two compilers at a time)."""
    if GCC is None:
        pytest.skip("gcc is not installed: the C export is not compiled")
    root = tmp_path_factory.mktemp("c")
    policies = {name: case.make() for name, case in CASES.items()}
    results = {name: export_c(p, root / name) for name, p in policies.items()}
    with ThreadPoolExecutor(2) as pool:
        compiled = pool.map(lambda n: compile_program(root / n, results[n], CFLAGS), results)
        programs = dict(zip(results, compiled, strict=True))
    return {n: Built(policies[n], results[n], programs[n]) for n in CASES}


def run_program(program: Path, obs: np.ndarray) -> list[str]:
    rows = obs.reshape(len(obs), -1)
    text = "\n".join(" ".join(repr(float(v)) for v in row) for row in rows) + "\n"
    run = subprocess.run([str(program)], input=text, capture_output=True, text=True, check=True)
    return run.stdout.splitlines()


@pytest.mark.parametrize("name", sorted(CASES))
def test_c_matches_numpy(name: str, built: dict[str, Built]) -> None:
    case, b = CASES[name], built[name]
    obs = observations(case.env_id)
    lines = run_program(b.program, obs)
    assert len(lines) == N_OBS
    expected = b.policy.act(obs)
    if b.policy.action_space.kind == "discrete":
        got = np.array([int(v) for v in lines])
        if case.exact:
            assert np.array_equal(got, expected)
            return
        # fp32: identical except where the two best values are within 1e-5 (a near-tie).
        x = obs
        for step in b.policy.preprocess:
            x = step.apply(x)
        top2 = np.sort(b.policy.body.apply(x), axis=1)[:, -2:]
        differ = got != expected
        assert np.all(top2[differ, 1] - top2[differ, 0] <= 1e-5), int(differ.sum())
        return
    got_f = np.array([[np.float32(v) for v in line.split()] for line in lines])
    assert got_f.dtype == np.float32 and got_f.shape == expected.shape
    if case.exact:
        assert np.array_equal(got_f, expected)  # bit for bit
    else:
        assert np.abs(got_f - expected).max() <= 1e-5


@pytest.mark.parametrize("name", ["pendulum-mlp-relu-clip-int8", "cartpole-mlp-tanh-int8"])
def test_int8_input_beyond_the_clip(name: str, built: dict[str, Built]) -> None:
    """Where the int8 input quantization saturates before the normalize step's clip, the C
    leaves the clip out (the folded normalization of a raw Box observation, clip ±4 ranges);
    observations far beyond it give numpy's actions still."""
    b = built[name]
    source = (b.program.parent / "policy.c").read_text()
    dropped = "its clip is left to the int8 quantization" in source
    assert dropped  # ±4 calibrated ranges (Pendulum), ±5.3 standard deviations (CartPole)
    float_source = (built["cartpole-mlp-tanh"].program.parent / "policy.c").read_text()
    assert "if (z > 5.30000019f)" in float_source  # the float path clips
    rng = np.random.default_rng(7)
    obs = observations(CASES[name].env_id)[:400].copy()
    obs *= rng.choice(np.array([1.0, -1.0, 1e3, -1e3, 1e30, -1e30], np.float32), obs.shape)
    lines = run_program(b.program, obs)
    expected = b.policy.act(obs)
    got = np.array([[np.float32(v) for v in line.split()] for line in lines]).reshape(
        expected.shape
    )
    assert np.array_equal(got, expected)


def test_int8_needs_no_libm_and_fits_by_hand(built: dict[str, Built]) -> None:
    b = built["cartpole-mlp-tanh-int8"]
    source = (b.program.parent / "policy.c").read_text()
    assert not b.result.needs_libm and "math.h" not in source and "float " in source
    # RAM: one int8 arena holding the largest pair of live layers (64 + 64), and the last
    # layer's int32 accumulators (2 × 4 B); on a DSP core built for speed, not counted, the
    # widest input (64) expanded to int16 (128 B)
    assert b.result.ram_bytes == 128 + 8 == b.policy.buffer_bytes
    assert ("#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && !defined(__OPTIMIZE_SIZE__)\n"
            "static int32_t rlb_x16[32]; /* 128 B more RAM:") in source  # fmt: skip
    layers = b.policy.body.layers  # type: ignore[union-attr]
    assert all(la.w_scale.shape == (1,) and la.b.dtype == np.int16 for la in layers)
    widths = [(4, 64), (64, 64)]
    flash = 4 * 4 * 2  # normalize mean and 1/std
    flash += sum(i * o + 2 * o for i, o in widths)  # W, int16 bias
    # one multiplier and shift per layer: kernel arguments, not arrays (per channel: arrays)
    assert "rlb_m0" not in source and "int32_t multiplier, int32_t shift," in source
    per_channel = built["cartpole-mlp-tanh-int8-per-channel"].program.parent / "policy.c"
    assert "static RLB_CONST int32_t rlb_m0[64]" in per_channel.read_text()
    # last layer: W, int16 bias; argmax of its int32 accumulators (one positive scale, no
    # float needed: the same action as numpy's argmax of the dequantized values)
    flash += 64 * 2 + 2 * 2
    assert "return rlb_argmax_int32(rlb_acc, 2);" in source
    flash += 17  # one odd tanh table as its 17 knots, shared by both hidden layers
    assert b.result.flash_bytes == flash
    assert source.count("static RLB_CONST int8_t rlb_lut") == 1 and "rlb_lut0[17]" in source
    assert source.count(", -127, rlb_lut0); /* tanh */") == 2  # -128 reads as -127
    assert "rlb_knots(lut, acc)" in source
    own = (built["cartpole-mlp-tanh-int8-own-tables"].program.parent / "policy.c").read_text()
    assert own.count("static RLB_CONST int8_t rlb_lut") == 2  # a table per layer, each exported
    exact = built["cartpole-mlp-tanh-int8-exact-table"]
    exact_source = (exact.program.parent / "policy.c").read_text()
    assert "rlb_lut0[128]" in exact_source and "rlb_knots" not in exact_source
    # the requantization: one rounding of the product's high word (every shift ≤ -2), or
    # TFLite's two roundings for a policy quantized before that
    assert all(la.requantize == "high_word" for la in layers[:-1])
    assert "rlb_rhm(acc, multiplier, shift)" in source and "rlb_srdhm" not in source
    assert "rlb_mbqm(acc, multiplier, shift)" in exact_source and "rlb_rhm" not in exact_source
    assert exact.result.flash_bytes == flash - 17 + 128
    assert "if (shift > 0)" not in source  # no layer shifts left
    left = (built["cartpole-mlp-relu-int8-left-shift"].program.parent / "policy.c").read_text()
    assert "if (shift > 0)" in left
    header = (b.program.parent / "policy.h").read_text()
    assert f"#define RLB_RAM_BYTES {b.result.ram_bytes}\n" in header
    assert f"#define RLB_FLASH_BYTES {flash}\n" in header
    assert "#define RLB_N_ACTIONS 2\n" in header
    assert built["cartpole-mlp-tanh"].result.needs_libm  # tanhf in the fp32 path
    assert built["pendulum-mlp-relu-clip"].result.ram_bytes == 4 * 128


QUANTIZE_MAIN = """
#include <stdio.h>
#include <stdlib.h>
int main(void)
{
    char a[64], b[64];
    int zp;
    while (scanf("%63s %63s %d", a, b, &zp) == 3) {
        printf("%d\\n", (int)rlb_quantize(strtof(a, NULL), strtof(b, NULL), zp));
    }
    return 0;
}
"""


@pytest.mark.skipif(GCC is None, reason="gcc is not installed: the C export is not compiled")
@pytest.mark.parametrize("helper", [QUANTIZE, QUANTIZE_FULL_SCALE])
def test_input_quantization_matches_numpy_at_every_half(helper: str, tmp_path: Path) -> None:
    """``rlb_quantize`` (both forms) equals ``quantize_input`` bit for bit: at every half
    step of the scale and the float32 values either side (where the rounding turns), where
    it saturates (at -128 and 127, for zero points from -128 to 127), for NaN and ±inf."""
    source = tmp_path / "q.c"
    source.write_text("#include <stdint.h>\n" + helper + QUANTIZE_MAIN)
    program = tmp_path / "q"
    subprocess.run([str(GCC), *CFLAGS, str(source), "-o", str(program)], check=True)
    rows, expected = [], []
    for scale, zp in [(2 / 255, -1), (0.031496063, 0), (1 / 3, 17), (3e-3, -128), (0.05, 127)]:
        full = np.float32(scale)
        halves = np.arange(-1100, 1101, dtype=np.float32) * (full / np.float32(2))
        x = np.concatenate([halves, np.nextafter(halves, np.float32(np.inf)),
                            np.nextafter(halves, np.float32(-np.inf)),
                            np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0],
                                     np.float32)]).astype(np.float32)  # fmt: skip
        passed = quantize_helper(scale)[1] if helper is QUANTIZE else float(full)
        rows += [f"{float(v).hex()} {passed.hex()} {zp}" for v in x]
        expected += quantize_input(x, float(full), zp).tolist()
    run = subprocess.run([str(program)], input="\n".join(rows) + "\n", capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert [int(v) for v in run.stdout.split()] == expected
    assert quantize_helper(2 / 255) == (QUANTIZE, float(np.float32(2 / 255) / np.float32(2)))
    assert quantize_helper(1e-38)[0] is QUANTIZE_FULL_SCALE  # halving would lose a bit


def test_harness_rejects_bad_input(built: dict[str, Built]) -> None:
    program = built["cartpole-packed"].program
    run = subprocess.run([str(program)], input="0.1 0.2 zero 0.4\n", capture_output=True,
                         text=True, check=False)  # fmt: skip
    assert run.returncode == 2 and run.stderr == "observation value 2: expected a number\n"
    empty = subprocess.run([str(program)], input="", capture_output=True, text=True, check=False)
    assert empty.returncode == 0 and empty.stdout == ""


def test_discrete_observation_out_of_range_is_clamped(built: dict[str, Built]) -> None:
    lines = run_program(built["frozenlake-table"].program, np.array([-3.0, 99.0, np.nan]))
    p = built["frozenlake-table"].policy
    assert [int(v) for v in lines] == [p.act(0), p.act(15), p.act(0)]


def test_unsupported_parts_are_refused(tmp_path: Path) -> None:
    def error(p: Policy) -> str:
        with pytest.raises(PolicyError) as e:
            export_c(p, tmp_path / "out")
        return str(e.value)

    rng = np.random.default_rng(0)
    tc = TileCode(np.array([-1.2, -0.07]), np.array([0.6, 0.07]), 2, 2)
    on_tiles = env_policy("MountainCar-v0", (tc,), random_mlp([2, 3], "relu", rng), Head("argmax"))
    assert error(on_tiles) == "export_c: a mlp body after tile_code is not supported"
    half = env_policy("FrozenLake-v1", (), Table(np.zeros((16, 4), np.float16)), Head("argmax"))
    assert error(half) == ("export_c: array 'body.values' is float16, which C99 has no type for; "
                           "export the float32 policy (or quantize it to int8)")  # fmt: skip
    disc = Discretize(np.array([-1.0, -1.0]), np.array([1.0, 1.0]), (2, 2))
    norm = Normalize(np.zeros(2), np.ones(2))
    odd = env_policy("MountainCar-v0", (disc, norm), Table(np.zeros((4, 3), np.float32)),
                 Head("argmax"))  # fmt: skip
    assert error(odd) == (
        "export_c: the preprocess discretize → normalize is not supported; the C export "
        "handles an optional normalize followed by at most one of discretize, tile_code (or "
        "one_hot alone)"
    )
    no_state = env_policy("CartPole-v1", (), Table(np.zeros((4, 2), np.float32)), Head("argmax"))
    assert error(no_state) == (
        "export_c: a table body needs a Discrete observation or a discretize preprocess"
    )
    assert not (tmp_path / "out").exists()


def test_refuses_to_replace_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "firmware").mkdir()
    (tmp_path / "firmware" / "main.c").write_text("mine")
    with pytest.raises(RlbudgetError, match="exists and is not a folder rlbudget wrote"):
        export_c(frozenlake_table(), tmp_path / "firmware")
    assert (tmp_path / "firmware" / "main.c").read_text() == "mine"
    first = export_c(frozenlake_table(), tmp_path / "pol")
    again = export_c(taxi_packed(), tmp_path / "pol")  # an export folder is replaced
    assert [f.name for f in again.files] == ["policy.h", "policy.c", "main.c"] == [
        f.name for f in first.files]  # fmt: skip
    # ⌈500 states × 3 bits / 8⌉ = 188 bytes, plus one spare byte so reads stay inside.
    assert "static RLB_CONST uint8_t rlb_packed[189]" in (tmp_path / "pol" / "policy.c").read_text()
    assert again.flash_bytes == 189 and again.ram_bytes == 0


@pytest.mark.skipif(ARM_GCC is None, reason=TOOLCHAIN_HINT)
def test_builds_for_cortex_m(built: dict[str, Built]) -> None:
    """No libc on the target: only the libm-free programs (int8, tables, relu fp32). The
    const arrays are in .text (flash), nothing in .data, and .bss is exactly the static
    buffers export_c reported."""
    for name in ("cartpole-mlp-tanh-int8", "pendulum-mlp-relu-clip", "taxi-packed",
                 "mountaincar-tiles-int16"):  # fmt: skip
        b = built[name]
        assert not b.result.needs_libm
        sizes = cortex_m_sizes(b.program.parent)
        assert sizes is not None and set(sizes) == {"cortex-m0plus", "cortex-m4f"}
        for target, s in sizes.items():
            assert s.text >= b.result.flash_bytes and s.data == 0, (name, target, s)
            assert s.bss == b.result.ram_bytes, (name, target, s)


@pytest.mark.skipif(ARM_GCC is None, reason=TOOLCHAIN_HINT)
def test_int8_object_is_a_third_of_fp32(built: dict[str, Built]) -> None:
    """Issue 14 item 13: the 64-64 tanh int8 object (code and constants) against the fp32
    one is ≥ 3.5× smaller on Cortex-M0+ and M4F: the tanh table as 17 knots, the product's
    high word requantized with one rounding, the requantization constants as arguments
    (per-channel constants and two 256-byte tables: 2.67×; one shared 128-entry table:
    3.40×). The weights alone would give 4×."""
    int8 = cortex_m_sizes(built["cartpole-mlp-tanh-int8"].program.parent)
    fp32 = cortex_m_sizes(built["cartpole-mlp-tanh"].program.parent)
    assert int8 is not None and fp32 is not None
    for target in int8:
        ratio = fp32[target].flash_bytes / int8[target].flash_bytes
        assert ratio >= 3.5, (target, ratio)


def test_cortex_m_sizes_without_toolchain(
    built: dict[str, Built], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    assert cortex_m_sizes(built["taxi-packed"].program.parent) is None
    assert sizes_to_dict(None) == {"available": False, "targets": None, "note": TOOLCHAIN_HINT}


@pytest.mark.skipif(ARM_GCC is None, reason=TOOLCHAIN_HINT)
def test_cortex_m_errors_name_the_file(tmp_path: Path) -> None:
    from rlbudget.export.arm import firmware_cost

    with pytest.raises(RlbudgetError, match=r"policy\.c: no such file; export the policy"):
        cortex_m_sizes(tmp_path)
    with pytest.raises(RlbudgetError, match=r"unknown Cortex-M target 'cortex-m3'"):
        firmware_cost(tmp_path, "cortex-m3")
    (tmp_path / "policy.c").write_text("int broken(void) { return }\n")
    with pytest.raises(RlbudgetError, match=r"arm-none-eabi-gcc \(cortex-m0plus\) failed: .*error"):
        cortex_m_sizes(tmp_path)
