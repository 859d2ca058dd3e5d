"""Pruning: magnitude (zeros, CSR storage only where it saves bytes, C kernel) and whole
neurons (a smaller dense mlp, bias compensation). Byte counts are derived by hand."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rlbudget.compress import policy_bytes
from rlbudget.compress.prune import prune_magnitude, prune_neurons
from rlbudget.compress.quantize import quantize_int8
from rlbudget.errors import PolicyError
from rlbudget.export import export_c
from rlbudget.policy import MLP, Dense, Head, Normalize, Policy, Table, load_policy, save_policy
from rlbudget.policy.io import from_document, to_document
from tests.factories import box, discrete, random_mlp

RNG = np.random.default_rng(3)
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]


def mlp_policy(body: MLP, preprocess: tuple[Normalize, ...] = ()) -> Policy:
    n_in, n_out = body.layers[0].W.shape[0], body.layers[-1].W.shape[1]
    return Policy(box(n_in), discrete(n_out), preprocess, body, Head("argmax"))


def cartpole_like() -> Policy:
    """4-64-64-2 tanh with a normalize step (8 float32 constants: 32 bytes)."""
    norm = Normalize(np.zeros(4), np.array([1.0, 4.0, 0.04, 4.0]))
    return mlp_policy(random_mlp([4, 64, 64, 2], "tanh"), (norm,))


def one_layer(nonzeros: int, dtype: str = "float32", n_in: int = 64, n_out: int = 64) -> Policy:
    """A single n_in x n_out layer with exactly ``nonzeros`` non-zero weights."""
    w = np.zeros(n_in * n_out, dtype=np.float32)
    w[RNG.choice(w.size, nonzeros, replace=False)] = RNG.uniform(0.5, 1.5, nonzeros)
    W = w.reshape(n_in, n_out).astype(dtype)
    return mlp_policy(MLP((Dense(W, np.zeros(n_out, dtype=dtype)),)))


def error(call: Callable[[], object]) -> str:
    """The message of the PolicyError that ``call`` raises."""
    with pytest.raises(PolicyError) as err:
        call()
    return str(err.value)


def roundtrip(policy: Policy, tmp_path: Path) -> Policy:
    return load_policy(save_policy(policy, tmp_path / "p"))


# --- sparse storage --------------------------------------------------------------------------


def test_a_90_percent_sparse_layer_is_stored_as_csr_with_the_derived_bytes(tmp_path: Path) -> None:
    p = one_layer(410)  # 410 of 4096 weights: 90 % zeros
    doc, arrays = to_document(p)
    assert doc["body"]["layers"][0]["W"] == {
        "format": "csr", "shape": [64, 64], "values": "body.0.W.values",
        "indices": "body.0.W.indices", "indptr": "body.0.W.indptr",
    }  # fmt: skip
    assert {k: str(v.dtype) for k, v in arrays.items()} == {
        "body.0.W.values": "float32", "body.0.W.indices": "uint8", "body.0.W.indptr": "uint16",
        "body.0.b": "float32",
    }  # fmt: skip
    # 410 float32 values + 410 uint8 input indices + 65 uint16 row starts, + the bias.
    assert policy_bytes(p) == 410 * 4 + 410 * 1 + 65 * 2 + 64 * 4 == 2436
    assert p.parameters == 410 + 64  # indices and row starts are not parameters
    back = roundtrip(p, tmp_path)
    assert back.body.layers[0].W.dtype == np.float32  # type: ignore[union-attr]
    assert np.array_equal(back.body.layers[0].W, p.body.layers[0].W)  # type: ignore[union-attr]


def test_a_20_percent_sparse_layer_stays_dense() -> None:
    p = one_layer(3277)  # CSR: 3277 * 5 + 130 = 16515 bytes > 16384 dense
    doc, _ = to_document(p)
    assert doc["body"]["layers"][0]["W"] == "body.0.W"
    assert policy_bytes(p) == 64 * 64 * 4 + 64 * 4


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [("float16", 410 * 2 + 410 + 130 + 64 * 2), ("float32", 2436)],
)
def test_csr_bytes_follow_the_weight_dtype(dtype: str, expected: int) -> None:
    assert policy_bytes(one_layer(410, dtype)) == expected


def test_wide_inputs_take_uint16_indices_and_negative_zero_survives(tmp_path: Path) -> None:
    p = one_layer(20, n_in=300, n_out=4)
    W = p.body.layers[0].W  # type: ignore[union-attr]
    W[0, 0] = -0.0  # a stored bit pattern, not a zero to drop
    _, arrays = to_document(p)
    assert arrays["body.0.W.indices"].dtype == np.uint16
    assert len(arrays["body.0.W.values"]) == 21
    back = roundtrip(p, tmp_path).body.layers[0].W  # type: ignore[union-attr]
    assert np.array_equal(back.view(np.uint32), W.view(np.uint32))  # bit for bit


def test_int8_layers_are_stored_sparse_after_pruning(tmp_path: Path) -> None:
    parent = cartpole_like()
    calibration = RNG.uniform(-1, 1, (500, 4)).astype(np.float32)
    q = quantize_int8(parent, calibration)
    pruned = prune_magnitude(q, 0.9, scope="layer")
    _, arrays = to_document(pruned)
    # The 64x64 int8 layer: 3686 zeros, 410 kept → 410 + 410 + 65 * 2 bytes instead of 4096.
    assert arrays["body.1.W.values"].dtype == np.int8
    assert sum(arrays[f"body.1.W.{k}"].nbytes for k in ("values", "indices", "indptr")) == 950
    obs = RNG.uniform(-1, 1, (1000, 4)).astype(np.float32)
    back = roundtrip(pruned, tmp_path)
    assert np.array_equal(back.act(obs), pruned.act(obs))
    for a, b in zip(back.body.layers, pruned.body.layers, strict=True):  # type: ignore[union-attr]
        assert a.W.dtype == np.int8 and np.array_equal(a.W, b.W)


def corrupt(change: str) -> str:
    p = one_layer(410)
    doc, arrays = to_document(p)
    arrays = dict(arrays)
    if change == "indptr":
        ptr = arrays["body.0.W.indptr"].copy()
        ptr[5], ptr[6] = ptr[6], ptr[5] - 1
        arrays["body.0.W.indptr"] = ptr
    elif change == "indices":
        idx = arrays["body.0.W.indices"].copy()
        idx[0] = 64
        arrays["body.0.W.indices"] = idx
    else:
        doc = json.loads(json.dumps(doc))
        doc["body"]["layers"][0]["W"]["shape"] = [64]
    with pytest.raises(PolicyError) as err:
        from_document(doc, arrays, "p")
    return str(err.value)


def test_corrupt_csr_arrays_are_refused_naming_the_array() -> None:
    assert corrupt("indptr") == (
        "p: body (mlp) layer 0: array 'body.0.W.indptr' must rise from 0 to 410 (the stored "
        "weights) without decreasing; the file is corrupt, save the policy again"
    )
    assert corrupt("indices") == (
        "p: body (mlp) layer 0: array 'body.0.W.indices' must list each row's input indices "
        "below 64, increasing; the file is corrupt, save the policy again"
    )
    assert corrupt("shape") == (
        "p: body (mlp) layer 0: W's shape must be two positive integers, not [64]"
    )


# --- prune_magnitude -----------------------------------------------------------------------


def test_prune_magnitude_zeros_exactly_the_smallest_weights_globally() -> None:
    parent = cartpole_like()
    child = prune_magnitude(parent, 0.8)
    total = 4 * 64 + 64 * 64 + 64 * 2
    zeros = [(la.W == 0) for la in child.body.layers]  # type: ignore[union-attr]
    assert sum(int(z.sum()) for z in zeros) == round(0.8 * total) == 3584
    pairs = list(zip(parent.body.layers, zeros, strict=True))  # type: ignore[union-attr]
    kept = np.sort(np.concatenate([np.abs(pa.W[~z]) for pa, z in pairs]))
    removed = np.concatenate([np.abs(pa.W[z]) for pa, z in pairs])
    # Only the 64 + 64 + 2 protected weights (each output's largest) may lie below the cut.
    assert removed.max() <= kept[130]
    for pa, ch in zip(parent.body.layers, child.body.layers, strict=True):  # type: ignore[union-attr]
        assert np.array_equal(pa.b, ch.b)  # biases stay
        assert np.array_equal(ch.W[ch.W != 0], pa.W[ch.W != 0])  # survivors untouched
    assert child.provenance["transforms"][-1] == {
        "method": "prune_magnitude", "sparsity": 0.8, "scope": "global", "zeros": 3584,
        "bytes_before": policy_bytes(parent), "bytes_after": policy_bytes(child),
    }  # fmt: skip


def test_prune_magnitude_per_layer_and_every_output_keeps_a_weight() -> None:
    child = prune_magnitude(cartpole_like(), 0.99, scope="layer")
    layers = child.body.layers  # type: ignore[union-attr]
    # round(0.99 × size) zeros per layer, unless that would empty an output neuron.
    assert [int((la.W == 0).sum()) for la in layers] == [256 - 64, 4096 - 64, 128 - 2]
    assert all(np.all((la.W != 0).sum(axis=0) >= 1) for la in layers)


def test_prune_magnitude_zero_sparsity_changes_nothing() -> None:
    parent = cartpole_like()
    obs = RNG.uniform(-1, 1, (200, 4)).astype(np.float32)
    assert np.array_equal(prune_magnitude(parent, 0.0).act(obs), parent.act(obs))


@pytest.mark.parametrize("sparsity", [1.0, -0.1, float("nan")])
def test_prune_magnitude_refuses_a_sparsity_outside_0_1(sparsity: float) -> None:
    with pytest.raises(PolicyError) as err:
        prune_magnitude(cartpole_like(), sparsity)
    assert str(err.value) == (f"prune_magnitude: sparsity {sparsity!r} must be in [0, 1) (the "
                              "fraction of weights set to zero, e.g. 0.9)")  # fmt: skip


def test_prune_refuses_other_bodies() -> None:
    table = Policy(discrete(4), discrete(2), (), Table(np.zeros((4, 2), np.float32)),
                   Head("argmax"))  # fmt: skip
    assert error(lambda: prune_magnitude(table, 0.5)) == (
        "prune_magnitude applies to an mlp or mlp_int8 body; this policy has a table body"
    )
    assert error(lambda: prune_neurons(table, np.zeros((3,)), keep=0.5)) == (
        "prune_neurons applies to an mlp body; this policy has a table body"
    )
    assert error(lambda: prune_magnitude(cartpole_like(), 0.5, scope="row")) == (
        "prune_magnitude: scope 'row'; use global or layer"
    )


# --- prune_neurons -------------------------------------------------------------------------


def test_prune_neurons_builds_a_smaller_dense_mlp_with_the_derived_bytes() -> None:
    parent = cartpole_like()
    calibration = RNG.uniform(-1, 1, (300, 4)).astype(np.float32)
    child = prune_neurons(parent, calibration, keep=0.25)
    assert [la.W.shape for la in child.body.layers] == [(4, 16), (16, 16), (16, 2)]  # type: ignore[union-attr]
    # (4·16 + 16) + (16·16 + 16) + (16·2 + 2) = 386 float32 parameters, + 32 normalize bytes.
    assert child.parameters == 386 and policy_bytes(child) == 386 * 4 + 32
    assert child.macs == 4 * 16 + 16 * 16 + 16 * 2
    narrow = prune_neurons(parent, calibration, widths=(8, 3))
    assert [la.W.shape for la in narrow.body.layers] == [(4, 8), (8, 3), (3, 2)]  # type: ignore[union-attr]
    assert narrow.provenance["transforms"][-1]["widths"] == [8, 3]


def test_prune_neurons_to_the_same_widths_is_the_identity() -> None:
    parent = cartpole_like()
    obs = RNG.uniform(-1, 1, (300, 4)).astype(np.float32)
    same = prune_neurons(parent, obs, keep=1.0)
    for a, b in zip(parent.body.layers, same.body.layers, strict=True):  # type: ignore[union-attr]
        assert np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)


def dyadic_net() -> Policy:
    """4-6-5-3 relu with weights in eighths and small biases: every sum is exact in float32,
    whatever the order, so outputs can be compared bit for bit. Hidden neuron 2 of layer 0
    has all-zero outgoing weights; neuron 4 of layer 1 is a constant 0.25 (no inputs, relu
    of its bias) with outgoing weights; both matter least."""
    rng = np.random.default_rng(5)
    w0 = rng.integers(-8, 9, (4, 6)) / 8
    w1 = rng.integers(-8, 9, (6, 5)) / 8
    w1[2] = 0.0  # neuron 2 of layer 0 reaches nothing
    w1[:, 4] = 0.0
    b1 = rng.integers(-4, 5, 5) / 8
    b1[4] = 0.25  # neuron 4 of layer 1 is constant
    w2 = rng.integers(-8, 9, (5, 3)) / 8
    w2[4] = [1 / 64, -1 / 64, 1 / 32]  # small: the least important neuron of layer 1
    body = MLP((Dense(w0, rng.integers(-4, 5, 6) / 8, "relu"), Dense(w1, b1, "relu"),
                Dense(w2, np.zeros(3), "identity")))  # fmt: skip
    return mlp_policy(MLP(tuple(
        Dense(la.W.astype(np.float32), la.b.astype(np.float32), la.activation) for la in body.layers
    )))  # fmt: skip


def test_removing_a_neuron_without_outgoing_weights_or_a_constant_one_is_exact() -> None:
    parent = dyadic_net()
    obs = (RNG.integers(-8, 9, (2000, 4)) / 4).astype(np.float32)
    child = prune_neurons(parent, obs, widths=(5, 4))
    layers = child.body.layers  # type: ignore[union-attr]
    assert [la.W.shape for la in layers] == [(4, 5), (5, 4), (4, 3)]
    # The constant neuron's 0.25 × its outgoing weights went into the output bias.
    assert np.array_equal(layers[2].b, np.float32(0.25) * parent.body.layers[2].W[4])  # type: ignore[union-attr]

    def body_out(p: Policy) -> np.ndarray:
        return p.body.apply(obs)

    assert np.array_equal(body_out(child), body_out(parent))  # bit for bit
    assert np.array_equal(child.act(obs), parent.act(obs))


def test_prune_neurons_keeps_the_important_neurons() -> None:
    """The least important neurons go first: with half kept the actions mostly agree."""
    parent = cartpole_like()
    obs = RNG.uniform(-1, 1, (2000, 4)).astype(np.float32)
    important = prune_neurons(parent, obs, keep=0.5)
    agree = float(np.mean(important.act(obs) == parent.act(obs)))
    assert agree >= 0.9, agree


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keep": 0.0}, "prune_neurons: keep 0.0 must be in (0, 1] (the fraction of each hidden "
                        "layer's neurons kept)"),
        ({"keep": 1.5}, "prune_neurons: keep 1.5 must be in (0, 1] (the fraction of each hidden "
                        "layer's neurons kept)"),
        ({"widths": (8,)}, "prune_neurons: widths [8] has 1 entries but the mlp has 2 hidden "
                           "layers (64, 64 neurons)"),
        ({"widths": (8, 65)}, "prune_neurons: width 65 for hidden layer 1 must be from 1 to its "
                              "64 neurons"),
        ({"widths": (8, 0)}, "prune_neurons: width 0 for hidden layer 1 must be from 1 to its "
                             "64 neurons"),
        ({}, "prune_neurons: give exactly one of keep (the fraction of each hidden layer's "
             "neurons kept, e.g. 0.25) or widths (one count per hidden layer)"),
        ({"keep": 0.5, "widths": (8, 8)}, "prune_neurons: give exactly one of keep (the fraction "
         "of each hidden layer's neurons kept, e.g. 0.25) or widths (one count per hidden layer)"),
    ],
)  # fmt: skip
def test_prune_neurons_refuses_bad_arguments(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(PolicyError) as err:
        prune_neurons(cartpole_like(), np.zeros((10, 4), np.float32), **kwargs)
    assert str(err.value) == message


def test_prune_neurons_refuses_bad_calibration_and_int8() -> None:
    parent = cartpole_like()
    with pytest.raises(PolicyError) as err:
        prune_neurons(parent, np.zeros((10, 3), np.float32), keep=0.5)
    assert str(err.value) == ("prune_neurons: calibration_obs has shape [10, 3]; expected "
                              "[n, 4] with n ≥ 1 observations")  # fmt: skip
    q = quantize_int8(parent, np.zeros((10, 4), np.float32))
    with pytest.raises(PolicyError) as err:
        prune_neurons(q, np.zeros((10, 4), np.float32), keep=0.5)
    assert str(err.value) == ("prune_neurons applies to an mlp body; this policy has a mlp_int8 "
                              "body (prune before quantizing to int8)")  # fmt: skip


# --- C export of sparse layers -----------------------------------------------------------------


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_c_export_runs_sparse_layers_through_csr_and_saves_flash(tmp_path: Path) -> None:
    norm = Normalize(np.zeros(3), np.array([0.5, 0.5, 16.0]))
    parent = Policy(box(3), box(1), (norm,), random_mlp([3, 64, 64, 1], "relu", 2),
                    Head("clip", np.array([-2.0]), np.array([2.0])))  # fmt: skip
    child = prune_magnitude(parent, 0.9, scope="layer")
    result = export_c(child, tmp_path / "c")
    source = (tmp_path / "c" / "policy.c").read_text()
    assert source.count("rlb_sparse_f32_uint8_uint16(") == 4 and "rlb_dense_f32" not in source
    # Per layer, 90 % zeros but each output keeps its largest weight: layer 0 (3x64) keeps
    # 64 (CSR 64·5 + 65·2 = 450 < 768 dense), layer 1 (64x64) 410 (410·5 + 130 = 2180 <
    # 16384), layer 2 (64x1) 6 (6·5 + 2·2 = 34 < 256).
    kept = [int((la.W != 0).sum()) for la in child.body.layers]  # type: ignore[union-attr]
    assert kept == [64, 410, 6]
    biases, constants = (64 + 64 + 1) * 4, 3 * 4 * 2 + 2 * 4  # normalize; clip low/high
    assert result.flash_bytes == 450 + 2180 + 34 + biases + constants == 3212
    assert result.flash_bytes == policy_bytes(child)
    program = tmp_path / "prog"
    run = subprocess.run(["gcc", *CFLAGS, str(tmp_path / "c" / "policy.c"),
                          str(tmp_path / "c" / "main.c"), "-o", str(program)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    obs = RNG.uniform(-1.5, 1.5, (10_000, 3)).astype(np.float32) * [1, 1, 8]
    text = "\n".join(" ".join(repr(float(v)) for v in row) for row in obs) + "\n"
    out = subprocess.run([str(program)], input=text, capture_output=True, text=True, check=True)
    got = np.array([float(v) for v in out.stdout.split()], dtype=np.float32)
    assert np.abs(got - child.act(obs)[:, 0]).max() <= 1e-5
