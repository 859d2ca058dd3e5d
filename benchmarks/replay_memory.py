"""Replay memory (issue 22, item 2): how many transitions fit in one ``training.ram`` per
replay storage, the return after N steps trained from each, and what each costs in speed,
in one run.

Run: python benchmarks/replay_memory.py [--seeds 3] [--steps 15000] [--sb3-steps 2000]
     [--ram 600MiB] [--storages float32,float16,uint8,float16+zstd,float16+lz4,uint8+zstd]
     [--png docs/replay_memory.png] [--json replay.jsonl] [--from-json replay.jsonl]

On Pendulum-v1 (3-dim bounded observations, 1-dim action):

- **fit**: the transitions that fit in ``--ram`` of training RAM (margin 25 %, SB3 SAC's
  process and a 64-64 network taken off, :func:`rlbudget.replay.replay_buffer`), from the
  bytes per transition *estimated* (what the plan and ``train`` size the buffer with) and
  *measured*: the compact buffer's bytes (records' array + compressed chunks) over the
  transitions it holds at the end of each lean-sac run (all ``--steps`` of them). The
  float32 row is SB3's own ``ReplayBuffer`` (40 B: obs and next_obs 3 × 4 B, action 4 B,
  reward, done and timeout 4 B each), counted from its arrays.
- **learn**: lean-sac (``lean-sac.yaml``'s Pendulum settings, 64-64) for ``--steps`` env
  steps per seed and storage, every transition kept (capacity = steps, so only the
  storage differs); the return of the deterministic policy over 20 seeded episodes
  (the same seeds for every run); training steps per second (evaluation excluded). Runs
  go seed by seed, every storage within a seed, so that the shared machine's load falls
  on all alike.
- **SB3**: SB3 SAC (Zoo settings, 64-64) for ``--sb3-steps`` steps per storage through
  rlbudget's trainer (``SB3Config``), one seed: steps per second through SB3's sampling
  path (:mod:`rlbudget.sb3.replay`).

Prints Markdown tables (median over seeds, each seed); ``--png`` a chart.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ENV = "Pendulum-v1"
STORAGES = ("float32", "float16", "uint8", "float16+zstd", "float16+lz4", "uint8+zstd")
EVAL_SEEDS = list(range(1000, 1020))
SB3_FLOAT32_BYTES = 40  # obs, next_obs 3 × 4 B; action 4 B; reward, done, timeout 4 B each


def fit_rows(ram: int, storages: list[str], measured: dict[str, float]) -> list[dict[str, Any]]:
    from rlbudget.costs import mlp_parameters, training_ram_bytes
    from rlbudget.envs import env_spec
    from rlbudget.replay import Storage, replay_buffer, transition_bytes

    spec = env_spec(ENV, measure_steps=0)
    other = training_ram_bytes("sb3", mlp_parameters(spec.observation, spec.action, [64, 64]))
    rows = []
    for name in storages:
        storage = Storage.parse(name)
        r = replay_buffer(10**12, 10**12, spec.observation, spec.action, other_ram_bytes=other,
                          ram_bytes=ram, margin=0.25, storage=storage)  # fmt: skip
        cost = transition_bytes(spec.observation, spec.action, storage)
        per = measured.get(name)
        rows.append({"storage": name, "stored_b": cost.stored, "estimate_b": cost.estimate,
                     "measured_b": per, "fit_estimate": r.capacity,
                     "fit_measured": int(r.max_bytes // per) if per and r.max_bytes else None,
                     "room_bytes": r.max_bytes})  # fmt: skip
    return rows


def lean_run(storage: str, seed: int, steps: int) -> dict[str, Any]:
    from rlbudget.agents.offpolicy import OffPolicyConfig, train_offpolicy
    from rlbudget.hyperparams import get_hyperparams
    from rlbudget.profile.evaluate import evaluate
    from rlbudget.replay import CompactReplay, Storage
    from rlbudget.sb3.replay import space_spec

    hp = dict(get_hyperparams("lean-sac", ENV).params)
    hp.pop("n_timesteps", None)
    dtype, _, compress = storage.partition("+")
    cfg = OffPolicyConfig(algorithm="lean-sac", n_timesteps=steps, seed=seed, buffer_size=steps,
                          replay_storage=dtype, replay_compress=compress or "none",
                          **hp)  # fmt: skip
    result = train_offpolicy(ENV, cfg)
    ret = evaluate(result.policy, ENV, seeds=EVAL_SEEDS).return_mean
    measured = None
    ck = result.checkpoint
    if ck is not None and "buffer.compact.records" in ck.arrays:
        import gymnasium as gym

        env = gym.make(ENV)
        buf = CompactReplay(space_spec(env.observation_space), space_spec(env.action_space),
                            steps, Storage.parse(storage))  # fmt: skip
        buf.load(ck.arrays, "buffer.compact.")  # compressed again, chunk by chunk, as it was
        measured = buf.nbytes / buf.size
    return {"kind": "lean", "storage": storage, "seed": seed, "steps": result.steps,
            "train_s": result.wall_s, "return": ret, "measured_b": measured}  # fmt: skip


def sb3_run(storage: str, steps: int) -> dict[str, Any]:
    from rlbudget.sb3.training import SB3Config, train_sb3

    dtype, _, compress = storage.partition("+")
    hp: dict[str, Any] = {"learning_rate": 1e-3, "net_arch": [64, 64], "learning_starts": 100}
    if storage != "float32":
        hp.update(replay_storage=dtype, replay_compress=compress or "none")
    cfg = SB3Config("sac", steps, 0, hp, 1, 1, steps)
    t0 = time.perf_counter()
    result = train_sb3(ENV, cfg)
    return {"kind": "sb3", "storage": storage, "seed": 0, "steps": result.steps,
            "train_s": time.perf_counter() - t0}  # fmt: skip


def buffer_costs(storages: list[str], size: int, rounds: int = 5) -> list[dict[str, Any]]:
    """µs to add one transition and to sample a batch of 256, per storage, for a buffer of
    ``size`` Pendulum transitions (random actions); the storages take turns each round, so
    that the machine's load falls on all alike; the median round is kept. float32 is
    lean-sac's own buffer: five float32 arrays, torch ``index_select``."""
    import gymnasium as gym
    import torch

    from rlbudget.replay import CompactReplay, Storage
    from rlbudget.sb3.replay import space_spec

    env = gym.make(ENV)
    obs, _ = env.reset(seed=0)
    data = []
    for _ in range(size):
        a = env.action_space.sample()
        nxt, r, term, trunc, _ = env.step(a)
        data.append((obs, nxt, a / 2, r, term, trunc))
        obs = nxt if not (term or trunc) else env.reset()[0]
    o_spec, a_spec = space_spec(env.observation_space), space_spec(env.action_space)
    times: dict[str, dict[str, list[float]]] = {s: {"add": [], "sample": []} for s in storages}
    idx = torch.randint(size, (256,), generator=torch.Generator().manual_seed(0))
    for _ in range(rounds):
        for s in storages:
            t0 = time.perf_counter()
            if s == "float32":
                arrays = {k: np.zeros((size, n), np.float32) for k, n in
                          (("obs", 3), ("action", 1), ("reward", 1), ("next_obs", 3),
                           ("done", 1))}  # fmt: skip
                for i, (o, n, a, r, d, _) in enumerate(data):
                    arrays["obs"][i], arrays["action"][i], arrays["reward"][i] = o, a, r
                    arrays["next_obs"][i], arrays["done"][i] = n, float(d)
                views = [torch.from_numpy(v) for v in arrays.values()]
                t1 = time.perf_counter()
                for _ in range(100):
                    tuple(v.index_select(0, idx) for v in views)
            else:
                buf = CompactReplay(o_spec, a_spec, size, Storage.parse(s))
                for tr in data:
                    buf.add(*tr)
                t1 = time.perf_counter()
                assert buf.size == size
                for _ in range(100):
                    b = buf.gather(idx.numpy())
                    tuple(torch.from_numpy(v.reshape(len(v), -1)) for v in b[:5])
            t2 = time.perf_counter()
            times[s]["add"].append((t1 - t0) / size * 1e6)
            times[s]["sample"].append((t2 - t1) / 100 * 1e6)
    return [{"kind": "cost", "storage": s, "size": size,
             "add_us": statistics.median(times[s]["add"]),
             "sample_us": statistics.median(times[s]["sample"])} for s in storages]  # fmt: skip


def measured_bytes(lean: list[dict[str, Any]], storages: list[str]) -> dict[str, float]:
    """Median measured bytes per transition per storage (float32: SB3's arrays)."""
    out: dict[str, float] = {"float32": SB3_FLOAT32_BYTES}
    for s in storages:
        values = [r["measured_b"] for r in lean if r["storage"] == s and r["measured_b"]]
        if values:
            out[s] = statistics.median(values)
    return out


def tables(runs: list[dict[str, Any]], ram: int, storages: list[str]) -> str:
    from rlbudget import units

    lean = [r for r in runs if r["kind"] == "lean"]
    measured = measured_bytes(lean, storages)
    fits = fit_rows(ram, storages, measured)
    base = next(f for f in fits if f["storage"] == "float32")
    out = [f"training.ram {units.format_bytes(ram)} (margin 25 %, SB3 SAC 64-64 process): "
           f"room for the buffer {units.format_bytes(base['room_bytes'])}", "",
           "| storage | B/transition stored | estimated | measured | fit (estimate) | "
           "fit (measured) | × float32 |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for f in fits:
        m = f["measured_b"]
        ratio = f["fit_measured"] / base["fit_measured"] if f["fit_measured"] else None
        shown = "" if ratio is None else f"{ratio:.2f}×"
        out.append(f"| {f['storage']} | {f['stored_b']} | {f['estimate_b']:g} | "
                   f"{'' if m is None else f'{m:.2f}'} | {f['fit_estimate']:,} | "
                   f"{f['fit_measured'] or 0:,} | {shown} |")  # fmt: skip
    out += ["", f"lean-sac 64-64 on {ENV}, return over 20 seeded episodes after the steps; "
            "steps/s while training", "",
            "| storage | return (median) | each seed | steps/s (median) | × float32 speed | "
            "SB3 SAC steps/s | × float32 |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    speed = {s: statistics.median(r["steps"] / r["train_s"] for r in lean if r["storage"] == s)
             for s in storages if any(r["storage"] == s for r in lean)}  # fmt: skip
    sb3 = {r["storage"]: r["steps"] / r["train_s"] for r in runs if r["kind"] == "sb3"}
    for s in storages:
        rs = [r for r in lean if r["storage"] == s]
        if not rs:
            continue
        rets = [r["return"] for r in rs]
        b = sb3.get(s)
        b0 = sb3.get("float32")
        out.append(f"| {s} | {statistics.median(rets):.1f} | "
                   f"{', '.join(f'{x:.1f}' for x in rets)} | {speed[s]:.0f} | "
                   f"{speed[s] / speed['float32']:.2f} | {'' if b is None else f'{b:.0f}'} | "
                   f"{'' if b is None or b0 is None else f'{b / b0:.2f}'} |")  # fmt: skip
    costs = [r for r in runs if r["kind"] == "cost"]
    if costs:
        f32 = {c["size"]: c for c in costs if c["storage"] == "float32"}
        out += ["", "Buffer cost alone (µs per transition added, per batch of 256 sampled and "
                "decoded to float32 tensors; median of 5 interleaved rounds)", "",
                "| storage | buffer size | add µs | sample µs | × float32 sample |",
                "|---|---|---|---|---|"]  # fmt: skip
        for c in costs:
            base = f32.get(c["size"])
            ratio = f"{c['sample_us'] / base['sample_us']:.1f}" if base else ""
            out.append(f"| {c['storage']} | {c['size']:,} | {c['add_us']:.1f} | "
                       f"{c['sample_us']:.0f} | {ratio} |")  # fmt: skip
    return "\n".join(out)


def chart(runs: list[dict[str, Any]], ram: int, storages: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lean = [r for r in runs if r["kind"] == "lean"]
    measured = measured_bytes(lean, storages)
    fits = {f["storage"]: f["fit_measured"] or 0 for f in fit_rows(ram, storages, measured)}
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(14, 3.6))
    names = [s for s in storages if s in fits]
    a.barh(names, [fits[s] / 1e3 for s in names], color="C0")
    a.set_xlabel("thousand transitions in the same training.ram (measured)")
    for i, s in enumerate(names):
        rets = [r["return"] for r in lean if r["storage"] == s]
        b.scatter(rets, [i] * len(rets), color="C1")
        for k, size in enumerate(sorted({r["size"] for r in runs if r["kind"] == "cost"})):
            us = [r["sample_us"] / 1e3 for r in runs if r["kind"] == "cost"
                  and r["storage"] == s and r["size"] == size]  # fmt: skip
            c.scatter(us, [i] * len(us), color=f"C{2 + k}",
                      label=f"{size:,} held" if i == 0 else None)  # fmt: skip
    b.set_yticks(range(len(names)), names)
    c.set_yticks(range(len(names)), names)
    b.set_xlabel("return after training (each seed)")
    c.set_xlabel("ms to sample a batch of 256 (interleaved rounds)")
    c.set_xscale("log")
    c.legend(fontsize=8)
    a.set_title(f"{ENV}: what fits")
    b.set_title("what it learns")
    c.set_title("what it costs")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    from rlbudget import units

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed-list", default=None,
                        help="these seeds, not 0..seeds-1 (e.g. a process per seed)")  # fmt: skip
    parser.add_argument("--steps", type=int, default=15_000)
    parser.add_argument("--sb3-steps", type=int, default=2_000)
    parser.add_argument("--cost-sizes", default="4000,100000",
                        help="buffer sizes of the add/sample timing ('' : none)")  # fmt: skip
    parser.add_argument("--ram", default="600MiB")
    parser.add_argument("--storages", default=",".join(STORAGES))
    parser.add_argument("--png", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="append every run here")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="no runs: the tables (and --png) of a file --json wrote")  # fmt: skip
    args = parser.parse_args()
    ram = units.parse_bytes(args.ram)
    storages = args.storages.split(",")
    if "float32" not in storages:
        sys.exit("--storages must include float32 (the baseline)")
    runs: list[dict[str, Any]] = []
    if args.from_json is not None:
        runs = [json.loads(x) for x in args.from_json.read_text().splitlines() if x.strip()]
    else:

        def keep(run: dict[str, Any]) -> None:
            runs.append(run)
            print(json.dumps(run), file=sys.stderr, flush=True)
            if args.json is not None:
                with args.json.open("a") as f:
                    f.write(json.dumps(run) + "\n")

        seeds = range(args.seeds)
        if args.seed_list:
            seeds = [int(x) for x in args.seed_list.split(",")]  # type: ignore[assignment]
        for seed in seeds:
            for s in storages:
                keep(lean_run(s, seed, args.steps))
        if args.sb3_steps:
            for s in storages:
                keep(sb3_run(s, args.sb3_steps))
        for size in [int(x) for x in args.cost_sizes.split(",") if x]:
            for run in buffer_costs(storages, size):
                keep(run)
    print(tables(runs, ram, storages))
    if args.png is not None:
        chart(runs, ram, storages, args.png)


if __name__ == "__main__":
    main()
