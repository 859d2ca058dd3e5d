"""Pruning: zero the smallest weights, or remove whole hidden neurons.

- :func:`prune_magnitude` (unstructured): the smallest-magnitude weights of every layer
  (hidden and output) become 0; biases stay. The network keeps its shape; the saving is in
  storage: ``policy.safetensors`` keeps a layer's ``W`` in CSR form when that takes fewer
  bytes than dense (:func:`rlbudget.policy.io.sparse_weights`), and the C export runs such
  a float layer through a CSR kernel. Works on float32 and float16 ``mlp`` bodies and on
  ``mlp_int8`` bodies (zeros in the int8 ``W``; scales unchanged).
- :func:`prune_neurons` (structured): each hidden layer keeps its most important neurons
  and loses the others (a column of its ``W`` and its bias entry, a row of the next
  ``W``): a genuinely smaller dense ``mlp``, faster on any device. The output layer is
  never pruned.

Either may lose return; ``rlbudget.compress.distill.recover`` fine-tunes the result from
the unpruned parent. Both return a new Policy whose provenance lists the transform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from itertools import pairwise
from typing import TypeVar

import numpy as np

from rlbudget.compress import with_transform
from rlbudget.errors import PolicyError
from rlbudget.policy.model import MLP, Array, Dense, Policy, QDense, QuantizedMLP

__all__ = ["prune_magnitude", "prune_neurons"]

SCOPES = ("global", "layer")
LayerT = TypeVar("LayerT", Dense, QDense)


def _magnitudes(layer: Dense | QDense) -> Array:
    """|w| in the float units the layer computes with (an int8 weight times its scale)."""
    magnitude = np.abs(layer.W.astype(np.float32))
    if isinstance(layer, QDense):
        magnitude *= layer.w_scale  # per output channel: the columns
    out: Array = magnitude
    return out


def _protected(magnitude: Array) -> Array:
    """Flat indices of each output neuron's largest weight (the first of equals)."""
    n_out = magnitude.shape[1]
    out: Array = np.argmax(magnitude, axis=0) * n_out + np.arange(n_out)
    return out


def _smallest(magnitude: Array, protected: Array, count: int) -> Array:
    """Flat indices of the ``count`` smallest entries outside ``protected`` (fewer when
    ``count`` would reach into it; ties: the lower index first, so the choice is
    deterministic)."""
    flat = magnitude.ravel().astype(np.float64)
    flat[protected] = np.inf
    out: Array = np.argsort(flat, kind="stable")[: min(count, flat.size - len(protected))]
    return out


def _zeroed(layer: LayerT, flat: Array) -> LayerT:
    """``layer`` with the weights at flat indices ``flat`` set to zero."""
    W = np.array(layer.W)  # a contiguous copy, so ravel() below is a view
    W.ravel()[flat] = 0
    return replace(layer, W=W)


def prune_magnitude(policy: Policy, sparsity: float, *, scope: str = "global") -> Policy:
    """Set the fraction ``sparsity`` of the weights with the smallest magnitude to zero.

    ``round(sparsity × weights)`` weights become zero (existing zeros count, as the smallest
    magnitudes), except that every output neuron keeps its largest incoming weight, so no
    neuron is cut off from its inputs. Magnitudes are compared in float units (an int8
    weight times its channel's ``w_scale``).

    :param sparsity: the fraction of weights to zero, in [0, 1).
    :param scope: ``"global"`` (default): one threshold across all layers, so layers with
        many small weights (the wide hidden ones) lose more than a narrow input layer;
        ``"layer"``: the same fraction in every layer.
    :raises PolicyError: ``sparsity`` outside [0, 1), an unknown ``scope``, or a body that
        is not ``mlp`` / ``mlp_int8``.
    """
    body = policy.body
    if not isinstance(body, MLP | QuantizedMLP):
        raise PolicyError(f"prune_magnitude applies to an mlp or mlp_int8 body; this policy has "
                          f"a {body.kind} body")  # fmt: skip
    if not 0 <= sparsity < 1:
        raise PolicyError(f"prune_magnitude: sparsity {sparsity!r} must be in [0, 1) (the "
                          "fraction of weights set to zero, e.g. 0.9)")  # fmt: skip
    if scope not in SCOPES:
        raise PolicyError(f"prune_magnitude: scope {scope!r}; use {' or '.join(SCOPES)}")
    magnitudes = [_magnitudes(layer) for layer in body.layers]
    protected = [_protected(m) for m in magnitudes]
    if scope == "layer":
        chosen = [_smallest(m, p, round(sparsity * m.size))
                  for m, p in zip(magnitudes, protected, strict=True)]  # fmt: skip
    else:
        sizes = [m.size for m in magnitudes]
        offsets = np.cumsum([0, *sizes])
        every = np.concatenate([m.ravel() for m in magnitudes])
        keep = np.concatenate([p + o for p, o in zip(protected, offsets, strict=False)])
        picked = _smallest(every, keep, round(sparsity * every.size))
        chosen = [picked[(picked >= lo) & (picked < hi)] - lo
                  for lo, hi in pairwise(offsets)]  # fmt: skip
    new_body: MLP | QuantizedMLP
    if isinstance(body, MLP):
        new_body = MLP(
            tuple(_zeroed(la, flat) for la, flat in zip(body.layers, chosen, strict=True))
        )
    else:
        new_body = QuantizedMLP(
            tuple(_zeroed(la, flat) for la, flat in zip(body.layers, chosen, strict=True))
        )
    zeros = sum(int(np.count_nonzero(la.W == 0)) for la in new_body.layers)
    child = replace(policy, body=new_body)
    return with_transform(policy, child, "prune_magnitude", sparsity=float(sparsity),
                          scope=scope, zeros=zeros)  # fmt: skip


def _calibration_inputs(policy: Policy, calibration_obs: np.ndarray) -> Array:
    obs = np.asarray(calibration_obs)
    shape = policy.observation_space.shape
    if obs.ndim != len(shape) + 1 or obs.shape[1:] != tuple(shape) or len(obs) == 0:
        raise PolicyError(
            f"prune_neurons: calibration_obs has shape {list(obs.shape)}; expected "
            f"[n, {', '.join(str(v) for v in shape)}] with n ≥ 1 observations"
        )
    x = obs
    for step in policy.preprocess:
        x = step.apply(x)
    out: Array = x.astype(np.float32)
    return out


def _targets(hidden: list[int], keep: float | None, widths: Sequence[int] | None) -> list[int]:
    """The width each hidden layer keeps, from ``keep`` or ``widths``, checked."""
    if (keep is None) == (widths is None):
        raise PolicyError("prune_neurons: give exactly one of keep (the fraction of each hidden "
                          "layer's neurons kept, e.g. 0.25) or widths (one count per hidden "
                          "layer)")  # fmt: skip
    if keep is not None:
        if not 0 < keep <= 1:
            raise PolicyError(f"prune_neurons: keep {keep!r} must be in (0, 1] (the fraction "
                              "of each hidden layer's neurons kept)")  # fmt: skip
        return [max(1, round(keep * n)) for n in hidden]
    assert widths is not None
    targets = [int(v) for v in widths]
    if len(targets) != len(hidden):
        raise PolicyError(
            f"prune_neurons: widths {targets} has {len(targets)} entries but the mlp has "
            f"{len(hidden)} hidden layers ({', '.join(map(str, hidden))} neurons)"
        )
    for i, (target, n) in enumerate(zip(targets, hidden, strict=True)):
        if not 1 <= target <= n:
            raise PolicyError(f"prune_neurons: width {target} for hidden layer {i} must be from "
                              f"1 to its {n} neurons")  # fmt: skip
    return targets


def prune_neurons(
    policy: Policy,
    calibration_obs: np.ndarray,
    *,
    keep: float | None = None,
    widths: Sequence[int] | None = None,
) -> Policy:
    """Remove the least important neurons of every hidden layer: a smaller dense ``mlp``.

    Layer by layer, from the input: the importance of neuron ``j`` of hidden layer ``l`` is
    ``mean |a_j| × ‖W_{l+1}[j, :]‖₂``, the mean magnitude of its activation on the
    calibration observations (through the already pruned layers before it) times the L2
    norm of its outgoing weights, an estimate of how much it moves the next layer. The
    most important ``widths[l]`` neurons stay, in their original order (ties: the lower
    index). Bias compensation: a removed neuron's mean activation times its outgoing
    weights is added to the next layer's bias, so the next layer sees the removed neurons'
    average contribution instead of nothing (exact for a neuron whose output is constant
    on the calibration states, e.g. a dead relu). A float16 body stays float16.

    :param calibration_obs: observations ``[n, *observation_shape]`` the policy visits.
    :param keep: the fraction of each hidden layer's neurons kept, in (0, 1]; each layer
        keeps ``max(1, round(keep × width))`` (Python's round: half to even).
    :param widths: the neurons each hidden layer keeps, one count per hidden layer, each
        from 1 to the layer's current width. Give ``keep`` or ``widths``, not both.
    :raises PolicyError: not a float ``mlp`` with a hidden layer, bad ``keep``/``widths``,
        or calibration observations of the wrong shape.
    """
    body = policy.body
    if not isinstance(body, MLP):
        hint = " (prune before quantizing to int8)" if isinstance(body, QuantizedMLP) else ""
        raise PolicyError(f"prune_neurons applies to an mlp body; this policy has a {body.kind} "
                          f"body{hint}")  # fmt: skip
    hidden = [int(layer.W.shape[1]) for layer in body.layers[:-1]]
    if not hidden:
        raise PolicyError("prune_neurons: the mlp has no hidden layer, so there is no neuron to "
                          "remove; use prune_magnitude")  # fmt: skip
    targets = _targets(hidden, keep, widths)
    x = _calibration_inputs(policy, calibration_obs)
    layers = list(body.layers)
    for i, target in enumerate(targets):
        layer, after = layers[i], layers[i + 1]
        a = MLP((layer,)).apply(x)  # float32 activations (a float16 layer: computed as float32)
        outgoing = after.W.astype(np.float32)
        importance = np.abs(a).mean(axis=0) * np.linalg.norm(outgoing, axis=1)
        kept = np.sort(np.argsort(-importance, kind="stable")[:target])
        removed = np.setdiff1d(np.arange(layer.W.shape[1]), kept)
        b_after = after.b
        if len(removed):
            shift = a[:, removed].mean(axis=0) @ outgoing[removed]
            b_after = (after.b.astype(np.float32) + shift).astype(after.b.dtype)
        layers[i] = Dense(np.ascontiguousarray(layer.W[:, kept]), layer.b[kept], layer.activation)
        layers[i + 1] = Dense(np.ascontiguousarray(after.W[kept]), b_after, after.activation)
        x = a[:, kept]
    child = replace(policy, body=MLP(tuple(layers)))
    return with_transform(policy, child, "prune_neurons", widths=targets,
                          calibration_observations=len(x))  # fmt: skip
