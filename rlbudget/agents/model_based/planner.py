"""The planner: the cross-entropy method (CEM) over a short horizon, each candidate action
sequence scored by trajectory sampling through the ensemble (PETS's TS-∞, Chua et al.
2018, §5).

Every candidate is rolled out as ``members × particles_per_member`` particles; each
particle keeps one ensemble member for the whole horizon, so a candidate's score, the mean
predicted return over its particles, averages over the members' disagreement (epistemic
uncertainty). With ``aleatoric`` each particle also samples its member's Gaussian at every
step, as PETS does, averaging 20 particles; with the one particle per member a CPU affords
that noise is not averaged out, so by default a particle follows its member's mean. (Not
settled by measurement: on Pendulum, horizon 25, one run each and with other settings
differing too, returns after 600 / 800 steps were -1,056 / -1,038 with the noise and
-1,319 / -1,379 without.)

CEM keeps the ``elite_fraction`` best candidates, moves the sampling distribution towards
them (``alpha``: the weight kept on the old one, as mbrl-lib's ``CEMOptimizer``), and
after ``iterations`` rounds acts with the first action of the elites' mean; the rest of
that mean warm-starts the next decision. Two of iCEM's changes (Pinneri et al. 2020,
"Sample-efficient cross-entropy method for real-time planning", §3) let a smaller
population and fewer rounds plan as well: ``keep_elites`` (their 0.3) carries that
fraction of a round's elites into the next round, and into the next decision shifted by
the steps taken; and ``replan_every`` k > 1 acts on k steps of one plan.

Two guards keep CEM from exploiting the model where it has no data: predicted states are
clipped to the observation space's finite bounds, and predicted rewards to the range of
rewards seen in real transitions (``reward_range``, set by the trainer after each fit).

Box actions sample a Gaussian per step and dimension, clipped to the bounds; Discrete
actions a categorical per step (the elites' action frequencies become the new
probabilities; the model sees the action one-hot).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlbudget.agents.model_based.ensemble import Ensemble

Array = np.ndarray


@dataclass(frozen=True)
class CEM:
    """CEM's settings (names as mbrl-lib's ``cem.yaml``)."""

    horizon: int = 15
    population: int = 500
    iterations: int = 5
    elite_fraction: float = 0.1
    alpha: float = 0.1
    particles_per_member: int = 1
    aleatoric: bool = False  # sample each member's Gaussian (PETS), else use its mean
    replan_every: int = 1  # optimize every this many steps, acting on the plan between
    keep_elites: float = 0.0  # iCEM: this fraction of the elites joins the next round


class Planner:
    """CEM with TS-∞ through ``ensemble``; :meth:`act` gives one action per observation.

    :param low, high: a Box action space's bounds (None: Discrete with ``n`` actions).
    :param terminates: the env has terminal states (the model's termination head is used:
        a particle stops collecting reward once it predicts termination).
    """

    def __init__(self, ensemble: Ensemble, cem: CEM, *, low: Array | None, high: Array | None,
                 n: int | None, terminates: bool, seed: int, obs_low: Array | None = None,
                 obs_high: Array | None = None) -> None:  # fmt: skip
        import torch

        f32 = torch.float32
        self.obs_low = None if obs_low is None else torch.as_tensor(obs_low, dtype=f32)
        self.obs_high = None if obs_high is None else torch.as_tensor(obs_high, dtype=f32)
        self.reward_range = (-math.inf, math.inf)

        self.ens, self.cem = ensemble, cem
        self.discrete = low is None
        self.n = int(n or 0)
        self.low = None if low is None else torch.as_tensor(low, dtype=torch.float32)
        self.high = None if high is None else torch.as_tensor(high, dtype=torch.float32)
        self.terminates = terminates
        self.gen = torch.Generator().manual_seed(seed)
        self.dim = self.n if self.discrete else int(np.asarray(low).size)
        self.mean = self._initial(cem.horizon)
        self._ahead: list[Any] = []  # planned actions still to take (replan_every > 1)
        self._kept: Any = None  # the last decision's best plans, shifted (keep_elites)
        self._layers: tuple[list[Any], list[Any]] | None = None  # folded, for one decision
        self.last_planned = float("nan")  # the elites' mean predicted return, last decision

    def _initial(self, steps: int) -> Any:
        import torch

        if self.discrete:
            return torch.full((steps, self.n), 1.0 / self.n)
        assert self.low is not None and self.high is not None
        return ((self.low + self.high) / 2).expand(steps, -1).clone()

    def reset(self) -> None:
        """A new episode: forget the warm start."""
        self.mean = self._initial(self.cem.horizon)
        self._ahead, self._kept = [], None

    def _sample(self, mean: Any, std: Any) -> Any:
        """``population`` candidates: ``[population, horizon, dim]`` (Discrete: one-hot)."""
        import torch

        pop, h = self.cem.population, self.cem.horizon
        if self.discrete:
            idx = torch.multinomial(mean, pop, replacement=True, generator=self.gen)  # [h, pop]
            return torch.nn.functional.one_hot(idx.T, self.n).float()
        noise = torch.randn(pop, h, self.dim, generator=self.gen)
        return torch.clamp(mean + std * noise, self.low, self.high)

    def returns(self, obs: Array, actions: Any) -> Any:
        """Each candidate's mean predicted return over its particles: ``[population]``.

        The members' layers are :meth:`Ensemble.folded` (normalizers inside the weights),
        and the first layer's action term is one batched product for every step at once,
        so a step is three ``baddbmm`` (two hidden layers), two in-place ReLUs and the
        state, clip and reward updates."""
        import torch

        ens, k, m = self.ens, self.cem.particles_per_member, self.ens.members
        ws, bs = self._layers if self._layers is not None else ens.folded(logvar=self.cem.aleatoric)
        od = ens.obs_dim
        pop, horizon = actions.shape[0], actions.shape[1]
        n = pop * k  # particles; a candidate's k particles per member are adjacent
        acts = actions.repeat_interleave(k, dim=0) if k > 1 else actions
        # the first layer's action term for every step: [members, horizon, particles, width]
        steps_first = acts.transpose(0, 1).reshape(1, horizon * n, -1)
        a_term = (torch.matmul(steps_first, ws[0][:, od:]) + bs[0]).view(m, horizon, n, -1)
        w_obs = ws[0][:, :od]
        state = torch.as_tensor(obs, dtype=torch.float32).reshape(1, 1, od).expand(m, n, od)
        total = torch.zeros(m, n)
        alive = torch.ones(m, n)
        ys = torch.from_numpy(ens.y_scale.std)
        for t in range(horizon):
            h = torch.baddbmm(a_term[:, t], state, w_obs).relu_()
            for w, b in zip(ws[1:-1], bs[1:-1], strict=True):
                h = torch.baddbmm(b, h, w).relu_()
            y = torch.baddbmm(bs[-1], h, ws[-1])  # [Δobs, reward] raw, termination logit
            step = y[..., : od + 1]
            if self.cem.aleatoric:
                std = torch.exp(0.5 * ens.bounded_logvar(y[..., od + 2 :])) * ys
                step = step + std * torch.randn(step.shape, generator=self.gen)
            state = state + step[..., :od]
            if self.obs_low is not None:
                state = torch.clamp(state, self.obs_low, self.obs_high)
            reward = torch.clamp(step[..., od], *self.reward_range)
            if self.terminates:
                total += alive * reward
                alive *= (y[..., od + 1] < 0).float()
            else:
                total += reward
        return total.view(m, pop, k).mean(dim=(0, 2))

    def act(self, obs: Array) -> Any:
        """The first action of the plan for ``obs`` (numpy float32 array, or an int); with
        ``replan_every`` k > 1, the plan's next action for k - 1 more calls."""
        import torch

        if self._ahead:  # the rest of the last plan's first replan_every actions
            self.mean = torch.cat([self.mean[1:], self._initial(1)], dim=0)
            return self._action(self._ahead.pop(0))
        mean = self._optimize(obs, min(self.cem.replan_every, self.cem.horizon))
        self._ahead = [mean[i] for i in range(1, min(self.cem.replan_every, self.cem.horizon))]
        return self._action(mean[0])

    def label(self, obs: Array) -> Any:
        """A fresh decision for ``obs`` whatever ``replan_every`` says (relabelling the
        states of a trajectory, in order: each warm-starts the next)."""
        self._ahead = []
        return self._action(self._optimize(obs, 1)[0])

    def _optimize(self, obs: Array, skip: int) -> Any:
        """CEM's rounds for ``obs``: the elites' mean plan ``[horizon, dim]``; the warm
        start for the next decision is set as if it comes after one step, the kept elites
        (``keep_elites``) as if after ``skip``."""
        import torch

        cem = self.cem
        n_elite = max(1, round(cem.elite_fraction * cem.population))
        n_keep = round(cem.keep_elites * n_elite)
        mean = self.mean
        std = None
        if not self.discrete:
            assert self.low is not None and self.high is not None
            std = ((self.high - self.low) / 4).expand(cem.horizon, -1).clone()
        with torch.inference_mode():
            self._layers = self.ens.folded(logvar=cem.aleatoric)
            kept = self._kept
            for _ in range(cem.iterations):
                cand = self._sample(mean, std)
                if kept is not None:
                    cand = torch.cat([cand, kept], dim=0)
                ret = self.returns(obs, cand)
                top = torch.topk(ret, n_elite).indices  # best first
                elites = cand[top]
                kept = elites[:n_keep] if n_keep else None
                mean = cem.alpha * mean + (1 - cem.alpha) * elites.mean(dim=0)
                if std is not None:
                    var = cem.alpha * std**2 + (1 - cem.alpha) * elites.var(dim=0, unbiased=False)
                    std = torch.sqrt(var)
            self.last_planned = float(ret[top].mean())
            self._layers = None
        if kept is not None:  # the best plans, shifted to the next decision (last step kept)
            self._kept = torch.cat([kept[:, skip:], kept[:, -1:].expand(-1, skip, -1)], dim=1)
        # warm start: the plan shifted by one step, the new last step from scratch
        self.mean = torch.cat([mean[1:], self._initial(1)], dim=0)
        return mean

    def _action(self, step: Any) -> Any:
        import torch

        if self.discrete:
            return int(torch.argmax(step))
        return step.numpy().astype(np.float32)
