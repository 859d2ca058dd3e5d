"""The int8 kernels' DSP path (issue 16.4): on the emulated Cortex-M4F (``-O2``, where
``__ARM_FEATURE_DSP`` is defined) the layers' outputs equal numpy's bit for bit, as they do
on the host (the portable loop), for nets whose widths are not multiples of 4 (the tail
loop), odd row counts (the last row of a pair alone), per-layer and per-channel scales,
int16 and int32 biases, tanh knots and relu; and the M4 image does use SMLAD. Skipped
without arm-none-eabi-gcc, unicorn or capstone (the host half needs gcc)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from rlbudget.compress.quantize import quantize_int8
from rlbudget.emulate.image import build_image
from rlbudget.emulate.machine import Machine
from rlbudget.envs import SpaceSpec
from rlbudget.export.arm import CFLAGS, TARGETS
from rlbudget.export.c import export_c
from rlbudget.policy import MLP, Dense, Head, Policy
from rlbudget.policy.model import QuantizedMLP, quantize_input

MISSING = [m for m in ("unicorn", "capstone") if importlib.util.find_spec(m) is None]
ARM = shutil.which("arm-none-eabi-gcc") is not None
needs_arm = pytest.mark.skipif(
    not ARM or bool(MISSING), reason=f"needs arm-none-eabi-gcc, unicorn and capstone ({MISSING})"
)

# name: hidden widths, activation, observations, actions, discrete (argmax), per channel,
# int32 bias (a bias beyond int16 forced into the first layer)
CASES = {
    "tanh-knots-odd-widths": ([13, 9], "tanh", 7, 3, False, False, False),
    "relu-per-channel": ([21, 6], "relu", 5, 2, False, True, False),
    "tanh-int32-bias-per-channel": ([16, 11], "tanh", 6, 1, False, True, True),
    "relu-argmax-accumulators": ([64, 64], "relu", 4, 2, True, False, False),
    "tanh-argmax-int32-bias": ([35, 64], "tanh", 9, 3, True, False, True),
    "relu-zero-point-above-min": ([12, 10], "relu", 6, 2, False, False, False),
}
RAISED_ZERO_POINT = {"relu-zero-point-above-min": -60}
"""Cases whose first layer's output zero point (and the next layer's input zero point) is
set to this: a relu clamps at it (lo = -60), not at -128, so the DSP path's clamp (SSAT to
-128..127, then lo) is checked where lo does something."""


def make(name: str) -> tuple[Policy, np.ndarray]:
    """The int8 policy of case ``name`` and 40 observations (Gaussian, a few beyond the
    calibration range)."""
    widths, activation, n_obs, n_act, discrete, per_channel, wide_bias = CASES[name]
    rng = np.random.default_rng(len(name))
    sizes = [n_obs, *widths, n_act]
    layers = tuple(Dense((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32),
                         (0.1 * rng.standard_normal(b)).astype(np.float32),
                         activation if i < len(sizes) - 2 else "identity")
                   for i, (a, b) in enumerate(pairwise(sizes)))  # fmt: skip
    big = 1e30
    obs_space = SpaceSpec("box", (n_obs,), None, (-big,) * n_obs, (big,) * n_obs, "float32")
    if discrete:
        act_space, head = SpaceSpec("discrete", (), n_act, None, None, "int64"), Head("argmax")
    else:
        act_space = SpaceSpec("box", (n_act,), None, (-1.0,) * n_act, (1.0,) * n_act, "float32")
        head = Head("clip", np.full(n_act, -1.0, np.float32), np.full(n_act, 1.0, np.float32))
    parent = Policy(obs_space, act_space, (), MLP(layers), head, {"transforms": []})
    calib = (rng.standard_normal((300, n_obs)) * rng.uniform(0.2, 2.0, n_obs)).astype(np.float32)
    policy = quantize_int8(parent, calib, per_channel=per_channel)
    body = policy.body
    assert isinstance(body, QuantizedMLP)
    if wide_bias:  # an int32 bias: the C kernel's int32_t form
        first = body.layers[0]
        b = first.b.astype(np.int32) + np.int32(40_000) * np.sign(first.b.astype(np.int32))
        body = QuantizedMLP((replace(first, b=b), *body.layers[1:]))
        policy = replace(policy, body=body)
    assert any(la.b.dtype == np.int32 for la in body.layers) == wide_bias
    if name in RAISED_ZERO_POINT:
        zp, (first, second, *rest) = RAISED_ZERO_POINT[name], body.layers
        body = QuantizedMLP((replace(first, output_zero_point=zp),
                             replace(second, input_zero_point=zp), *rest))  # fmt: skip
        policy = replace(policy, body=body)
        assert body.layers[0].clamp_low == zp
    return policy, 1.5 * calib[:40]


def expected_output(policy: Policy, obs: np.ndarray) -> np.ndarray:
    """What the C leaves in its output buffer: the last layer's dequantized float32 values
    (``rlb_out``), or for an argmax head its int32 accumulators (``rlb_acc``)."""
    body = policy.body
    assert isinstance(body, QuantizedMLP)
    for step in policy.preprocess:  # quantize_int8's normalize
        obs = step.apply(obs)
    if policy.head.kind != "argmax":
        return body.apply(obs)
    first, last = body.layers[0], body.layers[-1]
    q = quantize_input(obs, first.input_scale, first.input_zero_point)
    for la in body.layers[:-1]:
        q = la.apply(q)
    acc = (q.astype(np.int64) - last.input_zero_point) @ last.W.astype(np.int64) + last.b
    return acc.astype(np.int32)


@needs_arm
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_dsp_path_equals_numpy_bit_for_bit(name: str, tmp_path: Path) -> None:
    policy, obs = make(name)
    export_c(policy, tmp_path / "c")
    machine = Machine(build_image(tmp_path / "c", "cortex-m4", tmp_path), "cortex-m4")
    want = expected_output(policy, obs)
    argmax = policy.head.kind == "argmax"
    out = machine.symbol("rlb_acc" if argmax else "rlb_out")
    at_obs, at_act = machine.symbol("rlb_obs"), machine.symbol("rlb_action")
    for i, o in enumerate(obs):
        machine.write(at_obs, o.astype(np.float32).tobytes())
        machine.call("rlb_policy_act", at_obs, at_act, count=False)
        got = np.frombuffer(machine.read(out, 4 * want.shape[1]),
                            dtype=np.int32 if argmax else np.float32)  # fmt: skip
        assert got.tobytes() == want[i].tobytes(), (i, got, want[i])  # bit for bit


def disassembly(elf: Path) -> str:
    run = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True,
                         text=True, check=True)  # fmt: skip
    return run.stdout


@needs_arm
def test_the_m4_build_multiplies_with_smlad_and_the_m0plus_build_does_not(tmp_path: Path) -> None:
    policy, _ = make("tanh-knots-odd-widths")
    export_c(policy, tmp_path / "c")
    m4 = disassembly(build_image(tmp_path / "c", "cortex-m4", tmp_path))
    m0 = disassembly(build_image(tmp_path / "c", "cortex-m0plus", tmp_path))
    assert "\tsmlad\t" in m4 and "\tsxtb16\t" in m4  # the fast path did not fall back
    assert "\tsmlad\t" not in m0 and "\tmuls\t" in m0  # Armv6-M: the portable loop
    # -Os (export's size line, profile's footprint): the smaller portable loop on the M4F too
    small = tmp_path / "small.o"
    subprocess.run(["arm-none-eabi-gcc", *TARGETS["cortex-m4f"], *CFLAGS, "-c",
                    str(tmp_path / "c" / "policy.c"), "-o", str(small)], check=True)  # fmt: skip
    assert "-Os" in CFLAGS and "\tsmlad\t" not in disassembly(small)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_portable_path_equals_numpy_on_the_host(name: str, tmp_path: Path) -> None:
    policy, obs = make(name)
    folder = tmp_path / "c"
    export_c(policy, folder)
    program = folder / "policy"
    subprocess.run(["gcc", "-std=c99", "-O2", str(folder / "policy.c"), str(folder / "main.c"),
                    "-o", str(program)], check=True)  # fmt: skip
    text = "\n".join(" ".join(repr(float(v)) for v in row) for row in obs) + "\n"
    lines = subprocess.run([str(program)], input=text, capture_output=True, text=True,
                           check=True).stdout.splitlines()  # fmt: skip
    want = policy.act(obs)
    if policy.head.kind == "argmax":
        assert [int(v) for v in lines] == [int(v) for v in want]
    else:
        got = np.array([[np.float32(v) for v in line.split()] for line in lines])
        assert got.tobytes() == np.asarray(want, np.float32).tobytes()
