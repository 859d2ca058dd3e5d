"""``compress -m int8`` and ``profile`` on a CNN policy, as a user runs them: the same
commands as for an MLP, on a pixel env registered by ``--gym-package``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rlbudget.cli import app
from rlbudget.policy import load_policy, save_policy
from rlbudget.policy.conv import CNN
from tests.test_conv import SMALL_ENV_ID, images, random_cnn

PACKAGE = ["--gym-package", "tests.test_conv"]


@pytest.fixture(scope="module")
def compressed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    root = tmp_path_factory.mktemp("cnn-cli")
    policy = random_cnn()
    policy = replace(policy, provenance={**policy.provenance, "env": SMALL_ENV_ID})
    save_policy(policy, root / "float")
    result = CliRunner().invoke(app, ["compress", str(root / "float"), "-m", "int8", "-o",
                                      str(root / "int8"), "-n", "5", "--states", "300",
                                      "--json", *PACKAGE])  # fmt: skip
    assert result.exit_code == 0, result.output
    return root, json.loads(result.stdout)


def test_compress_int8_writes_a_cnn_int8_policy(compressed: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    root, report = compressed
    before, after = load_policy(root / "float"), load_policy(root / "int8")
    assert isinstance(after.body, CNN) and after.body.kind == "cnn_int8"
    assert after.macs == before.macs == 28_000  # test_conv.test_counts, by hand
    transform = after.provenance["transforms"][-1]
    assert transform["method"] == "int8" and transform["weight_scales"] == "per channel"
    assert transform["bytes_after"] < transform["bytes_before"] / 2
    obs = images(300, seed=21)
    assert (after.act(obs) == before.act(obs)).mean() > 0.9
    assert "int8" in json.dumps(report)


def _budget(tmp_path: Path, latency: str) -> Path:
    path = tmp_path / "budget.yaml"
    path.write_text(f"name: pixels\ndevice: esp32\ninference:\n  ram: 64KiB\n"
                    f"  flash: 256KiB\n  latency: {latency}\ntask:\n  env: {SMALL_ENV_ID}\n"
                    "margin: 0.25\n")  # fmt: skip
    return path


def test_profile_counts_the_convolutions(compressed: tuple[Path, dict], tmp_path: Path) -> None:  # type: ignore[type-arg]
    """The latency estimate reads the convolutions' MACs (int8) and layers; an impossible
    latency fails on that limit, exit 1."""
    root, _ = compressed
    args = ["profile", str(root / "int8"), "--budget", str(_budget(tmp_path, "20ms")), "-n",
            "2", "--calls", "1000", "--json", *PACKAGE]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    checks = {c["limit"]: c for c in json.loads(result.stdout)["checks"]}
    assert "28,000 MACs in int8" in checks["inference.latency"]["how"]
    assert "7 layer(s)" in checks["inference.latency"]["how"]
    assert checks["inference.ram"]["figure"] >= load_policy(root / "int8").buffer_bytes
    args[3] = str(_budget(tmp_path, "1us"))
    failed = CliRunner().invoke(app, args)
    assert failed.exit_code == 1
    assert json.loads(failed.stdout)["binding"] == "inference.latency"


Compressed = tuple[Path, dict]  # type: ignore[type-arg]


def test_profile_onnx_runs_the_deployed_graph(compressed: Compressed, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    root, _ = compressed
    budget = tmp_path / "host.yaml"
    budget.write_text(f"name: host\ndevice: host\ninference:\n  latency: 50ms\ntask:\n"
                      f"  env: {SMALL_ENV_ID}\n")  # fmt: skip
    result = CliRunner().invoke(app, ["profile", str(root / "int8"), "--budget", str(budget),
                                      "--format", "onnx", "-n", "2", "--calls", "1000",
                                      "--json", *PACKAGE])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert np.isclose(json.loads(result.stdout)["return"]["mean"], 10.0)
