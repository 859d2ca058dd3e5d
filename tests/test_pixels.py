"""Image observations (rlbudget.pixels): the PixelCartPole env's frames, geometry and
seeding; the encoders' MAC and parameter counts by hand and against torch's layers; the
``features_extractor`` hyperparameter."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from rlbudget.errors import PlanError
from rlbudget.pixels.encoder import encoder_macs
from rlbudget.pixels.env import CART_ROW, SIZE, PixelCartPoleEnv, draw

ENV = "rlbudget.pixels.env:PixelCartPole-v0"


def _episode(seed: int, actions: list[int]) -> list[np.ndarray]:
    env = gym.make(ENV)
    obs, _ = env.reset(seed=seed)
    seen = [obs]
    for a in actions:
        obs, _, terminated, truncated, _ = env.step(a)
        seen.append(obs)
        if terminated or truncated:
            break
    return seen


# --- the env ------------------------------------------------------------------------------


def test_observations_are_two_uint8_frames_inside_the_space() -> None:
    env = gym.make(ENV)
    space = env.observation_space
    assert (space.shape, space.dtype, space.low.min(), space.high.max()) == (
        (2, 40, 40), np.uint8, 0, 255)  # fmt: skip
    seen = _episode(0, [0, 1] * 30)
    assert all(space.contains(o) for o in seen)
    # reset: no motion seen yet, both frames equal; each step shifts the newest to slot 1
    assert np.array_equal(seen[0][0], seen[0][1])
    for before, after in itertools.pairwise(seen):
        assert np.array_equal(after[1], before[0])
        assert not np.array_equal(after[0], after[1])  # the cart or pole moved


def test_same_seed_same_frames_and_another_seed_differs() -> None:
    actions = [1, 1, 0, 1, 0, 0, 1] * 5
    a, b, c = _episode(7, actions), _episode(7, actions), _episode(8, actions)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


def test_dynamics_and_reward_are_cartpoles() -> None:
    pixels = PixelCartPoleEnv()
    pixels.reset(seed=3)
    plain = gym.make("CartPole-v1").unwrapped
    plain.reset()
    plain.state = pixels.cartpole.state.copy()
    for _ in range(200):
        _, r1, t1, _, _ = pixels.step(np.int64(1))
        _, r2, t2, _, _ = plain.step(1)
        assert (r1, t1) == (r2, t2)
        assert np.array_equal(pixels.cartpole.state, plain.state)
        if t1:
            break
    assert t1  # always pushing right ends the episode within 200 steps
    assert gym.spec("PixelCartPole-v0").max_episode_steps == 500


def test_upright_pole_covers_exactly_two_columns_above_the_cart() -> None:
    # x = 0 puts the cart's centre on the image's centre line (column boundary 20): the
    # 2-pixel-wide pole then covers columns 19 and 20 fully and nothing beside them.
    frame = draw(0.0, 0.0)
    top = CART_ROW - 2  # the cart's top edge is at row 31.5 (centre 33.5 - half-height 1.5)
    assert (frame[8 : top + 1, 19:21] == 255).all()
    assert (frame[8:top, [17, 18, 21, 22]] == 0).all()
    assert (frame[CART_ROW, 17:23] == 255).all() and frame[CART_ROW, 16] == 0
    assert (frame[:6] == 0).all()  # above the tip (row 7.5) plus its half-pixel edge


def test_frames_mirror_with_the_state() -> None:
    # the grid is symmetric about the centre line: (x, θ) and (-x, -θ) are mirror images,
    # up to float32 rounding of a coverage that lands on a .5 level (±1 of 255)
    for x, theta in [(0.7, 0.1), (-1.9, -0.2), (2.3, 0.05)]:
        a, b = draw(x, theta).astype(int), draw(-x, -theta)[:, ::-1].astype(int)
        assert np.abs(a - b).max() <= 1 and (a > 127).sum() > 40


def test_sub_pixel_motion_changes_the_frame() -> None:
    step = 4.8 / SIZE / 4  # a quarter pixel of cart motion
    assert not np.array_equal(draw(0.0, 0.0), draw(step, 0.0))
    assert not np.array_equal(draw(0.0, 0.0), draw(0.0, 0.01))  # the tip moves 0.24 px


# --- the encoders -------------------------------------------------------------------------


def test_mac_counts_by_hand() -> None:
    # NatureCNN on 2×40×40: 9×9 → 3×3 → 1×1 maps (unpadded: (n - k) // s + 1)
    nature = {c.name: (c.out_shape, c.macs) for c in encoder_macs("nature", (2, 40, 40))}
    assert nature == {
        "conv1": ((32, 9, 9), 81 * 32 * 8 * 8 * 2),  # 331,776
        "conv2": ((64, 3, 3), 9 * 64 * 4 * 4 * 32),  # 294,912
        "conv3": ((64, 1, 1), 1 * 64 * 3 * 3 * 64),  # 36,864
        "linear": ((512,), 64 * 512),
    }
    # depthwise: 4×4/4 stem to 10×10×8; dw 3×3/2 to 4×4 (one 9-tap filter per channel),
    # pw 8→16; dw 3×3/1 to 2×2; pw 16→32; flatten 128 → 64
    depthwise = {c.name: (c.out_shape, c.macs) for c in encoder_macs("depthwise", (2, 40, 40))}
    assert depthwise == {
        "stem": ((8, 10, 10), 100 * 8 * 4 * 4 * 2),  # 25,600
        "dw1": ((8, 4, 4), 16 * 8 * 9),
        "pw1": ((16, 4, 4), 16 * 16 * 8),
        "dw2": ((16, 2, 2), 4 * 16 * 9),
        "pw2": ((32, 2, 2), 4 * 32 * 16),
        "linear": ((64,), 128 * 64),
    }
    total = {n: sum(m for _, m in d.values()) for n, d in [("n", nature), ("d", depthwise)]}
    assert (total["n"], total["d"]) == (696_320, 39_616)


def test_an_image_too_small_for_nature_is_refused() -> None:
    with pytest.raises(PlanError) as err:
        encoder_macs("nature", (2, 30, 30))
    assert str(err.value) == (
        "the nature encoder's layer conv3 (3×3) does not fit the 2×2 map it gets from a 30×30 "
        "image; use a larger image or features_extractor=depthwise"
    )


@pytest.mark.parametrize("name", ["depthwise", "depthwise-wide", "nature"])
def test_torch_encoders_match_the_counts(name: str) -> None:
    torch = pytest.importorskip("torch")
    from stable_baselines3 import PPO

    from rlbudget.sb3.training import SB3Config, model_kwargs

    cfg = SB3Config(hyperparameters={"features_extractor": name, "n_steps": 8, "batch_size": 8})
    model = PPO("MlpPolicy", gym.make(ENV), device="cpu", **model_kwargs(cfg, None))
    encoder = model.policy.features_extractor
    macs = {}

    def count(module: torch.nn.Module, _: object, out: torch.Tensor) -> None:
        w = module.weight  # MACs: every output element × one filter's size
        macs[module] = out[0].numel() * (w[0].numel() if w.dim() == 4 else w.shape[1])

    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    for m in convs:
        m.register_forward_hook(count)
    obs = torch.as_tensor(np.stack([draw(0.3, 0.1)] * 2)[None]).float() / 255
    assert encoder(obs).shape == (1, encoder.features_dim)
    expected = encoder_macs(name, (2, 40, 40))
    assert [macs[m] for m in convs] == [c.macs for c in expected]
    assert sum(p.numel() for p in encoder.parameters()) == sum(c.params for c in expected)
    assert model.policy.action_net.in_features == expected[-1].out_shape[0]  # net_arch []


def test_unknown_features_extractor_is_refused() -> None:
    pytest.importorskip("stable_baselines3")
    from rlbudget.sb3.training import SB3Config, model_kwargs

    with pytest.raises(PlanError) as err:
        model_kwargs(SB3Config(hyperparameters={"features_extractor": "resnet"}), None)
    assert str(err.value) == (
        "hyperparameter features_extractor is 'resnet'; use one of depthwise, depthwise-wide, "
        "nature "
        "(e.g. --hyperparams features_extractor=depthwise)"
    )


@pytest.mark.parametrize(
    ("name", "env_id", "seen"),
    [
        ("depthwise", "CartPole-v1", "Box [4] float32"),
        ("nature", "Pendulum-v1", "Box [3] float32"),
    ],
)
def test_an_encoder_on_a_vector_env_exits_2_in_one_line(
    name: str, env_id: str, seen: str, tmp_path: Path
) -> None:
    """It used to reach the encoder (IndexError) or SB3's NatureCNN (AssertionError): exit 3."""
    pytest.importorskip("stable_baselines3")
    from typer.testing import CliRunner

    from rlbudget.cli import app

    algo = "ppo" if name == "depthwise" else "sac"
    result = CliRunner().invoke(app, ["train", "--algo", algo, "--env", env_id, "-p",
                                      f"features_extractor={name}", "--steps", "1000", "-o",
                                      str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 2
    image = "[channels, height, width]" + (", uint8" if name == "nature" else "")
    assert result.output.strip().splitlines()[-1] == (
        f"error: features_extractor={name} encodes images ({image}); environment "
        f"'{env_id}' observes {seen}; leave features_extractor out for it"
    )


def test_a_channels_last_image_is_checked_as_sb3_transposes_it() -> None:
    pytest.importorskip("stable_baselines3")
    from rlbudget.pixels.encoder import check_image

    check_image("nature", gym.spaces.Box(0, 255, (36, 36, 3), np.uint8), "pixels")  # fits
    with pytest.raises(PlanError, match=r"layer conv3 \(3×3\) does not fit the 1×1 map"):
        check_image("nature", gym.spaces.Box(0, 255, (20, 20, 3), np.uint8), "pixels")


def test_the_pixel_env_id_read_from_a_policy_file_is_rlbudgets_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trained policy's provenance names this id; compress/evaluate/profile make it from
    there. It used to be refused as an untrusted module (as a stranger's would be)."""
    import sys

    from rlbudget import envs

    monkeypatch.setattr(envs, "_trusted_ids", set())
    monkeypatch.delenv(envs.TRUST_ENV_VAR, raising=False)
    monkeypatch.delitem(sys.modules, "rlbudget.pixels.env")
    env = envs.make_env(ENV)
    assert env.observation_space.shape == (2, SIZE, SIZE)
    env.close()


# --- conversion to rlbudget's policy ------------------------------------------------------


@pytest.fixture(scope="module")
def depthwise_model() -> tuple[Any, np.ndarray, np.ndarray]:
    """An untrained PPO with the depthwise encoder whose action boundary lies in the widest
    gap of its logit differences on frames the env draws (so both actions occur, none by a
    float whisker); with those frames and torch's logits on them."""
    torch = pytest.importorskip("torch")
    from stable_baselines3 import PPO

    from rlbudget.sb3.training import SB3Config, model_kwargs

    hp = {"features_extractor": "depthwise", "n_steps": 8, "batch_size": 8}
    model = PPO("MlpPolicy", gym.make(ENV), seed=0, device="cpu",
                **model_kwargs(SB3Config(hyperparameters=hp), None))  # fmt: skip
    obs = np.concatenate([np.stack(_episode(s, [s % 2] * 12)) for s in range(4)])
    with torch.no_grad():
        model.policy.action_net.weight.mul_(300.0)  # clear gaps between the two logits
        logits = model.policy.get_distribution(torch.as_tensor(obs)).distribution.logits
        gap = np.sort((logits[:, 1] - logits[:, 0]).numpy())
        i = int(np.argmax(np.diff(gap)))
        model.policy.action_net.bias[1] -= float(gap[i] + gap[i + 1]) / 2
        logits = model.policy.get_distribution(torch.as_tensor(obs)).distribution.logits
    return model, obs, logits.numpy()


def test_depthwise_model_converts_to_a_cnn_body_with_torchs_scores(
    depthwise_model: tuple[Any, np.ndarray, np.ndarray],
) -> None:
    from rlbudget.policy.conv import CNN
    from rlbudget.sb3.convert import from_model

    model, obs, logits = depthwise_model
    policy = from_model(model)
    body = policy.body
    assert isinstance(body, CNN) and body.divide == 255.0
    assert [(la.op, la.kernel, la.stride) for la in body.layers] == [
        ("conv2d", (4, 4), (4, 4)), ("depthwise", (3, 3), (2, 2)), ("conv2d", (1, 1), (1, 1)),
        ("depthwise", (3, 3), (1, 1)), ("conv2d", (1, 1), (1, 1))]  # fmt: skip
    # the policy's own counts are the hand counts plus the action layer (64 → 2)
    counts = encoder_macs("depthwise", (2, 40, 40))
    assert policy.macs == sum(c.macs for c in counts) + 64 * 2 == 39_744
    assert policy.parameters == sum(c.params for c in counts) + 65 * 2
    # scores and actions as torch's
    scores = body.apply(obs)
    np.testing.assert_allclose(scores - scores.max(axis=1, keepdims=True),
                               logits - logits.max(axis=1, keepdims=True), rtol=1e-4,
                               atol=1e-4 * np.abs(logits).max())  # fmt: skip
    expected, _ = model.predict(obs, deterministic=True)
    assert np.array_equal(policy.act(obs), expected) and len(set(expected.tolist())) == 2


def test_depthwise_int8_c_is_bit_exact_with_numpy(
    depthwise_model: tuple[Any, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    from rlbudget.compress.quantize_conv import quantize_cnn
    from rlbudget.export import export_c
    from rlbudget.sb3.convert import from_model
    from tests.test_export_c import CFLAGS, GCC, compile_program, run_program

    if GCC is None:
        pytest.skip("gcc is not installed: the C export is not compiled")
    model, obs, _ = depthwise_model
    policy = quantize_cnn(from_model(model), obs)
    assert policy.body.kind == "cnn_int8"
    result = export_c(policy, tmp_path / "c")
    assert "rlb_depthwise_int8" in result.files[1].read_text()
    program = compile_program(tmp_path / "c", result, CFLAGS)
    more = np.concatenate([np.stack(_episode(s, [1, 0, 0, 1] * 8)) for s in range(10, 16)])
    test = np.concatenate([obs, more])
    ours = policy.act(test)
    c = np.array([int(v) for v in run_program(program, test)])
    assert np.array_equal(c, ours) and len(set(ours.tolist())) == 2
