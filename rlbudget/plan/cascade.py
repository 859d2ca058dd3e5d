"""The plan's cascade option (rule ``cascade``): when an MLP meets every deployment limit
but the energy per decision, a cascade (``compress --method cascade``,
:mod:`rlbudget.compress.cascade`) may: a tiny int8 student decides alone when it is
confident, the full policy otherwise.

The estimate prices each body by the cost model as a policy of its own (invoke overhead
included in each, as ``profile`` does: :mod:`rlbudget.profile.cascade`):

- **students**: one for Discrete actions, two for Box actions (their disagreement is the
  confidence), each an int8 MLP of :func:`~rlbudget.compress.cascade.student_widths` of the
  full policy's hidden widths, with its activation;
- **worst case** (what ``inference.latency`` is checked against: a deadline holds for every
  decision): the students + the full body;
- **mean** (what ``inference.energy`` is checked against: energy adds up over decisions):
  the students + (1 − share) × the full body, ``share`` the part of the decisions the
  students take alone, measured (``data/cascade.yaml``, with its source);
- **flash**: the full body's + the students' weights (one runtime); **RAM**: the larger
  of the two paths' buffers.

``rlbudget run`` then builds the cascade (int8 full body, right after the int8
candidate) and profiles it: the share the plan assumed is measured there on the states the
cascade itself visits.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources

from rlbudget.compress.cascade import student_widths
from rlbudget.costs import Inference, estimate_energy, inference, mlp_body
from rlbudget.devices import Device, Range
from rlbudget.envs import SpaceSpec
from rlbudget.limits import FAIL, Check
from rlbudget.policy.cascade import RULES

METHOD = "cascade"
"""The plan's deploy method for a cascade option (``deploy.method`` in the plan)."""


@functools.cache
def shares() -> dict[str, tuple[float, str]]:
    """``data/cascade.yaml``: action kind (``discrete``, ``box``) → (the share of decisions
    the students take alone, its source)."""
    import yaml

    path = resources.files("rlbudget") / "data" / "cascade.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {kind: (float(e["share"]), str(e["source"])) for kind, e in doc["share_small"].items()}


def fires(checks: Sequence[Check]) -> bool:
    """Whether a plain option's checks call for a cascade: ``inference.energy`` fails
    (with the margin) while every other inference and device check passes."""
    deploy = [c for c in checks if c.limit.startswith(("inference.", "device."))]
    energy = [c for c in deploy if c.limit == "inference.energy"]
    others = [c for c in deploy if c.limit != "inference.energy"]
    return bool(energy) and energy[0].status == FAIL and all(c.status != FAIL for c in others)


def _add(a: Range, b: Range) -> Range:
    return Range(a.low + b.low, a.typical + b.typical, a.high + b.high)


def cascade_inference(
    full: Inference,
    obs: SpaceSpec,
    act: SpaceSpec,
    hidden: Sequence[int],
    activation: str,
    device: Device,
) -> tuple[Inference, str]:
    """A cascade of the full body that costs ``full`` on ``device`` (module docstring):
    flash, RAM, the worst-case latency and the mean energy, and the ``[cascade]`` reason."""
    share, source = shares()["discrete" if act.kind == "discrete" else "box"]
    students = RULES["gap" if act.kind == "discrete" else "agreement"]
    widths = student_widths(hidden)
    body = mlp_body(obs, act, widths, activation, "int8", device.fpu)
    one = inference(body, "int8", device, obs)
    small = one.latency_s * students
    worst = _add(small, full.latency_s)
    mean = _add(small, full.latency_s * (1 - share))
    flash = full.flash_bytes + students * body.weight_bytes
    shape = "-".join(map(str, widths))
    reason = (
        f"[cascade] Energy per decision is over its limit with the full policy alone, and the "
        f"latency is met even in a cascade's worst case: deploy a cascade (compress --method "
        f"cascade), {students} int8 student{'s' if students > 1 else ''} {shape} deciding "
        f"alone when confident. Estimated from a {share:.1%} share of decisions taken by the "
        f"students ({source}): mean {mean.typical * 1e6:.3g} µs per decision (energy), worst "
        f"case {worst.typical * 1e6:.3g} µs (latency), against {full.latency_s.typical * 1e6:.3g}"
        " µs for the full policy; run measures the real share."
    )
    return Inference(flash, max(full.ram_bytes, one.ram_bytes), worst,
                     estimate_energy(device, mean)), reason  # fmt: skip
