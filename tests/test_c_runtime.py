"""The C runtime's files (rlbudget/export/runtime/) as C: each compiled on its own, for every
value of its parameters, with -std=c99 -Wall -Wextra -Werror -pedantic (and for Cortex-M
when arm-none-eabi-gcc is installed); and the instances the export pastes from them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rlbudget.errors import PolicyError
from rlbudget.export import kernels
from rlbudget.export.arm import TARGETS
from rlbudget.export.c import ACTIVATION_CODES

FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Os"]
RUNTIME = Path(str(kernels.RUNTIME))

ACTIVATIONS = {"RLB_RELU": "1", "RLB_TANH": "1", "RLB_SIGMOID": "1"}
NO_ACTIVATION = dict.fromkeys(ACTIVATIONS, "0")
HALF = {"RLB_HALF": "1", "RLB_WEIGHT": "uint16_t"}
VARIANTS: dict[str, list[dict[str, str]]] = {
    "quantize.c": [{"RLB_HALF_SCALE": "0"}, {"RLB_HALF_SCALE": "1"}],
    "fixed_point.c": [{"RLB_LEFT_SHIFT": "0"}, {"RLB_LEFT_SHIFT": "1"}],
    "dense_int8.c": [
        {"RLB_BIAS": "int16_t", "RLB_ODD_LUT": "1"},
        {"RLB_BIAS": "int32_t", "RLB_ODD_LUT": "0"},
        {"RLB_PER_CHANNEL": "0", "RLB_REQUANTIZE": "rlb_rhm", "RLB_KNOTS": "1"},
        {"RLB_PER_CHANNEL": "1", "RLB_REQUANTIZE": "rlb_rhm", "RLB_ODD_LUT": "1"},
        {"RLB_PER_CHANNEL": "0", "RLB_REQUANTIZE": "rlb_mbqm", "RLB_BIAS": "int16_t"},
    ],
    "knots.c": [{}],
    "high_word.c": [{}],
    "dense_int8_acc.c": [{"RLB_BIAS": "int16_t"}, {"RLB_BIAS": "int32_t"}],
    "dense_int8_float.c": [{"RLB_BIAS": "int16_t"}, {"RLB_BIAS": "int32_t"}],
    "argmax.c": [{"RLB_VALUE": "float"}, {"RLB_VALUE": "int8_t"}, {"RLB_VALUE": "int32_t"}],
    "half.c": [{}],
    "dense_float.c": [ACTIVATIONS, NO_ACTIVATION, HALF | ACTIVATIONS, HALF | NO_ACTIVATION],
    "sparse_float.c": [
        ACTIVATIONS,
        HALF | NO_ACTIVATION | {"RLB_INDEX": "uint16_t", "RLB_POINTER": "uint32_t"},
    ],
    "input.c": [
        {"RLB_NORMALIZE": "0"},
        {"RLB_NORMALIZE": "1"},
        {"RLB_NORMALIZE": "1", "RLB_UNCLIPPED": "1"},
    ],
    "state.c": [{"RLB_DISCRETIZE": "0"}, {"RLB_DISCRETIZE": "1"}],
    "packed.c": [{"RLB_BITS": "1", "RLB_SPARSE": "0"}, {"RLB_BITS": "3", "RLB_SPARSE": "1"}],
    "dsp_int8.c": [{}],
    "conv_float.c": [
        {"RLB_POOL": "0", "RLB_DEPTHWISE": "0"},
        {"RLB_POOL": "0", "RLB_DEPTHWISE": "1"},
        {"RLB_POOL": "1", "RLB_AVG": "0"},
        {"RLB_POOL": "1", "RLB_AVG": "1"},
    ],
    "conv_int8.c": [
        {"RLB_POOL": "0", "RLB_DEPTHWISE": "0", "RLB_BIAS": "int16_t"},
        {"RLB_POOL": "0", "RLB_DEPTHWISE": "1", "RLB_REQUANTIZE": "rlb_rhm"},
        {"RLB_POOL": "1", "RLB_AVG": "0"},
        {"RLB_POOL": "1", "RLB_AVG": "1"},
    ],
}
"""Each file and sets of values of its parameters (the rest keep the file's defaults):
every ``#if`` branch is built at least once."""


def compile_all(compiler: str, extra: tuple[str, ...], tmp: Path, std: str = "-std=c99") -> None:
    """Every variant of every file, two compilers at a time; each must build silently."""
    cmds = [
        [compiler, *extra, std, *FLAGS[1:], *(f"-D{k}={v}" for k, v in variant.items()), "-c",
         str(RUNTIME / name), "-o", str(tmp / f"{name}.{i}.o")]
        for name, variants in VARIANTS.items() for i, variant in enumerate(variants)
    ]  # fmt: skip
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda c: subprocess.run(c, capture_output=True, text=True), cmds))
    for cmd, run in zip(cmds, runs, strict=True):
        assert run.returncode == 0 and not run.stderr, f"{' '.join(cmd)}\n{run.stderr}"


def test_every_runtime_file_is_listed() -> None:
    on_disk = {p.name for p in RUNTIME.iterdir()}
    assert on_disk == {*VARIANTS, "runtime.h", "main.c"}


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_each_file_compiles_on_its_own_without_a_warning(tmp_path: Path) -> None:
    compile_all("gcc", (), tmp_path)
    # the harness, against the smallest policy.h it needs
    (tmp_path / "policy.h").write_text(
        "#define RLB_OBS_DIM 2\n#define RLB_ACTION_DIM 1\n#define RLB_DISCRETE_ACTIONS 1\n"
        "int rlb_policy_act(const float *obs, float *action);\n"
    )
    main = RUNTIME / "main.c"
    cmd = ["gcc", *FLAGS, f"-I{tmp_path}", "-c", str(main), "-o", str(tmp_path / "m.o")]
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="no arm-none-eabi-gcc")
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_each_file_compiles_for_cortex_m(target: str, tmp_path: Path) -> None:
    compile_all("arm-none-eabi-gcc", TARGETS[target], tmp_path)


@pytest.mark.skipif(shutil.which("avr-gcc") is None, reason="no avr-gcc (apt-get install gcc-avr "
                    "avr-libc)")  # fmt: skip
def test_each_file_compiles_for_avr_with_its_tables_in_flash(tmp_path: Path) -> None:
    """GNU C, where RLB_CONST is const __flash: a kernel reading a table through a plain
    pointer (another address space) would warn, and -Werror fails it."""
    compile_all("avr-gcc", ("-mmcu=atmega328p",), tmp_path, std="-std=gnu99")
    probe = tmp_path / "probe.c"
    probe.write_text('#include "runtime.h"\nRLB_CONST float probe = 1.0f;\n')
    run = subprocess.run(["avr-gcc", "-mmcu=atmega328p", "-std=gnu99", f"-I{RUNTIME}", "-S",
                          "-o", "-", str(probe)], capture_output=True, text=True)  # fmt: skip
    assert ".section\t.progmem" in run.stdout, run.stdout + run.stderr  # flash, not .rodata


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="no arm-none-eabi-gcc")
def test_each_file_compiles_with_the_dsp_path(tmp_path: Path) -> None:
    """At -O2 on the M4F, the int8 kernels' DSP branches are the ones compiled (-Os keeps
    the portable loop)."""
    compile_all("arm-none-eabi-gcc", (*TARGETS["cortex-m4f"], "-O2"), tmp_path)


DSP = "#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && !defined(__OPTIMIZE_SIZE__)"
TARGET_BRANCHES = [DSP, "#else", "#endif", DSP, "#else", "#endif", DSP, "#else", "#endif"]
"""The directives dense_int8.c's instances keep: its DSP steps before the loop (or the
portable clamp's bounds), its loop's two forms, and its clamp's two forms (the compiler of
policy.c chooses)."""


def directives(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.lstrip().startswith("#")]


def test_an_instance_is_plain_c_with_its_parameters_written_in() -> None:
    text = kernels.instance("dense_int8.c", RLB_BIAS="int16_t", RLB_ODD_LUT=1, RLB_KNOTS=0,
                            RLB_PER_CHANNEL=1, RLB_REQUANTIZE="rlb_mbqm",
                            rlb_dense_int8="rlb_dense_int8_b16_odd")  # fmt: skip
    assert text.startswith("/* one int8 fully connected layer")
    assert "\nstatic void rlb_dense_int8_b16_odd(const int8_t *x, int8_t *y," in text
    assert "RLB_CONST int16_t *b," in text and "lut[acc + 128]" not in text and "-lut[" in text
    # no parameter is left; RLB_CONST (const, or const __flash on AVR) is policy.c's macro
    assert directives(text) == TARGET_BRANCHES and "RLB_" not in text.replace("RLB_CONST", "")
    full = kernels.instance("dense_int8.c", RLB_BIAS="int32_t", RLB_ODD_LUT=0, RLB_KNOTS=0,
                            RLB_PER_CHANNEL=1, RLB_REQUANTIZE="rlb_mbqm")  # fmt: skip
    assert "static void rlb_dense_int8(" in full and "lut[acc + 128]" in full
    # one scale for the layer, high word, knots: the constants are arguments
    knots = kernels.instance("dense_int8.c", RLB_BIAS="int16_t", RLB_ODD_LUT=0, RLB_KNOTS=1,
                             RLB_PER_CHANNEL=0, RLB_REQUANTIZE="rlb_rhm")  # fmt: skip
    assert "int32_t multiplier, int32_t shift," in knots and "int32_t ch" not in knots
    assert "acc = rlb_rhm(acc, multiplier, shift);" in knots and "rlb_knots(lut, acc)" in knots
    assert directives(knots) == TARGET_BRANCHES and "RLB_" not in knots.replace("RLB_CONST", "")


def test_if_conditions_read_as_c_reads_them() -> None:
    flags = dict.fromkeys(("RLB_RELU", "RLB_TANH", "RLB_SIGMOID", "RLB_HALF"), 0)
    plain = kernels.instance("dense_float.c", RLB_WEIGHT="float", **flags)
    assert "(void)act;" in plain and "if (act ==" not in plain and "rlb_h2f" not in plain
    tanh = kernels.instance("dense_float.c", RLB_WEIGHT="float", **flags | {"RLB_TANH": 1})
    assert "(void)act;" not in tanh and "tanhf(acc)" in tanh and "expf" not in tanh
    for activation in ("relu", "tanh", "sigmoid"):  # the codes the generator passes
        csr = {"RLB_WEIGHT": "float", "RLB_INDEX": "uint8_t", "RLB_POINTER": "uint16_t"}
        one = kernels.instance("sparse_float.c", **csr, **flags | {f"RLB_{activation.upper()}": 1})
        assert one.count("if (act ==") == 1 and f"if (act == {ACTIVATION_CODES[activation]})" in one
    half = kernels.instance("dense_float.c", RLB_WEIGHT="uint16_t", **flags | {"RLB_HALF": 1})
    assert "int act, int to_half)" in half and "rlb_round_half(acc)" in half


def test_an_if_on_the_target_is_kept_with_both_branches() -> None:
    text = kernels.instance("dsp_int8.c")
    assert directives(text) == [DSP, "#include <arm_acle.h>", "#include <string.h>", "#endif"]
    assert "static void rlb_dot_int8(" in text and "RLB_" not in text
    assert '"sxtb16 %[a], %[a], ror #8\\n\\t"' in text and "__sxtab16(minus_zp, v)" in text


def test_parameter_branches_inside_a_target_branch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "k.c").write_text(
        "/* doc */\n#ifndef RLB_API\n#define RLB_API\n#endif\n#if defined(__ARM_FEATURE_DSP)\n"
        "#include <arm_acle.h>\n#if RLB_A\na\n#else\nnot_a\n#endif\n#else\nportable\n#endif\n"
        "#if RLB_A\n#include <x.h>\n#endif\n"
    )
    monkeypatch.setattr(kernels, "RUNTIME", tmp_path)
    kernels.source.cache_clear()
    try:
        assert kernels.instance("k.c", RLB_A=0).split("\n") == [
            "#if defined(__ARM_FEATURE_DSP)", "#include <arm_acle.h>", "not_a", "#else",
            "portable", "#endif"]  # fmt: skip
        with pytest.raises(PolicyError, match=r"unexpected directive '#include <x\.h>'"):
            kernels.instance("k.c", RLB_A=1)  # an #include only inside a target branch
    finally:
        kernels.source.cache_clear()


def test_elif_and_nested_branches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "k.c").write_text(
        "/* doc */\n#ifndef RLB_API\n#define RLB_API\n#endif\n"
        "#if RLB_A\na\n#if RLB_B\nab\n#else\na!b\n#endif\n"
        "#elif RLB_B\nb\n#elif 1\nneither\n#else\nnever\n#endif\nend\n"
    )
    monkeypatch.setattr(kernels, "RUNTIME", tmp_path)
    kernels.source.cache_clear()
    try:
        got = {(a, b): kernels.instance("k.c", RLB_A=a, RLB_B=b).split() for a in (0, 1)
               for b in (0, 1)}  # fmt: skip
    finally:
        kernels.source.cache_clear()
    assert got == {(1, 1): ["a", "ab", "end"], (1, 0): ["a", "a!b", "end"],
                   (0, 1): ["b", "end"], (0, 0): ["neither", "end"]}  # fmt: skip


def test_an_instance_without_a_parameter_it_reads_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(PolicyError, match=r"dense_int8.c: no value given for RLB_BIAS"):
        kernels.instance("dense_int8.c", RLB_PER_CHANNEL=1, RLB_REQUANTIZE="rlb_mbqm",
                         RLB_KNOTS=0, RLB_ODD_LUT=0)  # fmt: skip
    with pytest.raises(PolicyError, match=r"quantize.c: no 0/1 value given for RLB_HALF_SCALE"):
        kernels.instance("quantize.c")
    (tmp_path / "bad.c").write_text("/* doc */\n#include <stdio.h>\nint x;\n")
    monkeypatch.setattr(kernels, "RUNTIME", tmp_path)
    kernels.source.cache_clear()
    try:
        with pytest.raises(PolicyError, match=r"bad.c: unexpected directive '#include <stdio.h>'"):
            kernels.instance("bad.c")
    finally:
        kernels.source.cache_clear()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_the_runtime_files_are_package_data() -> None:
    import fnmatch

    import tomllib

    root = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["rlbudget"]  # fmt: skip
    for p in RUNTIME.iterdir():
        rel = p.relative_to(root / "rlbudget").as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in globs), rel
