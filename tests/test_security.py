"""Hardening (issue 14 items 1, 6, 7, 9): nothing read from a file imports a module; every
bad input is one line and exit 2; an unexpected exception is one line and exit 3; every
number of a policy is checked on load; budget figures that round to zero are refused."""

from __future__ import annotations

import errno
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from rlbudget.cli import app
from rlbudget.errors import PolicyError
from rlbudget.policy import load_policy, save_policy
from tests.factories import cartpole_mlp

from .test_policy import rewrite_json

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def one_line(r: Any, code: int) -> str:
    """The single stderr line of a result that exited with ``code`` and no traceback."""
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    return str(lines[0])


# --- item 1: an env id from a file never imports a module ----------------------------------


@pytest.fixture
def evil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A module on sys.path that writes a marker file when imported: (its name, the marker)."""
    name = f"evilmod_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "code-ran"
    (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, marker
    sys.modules.pop(name, None)


def evil_policy(tmp_path: Path, module: str) -> Path:
    p = cartpole_mlp()
    p = type(p)(p.observation_space, p.action_space, p.preprocess, p.body, p.head,
                {"algorithm": "ppo", "env": f"{module}:CartPole-v1"})  # fmt: skip
    return save_policy(p, tmp_path / "pol")


@pytest.mark.parametrize("command", ["evaluate", "compress", "profile"])
def test_env_id_from_policy_json_imports_nothing(
    command: str, evil: tuple[str, Path], tmp_path: Path
) -> None:
    module, marker = evil
    pol = evil_policy(tmp_path, module)
    (tmp_path / "b.yaml").write_text("device: esp32\n")
    extra = {
        "compress": ["-m", "int8", "-o", str(tmp_path / "small"), "--episodes", "1"],
        "evaluate": ["--episodes", "1"],
        "profile": ["--episodes", "1", "-b", str(tmp_path / "b.yaml")],
    }[command]
    r = invoke(command, str(pol), *extra)
    line = one_line(r, 2)
    assert f"environment id '{module}:CartPole-v1' names module '{module}'" in line
    assert "--trust-env-id" in line
    assert not marker.exists()
    assert not (tmp_path / "small").exists()


def test_env_id_named_on_the_command_line_runs_the_module(
    evil: tuple[str, Path], tmp_path: Path
) -> None:
    module, marker = evil
    pol = evil_policy(tmp_path, "unused")
    r = invoke("evaluate", str(pol), "--env", f"{module}:CartPole-v1", "--episodes", "1")
    assert r.exit_code == 0, r.output
    assert marker.exists()  # documented: --env module:EnvId runs the module's code


def test_budget_on_the_command_line_may_name_a_module(
    evil: tuple[str, Path], tmp_path: Path
) -> None:
    module, marker = evil
    b = tmp_path / "b.yaml"
    b.write_text(f"device: esp32\ntask:\n  env: {module}:CartPole-v1\n")
    r = invoke("plan", str(b), "--json")
    assert r.exit_code in (0, 1), r.output
    assert marker.exists()  # the user's own budget: documented to run the module's code


def test_trust_env_id_lets_a_file_name_the_module(evil: tuple[str, Path], tmp_path: Path) -> None:
    module, marker = evil
    pol = evil_policy(tmp_path, module)
    r = invoke("--trust-env-id", "evaluate", str(pol), "--episodes", "1")
    assert r.exit_code == 0, r.output
    assert marker.exists()
    # the next command without the flag does not inherit it (a module already imported
    # runs nothing more, so forget it first)
    sys.modules.pop(module)
    marker.unlink()
    assert invoke("evaluate", str(pol), "--episodes", "1").exit_code == 2
    assert not marker.exists()


def test_sb3_folder_name_imports_nothing(evil: tuple[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    module, marker = evil
    folder = tmp_path / f"ppo-{module}:CartPole-v1"
    folder.mkdir()
    PPO("MlpPolicy", "CartPole-v1", policy_kwargs={"net_arch": [8]}).save(
        folder / f"{module}:CartPole-v1.zip"
    )
    r = invoke("import", str(folder), "-o", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    assert not marker.exists()
    assert f"names module '{module}'" in r.output  # the note on the env it could not check
    r = invoke("evaluate", str(tmp_path / "out"), "--episodes", "1")  # provenance: the id
    assert r.exit_code == 2 and not marker.exists()


def test_plan_file_env_imports_nothing(evil: tuple[str, Path], tmp_path: Path) -> None:
    module, marker = evil
    plan = tmp_path / "plan.yaml"
    assert invoke("plan", "-o", str(plan)).exit_code == 0
    plan.write_text(
        plan.read_text().replace("env_id: CartPole-v1", f"env_id: {module}:CartPole-v1")
    )
    r = invoke("train", str(plan), "-o", str(tmp_path / "run"))
    assert f"names module '{module}'" in one_line(r, 2)
    assert not marker.exists()


def test_registered_entry_point_of_an_unimported_package_is_refused() -> None:
    from gymnasium.envs.registration import register, registry

    from rlbudget.envs import make_env
    from rlbudget.errors import EnvError

    register(id="SecEntry-v0", entry_point="notimported_pkg_x.envs:Env")
    try:
        with pytest.raises(EnvError, match=r"entry point 'notimported_pkg_x\.envs:Env'"):
            make_env("SecEntry-v0")
    finally:
        registry.pop("SecEntry-v0")


# --- item 6: one line, exit 2 for bad input; exit 3 for a bug -------------------------------


def test_unexpected_exception_is_one_line_exit_3(monkeypatch: pytest.MonkeyPatch) -> None:
    import rlbudget.budget

    def boom(*a: Any, **k: Any) -> Any:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(rlbudget.budget, "parse_budget", boom)
    monkeypatch.delenv("RLBUDGET_DEBUG", raising=False)
    line = one_line(invoke("check"), 3)
    assert line.startswith("error: unexpected ZeroDivisionError: division by zero; this is a bug")
    monkeypatch.setenv("RLBUDGET_DEBUG", "1")
    r = invoke("check")
    assert isinstance(r.exception, ZeroDivisionError)  # the traceback is shown


def test_help_documents_exit_3() -> None:
    r = invoke("--help")
    assert "3 a bug in rlbudget" in " ".join(r.stdout.split())


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\ufffe"])
def test_yaml_control_characters(char: str, tmp_path: Path) -> None:
    b = tmp_path / "b.yaml"
    b.write_text(f"device: esp32\nname: a{char}b\n", encoding="utf-8")
    line = one_line(invoke("check", str(b)), 2)
    assert line.startswith(f"error: {b}:2: not valid YAML:"), line


def test_disk_full_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import rlbudget.fileio

    def full(*a: Any, **k: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    save_policy(cartpole_mlp(), tmp_path / "pol")
    monkeypatch.setattr(rlbudget.fileio.os, "fsync", full)
    out = tmp_path / "firmware"
    r = invoke("export", str(tmp_path / "pol"), "--format", "c", "-o", str(out))
    line = one_line(r, 2)
    assert line.startswith("error: disk full writing ") and "free some space" in line
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_disk_full_outside_fileio_is_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    import rlbudget.budget

    def full(*a: Any, **k: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device", "runs/x/metrics.csv")

    monkeypatch.setattr(rlbudget.budget, "parse_budget", full)
    line = one_line(invoke("check"), 2)
    assert line.startswith("error: disk full writing runs/x/metrics.csv: free some space")


@pytest.mark.parametrize(
    ("algo", "env"), [("sac", "CartPole-v1"), ("dqn", "Pendulum-v1"), ("q-learning", "Acrobot-v1")]
)
def test_algorithm_space_mismatch_is_exit_2(algo: str, env: str, tmp_path: Path) -> None:
    r = invoke("train", "--algo", algo, "--env", env, "-o", str(tmp_path / "run"))
    line = one_line(r, 2)
    assert line.startswith(f"error: {algo} ") and env in line, line


def test_deep_policy_json_is_exit_2(tmp_path: Path) -> None:
    pol = save_policy(cartpole_mlp(), tmp_path / "pol")
    doc = json.loads((pol / "policy.json").read_text())
    doc["provenance"]["x"] = "DEEP"
    text = json.dumps(doc).replace('"DEEP"', "[" * 100_000 + "]" * 100_000)
    (pol / "policy.json").write_text(text)
    line = one_line(invoke("show", str(pol)), 2)
    assert (
        line == f"error: {pol / 'policy.json'}: nested deeper than 32 levels; the file is corrupt"
    )


# --- item 7: every number of a policy is checked on load -----------------------------------


def _pre(d: dict[str, Any], **kw: Any) -> None:
    d["preprocess"][0].update(kw)


NUMBERS = {
    "nan-clip": (lambda d: _pre(d, clip=float("nan")), "preprocess[0] (normalize): clip must be"),
    "zero-clip": (
        lambda d: _pre(d, clip=0),
        "preprocess[0] (normalize): clip must be a number > 0",
    ),
    "neg-eps": (
        lambda d: _pre(d, eps=-1e-3),
        "preprocess[0] (normalize): eps must be a number ≥ 0",
    ),
    "inf-eps": (lambda d: _pre(d, eps=float("inf")), "preprocess[0] (normalize): eps must be"),
    "str-clip": (lambda d: _pre(d, clip="5"), "preprocess[0] (normalize): clip must be"),
}


@pytest.mark.parametrize("case", sorted(NUMBERS))
def test_invalid_numbers_name_the_field(case: str, tmp_path: Path) -> None:
    edit, expected = NUMBERS[case]
    pol = save_policy(cartpole_mlp(), tmp_path / "pol")
    rewrite_json(pol, edit)
    with pytest.raises(PolicyError) as e:
        load_policy(pol)
    assert str(e.value).startswith(f"{pol}: {expected}"), str(e.value)
    r = invoke("export", str(pol), "--format", "c", "-o", str(tmp_path / "c"))
    assert one_line(r, 2) == f"error: {e.value}"
    assert not (tmp_path / "c").exists()


def tile_policy(tmp_path: Path) -> Path:
    from rlbudget.envs import env_spec
    from rlbudget.policy import Head, Linear, Policy, TileCode

    s = env_spec("CartPole-v1", measure_steps=0)
    tc = TileCode(np.full(4, -3.0), np.full(4, 3.0), 2, 2, 64)
    body = Linear(np.zeros((tc.features, 2), np.float32), np.zeros(2, np.float32), None)
    return save_policy(Policy(s.observation, s.action, (tc,), body, Head("argmax")),
                       tmp_path / "tiles")  # fmt: skip


@pytest.mark.parametrize(
    ("value", "shown"), [(0, "0"), (1e999, "inf"), (2.5, "2.5"), ("3", "'3'"), (True, "True")]
)
def test_tiles_per_dim(value: Any, shown: str, tmp_path: Path) -> None:
    pol = tile_policy(tmp_path)
    text = (pol / "policy.json").read_text()
    doc = json.loads(text)
    doc["preprocess"][0]["tiles_per_dim"] = "SENTINEL"
    text = json.dumps(doc).replace('"SENTINEL"', "1e999" if value == 1e999 else json.dumps(value))
    (pol / "policy.json").write_text(text)
    line = one_line(invoke("show", str(pol)), 2)
    assert line == (f"error: {pol}: preprocess[0] (tile_code): tiles_per_dim must be an integer "
                    f"from 1 to 2,147,483,647, not {shown}")  # fmt: skip


def test_absurd_weights_are_refused(tmp_path: Path) -> None:
    from .test_policy import rewrite_arrays

    pol = save_policy(cartpole_mlp(), tmp_path / "pol")
    rewrite_arrays(pol, lambda a: a.update({"body.0.W": a["body.0.W"] * 0 + np.float32(1e38)}))
    line = one_line(invoke("evaluate", str(pol), "--env", "CartPole-v1"), 2)
    assert "array 'body.0.W' holds values beyond ±1e+10" in line


def test_export_never_writes_nan_or_inf(tmp_path: Path) -> None:
    pol = save_policy(cartpole_mlp(), tmp_path / "pol")
    assert invoke("export", str(pol), "--format", "c", "-o", str(tmp_path / "c")).exit_code == 0
    text = " ".join(p.read_text() for p in (tmp_path / "c").iterdir() if p.suffix in (".c", ".h"))
    for word in ("nan", "inf", "NAN", "INFINITY"):
        assert f" {word}" not in text and f"{word}f" not in text.replace("inference", "")


# --- item 9: budget figures ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [("inference:\n  ram", "1e-20 GiB", "'1e-20 GiB' rounds to 0 bytes"),
     ("training:\n  cores", "1e-10", "'1e-10' rounds to 0; give at least 1"),
     ("training:\n  env_steps", "0.4", "'0.4' is not a whole number")],
)  # fmt: skip
def test_figures_that_round_to_zero(key: str, value: str, expected: str, tmp_path: Path) -> None:
    b = tmp_path / "b.yaml"
    b.write_text(f"device: esp32\n{key}: {value}\n")
    line = one_line(invoke("check", str(b)), 2)
    assert expected in line, line


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero on this system")
def test_check_dev_zero_reads_a_bounded_amount() -> None:
    line = one_line(invoke("check", "/dev/zero"), 2)
    assert (
        line == "error: /dev/zero: the file is over the 1 MiB limit for a budget; a budget is "
        "a few dozen lines"
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_check_fifo_reads_a_bounded_amount(tmp_path: Path) -> None:
    import threading

    fifo = tmp_path / "budget.fifo"
    os.mkfifo(fifo)
    stop = threading.Event()

    def writer() -> None:
        try:
            with open(fifo, "wb") as f:
                while not stop.is_set():
                    f.write(b"#" * 65536 + b"\n")
        except BrokenPipeError:
            pass

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        line = one_line(invoke("check", str(fifo)), 2)
    finally:
        stop.set()
    assert "over the 1 MiB limit" in line
