"""float16 weights: numpy semantics, bytes, save/load, and the C export (halves in flash,
exact half <-> float conversions, the same roundings as numpy)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rlbudget.compress import policy_bytes
from rlbudget.compress.fp16 import to_fp16
from rlbudget.compress.prune import prune_magnitude
from rlbudget.errors import PolicyError
from rlbudget.export import export_c
from rlbudget.export.c import HALF
from rlbudget.policy import MLP, Dense, Head, Normalize, Policy, Table, load_policy, save_policy
from rlbudget.policy.io import from_document, to_document
from tests.factories import box, discrete, random_mlp
from tests.test_prune import cartpole_like, error

GCC = shutil.which("gcc")
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]
RNG = np.random.default_rng(7)
N_OBS = 10_000


def test_fp16_halves_the_weight_bytes() -> None:
    parent = cartpole_like()
    child = to_fp16(parent)
    # 4610 weights and biases: 4 bytes each → 2; the 8 normalize constants stay float32.
    assert policy_bytes(parent) == 4610 * 4 + 32 and policy_bytes(child) == 4610 * 2 + 32
    assert child.bytes_by_dtype() == {"float32": 32, "float16": 9220}
    assert child.provenance["transforms"][-1]["method"] == "fp16"


def test_fp16_computes_in_float32_and_rounds_activations_to_half() -> None:
    """Input and hidden activations are rounded to float16; the output is not."""
    third = np.float32(1 / 3)
    body = MLP((Dense(np.array([[3.0]]), np.array([0.0]), "relu"),
                Dense(np.array([[third]]), np.array([0.0]), "identity")))  # fmt: skip
    p = to_fp16(Policy(box(1), box(1), (), body, Head("identity")))
    x = RNG.uniform(-4, 4, (1000, 1)).astype(np.float32)
    h = np.maximum(x.astype(np.float16).astype(np.float32) * np.float32(3), 0)
    expected = h.astype(np.float16).astype(np.float32) * np.float32(np.float16(third))
    got = p.act(x)
    assert got.dtype == np.float32 and np.array_equal(got, expected)
    assert not np.array_equal(got, expected.astype(np.float16).astype(np.float32))  # unrounded


def test_fp16_one_observation_equals_the_batch_bit_for_bit() -> None:
    p = to_fp16(cartpole_like())
    obs = RNG.uniform(-2, 2, (50, 4)).astype(np.float32)
    values = p.body.apply(obs)
    assert all(
        np.array_equal(p.body.apply(o[None])[0], v) for o, v in zip(obs, values, strict=True)
    )


def test_fp16_round_trip_is_bit_exact_and_zeros_stay_sparse(tmp_path: Path) -> None:
    p = to_fp16(prune_magnitude(cartpole_like(), 0.9))
    _, arrays = to_document(p)
    assert arrays["body.1.W.values"].dtype == np.float16  # the 64x64 layer is stored as CSR
    back = load_policy(save_policy(p, tmp_path / "p"))
    for a, b in zip(back.body.layers, p.body.layers, strict=True):  # type: ignore[union-attr]
        assert a.W.dtype == a.b.dtype == np.float16
        assert np.array_equal(a.W.view(np.uint16), b.W.view(np.uint16))
    obs = RNG.uniform(-2, 2, (500, 4)).astype(np.float32)
    assert np.array_equal(back.act(obs), p.act(obs))


def test_loader_refuses_mixed_dtypes_in_one_mlp() -> None:
    doc, arrays = to_document(cartpole_like())
    arrays = {**arrays, "body.1.W": arrays["body.1.W"].astype(np.float16)}
    with pytest.raises(PolicyError) as err:
        from_document(doc, arrays, "p")
    assert str(err.value) == (
        "p: body (mlp) layer 1: W and b are float16 and float32 but layer 0 is float32; every "
        "layer of an mlp has one dtype (float32, or float16)"
    )


def test_fp16_refuses_other_bodies_and_huge_weights() -> None:
    table = Policy(discrete(4), discrete(2), (), Table(np.zeros((4, 2), np.float32)),
                   Head("argmax"))  # fmt: skip
    with pytest.raises(PolicyError) as err:
        to_fp16(table)
    assert str(err.value) == ("fp16 applies to an mlp body; this policy has a table body "
                              "(int8 policies are already smaller: use int8 alone)")  # fmt: skip
    already = error(lambda: to_fp16(to_fp16(cartpole_like())))
    assert already == "fp16: the policy's weights are already float16"
    big = Policy(box(1), box(1), (), MLP((Dense(np.array([[1e5]]), np.array([0.0])),)),
                 Head("identity"))  # fmt: skip
    with pytest.raises(PolicyError) as err:
        to_fp16(big)
    assert str(err.value) == ("fp16: layer 0 has a W value of magnitude 100000, beyond "
                              "float16's 65504; keep this policy in float32 or quantize it to "
                              "int8")  # fmt: skip


# --- C ---------------------------------------------------------------------------------------

HALF_HARNESS = """
#include <stdint.h>
#include <stdio.h>
#include <string.h>
%s
/* stdin: uint32 float bit patterns; stdout: per value the uint16 half of rlb_f2h and the
   uint32 bits of rlb_h2f(low 16 bits of the input) */
int main(void)
{
    uint32_t u, back;
    uint16_t h;
    float f;
    while (fread(&u, 4, 1, stdin) == 1) {
        memcpy(&f, &u, 4);
        h = rlb_f2h(f);
        f = rlb_h2f((uint16_t)(u & 0xffffu));
        memcpy(&back, &f, 4);
        fwrite(&h, 2, 1, stdout);
        fwrite(&back, 4, 1, stdout);
    }
    return 0;
}
"""


def compile_c(folder: Path, *sources: Path) -> Path:
    program = folder / "program"
    run = subprocess.run(["gcc", *CFLAGS, *map(str, sources), "-o", str(program), "-lm"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    return program


@pytest.mark.skipif(GCC is None, reason="gcc is not installed: the C export is not compiled")
def test_c_half_conversions_match_numpy(tmp_path: Path) -> None:
    """Every half → float exactly; float → half on every tie between two halves, one float
    step either side of it, and 500,000 random bit patterns (numpy: round to nearest even)."""
    source = tmp_path / "half.c"
    source.write_text(HALF_HARNESS % HALF.replace("static ", "static inline "))
    program = compile_c(tmp_path, source)
    halves = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    finite = halves[np.isfinite(halves.view(np.float16))]
    lo = finite.view(np.float16).astype(np.float32)
    with np.errstate(over="ignore"):  # the largest half's neighbour is inf
        above = np.nextafter(finite.view(np.float16), np.float16(np.inf)).astype(np.float64)
    ties = (lo.astype(np.float64) + above) / 2
    ties = ties[np.isfinite(ties)].astype(np.float32).view(np.uint32)
    patterns = np.concatenate([
        np.arange(2**16, dtype=np.uint32), ties, ties - 1, ties + 1,
        RNG.integers(0, 2**32, 500_000, dtype=np.uint64).astype(np.uint32),
    ])  # fmt: skip
    out = subprocess.run([str(program)], input=patterns.tobytes(), capture_output=True,
                         check=True).stdout  # fmt: skip
    records = np.frombuffer(out, dtype=np.dtype([("h", "<u2"), ("f", "<u4")]))
    assert len(records) == len(patterns)
    floats = patterns.view(np.float32)
    with np.errstate(over="ignore"):
        expected_h = floats.astype(np.float16).view(np.uint16)
    nan = np.isnan(floats)
    assert np.array_equal(records["h"][~nan], expected_h[~nan])
    assert np.all(np.isnan(records["h"][nan].view(np.float16)))
    low = (patterns & 0xFFFF).astype(np.uint16).view(np.float16).astype(np.float32)
    same = records["f"].view(np.float32)
    assert np.array_equal(same[~np.isnan(low)].view(np.uint32), low[~np.isnan(low)].view(np.uint32))


def pendulum_tanh() -> Policy:
    norm = Normalize(np.zeros(3), np.array([0.5, 0.5, 16.0]))
    return Policy(box(3), box(1), (norm,), random_mlp([3, 64, 64, 1], "tanh", 4),
                  Head("tanh_rescale", np.array([-2.0]), np.array([2.0])))  # fmt: skip


@pytest.mark.skipif(GCC is None, reason="gcc is not installed: the C export is not compiled")
@pytest.mark.parametrize("sparse", [False, True])
def test_c_fp16_matches_numpy_on_10000_observations(tmp_path: Path, sparse: bool) -> None:
    """Discrete: the same actions (argmax). Continuous (tanh layers, tanh_rescale to
    [-2, 2]): within 1e-3. The float32 sums run in another order than numpy's BLAS, so a
    pre-activation on a tie between two halves can round the other way, and libm's tanhf
    may differ from numpy's tanh by an ulp: one half step (2^-11 relative) in one
    activation, not more."""
    discrete_p, continuous = cartpole_like(), pendulum_tanh()
    if sparse:
        discrete_p, continuous = (prune_magnitude(p, 0.8) for p in (discrete_p, continuous))
    for name, parent, dim, tolerance in (("d", discrete_p, 4, 0.0), ("c", continuous, 3, 1e-3)):
        p = to_fp16(parent)
        result = export_c(p, tmp_path / name)
        assert result.flash_bytes == policy_bytes(p)  # halves in flash, as on disk
        assert ("rlb_sparse_f16" in (tmp_path / name / "policy.c").read_text()) == sparse
        program = compile_c(tmp_path / name, *(tmp_path / name / f for f in ("policy.c", "main.c")))
        obs = RNG.uniform(-3, 3, (N_OBS, dim)).astype(np.float32)
        text = "\n".join(" ".join(repr(float(v)) for v in row) for row in obs) + "\n"
        out = subprocess.run([str(program)], input=text, capture_output=True, text=True,
                             check=True).stdout.split()  # fmt: skip
        got = np.array(out, dtype=np.float32 if tolerance else np.int64)
        expected = p.act(obs).reshape(len(obs))
        assert np.abs(got - expected).max() <= tolerance
