"""How far can profile's figures be trusted? Estimated vs linked size, and host latency twice.

Run: python benchmarks/profile_fidelity.py [--calls 2000] [--no-train] [--png fidelity.png]

1. **Memory**: for each policy (the five ../shared/zoo models and rlbudget-trained PPO,
   Q-learning and Sarsa(λ) ones; raw and compressed), ``profile``'s *estimated* flash and
   RAM (the export's exact const/static bytes plus the per-body code constants of
   ``rlbudget/data/c_code_sizes.yaml``, as when arm-none-eabi-gcc is missing) against the
   *linked* size (arm-none-eabi-gcc -Os, newlib-nano, --gc-sections: ``.text + .data`` and
   ``.data + .bss`` plus the ``-fstack-usage`` stack), on Cortex-M0+ and M4F. Needs the
   toolchain (``apt-get install gcc-arm-none-eabi``).
2. **Host latency**: p50 of one decision, measured twice in the same process for the
   numpy, C (ctypes) and ONNX runtimes; the ratio of the two runs.

Prints two Markdown tables. The code constants were measured on these same policies, so
table 1 checks the model's consistency more than its generality; policies unlike these
(other activations, wide preprocess) may sit further off.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

from rlbudget.compress.pipeline import MethodOptions, compress
from rlbudget.devices import get_device
from rlbudget.policy import Policy, load_policy
from rlbudget.profile.footprint import footprint
from rlbudget.profile.latency import deployed_actor, measure_host

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT.parent / "shared" / "zoo"
ZOO_MODELS = {"ppo-CartPole-v1": "CartPole-v1", "dqn-CartPole-v1": "CartPole-v1",
              "ppo-MountainCar-v0": "MountainCar-v0", "a2c-Pendulum-v1": "Pendulum-v1",
              "sac-Pendulum-v1": "Pendulum-v1"}  # fmt: skip
TRAIN = {"ppo-CartPole-v1": ("ppo", "CartPole-v1"),
         "q-learning-Taxi-v4": ("q-learning", "Taxi-v4"),
         "sarsa-lambda-MountainCar-v0": ("sarsa-lambda", "MountainCar-v0")}  # fmt: skip
VARIANTS = {"mlp": ["int8", "prune-neurons,int8"], "table": ["pack"], "linear": ["int16"]}
DEVICES = {"cortex-m0plus": "rp2040", "cortex-m4f": "stm32f446"}


def inputs(work: Path, train: bool) -> dict[str, tuple[Policy, str]]:
    from rlbudget.sb3.importer import import_model

    found: dict[str, tuple[Policy, str]] = {}
    if ZOO.is_dir():
        for name, env in ZOO_MODELS.items():
            found[f"zoo {name}"] = (import_model(ZOO / name).policy, env)
    else:
        print(f"note: {ZOO} not found; the Zoo rows are skipped", file=sys.stderr)
    if train:
        for name, (algo, env) in TRAIN.items():
            run = work / name
            command = [sys.executable, "-m", "rlbudget", "train", "--algo", algo, "--env", env,
                       "-o", str(run), "-q"]  # fmt: skip
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            found[f"rlbudget {name}"] = (load_policy(run / "policy"), env)
    return found


def variants(policies: dict[str, tuple[Policy, str]]) -> list[tuple[str, Policy, str]]:
    out = []
    for name, (policy, env) in policies.items():
        out.append((name, policy, env))
        for methods in VARIANTS[policy.body.kind]:
            opts = MethodOptions(keep=0.25) if "prune-neurons" in methods else None
            report = compress(policy, methods, env, episodes=1, states=1000, options=opts)
            out.append((f"{name} {methods}", report.policy, env))
    return out


def memory_pairs(rows: list[tuple[str, Policy, str]]) -> list[tuple[str, str, Any, Any]]:
    """(policy, target, estimated footprint, linked footprint) for every row and target."""
    pairs = []
    for name, policy, _env in rows:
        for target, device_id in DEVICES.items():
            device = get_device(device_id)
            # -Os builds: the ones c_code_sizes.yaml's estimates were measured on
            measured = footprint(policy, "c", device, "Os")
            with mock.patch.object(shutil, "which", lambda _name: None):
                estimated = footprint(policy, "c", device, "Os")
            pairs.append((name, target, estimated, measured))
    return pairs


def plot(pairs: list[tuple[str, str, Any, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, key, label in ((axes[0], "flash_bytes", "flash"), (axes[1], "ram_bytes", "RAM")):
        linked = [getattr(m, key) for _n, _t, _e, m in pairs]
        est = [getattr(e, key) for _n, _t, e, _m in pairs]
        ax.scatter(linked, est, s=12)
        low, high = min(linked + est), max(linked + est)
        ax.plot([low, high], [low, high], color="black", linewidth=0.8, label="estimate = linked")
        ax.plot([low, high], [1.1 * low, 1.1 * high], ":", color="grey", label="±10 %")
        ax.plot([low, high], [0.9 * low, 0.9 * high], ":", color="grey")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"{label}, linked (bytes)")
        ax.set_ylabel(f"{label}, estimated (bytes)")
        ax.legend(fontsize=7)
    fig.suptitle("profile's estimate vs arm-none-eabi-gcc, Cortex-M0+ and M4F")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def memory_table(pairs: list[tuple[str, str, Any, Any]]) -> str:
    lines = ["| policy | target | flash est. / linked (B) | ratio | RAM est. / linked (B) "
             "| ratio |", "|---|---|---|---|---|---|"]  # fmt: skip
    worst_flash = worst_ram = 0.0
    worst_ram_bytes = 0
    for name, target, estimated, measured in pairs:
        flash = estimated.flash_bytes / measured.flash_bytes
        ram = estimated.ram_bytes / measured.ram_bytes
        worst_flash, worst_ram = max(worst_flash, abs(flash - 1)), max(worst_ram, abs(ram - 1))
        worst_ram_bytes = max(worst_ram_bytes, abs(estimated.ram_bytes - measured.ram_bytes))
        lines.append(f"| {name} | {target} | {estimated.flash_bytes:,} / "
                     f"{measured.flash_bytes:,} | {flash:.3f} | {estimated.ram_bytes:,} / "
                     f"{measured.ram_bytes:,} | {ram:.3f} |")  # fmt: skip
    lines.append(
        f"\nlargest deviation: flash {worst_flash:.1%}; RAM {worst_ram:.1%} "
        f"(at most {worst_ram_bytes} B)"
    )
    return "\n".join(lines)


def latency_table(rows: list[tuple[str, Policy, str]], calls: int) -> str:
    from rlbudget.profile.evaluate import visited_observations

    lines = ["| policy | format | p50 run 1 (µs) | p50 run 2 (µs) | ratio | p99 run 1 (µs) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, policy, env in rows:
        obs = visited_observations(policy, env, states=500)
        for fmt in ("numpy", "c", "onnx"):
            with deployed_actor(policy, fmt) as actor:
                a, b = (measure_host(actor, obs, fmt, calls=calls) for _ in range(2))
            ratio = max(a.p50_s, b.p50_s) / min(a.p50_s, b.p50_s)
            lines.append(f"| {name} | {fmt} | {a.p50_s * 1e6:.2f} | {b.p50_s * 1e6:.2f} | "
                         f"{ratio:.2f} | {a.p99_s * 1e6:.2f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--png", type=Path, default=None, help="estimate vs linked, a scatter")
    args = parser.parse_args()
    if shutil.which("arm-none-eabi-gcc") is None:
        sys.exit("arm-none-eabi-gcc is not installed (Debian: apt-get install gcc-arm-none-eabi)")
    with tempfile.TemporaryDirectory() as tmp:
        rows = variants(inputs(Path(tmp), not args.no_train))
    print("Estimated vs linked memory (C export, -Os):\n")
    pairs = memory_pairs(rows)
    print(memory_table(pairs))
    if args.png:
        plot(pairs, args.png)
    print("\nHost latency, two runs in one process:\n")
    latency_rows = [r for r in rows if r[0].endswith(("v1", "v0", "v4", "int8"))]
    print(latency_table(latency_rows, args.calls))


if __name__ == "__main__":
    main()
