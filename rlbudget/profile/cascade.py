"""A cascade policy's latency and energy on a device (:mod:`rlbudget.policy.cascade`): the
small path (its int8 bodies alone), the worst case (small, then full) and the mean over
observations (``share · small + (1 - share) · worst``, ``share`` the part the small body
decides alone). ``profile`` checks the worst case against ``inference.latency`` (a
deadline holds for every decision) and the mean against ``inference.energy`` (energy adds
up over decisions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlbudget.devices import Device, Range
from rlbudget.policy.cascade import Cascade
from rlbudget.policy.model import Array, Policy


@dataclass(frozen=True)
class CascadeLatency:
    """Target latency of each path, the share the small body decides, and the mean."""

    share_small: float
    states: int
    small: Range
    worst: Range
    mean: Range
    how: str

    def to_dict(self) -> dict[str, Any]:
        return {"share_small": self.share_small, "states": self.states,
                "small": self.small.to_dict(), "worst": self.worst.to_dict(),
                "mean": self.mean.to_dict(), "how": self.how}  # fmt: skip


def _add(a: Range, b: Range) -> Range:
    return Range(a.low + b.low, a.typical + b.typical, a.high + b.high)


def cascade_latency(policy: Policy, device: Device, obs: Array) -> CascadeLatency:
    """The figures of a cascade ``policy`` on ``device``, its share measured on ``obs``.

    Each body is estimated as a policy of its own (:func:`~rlbudget.profile.latency.
    estimate_target`, invoke overhead included in each: the worst case is an upper bound).
    """
    from rlbudget.compress.cascade import small_share
    from rlbudget.profile.latency import estimate_target

    body = policy.body
    assert isinstance(body, Cascade)

    def alone(b: Any) -> Range:
        return estimate_target(Policy(policy.observation_space, policy.action_space,
                                      policy.preprocess, b, policy.head), device)[0]  # fmt: skip

    small = alone(body.small[0])
    for extra in body.small[1:]:
        small = _add(small, alone(extra))
    worst = _add(small, alone(body.full))
    share = small_share(policy, obs)
    mean = _add(small * share, worst * (1 - share))
    how = (f"cascade: the small body ({body.small_macs():,} MACs) decides {share:.1%} of "
           f"{len(obs)} visited states alone, else the full one too ({body.macs():,} MACs in "
           "all); each body by the device model")  # fmt: skip
    return CascadeLatency(share, len(obs), small, worst, mean, how)
