"""What the NaN/inf guard costs: CPU µs per env.step with and without
:class:`rlbudget.finite.EnvGuard` (``make_env(..., guard=False)``), min of 5 runs of 20k
random steps, interleaved.

Run: python benchmarks/guard_cost.py
"""

from __future__ import annotations

import time

from rlbudget.envs import make_env

for env_id in ["FrozenLake-v1", "CartPole-v1"]:
    res = {}
    for _ in range(5):
        for g in (False, True):
            env = make_env(env_id, guard=g)
            env.reset(seed=0)
            env.action_space.seed(0)
            acts = [env.action_space.sample() for _ in range(20000)]
            t = time.process_time()
            for a in acts:
                _, _, te, tr, _ = env.step(a)
                if te or tr:
                    env.reset()
            res.setdefault(g, []).append((time.process_time() - t) / len(acts) * 1e6)
    print(
        env_id,
        "plain",
        round(min(res[False]), 2),
        "guarded",
        round(min(res[True]), 2),
        "CPU µs/step",
    )
