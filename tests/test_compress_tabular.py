"""Packing a table to its greedy actions and quantizing linear weights."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlbudget.compress.tabular import drop_unvisited, pack_table, policy_bytes, quantize_linear
from rlbudget.envs import SpaceSpec, env_spec
from rlbudget.errors import PolicyError
from rlbudget.policy import (
    Discretize,
    Head,
    Linear,
    Policy,
    Table,
    TileCode,
    load_policy,
    save_policy,
)
from rlbudget.policy.model import PackedTable
from tests.factories import discrete

RNG = np.random.default_rng(7)


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


# --- drop_unvisited -------------------------------------------------------------------------


def by_hand_table() -> Policy:
    """200 states, 4 actions: greedy action 3 on multiples of 10, 1 on other multiples of 5,
    2 elsewhere."""
    greedy = np.where(np.arange(200) % 10 == 0, 3, np.where(np.arange(200) % 5 == 0, 1, 2))
    return table_policy(200, 4, np.eye(4, dtype=np.float32)[greedy])


def test_drop_unvisited_by_hand(tmp_path: Path) -> None:
    p = by_hand_table()
    visited = np.arange(0, 200, 5)  # 20 states act 3, 20 act 1: a tie, the lower action wins
    q = drop_unvisited(p, visited)
    body = q.body
    assert isinstance(body, PackedTable) and body.stored is not None and body.rank is not None
    assert body.default == 1
    # Only the 20 visited states whose action is not the default are stored.
    tens = np.arange(200) % 10 == 0
    assert np.array_equal(np.unpackbits(body.stored, bitorder="little")[:200], tens)
    assert body.rank.dtype == np.uint16
    assert body.rank.tolist() == [0, 7, 13, 20]  # multiples of 10 below 0, 64, 128, 192
    assert body.packed.tolist() == [0xFF] * 5  # 20 × action 3 (0b11)
    # 25 bitmap + 4 × 2 rank + ⌈20 × 2 / 8⌉ actions = 38 bytes, against ⌈200 × 2 / 8⌉ = 50.
    assert policy_bytes(q) == 38 and policy_bytes(pack_table(p)) == 50
    assert q.parameters == 21  # 20 stored actions + the default
    assert q.provenance["transforms"] == [
        {"method": "pack_table", "bits": 2, "bytes_before": 3200, "bytes_after": 50},
        {"method": "drop_unvisited", "default_action": 1, "visited_states": 40,
         "non_default_states": 20, "stored": "bitmap", "bytes_before": 50, "bytes_after": 38},
    ]  # fmt: skip
    expected = np.where(tens, 3, 1)  # visited: their own action; unvisited (acting 2): 1
    states = np.arange(200)
    assert np.array_equal(q.act(states), expected)
    assert np.array_equal(body.actions(), expected)
    assert [q.act(int(s)) for s in states] == expected.tolist()
    save_policy(q, tmp_path / "sparse")
    r = load_policy(tmp_path / "sparse")
    assert np.array_equal(r.act(states), expected) and r.parameters == 21
    assert policy_bytes(r) == 38


@pytest.mark.parametrize(("default", "stored_bytes"), [(3, 38), (np.int64(2), 43)])
def test_drop_unvisited_given_default(default: int, stored_bytes: int, tmp_path: Path) -> None:
    # default 3: the 20 states acting 1 are stored; default 2 (no visited state acts 2):
    # all 40 visited states are, ⌈40 × 2 / 8⌉ = 10 bytes of actions.
    q = drop_unvisited(by_hand_table(), np.arange(0, 200, 5), default_action=default)
    body = q.body
    assert isinstance(body, PackedTable) and body.default == default
    assert type(body.default) is int  # a numpy integer is saved as a JSON number
    save_policy(q, tmp_path / "q")
    assert policy_bytes(q) == stored_bytes
    greedy = np.argmax(by_hand_table().body.values, axis=1)  # type: ignore[union-attr]
    visited = np.arange(200) % 5 == 0
    assert np.array_equal(q.act(np.arange(200)), np.where(visited, greedy, default))


def test_drop_unvisited_of_a_packed_table_and_twice() -> None:
    packed = pack_table(by_hand_table())
    q = drop_unvisited(packed, np.arange(0, 200, 5))
    assert np.array_equal(q.act(np.arange(200)), drop_unvisited(by_hand_table(),
                          np.arange(0, 200, 5)).act(np.arange(200)))  # fmt: skip
    # Again on the sparse form: every visited state acts 3, the default, so nothing but the
    # bitmap and ranks is left (25 + 8 bytes, no actions).
    again = drop_unvisited(q, np.arange(0, 100, 10))
    assert isinstance(again.body, PackedTable) and again.body.packed.size == 0
    assert policy_bytes(again) == 33 and again.parameters == 1
    assert np.array_equal(again.act(np.arange(200)), np.full(200, 3))


def grid_policy(bins: int = 100, actions: int = 8) -> Policy:
    """A continuous 2-D space discretized to bins × bins states, random greedy actions."""
    box = SpaceSpec("box", (2,), None, (-1.0, -1.0), (1.0, 1.0), "float32")
    disc = Discretize(np.array([-1.0, -1.0]), np.array([1.0, 1.0]), (bins, bins))
    values = RNG.standard_normal((bins * bins, actions)).astype(np.float32)
    return Policy(box, discrete(actions), (disc,), Table(values), Head("argmax"),
                  {"transforms": []})  # fmt: skip


def cell_centres(bins: int, states: np.ndarray) -> np.ndarray:
    """An observation inside each state (row-major cells of the grid over [-1, 1]²)."""
    row, col = np.divmod(states, bins)
    return (np.stack([row, col], axis=1) + 0.5) / bins * 2 - 1


def test_sparse_visits_of_a_discretized_space() -> None:
    p = grid_policy()
    visited = np.sort(RNG.choice(10_000, 300, replace=False))
    obs = cell_centres(100, np.repeat(visited, 3))  # states visited several times
    q = drop_unvisited(p, obs.astype(np.float32))
    body = q.body
    assert isinstance(body, PackedTable) and body.stored is not None
    greedy = np.argmax(p.body.values, axis=1)  # type: ignore[union-attr]
    default = int(np.bincount(greedy[visited], minlength=8).argmax())
    assert body.default == default
    others = int(np.sum(greedy[visited] != default))
    # 1,250 bitmap + 157 × 2 rank + ⌈others × 3 / 8⌉ against ⌈10,000 × 3 / 8⌉ = 3,750;
    # the discretizer's low and high (2 × 2 float32) on both sides.
    assert policy_bytes(q) == 16 + 1250 + 314 + -(-others * 3 // 8)
    assert policy_bytes(pack_table(p)) == 16 + 3750
    assert policy_bytes(q) < 0.45 * policy_bytes(pack_table(p))
    all_obs = cell_centres(100, np.arange(10_000)).astype(np.float32)
    expected = np.full(10_000, default)
    expected[visited] = greedy[visited]
    assert np.array_equal(q.act(all_obs), expected)


@pytest.mark.parametrize(
    ("actions", "visited", "stored_bytes"),
    [
        (2, 10, None),  # 1 bit: the bitmap alone (⌈200/8⌉ = 25 B) is as large as the table
        (4, 68, None),  # 25 + 4 × 2 + ⌈68 × 2 / 8⌉ = 50, not below ⌈200 × 2 / 8⌉ = 50
        (4, 64, 49),  # 25 + 8 + 16
        (6, 112, None),  # 25 + 8 + ⌈112 × 3 / 8⌉ = 75, not below ⌈200 × 3 / 8⌉ = 75
        (6, 109, 74),  # 25 + 8 + 41
    ],
)
def test_dense_when_the_bitmap_does_not_pay(
    actions: int, visited: int, stored_bytes: int | None
) -> None:
    # The first `visited` states are visited and none acts 0, the default given: all of
    # them are stored.
    greedy = np.arange(200) % actions
    greedy[:visited] = np.where(greedy[:visited] == 0, 1, greedy[:visited])
    p = table_policy(200, actions, np.eye(actions, dtype=np.float32)[greedy])
    q = drop_unvisited(p, np.arange(visited), default_action=0)
    body = q.body
    assert isinstance(body, PackedTable)
    step = q.provenance["transforms"][-1]
    assert step["non_default_states"] == visited
    if stored_bytes is None:
        assert body.stored is None and step["stored"] == "dense"
        assert policy_bytes(q) == -(-200 * body.bits // 8)
    else:
        assert body.stored is not None and step["stored"] == "bitmap"
        assert policy_bytes(q) == stored_bytes
    assert np.array_equal(q.act(np.arange(200)), np.where(np.arange(200) < visited, greedy, 0))


def test_drop_unvisited_errors() -> None:
    def error(p: Policy, obs: object, default: int | None = None) -> str:
        with pytest.raises(PolicyError) as e:
            drop_unvisited(p, np.asarray(obs), default_action=default)
        return str(e.value)

    from rlbudget.policy import MLP, Dense, OneHot

    mlp = Policy(discrete(4), discrete(2), (OneHot(4),),
                 MLP((Dense(np.ones((4, 2), np.float32), np.zeros(2, np.float32)),)),
                 Head("argmax"))  # fmt: skip
    assert error(mlp, [0, 1]) == (
        "drop_unvisited applies to a table or packed_table policy; this policy has a mlp body"
    )
    p = by_hand_table()
    for bad in (4, -1):
        assert error(p, [0, 1], bad) == (
            f"drop_unvisited: default_action {bad} is not an action; the action space has 4 "
            "actions (0 to 3)"
        )
    assert error(p, [[0], [1], [2]]) == (
        "drop_unvisited: visited_obs has shape [3, 1]; expected [n] (one row per observation)"
    )
    assert error(grid_policy(10), [0.5, 0.5]) == (
        "drop_unvisited: visited_obs has shape [2]; expected [n, 2] (one row per observation)"
    )
    assert error(p, [3, 200]) == (
        "drop_unvisited: visited_obs holds state 200 but the table has 200 states (0 to 199)"
    )
    assert error(p, np.zeros(0, np.int64)) == (
        "drop_unvisited: visited_obs is empty; give observations the policy visits, or a "
        "default_action"
    )
    # With a default, no visited state at all is fine: one action everywhere, no entries.
    q = drop_unvisited(p, np.zeros(0, np.int64), default_action=2)
    assert np.array_equal(q.act(np.arange(200)), np.full(200, 2)) and q.parameters == 1


def test_rank_grows_to_uint32_past_65535_entries() -> None:
    # 140,000 states of 8-bit actions (≥ 65,536 stored entries need uint32 ranks):
    # 17,500 bitmap + 2,188 × 4 rank + 70,000 actions = 96,252 < 140,000 bytes dense.
    states = 140_000
    actions = RNG.integers(1, 256, states)
    dense = Policy(discrete(states), discrete(256), (),
                   PackedTable(actions.astype(np.uint8), 8, states), Head("identity"),
                   {"transforms": []})  # fmt: skip
    q = drop_unvisited(dense, np.arange(0, states, 2), default_action=0)
    body = q.body
    assert isinstance(body, PackedTable) and body.rank is not None
    assert body.rank.dtype == np.uint32 and int(body.rank[-1]) == 69_984  # 2,187 × 32
    assert policy_bytes(q) == 96_252
    expected = np.where(np.arange(states) % 2 == 0, actions, 0)
    assert np.array_equal(q.act(np.arange(states)), expected)
    assert np.array_equal(body.actions(), expected)


@pytest.fixture
def sparse_dir(tmp_path: Path) -> Path:
    path = tmp_path / "sparse"
    save_policy(drop_unvisited(by_hand_table(), np.arange(0, 200, 5)), path)
    return path


def _edit_array(folder: Path, name: str, change: Callable[[np.ndarray], np.ndarray]) -> None:
    from safetensors.numpy import load_file, save_file

    arrays = load_file(folder / "policy.safetensors")
    arrays[name] = change(arrays[name])
    save_file(arrays, folder / "policy.safetensors")


def _set_byte(index: int, value: int) -> Callable[[np.ndarray], np.ndarray]:
    def change(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[index] = value
        return a

    return change


@pytest.mark.parametrize(
    ("array", "change", "message"),
    [
        # States 192 and 199 also stored: after the last rank, but 22 entries need 6 bytes.
        ("body.stored", _set_byte(24, 0x81), "array 'body.packed' has shape [5]; expected [6]"),
        ("body.stored", _set_byte(0, 0x03),
         "array 'body.rank' does not count the set bits of 'body.stored'; the file is corrupt, "
         "save the policy again"),
        ("body.rank", _set_byte(3, 19),
         "array 'body.rank' does not count the set bits of 'body.stored'; the file is corrupt, "
         "save the policy again"),
        ("body.stored", lambda a: a[:-1],
         "array 'body.stored' has shape [24]; expected [25]"),
        ("body.rank", lambda a: a.astype(np.int32),
         "array 'body.rank' has dtype int32; expected uint16, uint32"),
        ("body.packed", lambda a: a[:-1], "array 'body.packed' has shape [4]; expected [5]"),
    ],
)  # fmt: skip
def test_corrupt_sparse_table_arrays(
    sparse_dir: Path, array: str, change: Callable[[np.ndarray], np.ndarray], message: str
) -> None:
    _edit_array(sparse_dir, array, change)
    with pytest.raises(PolicyError) as e:
        load_policy(sparse_dir)
    assert str(e.value) == f"{sparse_dir}: body (packed_table): {message}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"default": 4}, "default action 4 but the action space has 4 actions"),
        ({"default": -1}, "default must be an action index ≥ 0, not -1"),
        ({"default": True}, "default must be an action index ≥ 0, not True"),
        ({"rank": "body.nothing"}, "array 'body.nothing' is missing from policy.safetensors; "
         "the policy is incomplete, save it again"),
    ],
)  # fmt: skip
def test_corrupt_sparse_table_structure(
    sparse_dir: Path, change: dict[str, object], message: str
) -> None:
    _edit(sparse_dir, change)
    with pytest.raises(PolicyError) as e:
        load_policy(sparse_dir)
    assert str(e.value) == f"{sparse_dir}: body (packed_table): {message}"


def test_sparse_padding_bits_must_be_clear(tmp_path: Path) -> None:
    # 203 states: the bitmap's last byte has 5 padding bits (states 203 … 207).
    p = table_policy(203, 4, np.eye(4, dtype=np.float32)[np.arange(203) % 4])
    path = tmp_path / "sparse"
    save_policy(drop_unvisited(p, np.arange(0, 203, 7), default_action=0), path)
    _edit_array(path, "body.stored", lambda a: a | np.eye(len(a), dtype=np.uint8)[-1] * 0x80)
    with pytest.raises(PolicyError) as e:
        load_policy(path)
    assert str(e.value) == (
        f"{path}: body (packed_table): array 'body.stored' has bits set past state 202; the "
        "file is corrupt, save the policy again"
    )


def test_c_export_is_exact_on_every_state(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from rlbudget.export import export_c
    from tests.test_export_c import CFLAGS, GCC, compile_program, run_program

    if GCC is None:
        pytest.skip("gcc is not installed: the C export is not compiled")
    grid = grid_policy()
    visited = cell_centres(100, RNG.choice(10_000, 300, replace=False)).astype(np.float32)
    hand = by_hand_table()
    odd = table_policy(203, 8, np.eye(8, dtype=np.float32)[1 + np.arange(203) * 5 % 7])
    cases = {  # policy, every state's observation (the grid's also outside its bounds)
        "sparse": (drop_unvisited(hand, np.arange(0, 200, 5)), np.arange(200)),
        "dense": (drop_unvisited(hand, np.arange(120), default_action=0), np.arange(200)),
        # 203 states: the bitmap's last byte and rank block are partial; 81 visited states in
        # a row, none acting the default, fill whole bitmap bytes (0xFF).
        "odd": (drop_unvisited(odd, np.arange(10, 91), default_action=0), np.arange(203)),
        "grid": (drop_unvisited(grid, visited), np.concatenate([
            cell_centres(100, np.arange(10_000)), RNG.uniform(-1.5, 1.5, (500, 2))])),
    }  # fmt: skip
    assert [cases[n][0].provenance["transforms"][-1]["stored"] for n in cases] == [
        "bitmap", "dense", "bitmap", "bitmap"]  # fmt: skip
    results = {name: export_c(p, tmp_path / name) for name, (p, _) in cases.items()}
    with ThreadPoolExecutor(2) as pool:
        programs = dict(
            zip(
                results,
                pool.map(lambda n: compile_program(tmp_path / n, results[n], CFLAGS), results),
                strict=True,
            )
        )
    for name, (p, obs) in cases.items():
        got = np.array([int(v) for v in run_program(programs[name], obs)])
        assert np.array_equal(got, p.act(obs)), name
        assert not results[name].needs_libm
    assert "math.h" not in (tmp_path / "sparse" / "policy.c").read_text()
    # Flash: 25 bitmap + 4 × 2 rank + 5 actions and one spare byte.
    assert results["sparse"].flash_bytes == 25 + 8 + 5 + 1


@settings(max_examples=60, deadline=None)
@given(
    states=st.integers(1, 700),
    actions=st.integers(2, 40),
    seed=st.integers(0, 2**32 - 1),
    share=st.floats(0.0, 1.0),
)
def test_drop_unvisited_any_table(states: int, actions: int, seed: int, share: float) -> None:
    # Any size (bitmap and rank blocks cut anywhere), any visited share: visited states keep
    # their greedy action, the others act the default, whichever storage was chosen, and
    # the numpy lookup (ranks) agrees with the unpacked actions and with a saved copy.
    rng = np.random.default_rng(seed)
    p = table_policy(states, actions, rng.standard_normal((states, actions)).astype(np.float32))
    visited = rng.random(states) < share
    visited[rng.integers(states)] = True
    q = drop_unvisited(p, np.repeat(np.nonzero(visited)[0], 2))
    body = q.body
    assert isinstance(body, PackedTable)
    greedy = np.argmax(p.body.values, axis=1)  # type: ignore[union-attr]
    default = q.provenance["transforms"][-1]["default_action"]
    assert default == int(np.bincount(greedy[visited], minlength=actions).argmax())
    expected = np.where(visited, greedy, default)
    every = np.arange(states)
    assert np.array_equal(q.act(every), expected)
    assert np.array_equal(body.actions(), expected)
    dense_bytes = -(-states * body.bits // 8)
    assert (body.stored is None) == (policy_bytes(q) == dense_bytes)
    assert policy_bytes(q) <= dense_bytes
    doc_arrays = q.arrays()
    from rlbudget.policy.io import from_document, to_document

    r = from_document(to_document(q)[0], doc_arrays, "memory")
    assert np.array_equal(r.act(every), expected)
