"""The compression search of ``rlbudget run``: which candidates to try for a policy
(:func:`candidate_specs`), the record of each one tried (:class:`Candidate`) with its
profile read back (:class:`ProfileRecord`), and how the outcome reads: the closest
candidate, the advice when nothing fits, the table and the chart of the report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlbudget import units
from rlbudget.compress.pipeline import Gate, MethodOptions
from rlbudget.errors import RlbudgetError
from rlbudget.limits import FAIL, Check, closeness
from rlbudget.limits import advice as limit_advice
from rlbudget.policy.model import MLP, Policy
from rlbudget.profile.verdict import SCHEMA as PROFILE_SCHEMA

if TYPE_CHECKING:
    from rlbudget.budget import Budget


@dataclass(frozen=True)
class CandidateSpec:
    """One compression to try: a name, the methods (None: the policy as trained) and options."""

    name: str
    methods: str | None
    options: MethodOptions = field(default_factory=MethodOptions)


def candidate_specs(policy: Policy, planned: str | None = None) -> list[CandidateSpec]:
    """The candidates for ``policy``'s body, cheapest first (see :mod:`rlbudget.run`).

    :param planned: compress methods the plan's option deploys with (rule ``cascade``:
        ``int8,cascade`` or ``cascade``), tried right after ``int8`` for an MLP.
    """
    kind = policy.body.kind
    if isinstance(policy.body, MLP):
        widest = max(int(layer.W.shape[1]) for layer in policy.body.layers[:-1]) if len(
            policy.body.layers) > 1 else 8  # fmt: skip
        depth = max(len(policy.body.layers) - 1, 1)
        specs = [CandidateSpec("as trained", None), CandidateSpec("int8", "int8")]
        if planned is not None and "cascade" in planned.split(","):
            specs.append(CandidateSpec(planned.replace(",", " + "), planned))
        for keep in (0.5, 0.25):
            options = MethodOptions(keep=keep, recover=True)
            specs.append(CandidateSpec(f"prune-neurons {keep:.0%} + recover + int8",
                                       "prune-neurons,int8", options))  # fmt: skip
        for part in (4, 8):
            width = max(4, widest // part)
            widths = (width,) * depth
            specs.append(CandidateSpec(f"distill {'-'.join(map(str, widths))} + int8",
                                       "distill,int8", MethodOptions(widths=widths)))  # fmt: skip
        return specs
    if kind == "table":
        return [CandidateSpec("as trained", None), CandidateSpec("pack", "pack"),
                CandidateSpec("pack + drop-unvisited", "pack,drop-unvisited")]  # fmt: skip
    if kind == "linear":
        return [CandidateSpec("as trained", None), CandidateSpec("int16", "int16"),
                CandidateSpec("int8", "int8")]  # fmt: skip
    return [CandidateSpec("as trained", None)]


@dataclass(frozen=True)
class ProfileRecord:
    """A candidate's ``profile.json`` (schema ``rlbudget.profile/1``) read back: its
    verdict, binding limit, checks and return; the document itself goes whole into
    report.json."""

    verdict: str
    binding: str | None
    checks: tuple[Check, ...]
    return_mean: float | None
    target: float | None
    document: dict[str, Any]

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ProfileRecord:
        """:raises ValueError: another schema. :raises KeyError, TypeError: not a profile."""
        if doc.get("schema") != PROFILE_SCHEMA:
            raise ValueError(f"schema {doc.get('schema')!r} is not {PROFILE_SCHEMA}")
        ret = doc["return"] or {}
        return cls(doc["verdict"], doc["binding"], tuple(Check.from_dict(c) for c in doc["checks"]),
                   ret.get("mean"), ret.get("target"), dict(doc))  # fmt: skip

    @classmethod
    def read(cls, folder: Path) -> ProfileRecord:
        """``folder/profile.json``. :raises RlbudgetError: one this version cannot read."""
        path = folder / "profile.json"
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RlbudgetError(f"{path}: not a profile this version of rlbudget wrote ({exc}); "
                                "run again into a new -o folder") from None  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return self.document

    def check(self, limit: str) -> Check | None:
        return next((c for c in self.checks if c.limit == limit), None)

    @property
    def missed_return(self) -> bool:
        """Whether the return misses the target (compression never raises a return)."""
        check = self.check("task.min_return")
        return check is not None and check.status == FAIL

    def closeness(self) -> tuple[float, float]:
        """How near to fitting (:func:`rlbudget.limits.closeness`)."""
        return closeness(self.checks)


@dataclass(frozen=True)
class Candidate:
    """One candidate tried: its policy and profile lie in its own folder. One that failed
    to build has its ``error`` and no figures."""

    index: int
    name: str
    methods: str | None
    policy: str
    fits: bool
    retention: float | None = None  # compressed ones: the return kept, and the gate
    gate: Gate | None = None
    error: str | None = None
    binding: str | None = None
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    latency_s: float | None = None
    return_mean: float | None = None
    verdict: str | None = None

    @property
    def folder(self) -> Path:
        return Path(self.policy).parent

    @property
    def gate_failed(self) -> bool:
        return self.gate is not None and not self.gate.passed

    def status(self) -> tuple[str, str]:
        """The verdict and binding limit as the tables show them: a profile that passes
        but a compression gate that fails reads ``PASS, gate FAIL`` and binds at
        ``compression gate``."""
        verdict = f"{self.verdict}" + (", gate FAIL" if self.gate_failed else "")
        binding = self.binding or ("compression gate" if self.gate_failed else "—")
        return verdict, binding

    def to_dict(self) -> dict[str, Any]:
        """As state.json and report.json hold it: a failed one without figures."""
        data: dict[str, Any] = {"index": self.index, "name": self.name,
                                "methods": self.methods, "policy": self.policy}  # fmt: skip
        if self.retention is not None:
            data["retention"] = self.retention
        if self.gate is not None:
            data["gate"] = self.gate.to_dict()
        data["fits"] = self.fits
        if self.error is not None:
            return {**data, "error": self.error}
        return {**data, "binding": self.binding, "flash_bytes": self.flash_bytes,
                "ram_bytes": self.ram_bytes, "latency_s": self.latency_s,
                "return_mean": self.return_mean, "verdict": self.verdict}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        gate = data.get("gate")
        return cls(**{**data, "gate": None if gate is None else Gate.from_dict(gate)})


@dataclass(frozen=True)
class Search:
    """The outcome of the search: the format profiled, every candidate tried, the first
    that fits (None: none)."""

    format: str
    candidates: tuple[Candidate, ...]
    chosen: Candidate | None

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "candidates": [c.to_dict() for c in self.candidates],
                "chosen": None if self.chosen is None else self.chosen.to_dict()}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Search:
        chosen = data["chosen"]
        return cls(data["format"], tuple(Candidate.from_dict(c) for c in data["candidates"]),
                   None if chosen is None else Candidate.from_dict(chosen))  # fmt: skip


def gate_words(gate: Gate) -> str:
    """A gate's two drops in words."""
    return (f"return mean drop {gate.mean_drop:.1%}, worst 5 % drop {gate.tail_drop:.1%} "
            f"(limit {gate.max_return_drop:.0%})")  # fmt: skip


def hopeless(first: Candidate | None) -> bool:
    """Whether the policy as trained (the first candidate) misses the return target:
    compression never raises a return, so the search ends there."""
    if first is None or first.error is not None or first.fits:
        return False
    return ProfileRecord.read(first.folder).missed_return


def closest(candidates: Sequence[Candidate]) -> Candidate | None:
    """The built candidate whose binding check is least over its limit."""
    built = [c for c in candidates if c.error is None]
    if not built:
        return None
    return max(built, key=lambda c: ProfileRecord.read(c.folder).closeness())


def advice(budget: Budget, profile: ProfileRecord) -> str:
    """What would fit, in words, from the closest candidate's binding check."""
    binding = profile.check(profile.binding or "")
    assert binding is not None
    return limit_advice(binding, budget.margin)


def candidates_markdown(candidates: Sequence[Candidate], chosen: Candidate | None,
                        advice: str) -> str:  # fmt: skip
    lines = ["", "## Candidates tried", "",
             "| # | candidate | verdict | binding | flash | RAM | latency (target) | return |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in candidates:
        if c.error is not None:
            lines.append(f"| {c.index} | {c.name} | error | {c.error} | | | | |")
            continue
        verdict, binding = c.status()
        assert c.flash_bytes is not None and c.ram_bytes is not None
        assert c.latency_s is not None
        lines.append(
            f"| {c.index} | {c.name} | {verdict} | {binding} "
            f"| {units.format_bytes(c.flash_bytes)} | {units.format_bytes(c.ram_bytes)} "
            f"| {c.latency_s * 1e6:.3g} µs | "
            + ("—" if c.return_mean is None else f"{c.return_mean:.4g}")
            + " |"
        )
    lines += ["", f"**Result:** {'candidate ' + chosen.name if chosen else 'nothing fits'}"
              f" — {advice}.", "",
              "![return against flash and latency](candidates.png)", ""]  # fmt: skip
    return "\n".join(lines)


def candidates_chart(
    budget: Budget, candidates: Sequence[Candidate], path: Path, target: float | None = None
) -> None:
    from rlbudget import charts

    built = [c for c in candidates if c.error is None and c.return_mean is not None]
    fig, axes = charts.figure(10, 4.4, ncols=2)
    for ax, key, limit, label in (
        (axes[0], "flash_bytes", budget.inference.flash_bytes, "flash (bytes)"),
        (axes[1], "latency_s", budget.inference.latency_s, "decision latency on the target (s)"),
    ):
        for c in built:
            color = "tab:green" if c.fits else "tab:red"
            x = getattr(c, key)
            ax.scatter(x, c.return_mean, color=color)
            ax.annotate(c.name, (x, c.return_mean), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")  # fmt: skip
        if limit is not None:
            ax.axvline(limit / (1 + budget.margin), color="black", linestyle=":",
                       linewidth=1, label="limit ÷ (1 + margin)")  # fmt: skip
        charts.target_line(ax, target)
        if limit is not None or target is not None:
            ax.legend(fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("mean return")
    fig.suptitle(charts.wrap("Candidates tried (green: fits the budget, red: does not)", 90))
    charts.save(fig, path)
