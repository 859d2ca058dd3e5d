"""The framework-free policy: runtime, counting, save/load round trip, corrupt files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rlbudget.compress.tabular import pack_table, quantize_linear
from rlbudget.envs import SpaceSpec, env_spec
from rlbudget.errors import PolicyError
from rlbudget.policy import (
    MLP,
    Dense,
    Discretize,
    Head,
    Linear,
    Normalize,
    OneHot,
    Policy,
    Table,
    TileCode,
    load_policy,
    save_policy,
)

RNG = np.random.default_rng(0)


def f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def cartpole_mlp() -> Policy:
    s = env_spec("CartPole-v1", measure_steps=0)
    body = MLP((Dense(f32(4, 8), f32(8), "tanh"), Dense(f32(8, 2), f32(2))))
    norm = Normalize(f32(4), np.abs(f32(4)) + 0.5, clip=5.0)
    return Policy(s.observation, s.action, (norm,), body, Head("argmax"), {"algorithm": "ppo"})


def cartpole_table() -> Policy:
    s = env_spec("CartPole-v1", measure_steps=0)
    disc = Discretize(np.array([-2.4, -3, -0.21, -3]), np.array([2.4, 3, 0.21, 3]), (3, 3, 6, 6))
    return Policy(s.observation, s.action, (disc,), Table(f32(3 * 3 * 6 * 6, 2)), Head("argmax"))


def frozenlake_table() -> Policy:
    s = env_spec("FrozenLake-v1", measure_steps=0)
    return Policy(s.observation, s.action, (), Table(f32(16, 4)), Head("argmax"))


def frozenlake_onehot_mlp() -> Policy:
    s = env_spec("FrozenLake-v1", measure_steps=0)
    body = MLP((Dense(f32(16, 4), f32(4), "relu"), Dense(f32(4, 4), f32(4))))
    return Policy(s.observation, s.action, (OneHot(16),), body, Head("argmax"))


def mountaincar_tiles(hash_size: int | None = None) -> Policy:
    s = env_spec("MountainCar-v0", measure_steps=0)
    tc = TileCode(np.array([-1.2, -0.07]), np.array([0.6, 0.07]), 8, 8, hash_size)
    return Policy(
        s.observation, s.action, (tc,), Linear(f32(tc.features, 3), f32(3)), Head("argmax")
    )


def pendulum_linear_clip() -> Policy:
    s = env_spec("Pendulum-v1", measure_steps=0)
    low, high = np.array([-2.0]), np.array([2.0])
    return Policy(s.observation, s.action, (), Linear(f32(3, 1), f32(1)), Head("clip", low, high))


def pendulum_mlp_tanh() -> Policy:
    s = env_spec("Pendulum-v1", measure_steps=0)
    body = MLP((Dense(f32(3, 16), f32(16), "relu"), Dense(f32(16, 1), f32(1))))
    head = Head("tanh_rescale", np.array([-2.0]), np.array([2.0]))
    return Policy(s.observation, s.action, (), body, head, {"algorithm": "sac", "seed": 3})


def taxi_packed() -> Policy:
    s = env_spec("Taxi-v4", measure_steps=0)
    return pack_table(Policy(s.observation, s.action, (), Table(f32(500, 6)), Head("argmax")))


BUILDERS: dict[str, Callable[[], Policy]] = {
    "cartpole-mlp": cartpole_mlp,
    "cartpole-table": cartpole_table,
    "frozenlake-table": frozenlake_table,
    "frozenlake-onehot-mlp": frozenlake_onehot_mlp,
    "mountaincar-tiles": mountaincar_tiles,
    "mountaincar-tiles-hashed": lambda: mountaincar_tiles(512),
    "pendulum-linear-clip": pendulum_linear_clip,
    "pendulum-mlp-tanh": pendulum_mlp_tanh,
    "taxi-packed": taxi_packed,
    "cartpole-packed": lambda: pack_table(cartpole_table()),
    "mountaincar-tiles-int16": lambda: quantize_linear(mountaincar_tiles()),
    "pendulum-linear-int8": lambda: quantize_linear(pendulum_linear_clip(), "int8"),
}


def observations(space: SpaceSpec, n: int = 1000) -> np.ndarray:
    if space.kind == "discrete":
        assert space.n is not None
        return RNG.integers(0, space.n, size=n)
    low = np.nan_to_num(np.asarray(space.low), neginf=-5.0).clip(-5, 5)
    high = np.nan_to_num(np.asarray(space.high), posinf=5.0).clip(-5, 5)
    return RNG.uniform(low * 1.2, high * 1.2, size=(n, space.dim)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_round_trip_bit_identical(name: str, tmp_path: Path) -> None:
    p = BUILDERS[name]()
    save_policy(p, tmp_path / "pol")
    q = load_policy(tmp_path / "pol")
    a, b = p.arrays(), q.arrays()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    obs = observations(p.observation_space)
    assert np.array_equal(p.act(obs), q.act(obs))
    assert dict(q.provenance) == dict(p.provenance)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_batch_equals_single(name: str) -> None:
    p = BUILDERS[name]()
    obs = observations(p.observation_space, 50)
    batch = p.act(obs)
    for i in range(len(obs)):
        one = p.act(obs[i])
        if p.action_space.kind == "discrete":
            assert isinstance(one, int) and one == batch[i]
        else:
            assert one.dtype == np.float32 and np.array_equal(one, batch[i])


def test_actions_in_space() -> None:
    p = pendulum_mlp_tanh()
    a = p.act(observations(p.observation_space))
    assert a.shape == (1000, 1) and a.min() >= -2.0 and a.max() <= 2.0
    c = pendulum_linear_clip().act(observations(p.observation_space) * 100)
    assert c.min() == -2.0 and c.max() == 2.0  # clipped to the bounds


def test_discretize_by_hand() -> None:
    d = Discretize(np.array([0.0, -1.0]), np.array([1.0, 1.0]), (4, 2))
    x = np.array([[0.0, -1.0], [0.99, 0.99], [0.3, 0.5], [-7.0, 7.0]])
    # row-major index = i0 * 2 + i1; out-of-range values clip to the edge bins
    assert d.apply(x).tolist() == [0, 7, 3, 1]


def test_tile_coding_one_feature_per_tiling() -> None:
    tc = TileCode(np.array([-1.2, -0.07]), np.array([0.6, 0.07]), 8, 8)
    idx = tc.apply(np.array([[-0.5, 0.0], [0.6, 0.07]]))
    assert idx.shape == (2, 8)
    per = 9 * 9
    for t in range(8):  # each tiling's index lies in its own block
        assert np.all((idx[:, t] >= t * per) & (idx[:, t] < (t + 1) * per))
    hashed = TileCode(tc.low, tc.high, 8, 8, 64).apply(np.array([[-0.5, 0.0]]))
    assert hashed.min() >= 0 and hashed.max() < 64


def test_counts() -> None:
    p = cartpole_mlp()
    assert p.parameters == 4 * 8 + 8 + 8 * 2 + 2
    assert p.macs == 4 * 8 + 8 * 2
    assert p.buffer_bytes == 4 * (4 + 8)  # the largest pair of live activations, fp32
    assert p.bytes_by_dtype() == {"float32": 4 * (58 + 4 + 4)}  # body + normalize mean/var
    t = mountaincar_tiles()
    assert t.macs == 8 * 3 and t.parameters == 8 * 81 * 3 + 3
    assert frozenlake_table().macs == 0


# --- corrupt files: one exact message each ---------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return save_policy(cartpole_mlp(), tmp_path / "pol")


def rewrite_json(folder: Path, edit: Callable[[dict], None]) -> None:  # type: ignore[type-arg]
    doc = json.loads((folder / "policy.json").read_text())
    edit(doc)
    (folder / "policy.json").write_text(json.dumps(doc))


def rewrite_arrays(folder: Path, edit: Callable[[dict], None]) -> None:  # type: ignore[type-arg]
    from safetensors.numpy import load, save

    arrays = dict(load((folder / "policy.safetensors").read_bytes()))
    edit(arrays)
    (folder / "policy.safetensors").write_bytes(save(arrays))


def load_error(folder: Path) -> str:
    with pytest.raises(PolicyError) as e:
        load_policy(folder)
    return str(e.value)


def test_missing_folder(tmp_path: Path) -> None:
    assert load_error(tmp_path / "nope") == (
        f"{tmp_path / 'nope'}: no such policy folder; give the folder that holds policy.json"
    )


def test_missing_file(saved: Path) -> None:
    (saved / "policy.safetensors").unlink()
    assert load_error(saved) == (
        f"{saved / 'policy.safetensors'}: missing; a policy folder holds policy.json and "
        "policy.safetensors"
    )


def test_truncated_safetensors(saved: Path) -> None:
    data = (saved / "policy.safetensors").read_bytes()
    (saved / "policy.safetensors").write_bytes(data[: len(data) // 2])
    msg = load_error(saved)
    assert msg.startswith(f"{saved / 'policy.safetensors'}: not a readable safetensors file (")
    assert msg.endswith("); it is truncated or corrupt")


def test_corrupt_json(saved: Path) -> None:
    (saved / "policy.json").write_text("{not json")
    assert load_error(saved).startswith(f"{saved / 'policy.json'}: not valid JSON (")


def test_wrong_shape(saved: Path) -> None:
    rewrite_arrays(saved, lambda a: a.update({"body.1.b": np.zeros(3, np.float32)}))
    assert load_error(saved) == (
        f"{saved}: body (mlp) layer 1: array 'body.1.b' has shape [3]; expected [2]"
    )


def test_wrong_dtype(saved: Path) -> None:
    rewrite_arrays(saved, lambda a: a.update({"body.0.W": a["body.0.W"].astype(np.float64)}))
    assert load_error(saved) == (
        f"{saved}: body (mlp) layer 0: array 'body.0.W' has dtype float64; expected float32, "
        "float16"
    )


def test_nan_weights(saved: Path) -> None:
    def poison(a: dict) -> None:  # type: ignore[type-arg]
        w = a["body.0.W"].copy()
        w[0, 0] = np.nan
        a["body.0.W"] = w

    rewrite_arrays(saved, poison)
    assert load_error(saved) == (
        f"{saved}: body (mlp) layer 0: array 'body.0.W' contains NaN or inf; retrain or re-export"
    )


def test_unknown_body_kind(saved: Path) -> None:
    rewrite_json(saved, lambda d: d["body"].update({"kind": "transformer"}))
    assert load_error(saved) == (
        f"{saved}: unknown body kind 'transformer'; this rlbudget knows mlp, mlp_int8, table, "
        "packed_table, linear, cascade, cnn, cnn_int8 (a newer rlbudget may have written it)"
    )


def test_newer_schema(saved: Path) -> None:
    rewrite_json(saved, lambda d: d.update({"schema_version": 99}))
    assert load_error(saved) == (
        f"{saved}: schema version 99 is newer than this rlbudget reads (2); upgrade rlbudget "
        "(pip install -U rlbudget)"
    )


def test_layer_chain_mismatch(saved: Path) -> None:
    rewrite_arrays(saved, lambda a: a.update({"body.1.W": np.zeros((7, 2), np.float32)}))
    assert load_error(saved) == f"{saved}: body (mlp) layer 1: W has 7 inputs but receives 8"


def test_save_refuses_a_non_policy_folder(tmp_path: Path) -> None:
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(PolicyError, match="exists and is not a folder rlbudget wrote"):
        save_policy(cartpole_mlp(), other)
    assert (other / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]  # no temp folder left


def test_save_replaces_a_policy(tmp_path: Path) -> None:
    save_policy(cartpole_mlp(), tmp_path / "pol")
    save_policy(frozenlake_table(), tmp_path / "pol")
    assert isinstance(load_policy(tmp_path / "pol").body, Table)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pol"]


def test_show_cli(saved: Path) -> None:
    from typer.testing import CliRunner

    from rlbudget.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["show", str(saved), "--json"])
    assert r.exit_code == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["preprocess"] == ["normalize"] and info["body"] == "mlp"
    assert info["parameters"] == 58 and info["macs"] == 48
    assert info["bytes"] == 4 * 66 and info["provenance"] == {"algorithm": "ppo"}
    r = runner.invoke(app, ["show", str(saved)])
    assert r.exit_code == 0 and "normalize → mlp → argmax" in r.stdout


def test_show_corrupt_exit_2(saved: Path) -> None:
    from typer.testing import CliRunner

    from rlbudget.cli import app

    rewrite_json(saved, lambda d: d.update({"schema_version": 99}))
    r = CliRunner().invoke(app, ["show", str(saved)])
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.startswith(f"error: {saved}: schema version 99 is newer")


def test_policy_runtime_does_not_import_torch(saved: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from rlbudget.policy import load_policy\n"
        f"print(load_policy({str(saved)!r}).act([0.1, 0.0, 0.0, 0.0]))\n"
        "heavy = ('torch', 'stable_baselines3')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "[]"


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "missing-arrays": lambda f: (f / "policy.safetensors").unlink(),
    "missing-json": lambda f: (f / "policy.json").unlink(),
    "truncated": lambda f: (f / "policy.safetensors").write_bytes(
        (f / "policy.safetensors").read_bytes()[:100]
    ),
    "wrong-shape": lambda f: rewrite_arrays(
        f, lambda a: a.update({"body.1.b": np.zeros(3, np.float32)})
    ),
    "wrong-dtype": lambda f: rewrite_arrays(
        f, lambda a: a.update({"body.0.b": a["body.0.b"].astype(np.int32)})
    ),
    "inf": lambda f: rewrite_arrays(f, lambda a: a.update({"body.0.b": a["body.0.b"] * np.inf})),
    "unknown-kind": lambda f: rewrite_json(f, lambda d: d["head"].update({"kind": "softmax"})),
    "newer-schema": lambda f: rewrite_json(f, lambda d: d.update({"schema_version": 3})),
    # a structure of the wrong JSON type where an object or list belongs (hand-edited files)
    "body-string": lambda f: rewrite_json(f, lambda d: d.update({"body": "mlp"})),
    "body-missing": lambda f: rewrite_json(f, lambda d: d.pop("body")),
    "head-string": lambda f: rewrite_json(f, lambda d: d.update({"head": "argmax"})),
    "preprocess-string": lambda f: rewrite_json(f, lambda d: d.update({"preprocess": "x"})),
    "layers-null": lambda f: rewrite_json(f, lambda d: d["body"].update({"layers": None})),
    "layer-string": lambda f: rewrite_json(f, lambda d: d["body"].update({"layers": ["x"]})),
}

STRUCTURE_ERRORS = {
    "body-string": "'body' must be a JSON object, not \"mlp\"; the file is corrupt",
    "body-missing": "'body' must be a JSON object, not null; the file is corrupt",
    "head-string": "'head' must be a JSON object, not \"argmax\"; the file is corrupt",
    "preprocess-string": "'preprocess' must be a JSON list, not \"x\"; the file is corrupt",
    "layers-null": "every preprocess step and body layer must be a JSON object; the file is "
    "corrupt",
    "layer-string": "every preprocess step and body layer must be a JSON object; the file is "
    "corrupt",
}


@pytest.mark.parametrize("case", sorted(STRUCTURE_ERRORS))
def test_wrong_json_types_name_the_key(case: str, saved: Path) -> None:
    CORRUPTIONS[case](saved)
    assert load_error(saved) == f"{saved}: {STRUCTURE_ERRORS[case]}"


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_every_corrupt_policy_is_one_line_exit_2(case: str, saved: Path) -> None:
    from typer.testing import CliRunner

    from rlbudget.cli import app

    CORRUPTIONS[case](saved)
    expected = load_error(saved)
    for command in (["show", str(saved)], ["evaluate", str(saved), "--env", "CartPole-v1"]):
        r = CliRunner().invoke(app, command)
        assert r.exit_code == 2, (case, command, r.output)
        assert r.stdout == "" and r.stderr == f"error: {expected}\n"
