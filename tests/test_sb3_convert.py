"""SB3 → Policy: every supported algorithm agrees with ``model.predict(deterministic=True)``.

Each model is built with tiny nets and random weights (equivalence does not need a good
policy; random weights push outputs past the clip and squash bounds), then checked on
10,000 observations (half from env rollouts, half sampled from the observation space)
both in process (:func:`from_model`) and through the file (``model.save`` →
:func:`import_model`): discrete actions identical except ties within 1e-6, continuous
actions within 1e-5.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch")
sb3 = pytest.importorskip("stable_baselines3")

from rlbudget.envs import SpaceSpec  # noqa: E402
from rlbudget.errors import PolicyError  # noqa: E402
from rlbudget.policy import Policy  # noqa: E402
from rlbudget.sb3.convert import convert, from_model  # noqa: E402
from rlbudget.sb3.importer import import_model  # noqa: E402

try:
    import sb3_contrib
except ImportError:  # pragma: no cover - depends on the environment
    sb3_contrib = None

needs_contrib = pytest.mark.skipif(
    sb3_contrib is None, reason="sb3-contrib is not installed (pip install rlbudget[contrib])"
)

N_OBS = 10_000
TIE = 1e-6
TOL = 1e-5


def sample_obs(env_id: str, n: int = N_OBS, seed: int = 0) -> np.ndarray:
    """Half from random-action rollouts, half sampled from the observation space
    (a normal with scale 3 on unbounded dimensions)."""
    env = gym.make(env_id)
    rng = np.random.default_rng(seed)
    rollout = []
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    while len(rollout) < n // 2:
        rollout.append(obs)
        obs, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            obs, _ = env.reset()
    space = env.observation_space
    env.close()
    if isinstance(space, gym.spaces.Discrete):
        sampled = rng.integers(0, int(space.n), n - n // 2)
        return np.concatenate([np.asarray(rollout), sampled])
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    bounded = (np.abs(low) < 1e10) & (np.abs(high) < 1e10)
    u = rng.uniform(np.where(bounded, low, 0), np.where(bounded, high, 1), (n - n // 2, low.size))
    normal = rng.normal(0.0, 3.0, u.shape)
    sampled = np.where(bounded, u, normal).astype(np.float32)
    return np.concatenate([np.asarray(rollout, dtype=np.float32), sampled])


def body_outputs(policy: Policy, obs: np.ndarray) -> np.ndarray:
    x = np.asarray(obs)
    for step in policy.preprocess:
        x = step.apply(x)
    return np.asarray(policy.body.apply(x))


def compare(policy: Policy, expected: np.ndarray, obs: np.ndarray) -> tuple[float, float]:
    """(agreement, max abs diff): asserts ties-only disagreement / continuous within TOL."""
    got = policy.act(obs)
    if policy.head.kind == "argmax":
        expected = expected.reshape(-1).astype(np.int64)
        y = body_outputs(policy, obs)
        rows = np.arange(len(obs))
        differ = got != expected
        gaps = np.abs(y[rows, got] - y[rows, expected])
        assert np.all(gaps[differ] <= TIE), f"non-tie disagreements: {int(np.sum(differ))}"
        return float(1 - differ.mean()), 0.0
    diff = float(np.max(np.abs(got - expected.reshape(got.shape))))
    assert diff <= TOL, diff
    return 1.0, diff


def randomize(model: Any, scale: float = 0.5, seed: int = 0) -> None:
    """Random weights everywhere (ARS starts at zero; SB3's init keeps outputs small)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.policy.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)


def make(name: str) -> tuple[Any, str]:
    """The model for a case id, with random weights, and its env id."""
    import stable_baselines3

    small: dict[str, Any] = {"net_arch": [16, 16]}
    relu = {**small, "activation_fn": torch.nn.ReLU}
    off: dict[str, Any] = {"buffer_size": 1000, "learning_starts": 0}
    cart, pend = "CartPole-v1", "Pendulum-v1"
    # case → (algorithm class, policy, env, policy_kwargs, other arguments)
    cases: dict[str, tuple[str, str, str, dict[str, Any], dict[str, Any]]] = {
        "ppo-discrete": ("PPO", "MlpPolicy", cart, small, {}),
        "ppo-box-relu": ("PPO", "MlpPolicy", pend, relu, {}),
        "ppo-sde-squash": ("PPO", "MlpPolicy", pend, {**small, "squash_output": True},
                           {"use_sde": True}),
        "ppo-pi-vf": ("PPO", "MlpPolicy", cart, {"net_arch": {"pi": [16, 8], "vf": [4]}}, {}),
        "ppo-onehot": ("PPO", "MlpPolicy", "FrozenLake-v1", small, {}),
        "a2c-discrete": ("A2C", "MlpPolicy", cart, small, {}),
        "a2c-box": ("A2C", "MlpPolicy", pend, small, {}),
        "dqn": ("DQN", "MlpPolicy", cart, small, off),
        "sac": ("SAC", "MlpPolicy", pend, small, off),
        "sac-sde": ("SAC", "MlpPolicy", pend, small, {**off, "use_sde": True}),
        "td3": ("TD3", "MlpPolicy", pend, small, off),
        "ddpg": ("DDPG", "MlpPolicy", pend, small, off),
        "qrdqn": ("QRDQN", "MlpPolicy", cart, {**small, "n_quantiles": 7}, off),
        "tqc": ("TQC", "MlpPolicy", pend, small, off),
        "tqc-sde": ("TQC", "MlpPolicy", pend, small, {**off, "use_sde": True}),
        "trpo": ("TRPO", "MlpPolicy", pend, small, {}),
        "ars-linear": ("ARS", "LinearPolicy", pend, {}, {}),
        "ars-mlp": ("ARS", "MlpPolicy", pend, small, {}),
        "ars-discrete": ("ARS", "MlpPolicy", cart, small, {}),
    }  # fmt: skip
    cls_name, policy, env_id, policy_kwargs, kwargs = cases[name]
    module = sb3_contrib if cls_name in ("QRDQN", "TQC", "TRPO", "ARS") else stable_baselines3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = getattr(module, cls_name)(policy, env_id, policy_kwargs=policy_kwargs, **kwargs)
    randomize(model)
    return model, env_id


SB3_CASES = ["ppo-discrete", "ppo-box-relu", "ppo-sde-squash", "ppo-pi-vf", "ppo-onehot",
             "a2c-discrete", "a2c-box", "dqn", "sac", "sac-sde", "td3", "ddpg"]  # fmt: skip
CONTRIB_CASES = ["qrdqn", "tqc", "tqc-sde", "trpo", "ars-linear", "ars-mlp", "ars-discrete"]
ALGO = {"ddpg": "ddpg", "trpo": "trpo"}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.mark.parametrize(
    "case", SB3_CASES + [pytest.param(c, marks=needs_contrib) for c in CONTRIB_CASES]
)
def test_equivalence_in_process_and_from_file(case: str, tmp_path: Path) -> None:
    model, env_id = make(case)
    obs = sample_obs(env_id)
    expected, _ = model.predict(obs, deterministic=True)
    live = from_model(model)
    agreement, _ = compare(live, expected, obs)
    assert agreement >= 0.999
    algo = case.split("-")[0]
    assert live.provenance["algorithm"] == algo and live.provenance["env"] == env_id
    assert ("gsde_clip_mean" in live.provenance) == (case in ("sac-sde", "tqc-sde"))

    model.save(tmp_path / "model.zip")
    result = import_model(tmp_path / "model.zip", env_id=env_id)
    assert result.algorithm == algo  # told apart from the zip alone (PPO/A2C/TRPO, TD3/DDPG)
    compare(result.policy, expected, obs)
    # both paths give the same numbers
    assert np.array_equal(np.asarray(result.policy.act(obs)), np.asarray(live.act(obs)))


def test_vecnormalize_in_process_and_from_file(tmp_path: Path) -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    venv = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), clip_obs=2.5)
    rng = np.random.default_rng(1)
    venv.obs_rms.mean = rng.normal(0, 1, 3)
    venv.obs_rms.var = rng.uniform(0.01, 4, 3)
    model = PPO("MlpPolicy", venv, policy_kwargs={"net_arch": [16]})
    randomize(model)
    obs = sample_obs("Pendulum-v1")
    expected, _ = model.predict(venv.normalize_obs(obs), deterministic=True)
    live = from_model(model, venv)
    assert [p.kind for p in live.preprocess] == ["normalize"]
    compare(live, expected, obs)
    model.save(tmp_path / "model.zip")
    venv.save(tmp_path / "stats.pkl")
    result = import_model(tmp_path / "model.zip", vecnormalize=tmp_path / "stats.pkl")
    compare(result.policy, expected, obs)
    assert result.policy.provenance["vecnormalize"] == "stats.pkl"
    norm = result.policy.preprocess[0]
    assert norm.clip == 2.5 and norm.eps == venv.epsilon  # type: ignore[union-attr]


def test_unsupported_activation_is_refused() -> None:
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", "CartPole-v1",
                policy_kwargs={"net_arch": [8], "activation_fn": torch.nn.LeakyReLU})  # fmt: skip
    with pytest.raises(PolicyError) as e:
        from_model(model)
    assert str(e.value) == (
        "policy_kwargs.activation_fn: activation 'LeakyReLU' is not supported by rlbudget "
        "policies (nn.ReLU, nn.Tanh, nn.Identity, nn.Sigmoid are); retrain with "
        "policy_kwargs=dict(activation_fn=nn.ReLU) or nn.Tanh"
    )


class _MultiDiscreteEnv(gym.Env[np.ndarray, np.ndarray]):
    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.MultiDiscrete([2, 3])

    def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
        return np.zeros(3, np.float32), {}

    def step(self, action: Any) -> Any:
        return np.zeros(3, np.float32), 0.0, True, False, {}


def test_multidiscrete_actions_are_refused() -> None:
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", _MultiDiscreteEnv(), policy_kwargs={"net_arch": [8]})
    with pytest.raises(PolicyError, match=r"^ppo model: action space MultiDiscrete is not"):
        from_model(model)


BOX3 = SpaceSpec("box", (3,), None, (-1.0,) * 3, (1.0,) * 3, "float32")
DISCRETE2 = SpaceSpec("discrete", (), 2, None, None, "int64")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("features_extractor.cnn.0.weight",
         "ppo model: 'features_extractor.cnn.0.weight' belongs to a CNN feature extractor "
         "(CnnPolicy); rlbudget imports MlpPolicy models only"),
        ("features_extractor.extractors.img.cnn_x.weight",
         "ppo model: 'features_extractor.extractors.img.cnn_x.weight' belongs to a "
         "Dict-observation extractor (MultiInputPolicy); rlbudget imports MlpPolicy models on "
         "flat observations"),
    ],
)  # fmt: skip
def test_unsupported_layouts(key: str, message: str) -> None:
    sd = {key: np.zeros((2, 2), np.float32), "action_net.weight": np.zeros((2, 3), np.float32)}
    with pytest.raises(PolicyError) as e:
        convert("ppo", sd, BOX3, DISCRETE2, activation="tanh")
    assert str(e.value) == message


def test_convert_checks_shapes_and_values() -> None:
    sd = {"action_net.weight": np.zeros((2, 4), np.float32), "action_net.bias": np.zeros(2)}
    with pytest.raises(PolicyError, match="layer 0 takes 4 inputs but receives 3"):
        convert("ppo", sd, BOX3, DISCRETE2, activation="tanh")
    sd = {"action_net.weight": np.full((2, 3), np.nan, np.float32)}
    with pytest.raises(PolicyError, match=r"'action_net\.weight' contains NaN or inf"):
        convert("ppo", sd, BOX3, DISCRETE2, activation="tanh")
    with pytest.raises(PolicyError, match=r"^unknown algorithm 'her'"):
        convert("her", sd, BOX3, DISCRETE2, activation="tanh")


def test_qrdqn_quantile_mean_is_folded_exactly() -> None:
    rng = np.random.default_rng(0)
    W = rng.normal(size=(5 * 2, 3)).astype(np.float32)  # torch layout [out, in]
    b = rng.normal(size=10).astype(np.float32)
    p = convert("qrdqn", {"quantile_net.quantile_net.0.weight": W,
                          "quantile_net.quantile_net.0.bias": b}, BOX3, DISCRETE2,
                activation="relu")  # fmt: skip
    x = rng.normal(size=(100, 3)).astype(np.float32)
    quantiles = (x.astype(np.float64) @ W.T.astype(np.float64) + b).reshape(100, 5, 2)
    assert np.allclose(body_outputs(p, x), quantiles.mean(axis=1), atol=1e-5)


@needs_contrib
@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
def test_ars_linear_policy_without_bias_as_one_linear(env_id: str, tmp_path: Path) -> None:
    """An ARS LinearPolicy whose ``action_net`` is one bare ``nn.Linear(bias=False)``: its
    state dict holds ``action_net.weight`` and nothing else (issue 14, item 10)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sb3_contrib.ARS("LinearPolicy", env_id, policy_kwargs={"with_bias": False})
    policy = model.policy
    linear = policy.action_net[0]
    bare = torch.nn.Linear(linear.in_features, linear.out_features, bias=False)
    policy.action_net = bare
    randomize(model, scale=1.0)
    assert list(policy.state_dict()) == ["action_net.weight"]
    obs = sample_obs(env_id, n=2000)
    expected, _ = model.predict(obs, deterministic=True)

    model.save(tmp_path / "model.zip")
    result = import_model(tmp_path / "model.zip", env_id=env_id)
    assert result.algorithm == "ars"
    compare(result.policy, expected, obs)
    assert np.array_equal(result.policy.body.layers[0].b, np.zeros(linear.out_features))
