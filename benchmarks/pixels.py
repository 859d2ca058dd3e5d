"""Image observations: SB3's NatureCNN against rlbudget's depthwise-separable encoder on
PixelCartPole-v0 (issue 22.4).

    python benchmarks/pixels.py [--steps 100000] [--seeds 0 1 2] [--episodes 20]
                                [--out benchmarks/results/pixels]
    python benchmarks/pixels.py --merge OUT0 OUT1 OUT2 --out OUT   # seeds run apart

Each (encoder, seed) trains PPO for the same ``--steps`` env steps with the same
hyperparameters (``rlbudget/data/hyperparams/ppo.yaml``, entry
``rlbudget.pixels.env:PixelCartPole-v0``: RL Zoo's tuned CartPole-v1 settings; only
``features_extractor`` differs), one torch thread, then plays ``--episodes`` greedy
episodes on seeds apart from training's. Per encoder the table gives:

- MACs per decision: the actor's path (encoder + action layer), counted by hand
  (:func:`rlbudget.pixels.encoder.encoder_macs`) and, where the trained model converts
  to rlbudget's policy (:func:`rlbudget.sb3.convert.from_model`), the policy's own count
  beside it;
- parameters of the actor's path and its flash as float32 (4 bytes each);
- the return: the mean over seeds of each seed's greedy mean, with the 95 % interval
  over seeds; wall time of training (the mean over seeds).

``depthwise-wide`` is the depthwise encoder with twice the channels (16, 32, 64, and 128
features). Target (issue 22.4): the depthwise encoder ≥ 5× fewer MACs than NatureCNN at ≥ 95 % of
its return. Writes ``OUT/results.json`` and ``OUT/pixels.png`` (training return against
env steps, mean over seeds) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENV = "rlbudget.pixels.env:PixelCartPole-v0"
ENCODERS = ("nature", "depthwise", "depthwise-wide")


def actor_counts(encoder: str, n_actions: int) -> tuple[int, int]:
    """(MACs, parameters) of the actor's path, by hand: encoder layers + the action layer."""
    from rlbudget.pixels.encoder import encoder_macs
    from rlbudget.pixels.env import FRAMES, SIZE

    layers = encoder_macs(encoder, (FRAMES, SIZE, SIZE))
    features = layers[-1].out_shape[0]
    macs = sum(c.macs for c in layers) + features * n_actions
    params = sum(c.params for c in layers) + (features + 1) * n_actions
    return macs, params


def policy_macs(model: Any) -> tuple[int | None, str]:
    """The converted policy's own MAC count, or None and why it did not convert."""
    try:
        from rlbudget.sb3.convert import from_model

        policy = from_model(model, None)
    except Exception as err:  # report, not fail: the table says why
        return None, f"{type(err).__name__}: {err}"
    return int(policy.macs), ""


def make_model(encoder: str, seed: int) -> Any:
    """PPO with ``encoder`` on PixelCartPole with the ppo.yaml entry's settings."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    import rlbudget.pixels.env  # noqa: F401  (registers the env)
    from rlbudget.hyperparams import get_hyperparams
    from rlbudget.sb3.training import SB3Config, model_kwargs

    hp = dict(get_hyperparams("ppo", ENV).params)
    hp["features_extractor"] = encoder
    n_envs = int(hp.pop("n_envs", 1))
    env = make_vec_env(ENV, n_envs=n_envs, seed=seed)
    cfg = SB3Config(algorithm="ppo", seed=seed, hyperparameters=hp)
    return PPO("MlpPolicy", env, seed=seed, device="cpu", **model_kwargs(cfg, None))


def train_one(encoder: str, seed: int, steps: int, episodes: int, out: Path) -> dict[str, Any]:
    """Train PPO with ``encoder`` for ``steps``, then evaluate greedily; the policy's
    weights go to ``out/ENCODER-SEED.pt`` (a state dict: ``torch.load(weights_only=True)``)."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    torch.set_num_threads(1)
    model = make_model(encoder, seed)
    curve: list[tuple[int, float]] = []

    class Log(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    curve.append((int(self.num_timesteps), float(info["episode"]["r"])))
            return True

    t0 = time.perf_counter()
    model.learn(steps, callback=Log())
    wall = time.perf_counter() - t0
    torch.save(model.policy.state_dict(), out / f"{encoder}-{seed}.pt")
    test_env = make_vec_env(ENV, n_envs=1, seed=10_000 + seed)
    returns, _ = evaluate_policy(model, test_env, n_eval_episodes=episodes, deterministic=True,
                                 return_episode_rewards=True)  # fmt: skip
    macs, params = actor_counts(encoder, int(model.action_space.n))
    converted, why = policy_macs(model)
    return {"encoder": encoder, "seed": seed, "steps": int(model.num_timesteps),
            "wall_s": wall, "return": float(np.mean(returns)), "returns": list(map(float, returns)),
            "macs": macs, "params": params, "policy_macs": converted, "not_converted": why,
            "curve": curve}  # fmt: skip


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per encoder: counts, the mean return over seeds with its 95 % interval, wall time."""
    from rlbudget.stats import mean_ci95

    out = {}
    for enc in ENCODERS:
        mine = [r for r in rows if r["encoder"] == enc]
        if not mine:
            continue
        mean, half = mean_ci95([r["return"] for r in mine])
        out[enc] = {"macs": mine[0]["macs"], "params": mine[0]["params"],
                    "policy_macs": mine[0]["policy_macs"], "return": mean, "ci95": half,
                    "wall_s": statistics.mean(r["wall_s"] for r in mine),
                    "seeds": len(mine), "steps": mine[0]["steps"]}  # fmt: skip
    return out


def table(summary: dict[str, dict[str, Any]]) -> str:
    lines = ["| encoder | MACs / decision (by hand) | policy's count | parameters | flash fp32 "
             "| return (95 % CI over seeds) | train wall s | seeds × steps |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for enc, s in summary.items():
        ci = f" ± {s['ci95']:.1f}" if s["ci95"] is not None else ""
        pm = f"{s['policy_macs']:,}" if s["policy_macs"] is not None else "not converted"
        lines.append(f"| {enc} | {s['macs']:,} | {pm} | {s['params']:,} "
                     f"| {s['params'] * 4 / 1024:,.1f} KiB | {s['return']:.1f}{ci} "
                     f"| {s['wall_s']:.0f} | {s['seeds']} × {s['steps']:,} |")  # fmt: skip
    n = summary.get("nature")
    for enc, d in summary.items():
        if n is None or enc == "nature":
            continue
        fewer = n["macs"] / d["macs"]
        kept = d["return"] / n["return"] if n["return"] else float("nan")
        met = "met" if fewer >= 5 and kept >= 0.95 else "not met"
        lines.append(f"\n{enc}: {fewer:.1f}× fewer MACs, {kept:.0%} of NatureCNN's return "
                     f"(target ≥ 5× at ≥ 95 %: {met}); training {n['wall_s'] / d['wall_s']:.1f}× "
                     "faster.")  # fmt: skip
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], summary: dict[str, dict[str, Any]], path: Path) -> None:
    """Training return against env steps (each seed's episodes binned, then the mean over
    seeds), and MACs per decision on a log axis."""
    from rlbudget.charts import figure, log_axis, save, target_line, wrap

    fig, (ax, bars) = figure(10, 4, ncols=2)
    steps = max(r["steps"] for r in rows)
    edges = np.linspace(0, steps, 21)
    for enc in summary:
        per_seed = []
        for r in (r for r in rows if r["encoder"] == enc):
            t = np.array([c[0] for c in r["curve"]] or [0])
            g = np.array([c[1] for c in r["curve"]] or [np.nan])
            idx = np.digitize(t, edges[1:-1])
            per_seed.append([g[idx == i].mean() if (idx == i).any() else np.nan
                             for i in range(len(edges) - 1)])  # fmt: skip
        centres = (edges[:-1] + edges[1:]) / 2
        ax.plot(centres, np.nanmean(np.array(per_seed), axis=0), label=enc)
    target_line(ax, 475.0)
    ax.set_xlabel("env steps")
    ax.set_ylabel("training episode return (mean over seeds)")
    ax.set_title(wrap("PPO on PixelCartPole-v0 (2 × 40 × 40 uint8)", 45))
    ax.legend()
    names = list(summary)
    bars.bar(names, [summary[n]["macs"] for n in names], color=[f"C{i}" for i in range(len(names))])
    bars.set_yscale("log")
    log_axis(bars, "y")
    bars.set_ylabel("MACs per decision (actor)")
    bars.set_title(wrap("MACs per decision", 45))
    save(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=ENCODERS)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pixels")
    ap.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=[],
        help="results folders of runs made apart (e.g. one per seed) to combine",
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for folder in args.merge:
        rows += json.loads((folder / "results.json").read_text(encoding="utf-8"))
    for seed in [] if args.merge else args.seeds:
        for enc in args.encoders:
            r = train_one(enc, seed, args.steps, args.episodes, args.out)
            rows.append(r)
            print(f"{enc} seed {seed}: return {r['return']:.1f}, {r['wall_s']:.0f} s"
                  + (f" (not converted: {r['not_converted']})" if r["not_converted"] else ""),
                  flush=True)  # fmt: skip
            (args.out / "results.json").write_text(json.dumps(rows), encoding="utf-8")
    (args.out / "results.json").write_text(json.dumps(rows), encoding="utf-8")
    summary = summarize(rows)
    print(table(summary))
    plot(rows, summary, args.out / "pixels.png")


if __name__ == "__main__":
    main()
