"""After the planner reaches the target: check it on fresh episodes, then distil the student
from it with no more env steps (issue 17: "the planner is what is trained").

- :func:`planner_returns`: the planner's returns on fresh evaluation episodes (seeded, so
  the int8 student is compared on the same starts: a paired comparison). As SAC's
  evaluations, these episodes are not training steps: nothing learns from them.
- :func:`distil`: DAgger in the learned model (Ross et al. 2011, with the model in place
  of the env). The final planner relabels the real states it visited; then, round after
  round, the student acts in the ensemble from real start states (``env.reset()`` only:
  no env step), the planner labels every state the student reaches, the student refits on
  everything labelled so far, and its int8 version (:func:`rlbudget.compress.quantize.
  quantize_int8`, the deployed artefact) plays the planner's evaluation episodes. The
  rounds stop when it keeps ``distill_keep`` of the planner's return (:func:`kept`), or
  after ``distill_rounds``; the best student of the rounds is the one kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rlbudget.agents.model_based.ensemble import Ensemble
from rlbudget.agents.model_based.planner import Planner
from rlbudget.agents.model_based.student import Student
from rlbudget.errors import TrainingError

Array = np.ndarray


def kept(planner: float, student: float) -> float:
    """How much of the planner's return a student keeps: student / planner for positive
    returns, planner / student for negative ones (Pendulum's costs), so 0.95 means at
    most 5 % worse either way.

    >>> kept(-150.0, -157.0) > 0.95, kept(100.0, 94.0)
    (True, 0.94)
    """
    if planner < 0 and student < 0:
        return planner / student
    if planner < 0 <= student:
        return 1.0  # better than the planner
    return student / planner if planner else math.nan


def planner_returns(planner: Planner, env_id: str, seeds: Sequence[int],
                    gym_packages: Sequence[str] = ()) -> list[float]:  # fmt: skip
    """The planner's return on one fresh episode per seed (a fresh warm start each)."""
    from rlbudget.envs import make_env

    env = make_env(env_id, gym_packages=gym_packages)
    out = []
    try:
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            planner.reset()
            total, done = 0.0, False
            while not done:
                obs, r, terminated, truncated, _ = env.step(
                    planner.act(np.asarray(obs, np.float32).ravel())
                )
                total += float(r)
                done = bool(terminated or truncated)
            out.append(total)
    finally:
        env.close()
        planner.reset()
    return out


def start_states(env_id: str, seeds: Sequence[int], gym_packages: Sequence[str] = ()) -> Array:
    """Real start states: one ``env.reset(seed)`` per seed, no step taken."""
    from rlbudget.envs import make_env

    env = make_env(env_id, gym_packages=gym_packages)
    try:
        return np.stack([np.asarray(env.reset(seed=s)[0], np.float32).ravel() for s in seeds])
    finally:
        env.close()


def model_rollout(ens: Ensemble, student: Student, start: Array, steps: int, member: int,
                  obs_low: Array, obs_high: Array,
                  encode: Callable[[Array], Array]) -> Array:  # fmt: skip
    """The states the student reaches in ensemble member ``member`` from ``start``
    (``[steps, obs_dim]``, ``start`` first; each clipped to the observation bounds)."""
    states = [start]
    s = start
    for _ in range(steps - 1):
        a = student.actions(s[None])[0]
        x = np.concatenate([s, encode(a)])[None].astype(np.float32)
        delta = ens.predict(x)[member, 0, : ens.obs_dim]
        s = np.clip(s + delta, obs_low, obs_high).astype(np.float32)
        states.append(s)
    return np.stack(states)


def distil(*, planner: Planner, ens: Ensemble, student: Student, obs: list[Array],
           labels: list[Any], cfg: Any, env_id: str, eval_seeds: Sequence[int],
           planner_return: float, target: float | None, rng: np.random.Generator,
           episode_steps: int, encode: Callable[[Array], Array],
           gym_packages: Sequence[str] = ()) -> dict[str, Any]:  # fmt: skip
    """DAgger in the model (see the module docstring). ``obs``/``labels``: the real states
    the planner visited and its labels (the last ``final_relabel`` are relabelled by the
    final planner, in place). Returns the figures for summary.json."""
    from rlbudget.compress.quantize import quantize_int8
    from rlbudget.profile.evaluate import evaluate

    n = min(cfg.final_relabel or len(labels), len(labels))
    planner.reset()
    for i in range(len(labels) - n, len(labels)):
        labels[i] = planner.label(obs[i])
    data_obs = [np.asarray(o, np.float32) for o in obs[len(obs) - n :]]
    data_lab = list(labels[len(labels) - n :])
    horizon = cfg.distill_horizon or episode_steps
    assert planner.obs_low is not None and planner.obs_high is not None
    o_low, o_high = planner.obs_low.numpy(), planner.obs_high.numpy()
    best: tuple[float, dict[str, Array], float] | None = None
    history = []
    for round_ in range(cfg.distill_rounds + 1):
        loss = student.fit(np.asarray(data_obs, np.float32), np.asarray(data_lab),
                           updates=cfg.student_updates, batch_size=cfg.student_batch_size,
                           rng=rng)  # fmt: skip
        if not math.isfinite(loss):
            raise TrainingError(f"pets: the student's loss became {loss} while distilling "
                                "(lower student_lr)")  # fmt: skip
        policy = student.policy({})
        int8 = quantize_int8(policy, np.asarray(data_obs, np.float32))
        ret = evaluate(int8, env_id, seeds=list(eval_seeds), gym_packages=gym_packages)
        share = kept(planner_return, ret.return_mean)
        history.append(ret.return_mean)
        if best is None or share > best[0]:
            best = (share, student.arrays(), ret.return_mean)
        good = share >= cfg.distill_keep and (target is None or ret.return_mean >= target)
        if good or round_ == cfg.distill_rounds:
            break
        # DAgger round: the student acts in the model, the planner labels what it reaches
        seeds = [int(s) for s in rng.integers(0, 2**31, cfg.distill_rollouts)]
        starts = start_states(env_id, seeds, gym_packages)
        for k, s0 in enumerate(starts):
            member = int(rng.integers(ens.members)) if k else 0
            states = model_rollout(ens, student, s0, horizon, member, o_low, o_high, encode)
            planner.reset()
            for s in states:
                data_obs.append(s)
                data_lab.append(planner.label(s))
        planner.reset()
    assert best is not None
    student.load_arrays(best[1])
    fp32 = evaluate(student.policy({}), env_id, seeds=list(eval_seeds), gym_packages=gym_packages)
    return {"student_return": fp32.return_mean, "int8_return": best[2], "int8_kept": best[0],
            "distill_rounds": len(history) - 1, "distill_int8_returns": history,
            "distill_labels": len(data_lab)}  # fmt: skip
