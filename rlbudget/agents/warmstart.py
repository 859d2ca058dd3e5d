"""Warm start (``train --init POLICY``): a built-in agent begins from an existing policy.

Sim-to-real in one line: train on an env, then fine-tune on the same env with other
physics (``--env-kwargs``), starting from the first run's policy instead of from zero.

- Tabular agents (q-learning, sarsa, expected-sarsa, dyna-q): the Q table and, for Box
  observations, its discretizer (the grid the table was learned on) are copied.
- Sarsa(λ): the tile coder (its box, tilings, tiles, hashing) and the weights are copied.

The init policy must have the env's spaces and the body the agent learns (a ``table``
for tabular agents, a tile-coded ``linear`` for Sarsa(λ)), in float32 (not int8 or
packed: compress after training); otherwise one line says what would fit. Stable-
Baselines3 algorithms are not warm-started yet (the error says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlbudget.errors import PolicyError
from rlbudget.policy.model import Discretize, Linear, Policy, Table, TileCode

TABULAR = ("q-learning", "sarsa", "expected-sarsa", "dyna-q")
WARM = (*TABULAR, "sarsa-lambda")


def load_init(path: str, env_id: str) -> Policy:
    """The init policy (a policy folder), its spaces those of ``env_id``.

    :raises PolicyError: no policy there, or spaces that differ from the env's.
    """
    from rlbudget.envs import make_env, space_mismatch
    from rlbudget.policy.io import load_policy

    try:
        policy = load_policy(path)
    except PolicyError as exc:
        raise PolicyError(f"--init {exc}") from None
    env = make_env(env_id)
    try:
        problem = space_mismatch(env, env_id, policy.observation_space, policy.action_space,
                                 "the --init policy's")  # fmt: skip
    finally:
        env.close()
    if problem:
        raise PolicyError(f"--init {path}: {problem}; start from a policy for {env_id}")
    return policy


def check_init(algorithm: str, env_id: str, path: str) -> None:
    """Refuse an init policy this algorithm cannot start from (one line, before training).

    :raises PolicyError: an algorithm without warm start, other spaces, another body.
    """
    if algorithm not in WARM:
        raise PolicyError(
            f"--init: {algorithm} cannot start from a policy yet; warm start works for "
            f"{', '.join(WARM)} (for ppo/sac/td3, imitate the policy first: --algo dagger "
            f"--teacher {path})"
        )
    policy = load_init(path, env_id)
    if algorithm in TABULAR:
        _table(policy, path, algorithm)
    else:
        _tiles(policy, path)


def _table(policy: Policy, path: str, algorithm: str) -> Table:
    body = policy.body
    if not isinstance(body, Table):
        raise PolicyError(f"--init {path}: {algorithm} starts from a table policy (float32 "
                          f"values); this one has a {body.kind} body")  # fmt: skip
    return body


def _tiles(policy: Policy, path: str) -> tuple[TileCode, Linear]:
    body = policy.body
    coder = policy.preprocess[0] if len(policy.preprocess) == 1 else None
    if not isinstance(body, Linear) or body.scale is not None or not isinstance(coder, TileCode):
        raise PolicyError(
            f"--init {path}: sarsa-lambda starts from a float32 tile-coded linear policy (as "
            f"it trains); this one has a {body.kind} body"
        )
    return coder, body


@dataclass(frozen=True)
class WarmTable:
    """What a tabular agent starts from: its discretizer (Box observations) and Q."""

    discretize: Discretize | None
    values: np.ndarray


def warm_table(path: str, env_id: str, algorithm: str, n_states: int | None) -> WarmTable:
    """The init policy's table (and grid), checked against the agent's state count.

    :param n_states: the agent's states for Discrete observations (None: Box, the init
        policy's grid decides).
    """
    policy = load_init(path, env_id)
    table = _table(policy, path, algorithm)
    disc = next((p for p in policy.preprocess if isinstance(p, Discretize)), None)
    values = np.asarray(table.values, dtype=np.float64)
    if n_states is not None and values.shape[0] != n_states:
        raise PolicyError(f"--init {path}: its table has {values.shape[0]} states, the env "
                          f"{n_states}")  # fmt: skip
    return WarmTable(disc, values)


def warm_tiles(path: str, env_id: str) -> tuple[TileCode, np.ndarray]:
    """The init policy's tile coder and weights ``[features, actions]`` (float64)."""
    coder, body = _tiles(load_init(path, env_id), path)
    return coder, np.asarray(body.W, dtype=np.float64)
