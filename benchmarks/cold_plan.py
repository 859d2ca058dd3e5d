"""Cold start of the CLI: wall time of fresh `rlbudget` processes, as a Markdown table.

Run: python benchmarks/cold_plan.py [--repeat 5]

Each command runs in a new Python process (nothing cached in memory; the OS file
cache is warm after the first run, as it is for a user). Target: `plan` < 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "rlbudget --help": ["--help"],
    "rlbudget check (default budget)": ["check"],
    "rlbudget plan (default budget)": ["plan"],
    "rlbudget plan budgets/raspberry-pi-4-pendulum.yaml": [
        "plan",
        "budgets/raspberry-pi-4-pendulum.yaml",
    ],
}


def time_command(args: list[str], repeat: int) -> list[float]:
    runs = []
    for _ in range(repeat + 1):  # the first run warms the OS file cache and is dropped
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "rlbudget.cli", *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        runs.append(time.perf_counter() - start)
    return runs[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    print("| command | median (s) | min (s) | max (s) | runs |")
    print("|---|---|---|---|---|")
    for name, args in COMMANDS.items():
        runs = time_command(args, repeat)
        print(
            f"| `{name}` | {statistics.median(runs):.3f} | {min(runs):.3f} | {max(runs):.3f} "
            f"| {len(runs)} |"
        )


if __name__ == "__main__":
    main()
