"""Adaptive complexity: ``compress --method cascade`` on CartPole and Pendulum (issue 22.1).

Run: python benchmarks/cascade.py [--widths 8,8 16,16] [--episodes N] [--seed 0]

For each RL Zoo model of ../shared/zoo (PPO CartPole-v1 64-64, SAC Pendulum-v1 64-64) and
each student width, one ``rlbudget.compress.pipeline.compress`` call with ``cascade``: the
student(s) distilled and quantized to int8, the threshold calibrated on the parent's
visited states to keep 99 % of its return on 30 calibration episodes, then the pipeline's
gate on its own paired episodes (``compress``'s default count). Printed per row: the share
of decisions the small body takes on 5,000 states the cascade itself visits, MACs of a
small decision / of the full policy / the mean / the worst case, the mean as a part of the
full policy's, and the return retention on the gate's episodes.

Target (issue 22.1): mean MACs ≤ 30 % of the full policy's at ≥ 99 % retention.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rlbudget.compress.pipeline import MethodOptions, compress

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT.parent / "shared" / "zoo"
CASES = [("ppo-CartPole-v1", "CartPole-v1"), ("sac-Pendulum-v1", "Pendulum-v1")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", nargs="+", default=["8,8", "16,16"])
    ap.add_argument("--episodes", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", nargs="+", default=[c[0] for c in CASES])
    args = ap.parse_args()
    from rlbudget.sb3.importer import import_model

    if not ZOO.is_dir():
        sys.exit(f"{ZOO} not found: the benchmark needs the RL Zoo models beside the repository")
    print("| model | student | share small | MACs small | MACs full | mean | worst | mean / full "
          "| retention | target met | s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, env_id in CASES:
        if name not in args.cases:
            continue
        parent = import_model(ZOO / name).policy
        for w in args.widths:
            widths = tuple(int(v) for v in w.split(","))
            t0 = time.perf_counter()
            report = compress(parent, "cascade", env_id, episodes=args.episodes, seed=args.seed,
                              options=MethodOptions(widths=widths))  # fmt: skip
            p = report.steps[0].params
            ratio, kept = p["macs_mean_ratio"], report.retention
            met = "yes" if ratio <= 0.30 and kept >= 0.99 else "no"
            print(f"| {name} | {w} ×{p['students']} | {p['share_small']:.1%} | {p['macs_small']:,} "
                  f"| {p['macs_full']:,} | {p['macs_mean']:,.0f} | {p['macs_worst']:,} "
                  f"| {ratio:.1%} | {kept:.2%} | {met} | {time.perf_counter() - t0:.0f} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
