"""The dynamics model: an ensemble of probabilistic MLPs (PETS, Chua et al. 2018, §4).

Each member maps a normalized ``[observation, action]`` to a diagonal Gaussian over the
normalized targets ``[Δobservation, reward]`` and a termination logit. The members are
one set of batched weight tensors (``[members, in, out]``), so a forward pass of every
member is one ``baddbmm`` per layer. Training minimises each member's Gaussian negative
log-likelihood on its own minibatches (drawn with replacement: a bootstrap, as PETS),
with PETS's learned soft bounds on the log-variance, plus the termination's
cross-entropy.

torch is imported inside the functions; :meth:`Ensemble.arrays` and
:meth:`Ensemble.from_arrays` turn the whole model (weights, bounds, normalizers) into
numpy arrays for safetensors, so a run folder never holds a pickle.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Scaler:
    """``(x - mean) / std`` per column, fitted on the data (std floored at 1e-6)."""

    mean: Array
    std: Array

    @classmethod
    def fit(cls, x: Array) -> Scaler:
        std = x.std(axis=0)
        return cls(x.mean(axis=0).astype(np.float32),
                   np.where(std < 1e-6, 1.0, std).astype(np.float32))  # fmt: skip


class Ensemble:
    """``members`` Gaussian MLPs with ``hidden`` widths (ReLU: PETS used swish, which took a
    quarter of a CEM decision's CPU time in a profile here), on ``in_dim`` inputs and
    ``obs_dim + 1`` Gaussian outputs plus one termination logit.

    :param seed: torch's seed for the initial weights.
    """

    def __init__(self, in_dim: int, obs_dim: int, members: int, hidden: list[int],
                 seed: int, lr: float = 1e-3, weight_decay: float = 5e-5) -> None:  # fmt: skip
        import torch

        self.in_dim, self.obs_dim, self.members = in_dim, obs_dim, members
        self.out_dim = obs_dim + 1  # Δobs, reward
        gen = torch.Generator().manual_seed(seed)
        sizes = [in_dim, *hidden, 2 * self.out_dim + 1]
        self.weights: list[Any] = []
        self.biases: list[Any] = []
        for n_in, n_out in itertools.pairwise(sizes):
            bound = 1.0 / np.sqrt(n_in)  # torch's nn.Linear initialisation
            w = (torch.rand(members, n_in, n_out, generator=gen) * 2 - 1) * bound
            b = (torch.rand(members, 1, n_out, generator=gen) * 2 - 1) * bound
            self.weights.append(w.requires_grad_())
            self.biases.append(b.requires_grad_())
        self.max_logvar = torch.full((1, 1, self.out_dim), 0.5, requires_grad=True)
        self.min_logvar = torch.full((1, 1, self.out_dim), -10.0, requires_grad=True)
        self.optimizer = torch.optim.Adam(
            [*self.weights, *self.biases, self.max_logvar, self.min_logvar],
            lr=lr, weight_decay=weight_decay, fused=True,
        )  # fmt: skip
        self.x_scale = Scaler(np.zeros(in_dim, np.float32), np.ones(in_dim, np.float32))
        self.y_scale = Scaler(np.zeros(self.out_dim, np.float32),
                              np.ones(self.out_dim, np.float32))  # fmt: skip

    # --- the forward pass (normalized units) ------------------------------------------

    def forward(self, x: Any) -> tuple[Any, Any, Any]:
        """``x``: ``[members, batch, in]`` normalized → mean, log-variance (normalized
        targets) and the termination logit, each ``[members, batch, ·]``."""
        import torch

        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.relu(h)
        mean, raw = h[..., : self.out_dim], h[..., self.out_dim : 2 * self.out_dim]
        return mean, self.bounded_logvar(raw), h[..., -1]

    def folded(self, *, logvar: bool = False) -> tuple[list[Any], list[Any]]:
        """The members' layers for planning (no autograd): weights ``[members, in, out]``
        and biases ``[members, 1, out]`` with the normalizers folded in, so the first
        layer takes raw ``[observation, action]`` and the last gives raw ``[Δobservation,
        reward]`` followed by the termination logit, then (``logvar``) the unbounded
        normalized log-variance columns that :meth:`bounded_logvar` finishes. Two
        elementwise passes per layer and step fewer than :meth:`forward`, and no
        log-variance columns when a planner follows each member's mean."""
        import torch

        with torch.no_grad():
            xm, xs = torch.from_numpy(self.x_scale.mean), torch.from_numpy(self.x_scale.std)
            ym, ys = torch.from_numpy(self.y_scale.mean), torch.from_numpy(self.y_scale.std)
            # ((x - xm) / xs) @ W + b = x @ (W / xs) + (b - xm @ (W / xs))
            w0 = self.weights[0] / xs[:, None]
            ws = [w0, *(w.detach() for w in self.weights[1:])]
            bs = [self.biases[0] - torch.matmul(xm[None, None], w0),
                  *(b.detach() for b in self.biases[1:])]  # fmt: skip
            d = self.out_dim
            cols = [*range(d), 2 * d, *(range(d, 2 * d) if logvar else ())]
            scale = torch.cat([ys, torch.ones(len(cols) - d)])
            shift = torch.cat([ym, torch.zeros(len(cols) - d)])
            ws[-1] = ws[-1][..., cols] * scale
            bs[-1] = bs[-1][..., cols] * scale + shift
        return [w.contiguous() for w in ws], [b.contiguous() for b in bs]

    def bounded_logvar(self, raw: Any) -> Any:
        """PETS's soft bounds on a raw (normalized) log-variance output."""
        import torch

        softplus = torch.nn.functional.softplus
        logvar = self.max_logvar - softplus(self.max_logvar - raw)
        return self.min_logvar + softplus(logvar - self.min_logvar)

    # --- training ---------------------------------------------------------------------

    def fit(self, x: Array, y: Array, done: Array, *, epochs: int, batch_size: int,
            rng: np.random.Generator, max_updates: int = 2000) -> float:  # fmt: skip
        """Refit the normalizers on all data and train ``epochs`` passes (at most
        ``max_updates`` Adam steps); returns the last epoch's mean NLL per target."""
        import torch

        self.x_scale, self.y_scale = Scaler.fit(x), Scaler.fit(y)
        xs = torch.from_numpy((x - self.x_scale.mean) / self.x_scale.std).float()
        ys = torch.from_numpy((y - self.y_scale.mean) / self.y_scale.std).float()
        ds = torch.from_numpy(done.astype(np.float32))
        n = len(x)
        per_epoch = max(1, n // batch_size)
        updates = min(max_updates, epochs * per_epoch)
        losses: list[float] = []
        for _ in range(updates):
            idx = torch.from_numpy(rng.integers(0, n, (self.members, batch_size)))
            mean, logvar, term = self.forward(xs[idx])
            nll = ((mean - ys[idx]) ** 2 * torch.exp(-logvar) + logvar).mean()
            bce = torch.nn.functional.binary_cross_entropy_with_logits(term, ds[idx])
            bounds = 0.01 * (self.max_logvar.sum() - self.min_logvar.sum())
            loss = nll + bce + bounds
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(nll.item())
        tail = losses[-per_epoch:]
        return float(np.mean(tail)) if tail else float("nan")

    def mse(self, x: Array, y: Array) -> float:
        """Mean squared one-step error of the members' mean prediction, in target units
        normalized by the targets' std (so 1.0 is as bad as predicting the mean)."""
        import torch

        with torch.no_grad():
            xs = torch.from_numpy((x - self.x_scale.mean) / self.x_scale.std).float()
            mean, _, _ = self.forward(xs.expand(self.members, -1, -1))
            pred = mean.mean(dim=0).numpy() * self.y_scale.std + self.y_scale.mean
        return float((((pred - y) / self.y_scale.std) ** 2).mean())

    def predict(self, x: Array) -> Array:
        """Every member's mean prediction for raw ``[observation, action]`` rows: raw
        ``[Δobservation, reward]``, ``[members, batch, obs_dim + 1]``."""
        import torch

        with torch.no_grad():
            xs = torch.from_numpy(((x - self.x_scale.mean) / self.x_scale.std).astype(np.float32))
            mean, _, _ = self.forward(xs.expand(self.members, -1, -1))
        return np.asarray(mean.numpy() * self.y_scale.std + self.y_scale.mean)

    # --- to and from arrays (safetensors) ---------------------------------------------

    def arrays(self) -> dict[str, Array]:
        out = {f"w{i}": w.detach().numpy().copy() for i, w in enumerate(self.weights)}
        out.update({f"b{i}": b.detach().numpy().copy() for i, b in enumerate(self.biases)})
        out.update(max_logvar=self.max_logvar.detach().numpy().copy(),
                   min_logvar=self.min_logvar.detach().numpy().copy(),
                   x_mean=self.x_scale.mean, x_std=self.x_scale.std,
                   y_mean=self.y_scale.mean, y_std=self.y_scale.std)  # fmt: skip
        return out

    def load_arrays(self, arrays: dict[str, Array]) -> None:
        """Put saved weights, bounds and normalizers in place.

        :raises ValueError: an array's shape is not the one this ensemble has (no
            broadcasting: a file for another env or architecture is refused).
        """
        import torch

        expected = {k: np.shape(v) for k, v in self.arrays().items()}
        for key, shape in expected.items():
            got = np.shape(arrays[key])
            if got != shape:
                raise ValueError(f"array '{key}' has shape {got}, the model needs {shape}")
        with torch.no_grad():
            for i, w in enumerate(self.weights):
                w.copy_(torch.from_numpy(np.asarray(arrays[f"w{i}"])))
            for i, b in enumerate(self.biases):
                b.copy_(torch.from_numpy(np.asarray(arrays[f"b{i}"])))
            self.max_logvar.copy_(torch.from_numpy(np.asarray(arrays["max_logvar"])))
            self.min_logvar.copy_(torch.from_numpy(np.asarray(arrays["min_logvar"])))
        self.x_scale = Scaler(np.asarray(arrays["x_mean"]), np.asarray(arrays["x_std"]))
        self.y_scale = Scaler(np.asarray(arrays["y_mean"]), np.asarray(arrays["y_std"]))
