"""PETS (with its distilled policy) and MBPO vs SAC: env steps and time to a target return.

Run: nice python benchmarks/model_based.py [--envs pendulum mountaincar] [--seeds 0 1 2]
     [--algos pets sac] [--results mb.jsonl] [--png model_based.png] [--kept-episodes 10]
     python benchmarks/model_based.py --planner-speed 30   (the planner's decisions/s only)

Cases (``--envs``): ``pendulum`` (Pendulum-v1 to −200), ``mountaincar``
(MountainCarContinuous-v0 to 90), and ``pendulum-50ms``: the Pendulum runs again, with a
simulated ``env_step_cost`` of 50 ms charged per training env step (the runs are not
repeated: time = the measured wall time + 0.05 s × the env steps the trainer took;
evaluation episodes are not charged, for either algorithm: on a real system they would be
the same price for both, and the loop's screens are not part of the method).

Each (algorithm, env, seed) trains through ``rlbudget train``'s own loop
(:func:`rlbudget.train.train_run`) with its hyperparameter file (PETS:
``data/hyperparams/pets.yaml``; MBPO: ``mbpo.yaml``; SAC: RL Zoo's tuned settings in
``sac.yaml``) and the target as ``task.min_return``. SAC and MBPO stop by the loop: it
screens the deployed policy every ``--sac-eval-every`` steps (500; SAC's default grid is
1,000, which would round its counts up to the next thousand) or ``--eval-every`` (MBPO,
200), and stops when a confirmation's 95 % lower bound reaches the target. PETS stops on
its planner (pets.py): a planner episode at the target starts a check on fresh episodes,
and their mean meeting it stops the run; the student is distilled after, in the model,
with no env step (its time is shown apart: "+ distilling"). Evaluation episodes (the
loop's screens, PETS's checks) are not training steps for any algorithm. A run that
never stops by target shows its budget with "not reached".

For PETS it also runs, at that stop, the planner itself (rebuilt from the run's
``model/``, as ``rlbudget evaluate --planner``) and the student quantized to int8
(:func:`rlbudget.compress.quantize.quantize_int8`, calibrated on states it visits) on the
same ``--kept-episodes`` fresh episodes (0: the run's own figures, from its planner
check's episodes): "kept" is :func:`rlbudget.agents.model_based.distill.kept`, so
≥ 0.95 means the int8 policy is at most 5 % worse than the planner.

Rows go to ``--results`` (JSON lines) as they finish, and rows already there are reused,
so the cases can run in separate processes (the CPU is shared) and be tabulated at the
end (``--table-only``). Prints a Markdown table and the mean per (case, algorithm); with
``--png`` a chart: env steps and time to the target per seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rlbudget.agents.model_based.distill import kept
from rlbudget.policy import load_policy
from rlbudget.profile.evaluate import evaluate
from rlbudget.train import resolve, train_run

FRESH_SEED = 1_000_000
ALGOS = ["pets", "mbpo", "sac"]  # the default --algos; another gets SAC's step budget


@dataclass(frozen=True)
class Case:
    env: str
    target: float
    steps: dict[str, int]  # the env-step budget per algorithm
    step_cost_s: float = 0.0  # simulated, added per training env step
    runs_of: str = ""  # reuse another case's runs (only the step cost differs)


CASES = {
    "pendulum": Case("Pendulum-v1", -200.0, {"pets": 3000, "mbpo": 5000, "sac": 20000}),
    "mountaincar": Case("MountainCarContinuous-v0", 90.0, {"pets": 6000, "sac": 50000}),
    "pendulum-50ms": Case(
        "Pendulum-v1", -200.0, {"pets": 3000, "mbpo": 5000, "sac": 20000}, 0.05, runs_of="pendulum"
    ),
}


def visited(policy: Any, env_id: str, steps: int, seed: int) -> np.ndarray:
    """Observations the policy visits (int8 calibration)."""
    from rlbudget.envs import make_env

    env = make_env(env_id)
    obs, _ = env.reset(seed=seed)
    out = []
    for _ in range(steps):
        out.append(np.asarray(obs, np.float32))
        obs, _, terminated, truncated, _ = env.step(policy.act(obs))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.stack(out)


def planner_returns(policy_dir: Path, env_id: str, episodes: int) -> tuple[list[float], float]:
    """The run's planner (host, torch, as ``evaluate --planner``) on ``episodes`` fresh
    episodes, and its mean time per decision in ms (the env's own step time excluded)."""
    from rlbudget.agents.model_based.host import planner_for
    from rlbudget.envs import make_env

    env = make_env(env_id)
    out, spent, decisions = [], 0.0, 0
    for e in range(episodes):
        act = planner_for(policy_dir, seed=e)  # a fresh warm start per episode
        obs, _ = env.reset(seed=FRESH_SEED + e)
        total, done = 0.0, False
        while not done:
            t0 = time.perf_counter()
            action = act(obs)
            spent += time.perf_counter() - t0
            decisions += 1
            obs, r, terminated, truncated, _ = env.step(action)
            total += float(r)
            done = bool(terminated or truncated)
        out.append(total)
    env.close()
    return out, 1000 * spent / max(1, decisions)


def one_run(algo: str, case: Case, seed: int, eval_every: int, sac_eval_every: int,
            kept_episodes: int, folder: Path) -> dict[str, Any]:  # fmt: skip
    steps = case.steps.get(algo, case.steps["sac"])
    settings = resolve(algo, case.env, env_steps=steps, min_return=case.target, seed=seed)
    settings = replace(settings, eval_every=eval_every if algo in ("pets", "mbpo")
                       else sac_eval_every)  # fmt: skip
    run_dir = folder / f"{algo}-{case.env}-{seed}"
    t0 = time.perf_counter()
    run = train_run(settings, run_dir)
    row: dict[str, Any] = {
        "algo": algo, "env": case.env, "seed": seed, "steps": run.steps,
        "wall_s": time.perf_counter() - t0, "reached": run.stopped_by == "target",
    }  # fmt: skip
    extra = run.extra or {}
    if "target_wall_s" in extra:  # pets stopped by its planner: time to it, then distilling
        row["target_wall_s"] = extra["target_wall_s"]
        row["distill_s"] = extra["distill_s"]
        row["in_run"] = {k: extra.get(k) for k in ("planner_return", "student_return",
                                                   "int8_return", "int8_kept", "distill_rounds",
                                                   "distill_labels")}  # fmt: skip
    if algo == "pets" and kept_episodes == 0 and "in_run" in row:  # the check's episodes
        row.update(planner=row["in_run"]["planner_return"],
                   student=row["in_run"]["student_return"], int8=row["in_run"]["int8_return"],
                   steps_per_s=run.steps / row["target_wall_s"])  # fmt: skip
    elif algo == "pets":
        from rlbudget.compress.quantize import quantize_int8

        policy = load_policy(run_dir / "policy")
        int8 = quantize_int8(policy, visited(policy, case.env, 2000, seed))
        returns, row["planner_ms"] = planner_returns(run_dir / "policy", case.env, kept_episodes)
        row["planner"] = float(np.mean(returns))
        row["steps_per_s"] = run.steps / row.get("target_wall_s", row["wall_s"])
        row["int8"] = evaluate(int8, case.env, episodes=kept_episodes,
                               seed=FRESH_SEED).return_mean  # fmt: skip
        row["student"] = evaluate(policy, case.env, episodes=kept_episodes,
                                  seed=FRESH_SEED).return_mean  # fmt: skip
    return row


def planner_speed(rounds: int, decisions: int) -> None:
    """Planner decisions/s on one fitted 5 × 64-64 Pendulum ensemble (1,000 random
    transitions): the previous settings (300 candidates × 5 rounds) scored through
    :meth:`Ensemble.forward` as before (normalize, forward with the log-variance,
    denormalize), the same settings through the folded pass, and pets.yaml's Pendulum
    settings; the three alternate ``rounds`` times, so a shared CPU slows each alike."""
    import gymnasium as gym
    import torch

    from rlbudget.agents.model_based.ensemble import Ensemble
    from rlbudget.agents.model_based.planner import CEM, Planner
    from rlbudget.train import resolve

    torch.set_num_threads(1)
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    xs, ys = [], []
    for _ in range(1000):
        a = rng.uniform(-2, 2, 1).astype(np.float32)
        nxt, r, terminated, truncated, _ = env.step(a)
        xs.append(np.concatenate([obs, a]))
        ys.append(np.concatenate([nxt - obs, [r]]))
        obs = nxt if not (terminated or truncated) else env.reset()[0]
    x, y = np.asarray(xs, np.float32), np.asarray(ys, np.float32)
    ens = Ensemble(4, 3, 5, [64, 64], 0)
    ens.fit(x, y, np.zeros(len(x)), epochs=10, batch_size=64, rng=rng, max_updates=300)
    hp = resolve("pets", "Pendulum-v1").hyperparameters
    now = CEM(hp["horizon"], hp["cem_population"], hp["cem_iterations"],
              hp["cem_elite_fraction"], hp["cem_alpha"], 1, False,
              hp.get("replan_every", 1), hp.get("cem_keep_elites", 0.0))  # fmt: skip
    before = CEM(15, 300, 5, 0.1, 0.1)
    box: Any = env.observation_space  # a Box
    kw: dict[str, Any] = {"low": np.array([-2.0], np.float32), "high": np.array([2.0], np.float32),
                          "n": None, "terminates": False, "seed": 0,
                          "obs_low": box.low, "obs_high": box.high}  # fmt: skip
    unfolded = Planner(ens, before, **kw)
    unfolded.returns = lambda o, acts: _forward_returns(unfolded, o, acts)  # type: ignore[method-assign,assignment]
    planners = {"before: 300 × 5, forward()": unfolded,
                "300 × 5, folded pass": Planner(ens, before, **kw),
                f"pets.yaml: {now.population} × {now.iterations}, keep {now.keep_elites}, "
                f"replan every {now.replan_every}": Planner(ens, now, **kw)}  # fmt: skip
    rates: dict[str, list[float]] = {k: [] for k in planners}
    cpu_ms: dict[str, list[float]] = {k: [] for k in planners}
    states = x[:decisions, :3]
    for _ in range(rounds):
        for name, planner in planners.items():
            planner.reset()
            t0, c0 = time.perf_counter(), time.process_time()
            for s in states:
                planner.act(s)
            rates[name].append(decisions / (time.perf_counter() - t0))
            cpu_ms[name].append(1000 * (time.process_time() - c0) / decisions)
    # CPU time per decision (one torch thread) barely depends on a shared host's load
    print("| planner | env steps/s (median of rounds) | × before | CPU ms per decision |\n"
          "|---|---|---|---|")  # fmt: skip
    base = statistics.median(rates["before: 300 × 5, forward()"])
    for name, rate in rates.items():
        print(f"| {name} | {statistics.median(rate):.1f} | {statistics.median(rate) / base:.1f} | "
              f"{statistics.median(cpu_ms[name]):.1f} |")  # fmt: skip
    t0 = time.process_time()
    ens.fit(x[:650], y[:650], np.zeros(650), epochs=hp["model_epochs"],
            batch_size=hp["model_batch_size"], rng=rng,
            max_updates=hp["model_max_updates"])  # fmt: skip
    print(f"\none model refit on 650 transitions (pets.yaml's Pendulum settings): "
          f"{time.process_time() - t0:.2f} s of CPU")  # fmt: skip


def _forward_returns(planner: Any, obs: np.ndarray, actions: Any) -> Any:
    """Candidates scored as before the folded pass: normalize, Ensemble.forward (with the
    log-variance head), denormalize, every step."""
    import torch

    ens = planner.ens
    m, pop = ens.members, actions.shape[0]
    xm, xs = torch.from_numpy(ens.x_scale.mean), torch.from_numpy(ens.x_scale.std)
    ym, ys = torch.from_numpy(ens.y_scale.mean), torch.from_numpy(ens.y_scale.std)
    state = torch.as_tensor(obs).reshape(1, 1, -1).expand(m, pop, -1)
    total = torch.zeros(m, pop)
    acts = actions.expand(m, -1, -1, -1)
    with torch.no_grad():
        for t in range(actions.shape[1]):
            x = (torch.cat([state, acts[:, :, t]], dim=-1) - xm) / xs
            mean, _, _ = ens.forward(x)
            yv = mean * ys + ym
            state = torch.clamp(state + yv[..., :-1], planner.obs_low, planner.obs_high)
            total = total + torch.clamp(yv[..., -1], *planner.reward_range)
    return total.mean(dim=0)


def with_cost(row: dict[str, Any], case: Case, *, distilling: bool = False) -> float:
    """Time to the target plus the simulated step cost of the training env steps. The
    time to the target is the run's wall time, except for a pets run stopped by its
    planner: the time of that stop (``distilling``: with the distillation after it)."""
    wall = float(row.get("target_wall_s", row["wall_s"]))
    if distilling:
        wall += float(row.get("distill_s", 0.0))
    return wall + case.step_cost_s * int(row["steps"])


def table(rows: list[dict[str, Any]], names: list[str], algos: list[str]) -> str:
    lines = ["| case | algorithm | seed | env steps to target | time s (+ distilling) | "
             "planner | student | int8 | kept |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    summary = []
    for name in names:
        case = CASES[name]
        for algo in algos:
            mine = [r for r in rows if r["algo"] == algo and r["env"] == case.env]
            for r in sorted(mine, key=lambda r: r["seed"]):
                steps = f"{r['steps']:,}" if r["reached"] else f"not reached in {r['steps']:,}"
                extra = ["", "", "", ""]
                if algo == "pets":
                    extra = [f"{r['planner']:.1f}", f"{r['student']:.1f}", f"{r['int8']:.1f}",
                             f"{kept(r['planner'], r['int8']):.2f}"]  # fmt: skip
                shown = f"{with_cost(r, case):.0f}"
                if "distill_s" in r:
                    shown += f" (+{r['distill_s']:.0f})"
                lines.append(f"| {name} | {algo} | {r['seed']} | {steps} | {shown} | "
                             + " | ".join(extra) + " |")  # fmt: skip
            reached = [r for r in mine if r["reached"]]
            if reached:
                steps = statistics.mean(r["steps"] for r in reached)
                secs = statistics.mean(with_cost(r, case) for r in reached)
                summary.append(f"{name} {algo}: {len(reached)}/{len(mine)} reached; mean steps "
                               f"{steps:,.0f}, mean time {secs:.0f} s")  # fmt: skip
            elif mine:
                summary.append(f"{name} {algo}: 0/{len(mine)} reached")
        summary.extend(paired(rows, name, algos))
    return "\n".join(lines) + "\n\n" + "\n".join(summary)


def paired(rows: list[dict[str, Any]], name: str, algos: list[str]) -> list[str]:
    """Per seed, each model-based algorithm against SAC: env steps and time, as ratios
    (a run that did not reach the target counts at its budget, marked)."""
    case = CASES[name]
    out = []
    for algo in (a for a in algos if a != "sac"):
        parts = []
        for r in sorted((r for r in rows if r["algo"] == algo and r["env"] == case.env),
                        key=lambda r: r["seed"]):  # fmt: skip
            sac = [q for q in rows if q["algo"] == "sac" and q["env"] == case.env
                   and q["seed"] == r["seed"]]  # fmt: skip
            if not sac:
                continue
            mark = "" if r["reached"] and sac[0]["reached"] else "*"
            time_ratio = with_cost(r, case) / with_cost(sac[0], case)
            parts.append(f"seed {r['seed']}: steps {r['steps'] / sac[0]['steps']:.2f}, "
                         f"time {time_ratio:.2f}{mark}")  # fmt: skip
        if parts:
            out.append(f"{name} {algo}/sac: " + "; ".join(parts))
    return out


def plot(rows: list[dict[str, Any]], names: list[str], algos: list[str], path: Path) -> None:
    """Per case, env steps (left) and time (right) to the target, one dot per seed
    (hollow: not reached, at its budget)."""
    from rlbudget import charts

    fig, axes = charts.figure(10, 0.9 * len(names) * len(algos) + 1.4, ncols=2)
    labels, y = [], 0
    colors = {"pets": "tab:blue", "sac": "tab:orange", "mbpo": "tab:green"}
    for name in names:
        case = CASES[name]
        for algo in algos:
            mine = [r for r in rows if r["algo"] == algo and r["env"] == case.env]
            for r in mine:
                face = colors.get(algo, "tab:gray") if r["reached"] else "none"
                for ax, value in zip(axes, (r["steps"], with_cost(r, case)), strict=True):
                    ax.scatter([value], [y], edgecolors=colors.get(algo, "tab:gray"),
                               facecolors=face, s=40)  # fmt: skip
            labels.append(f"{name}: {algo}")
            y += 1
    for ax, xlabel in zip(axes, ("env steps to target", "time to target, s (with step cost)"),
                          strict=True):  # fmt: skip
        ax.set_yticks(range(len(labels)), labels if ax is axes[0] else [""] * len(labels))
        ax.invert_yaxis()
        ax.set_xlim(left=0)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel(xlabel)
    title = ("PETS (stopped on its planner, then distilled) vs MBPO vs SAC (RL Zoo): env "
             "steps and time to the target, one dot per seed, hollow = not reached within "
             "the budget")  # fmt: skip
    fig.suptitle(charts.wrap(title, 90))
    charts.save(fig, path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--envs", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--algos", nargs="+", default=ALGOS)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--sac-eval-every", type=int, default=500,
                    help="SAC's screens (its default grid: 1,000)")  # fmt: skip
    ap.add_argument("--kept-episodes", type=int, default=10,
                    help="fresh episodes for planner/student/int8 after a pets run (0: "
                         "take the run's own, its planner check's episodes)")  # fmt: skip
    ap.add_argument("--results", type=Path, default=None, help="JSON lines, reused and grown")
    ap.add_argument("--table-only", action="store_true", help="tabulate --results, train none")
    ap.add_argument("--png", type=Path, default=None)
    ap.add_argument("--planner-speed", type=int, default=0, metavar="DECISIONS",
                    help="only time the planner: DECISIONS per setting, 3 rounds")  # fmt: skip
    args = ap.parse_args()
    if args.planner_speed:
        planner_speed(3, args.planner_speed)
        return
    rows: list[dict[str, Any]] = []
    if args.results is not None and args.results.is_file():
        rows = [json.loads(line) for line in args.results.read_text().splitlines() if line]
    if not args.table_only:
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.envs:
                case = CASES[name]
                if case.runs_of:
                    continue  # tabulated from another case's runs
                for seed in args.seeds:
                    for algo in args.algos:
                        if any(r["algo"] == algo and r["env"] == case.env and r["seed"] == seed
                               for r in rows):  # fmt: skip
                            continue
                        row = one_run(algo, case, seed, args.eval_every, args.sac_eval_every,
                                      args.kept_episodes, Path(tmp))  # fmt: skip
                        rows.append(row)
                        print(json.dumps(row), flush=True)
                        if args.results is not None:
                            with args.results.open("a") as f:
                                f.write(json.dumps(row) + "\n")
    wanted = [r for r in rows if r["seed"] in args.seeds]
    print()
    print(table(wanted, args.envs, args.algos))
    if args.png:
        plot(wanted, args.envs, args.algos, args.png)
        print(f"\nwrote {args.png}")


if __name__ == "__main__":
    main()
