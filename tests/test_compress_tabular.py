"""Packing a table to its greedy actions and quantizing linear weights."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rlbudget.compress.tabular import pack_table, policy_bytes, quantize_linear
from rlbudget.envs import SpaceSpec, env_spec
from rlbudget.errors import PolicyError
from rlbudget.policy import Head, Linear, Policy, Table, TileCode, load_policy, save_policy
from rlbudget.policy.model import PackedTable

RNG = np.random.default_rng(7)


def discrete(n: int) -> SpaceSpec:
    return SpaceSpec("discrete", (), n, None, None, "int64")


def table_policy(states: int, actions: int, values: np.ndarray | None = None) -> Policy:
    if values is None:
        values = RNG.standard_normal((states, actions)).astype(np.float32)
    return Policy(discrete(states), discrete(actions), (), Table(values), Head("argmax"),
                  {"algorithm": "q-learning", "transforms": []})  # fmt: skip


@pytest.mark.parametrize("actions", [1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 200, 256])
@pytest.mark.parametrize("states", [1, 5, 16, 500, 1001])
def test_pack_keeps_every_greedy_action(states: int, actions: int) -> None:
    p = table_policy(states, actions)
    q = pack_table(p)
    assert isinstance(q.body, PackedTable)
    bits = max(1, math.ceil(math.log2(actions)))
    assert q.body.bits == bits
    # Exactly ⌈states × bits / 8⌉ bytes of table.
    assert q.body.packed.nbytes == -(-states * bits // 8)
    all_states = np.arange(states)
    assert np.array_equal(q.act(all_states), p.act(all_states))
    assert np.array_equal(q.body.actions(), np.argmax(p.body.values, axis=1))  # type: ignore[union-attr]
    assert [q.act(s) for s in range(min(states, 20))] == [p.act(s) for s in range(min(states, 20))]


def test_pack_keeps_argmax_tie_breaking() -> None:
    # Ties go to the first maximum, as numpy's argmax (and the C export) choose.
    values = np.array([[1, 1, 0], [0, 2, 2], [3, 3, 3], [0, 0, 0]], dtype=np.float32)
    q = pack_table(table_policy(4, 3, values))
    assert q.act(np.arange(4)).tolist() == [0, 1, 0, 0]


def test_pack_layout_by_hand() -> None:
    # 4 actions → 2 bits per state, LSB first: greedy actions (2, 1, 0, 3, 1) fill byte 0
    # from its lowest bits up (state 0 = 0b10 in bits 0-1, state 1 = 0b01 in bits 2-3, …)
    # = 0b11_00_01_10; state 4 = 0b01 starts byte 1.
    values = np.eye(4, dtype=np.float32)[[2, 1, 0, 3, 1]]
    q = pack_table(table_policy(5, 4, values))
    assert q.body.packed.tolist() == [0b11000110, 0b00000001]  # type: ignore[union-attr]


def test_pack_taxi_size_and_provenance(tmp_path: Path) -> None:
    s = env_spec("Taxi-v4", measure_steps=0)
    p = Policy(s.observation, s.action, (), Table(RNG.standard_normal((500, 6)).astype(np.float32)),
               Head("argmax"), {"transforms": []})  # fmt: skip
    q = pack_table(p)
    assert policy_bytes(p) == 500 * 6 * 4
    assert policy_bytes(q) == 188  # ⌈500 × 3 / 8⌉
    assert q.parameters == 500
    (t,) = q.provenance["transforms"]
    assert t == {"method": "pack_table", "bits": 3, "bytes_before": 12_000, "bytes_after": 188}
    save_policy(q, tmp_path / "packed")
    assert (tmp_path / "packed" / "policy.safetensors").stat().st_size < 500
    r = load_policy(tmp_path / "packed")
    assert np.array_equal(r.act(np.arange(500)), p.act(np.arange(500)))


def test_pack_refuses_other_bodies() -> None:
    s = env_spec("MountainCar-v0", measure_steps=0)
    tc = TileCode(np.array([-1.2, -0.07]), np.array([0.6, 0.07]), 4, 4)
    lin = Policy(s.observation, s.action, (tc,), Linear(np.zeros((tc.features, 3), np.float32),
                 np.zeros(3, np.float32)), Head("argmax"))  # fmt: skip
    with pytest.raises(PolicyError) as e:
        pack_table(lin)
    assert str(e.value) == (
        "pack_table applies to a value table with an argmax head; this policy has a linear "
        "body and a argmax head"
    )


def mountaincar_linear(w: np.ndarray, b: np.ndarray | None = None) -> Policy:
    s = env_spec("MountainCar-v0", measure_steps=0)
    tc = TileCode(np.array([-1.2, -0.07]), np.array([0.6, 0.07]), 8, 8)
    bias = np.zeros(3, np.float32) if b is None else b
    return Policy(s.observation, s.action, (tc,), Linear(w, bias), Head("argmax"),
                  {"transforms": []})  # fmt: skip


def mountaincar_obs(n: int) -> np.ndarray:
    return RNG.uniform([-1.2, -0.07], [0.6, 0.07], size=(n, 2)).astype(np.float32)


@pytest.mark.parametrize("dtype", ["int16", "int8"])
def test_quantize_linear_error_bound(dtype: str) -> None:
    w = (RNG.standard_normal((648, 3)) * 20).astype(np.float32)
    b = np.array([0.5, -1.0, 2.0], np.float32)
    p = mountaincar_linear(w, b)
    q = quantize_linear(p, dtype)
    body = q.body
    assert isinstance(body, Linear) and body.scale is not None
    assert body.W.dtype == np.dtype(dtype) and body.b.dtype == np.int32
    scale = float(body.scale[0])
    assert scale == pytest.approx(np.abs(w).max() / {"int16": 32767, "int8": 127}[dtype], rel=1e-6)
    # Every weight moves by at most half a step; a sum of 8 tiles + bias by at most 4.5 steps.
    assert np.abs(body.W * scale - w).max() <= scale / 2 * (1 + 1e-5)
    obs = mountaincar_obs(2000)
    tiles = p.preprocess[0].apply(obs)
    exact = p.body.apply(tiles)
    approx = body.apply(tiles)
    assert np.abs(approx - exact).max() <= 4.5 * scale * (1 + 1e-4)
    assert policy_bytes(q) == 648 * 3 * np.dtype(dtype).itemsize + 3 * 4 + 3 * 4 + 2 * 2 * 4


def test_quantize_linear_int16_keeps_mountaincar_actions() -> None:
    # Values spread like a trained MountainCar Q (−60 … 0): int16 steps of ≈0.002 almost
    # never flip the greedy action.
    w = RNG.uniform(-7.5, 0, size=(648, 3)).astype(np.float32)
    p = mountaincar_linear(w)
    q = quantize_linear(p)
    obs = mountaincar_obs(10_000)
    agree = float(np.mean(p.act(obs) == q.act(obs)))
    assert agree >= 0.999


def test_quantized_sums_are_exact_integers() -> None:
    w = RNG.uniform(-1, 1, size=(648, 3)).astype(np.float32)
    q = quantize_linear(mountaincar_linear(w))
    body = q.body
    assert isinstance(body, Linear) and body.scale is not None
    tiles = q.preprocess[0].apply(mountaincar_obs(100))
    acc = body.W[tiles].astype(np.int64).sum(axis=1) + body.b
    assert np.array_equal(body.apply(tiles), acc.astype(np.float32) * body.scale)


def test_quantize_refuses_a_table_and_a_quantized_body() -> None:
    prefix = "quantize_linear applies to a float linear body; this policy has a"
    with pytest.raises(PolicyError) as e:
        quantize_linear(table_policy(4, 2))
    assert str(e.value) == f"{prefix} table body"
    q = quantize_linear(mountaincar_linear(np.ones((648, 3), np.float32)))
    with pytest.raises(PolicyError) as e:
        quantize_linear(q)
    assert str(e.value) == f"{prefix} linear body that is already quantized"
    with pytest.raises(PolicyError) as e:
        quantize_linear(mountaincar_linear(np.ones((648, 3), np.float32)), "int4")
    assert str(e.value) == "quantize_linear: dtype 'int4'; use int8 or int16"


@pytest.fixture
def packed_dir(tmp_path: Path) -> Path:
    path = tmp_path / "packed"
    save_policy(pack_table(table_policy(10, 5)), path)
    return path


def _edit(folder: Path, change: dict[str, object]) -> None:
    doc = json.loads((folder / "policy.json").read_text())
    doc["body"].update(change)
    (folder / "policy.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bits": 9}, "body (packed_table): bits must be an integer from 1 to 8, not 9"),
        (
            {"states": 11},
            "body (packed_table): the table has 11 states but the preprocess produces 10",
        ),
        ({"bits": 2}, "body (packed_table): array 'body.packed' has shape [4]; expected [3]"),
    ],
)
def test_corrupt_packed_table(packed_dir: Path, change: dict[str, object], message: str) -> None:
    _edit(packed_dir, change)
    with pytest.raises(PolicyError) as e:
        load_policy(packed_dir)
    assert str(e.value) == f"{packed_dir}: {message}"


def test_packed_action_out_of_range(tmp_path: Path) -> None:
    # 5 actions need 3 bits, which can also hold 5, 6, 7: a corrupt table must not act them.
    p = pack_table(table_policy(8, 5))
    bad = Policy(p.observation_space, p.action_space, (),
                 PackedTable(np.full(3, 0xFF, np.uint8), 3, 8), Head("identity"))  # fmt: skip
    save_policy(bad, tmp_path / "bad")
    with pytest.raises(PolicyError) as e:
        load_policy(tmp_path / "bad")
    assert str(e.value) == (
        f"{tmp_path / 'bad'}: body (packed_table): holds action 7 but the action space has "
        "5 actions"
    )


def test_packed_table_needs_identity_head(packed_dir: Path) -> None:
    doc = json.loads((packed_dir / "policy.json").read_text())
    doc["head"] = {"kind": "argmax"}
    (packed_dir / "policy.json").write_text(json.dumps(doc))
    with pytest.raises(PolicyError, match="a packed_table gives action indices: it needs head "
                       "'identity'"):  # fmt: skip
        load_policy(packed_dir)


def test_quantized_linear_needs_int_weights(tmp_path: Path) -> None:
    q = quantize_linear(mountaincar_linear(np.ones((648, 3), np.float32)))
    save_policy(q, tmp_path / "q")
    from safetensors.numpy import load_file, save_file

    arrays = load_file(tmp_path / "q" / "policy.safetensors")
    arrays["body.W"] = arrays["body.W"].astype(np.float32)
    save_file(arrays, tmp_path / "q" / "policy.safetensors")
    with pytest.raises(PolicyError) as e:
        load_policy(tmp_path / "q")
    assert str(e.value) == (
        f"{tmp_path / 'q'}: body (linear): array 'body.W' has dtype float32; expected int8, int16"
    )
