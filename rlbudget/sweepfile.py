"""A sweep file (YAML) read and checked into the trials it combines (:func:`load_sweep`),
and the budget of each trial (:func:`trial_budget`). The format is in :mod:`rlbudget.sweep`'s
docstring and README 'Sweeps'."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from rlbudget.budget import Budget, Task, load_budget
from rlbudget.errors import PlanError

STAGES = ("run", "train", "plan")
KEYS = {"name", "budgets", "devices", "envs", "seeds", "stage", "grid", "random"}


@dataclass(frozen=True)
class Trial:
    """One combination: a budget (file and device), env, seed and hyperparameters."""

    budget_file: str
    device: str | None
    env: str | None
    seed: int
    hyperparams: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """A stable folder name: readable parts and a hash of the whole."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
        parts = [Path(self.budget_file).stem, self.device, self.env, f"s{self.seed}"]
        readable = "-".join(p for p in parts if p).replace("/", "_").replace(":", "_")
        return f"{readable}-{digest.hexdigest()[:8]}"

    @property
    def group(self) -> tuple[str, str | None, str | None, str]:
        """The row a trial belongs to: everything but the seed."""
        return (self.budget_file, self.device, self.env,
                json.dumps(self.hyperparams, sort_keys=True))  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trial:
        return cls(**data)


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file."""

    name: str
    stage: str
    trials: tuple[Trial, ...]
    source: str


def _fail(source: str, message: str) -> PlanError:
    return PlanError(f"{source}: {message}")


def _list(doc: Mapping[str, Any], key: str, source: str, kind: type) -> list[Any] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(
            isinstance(v, kind) and not isinstance(v, bool) for v in value):  # fmt: skip
        raise _fail(source, f"'{key}' must be a non-empty list of {kind.__name__}s, not "
                            f"{json.dumps(value, default=str)}")  # fmt: skip
    return value


def _grid(spec: Any, source: str) -> list[dict[str, Any]]:
    if not isinstance(spec, dict) or set(spec) - {"hyperparams"}:
        raise _fail(source, "'grid' takes 'hyperparams': a mapping of name → list of values")
    params = spec.get("hyperparams") or {}
    if not isinstance(params, dict) or not all(isinstance(v, list) and v for v in params.values()):
        raise _fail(source, "grid.hyperparams: each name needs a non-empty list of values")
    names = sorted(params)
    return [dict(zip(names, values, strict=True))
            for values in itertools.product(*(params[n] for n in names))]  # fmt: skip


def _random(spec: Any, source: str, seed: int = 0) -> list[dict[str, Any]]:
    import numpy as np

    if not isinstance(spec, dict) or set(spec) - {"n", "hyperparams", "seed"}:
        raise _fail(source, "'random' takes 'n', 'hyperparams' and optionally 'seed'")
    n, params = spec.get("n"), spec.get("hyperparams") or {}
    if type(n) is not int or n < 1:
        raise _fail(source, f"random.n must be a whole number ≥ 1, not {n!r}")
    rng = np.random.default_rng(int(spec.get("seed", seed)))
    draws: list[dict[str, Any]] = [{} for _ in range(n)]
    for name in sorted(params):
        values = params[name]
        if not isinstance(values, list) or len(values) < 2:
            raise _fail(source, f"random.hyperparams.{name}: give [low, high] or a list of "
                                "3+ choices")  # fmt: skip
        for draw in draws:
            if len(values) == 2 and all(isinstance(v, int | float) for v in values):
                low, high = sorted(float(v) for v in values)
                if low > 0 and high / low >= 10:
                    value: Any = float(math.exp(rng.uniform(math.log(low), math.log(high))))
                else:
                    value = float(rng.uniform(low, high))
                if all(isinstance(v, int) for v in values):
                    value = round(value)
            else:
                value = values[int(rng.integers(len(values)))]
            draw[name] = value
    return draws


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file; every budget it names is loaded (and so checked).

    :raises PlanError: a missing file, unknown keys, bad lists, an unknown stage.
    :raises BudgetError: a budget file that does not load.
    """
    p = Path(path)
    source = str(path)
    if not p.is_file():
        raise _fail(source, "no such sweep file; see README 'Sweeps' for the format")
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _fail(source, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise _fail(source, "expected a mapping with 'budgets' (and devices, envs, seeds …)")
    unknown = set(doc) - KEYS
    if unknown:
        raise _fail(source, f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; known: "
                            f"{', '.join(sorted(KEYS))}")  # fmt: skip
    budgets = _list(doc, "budgets", source, str)
    if budgets is None:
        raise _fail(source, "'budgets' is missing: list one or more budget files")
    files = [str((p.parent / b) if not Path(b).is_absolute() else Path(b)) for b in budgets]
    for f in files:
        load_budget(f)  # fail now, not in a worker
    devices = _list(doc, "devices", source, str) or [None]
    envs = _list(doc, "envs", source, str) or [None]
    seeds = _list(doc, "seeds", source, int) or [0]
    if any(s < 0 for s in seeds):
        raise _fail(source, "seeds must be ≥ 0")
    stage = doc.get("stage", "run")
    if stage not in STAGES:
        raise _fail(source, f"stage '{stage}': use one of {', '.join(STAGES)}")
    if "grid" in doc and "random" in doc:
        raise _fail(source, "give 'grid' or 'random', not both")
    settings = ([{}] if "grid" not in doc and "random" not in doc
                else _grid(doc["grid"], source) if "grid" in doc
                else _random(doc["random"], source))  # fmt: skip
    if devices != [None]:
        from rlbudget.devices import get_device

        for d in devices:
            get_device(d)  # an unknown device fails here, with its did-you-mean
    trials = tuple(
        Trial(f, d, e, s, h)
        for f, d, e, h, s in itertools.product(files, devices, envs, settings, seeds)
    )
    return Sweep(str(doc.get("name", p.stem)), stage, trials, source)


def trial_budget(trial: Trial) -> Budget:
    """The budget of one trial: its file, with the device and env replaced if given."""
    from rlbudget.devices import get_device

    budget = load_budget(trial.budget_file)
    if trial.device is not None:
        budget = replace(budget, device=get_device(trial.device))
    if trial.env is not None:  # the budget's min_return holds only for its own env
        from rlbudget.limits import target_return

        own = target_return(budget.task, trial.env, None).value
        budget = replace(budget, task=Task(trial.env, own, budget.task.env_step_cost_s))
    return budget
