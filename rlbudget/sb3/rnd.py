"""Random Network Distillation (Burda, Edwards, Storkey & Klimov 2018): an exploration
bonus for Stable-Baselines3 training (``rnd_coef`` in a hyperparameter file; 0 = off).

A fixed, randomly initialised *target* network maps an observation to a feature vector;
a *predictor* network is trained to reproduce it on the observations the agent visits.
Its squared error is large where the agent has rarely been, so it serves as an intrinsic
reward. As in the paper: observations are normalized by running statistics and clipped
to ±5 before both networks; the intrinsic reward is divided by the running standard
deviation of its discounted sum (γ = 0.99), so ``rnd_coef`` is in units of that scale
whatever the raw errors are; the predictor is trained on the visited observations, here
one Adam step on each ``batch`` of them.

:class:`RND` holds the networks (torch, imported inside); :func:`rnd_wrapper` is the
VecEnv wrapper that adds ``rnd_coef × bonus`` to the reward SB3 learns from. Monitor sits
under it, so logged returns, evaluation and the deployed policy are the env's own: the
bonus exists in training only. A resumed run starts a fresh predictor (the bonus is not
part of the checkpoint).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

GAMMA_INTRINSIC = 0.99  # Burda et al. 2018, Table 5 (γ_I)
CLIP = 5.0  # normalized observations are clipped to ±5 (Burda et al. 2018, §2.4)


class RunningStats:
    """Running mean and variance of batches (Chan et al.'s parallel update)."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape)
        self.var = np.ones(shape)
        self.count = 1e-4

    def update(self, x: np.ndarray) -> None:
        mean, var, n = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta, total = mean - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + var * n + delta**2 * self.count * n / total
        self.var, self.count = m2 / total, total


class RND:
    """Target and predictor MLPs (``hidden`` units, ``features`` outputs) on flat
    observations of ``dim`` numbers; :meth:`bonus` gives the normalized intrinsic reward
    of a batch of next observations and trains the predictor on them."""

    def __init__(
        self,
        dim: int,
        n_envs: int,
        *,
        seed: int = 0,
        hidden: int = 64,
        features: int = 32,
        learning_rate: float = 1e-3,
        batch: int = 128,
    ) -> None:
        import torch

        def mlp() -> Any:
            return torch.nn.Sequential(
                torch.nn.Linear(dim, hidden), torch.nn.ReLU(),
                torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                torch.nn.Linear(hidden, features),
            )  # fmt: skip

        with torch.random.fork_rng():  # leave SB3's global torch RNG as it was
            torch.manual_seed(seed)
            self.target, self.predictor = mlp(), mlp()
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=learning_rate)
        self.obs_stats = RunningStats((dim,))
        self.ret_stats = RunningStats()
        self.returns = np.zeros(n_envs)  # discounted intrinsic returns, per env
        self.batch = batch
        self.pending: list[np.ndarray] = []

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        z = (obs - self.obs_stats.mean) / np.sqrt(self.obs_stats.var + 1e-8)
        out: np.ndarray = np.clip(z, -CLIP, CLIP).astype(np.float32)
        return out

    def error(self, obs: np.ndarray) -> np.ndarray:
        """The predictor's mean squared error on each (raw) observation: the raw bonus."""
        import torch

        with torch.no_grad():
            x = torch.as_tensor(self.normalize(obs))
            err = ((self.predictor(x) - self.target(x)) ** 2).mean(dim=1)
        out: np.ndarray = err.numpy().astype(np.float64)
        return out

    def bonus(self, next_obs: np.ndarray, dones: np.ndarray) -> np.ndarray:
        """Normalized intrinsic rewards of one vectorized step (one per env), then update
        the statistics and (every ``batch`` observations) the predictor."""
        obs = np.asarray(next_obs, dtype=np.float64).reshape(len(next_obs), -1)
        self.obs_stats.update(obs)
        raw = self.error(obs)
        self.returns = self.returns * GAMMA_INTRINSIC + raw
        self.ret_stats.update(self.returns)
        self.returns[np.asarray(dones, dtype=bool)] = 0.0
        self.pending.append(obs)
        if sum(len(b) for b in self.pending) >= self.batch:
            self.train(np.concatenate(self.pending))
            self.pending = []
        out: np.ndarray = raw / np.sqrt(self.ret_stats.var + 1e-8)
        return out

    def train(self, obs: np.ndarray) -> float:
        """One Adam step of the predictor on ``obs``; returns the loss before it."""
        import torch

        x = torch.as_tensor(self.normalize(obs))
        loss = ((self.predictor(x) - self.target(x)) ** 2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


@functools.cache
def rnd_wrapper() -> type:
    """The VecEnv wrapper class (built on first use: SB3 is imported lazily)."""
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class RNDReward(VecEnvWrapper):
        """Adds ``coef`` × the RND bonus of the next observation to each reward (for a
        finished episode, of its terminal observation, not the reset one)."""

        def __init__(self, venv: Any, coef: float, seed: int) -> None:
            super().__init__(venv)
            dim = int(np.prod(venv.observation_space.shape or (1,)))
            self.coef = coef
            self.rnd = RND(dim, venv.num_envs, seed=seed)

        def reset(self) -> Any:
            return self.venv.reset()

        def step_wait(self) -> Any:
            obs, rewards, dones, infos = self.venv.step_wait()
            nxt = np.array(obs, dtype=np.float64).reshape(len(dones), -1)
            for i, done in enumerate(dones):
                terminal = infos[i].get("terminal_observation") if done else None
                if terminal is not None:
                    nxt[i] = np.asarray(terminal, dtype=np.float64).ravel()
            bonus = self.rnd.bonus(nxt, dones)
            return obs, (rewards + self.coef * bonus).astype(rewards.dtype), dones, infos

    return RNDReward
