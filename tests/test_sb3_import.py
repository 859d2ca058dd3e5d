"""Importing SB3 zips and RL Zoo folders: nothing from the file runs, every corrupt input is
one exact error line (exit 2, no output folder), and the five real RL Zoo models reproduce
their reference returns and SB3's actions."""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("stable_baselines3")

from rlbudget.cli import app  # noqa: E402
from rlbudget.errors import PolicyError  # noqa: E402
from rlbudget.policy import load_policy  # noqa: E402
from rlbudget.sb3.files import read_vecnormalize, read_zoo_config  # noqa: E402
from rlbudget.sb3.importer import import_model  # noqa: E402
from rlbudget.sb3.pickles import Global, inspect_pickle  # noqa: E402

from .conftest import ZOO, needs_zoo  # noqa: E402
from .test_sb3_convert import randomize, sample_obs  # noqa: E402

runner = CliRunner()

# --- a small real model to break ----------------------------------------------------------


@pytest.fixture(scope="module")
def ppo_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    model = PPO("MlpPolicy", "CartPole-v1", policy_kwargs={"net_arch": [16, 16]})
    randomize(model)
    path = tmp_path_factory.mktemp("model") / "ppo-CartPole-v1.zip"
    model.save(path)
    return path


def rezip(src: Path, dst: Path, **members: bytes | None) -> Path:
    """Copy ``src`` to ``dst`` with members replaced (bytes) or removed (None)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            key = name.replace(".", "_")
            if key in members:
                if members[key] is not None:
                    zout.writestr(name, members[key])  # type: ignore[arg-type]
            else:
                zout.writestr(name, zin.read(name))
    return dst


def state_dict_bytes(src: Path, **changes: Any) -> bytes:
    with zipfile.ZipFile(src) as z:
        sd = torch.load(io.BytesIO(z.read("policy.pth")), weights_only=True)
    sd.update(changes)
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue()


def invoke_import(tmp_path: Path, *args: str) -> Any:
    return runner.invoke(app, ["import", *args, "-o", str(tmp_path / "out")])


def assert_one_line_exit_2(r: Any, tmp_path: Path, expected: str, *, prefix: bool = False) -> None:
    assert r.exit_code == 2, r.output
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    if prefix:
        assert lines[0].startswith(expected), lines[0]
    else:
        assert lines[0] == expected
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


# --- corrupt inputs -----------------------------------------------------------------------


def test_not_a_zip(tmp_path: Path) -> None:
    bad = tmp_path / "model.zip"
    bad.write_bytes(b"PK but not really a zip")
    r = invoke_import(tmp_path, str(bad))
    assert_one_line_exit_2(
        r, tmp_path, f"error: {bad}: not a zip file; give a model saved with model.save(path)"
    )


@pytest.mark.parametrize("member", ["data", "policy.pth"])
def test_zip_without_member(member: str, ppo_zip: Path, tmp_path: Path) -> None:
    bad = rezip(ppo_zip, tmp_path / "m.zip", **{member.replace(".", "_"): None})
    r = invoke_import(tmp_path, str(bad), "--algo", "ppo")
    assert_one_line_exit_2(
        r, tmp_path, f"error: {bad}: has no '{member}'; not a Stable-Baselines3 model zip "
        "(save it with model.save(path))",
    )  # fmt: skip


def test_truncated_policy_pth(ppo_zip: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(ppo_zip) as z:
        pth = z.read("policy.pth")
    bad = rezip(ppo_zip, tmp_path / "m.zip", policy_pth=pth[: len(pth) // 2])
    r = invoke_import(tmp_path, str(bad))
    assert_one_line_exit_2(
        r, tmp_path, f"error: {bad}: policy.pth is not a readable state dict (RuntimeError: "
        "PytorchStreamReader failed reading zip archive: failed finding central directory); "
        "the file is corrupt or not from SB3",
    )  # fmt: skip


def test_data_not_json(ppo_zip: Path, tmp_path: Path) -> None:
    bad = rezip(ppo_zip, tmp_path / "m.zip", data=b"{not json")
    r = invoke_import(tmp_path, str(bad))
    assert_one_line_exit_2(
        r, tmp_path, f"error: {bad}: 'data' is not valid JSON (Expecting property name "
        "enclosed in double quotes: line 1 column 2 (char 1)); the zip is corrupt or not from SB3",
    )  # fmt: skip


def test_wrong_shapes(ppo_zip: Path, tmp_path: Path) -> None:
    pth = state_dict_bytes(ppo_zip, **{"action_net.weight": torch.zeros(2, 5)})
    bad = rezip(ppo_zip, tmp_path / "m.zip", policy_pth=pth)
    r = invoke_import(tmp_path, str(bad))
    assert_one_line_exit_2(
        r, tmp_path, f"error: {bad}: state dict: ppo actor layer 2 takes 5 inputs but receives "
        "16; the weights do not match the observation space",
    )  # fmt: skip


def test_nan_weights(ppo_zip: Path, tmp_path: Path) -> None:
    nan = torch.full((16,), float("nan"))
    pth = state_dict_bytes(ppo_zip, **{"mlp_extractor.policy_net.0.bias": nan})
    bad = rezip(ppo_zip, tmp_path / "m.zip", policy_pth=pth)
    r = invoke_import(tmp_path, str(bad))
    assert_one_line_exit_2(
        r, tmp_path, f"error: {bad}: state dict: 'mlp_extractor.policy_net.0.bias' contains "
        "NaN or inf; the model diverged in training, retrain it (or import an earlier checkpoint)",
    )  # fmt: skip


def test_unknown_and_contradicting_algorithm(ppo_zip: Path, tmp_path: Path) -> None:
    r = invoke_import(tmp_path, str(ppo_zip), "--algo", "her")
    assert_one_line_exit_2(
        r, tmp_path, "error: --algo her: unknown algorithm; rlbudget imports ppo, a2c, trpo, "
        "dqn, qrdqn, sac, tqc, td3, ddpg, ars",
    )  # fmt: skip
    r = invoke_import(tmp_path, str(ppo_zip), "--algo", "sac")
    assert_one_line_exit_2(
        r, tmp_path, f"error: {ppo_zip}: --algo sac does not match the zip's policy class "
        "stable_baselines3.common.policies.ActorCriticPolicy (it fits ppo, a2c, trpo)",
    )  # fmt: skip


def test_env_with_other_spaces_is_refused(ppo_zip: Path, tmp_path: Path) -> None:
    r = invoke_import(tmp_path, str(ppo_zip), "--env", "Pendulum-v1")
    assert_one_line_exit_2(
        r, tmp_path, "error: environment 'Pendulum-v1' has a box observation space [3], but the "
        "model's is box [4]; pass the env the model was trained on",
    )  # fmt: skip


# --- hostile files run nothing ------------------------------------------------------------


class Evil:
    """Unpickling this runs a shell command (if anything unpickles it)."""

    def __init__(self, marker: Path, via_exec: bool = False) -> None:
        self.marker, self.via_exec = marker, via_exec

    def __reduce__(self) -> Any:
        if self.via_exec:
            return (exec, (f"open({str(self.marker)!r}, 'w').close()",))
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("via_exec", [False, True], ids=["os.system", "exec"])
def test_malicious_data_pickles_run_nothing(via_exec: bool, ppo_zip: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    evil = base64.b64encode(pickle.dumps(Evil(marker, via_exec))).decode()
    with zipfile.ZipFile(ppo_zip) as z:
        data = json.loads(z.read("data"))
    for key in ("observation_space", "action_space", "policy_kwargs", "lr_schedule"):
        data[key] = {":type:": "<class 'function'>", ":serialized:": evil}
    bad = rezip(ppo_zip, tmp_path / "m.zip", data=json.dumps(data).encode())
    r = invoke_import(tmp_path, str(bad))
    target = "builtins.exec" if via_exec else f"{os.system.__module__}.system"
    assert_one_line_exit_2(
        r, tmp_path, f"error: {bad}: data.observation_space refers to {target}, not a "
        "gym/gymnasium space; the zip is not a genuine SB3 model (nothing from it was executed)",
    )  # fmt: skip
    assert not marker.exists()
    # the inspector itself only names what the pickle refers to
    value = inspect_pickle(pickle.dumps(Evil(marker)), "x")
    assert value.func == Global(os.system.__module__, "system") and not marker.exists()


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_malicious_policy_pth_runs_nothing(layout: str, ppo_zip: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    payload = pickle.dumps({"action_net.weight": Evil(marker)})
    if layout == "zip":  # a torch archive whose data.pkl is replaced
        buf = io.BytesIO()
        torch.save({"w": torch.zeros(1)}, buf)
        src = tmp_path / "t.pth"
        src.write_bytes(buf.getvalue())
        with zipfile.ZipFile(src) as zin:
            names = zin.namelist()
            pkl = next(n for n in names if n.endswith("data.pkl"))
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as zout:
                for n in names:
                    zout.writestr(n, payload if n == pkl else zin.read(n))
        payload = out.getvalue()
    bad = rezip(ppo_zip, tmp_path / "m.zip", policy_pth=payload)
    r = invoke_import(tmp_path, str(bad))
    assert_one_line_exit_2(
        r, tmp_path, f"error: {bad}: policy.pth holds objects other than tensors; torch's "
        "weights-only loader refused them and nothing was executed. Do not load this file "
        "with SB3",
    )  # fmt: skip
    assert not marker.exists()


def test_malicious_vecnormalize_runs_nothing(ppo_zip: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    vec = tmp_path / "vecnormalize.pkl"
    vec.write_bytes(pickle.dumps({"obs_rms": Evil(marker)}))
    r = invoke_import(tmp_path, str(ppo_zip), "--vecnormalize", str(vec))
    assert_one_line_exit_2(
        r, tmp_path, f"error: {vec}: refers to {os.system.__module__}.system, which rlbudget "
        "does not load; a vecnormalize.pkl holds only VecNormalize statistics (nothing was "
        "executed)",
    )  # fmt: skip
    assert not marker.exists()


def test_vecnormalize_allow_list_reads_stats_as_records(tmp_path: Path) -> None:
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    venv = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), clip_obs=3.0)
    venv.obs_rms.mean = np.array([0.1, -0.2, 0.3])
    venv.obs_rms.var = np.array([1.5, 0.5, 2.0])
    venv.save(tmp_path / "v.pkl")
    norm, warns = read_vecnormalize(tmp_path / "v.pkl")
    assert norm is not None and warns == []
    assert np.array_equal(norm.mean, np.float32([0.1, -0.2, 0.3]))
    assert (norm.clip, norm.eps) == (3.0, venv.epsilon)


def test_zoo_config_loader_accepts_ordered_dict_only(tmp_path: Path) -> None:
    good = tmp_path / "config.yml"
    good.write_text(
        "!!python/object/apply:collections.OrderedDict\n- - - n_envs\n    - 8\n"
        "  - - policy\n    - MlpPolicy\n"
    )
    assert read_zoo_config(good) == {"n_envs": 8, "policy": "MlpPolicy"}
    marker = tmp_path / "MARKER"
    bad = tmp_path / "evil.yml"
    bad.write_text(f"!!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(PolicyError) as e:
        read_zoo_config(bad)
    assert str(e.value).startswith(
        f"{bad}: not a readable RL Zoo config.yml (could not determine a constructor for the "
        "tag 'tag:yaml.org,2002:python/object/apply:os.system'"
    )
    assert not marker.exists()


# --- the CLI on a good model --------------------------------------------------------------


def test_cli_import_writes_a_loadable_policy(ppo_zip: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["import", str(ppo_zip), "-o", str(tmp_path / "pol"), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert set(info) >= {
        "algorithm", "algorithm_from", "source", "sha256", "sb3_version", "env",
        "observation_space", "action_space", "preprocess", "layers", "head", "parameters",
        "bytes", "warnings", "output",
    }  # fmt: skip
    assert (info["algorithm"], info["algorithm_from"], info["env"]) == (
        "ppo", "file name", "CartPole-v1",
    )  # fmt: skip
    assert info["layers"] == [[4, 16, "tanh"], [16, 16, "tanh"], [16, 2, "identity"]]
    policy = load_policy(tmp_path / "pol")
    import hashlib

    assert policy.provenance["sha256"] == hashlib.sha256(ppo_zip.read_bytes()).hexdigest()
    assert policy.provenance["transforms"] == []
    r = runner.invoke(app, ["import", str(ppo_zip), "-o", str(tmp_path / "pol2")])
    assert r.exit_code == 0 and "policy written to" in r.stdout


def test_cli_import_creates_missing_parent_folders(ppo_zip: Path, tmp_path: Path) -> None:
    out = tmp_path / "policies" / "cartpole"
    r = runner.invoke(app, ["import", str(ppo_zip), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert load_policy(out).observation_space.shape == (4,)


def test_cli_import_under_a_file_exit_2(ppo_zip: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "pol"
    r = runner.invoke(app, ["import", str(ppo_zip), "-o", str(out)])
    assert r.exit_code == 2
    assert r.stderr.strip() == f"error: {out}: cannot create its folder (File exists)"


def test_import_help_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom rlbudget.cli import app\n"
        "try:\n    app(['import', '--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "print('HEAVY:' + ','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'stable_baselines3'))))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.stdout.strip().splitlines()[-1] == "HEAVY:", r.stderr


# --- the five RL Zoo models ---------------------------------------------------------------

# zoo README: SB3 predict on DummyVecEnv, venv.seed(0), 10 consecutive episodes
REFERENCE = {
    "a2c-Pendulum-v1": (-166.1, 72.6),
    "dqn-CartPole-v1": (500.0, 0.0),
    "ppo-CartPole-v1": (500.0, 0.0),
    "ppo-MountainCar-v0": (-108.1, 20.2),
    "sac-Pendulum-v1": (-160.3, 51.3),
}


def _sb3_reference(folder: Path, env_id: str) -> tuple[Any, Any]:
    """SB3's own model (loaded in the test only, trusted file) and its obs normalizer."""
    import stable_baselines3 as sb3

    env = gym.make(env_id)
    algo = folder.name.split("-")[0]
    cls = getattr(sb3, algo.upper())
    custom = {"observation_space": env.observation_space, "action_space": env.action_space,
              "lr_schedule": lambda _: 0.0, "learning_rate": 0.0,
              "clip_range": lambda _: 0.2, "exploration_schedule": lambda _: 0.0}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cls.load(folder / f"{env_id}.zip", custom_objects=custom, device="cpu")
    vec = folder / "vecnormalize.pkl"
    if not vec.is_file():
        return model, None

    class GymAsRecord(pickle.Unpickler):  # old gym space classes; the rest is SB3's own
        def find_class(self, module: str, name: str) -> Any:
            if module.startswith(("gym.", "gymnasium.")):
                return type(name, (), {"__setstate__": lambda self, s: None})
            return super().find_class(module, name)

    stats = GymAsRecord(io.BytesIO(vec.read_bytes())).load()
    return model, stats


@needs_zoo(*REFERENCE)
@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_zoo_model_imports_and_reproduces_returns(name: str, tmp_path: Path) -> None:
    folder = ZOO / name
    env_id = name.split("-", 1)[1]
    r = runner.invoke(app, ["import", str(folder), "-o", str(tmp_path / "pol"), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert (info["algorithm"], info["env"]) == (name.split("-")[0], env_id)
    assert info["preprocess"] == (["normalize"] if (folder / "vecnormalize.pkl").exists() else [])

    r = runner.invoke(app, ["evaluate", str(tmp_path / "pol"), "-n", "10", "--seed", "0",
                            "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    mean, std = REFERENCE[name]
    got = json.loads(r.stdout)
    assert abs(got["return_mean"] - mean) <= max(std, 0.05), (got["return_mean"], mean)

    torch.set_num_threads(1)
    model, stats = _sb3_reference(folder, env_id)
    policy = load_policy(tmp_path / "pol")
    obs = sample_obs(env_id, n=2000)
    sb3_obs = obs if stats is None else stats.normalize_obs(obs)
    expected, _ = model.predict(sb3_obs, deterministic=True)
    actions = policy.act(obs)
    if policy.head.kind == "argmax":
        assert np.mean(actions == expected) >= 0.999
    else:
        assert np.max(np.abs(actions - expected)) <= 1e-5


@needs_zoo("dqn-CartPole-v1")
def test_old_gym_model_spaces_come_from_the_pickle() -> None:
    result = import_model(ZOO / "dqn-CartPole-v1")
    obs = result.policy.observation_space
    # exact float32 bounds (the JSON text "4.8000002e+00" is rounded)
    assert obs.high[0] == float(np.float32(4.8)) and obs.high[1] == float(np.finfo(np.float32).max)
    assert result.sb3_version == "1.0rc0" and result.warnings == ()
    assert result.policy.provenance["sb3_version"] == "1.0rc0"


# --- folder layouts and what the zip alone cannot tell ------------------------------------


def test_rl_zoo_logs_layout(ppo_zip: Path, tmp_path: Path) -> None:
    """logs/ppo/CartPole-v1_1/{CartPole-v1.zip, CartPole-v1/config.yml} as RL Zoo writes it."""
    run = tmp_path / "logs" / "ppo" / "CartPole-v1_1"
    (run / "CartPole-v1").mkdir(parents=True)
    (run / "CartPole-v1.zip").write_bytes(ppo_zip.read_bytes())
    (run / "best_model.zip").write_bytes(ppo_zip.read_bytes())
    config = run / "CartPole-v1" / "config.yml"
    config.write_text(
        "!!python/object/apply:collections.OrderedDict\n- - - env_wrapper\n"
        "    - sb3_contrib.common.wrappers.TimeFeatureWrapper\n  - - normalize\n    - true\n"
    )
    with pytest.raises(PolicyError) as e:
        import_model(run)
    assert str(e.value) == (
        f"{config}: the model was trained with normalize=True but no vecnormalize.pkl was "
        "found; pass --vecnormalize FILE (without it the policy would silently get "
        "unnormalized observations)"
    )
    config.write_text(config.read_text().replace("true", "false"))
    result = import_model(run)
    assert result.source == str(run / "CartPole-v1.zip")
    assert (result.algorithm, result.env_id, result.config) == ("ppo", "CartPole-v1", str(config))
    assert result.warnings == (
        f"{config}: env_wrapper='sb3_contrib.common.wrappers.TimeFeatureWrapper'; the wrapper "
        "is not part of the imported policy: apply it to the env's observations yourself",
    )


def test_vecnormalize_beside_a_bare_zip_is_pointed_out(ppo_zip: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.zip"
    model.write_bytes(ppo_zip.read_bytes())
    (tmp_path / "vecnormalize.pkl").write_bytes(b"")
    result = import_model(model, algorithm="ppo")
    assert result.warnings == (
        f"{tmp_path / 'vecnormalize.pkl'} lies beside the model; if it was trained with it, "
        f"import again with --vecnormalize {tmp_path / 'vecnormalize.pkl'}",
    )


def test_shared_actor_critic_class_without_hints_asks_for_algo() -> None:
    from stable_baselines3.common.policies import ActorCriticPolicy

    from rlbudget.sb3.zipdata import detect_algorithm

    cls = base64.b64encode(pickle.dumps(ActorCriticPolicy)).decode()
    data = {"policy_class": {":serialized:": cls}, "gamma": 0.99}
    with pytest.raises(PolicyError) as e:
        detect_algorithm(data, "m.zip")
    assert str(e.value) == (
        "m.zip: ActorCriticPolicy is used by PPO, A2C and TRPO and the zip does not say which; "
        "pass --algo ppo (or a2c, trpo)"
    )
    assert detect_algorithm(data, "m.zip", given="A2C") == ("a2c", "--algo")
    assert detect_algorithm({**data, "clip_range": 0.2}, "m.zip") == (
        "ppo", "saved hyperparameters",
    )  # fmt: skip
