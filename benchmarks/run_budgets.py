"""``rlbudget run`` on every example budget: fits or not, the result, the wall time.

Run: python benchmarks/run_budgets.py [--budgets budgets/*.yaml] [--png run_budgets.png]

Each budget runs in a fresh process (``rlbudget run BUDGET -o TMP --json``, seed 0),
one after the other. Prints a Markdown table: exit code, the chosen candidate (or the
binding limit of the closest one), its flash, RAM and target latency, its return against
the target, and the wall time of the whole job (plan, training, compression search,
export, profile). Training obeys each budget's training limits, so some budgets take
minutes (SAC on Pendulum).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rlbudget import units

ROOT = Path(__file__).resolve().parent.parent


def run(budget: Path, out: Path) -> tuple[int, dict[str, Any] | None, float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rlbudget", "run", str(budget), "-o", str(out),
                           "--json"], capture_output=True, text=True, check=False)  # fmt: skip
    wall = time.perf_counter() - start
    data = json.loads(done.stdout) if done.returncode in (0, 1) and done.stdout else None
    return (
        done.returncode,
        data,
        wall,
        done.stderr.strip().splitlines()[-1:][0] if done.stderr else "",
    )


def row(budget: Path, code: int, data: dict[str, Any] | None, wall: float, err: str) -> str:
    if data is None:
        return f"| {budget.name} | {code} | error: {err} | | | | | {wall:.0f} s |"
    prof = data["profile"]
    checks = {c["limit"]: c for c in prof["checks"]}
    ret = prof["return"] or {}
    target = "—" if ret.get("target") is None else f"{ret['target']:g}"
    result = data["chosen"]["name"] if data["chosen"] else f"no fit: {data['advice']}"
    return (f"| {budget.name} | {code} | {data['plan']['label']} → {result} "
            f"| {units.format_bytes(round(checks['inference.flash']['figure']))} "
            f"| {units.format_bytes(round(checks['inference.ram']['figure']))} "
            f"| {checks['inference.latency']['figure'] * 1e6:.3g} µs "
            f"| {ret.get('mean', float('nan')):.4g} / {target} | {wall:.0f} s |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budgets", nargs="*", type=Path,
                        default=sorted((ROOT / "budgets").glob("*.yaml")))  # fmt: skip
    parser.add_argument("--png", type=Path, default=None, help="wall time per budget")
    args = parser.parse_args()
    print("| budget | exit | plan option → result | flash | RAM | latency (target) "
          "| return / target | wall time |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for budget in args.budgets:
            code, data, wall, err = run(budget, Path(tmp) / budget.stem)
            print(row(budget, code, data, wall, err), flush=True)
            results.append((budget.stem, code, wall))
    if args.png:
        plot(results, args.png)


def plot(results: list[tuple[str, int, float]], path: Path) -> None:
    """Wall time per budget, green when a policy fits (exit 0), red when not."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.35 * len(results) + 1.2))
    names = [r[0] for r in results][::-1]
    colors = {0: "tab:green", 1: "tab:red"}
    ax.barh(names, [r[2] for r in results][::-1],
            color=[colors.get(r[1], "tab:grey") for r in results][::-1])  # fmt: skip
    ax.set_xlabel("wall time of rlbudget run (s); green: fits, red: binding limit named")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
