"""The PETS planner's fast path and its options (issue 17): the folded forward pass scores
candidates as the ensemble's own forward pass does, ``replan_every`` optimizes only every
k-th step and acts on that plan in between, kept elites are the best plans, and the final
relabelling pass runs only at the step budget's end.

Tiny settings (2 members, CEM over a few candidates and steps): seconds in all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlbudget.agents.model_based.ensemble import Ensemble
from rlbudget.agents.model_based.pets import PETSConfig, train_pets
from rlbudget.agents.model_based.planner import CEM, Planner

LOW, HIGH = np.array([-2.0], np.float32), np.array([2.0], np.float32)


def _ensemble(seed: int = 0) -> Ensemble:
    """2 members of 16-16 with non-trivial normalizers (so folding them in matters)."""
    rng = np.random.default_rng(seed)
    ens = Ensemble(4, 3, members=2, hidden=[16, 16], seed=seed)
    x = rng.normal([0.3, -0.2, 1.0, 0.5], [0.5, 0.7, 3.0, 1.2], (256, 4)).astype(np.float32)
    y = rng.normal([0.1, 0.0, -0.3, -4.0], [0.2, 0.1, 0.5, 3.0], (256, 4)).astype(np.float32)
    ens.fit(x, y, np.zeros(256), epochs=1, batch_size=32, rng=rng, max_updates=5)
    return ens


def _reference_returns(planner: Planner, obs: np.ndarray, actions: Any) -> Any:
    """Each candidate's return through :meth:`Ensemble.forward` (normalize, predict,
    denormalize, step by step): what the folded pass must reproduce."""
    import torch

    ens = planner.ens
    m, pop = ens.members, actions.shape[0]
    xm, xs = torch.from_numpy(ens.x_scale.mean), torch.from_numpy(ens.x_scale.std)
    ym, ys = torch.from_numpy(ens.y_scale.mean), torch.from_numpy(ens.y_scale.std)
    state = torch.as_tensor(obs).reshape(1, 1, -1).expand(m, pop, -1)
    total = torch.zeros(m, pop)
    with torch.no_grad():
        for t in range(actions.shape[1]):
            x = torch.cat([state, actions[:, t].expand(m, -1, -1)], dim=-1)
            mean, _, _ = ens.forward((x - xm) / xs)
            y = mean * ys + ym
            state = torch.clamp(state + y[..., :-1], planner.obs_low, planner.obs_high)
            total += torch.clamp(y[..., -1], *planner.reward_range)
    return total.mean(dim=0)


def _planner(cem: CEM, seed: int = 0) -> Planner:
    obs_high = np.array([1.0, 1.0, 8.0], np.float32)
    planner = Planner(_ensemble(), cem, low=LOW, high=HIGH, n=None, terminates=False,
                      seed=seed, obs_low=-obs_high, obs_high=obs_high)  # fmt: skip
    planner.reward_range = (-16.0, 0.0)
    return planner


def test_folded_pass_scores_candidates_as_the_ensemble_forward() -> None:
    import torch

    planner = _planner(CEM(horizon=6, population=32))
    obs = np.array([0.6, -0.8, 1.5], np.float32)
    actions = torch.rand(32, 6, 1, generator=torch.Generator().manual_seed(1)) * 4 - 2
    got = planner.returns(obs, actions)
    want = _reference_returns(planner, obs, actions)
    # float32 sums over 6 steps of rewards up to 16 in size: agree to 1e-4 relative
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-3)
    # and the candidates' order (what CEM uses) is the same
    assert torch.equal(torch.argsort(got), torch.argsort(want))


def test_replan_every_optimizes_once_per_k_steps_and_follows_the_plan() -> None:
    planner = _planner(CEM(horizon=5, population=16, iterations=2, replan_every=3))
    calls: list[int] = []
    original = planner.returns

    def counted(obs: np.ndarray, actions: Any) -> Any:
        calls.append(1)
        return original(obs, actions)

    planner.returns = counted  # type: ignore[method-assign]
    obs = np.array([1.0, 0.0, 0.0], np.float32)
    first = planner.act(obs)
    plan = planner.mean.clone()  # the plan after the first step (shifted by one)
    second, third = planner.act(obs), planner.act(obs)
    assert len(calls) == 2  # 2 CEM rounds, once, for three actions
    assert np.array_equal(second, plan[0].numpy()) and np.array_equal(third, plan[1].numpy())
    planner.act(obs)  # the fourth step plans again
    assert len(calls) == 4
    assert first.shape == (1,) and LOW[0] <= first[0] <= HIGH[0]


def test_kept_elites_are_the_best_plans_shifted_to_the_next_decision() -> None:
    import torch

    planner = _planner(CEM(horizon=4, population=20, iterations=2, elite_fraction=0.25,
                           keep_elites=0.4))  # fmt: skip
    obs = np.array([0.0, 1.0, -2.0], np.float32)
    planner.act(obs)
    kept = planner._kept
    assert kept is not None and kept.shape == (2, 4, 1)  # 0.4 × 5 elites
    # shifted by the one step taken: the last step is repeated
    assert torch.equal(kept[:, -1], kept[:, -2])
    # the kept plans join the next decision's first round: none of the first round's
    # fresh candidates can beat them by being re-scored, so the best of that round
    # scores at least what the best kept plan scores
    scores = planner.returns(obs, kept)
    seen: list[float] = []
    original = planner.returns

    def spy(o: np.ndarray, actions: Any) -> Any:
        out = original(o, actions)
        seen.append(float(out.max()))
        return out

    planner.returns = spy  # type: ignore[method-assign,assignment]
    planner.act(obs)
    assert seen[0] >= float(scores.max()) - 1e-4


def test_final_relabel_runs_at_the_step_budget_only() -> None:
    tiny: dict[str, Any] = {
        "ensemble": 2, "model_arch": [16], "model_epochs": 2, "model_max_updates": 20,
        "horizon": 3, "cem_population": 16, "cem_iterations": 2, "random_steps": 200,
        "net_arch": [8], "student_updates": 20, "student_batch_size": 32, "n_timesteps": 400,
    }  # fmt: skip
    plain = train_pets("Pendulum-v1", PETSConfig(**tiny))
    relabel = train_pets("Pendulum-v1", PETSConfig(**tiny, final_relabel=50))
    # the same run up to the budget (same transitions), then a different student
    assert plain.checkpoint is not None and relabel.checkpoint is not None
    assert np.array_equal(plain.checkpoint.arrays["x"], relabel.checkpoint.arrays["x"])
    w = "body.0.W"
    assert not np.array_equal(plain.policy.arrays()[w], relabel.policy.arrays()[w])
    # a stop on request (time, target) keeps the student it had: no pass
    stopped = train_pets("Pendulum-v1", PETSConfig(**tiny, final_relabel=50),
                         should_stop=_stop_at(399))  # fmt: skip
    again = train_pets("Pendulum-v1", PETSConfig(**tiny), should_stop=_stop_at(399))
    assert stopped.steps == again.steps == 399
    assert np.array_equal(stopped.policy.arrays()["body.0.W"], again.policy.arrays()["body.0.W"])


def _stop_at(n: int) -> Any:
    steps = iter(range(10_000))
    return lambda: next(steps) >= n  # should_stop is asked before every step


def test_relabel_per_episode_replaces_one_run_of_labels_inside_the_window() -> None:
    tiny: dict[str, Any] = {
        "ensemble": 2, "model_arch": [16], "model_epochs": 2, "model_max_updates": 20,
        "horizon": 3, "cem_population": 16, "cem_iterations": 2, "random_steps": 200,
        "net_arch": [8], "student_updates": 20, "student_batch_size": 32, "n_timesteps": 400,
        "label_window": 100,
    }  # fmt: skip
    plain = train_pets("Pendulum-v1", PETSConfig(**tiny))
    relabel = train_pets("Pendulum-v1", PETSConfig(**tiny, relabel_per_episode=30))
    assert plain.checkpoint is not None and relabel.checkpoint is not None
    a, b = plain.checkpoint.arrays, relabel.checkpoint.arrays
    # the same states were visited and labelled (the relabelling follows the episode)...
    assert np.array_equal(a["label_obs"], b["label_obs"]) and len(a["labels"]) == 200
    # ...and 30 consecutive labels among the window's last 100 were replaced
    changed = np.flatnonzero(np.any(a["labels"] != b["labels"], axis=-1))
    assert len(changed) == 30 and changed[-1] - changed[0] == 29 and changed[0] >= 100
