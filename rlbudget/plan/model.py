"""What a plan is: ranked options, each with its estimates, checks and reasons, and the
binding limit when nothing fits. :func:`rlbudget.plan.make_plan` builds it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rlbudget.budget import Budget
from rlbudget.devices import Range
from rlbudget.envs import EnvSpec
from rlbudget.limits import Check, binding, closeness, format_figure
from rlbudget.plan.rules import RULES, Context

SCHEMA = "rlbudget.plan/2"


@dataclass(frozen=True)
class Estimates:
    """What an option costs. Inference figures are for the target device, training for the host."""

    parameters: int
    weight_bytes: int
    activation_bytes: int
    ram_bytes: int
    flash_bytes: int
    macs: int
    latency_s: Range
    energy_j: Range
    env_steps: int
    train_time_s: float
    train_ram_bytes: int
    train_energy_j: float
    replay_capacity: int | None = None
    replay_bytes: int | None = None
    bytes_per_transition: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # ranges become {low, typical, high}


@dataclass(frozen=True)
class Option:
    """One ranked recommendation."""

    paradigm: str
    algorithm: str
    label: str
    library: str
    trainable: bool
    network: dict[str, Any]
    deploy_dtype: str
    deploy_format: str
    hyperparams: dict[str, Any]
    hyperparams_source: str
    hyperparams_tuned: bool
    estimates: Estimates
    checks: tuple[Check, ...]
    reasons: tuple[str, ...]
    score: float
    rank: int = 0
    deploy_method: str | None = None  # a compress method the deployment needs (cascade)

    @property
    def fits(self) -> bool:
        return all(c.status != "FAIL" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "paradigm": self.paradigm,
            "algorithm": self.algorithm,
            "label": self.label,
            "library": self.library,
            "trainable": self.trainable,
            "fits": self.fits,
            "score": self.score,
            "network": self.network,
            "deploy": {
                "dtype": self.deploy_dtype,
                "format": self.deploy_format,
                "method": self.deploy_method,
            },
            "hyperparams": {
                "params": self.hyperparams,
                "source": self.hyperparams_source,
                "tuned": self.hyperparams_tuned,
            },
            "estimates": self.estimates.to_dict(),
            "checks": [c.to_dict() for c in self.checks],
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Plan:
    """A ranked list of options with the rules that decided them."""

    budget: Budget
    env: EnvSpec
    context: Context
    options: tuple[Option, ...]
    excluded: tuple[tuple[str, str], ...] = field(default=())

    @property
    def best(self) -> Option | None:
        """The first option if it fits and is trainable, else None."""
        first = self.options[0] if self.options else None
        return first if first is not None and first.fits and first.trainable else None

    @property
    def fits(self) -> bool:
        return self.best is not None

    def binding(self) -> dict[str, Any] | None:
        """When nothing fits: the limit that binds on the closest option, and by how much."""
        if self.fits:
            return None
        candidates = [o for o in self.options if o.trainable and binding(o.checks)]
        if not candidates:
            return None
        closest = max(candidates, key=lambda o: closeness(o.checks))
        worst = binding(closest.checks)
        assert worst is not None and worst.with_margin is not None and worst.limit_value
        return {
            "option": closest.label,
            "limit": worst.limit,
            "unit": worst.unit,
            "needed_with_margin": worst.with_margin,
            "limit_value": worst.limit_value,
            "over_by": worst.with_margin - worst.limit_value,
            "over_by_ratio": worst.with_margin / worst.limit_value - 1.0,
            "message": _binding_message(closest, worst, self.budget.margin),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "fits": self.fits,
            "recommended": self.best.label if self.best else None,
            "budget": self.budget.to_dict(),
            "env": self.env.to_dict(),
            "context": self.context.to_dict(),
            "rules": {r.id: r.text for r in RULES.values()},
            "options": [o.to_dict() for o in self.options],
            "excluded": [{"algorithm": a, "reason": why} for a, why in self.excluded],
            "binding": self.binding(),
        }


def _binding_message(option: Option, c: Check, margin: float) -> str:
    assert c.with_margin is not None and c.limit_value
    return (
        f"nothing fits: {c.limit} binds — the closest option ({option.label}) needs "
        f"{format_figure(c.figure, c.unit)}, {format_figure(c.with_margin, c.unit)} with the "
        f"{margin:.0%} margin, over the {format_figure(c.limit_value, c.unit)} limit by "
        f"{format_figure(c.with_margin - c.limit_value, c.unit)} "
        f"({c.with_margin / c.limit_value - 1:.0%})"
    )
