"""The ``cnn`` body (rlbudget/policy/conv.py): its float forward against torch's, its
counts, and its policy files read back exactly or refused in one line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from rlbudget.envs import SpaceSpec
from rlbudget.errors import PolicyError
from rlbudget.policy import MLP, Dense, Head, Policy, load_policy, save_policy
from rlbudget.policy.conv import CNN, Conv

IMAGE = (12, 10, 3)  # height, width, channels
SIDE = 36  # the smallest image NatureCNN accepts (8/4 → 8, 4/2 → 3, 3/1 → 1)
ENV_ID = "RlbudgetTestPixels-v0"  # 36×36×3, 3 actions (SB3's NatureCNN)
SMALL_ENV_ID = "RlbudgetTestSmallPixels-v0"  # 12×10×3, 4 actions (random_cnn)


class Pixels(gym.Env[np.ndarray, int]):
    """Random uint8 images (channels last, as gymnasium's image envs), episodes of 10 steps,
    reward 1 a step (a return every policy keeps: the tests judge the conversion)."""

    def __init__(self, shape: tuple[int, int, int] = (SIDE, SIDE, 3), actions: int = 3) -> None:
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self.action_space = gym.spaces.Discrete(actions)
        self.t = 0

    def _image(self) -> np.ndarray:
        return self.np_random.integers(0, 256, self.observation_space.shape, dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:  # type: ignore[type-arg]
        super().reset(seed=seed)
        self.t = 0
        return self._image(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:  # type: ignore[type-arg]
        self.t += 1
        return self._image(), 1.0, self.t >= 10, False, {}


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=Pixels)
    gym.register(SMALL_ENV_ID, entry_point=Pixels, kwargs={"shape": IMAGE, "actions": 4})


def image_space(shape: tuple[int, ...] = IMAGE) -> SpaceSpec:
    n = math.prod(shape)
    return SpaceSpec("box", shape, None, (0.0,) * n, (255.0,) * n, "uint8")


def conv(rng: np.random.Generator, op: str, k: int, c_in: int, c_out: int, stride: int = 1,
         padding: int = 0, activation: str = "relu") -> Conv:  # fmt: skip
    rows = k * k * (c_in if op == "conv2d" else 1)
    W = (rng.standard_normal((rows, c_out)) / math.sqrt(rows)).astype(np.float32)
    b = (0.1 * rng.standard_normal(c_out)).astype(np.float32)
    return Conv(op, (k, k), (stride, stride), (padding, padding), W, b, activation)


def random_cnn(seed: int = 0, actions: int = 4, channels_first: bool = False,
               box: bool = False) -> Policy:  # fmt: skip
    """conv 3×3/1 pad 1 → 8, maxpool 2, depthwise 3×3/1 + pointwise 1×1 → 6, avgpool 2/1,
    flatten, dense 16 relu, dense to the actions (argmax; ``box``: that many continuous
    actions in [-1, 1], clipped): every op, on a 12×10×3 image."""
    rng = np.random.default_rng(seed)
    layers = (
        conv(rng, "conv2d", 3, 3, 8, padding=1),
        Conv("maxpool", (2, 2), (2, 2)),
        conv(rng, "depthwise", 3, 8, 8),
        conv(rng, "conv2d", 1, 8, 6, activation="identity"),
        Conv("avgpool", (2, 2), (1, 1)),
    )
    shape = IMAGE
    for la in layers:
        shape = la.out_shape(shape)
    flat = math.prod(shape)
    dense = MLP((
        Dense((rng.standard_normal((flat, 16)) / math.sqrt(flat)).astype(np.float32),
              np.zeros(16, np.float32), "relu"),
        Dense(rng.standard_normal((16, actions)).astype(np.float32) / 4,
              np.zeros(actions, np.float32)),
    ))  # fmt: skip
    h, w, c = IMAGE
    obs = image_space((c, h, w) if channels_first else IMAGE)
    body = CNN(IMAGE, layers, dense, channels_first, 255.0)
    if box:
        bounds = np.ones(actions, np.float32)
        space = SpaceSpec("box", (actions,), None, (-1.0,) * actions, (1.0,) * actions, "float32")
        return Policy(obs, space, (), body, Head("clip", -bounds, bounds), {"algorithm": "test"})
    return Policy(obs, SpaceSpec("discrete", (), actions, None, None, "int64"), (), body,
                  Head("argmax"), {"algorithm": "test"})  # fmt: skip


def images(n: int, seed: int = 1, shape: tuple[int, ...] = IMAGE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def torch_forward(policy: Policy, obs: np.ndarray) -> np.ndarray:
    """The body's scores computed by torch (NCHW, float64) from the same weights."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    body = policy.body
    assert isinstance(body, CNN) and isinstance(body.dense, MLP)
    x = torch.tensor(obs, dtype=torch.float64) / 255.0
    x = x if body.channels_first else x.permute(0, 3, 1, 2)
    for la in body.layers:
        if la.op in ("maxpool", "avgpool"):
            pool = F.max_pool2d if la.op == "maxpool" else F.avg_pool2d
            x = pool(x, la.kernel, la.stride)
            continue
        assert la.W is not None and la.b is not None
        kh, kw = la.kernel
        c_in = x.shape[1]
        if la.op == "conv2d":  # rows (ky, kx, c) → OIHW
            w = torch.tensor(la.W.reshape(kh, kw, c_in, -1)).permute(3, 2, 0, 1)
            groups = 1
        else:  # rows (ky, kx), columns c → [c, 1, kh, kw]
            w = torch.tensor(la.W.reshape(kh, kw, c_in)).permute(2, 0, 1)[:, None]
            groups = c_in
        x = F.conv2d(x, w.double(), torch.tensor(la.b).double(), la.stride, la.padding,
                     groups=groups)  # fmt: skip
        x = F.relu(x) if la.activation == "relu" else x
    y = x.permute(0, 2, 3, 1).reshape(len(obs), -1)  # channels-last flatten
    for d in body.dense.layers:
        y = y @ torch.tensor(d.W).double() + torch.tensor(d.b).double()
        y = F.relu(y) if d.activation == "relu" else y
    return np.asarray(y.numpy())


@pytest.mark.parametrize("channels_first", [False, True])
def test_float_forward_matches_torch(channels_first: bool) -> None:
    policy = random_cnn(channels_first=channels_first)
    obs = images(20, shape=policy.observation_space.shape)
    ours = policy.body.apply(obs)
    np.testing.assert_allclose(ours, torch_forward(policy, obs), rtol=1e-4, atol=1e-5)
    assert np.array_equal(policy.act(obs), ours.argmax(axis=1))


def test_one_observation_equals_its_row_of_a_batch() -> None:
    policy = random_cnn()
    obs = images(5)
    batch = policy.body.apply(obs)
    for i in range(5):
        assert np.array_equal(policy.body.apply(obs[i : i + 1])[0], batch[i])


def test_counts() -> None:
    """MACs by hand: conv 12×10 outputs × 27 × 8, depthwise 4×3 × 9 × 8, pointwise 4×3 × 8 × 6,
    dense (3·2·6) × 16 + 16 × 4; buffers: the largest consecutive pair of activations."""
    policy = random_cnn()
    body = policy.body
    assert isinstance(body, CNN)
    assert body.shapes() == [(12, 10, 3), (12, 10, 8), (6, 5, 8), (4, 3, 8), (4, 3, 6), (3, 2, 6)]
    assert policy.macs == 120 * 27 * 8 + 12 * 9 * 8 + 12 * 8 * 6 + 36 * 16 + 16 * 4
    assert policy.parameters == (27 * 8 + 8) + (9 * 8 + 8) + (8 * 6 + 6) + (36 * 16 + 16) + (
        16 * 4 + 4)  # fmt: skip
    assert policy.buffer_bytes == 4 * (12 * 10 * 3 + 12 * 10 * 8)


def test_policy_files_round_trip(tmp_path: Path) -> None:
    policy = random_cnn(channels_first=True)
    back = load_policy(save_policy(policy, tmp_path / "p"))
    obs = images(8, shape=policy.observation_space.shape)
    assert np.array_equal(back.body.apply(obs), policy.body.apply(obs))
    assert back.arrays().keys() == policy.arrays().keys()
    assert all(np.array_equal(a, policy.arrays()[k]) for k, a in back.arrays().items())
    doc = json.loads((tmp_path / "p" / "policy.json").read_text())
    assert doc["body"]["input"] == {"shape": [12, 10, 3], "layout": "chw", "divide": 255.0}
    assert [e["op"] for e in doc["body"]["conv"]] == [
        "conv2d", "maxpool", "depthwise", "conv2d", "avgpool"]  # fmt: skip


def _edit(tmp_path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    folder = save_policy(random_cnn(), tmp_path / "p")
    path = folder / "policy.json"
    doc = json.loads(path.read_text())
    change(doc["body"])
    path.write_text(json.dumps(doc))
    return folder


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b["input"].update(shape=[12, 10, 4]),
         "body (cnn): input.shape [12, 10, 4] holds 480 values but the body receives 360"),
        (lambda b: b["input"].update(layout="nchw"),
         "body (cnn): input.layout must be 'hwc' or 'chw', not 'nchw'"),
        (lambda b: b["conv"][0].update(kernel=[3, 3, 3]),
         "body (cnn) conv[0]: kernel must be two integers from 1 to 4096, not [3, 3, 3]"),
        (lambda b: b["conv"][0].update(kernel=[5, 5]),
         "body (cnn) conv[0]: W has 27 inputs but receives 75"),
        (lambda b: b["conv"][1].update(kernel=[20, 2]),
         "body (cnn) conv[1]: the kernel [20, 2] is larger than its input 12×10 (padding "
         "[0, 0]); the layers do not fit the image"),
        (lambda b: b["conv"][1].update(op="minpool"),
         "body (cnn) conv[1]: unknown op 'minpool'; known: conv2d, depthwise, maxpool, avgpool"),
        (lambda b: b["conv"][0].update(activation="tanh"),
         "body (cnn) conv[0]: activation must be one of identity, relu, not 'tanh'"),
        (lambda b: b["conv"][4].update(stride=[2, 2]),
         "body (mlp) layer 0: W has 36 inputs but receives 12"),
    ],
)  # fmt: skip
def test_bad_files_are_one_line(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    folder = _edit(tmp_path, change)
    with pytest.raises(PolicyError) as err:
        load_policy(folder)
    assert str(err.value) == f"{folder}: {message}"


def test_mis_shaped_array_is_refused(tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    folder = save_policy(random_cnn(), tmp_path / "p")
    arrays = load_file(folder / "policy.safetensors")
    arrays["body.conv.2.W"] = arrays["body.conv.2.W"][:, :5].copy()
    save_file(arrays, folder / "policy.safetensors")
    with pytest.raises(
        PolicyError, match=r"conv\[2\]: array 'body.conv.2.b' has shape \[8\]; expected \[5\]$"
    ):
        load_policy(folder)


def test_a_conv_that_grows_the_image_past_the_cap_is_refused(tmp_path: Path) -> None:
    """A 1×4096 depthwise kernel padded by 4095 widens an 8×8 image to 8×4103: a 40 KB file
    whose every decision would copy 134M window values (GBs after a few such layers)."""
    layer = Conv("depthwise", (1, 4096), (1, 1), (0, 4095), np.full((4096, 1), 1e-3, np.float32),
                 np.zeros(1, np.float32), "relu")  # fmt: skip
    shape = (8, 8, 1)
    flat = math.prod(layer.out_shape(shape))
    dense = MLP((Dense(np.full((flat, 2), 1e-3, np.float32), np.zeros(2, np.float32)),))
    policy = Policy(image_space(shape), SpaceSpec("discrete", (), 2, None, None, "int64"), (),
                    CNN(shape, (layer,), dense, False, 255.0), Head("argmax"), {})  # fmt: skip
    folder = save_policy(policy, tmp_path / "p")
    with pytest.raises(PolicyError) as err:
        load_policy(folder)
    assert str(err.value) == (
        f"{folder}: body (cnn) conv[0]: its output 8×4103×1 with 4096 inputs a pixel needs more "
        "than 67,108,864 values a decision; use a smaller kernel, padding or image"
    )


@pytest.mark.parametrize("divide", [-1, 1e-300])  # 1e-300 is 0 in float32: inf pixels
def test_cli_show_bad_cnn_exits_2(tmp_path: Path, divide: float) -> None:
    from typer.testing import CliRunner

    from rlbudget.cli import app

    folder = _edit(tmp_path, lambda b: b["input"].update(divide=divide))
    result = CliRunner().invoke(app, ["show", str(folder)])
    assert result.exit_code == 2
    assert (f"input.divide must be a number from 1e-6 to 1e10 (255 for uint8 images), "
            f"not {divide!r}") in result.output  # fmt: skip
    assert "Traceback" not in result.output


def test_int8_policy_files_round_trip(tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    from rlbudget.compress.quantize_conv import quantize_cnn

    q = quantize_cnn(random_cnn(), images(50))
    folder = save_policy(q, tmp_path / "q")
    back = load_policy(folder)
    obs = images(100, seed=3)
    assert back.body.kind == "cnn_int8"
    assert np.array_equal(back.body.apply(obs), q.body.apply(obs))
    arrays = load_file(folder / "policy.safetensors")
    arrays["body.conv.0.shift"] = np.full(8, 40, np.int8)  # beyond int32 requantization
    save_file(arrays, folder / "policy.safetensors")
    with pytest.raises(PolicyError) as err:
        load_policy(folder)
    assert str(err.value) == f"{folder}: body (cnn_int8) conv[0]: every shift must lie in [-31, 30]"
