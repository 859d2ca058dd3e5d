"""Contextual bandits: rlbudget's learners against Vowpal Wabbit, the field's reference tool.

Run: python benchmarks/bandits.py [--steps 5000] [--seeds 3] [--png bandits.png]
(needs ``pip install vowpalwabbit``, benchmark only, and a C compiler).

All on the synthetic problem of :mod:`rlbudget.bandits.synthetic` (d = 5 context values in
[-1, 1], K = 4 arms, linear rewards θ_a · [x, 1] plus N(0, 0.5²) noise), whose optimum is
known. VW sees the same features as ADF examples (``shared |s x0:… x4:…`` and one line
``|a a<i>`` per arm) with ``-q sa``, so that it too learns a linear model per arm.

1. **Online, cumulative regret** over ``--steps`` decisions (the expected regret
   ``max_a μ(x, a) − μ(x, chosen)``, so the noise of the rewards does not count), mean over
   ``--seeds`` seeds (problem seed = run seed). rlbudget's LinUCB, Thompson sampling, softmax
   and ε-greedy (defaults of ``rlbudget/data/bandits.yaml``) vs ``vw --cb_explore_adf``
   with each exploration setting of :data:`VW_SETTINGS`; the best VW setting is the
   target's reference.
2. **Offline, policy value** of the greedy policy learned from 20,000 logged decisions
   (softmax logging policy, propensities ≥ 0.05), on 20,000 fresh contexts, against the
   optimum: rlbudget's IPS and DR regression vs ``vw --cb_adf`` with ``--cb_type ips``,
   ``dr`` and ``mtr`` (one pass, as VW learns).
3. **Decisions per second**: the deployed linear policy as the C export, called in a C
   loop over 100,000 contexts held in memory (``cc -O3``; one ``rlb_policy_act`` per
   decision), and through ctypes from Python (``HostPolicy``); numpy ``Policy.act``; VW's
   greedy ``predict`` from Python (a text example per call, as VW's Python API takes it)
   and VW's own C++ driver over a file of the same 100,000 examples (``-t -d FILE``,
   parsing included: VW's fastest path without writing C++ against its library).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from rlbudget.bandits.learners import config, run_online
from rlbudget.bandits.offline import learn_offline
from rlbudget.bandits.ridge import linear_policy
from rlbudget.bandits.synthetic import LinearProblem, log_decisions, make_problem

VW_SETTINGS = (
    "--epsilon 0.05",
    "--epsilon 0.02",
    "--squarecb",
    "--squarecb --gamma_scale 100",
    "--cover 4",
    "--bag 5 --epsilon 0.02",
    "--softmax --lambda 10",
    "--regcbopt --mellowness 0.1",
    "--squarecb -l 0.1",
    "--squarecb -l 2",
    "--epsilon 0.02 -l 2",
)
"""VW's exploration settings (its defaults, then a few learning rates: VW learns by SGD,
``-l 0.5`` and ``--power_t 0.5`` by default); the best mean regret is the reference."""
OURS_ONLINE = ("linucb", "thompson", "softmax", "epsilon-greedy")


def vw_example(x: np.ndarray, K: int, label: tuple[int, float, float] | None = None) -> list[str]:
    shared = "shared |s " + " ".join(f"x{i}:{v:.6f}" for i, v in enumerate(x))
    arms = [f"|a a{k}" for k in range(K)]
    if label is not None:
        a, cost, p = label
        arms[a] = f"0:{cost:.6f}:{p:.6f} " + arms[a]
    return [shared, *arms]


def vw_online(problem: LinearProblem, setting: str, steps: int, seed: int) -> float:
    import vowpalwabbit

    vw = vowpalwabbit.Workspace(f"--cb_explore_adf -q sa --quiet --random_seed {seed} {setting}")
    rng = np.random.default_rng(seed)
    K, regret = problem.actions, 0.0
    for _ in range(steps):
        x = problem.contexts(1, rng)
        pmf = np.asarray(vw.predict(vw_example(x[0], K)), dtype=np.float64)
        pmf /= pmf.sum()
        a = int(rng.choice(K, p=pmf))
        r = float(problem.rewards(x, np.array([a]), rng)[0])
        vw.learn(vw_example(x[0], K, (a, -r, float(pmf[a]))))
        mu = problem.means(x)[0]
        regret += mu.max() - mu[a]
    vw.finish()
    return regret


def vw_offline(problem: LinearProblem, cb_type: str, logged, X_test: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    import vowpalwabbit

    vw = vowpalwabbit.Workspace(f"--cb_explore_adf --epsilon 0 -q sa --quiet --cb_type {cb_type}")
    K = problem.actions
    for x, a, r, p in zip(logged.contexts, logged.actions, logged.rewards, logged.propensities,
                          strict=True):  # fmt: skip
        vw.learn(vw_example(x, K, (int(a), -float(r), float(p))))
    chosen = np.array([int(np.argmax(vw.predict(vw_example(x, K)))) for x in X_test])
    vw.finish()
    return float(problem.means(X_test)[np.arange(len(X_test)), chosen].mean())


BENCH_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "policy.h"
int main(int argc, char **argv) {
    int n = atoi(argv[1]), reps = atoi(argv[2]);
    float *obs = malloc(sizeof(float) * (size_t)n * RLB_OBS_DIM);
    FILE *f = fopen(argv[3], "rb");
    if (!f || fread(obs, sizeof(float), (size_t)n * RLB_OBS_DIM, f) != (size_t)n * RLB_OBS_DIM)
        return 2;
    fclose(f);
    long sum = 0;
    for (int r = 0; r < reps; r++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < n; i++) sum += rlb_policy_act(obs + (size_t)i * RLB_OBS_DIM, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("%.9f\n", (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec));
    }
    fprintf(stderr, "checksum %ld\n", sum);
    return 0;
}
"""


def c_loop_rate(policy, X: np.ndarray, folder: Path) -> tuple[float, np.ndarray]:  # type: ignore[no-untyped-def]
    """Decisions/s of the C export in a C loop (median of 5 passes) and its actions."""
    from rlbudget.export.c import export_c
    from rlbudget.export.host import HostPolicy, find_compiler

    export_c(policy, folder)
    (folder / "bench.c").write_text(BENCH_C)
    obs = X.astype(np.float32)
    obs.tofile(folder / "obs.bin")
    cc = find_compiler() or "cc"
    exe = folder / "bench"
    subprocess.run([cc, "-std=c99", "-O3", "-D_POSIX_C_SOURCE=199309L", str(folder / "policy.c"),
                    str(folder / "bench.c"), "-o", str(exe), "-lm"], check=True)  # fmt: skip
    out = subprocess.run([str(exe), str(len(obs)), "5", str(folder / "obs.bin")],
                         capture_output=True, text=True, check=True)  # fmt: skip
    seconds = statistics.median(float(s) for s in out.stdout.split())
    host = HostPolicy(policy, folder / "lib")
    actions = np.array([host.act(o) for o in obs[:2000]])
    return len(obs) / seconds, actions


def per_call_rate(fn, items, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for it in items:
            fn(it)
        rates.append(len(items) / (time.perf_counter() - t))
    return statistics.median(rates)


def vw_driver_rate(vw_model: Path, X: np.ndarray, K: int, folder: Path) -> float:
    """VW's driver over a file: the Python binding runs it while building the Workspace
    (``-d`` given), so the time is construction to finish, less the same on an empty file
    (loading the model)."""
    import vowpalwabbit

    data, empty = folder / "test.dat", folder / "empty.dat"
    with data.open("w") as f:
        for x in X:
            f.write("\n".join(vw_example(x, K)) + "\n\n")
    empty.write_text("")

    def seconds(path: Path) -> float:
        t = time.perf_counter()
        vw = vowpalwabbit.Workspace(f"-t -i {vw_model} --quiet -d {path}")
        vw.run_parser()
        seen = vw.get_weighted_examples()
        vw.finish()
        assert seen == (len(X) if path == data else 0), seen
        return time.perf_counter() - t

    runs = [seconds(data) - seconds(empty) for _ in range(3)]
    return len(X) / statistics.median(runs)


def main() -> None:
    import vowpalwabbit

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args()
    seeds = range(args.seeds)

    # 1. online regret
    regret: dict[str, list[float]] = {}
    curves: dict[str, np.ndarray] = {}
    for algo in OURS_ONLINE:
        runs = [run_online(algo, make_problem(seed=s), 4, 5, args.steps, seed=s) for s in seeds]
        regret[algo] = [float(r.cumulative_regret or 0.0) for r in runs]
        curves[algo] = np.mean([np.cumsum(r.regret) for r in runs if r.regret is not None], axis=0)
    for setting in VW_SETTINGS:
        regret[f"vw {setting}"] = [vw_online(make_problem(seed=s), setting, args.steps, s)
                                   for s in seeds]  # fmt: skip
    best_vw = min((k for k in regret if k.startswith("vw")), key=lambda k: np.mean(regret[k]))
    print(f"## Online: cumulative regret over {args.steps:,} decisions "
          f"(mean ± sd over {args.seeds} seeds; lower is better)\n")  # fmt: skip
    print("| learner | cumulative regret | vs best VW |\n|---|---:|---:|")
    ref = float(np.mean(regret[best_vw]))
    for k, v in sorted(regret.items(), key=lambda kv: np.mean(kv[1])):
        mark = " (best VW)" if k == best_vw else ""
        print(f"| {k}{mark} | {np.mean(v):.1f} ± {np.std(v):.1f} | {np.mean(v) / ref:.2f}× |")

    # 2. offline policy value
    problem = make_problem(seed=0)
    logged = log_decisions(problem, args.rows, seed=0)
    X_test = problem.contexts(20_000, np.random.default_rng(99))
    opt = float(problem.means(X_test).max(axis=1).mean())
    values = {"logging policy": float(logged.rewards.mean())}
    for algo in ("dr", "ips"):
        theta = learn_offline(algo, logged, config(algo))
        pol = linear_policy(theta, logged.context_columns, -np.ones(5), np.ones(5), {})
        a = pol.act(X_test.astype(np.float32))
        values[f"rlbudget {algo}"] = float(problem.means(X_test)[np.arange(len(X_test)), a].mean())
    for cb_type in ("dr", "ips", "mtr"):
        values[f"vw --cb_adf --cb_type {cb_type}"] = vw_offline(problem, cb_type, logged, X_test)
    print(f"\n## Offline: value of the policy learned from {args.rows:,} logged decisions "
          f"(optimum {opt:.4f})\n")  # fmt: skip
    print("| learner | policy value | share of optimum |\n|---|---:|---:|")
    for k, v in sorted(values.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v:.4f} | {v / opt:.1%} |")

    # 3. decisions per second
    theta = learn_offline("dr", logged, config("dr"))
    pol = linear_policy(theta, logged.context_columns, -np.ones(5), np.ones(5), {})
    X = problem.contexts(100_000, np.random.default_rng(5))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        c_rate, c_actions = c_loop_rate(pol, X, folder / "c")
        assert np.array_equal(c_actions, pol.act(X[:2000].astype(np.float32))), "C ≠ numpy"
        from rlbudget.export.host import HostPolicy

        host = HostPolicy(pol, folder / "ctypes")
        obs32 = X[:20_000].astype(np.float32)
        ctypes_rate = per_call_rate(host.act, obs32)
        numpy_rate = per_call_rate(pol.act, obs32[:5000])
        vw = vowpalwabbit.Workspace("--cb_explore_adf --epsilon 0 -q sa --quiet --cb_type dr")
        for x, a, r, p in zip(logged.contexts, logged.actions, logged.rewards,
                              logged.propensities, strict=True):  # fmt: skip
            vw.learn(vw_example(x, 4, (int(a), -float(r), float(p))))
        model = folder / "vw.model"
        vw.save(str(model))
        examples = [vw_example(x, 4) for x in X[:5000]]
        vw_py_rate = per_call_rate(vw.predict, examples)
        vw.finish()
        vw_c_rate = vw_driver_rate(model, X, 4, folder)
    rates = {
        "rlbudget C export, C loop": c_rate,
        "rlbudget C export via ctypes": ctypes_rate,
        "rlbudget numpy Policy.act": numpy_rate,
        "VW C++ driver (-t -d FILE)": vw_c_rate,
        "VW Python predict": vw_py_rate,
    }
    print("\n## Decisions per second (one decision at a time; d = 5, K = 4)\n")
    print("| runtime | decisions/s | vs VW C++ driver | vs VW Python predict |")
    print("|---|---:|---:|---:|")
    for k, v in rates.items():
        print(f"| {k} | {v:,.0f} | {v / vw_c_rate:.1f}× | {v / vw_py_rate:.1f}× |")

    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        for algo, curve in curves.items():
            ax1.plot(curve, label=f"rlbudget {algo}")
        ax1.axhline(
            ref, color="k", ls="--", lw=1, label=f"best VW at {args.steps:,}: {best_vw[3:]}"
        )
        ax1.set(
            xlabel="decision", ylabel="cumulative regret", title="Online regret (mean of seeds)"
        )
        ax1.legend(fontsize=7)
        names = list(rates)
        ax2.barh(names, [rates[n] for n in names], color=["C0", "C0", "C0", "C3", "C3"])
        ax2.set_xscale("log")
        ax2.set(xlabel="decisions / s (log)", title="Decision throughput")
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
        print(f"\nwrote {args.png}")


if __name__ == "__main__":
    main()
