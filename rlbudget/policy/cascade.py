"""The ``cascade`` body: a tiny int8 body decides alone when it is confident, otherwise the
full body decides (adaptive complexity; built by ``rlbudget compress --method cascade``,
:mod:`rlbudget.compress.cascade`).

Both bodies read the same preprocessed input and feed the same head; a small body may
first normalize it on its own (``inputs``: the input range int8 quantization folds in
front of a policy without preprocess, :func:`~rlbudget.compress.quantize.quantize_int8`).
The confidence rule, computed on the small bodies' float32 outputs (what the head would
read) in float32:

- ``gap`` (discrete actions, one small body): the gap between its two largest action
  scores, ``top1 - top2``; the small body decides when ``gap >= threshold``.
- ``agreement`` (continuous actions, two small bodies distilled from different seeds: an
  ensemble of two): their largest disagreement over the action dimensions,
  ``max_j |y0_j - y1_j|``; the first small body decides when it is ``<= threshold``.
  Where two independently trained students agree, they are usually both near the teacher
  (the ensemble's spread as an uncertainty estimate).

Worst case per decision: every small body and the full one (:meth:`Cascade.macs`); the
mean depends on how often the small one decides (:meth:`Cascade.small_macs`,
:meth:`Cascade.confident`). The C export computes the same float32 figures in the same
order, so a decision takes the same branch in numpy and C.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rlbudget.errors import PolicyError
from rlbudget.policy.int8 import QuantizedMLP
from rlbudget.policy.kernels import Array, Document
from rlbudget.policy.preprocess import Normalize

RULES = {"gap": 1, "agreement": 2}
"""Confidence rule → the number of small bodies it reads."""


class SubBody(Protocol):
    """What the cascade asks of its full body (an ``mlp`` or ``mlp_int8``)."""

    kind: str

    @property
    def parameters(self) -> int: ...

    def macs(self) -> int: ...

    def apply(self, x: Array) -> Array: ...

    def document(self, prefix: str) -> Document: ...


def confidence(rule: str, outputs: list[Array]) -> Array:
    """The float32 confidence figure per row: the top-two gap (``gap``) or the largest
    disagreement (``agreement``) of the small bodies' outputs ``[batch, n]``.

    >>> confidence("gap", [np.array([[1.0, 3.5, 2.0]], np.float32)])
    array([1.5], dtype=float32)
    >>> confidence("agreement", [np.array([[0.5, -1.0]], np.float32),
    ...                          np.array([[0.25, -2.0]], np.float32)])
    array([1.], dtype=float32)
    """
    y = outputs[0].astype(np.float32, copy=False)
    if rule == "gap":
        if y.shape[1] < 2:
            return np.full(len(y), np.inf, np.float32)
        top = np.sort(y, axis=1)
        gap: Array = (top[:, -1] - top[:, -2]).astype(np.float32)
        return gap
    diff = np.abs(y - outputs[1].astype(np.float32, copy=False))
    worst: Array = diff.max(axis=1).astype(np.float32)
    return worst


def decides(rule: str, figure: Array, threshold: float) -> Array:
    """Whether the small body decides: ``gap >= threshold`` or ``disagreement <=
    threshold`` (float32 comparisons, as in C)."""
    t = np.float32(threshold)
    out: Array = figure >= t if rule == "gap" else figure <= t
    return out


@dataclass(frozen=True, eq=False)
class Cascade:
    """Small int8 bodies, a full body, the rule, its float32 threshold, and each small
    body's own input normalization or None (module docstring)."""

    small: tuple[QuantizedMLP, ...]
    full: Any  # SubBody: MLP or QuantizedMLP (typed loosely: they live in model.py)
    rule: str
    threshold: float
    inputs: tuple[Normalize | None, ...] = ()  # () = None for every small body
    kind: str = field(default="cascade", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "threshold", float(np.float32(self.threshold)))
        if not self.inputs:
            object.__setattr__(self, "inputs", (None,) * len(self.small))
        if len(self.inputs) != len(self.small):
            raise ValueError(f"cascade: {len(self.inputs)} inputs for {len(self.small)} bodies")

    def small_outputs(self, x: Array) -> list[Array]:
        """Each small body's float32 output for the preprocessed input ``x``."""
        return [s.apply(x if n is None else n.apply(x))
                for s, n in zip(self.small, self.inputs, strict=True)]  # fmt: skip

    @property
    def parameters(self) -> int:
        return sum(int(s.parameters) for s in self.small) + int(self.full.parameters)

    def small_macs(self) -> int:
        """Multiply-accumulates of a decision the small body takes alone."""
        return sum(s.macs() for s in self.small)

    def macs(self) -> int:
        """The worst case: the small bodies, then the full one."""
        return self.small_macs() + int(self.full.macs())

    def mean_macs(self, share_small: float) -> float:
        """MACs per decision when the small body decides ``share_small`` of them."""
        return self.small_macs() + (1.0 - share_small) * int(self.full.macs())

    def confident(self, x: Array) -> Array:
        """Whether the small body decides, per row of the preprocessed input ``x``."""
        return decides(self.rule, confidence(self.rule, self.small_outputs(x)), self.threshold)

    def document(self, prefix: str) -> Document:
        arrays: dict[str, Array] = {}
        small = []
        for i, (s, n) in enumerate(zip(self.small, self.inputs, strict=True)):
            entry, a = s.document(f"{prefix}.small.{i}")
            arrays.update(a)
            if n is not None:
                norm, a = n.document(f"{prefix}.small.{i}.input")
                arrays.update(a)
                entry = {**entry, "input": norm}
            small.append(entry)
        full, a = self.full.document(f"{prefix}.full")
        arrays.update(a)
        return {"kind": self.kind, "rule": self.rule, "threshold": self.threshold,
                "small": small, "full": full}, arrays  # fmt: skip

    def apply(self, x: Array) -> Array:
        outputs = self.small_outputs(x)
        ok = decides(self.rule, confidence(self.rule, outputs), self.threshold)
        y = outputs[0].astype(np.float32, copy=False)
        if ok.all():
            return y
        if len(x) == 1:
            full: Array = self.full.apply(x).astype(np.float32, copy=False)
            return full
        out: Array = y.copy()
        out[~ok] = self.full.apply(x[~ok])
        return out


MAX_THRESHOLD = 1e10
"""The largest threshold a policy file may hold (the loader's largest number)."""


def read_cascade(
    d: Mapping[str, Any],
    width: int,
    indices: bool,
    body: Callable[[Mapping[str, Any], int, bool], tuple[Any, int]],
    preprocess: Callable[[Mapping[str, Any], int, int], tuple[Any, int]],
    fail: Callable[[str], PolicyError],
) -> tuple[Cascade, int]:
    """A ``cascade`` entry of ``policy.json`` → the body and its output width, every value
    checked (its rule, threshold, int8 small bodies and full body, all reading the same
    input and giving the same number of outputs); ``body``, ``preprocess`` and ``fail`` are
    the policy loader's (:mod:`rlbudget.policy.reader`).

    :raises PolicyError: the first problem, one line.
    """
    what = "body (cascade)"
    rule, t, small = d.get("rule"), d.get("threshold"), d.get("small")
    if rule not in RULES:
        raise fail(f"{what}: rule must be one of {', '.join(RULES)}, not {rule!r}")
    if (isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t)
            or not 0 <= t <= MAX_THRESHOLD):  # fmt: skip
        raise fail(f"{what}: threshold must be a number ≥ 0, at most {MAX_THRESHOLD:g}, "
                   f"not {t!r}")  # fmt: skip
    if not isinstance(small, list) or len(small) != RULES[rule]:
        raise fail(f"{what}: rule {rule!r} reads {RULES[rule]} small bod(ies) in 'small', not "
                   f"{small!r:.40}")  # fmt: skip
    if not all(isinstance(s, Mapping) for s in (*small, d.get("full"))):
        raise fail(f"{what}: 'small' and 'full' must be body objects")
    parts, outs = [], set()
    for i, entry in enumerate((*small, d["full"])):
        name = "full" if i == len(small) else f"small[{i}]"
        if entry.get("kind") not in (("mlp", "mlp_int8") if name == "full" else ("mlp_int8",)):
            raise fail(f"{what}: {name} must be an int8 mlp (mlp_int8)"
                       + (" or an mlp" if name == "full" else "")
                       + f", not {entry.get('kind')!r}")  # fmt: skip
        part, out = body(entry, width, indices)
        parts.append(part)
        outs.add(out)
    inputs: list[Normalize | None] = []
    for i, entry in enumerate(small):
        step = None
        if "input" in entry:
            given = entry["input"]
            if not isinstance(given, Mapping) or given.get("kind") != "normalize":
                raise fail(f"{what}: small[{i}]'s input must be a normalize step")
            step, _ = preprocess(given, i, width)
        inputs.append(step if isinstance(step, Normalize) else None)
    if len(outs) != 1:
        raise fail(f"{what}: its bodies give {sorted(outs)} outputs; they must agree")
    bodies = tuple(p for p in parts[:-1] if isinstance(p, QuantizedMLP))
    return Cascade(bodies, parts[-1], str(rule), float(t), tuple(inputs)), outs.pop()
