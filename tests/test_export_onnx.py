"""ONNX export: every graph passes ``onnx.checker`` (full check) and onnxruntime gives
:meth:`Policy.act`'s actions on 10,000 observations: int8, tables and tile-coded linear bit
for bit, fp32 within 1e-5 (discrete actions identical), fp16 within 1e-3."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import numpy_helper  # noqa: E402

from rlbudget.compress.fp16 import to_fp16  # noqa: E402
from rlbudget.compress.prune import prune_magnitude  # noqa: E402
from rlbudget.compress.quantize import quantize_int8  # noqa: E402
from rlbudget.compress.tabular import drop_unvisited, pack_table  # noqa: E402
from rlbudget.errors import PolicyError, RlbudgetError  # noqa: E402
from rlbudget.export import OnnxExportResult, export_onnx  # noqa: E402
from rlbudget.export.onnx import (  # noqa: E402
    ELEMENT_TYPES,
    INT8,
    INT64,
    IR_VERSION,
    MISSING_EXTRA,
    OPSET,
    _Graph,
    _quantize_input,
    _requantize,
    run_onnx,
)
from rlbudget.policy import Head, Linear, Normalize, Policy, QDense, Table, TileCode  # noqa: E402
from rlbudget.policy.model import (  # noqa: E402
    INT32_MAX,
    INT32_MIN,
    multiply_by_quantized_multiplier,
    quantize_input,
)
from tests.factories import (  # noqa: E402
    N_OBS,
    cartpole_mlp,
    cartpole_table,
    env_policy,
    f32,
    frozenlake_mlp,
    int8,
    observations,
    pendulum_mlp,
    random_mlp,
    rollouts,
)

from .conftest import ZOO, needs_zoo  # noqa: E402
from .test_export_c import CASES  # noqa: E402

EXACT, FP32, FP16 = "exact", "fp32", "fp16"


def mountaincar_normalized_tiles() -> Policy:
    """normalize → hashed tile_code → linear: the preprocess steps chain."""
    rng = np.random.default_rng(8)
    norm = Normalize(np.array([-0.3, 0.0]), np.array([0.81, 0.0049]), clip=1.0)
    tc = TileCode(np.array([-1.0, -1.0]), np.array([1.0, 1.0]), 4, 6, 97)
    return env_policy("MountainCar-v0", (norm, tc), Linear(f32(rng, 97, 3), f32(rng, 3)),
                  Head("argmax"))  # fmt: skip


def expectation(p: Policy) -> str:
    """What onnxruntime must match: int8, tables and integer tile sums exactly; float tile
    sums give identical argmax actions here, too (exact); float MLP/linear within 1e-5."""
    body = p.body
    if body.kind == "mlp":
        return FP16 if body.layers[0].W.dtype == np.float16 else FP32  # type: ignore[union-attr]
    if body.kind == "linear" and not any(s.kind == "tile_code" for s in p.preprocess):
        return FP32
    return EXACT


@dataclass(frozen=True)
class Case:
    make: Callable[[], Policy]
    env_id: str


ONNX_CASES: dict[str, Case] = {
    **{name: Case(c.make, c.env_id) for name, c in CASES.items()},
    "pendulum-mlp-sigmoid": Case(lambda: pendulum_mlp("sigmoid", "identity"), "Pendulum-v1"),
    "cartpole-mlp-tanh-fp16": Case(lambda: to_fp16(cartpole_mlp()), "CartPole-v1"),
    "pendulum-mlp-tanh-squash-fp16": Case(
        lambda: to_fp16(pendulum_mlp("tanh", "tanh_rescale")), "Pendulum-v1"
    ),
    "pendulum-mlp-relu-clip-fp16": Case(
        lambda: to_fp16(pendulum_mlp("relu", "clip")), "Pendulum-v1"
    ),
    "frozenlake-onehot-mlp-fp16": Case(lambda: to_fp16(frozenlake_mlp()), "FrozenLake-v1"),
    "cartpole-mlp-relu-pruned": Case(
        lambda: prune_magnitude(cartpole_mlp("relu"), 0.8), "CartPole-v1"
    ),
    "cartpole-mlp-sigmoid-int8-pruned": Case(
        lambda: prune_magnitude(int8(lambda: cartpole_mlp("sigmoid"), "CartPole-v1")(), 0.5),
        "CartPole-v1",
    ),
    "cartpole-packed-visited": Case(
        lambda: drop_unvisited(pack_table(cartpole_table()), rollouts("CartPole-v1")[:200]),
        "CartPole-v1",
    ),
    "mountaincar-normalized-tiles-hashed": Case(mountaincar_normalized_tiles, "MountainCar-v0"),
}


@dataclass(frozen=True)
class Exported:
    policy: Policy
    result: OnnxExportResult


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Exported]:
    root = tmp_path_factory.mktemp("onnx")
    out = {}
    for name, case in ONNX_CASES.items():
        p = case.make()
        out[name] = Exported(p, export_onnx(p, root / name))
    return out


def test_cases_cover_every_body_preprocess_and_head(exported: dict[str, Exported]) -> None:
    policies = [e.policy for e in exported.values()]
    assert {p.body.kind for p in policies} == {"mlp", "mlp_int8", "table", "packed_table",
                                               "linear"}  # fmt: skip
    assert {s.kind for p in policies for s in p.preprocess} == {"normalize", "discretize",
                                                                "tile_code", "one_hot"}  # fmt: skip
    assert {p.head.kind for p in policies} == {"argmax", "clip", "tanh_rescale", "identity"}
    activations = {la.activation for p in policies if p.body.kind == "mlp"
                   for la in p.body.layers}  # type: ignore[union-attr]  # fmt: skip
    assert activations == {"identity", "relu", "tanh", "sigmoid"}
    assert {expectation(p) for p in policies} == {EXACT, FP32, FP16}


@pytest.mark.parametrize("name", sorted(ONNX_CASES))
def test_onnx_matches_numpy(name: str, exported: dict[str, Exported]) -> None:
    e = exported[name]
    obs = observations(ONNX_CASES[name].env_id)
    assert len(obs) == N_OBS
    got, expected = run_onnx(e.result.files[0], obs), e.policy.act(obs)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    kind = expectation(e.policy)
    if kind == EXACT:
        assert np.array_equal(got, expected)  # bit for bit
        if e.policy.body.kind == "mlp_int8" and e.policy.action_space.kind == "discrete":
            agreement = float(np.mean(got == expected))
            assert agreement >= 0.999 and agreement == 1.0
    elif e.policy.action_space.kind == "discrete":
        # fp32: identical; fp16: a hidden activation may round to the neighbouring half
        assert np.mean(got == expected) >= (1.0 if kind == FP32 else 0.999)
    elif kind == FP32:
        assert np.abs(got - expected).max() <= 1e-5
    else:
        # fp16: one half-step (2**-11 relative) of a hidden activation, carried on; most
        # outputs take no such step at all
        assert np.abs(got - expected).max() <= 1e-3
        assert np.mean(np.abs(got - expected) <= 1e-5) >= 0.98


@pytest.mark.parametrize("name", ["cartpole-mlp-tanh-int8", "taxi-packed", "pendulum-linear"])
def test_checker_clean_and_io_declared(name: str, exported: dict[str, Exported]) -> None:
    e = exported[name]
    model = onnx.load(e.result.files[0])
    onnx.checker.check_model(model, full_check=True)
    assert (model.ir_version, model.opset_import[0].version) == (8, 17)
    assert e.result.opset == 17 and e.result.nodes == len(model.graph.node)
    assert e.result.file_bytes == e.result.files[0].stat().st_size
    (x,), (y,) = model.graph.input, model.graph.output

    def declared(v: object) -> tuple[str, int, list[str | int]]:
        t = v.type.tensor_type  # type: ignore[attr-defined]
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        return v.name, t.elem_type, dims  # type: ignore[attr-defined]

    i64, f = onnx.TensorProto.INT64, onnx.TensorProto.FLOAT
    assert (declared(x), declared(y)) == {
        "cartpole-mlp-tanh-int8": (("obs", f, ["batch", 4]), ("action", i64, ["batch"])),
        "taxi-packed": (("obs", i64, ["batch"]), ("action", i64, ["batch"])),
        "pendulum-linear": (("obs", f, ["batch", 3]), ("action", f, ["batch", 1])),
    }[name]
    one = observations(ONNX_CASES[name].env_id)[:1]  # a batch of one
    assert np.array_equal(run_onnx(e.result.files[0], one), e.policy.act(one))


def test_metadata_holds_provenance_and_pipeline(exported: dict[str, Exported]) -> None:
    e = exported["cartpole-mlp-tanh-int8"]
    model = onnx.load(e.result.files[0])
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["rlbudget.provenance"]) == json.loads(json.dumps(e.policy.provenance))
    assert json.loads(meta["rlbudget.provenance"])["transforms"][0]["method"] == "int8"
    assert meta["rlbudget.pipeline"] == "normalize -> mlp_int8 -> argmax"
    assert json.loads(meta["rlbudget.action_space"])["n"] == 2
    assert model.producer_name == "rlbudget"


def initializer_bytes(path: Path) -> dict[str, int]:
    """Bytes by dtype of the initializers that are arrays (the policy's; the scalar
    constants of the graph's arithmetic are left out)."""
    out: dict[str, int] = {}
    for t in onnx.load(path).graph.initializer:
        a = numpy_helper.to_array(t)
        if a.ndim > 0:
            out[str(a.dtype)] = out.get(str(a.dtype), 0) + a.nbytes
    return out


def test_int8_and_fp16_graphs_store_narrow_weights(exported: dict[str, Exported]) -> None:
    # cartpole 4-64-64-2, tanh, int8 with one weight scale per layer: W 4·64 + 64·64 + 64·2
    # int8, two 256-entry tanh tables and one shift per layer (int8); biases 64 + 64 + 2 and
    # one multiplier per layer (int32, as the graph adds them); the normalize mean and std
    # (4 + 4) and the last layer's dequantization scale (1) float32.
    assert initializer_bytes(exported["cartpole-mlp-tanh-int8"].result.files[0]) == {
        "int8": 4480 + 2 * 256 + 2, "int32": 4 * (130 + 2), "float32": 4 * (8 + 1),
    }  # fmt: skip
    # fp16: W and b as halves, 2 bytes each (4610 parameters), plus the normalize constants
    assert initializer_bytes(exported["cartpole-mlp-tanh-fp16"].result.files[0]) == {
        "float16": 2 * 4610, "float32": 4 * 8,
    }  # fmt: skip


def test_pruned_weights_are_stored_sparse(exported: dict[str, Exported], tmp_path: Path) -> None:
    """A layer is stored sparse when its nonzero weights, 4 B each plus an 8 B int64
    position, take fewer bytes than the dense float32 matrix (under 1/3 of them kept); the
    file shrinks by that difference (plus a few hundred bytes of protobuf framing)."""
    e = exported["cartpole-mlp-relu-pruned"]
    model = onnx.load(e.result.files[0])
    stored = [int(np.prod(n.attribute[0].sparse_tensor.values.dims))
              for n in model.graph.node if n.op_type == "Constant"]  # fmt: skip
    layers = e.policy.body.layers  # type: ignore[union-attr]
    sparse = [(int(np.count_nonzero(la.W)), la.W.size) for la in layers
              if 12 * np.count_nonzero(la.W) < 4 * la.W.size]  # fmt: skip
    assert stored == [k for k, _ in sparse] != []
    dense = export_onnx(cartpole_mlp("relu"), tmp_path).file_bytes  # the unpruned parent
    saved = sum(4 * n - 12 * k for k, n in sparse)
    assert 0 <= e.result.file_bytes - (dense - saved) <= 400


def test_missing_extra_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    with pytest.raises(PolicyError) as e:
        export_onnx(cartpole_table(), tmp_path / "out")
    assert str(e.value) == "ONNX export needs the onnx extra: pip install 'rlbudget[onnx]'"
    assert str(e.value) == MISSING_EXTRA and not (tmp_path / "out").exists()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(PolicyError, match=r"^ONNX export needs the onnx extra: pip install "):
        run_onnx(tmp_path / "policy.onnx", np.zeros((1, 4), np.float32))


def test_unsupported_parts_are_refused(tmp_path: Path) -> None:
    def error(p: Policy) -> str:
        with pytest.raises(PolicyError) as e:
            export_onnx(p, tmp_path / "out")
        return str(e.value)

    rng = np.random.default_rng(0)
    no_state = env_policy("CartPole-v1", (), Table(np.zeros((4, 2), np.float32)), Head("argmax"))
    assert error(no_state) == (
        "export_onnx: a table body needs a state index per observation (a Discrete "
        "observation or a discretize preprocess)"
    )
    tc = TileCode(np.array([-1.2, -0.07]), np.array([0.6, 0.07]), 2, 2)
    on_tiles = env_policy("MountainCar-v0", (tc,), random_mlp([2, 3], "relu", rng), Head("argmax"))
    assert error(on_tiles) == (
        "export_onnx: a mlp body needs a float feature vector per observation; this "
        "preprocess gives an index (add one_hot, or use a table)"
    )
    box = env_policy("Pendulum-v1", (), random_mlp([3, 1], "relu", rng), Head("argmax"))
    assert error(box) == "export_onnx: an argmax head needs discrete actions"

    @dataclass(frozen=True)
    class Forest:
        kind: str = "forest"

    forest = env_policy("CartPole-v1", (), Forest(), Head("argmax"))
    assert error(forest) == (
        "export_onnx: body kind 'forest' is not supported; the ONNX export handles mlp, "
        "mlp_int8, table, packed_table, linear, cnn, cnn_int8"
    )
    assert not (tmp_path / "out").exists()


def test_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "nested" / "onnx"
    first = export_onnx(cartpole_table(), out)  # parents created
    assert first.files == (out / "policy.onnx",) and os.listdir(out) == ["policy.onnx"]
    before = first.files[0].read_bytes()

    def killed(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(pack_table(cartpole_table()), out)
    assert os.listdir(out) == ["policy.onnx"] and first.files[0].read_bytes() == before
    monkeypatch.undo()
    second = export_onnx(pack_table(cartpole_table()), out)  # replaced
    assert os.listdir(out) == ["policy.onnx"] and second.files[0].read_bytes() != before
    (tmp_path / "file").write_text("")
    with pytest.raises(RlbudgetError, match=r"file: cannot write policy\.onnx there"):
        export_onnx(cartpole_table(), tmp_path / "file")


@needs_zoo("ppo-CartPole-v1")
def test_zoo_ppo_cartpole_fp32_and_int8(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from rlbudget.sb3.importer import import_model

    parent = import_model(ZOO / "ppo-CartPole-v1").policy
    obs = observations("CartPole-v1")
    for p in (parent, quantize_int8(parent, obs[N_OBS // 2 :])):
        result = export_onnx(p, tmp_path / p.body.kind)
        onnx.checker.check_model(onnx.load(result.files[0]), full_check=True)
        got, expected = run_onnx(result.files[0], obs), p.act(obs)
        agreement = float(np.mean(got == expected))
        assert agreement == 1.0, (p.body.kind, agreement)  # int8: bit-exact, so ≥ 99.9 %


# --- the int8 arithmetic, piece by piece, against numpy's -----------------------------------


def run_piece(build: Callable[[_Graph, str], str], x: np.ndarray, out_type: int) -> np.ndarray:
    """One piece of the exporter's graph on its own: ``build(graph, "x") -> output name``."""
    import onnxruntime  # type: ignore[import-untyped]

    g = _Graph(onnx)
    y = build(g, "x")
    g.nodes.append(onnx.helper.make_node("Identity", [y], ["y"]))
    dims = [None] * x.ndim
    graph = onnx.helper.make_graph(
        g.nodes, "piece", [onnx.helper.make_tensor_value_info("x", ELEMENT_TYPES[str(x.dtype)],
                                                              dims)],
        [onnx.helper.make_tensor_value_info("y", out_type, dims)], g.initializers,
    )  # fmt: skip
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   ir_version=IR_VERSION)  # fmt: skip
    onnx.checker.check_model(model, full_check=True)
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])  # fmt: skip
    out: np.ndarray = session.run(None, {"x": x})[0]
    return out


def test_requantization_is_exact_over_every_shift_and_int32() -> None:
    """gemmlowp's fixed point in int64 ONNX arithmetic: every shift in [-31, 30], the
    int32 extremes, ties of both roundings, random accumulators."""
    rng = np.random.default_rng(10)
    shift = np.arange(-31, 31, dtype=np.int8)  # one channel per shift
    multiplier = rng.integers(2**30, 2**31, len(shift)).astype(np.int32)
    multiplier[:2] = 2**30  # exact halves: rounding ties
    layer = QDense(np.zeros((1, len(shift)), np.int8), np.zeros(len(shift), np.int32),
                   np.ones(len(shift)), multiplier, shift, 1.0, 0, 1.0, 0)  # fmt: skip
    special = np.array([INT32_MIN, INT32_MIN + 1, -(2**20) - 1, -3, -1, 0, 1, 3, 2**20 + 1,
                        INT32_MAX], dtype=np.int64)  # fmt: skip
    wide = rng.integers(INT32_MIN, INT32_MAX, 2000, endpoint=True)
    narrow = rng.integers(-(2**16), 2**16, 2000)  # where the small shifts keep information
    acc = np.concatenate([special, wide, narrow])[:, None].repeat(len(shift), 1)
    got = run_piece(lambda g, x: _requantize(g, x, layer), acc.astype(np.int32), INT64)
    expected = multiply_by_quantized_multiplier(acc, multiplier.astype(np.int64),
                                                shift.astype(np.int64))  # fmt: skip
    assert np.array_equal(got, expected)
    assert len(np.unique(got)) > 1000  # not everything saturated


def test_input_quantization_is_exact_on_ties_bounds_and_nan() -> None:
    scale, zero_point = float(np.float32(0.1)), -3
    s = np.float32(scale)
    ties = (np.arange(-300, 300, dtype=np.float32) + np.float32(0.5)) * s  # x / scale ≈ k + ½
    below = np.nextafter(ties, np.float32(-np.inf))
    odd = np.array([0.0, -0.0, 51.2, -51.2, 1e9, -1e9, np.inf, -np.inf, np.nan], np.float32)
    x = np.concatenate([ties, below, odd, np.random.default_rng(11).normal(0, 20, 5000)])
    x = x.astype(np.float32)[:, None]
    got = run_piece(lambda g, v: _quantize_input(g, v, scale, zero_point), x, INT8)
    assert np.array_equal(got, quantize_input(x, scale, zero_point))
