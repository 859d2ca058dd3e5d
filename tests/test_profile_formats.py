"""A memory FAIL names the way out: the same policy in the other formats that run on the
device, with their figures, and whether each fits (issue 14, item 14)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import rlbudget.profile.footprint as fp
import rlbudget.profile.verdict as verdict
from rlbudget.budget import load_budget
from rlbudget.cli import app
from rlbudget.policy import save_policy
from rlbudget.profile.footprint import Footprint
from rlbudget.profile.report import alternatives_text, markdown
from tests.factories import balancing_mlp

runner = CliRunner()
PI = """name: pi-zero-cartpole
device: raspberry-pi-zero-2
inference: {{ram: {ram}, flash: 256MiB}}
task: {{env: CartPole-v1}}
margin: 0.25
"""
KiB, MiB = 1024, 1024 * 1024


def pi_budget(tmp_path: Path, ram: str) -> Path:
    path = tmp_path / f"pi-{ram}.yaml"
    path.write_text(PI.format(ram=ram))
    return path


def fake_footprint(policy: Any, fmt: str, device: Any, optimize: str = "O2") -> Footprint:
    """Fixed figures: RAM numpy 30 MiB, C 220 B, ONNX 12 MiB (15 MiB with the 25 % margin:
    within 16 MiB, not within 8 MiB); flash well within 256 MiB for all three."""
    ram = {"numpy": 30 * MiB, "c": 220, "onnx": 12 * MiB}[fmt]
    flash = {"numpy": 41 * MiB, "c": 2 * KiB, "onnx": 100 * MiB}[fmt]
    source = "estimated" if fmt == "c" else "measured"
    return Footprint(fmt, "host", {}, 0, 0, 0, flash, ram, "estimated", "fake", source, "fake")


def test_the_verdict_line_names_the_formats_that_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wiring, with fixed footprints (no processes measured): fast."""
    monkeypatch.setattr(verdict, "footprint", fake_footprint)  # the other formats
    monkeypatch.setattr(fp, "footprint", fake_footprint)  # the one profiled (fp.deployed)
    policy = save_policy(balancing_mlp(), tmp_path / "p")
    args = ["profile", str(policy), "--budget", str(pi_budget(tmp_path, "16MiB")),
            "--episodes", "1"]  # fmt: skip
    r = runner.invoke(app, args)
    assert r.exit_code == 1, r.output
    last = r.stdout[r.stdout.rindex("FAIL: binding limit") :].replace("\n", "")
    assert last == ("FAIL: binding limit inference.ram: 37.5 MiB (with margin) exceeds "
                    "16 MiB; as C: RAM 220 B (fits); as ONNX: RAM 12 MiB (fits)")  # fmt: skip
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert data["format"] == "numpy" and data["binding"] == "inference.ram"
    assert data["alternatives"] == [
        {"format": "c", "fits": True, "flash_bytes": 2 * KiB, "ram_bytes": 220,
         "flash_source": "estimated", "ram_source": "estimated", "failing": [], "error": None},
        {"format": "onnx", "fits": True, "flash_bytes": 100 * MiB, "ram_bytes": 12 * MiB,
         "flash_source": "estimated", "ram_source": "measured", "failing": [], "error": None},
    ]  # fmt: skip
    # a format that fails too says which limit, and one that cannot be built says why
    (tmp_path / "tight.yaml").write_text(PI.format(ram="8MiB"))
    r = runner.invoke(app, ["profile", str(policy), "--budget", str(tmp_path / "tight.yaml"),
                            "--episodes", "1"])  # fmt: skip
    assert r.stdout.replace("\n", "").endswith(
        "as C: RAM 220 B (fits); as ONNX: RAM 12 MiB (does not fit: inference.ram)"
    )


@pytest.mark.slow  # three formats measured for real (processes, a C build): ≈ 5–8 s
def test_numpy_ram_fail_on_a_pi_names_c_and_onnx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 MiB of RAM: the Python process (≈ 30 MiB) fails; the C export (a few hundred
    bytes) fits; ONNX (onnxruntime's process) is measured and judged the same way."""
    budget = load_budget(pi_budget(tmp_path, "16MiB"))
    report = verdict.profile(balancing_mlp(), budget, fmt="numpy", episodes=1, calls=1000)
    assert report.verdict == "FAIL" and report.binding is not None
    assert report.binding.limit == "inference.ram"
    data = report.to_dict()
    c, onnx = data["alternatives"]
    assert (c["format"], c["fits"], c["failing"], c["error"]) == ("c", True, [], None)
    assert 0 < c["ram_bytes"] < 16 * KiB and c["ram_source"] in ("measured", "estimated")
    assert onnx["format"] == "onnx"
    if onnx["error"] is None:  # onnxruntime installed: a measured process
        assert onnx["ram_bytes"] > MiB and onnx["ram_source"] == "measured"
        assert onnx["fits"] == (onnx["failing"] == [])
    # the verdict itself is still numpy's
    assert data["verdict"] == "FAIL" and data["format"] == "numpy"
    words = alternatives_text(report)
    assert words.startswith(f"as C: RAM {c['ram_bytes']} B (fits); as ONNX: ")
    assert f"Other formats, with the margin: {words}." in markdown(report)

    # the CLI's verdict line and --json carry the same (the report measured once, above)
    monkeypatch.setattr(verdict, "profile", lambda *a, **k: report)
    policy = save_policy(balancing_mlp(), tmp_path / "p")
    args = ["profile", str(policy), "--budget", str(pi_budget(tmp_path, "16MiB"))]
    r = runner.invoke(app, args)
    assert r.exit_code == 1, r.output
    last = r.stdout[r.stdout.rindex("FAIL: binding limit") :].replace("\n", "")
    assert last.startswith("FAIL: binding limit inference.ram: ")
    assert last.endswith(f"exceeds 16 MiB; {words}")
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 1 and json.loads(r.stdout)["alternatives"] == [c, onnx]


def test_no_alternatives_when_memory_fits_or_on_a_microcontroller(tmp_path: Path) -> None:
    calls: list[Any] = []
    real = verdict.format_option

    def counting(*a: Any, **k: Any) -> Any:
        calls.append(a[1])
        return real(*a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(verdict, "format_option", counting)
        roomy = load_budget(pi_budget(tmp_path, "256MiB"))
        report = verdict.profile(balancing_mlp(), roomy, fmt="c", episodes=1, calls=1000)
        assert report.verdict == "PASS" and report.to_dict()["alternatives"] == []
        # an MCU failing on flash in C: no numpy or ONNX there, so no way out by format
        (tmp_path / "uno.yaml").write_text(
            "name: uno\ndevice: arduino-uno\ninference: {flash: 64B}\n"
            "task: {env: CartPole-v1}\nmargin: 0.25\n"
        )
        tiny = load_budget(tmp_path / "uno.yaml")
        report = verdict.profile(balancing_mlp(), tiny, episodes=1, calls=1000)
        assert report.binding is not None and report.binding.limit == "inference.flash"
        assert report.alternatives == () and calls == []
