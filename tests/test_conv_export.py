"""A ``cnn`` policy exported: int8 C bit-exact with numpy, float C within float32 rounding,
its buffers counted as the policy counts them (compiled with the host's gcc)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from rlbudget.compress.quantize_conv import quantize_cnn
from rlbudget.export import ExportResult, export_c
from rlbudget.policy import Policy
from rlbudget.policy.conv import CNN
from tests.test_conv import images, random_cnn
from tests.test_export_c import CFLAGS, GCC, compile_program, run_program

CASES = {
    "float-argmax": lambda: random_cnn(1),
    "float-box-chw": lambda: random_cnn(2, actions=5, channels_first=True, box=True),
    "int8-argmax": lambda: quantize_cnn(random_cnn(3), images(64, seed=3)),
    "int8-box": lambda: quantize_cnn(random_cnn(4, actions=5, box=True), images(64, seed=4)),
    "int8-box-chw-tflite": lambda: quantize_cnn(
        random_cnn(5, actions=5, channels_first=True, box=True),
        images(64, seed=5, shape=(3, 12, 10)), requantize="tflite"),
}  # fmt: skip


@dataclass(frozen=True)
class Built:
    policy: Policy
    result: ExportResult
    program: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    if GCC is None:
        pytest.skip("gcc is not installed: the C export is not compiled")
    root = tmp_path_factory.mktemp("cnn")
    out = {}
    for name, make in CASES.items():
        policy = make()
        result = export_c(policy, root / name)
        out[name] = Built(policy, result, compile_program(root / name, result, CFLAGS))
    return out


def outputs(b: Built, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C's actions, numpy's) for ``obs``; continuous actions as float32."""
    lines = run_program(b.program, obs)
    ours = b.policy.act(obs)
    if b.policy.action_space.kind == "discrete":
        return np.array([int(v) for v in lines]), ours
    return np.array([[np.float32(v) for v in line.split()] for line in lines]), ours


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("int8")])
def test_int8_c_is_bit_exact_with_numpy(name: str, built: dict[str, Built]) -> None:
    b = built[name]
    assert isinstance(b.policy.body, CNN) and b.policy.body.kind == "cnn_int8"
    obs = images(400, seed=11, shape=b.policy.observation_space.shape)
    obs[:20] = 0  # the ends of the pixel range
    obs[20:40] = 255
    c, ours = outputs(b, obs)
    assert np.array_equal(c, ours)  # continuous: every float32 bit (dequantized accumulators)
    if b.policy.action_space.kind != "discrete":
        assert len(np.unique(ours[:, 0])) > 50  # the outputs vary: the test can fail


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("float")])
def test_float_c_matches_numpy(name: str, built: dict[str, Built]) -> None:
    b = built[name]
    obs = images(200, seed=12, shape=b.policy.observation_space.shape)
    c, ours = outputs(b, obs)
    if b.policy.action_space.kind == "discrete":
        scores = np.sort(b.policy.body.apply(obs), axis=1)
        clear = scores[:, -1] - scores[:, -2] > 1e-4  # no near-tie for rounding to flip
        assert clear.mean() > 0.9 and np.array_equal(c[clear], ours[clear])
    else:
        np.testing.assert_allclose(c, ours, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_ram_is_the_policys_buffer_bytes(name: str, built: dict[str, Built]) -> None:
    """The static buffers of policy.c (the ping-pong arena and, int8, the last layer's
    float32 or int32 outputs) are what profile and plan count."""
    b = built[name]
    assert b.result.ram_bytes == b.policy.buffer_bytes


def test_int8_kernels_need_no_libm(built: dict[str, Built]) -> None:
    assert not built["int8-argmax"].result.needs_libm
    text = (built["int8-box"].result.files[1]).read_text()
    assert "rlb_depthwise_int8" in text and "rlb_avgpool_int8" in text and "_f32(" not in text


@pytest.mark.parametrize("name", sorted(CASES))
def test_onnx_matches_numpy(name: str, tmp_path: Path) -> None:
    """int8: ConvInteger and the exact requantization give numpy's actions bit for bit;
    float: Conv within float32 rounding."""
    pytest.importorskip("onnxruntime")
    from rlbudget.export.onnx import export_onnx, run_onnx

    policy = CASES[name]()
    obs = images(300, seed=13, shape=policy.observation_space.shape)
    result = export_onnx(policy, tmp_path)
    got, ours = run_onnx(result.files[0], obs.astype(np.float32)), policy.act(obs)
    if name.startswith("int8") or policy.action_space.kind == "discrete":
        assert np.array_equal(got, ours)
    else:
        np.testing.assert_allclose(got, ours, rtol=1e-5, atol=1e-6)
    ops = {n.op_type for n in __import__("onnx").load(result.files[0]).graph.node}
    expected = {"ConvInteger", "MaxPool", "AveragePool"} if name.startswith("int8") else {
        "Conv", "MaxPool", "AveragePool", "Flatten"}  # fmt: skip
    assert expected <= ops


def test_int8_of_a_cnn_with_only_pools_is_refused() -> None:
    """The int8 input scale is the first convolution's: with none, quantize_cnn failed later
    with a StopIteration inside evaluate (exit 3)."""
    from dataclasses import replace

    from rlbudget.errors import PolicyError

    policy = random_cnn()
    pools = tuple(la for la in policy.body.layers if la.W is None)
    assert pools and len(pools) < len(policy.body.layers)
    body = policy.body
    shape = body.shape
    for la in pools:
        shape = la.out_shape(shape)
    dense_in = int(np.prod(shape))
    first = body.dense.layers[0]
    dense = replace(body.dense, layers=(replace(first, W=np.ones((dense_in, first.W.shape[1]),
                    np.float32)), *body.dense.layers[1:]))  # fmt: skip
    only_pools = replace(policy, body=replace(body, layers=pools, dense=dense))
    with pytest.raises(PolicyError, match=r"^int8 \(cnn\): this cnn has no convolution, only "
                       r"pooling; an int8 cnn needs one"):  # fmt: skip
        quantize_cnn(only_pools, images(20))
