"""SB3 ``CnnPolicy`` models (NatureCNN) converted to a ``cnn`` body: the same actions as
SB3's ``predict`` and the same scores as its torch forward, from a live model and from a
zip (read without unpickling), for PPO, A2C and DQN; a depthwise-separable extractor from
a live model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from rlbudget.errors import PolicyError
from rlbudget.policy import Policy
from rlbudget.policy.conv import CNN
from tests.test_conv import ENV_ID, SIDE, Pixels

pytest.importorskip("stable_baselines3")
torch = pytest.importorskip("torch")


def images(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def make(algo: str, **kwargs: Any) -> Any:
    """An untrained model; its last layer scaled up so that argmax is decided by clear gaps
    (an untrained PPO head's logits differ by ~1e-3, where float rounding could decide)."""
    import stable_baselines3 as sb3

    cls = {"ppo": sb3.PPO, "a2c": sb3.A2C, "dqn": sb3.DQN}[algo]
    extra = {"learning_starts": 0, "buffer_size": 100} if algo == "dqn" else {"n_steps": 8}
    model = cls("CnnPolicy", Pixels(), seed=0, device="cpu", **extra, **kwargs)
    last = model.policy.q_net.q_net[-1] if algo == "dqn" else model.policy.action_net
    with torch.no_grad():
        last.weight.mul_(300.0)
    return model


def torch_scores(model: Any, algo: str, obs_chw: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        x = torch.as_tensor(obs_chw)
        if algo == "dqn":
            return np.asarray(model.policy.q_net(x).numpy())
        # Categorical normalizes its logits (minus their logsumexp): compare up to that shift
        logits = model.policy.get_distribution(x).distribution.logits.numpy()
        return np.asarray(logits - logits.max(axis=1, keepdims=True))


def check(policy: Policy, model: Any, algo: str, channels_last: bool) -> None:
    shape = (SIDE, SIDE, 3) if channels_last else (3, SIDE, SIDE)
    assert policy.observation_space.shape == shape
    obs = images(40, shape)
    chw = obs.transpose(0, 3, 1, 2) if channels_last else obs
    expected, _ = model.predict(obs, deterministic=True)
    assert np.array_equal(policy.act(obs), expected)
    assert [policy.act(o) for o in obs[:3]] == list(expected[:3])
    scores = policy.body.apply(obs)
    scores = scores if algo == "dqn" else scores - scores.max(axis=1, keepdims=True)
    reference = torch_scores(model, algo, chw)
    np.testing.assert_allclose(scores, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_live_model_matches_predict(algo: str) -> None:
    from rlbudget.sb3.convert import from_model

    model = make(algo)
    policy = from_model(model)
    body = policy.body
    assert isinstance(body, CNN) and body.kind == "cnn" and body.divide == 255.0
    assert [la.op for la in body.layers] == ["conv2d"] * 3
    assert [la.stride for la in body.layers] == [(4, 4), (2, 2), (1, 1)]
    check(policy, model, algo, channels_last=True)  # SB3 transposed the env's images


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_zip_matches_predict(algo: str, tmp_path: Path) -> None:
    from rlbudget.sb3.importer import import_model

    model = make(algo)
    model.save(tmp_path / f"{algo}-pixels.zip")
    result = import_model(tmp_path / f"{algo}-pixels.zip", algorithm=algo)
    assert result.policy.body.kind == "cnn"
    check(result.policy, model, algo, channels_last=False)  # the model's own [C, H, W]
    moved = import_model(tmp_path / f"{algo}-pixels.zip", algorithm=algo, env_id=ENV_ID)
    check(moved.policy, model, algo, channels_last=True)  # the env's [H, W, C]
    assert any("VecTransposeImage" in w for w in moved.warnings)


def test_zip_without_image_division(tmp_path: Path) -> None:
    """``normalize_images=False``: SB3 feeds the raw pixel values; so does the policy."""
    from rlbudget.sb3.importer import import_model

    model = make("ppo", policy_kwargs={"normalize_images": False})
    model.save(tmp_path / "ppo.zip")
    policy = import_model(tmp_path / "ppo.zip").policy
    assert isinstance(policy.body, CNN) and policy.body.divide is None
    check(policy, model, "ppo", channels_last=False)


class Separable(torch.nn.Module):  # type: ignore[misc]
    """A depthwise-separable extractor: conv 3×3/2, depthwise 3×3 pad 1 + pointwise 1×1,
    max pool 2, avg pool 2/1, flatten, linear."""

    def __init__(self, observation_space: gym.Space, features_dim: int = 32) -> None:  # type: ignore[type-arg]
        super().__init__()
        c = observation_space.shape[0]
        nn = torch.nn
        self.features_dim = features_dim
        self.net = nn.Sequential(
            nn.Conv2d(c, 8, 3, stride=2), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),
            nn.Conv2d(8, 12, 1), nn.ReLU(),
            nn.MaxPool2d(2), nn.AvgPool2d(2, stride=1),
            nn.Flatten(), nn.Linear(12 * 7 * 7, features_dim), nn.ReLU(),
        )  # fmt: skip

    def forward(self, x: Any) -> Any:
        return self.net(x)


def test_live_depthwise_separable_extractor() -> None:
    from rlbudget.sb3.convert import from_model

    model = make("ppo", policy_kwargs={"features_extractor_class": separable_extractor()})
    policy = from_model(model)
    assert isinstance(policy.body, CNN)
    assert [la.op for la in policy.body.layers] == [
        "conv2d", "depthwise", "conv2d", "maxpool", "avgpool"]  # fmt: skip
    check(policy, model, "ppo", channels_last=True)


def test_zip_with_another_extractor_is_refused(tmp_path: Path) -> None:
    from rlbudget.sb3.importer import import_model

    model = make("ppo", policy_kwargs={"features_extractor_class": separable_extractor()})
    model.save(tmp_path / "ppo.zip")
    with pytest.raises(PolicyError) as err:
        import_model(tmp_path / "ppo.zip")
    assert str(err.value) == (
        f"{tmp_path / 'ppo.zip'}: state dict: no 'pi_features_extractor.cnn.0.weight'; the "
        "features extractor is not NatureCNN (convert the live model with "
        "rlbudget.sb3.convert.from_model)"
    )


@pytest.mark.parametrize("layer", ["cnn.2", "linear.0"])
def test_zip_with_a_mis_shaped_bias_is_refused(layer: str, tmp_path: Path) -> None:
    """A bias of another length than its layer's outputs: one line at import (it used to
    write a policy that its own loader then refused)."""
    import io
    import zipfile

    from rlbudget.sb3.importer import import_model

    make("ppo").save(tmp_path / "ppo.zip")
    key = f"pi_features_extractor.{layer}.bias"
    with (
        zipfile.ZipFile(tmp_path / "ppo.zip") as zin,
        zipfile.ZipFile(tmp_path / "bad.zip", "w") as zout,
    ):
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "policy.pth":
                sd = torch.load(io.BytesIO(data), weights_only=True)
                sd[key] = torch.zeros(7)
                buf = io.BytesIO()
                torch.save(sd, buf)
                data = buf.getvalue()
            zout.writestr(item, data)
    with pytest.raises(PolicyError) as err:
        import_model(tmp_path / "bad.zip")
    outputs = 64 if layer == "cnn.2" else 512
    assert str(err.value) == (
        f"{tmp_path / 'bad.zip'}: state dict: '{key}' has shape [7]; expected [{outputs}] "
        f"(the outputs of 'pi_features_extractor.{layer}.weight')"
    )


def separable_extractor() -> type:
    """An SB3 features extractor class around :class:`Separable`."""
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class SeparableExtractor(BaseFeaturesExtractor):  # type: ignore[misc]
        def __init__(self, space: gym.Space) -> None:  # type: ignore[type-arg]
            super().__init__(space, 32)
            self.inner = Separable(space)

        def forward(self, x: Any) -> Any:
            return self.inner(x)

    return SeparableExtractor


def test_cli_import_names_the_convolutions(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rlbudget.cli import app

    make("dqn").save(tmp_path / "dqn.zip")
    args = ["import", str(tmp_path / "dqn.zip"), "-o", str(tmp_path / "p"), "--algo", "dqn"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["body"] == "cnn"
    assert info["conv"] == [["conv2d", "8×8/4", 32], ["conv2d", "4×4/2", 64],
                            ["conv2d", "3×3/1", 64]]  # fmt: skip
    assert info["layers"] == [[64, 512, "relu"], [512, 3, "identity"]]
    shown = CliRunner().invoke(app, [*args[:3], str(tmp_path / "q"), *args[4:]], terminal_width=200)
    assert shown.exit_code == 0 and "cnn [conv2d 8×8/4 → 32 →" in shown.output
