"""A plan file read back: :func:`load_plan` reads what :func:`~rlbudget.plan.save_plan`
(or ``rlbudget run``'s plan.json) wrote, checks its schema, and gives each option as a
:class:`PlanChoice`, the plan stage that ``rlbudget train PLAN.yaml`` and ``run`` train."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from rlbudget.budget import Task, TrainingLimits
from rlbudget.errors import PlanError
from rlbudget.plan.model import SCHEMA


@dataclass(frozen=True)
class PlanChoice:
    """One option of a plan and the env facts its training needs: what ``rlbudget run``
    records as its plan stage, and what ``rlbudget train PLAN.yaml`` trains."""

    option: int  # 1-based, as `--option N`
    label: str
    algorithm: str
    env: str
    params: dict[str, Any]
    fits_estimate: bool
    reward_threshold: float | None
    max_episode_steps: int | None
    # compress methods the option's deployment needs, for run's search (rule cascade:
    # "int8,cascade"); None: none beyond run's usual candidates
    compress: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlanChoice:
        return cls(**data)


@dataclass(frozen=True)
class SavedPlan:
    """A plan as :meth:`Plan.to_dict` writes it, read back: every option as a
    :class:`PlanChoice`, which of them rlbudget can train, and the budget's training limits
    (what ``train`` and ``run`` take from a plan)."""

    choices: tuple[PlanChoice, ...]
    trainable: tuple[bool, ...]
    training: TrainingLimits
    task: Task
    margin: float

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> SavedPlan:
        """:raises PlanError: another schema, or a document that is not a plan."""
        if not isinstance(doc, Mapping) or "schema" not in doc:
            raise PlanError("no schema: not a plan written by 'rlbudget plan -o'")
        if doc["schema"] != SCHEMA:
            raise PlanError(f"schema '{doc['schema']}' is not {SCHEMA}: a plan of another "
                            "rlbudget version; write it again with rlbudget plan -o")  # fmt: skip
        try:
            env, budget, options = doc["env"], doc["budget"], doc["options"]
            facts = (str(env["env_id"]), env["reward_threshold"], env["max_episode_steps"])
            choices = []
            for i, o in enumerate(options, start=1):
                choices.append(PlanChoice(i, str(o["label"]), str(o["algorithm"]), facts[0],
                                          dict(o["hyperparams"]["params"]), bool(o["fits"]),
                                          *facts[1:], _compress(o["deploy"])))  # fmt: skip
            return cls(tuple(choices), tuple(bool(o["trainable"]) for o in options),
                       TrainingLimits(**budget["training"]), Task(**budget["task"]),
                       float(budget["margin"]))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"not a plan written by 'rlbudget plan -o' ({type(exc).__name__}: "
                            f"{exc})") from None  # fmt: skip

    def choose(self, option: int | None = None) -> PlanChoice:
        """Option ``option`` (1-based), which must be trainable; None: the first trainable.

        :raises PlanError: no such option, or one rlbudget cannot train.
        """
        if option is None:
            index = next((i for i, ok in enumerate(self.trainable) if ok), None)
            if index is None:
                raise PlanError("no option of the plan can be trained by rlbudget; see "
                                "rlbudget plan")  # fmt: skip
            return self.choices[index]
        if not 1 <= option <= len(self.choices):
            raise PlanError(f"--option {option}: the plan has {len(self.choices)} options")
        chosen = self.choices[option - 1]
        if not self.trainable[option - 1]:
            raise PlanError(f"--option {option} ({chosen.label}) cannot be trained by "
                            "rlbudget; choose a trainable option (rlbudget plan)")  # fmt: skip
        return chosen


def _compress(deploy: Mapping[str, Any]) -> str | None:
    """The compress methods of a plan option's ``deploy`` block: its ``method`` after int8
    when it deploys int8 (a plan of an earlier version has no ``method``)."""
    method = deploy.get("method")
    if not method:
        return None
    return f"int8,{method}" if deploy.get("dtype") == "int8" else str(method)


def load_plan(path: str | os.PathLike[str]) -> SavedPlan:
    """Read a plan file written by :func:`save_plan` (YAML) or ``rlbudget run`` (plan.json).

    :raises PlanError: no such file, not YAML, or not a plan of this schema (one line that
        names the file and how to write it again).
    """
    import yaml

    again = f"write it again with rlbudget plan BUDGET -o {path}"
    if not os.path.isfile(path):
        raise PlanError(f"{path}: no such plan file; write one with rlbudget plan BUDGET -o {path}")
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: not a plan written by 'rlbudget plan -o' "
                        f"({type(exc).__name__}); {again}") from None  # fmt: skip
    try:
        return SavedPlan.from_dict(doc)
    except PlanError as exc:
        raise PlanError(f"{path}: {exc}; {again}") from None
