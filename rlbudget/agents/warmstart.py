"""Warm start (``train --init POLICY``): a built-in agent begins from an existing policy.

Sim-to-real in one line: train on an env, then fine-tune on the same env with other
physics (``--env-kwargs``), starting from the first run's policy instead of from zero.

- Tabular agents (q-learning, sarsa, expected-sarsa, dyna-q): the Q table and, for Box
  observations, its discretizer (the grid the table was learned on) are copied.
- Sarsa(λ): the tile coder (its box, tilings, tiles, hashing) and the weights are copied.
- Stable-Baselines3 PPO, SAC, TD3 (:func:`pretrain_sb3`): where the init policy has the
  actor's architecture (the layers, widths, activation, head and preprocessing that
  :func:`rlbudget.sb3.convert.from_model` reads from the fresh model), its weights are
  copied into the actor; otherwise the actor is behaviour-cloned from the init policy (any
  body: its actions on the states it visits in :data:`PRETRAIN_STEPS` env steps, which are
  not counted against the run's budget). The critic starts fresh either way; the run's
  summary says which happened (``extra.warm_start``).

The init policy must have the env's spaces and the body the agent learns (a ``table``
for tabular agents, a tile-coded ``linear`` for Sarsa(λ)), in float32 (not int8 or
packed: compress after training); otherwise one line says what would fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlbudget.errors import PolicyError
from rlbudget.policy.model import MLP, Discretize, Linear, Policy, Table, TileCode

TABULAR = ("q-learning", "sarsa", "expected-sarsa", "dyna-q")
SB3 = ("ppo", "sac", "td3")
WARM = (*TABULAR, "sarsa-lambda", *SB3)
PRETRAIN_STEPS = 2_000  # states the init policy visits to clone an SB3 actor from
PRETRAIN_UPDATES = 1_000  # Adam steps of the actor's cloning


def load_init(path: str, env_id: str) -> Policy:
    """The init policy (a policy folder), its spaces those of ``env_id``.

    :raises PolicyError: no policy there, or spaces that differ from the env's.
    """
    from rlbudget.envs import env_mismatch
    from rlbudget.policy.io import load_policy

    try:
        policy = load_policy(path)
    except PolicyError as exc:
        raise PolicyError(f"--init {exc}") from None
    problem = env_mismatch(env_id, policy.observation_space, policy.action_space,
                           "the --init policy's")  # fmt: skip
    if problem:
        raise PolicyError(f"--init {path}: {problem}; start from a policy for {env_id}")
    return policy


def check_init(algorithm: str, env_id: str, path: str, params: Mapping[str, Any]) -> None:
    """Refuse an init policy this algorithm cannot start from (one line, before training).

    :param params: the run's hyperparameters (Sarsa(λ): its tilings must be the policy's).
    :raises PolicyError: an algorithm without warm start, other spaces, another body.
    """
    if algorithm not in WARM:
        raise PolicyError(
            f"--init: {algorithm} cannot start from a policy yet; warm start works for "
            f"{', '.join(WARM)} (or imitate the policy: --algo dagger --teacher {path})"
        )
    policy = load_init(path, env_id)
    if algorithm in TABULAR:
        _table(policy, path, algorithm)
    elif algorithm == "sarsa-lambda":
        coder, _ = _tiles(policy, path)
        tilings, tiles = int(params.get("tilings", 8)), int(params.get("tiles_per_dim", 8))
        if (coder.tilings, coder.tiles_per_dim) != (tilings, tiles):
            raise PolicyError(
                f"--init {path}: its tile coder has {coder.tilings} tilings × "
                f"{coder.tiles_per_dim} tiles, this run {tilings} × {tiles}; train with "
                f"-p tilings={coder.tilings} -p tiles_per_dim={coder.tiles_per_dim}"
            )


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


def _layout(policy: Policy) -> tuple[Any, ...] | None:
    """What must be equal for a weight copy: preprocessing, layer shapes, dtypes and
    activations, the head and its bounds (None: not an MLP)."""
    body = policy.body
    if not isinstance(body, MLP):
        return None
    head = policy.head
    bounds = tuple(None if a is None else np.asarray(a).tolist() for a in (head.low, head.high))
    return (tuple(type(p).__name__ for p in policy.preprocess),
            tuple((d.W.shape, str(d.W.dtype), d.activation) for d in body.layers),
            head.kind, bounds)  # fmt: skip


def _actor_linears(policy: Any, algorithm: str) -> list[Any]:
    """The actor's ``nn.Linear`` layers in order (what ``from_model`` reads as the body)."""
    import torch

    if algorithm == "ppo":
        modules = [*policy.mlp_extractor.policy_net.modules(), policy.action_net]
    elif algorithm == "sac":
        modules = [*policy.actor.latent_pi.modules(), policy.actor.mu]
    else:
        modules = [*policy.actor.mu.modules()]
    return [m for m in modules if isinstance(m, torch.nn.Linear)]


def copy_sb3_actor(model: Any, algorithm: str, init: Policy) -> bool:
    """Copy ``init``'s MLP into ``model``'s actor when the fresh actor, read as a policy,
    has the same layout; TD3's target actor too. Nothing changes when it has not.

    :return: whether the weights were copied.
    """
    import torch

    from rlbudget.sb3.convert import from_model

    layout = _layout(init)
    if layout is None or layout != _layout(from_model(model)):
        return False
    linears = _actor_linears(model.policy, algorithm)
    assert isinstance(init.body, MLP)
    if len(linears) != len(init.body.layers):
        return False
    with torch.no_grad():
        for module, dense in zip(linears, init.body.layers, strict=True):
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(dense.W.T)))
            module.bias.copy_(torch.from_numpy(np.asarray(dense.b)))
    if algorithm == "td3":
        model.policy.actor_target.load_state_dict(model.policy.actor.state_dict())
    return True


def pretrain_sb3(model: Any, algorithm: str, path: str, env_id: str, seed: int) -> str:
    """Start ``model``'s actor from the init policy: its weights copied where the
    architecture matches (:func:`copy_sb3_actor`), else cloned (PPO: its action
    distribution's log-likelihood of the init policy's actions; SAC/TD3: mean squared error
    of the deterministic action, in SB3's [-1, 1] scale; TD3's target actor is copied after).

    :return: which happened, for the run's summary.
    """
    import torch

    from rlbudget.envs import make_env

    init = load_init(path, env_id)
    if copy_sb3_actor(model, algorithm, init):
        return "weights copied (same architecture)"
    env = make_env(env_id)
    rng = np.random.default_rng(seed)
    states, obs = [], env.reset(seed=seed)[0]
    for _ in range(PRETRAIN_STEPS):
        states.append(np.asarray(obs, dtype=np.float32))
        obs, _, terminated, truncated, _ = env.step(init.act(obs))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    x = np.stack(states)
    labels = np.asarray(init.act(x))
    policy = model.policy
    obs_t = torch.as_tensor(x)
    discrete = init.action_space.kind == "discrete"
    if algorithm == "ppo":
        params = [*policy.mlp_extractor.policy_net.parameters(), *policy.action_net.parameters()]
        y = torch.as_tensor(labels.astype(np.int64 if discrete else np.float32))
    else:
        params = list(policy.actor.parameters())
        y = torch.as_tensor(policy.scale_action(labels.reshape(len(x), -1)).astype(np.float32))
    optimizer = torch.optim.Adam(params, lr=1e-3)
    policy.set_training_mode(True)
    for _ in range(PRETRAIN_UPDATES):
        idx = torch.as_tensor(rng.integers(0, len(x), 256))
        if algorithm == "ppo":
            dist = policy.get_distribution(obs_t[idx])
            loss = -dist.log_prob(y[idx]).mean()
        else:
            out = policy.actor(obs_t[idx], deterministic=True) if algorithm == "sac" \
                else policy.actor(obs_t[idx])  # fmt: skip
            loss = torch.nn.functional.mse_loss(out, y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    policy.set_training_mode(False)
    if algorithm == "td3":
        policy.actor_target.load_state_dict(policy.actor.state_dict())
    return f"actor behaviour-cloned on {len(x):,} states (another architecture)"
