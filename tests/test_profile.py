"""rlbudget profile: checks with the margin, the verdict and binding limit, memory figures
(measured with the Cortex-M toolchain when present, estimated otherwise), the JSON schema,
the report, the training limits of a run folder, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from rlbudget.budget import load_budget
from rlbudget.cli import app
from rlbudget.compress.quantize import quantize_int8
from rlbudget.devices import get_device
from rlbudget.export.c import export_c
from rlbudget.limits import binding, check
from rlbudget.policy import save_policy
from rlbudget.profile import footprint as fp
from rlbudget.profile.verdict import profile
from tests.factories import balancing_mlp, frozenlake_best_table

runner = CliRunner()
ARM = shutil.which("arm-none-eabi-gcc") is not None
FAST = ("--episodes", "3", "--calls", "1000")

GENEROUS = """name: generous
device: esp32
inference: {ram: 64KiB, flash: 256KiB, latency: 2ms, energy: 0.5mJ}
training: {time: 10min, env_steps: 200k, ram: 4GiB, energy: 20Wh}
task: {env: CartPole-v1, min_return: 475}
margin: 0.25
"""
# The fixture policy (4-32-2 relu, float32) needs ≈ 1.2 KB of flash on its own: 1 KiB fails.
TIGHT = """name: tight
device: esp32
inference: {ram: 64KiB, flash: 1KiB}
task: {env: CartPole-v1}
margin: 0.25
"""
NO_LIMITS = """name: open
device: esp32
task: {env: CartPole-v1}
"""


def invoke(*args: str | Path) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def cartpole(tmp_path: Path) -> Path:
    return save_policy(balancing_mlp(), tmp_path / "cartpole")


# --- the checks, by hand ---------------------------------------------------------------------


def test_exactly_at_the_limit_passes_without_margin_and_fails_with_it() -> None:
    assert check("inference.ram", 1000, 1000, 0.0, source="measured", how="").status == "PASS"
    at = check("inference.ram", 1000, 1000, 0.25, source="measured", how="")
    assert at.status == "FAIL" and at.with_margin == 1250 and at.headroom == pytest.approx(-0.25)
    # 800 × 1.25 = 1000: exactly the limit with the margin still passes
    edge = check("inference.ram", 800, 1000, 0.25, source="measured", how="")
    assert edge.status == "PASS" and edge.headroom == 0.0


def test_a_limit_left_out_is_not_checked_but_reported() -> None:
    c = check("inference.energy", 2e-5, None, 0.25, source="estimated", how="model")
    assert (c.status, c.limit_value, c.headroom) == ("NOT CHECKED", None, None)
    assert c.figure == 2e-5 and c.with_margin == pytest.approx(2.5e-5)


def test_return_is_a_floor_without_margin() -> None:
    assert check("task.min_return", 475.0, 475.0, 0.25, how="").status == "PASS"
    low = check("task.min_return", 474.9, 475.0, 0.25, how="")
    assert low.status == "FAIL" and low.with_margin == 474.9 and low.headroom < 0
    negative = check("task.min_return", -150.0, -200.0, 0.25)  # Pendulum: -150 beats -200
    assert negative.status == "PASS" and negative.headroom == pytest.approx(0.25)
    assert check("task.min_return", None, 475.0, 0.25, how="no env").status == "NOT CHECKED"


# --- whole profiles ----------------------------------------------------------------------------


def test_generous_budget_passes_tight_fails_on_flash(tmp_path: Path) -> None:
    policy = balancing_mlp()
    good = profile(policy, load_budget(write(tmp_path, "g.yaml", GENEROUS)), episodes=3,
                   calls=1000)  # fmt: skip
    assert good.verdict == "PASS" and good.binding is None and good.format == "c"
    assert good.returns is not None and good.returns.mean == 500.0
    tight = profile(policy, load_budget(write(tmp_path, "t.yaml", TIGHT)), episodes=3,
                    calls=1000)  # fmt: skip
    assert tight.verdict == "FAIL"
    assert tight.binding is not None and tight.binding.limit == "inference.flash"
    statuses = {c.limit: c.status for c in tight.checks}
    assert statuses["inference.ram"] == "PASS"
    assert statuses["inference.latency"] == statuses["inference.energy"] == "NOT CHECKED"
    # no min_return in the budget: CartPole's own reward_threshold is the target
    assert tight.returns is not None and tight.returns.target == 475.0
    assert tight.returns.target_from == "CartPole-v1's reward_threshold"


def test_c_memory_counts_the_export_exactly(tmp_path: Path) -> None:
    policy = quantize_int8(balancing_mlp(), np.random.default_rng(0).normal(size=(500, 4)))
    exported = export_c(policy, tmp_path / "c")
    f = fp.footprint(policy, "c", get_device("stm32f446"), "Os")
    io = 4 * (4 + 1)  # the caller's observation and action buffers
    if ARM:  # linked: the static buffers and I/O in .bss, plus the measured stack
        assert f.flash_source == f.ram_source == "measured" and f.target == "cortex-m4f"
        assert f.flash_bytes > exported.flash_bytes
        stack = int(f.ram_how.split("stack ")[1].split(" B")[0])
        assert f.ram_bytes == exported.ram_bytes + io + stack
        # the default build, -O2, takes the DSP path: rlb_x16 holds 2 B per input of the
        # widest int8 layer (the 32 hidden units)
        fast = fp.footprint(policy, "c", get_device("stm32f446"))
        stack = int(fast.ram_how.split("stack ")[1].split(" B")[0])
        assert fast.ram_bytes == exported.ram_bytes + 2 * 32 + io + stack
    else:
        sizes = fp.code_sizes()
        assert f.flash_source == "estimated" and f.ram_source == "estimated"
        assert f.flash_bytes == exported.flash_bytes + sizes["code"]["mlp_int8"]["cortex-m4f"]
        assert f.ram_bytes == exported.ram_bytes + io + sizes["stack"]["mlp_int8"]["cortex-m4f"]


def test_estimated_code_size_matches_without_the_toolchain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    table = frozenlake_best_table()
    f = fp.footprint(table, "c", get_device("rp2040"))  # no FPU: the Cortex-M0+ figures
    exported = export_c(table, tmp_path / "c")
    assert f.flash_source == "estimated" and f.target == "cortex-m0plus"
    assert f.flash_bytes == exported.flash_bytes + fp.code_sizes()["code"]["table"]["cortex-m0plus"]
    assert "arm-none-eabi-gcc not installed" in f.flash_how


def test_the_uno_without_avr_gcc_is_estimated_with_avr_s_own_code_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No Cortex-M stand-in for the Uno: its code and stack constants were measured with
    avr-gcc (c_code_sizes.yaml, atmega328p), and its tables count as flash, not RAM."""
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    table = frozenlake_best_table()
    f = fp.footprint(table, "c", get_device("arduino-uno"))
    exported = export_c(table, tmp_path / "c")
    sizes = fp.code_sizes()
    assert f.flash_source == f.ram_source == "estimated" and f.target == "atmega328p"
    assert f.flash_bytes == exported.flash_bytes + sizes["code"]["table"]["atmega328p"]
    assert f.ram_bytes == exported.ram_bytes + 4 * (1 + 1) + sizes["stack"]["table"]["atmega328p"]
    assert "avr-gcc not installed" in f.flash_how and "stands in" not in f.flash_how


@pytest.mark.skipif(not ARM, reason="arm-none-eabi-gcc is not installed "
                    "(Debian: apt-get install gcc-arm-none-eabi)")  # fmt: skip
@pytest.mark.parametrize("device", ["rp2040", "stm32f446"])
def test_estimate_within_ten_percent_of_the_linked_size(
    device: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    policies = {"mlp": balancing_mlp(), "table": frozenlake_best_table(),
                "int8": quantize_int8(balancing_mlp(64), rng.normal(size=(500, 4)))}  # fmt: skip
    for name, policy in policies.items():
        # the estimates are of -Os builds (c_code_sizes.yaml)
        measured = fp.footprint(policy, "c", get_device(device), "Os")
        with monkeypatch.context() as m:
            m.setattr(shutil, "which", lambda _name: None)
            estimated = fp.footprint(policy, "c", get_device(device), "Os")
        assert measured.flash_source == "measured" and estimated.flash_source == "estimated"
        ratio = estimated.flash_bytes / measured.flash_bytes
        assert 0.9 <= ratio <= 1.1, (name, device, estimated.flash_bytes, measured.flash_bytes)
        # RAM of these small nets is mostly stack, which varies with what the compiler
        # inlines: within 64 B or 25 %
        off = abs(estimated.ram_bytes - measured.ram_bytes)
        assert off <= max(64, 0.25 * measured.ram_bytes), (name, device, estimated, measured)


def test_numpy_format_measures_a_process(tmp_path: Path) -> None:
    budget = load_budget(write(tmp_path, "pi.yaml", "name: pi\ndevice: raspberry-pi-4\n"
                               "task: {env: CartPole-v1}\n"))  # fmt: skip
    report = profile(balancing_mlp(), budget, episodes=2, calls=1000)
    assert report.format == "numpy" and report.footprint.ram_source == "measured"
    # a Python process with numpy: tens of MiB, far more than the policy's 600 bytes
    assert 10 * 2**20 < report.footprint.ram_bytes < 500 * 2**20
    host = report.host_latency
    assert host is not None and host.calls == 1000 and host.p50_s <= host.p90_s <= host.p99_s


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_json_schema_and_exit_codes(cartpole: Path, tmp_path: Path) -> None:
    r = invoke("profile", cartpole, "--budget", write(tmp_path, "g.yaml", GENEROUS), "--json",
               *FAST)  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["schema"] == "rlbudget.profile/1" and data["verdict"] == "PASS"
    assert data["binding"] is None and data["format"] == "c" and data["margin"] == 0.25
    for c in data["checks"]:
        assert {"limit", "figure", "source", "with_margin", "limit_value", "status"} <= set(c)
        assert c["source"] in ("measured", "estimated")
        assert c["status"] in ("PASS", "FAIL", "NOT CHECKED")
    assert [c["limit"] for c in data["checks"]] == [
        "inference.flash", "inference.ram", "inference.latency", "inference.energy",
        "device.flash", "device.ram", "task.min_return"]  # fmt: skip
    assert data["return"]["mean"] == 500.0 and data["return"]["target"] == 475
    assert data["training"] is None

    r = invoke("profile", cartpole, "--budget", write(tmp_path, "t.yaml", TIGHT), *FAST)
    assert r.exit_code == 1
    assert r.stdout.strip().splitlines()[-1].startswith("FAIL: binding limit inference.flash: ")


def test_cli_limits_left_out(cartpole: Path, tmp_path: Path) -> None:
    r = invoke("profile", cartpole, "--budget", write(tmp_path, "o.yaml", NO_LIMITS), "--json",
               *FAST)  # fmt: skip
    assert r.exit_code == 0, r.output
    status = {c["limit"]: c["status"] for c in json.loads(r.stdout)["checks"]}
    assert {k: v for k, v in status.items() if k.startswith("inference.")} == dict.fromkeys(
        ["inference.flash", "inference.ram", "inference.latency", "inference.energy"],
        "NOT CHECKED")  # fmt: skip
    assert status["device.flash"] == status["device.ram"] == "PASS"


def test_cli_report_markdown_and_chart(cartpole: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    r = invoke("profile", cartpole, "--budget", write(tmp_path, "t.yaml", TIGHT), "--report",
               report, *FAST)  # fmt: skip
    assert r.exit_code == 1
    text = report.read_text()
    assert text.startswith(f"# Profile: {cartpole} on esp32 (c)")
    assert "**Verdict: FAIL** — binding limit `inference.flash`" in text
    assert "| `inference.flash` |" in text and "![usage against each limit](report.png)" in text
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".tmp-*"))


def test_cli_run_folder_adds_training_checks(cartpole: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(cartpole, run / "policy")
    summary = {"wall_s": 700.0, "steps": 50_000, "cpu_s": 650.0, "peak_rss_bytes": 300 * 2**20}
    (run / "summary.json").write_text(json.dumps(summary))
    r = invoke("profile", run, "--budget", write(tmp_path, "g.yaml", GENEROUS), "--json", *FAST)
    assert r.exit_code == 1, r.output
    data = json.loads(r.stdout)
    checks = {c["limit"]: c for c in data["checks"]}
    assert checks["training.time"]["status"] == "FAIL"  # 700 s × 1.25 > 10 min
    assert data["binding"] == "training.time"
    assert checks["training.env_steps"]["status"] == "PASS"
    assert checks["training.ram"]["figure"] == 300 * 2**20
    energy = checks["training.energy"]
    assert energy["source"] == "estimated" and energy["figure"] == pytest.approx(
        650.0 * get_device("host").active_power_w
    )
    assert data["training"]["steps"] == 50_000


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--budget", "missing.yaml"], "missing.yaml"),
        (["--budget", "bad.yaml"], "bad.yaml:3: inference.ram: '64 parsecs': unknown bytes unit"),
        (["--budget", "g.yaml", "--env", "Pendulum-v1"], "environment 'Pendulum-v1'"),
    ],
    ids=["missing-budget", "bad-unit", "wrong-env"],
)
def test_cli_bad_input_exit_2(cartpole: Path, tmp_path: Path, args: list[str],
                              line: str) -> None:  # fmt: skip
    write(tmp_path, "g.yaml", GENEROUS)
    write(tmp_path, "bad.yaml", "name: b\ndevice: esp32\ninference: {ram: 64 parsecs}\n")
    args = [str(tmp_path / a) if a.endswith(".yaml") else a for a in args]
    report = tmp_path / "report.md"
    r = invoke("profile", cartpole, *args, "--report", report, *FAST)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and line in lines[0]
    assert not report.exists()


def test_cli_does_not_import_torch(cartpole: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    budget = write(tmp_path, "pi.yaml", "name: pi\ndevice: raspberry-pi-4\n")
    code = (
        "import sys\n"
        "from rlbudget.cli import app\n"
        f"try:\n    app([ 'profile', {str(cartpole)!r}, '--budget', {str(budget)!r},"
        " '--episodes', '2', '--calls', '1000', '--format', 'numpy'])\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', "
        "'stable_baselines3')))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "[]"


def test_rapl_counter_with_wraparound_and_without_one(tmp_path: Path) -> None:
    from rlbudget.train import RaplEnergy

    (tmp_path / "max_energy_range_uj").write_text("1000000\n")
    counter = tmp_path / "energy_uj"
    counter.write_text("400000\n")
    with RaplEnergy(tmp_path) as e:
        counter.write_text("900000\n")
    assert e.joules == pytest.approx(0.5)
    counter.write_text("900000\n")
    with RaplEnergy(tmp_path) as e:
        counter.write_text("100000\n")  # wrapped: 0.1 J to the top, 0.1 J after it
    assert e.joules == pytest.approx(0.2)
    with RaplEnergy(tmp_path / "none") as e:
        pass
    assert e.joules is None


def test_training_energy_measured_when_the_run_recorded_rapl(tmp_path: Path) -> None:
    from rlbudget.profile.verdict import _training_checks

    budget = load_budget(write(tmp_path, "g.yaml", GENEROUS))
    summary = {"wall_s": 10.0, "steps": 100, "cpu_s": 9.0, "rapl_energy_j": 250.0}
    (energy,) = [c for c in _training_checks(summary, budget) if c.limit == "training.energy"]
    assert energy.source == "measured" and energy.figure == 250.0 and "RAPL" in energy.how
    summary["rapl_energy_j"] = None  # no counter on that host: the CPU-time estimate
    (energy,) = [c for c in _training_checks(summary, budget) if c.limit == "training.energy"]
    assert energy.source == "estimated"
    assert energy.figure == pytest.approx(9.0 * get_device("host").active_power_w)


def test_budget_target_for_another_env_does_not_apply(tmp_path: Path) -> None:
    budget = load_budget(write(tmp_path, "p.yaml", "name: p\ndevice: esp32\n"
                               "task: {env: Pendulum-v1, min_return: -200}\n"))  # fmt: skip
    report = profile(balancing_mlp(), budget, episodes=2, calls=1000)  # a CartPole policy
    assert report.returns is not None and report.returns.env == "CartPole-v1"
    assert report.returns.target == 475.0 and report.verdict == "PASS"
    assert report.notes == ("the budget's task is Pendulum-v1 but the policy acts in "
                            "CartPole-v1: its min_return does not apply",)  # fmt: skip


def test_cli_report_folder_missing(cartpole: Path, tmp_path: Path) -> None:
    r = invoke("profile", cartpole, "--budget", write(tmp_path, "g.yaml", GENEROUS), "--report",
               tmp_path / "nope" / "r.md", *FAST)  # fmt: skip
    assert r.exit_code == 2
    assert r.stderr.strip() == (f"error: --report {tmp_path / 'nope' / 'r.md'}: the folder "
                                f"{tmp_path / 'nope'} does not exist; create it first")  # fmt: skip


def test_cli_unknown_format_is_a_usage_error(cartpole: Path, tmp_path: Path) -> None:
    r = invoke("profile", cartpole, "--budget", write(tmp_path, "g.yaml", GENEROUS), "--format",
               "tvm")  # fmt: skip
    assert r.exit_code == 2 and "Invalid value for '--format'" in r.stderr
    assert "'tvm' is not one of 'numpy', 'c', 'onnx', 'tflite'" in r.stderr


@pytest.mark.parametrize(
    ("name", "problem"),
    [("folder", "is a folder; give a file name such as report.md"),
     ("r.png", "must not end in .png (the chart is written beside the report as .png)")],
)  # fmt: skip
def test_cli_report_path_checked_first(cartpole: Path, tmp_path: Path, name: str,
                                       problem: str) -> None:  # fmt: skip
    report = tmp_path / name
    if name == "folder":
        report.mkdir()
    r = invoke("profile", cartpole, "--budget", write(tmp_path, "g.yaml", GENEROUS), "--report",
               report, *FAST)  # fmt: skip
    assert r.exit_code == 2 and r.stderr.strip() == f"error: --report {report}: {problem}"
    assert not list(tmp_path.glob("*.md")) and not list(tmp_path.glob("*.png"))  # nothing written


def test_report_files_are_readable_by_others(cartpole: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    invoke("profile", cartpole, "--budget", write(tmp_path, "g.yaml", GENEROUS), "--report",
           report, *FAST)  # fmt: skip
    assert report.stat().st_mode & 0o044 == 0o044  # not mkstemp's 0600 (umask 022 here)
    assert (cartpole / "policy.json").stat().st_mode & 0o044 == 0o044


@pytest.mark.parametrize(
    ("summary", "line"),
    [({"wall_s": float("nan"), "steps": 10}, "'wall_s' must be a finite number ≥ 0, not NaN"),
     ({"wall_s": 1.0, "steps": 10, "peak_rss_bytes": -1},
      "'peak_rss_bytes' must be a finite number ≥ 0, not -1"),
     ({"wall_s": 1.0, "steps": True}, "'steps' must be a finite number ≥ 0, not true")],
    ids=["nan", "negative", "bool"],
)  # fmt: skip
def test_cli_corrupt_run_summary(cartpole: Path, tmp_path: Path, summary: dict[str, Any],
                                 line: str) -> None:  # fmt: skip
    run = tmp_path / "run"
    shutil.copytree(cartpole, run / "policy")
    (run / "summary.json").write_text(json.dumps(summary))
    r = invoke("profile", run, "--budget", write(tmp_path, "g.yaml", GENEROUS), *FAST)
    assert r.exit_code == 2
    assert r.stderr.strip() == f"error: {run / 'summary.json'}: {line}; the file is corrupt"


def test_cli_run_folder_without_summary(cartpole: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(cartpole, run / "policy")
    r = invoke("profile", run, "--budget", write(tmp_path, "g.yaml", GENEROUS), *FAST)
    assert r.exit_code == 2
    assert r.stderr.strip() == (f"error: {run}: a run folder needs summary.json (rlbudget "
                                "train -o writes both); give the policy folder itself to "
                                "profile the policy alone")  # fmt: skip


def test_a_failing_cost_binds_before_a_failing_return(tmp_path: Path) -> None:
    flash = check("inference.flash", 2000, 1000, 0.25, source="measured", how="")  # 2.5× over
    ret = check("task.min_return", -900.0, 0.0, 0.25, how="")  # a zero target: no ratio
    assert ret.status == "FAIL" and ret.headroom is None
    assert binding([ret, flash]) is flash
    assert binding([ret]) is ret


@pytest.mark.skipif(not ARM, reason="arm-none-eabi-gcc is not installed "
                    "(Debian: apt-get install gcc-arm-none-eabi)")  # fmt: skip
def test_a_proxy_build_is_an_estimate() -> None:
    policy = frozenlake_best_table()
    own = fp.footprint(policy, "c", get_device("rp2040"))  # a Cortex-M0+: its own core
    proxy = fp.footprint(policy, "c", get_device("esp32"))  # Xtensa: the M4F build stands in
    assert own.flash_source == "measured" and "stands in" not in own.flash_how
    assert proxy.flash_source == proxy.ram_source == "estimated"
    assert proxy.flash_how.endswith("cortex-m4f stands in for esp32's Xtensa LX6")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no host C compiler")
def test_profile_as_c_builds_the_export_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One export serves the memory figures and the host-compiled actor (issue 15, item 7),
    and the figures are those of a footprint measured on its own."""
    import rlbudget.export.c as c_module
    import rlbudget.export.host as host

    real, folders = c_module.export_c, []

    def counting(policy: Any, out_dir: Any, **kw: Any) -> Any:
        folders.append(out_dir)
        return real(policy, out_dir, **kw)

    monkeypatch.setattr(c_module, "export_c", counting)
    monkeypatch.setattr(host, "export_c", counting)
    policy = balancing_mlp()
    report = profile(policy, load_budget(write(tmp_path, "o.yaml", NO_LIMITS)), episodes=1,
                     calls=1000)  # fmt: skip
    assert report.format == "c" and len(folders) == 1
    assert report.footprint == fp.footprint(policy, "c", get_device("esp32"))
    assert len(folders) == 2
