"""Warm start of an SB3 actor by weight copy (``--init`` with the actor's architecture)
and the behaviour-cloning fallback for another one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlbudget.agents.warmstart import pretrain_sb3
from rlbudget.policy import save_policy

CASES = [("sac", "Pendulum-v1"), ("td3", "Pendulum-v1"), ("ppo", "CartPole-v1"),
         ("ppo", "Pendulum-v1")]  # fmt: skip


def _model(algorithm: str, env_id: str, seed: int, net_arch: list[int]) -> object:
    import stable_baselines3 as sb3

    cls = {"sac": sb3.SAC, "td3": sb3.TD3, "ppo": sb3.PPO}[algorithm]
    return cls("MlpPolicy", env_id, seed=seed, device="cpu", policy_kwargs={"net_arch": net_arch})


@pytest.mark.parametrize(("algorithm", "env_id"), CASES)
def test_matching_architecture_copies_the_actor(tmp_path: Path, algorithm: str,
                                                env_id: str) -> None:  # fmt: skip
    from rlbudget.sb3.convert import from_model

    # the init policy: another SB3 model's actor (seed 1), read as an rlbudget policy
    init = from_model(_model(algorithm, env_id, 1, [32, 32]))
    path = save_policy(init, tmp_path / "init")
    model = _model(algorithm, env_id, 2, [32, 32])  # the run's fresh model: other weights
    states = np.random.default_rng(5).uniform(-1, 1, (50, init.observation_space.dim))
    states = states.astype(np.float32)
    before = model.predict(states, deterministic=True)[0]  # type: ignore[attr-defined]
    assert not np.allclose(before, init.act(states), atol=1e-3)  # they differ to begin with
    how = pretrain_sb3(model, algorithm, str(path), env_id, seed=0)
    assert how == "weights copied (same architecture)"
    after = model.predict(states, deterministic=True)[0]  # type: ignore[attr-defined]
    np.testing.assert_allclose(np.asarray(after).reshape(np.shape(init.act(states))),
                               init.act(states), atol=1e-6)  # fmt: skip
    if algorithm == "td3":  # the target actor starts as the actor
        policy = model.policy  # type: ignore[attr-defined]
        for a, b in zip(policy.actor.parameters(), policy.actor_target.parameters(), strict=True):
            assert bool((a == b).all())


@pytest.mark.slow  # 1,000 Adam steps of cloning: minutes on a loaded 2-core machine
def test_other_architecture_falls_back_to_cloning(tmp_path: Path) -> None:
    from rlbudget.sb3.convert import from_model

    init = from_model(_model("sac", "Pendulum-v1", 1, [16]))
    path = save_policy(init, tmp_path / "init")
    model = _model("sac", "Pendulum-v1", 2, [32, 32])
    how = pretrain_sb3(model, "sac", str(path), "Pendulum-v1", seed=0)
    assert how == "actor behaviour-cloned on 2,000 states (another architecture)"
