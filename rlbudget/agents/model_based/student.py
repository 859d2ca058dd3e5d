"""The deployed policy: a small MLP distilled from the planner (DAgger, Ross et al. 2011).

The planner labels every state the trainer visits with the action it would take; the
student is trained on all labels gathered so far (the aggregated dataset), and in some
episodes the student itself acts (the planner still labels), so it learns what to do in
the states *it* reaches. The recipe is :mod:`rlbudget.compress.distill`'s: Adam on
minibatches drawn from the whole dataset, mean squared error on the action for Box
actions (the student's ``clip`` head equals the planner's bounds), cross-entropy for
Discrete ones (``argmax`` head). compress's ``distill`` takes a :class:`Policy` teacher and
runs the env itself; a planner is neither, so the loop lives here.

The student's input normalization is fixed when it is first trained (the mean and
variance of the states seen by then) and is a ``normalize`` preprocess step, so the
saved policy is an ordinary ``normalize → mlp → clip/argmax`` Policy that compress,
export and profile take unchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlbudget.envs import SpaceSpec
from rlbudget.errors import PlanError
from rlbudget.policy.model import MLP, Dense, Head, Normalize, Policy

Array = np.ndarray


class Student:
    """An MLP with ``hidden`` widths (``activation``: relu or tanh) trained to imitate the
    planner's labels."""

    def __init__(self, obs_spec: SpaceSpec, act_spec: SpaceSpec, hidden: list[int],
                 activation: str, seed: int, lr: float) -> None:  # fmt: skip
        import torch

        if activation not in ("relu", "tanh"):
            raise PlanError(f"pets: activation_fn '{activation}' is not one the student "
                            "takes; write relu or tanh")  # fmt: skip
        self.activation = activation

        self.obs_spec, self.act_spec = obs_spec, act_spec
        self.discrete = act_spec.kind == "discrete"
        n_out = int(act_spec.n or 0) if self.discrete else act_spec.dim
        sizes = [obs_spec.dim, *hidden, n_out]
        gen = torch.Generator().manual_seed(seed + 7)
        self.weights: list[Any] = []
        self.biases: list[Any] = []
        for n_in, n_o in itertools.pairwise(sizes):
            bound = 1.0 / np.sqrt(n_in)  # torch's nn.Linear initialisation
            self.weights.append(((torch.rand(n_in, n_o, generator=gen) * 2 - 1) * bound)
                                .requires_grad_())  # fmt: skip
            self.biases.append(((torch.rand(n_o, generator=gen) * 2 - 1) * bound)
                               .requires_grad_())  # fmt: skip
        self.optimizer = torch.optim.Adam([*self.weights, *self.biases], lr=lr, fused=True)
        self.mean = np.zeros(obs_spec.dim, np.float32)
        self.var = np.ones(obs_spec.dim, np.float32)
        self.trained = False
        self.last_loss = float("nan")

    def _forward(self, x: Any) -> Any:
        import torch

        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = x @ w + b
            if i < len(self.weights) - 1:
                x = getattr(torch, self.activation)(x)
        return x

    def fit(self, obs: Array, labels: Array, *, updates: int, batch_size: int,
            rng: np.random.Generator) -> float:  # fmt: skip
        """``updates`` Adam steps on (state, planner label) pairs; returns the mean loss of
        the last 10 % of the steps."""
        import torch

        if not self.trained:  # the normalization is fixed once, at the first fit
            self.mean = obs.mean(axis=0).astype(np.float32)
            var = obs.var(axis=0)
            self.var = np.where(var < 1e-8, 1.0, var).astype(np.float32)
            self.trained = True
        x = torch.from_numpy(((obs - self.mean) / np.sqrt(self.var)).astype(np.float32))
        y = torch.from_numpy(labels.astype(np.int64 if self.discrete else np.float32))
        losses = []
        for _ in range(updates):
            idx = torch.from_numpy(rng.integers(0, len(x), batch_size))
            out = self._forward(x[idx])
            loss: Any
            if self.discrete:
                loss = torch.nn.functional.cross_entropy(out, y[idx])
            else:
                loss = torch.nn.functional.mse_loss(out, y[idx])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        tail = losses[-max(1, updates // 10) :]
        self.last_loss = float(np.mean(tail)) if tail else float("nan")
        return self.last_loss

    def actions(self, obs: Array) -> Array:
        """The student's actions for a batch ``[n, obs_dim]`` (Box: clipped to the bounds;
        Discrete: the argmax), as its :meth:`policy` acts."""
        import torch

        with torch.no_grad():
            x = torch.from_numpy(((obs - self.mean) / np.sqrt(self.var)).astype(np.float32))
            out: Array = np.asarray(self._forward(x).numpy())
        if self.discrete:
            return np.asarray(out.argmax(axis=-1))
        low, high = np.asarray(self.act_spec.low), np.asarray(self.act_spec.high)
        return np.asarray(np.clip(out, low, high), np.float32)

    def policy(self, provenance: Mapping[str, Any]) -> Policy:
        """The student as a numpy Policy: ``normalize → mlp → clip`` (Box) / ``argmax``."""
        n = len(self.weights)
        layers = tuple(
            Dense(w.detach().numpy().copy(), b.detach().numpy().copy(),
                  self.activation if i < n - 1 else "identity")
            for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True))
        )  # fmt: skip
        # Normalize computes (x - mean) / sqrt(var + eps); eps 0 matches training's scaling.
        norm = Normalize(self.mean, self.var, clip=1e6, eps=0.0)
        act = self.act_spec
        low, high = np.asarray(act.low, np.float32), np.asarray(act.high, np.float32)
        head = Head("argmax") if self.discrete else Head("clip", low, high)
        return Policy(self.obs_spec, act, (norm,), MLP(layers), head, dict(provenance))

    def arrays(self) -> dict[str, Array]:
        out = {f"sw{i}": w.detach().numpy().copy() for i, w in enumerate(self.weights)}
        out.update({f"sb{i}": b.detach().numpy().copy() for i, b in enumerate(self.biases)})
        out.update(s_mean=self.mean, s_var=self.var)
        return out

    def load_arrays(self, arrays: Mapping[str, Array]) -> None:
        import torch

        with torch.no_grad():
            for i, w in enumerate(self.weights):
                w.copy_(torch.from_numpy(np.asarray(arrays[f"sw{i}"])))
            for i, b in enumerate(self.biases):
                b.copy_(torch.from_numpy(np.asarray(arrays[f"sb{i}"])))
        self.mean, self.var = np.asarray(arrays["s_mean"]), np.asarray(arrays["s_var"])
