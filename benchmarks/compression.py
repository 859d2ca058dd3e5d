"""Compression judged by return: every method on the RL Zoo models of ../shared/zoo and on
policies rlbudget trains itself, in one run.

Run: python benchmarks/compression.py [--episodes N] [--states 5000] [--seed 0]
                                      [--png compression.png] [--no-train]

Each row is one ``rlbudget.compress.pipeline.compress`` call (the library behind
``rlbudget compress``) on one input policy: the methods in order, the return over
``--episodes`` seeded episodes before and after (the same start states for both), action
agreement with the input on ``--states`` states the *last parent* visits (for a chain,
the last step's figure), and the gate of ``--max-return-drop`` 5 %: the mean return
(retention, with its paired 95 % interval) and the worst 5 % of episodes (CVaR) each within
5 % of the input's. ``--episodes`` defaults to ``compress``'s (``run``'s) rule: about
50,000 env steps, 100 to 1,000 episodes, episode ``i`` seeded ``seed + i``.

Two sizes are given, because for small nets they differ a lot:

- **weight bytes**: the learned arrays of the body (W and b, a table, a packed table;
  the index arrays of a sparse W count too: they are needed to use it);
- **total bytes**: every array the deployed policy holds, adding quantization constants
  (per-channel scales, fixed-point multipliers and shifts, tanh tables) and preprocess
  constants (normalization mean/var, tile-coding ranges).

Targets of issue 6 are printed beside the rows they apply to: int8 ≥ 3.5× fewer weight
bytes with ≥ 99 % retention and ≥ 97 % agreement; structured prune + int8 ≥ 10× fewer
bytes with ≥ 95 % retention on PPO CartPole; distillation of PPO CartPole 64-64 into ≤ 8-8
hidden units with ≥ 95 % retention.

rlbudget's own policies are trained first with ``rlbudget train`` (PPO CartPole-v1 with
rlbudget's defaults, Q-learning FrozenLake-v1 and Taxi-v4, Sarsa(λ) MountainCar-v0; seed 0;
about a minute in all); ``--no-train`` skips them. The Zoo rows need ``../shared/zoo`` beside the
repository (skipped with a note otherwise).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlbudget.compress.pipeline import CompressReport, MethodOptions, compress
from rlbudget.policy import Policy, load_policy
from rlbudget.policy.model import QUANTIZATION_ARRAYS

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT.parent / "shared" / "zoo"


@dataclass(frozen=True)
class Case:
    source: str  # "zoo" or "rlbudget"
    name: str  # zoo folder or run name
    env_id: str
    methods: str
    options: MethodOptions | None = None
    target: str = ""  # the target this row checks, if any


INT8 = "int8 ≥ 3.5× weight bytes, ≥ 99 % retention, ≥ 97 % agreement"
PRUNE = "prune + int8 ≥ 10× bytes, ≥ 95 % retention"
DISTILL = "distill to ≤ 8-8, ≥ 95 % retention"
# fmt: off
CASES = [
    Case("zoo", "ppo-CartPole-v1", "CartPole-v1", "int8", target=INT8),
    Case("zoo", "ppo-CartPole-v1", "CartPole-v1", "fp16"),
    Case("zoo", "ppo-CartPole-v1", "CartPole-v1", "prune", MethodOptions(sparsity=0.8)),
    Case("zoo", "ppo-CartPole-v1", "CartPole-v1", "prune-neurons,int8",
         MethodOptions(keep=0.25, recover=True), PRUNE),
    Case("zoo", "ppo-CartPole-v1", "CartPole-v1", "distill", MethodOptions(widths=(8, 8)),
         DISTILL),
    Case("zoo", "ppo-CartPole-v1", "CartPole-v1", "distill,int8", MethodOptions(widths=(8, 8))),
    Case("zoo", "dqn-CartPole-v1", "CartPole-v1", "int8", target=INT8),
    Case("zoo", "dqn-CartPole-v1", "CartPole-v1", "distill,int8",
         MethodOptions(widths=(64, 64))),
    Case("zoo", "ppo-MountainCar-v0", "MountainCar-v0", "int8", target=INT8),
    Case("zoo", "a2c-Pendulum-v1", "Pendulum-v1", "int8", target=INT8),
    Case("zoo", "a2c-Pendulum-v1", "Pendulum-v1", "fp16"),
    Case("zoo", "sac-Pendulum-v1", "Pendulum-v1", "int8", target=INT8),
    Case("rlbudget", "ppo-CartPole-v1", "CartPole-v1", "int8", target=INT8),
    Case("rlbudget", "ppo-CartPole-v1", "CartPole-v1", "prune-neurons,int8",
         MethodOptions(keep=0.25, recover=True), PRUNE),
    Case("rlbudget", "q-learning-FrozenLake-v1", "FrozenLake-v1", "pack"),
    Case("rlbudget", "q-learning-Taxi-v4", "Taxi-v4", "pack"),
    Case("rlbudget", "q-learning-Taxi-v4", "Taxi-v4", "pack,drop-unvisited"),
    Case("rlbudget", "sarsa-lambda-MountainCar-v0", "MountainCar-v0", "int16"),
    Case("rlbudget", "sarsa-lambda-MountainCar-v0", "MountainCar-v0", "int8"),
]
# fmt: on
TRAIN = {  # run name → rlbudget train arguments
    "ppo-CartPole-v1": ["--algo", "ppo", "--env", "CartPole-v1"],
    "q-learning-FrozenLake-v1": ["--algo", "q-learning", "--env", "FrozenLake-v1"],
    "q-learning-Taxi-v4": ["--algo", "q-learning", "--env", "Taxi-v4"],
    "sarsa-lambda-MountainCar-v0": ["--algo", "sarsa-lambda", "--env", "MountainCar-v0"],
}


def weight_bytes(policy: Policy) -> int:
    """Bytes of the body's learned arrays (see the module docstring)."""
    return sum(
        int(a.nbytes)
        for name, a in policy.arrays().items()
        if name.startswith("body.") and name.rsplit(".", 1)[1] not in QUANTIZATION_ARRAYS
    )


def total_bytes(policy: Policy) -> int:
    return sum(policy.bytes_by_dtype().values())


def load_inputs(work: Path, train: bool) -> dict[tuple[str, str], Policy]:
    """The input policies by (source, name): the Zoo's imported, rlbudget's trained."""
    from rlbudget.sb3.importer import import_model

    inputs: dict[tuple[str, str], Policy] = {}
    if ZOO.is_dir():
        for name in sorted({c.name for c in CASES if c.source == "zoo"}):
            inputs["zoo", name] = import_model(ZOO / name).policy
    else:
        print(f"note: {ZOO} not found; the Zoo rows are skipped", file=sys.stderr)
    if train:
        for name, args in TRAIN.items():
            run = work / name
            t = time.perf_counter()
            command = [sys.executable, "-m", "rlbudget", "train", *args, "--seed", "0",
                       "-o", str(run), "-q"]  # fmt: skip
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            print(f"trained {name} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            inputs["rlbudget", name] = load_policy(run / "policy")
    return inputs


def row(case: Case, policy: Policy, report: CompressReport) -> dict[str, Any]:
    final = report.policy
    last = report.steps[-1]
    w0, w1 = weight_bytes(policy), weight_bytes(final)
    b0, b1 = total_bytes(policy), total_bytes(final)
    return {
        "model": f"{case.source}: {case.name}",
        "methods": case.methods,
        "weight_bytes": (w0, w1),
        "total_bytes": (b0, b1),
        "macs": (policy.macs, final.macs),
        "agreement": last.agreement.rate,
        "return": (report.steps[0].return_before, last.return_after),
        "retention": report.retention,
        "retention_ci95": None
        if report.gate.mean_drop_ci95 is None
        else tuple(1 - d for d in reversed(report.gate.mean_drop_ci95)),
        "tail_retention": 1 - report.gate.tail_drop,
        "episodes": report.episodes,
        "passed": report.passed,
        "target": case.target,
    }


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | methods | weight bytes (×) | total bytes (×) | MACs | agreement | episodes "
        "| return before → after | retention (95 % CI) | worst 5 % retention | gate 5 % "
        "| target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        (w0, w1), (b0, b1), (m0, m1) = r["weight_bytes"], r["total_bytes"], r["macs"]
        before, after = r["return"]
        ci = r["retention_ci95"]
        ci_text = "" if ci is None else f" ({ci[0]:.1%} – {ci[1]:.1%})"
        lines.append(
            f"| {r['model']} | {r['methods']} | {w0:,} → {w1:,} ({w0 / w1:.2f}×) "
            f"| {b0:,} → {b1:,} ({b0 / b1:.2f}×) | {m0:,} → {m1:,} | {r['agreement']:.1%} "
            f"| {r['episodes']} "
            f"| {before.mean:.1f} ± {before.std:.1f} → {after.mean:.1f} ± {after.std:.1f} "
            f"| {r['retention']:.1%}{ci_text} | {r['tail_retention']:.1%} "
            f"| {'PASS' if r['passed'] else 'FAIL'} | {r['target']} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """One horizontal bar per row: how many times smaller (total bytes), coloured by the
    gate, with the return retention in its label."""
    from rlbudget import charts

    fig, ax = charts.figure(9, 0.32 * len(rows) + 1.6)
    labels = [charts.wrap(f"{r['model']} · {r['methods']}: {r['retention']:.0%} return", 60)
              for r in rows]  # fmt: skip
    ratios = [r["total_bytes"][0] / r["total_bytes"][1] for r in rows]
    colors = ["tab:green" if r["passed"] else "tab:red" for r in rows]
    y = list(range(len(rows)))[::-1]
    ax.barh(y, ratios, color=colors)
    ax.set_yticks(y, labels, fontsize=7)
    charts.log_axis(ax, "x", suffix="×")
    ax.set_xlim(1, 1.2 * max(ratios))
    ax.set_xlabel("total bytes: input / compressed (log scale)")
    ax.set_title(
        charts.wrap("Compression judged by return (green: within the 5 % gate, red: not)", 80)
    )
    charts.save(fig, path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=None)
    parser.add_argument("--states", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", type=Path, default=None)
    parser.add_argument("--no-train", action="store_true")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = load_inputs(Path(tmp), not args.no_train)
        for case in CASES:
            policy = inputs.get((case.source, case.name))
            if policy is None:
                continue
            t = time.perf_counter()
            report = compress(policy, case.methods, case.env_id, episodes=args.episodes,
                              states=args.states, seed=args.seed, options=case.options)  # fmt: skip
            rows.append(row(case, policy, report))
            print(f"{case.source}: {case.name} {case.methods}: {time.perf_counter() - t:.1f} s",
                  file=sys.stderr)  # fmt: skip
    print(render(rows))
    if args.png:
        plot(rows, args.png)
        print(f"\nwrote {args.png}")


if __name__ == "__main__":
    main()
