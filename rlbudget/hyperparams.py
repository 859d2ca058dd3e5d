"""Algorithm facts and tuned hyperparameters, read from ``rlbudget/data/``.

``algorithms.yaml`` says what each algorithm is (family, spaces, throughput here,
sample efficiency); ``hyperparams/<algo>.yaml`` holds per-env tuned values with their
source (RL Baselines3 Zoo, Sutton & Barto, measurements on a 2-core x86 host) and a
``default`` entry used, and labelled untuned, for any other env.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import yaml

from rlbudget.errors import PlanError
from rlbudget.units import parse_count

if TYPE_CHECKING:
    from rlbudget.envs import EnvSpec

# Low-dimensional limits: a uniform grid over more dims explodes; tile coding hashes up to ~8.
MAX_TABULAR_BOX_DIMS = 4
MAX_TILE_CODING_DIMS = 8


@dataclass(frozen=True)
class AlgorithmInfo:
    """What the planner knows about one algorithm."""

    id: str
    family: str
    model_based: bool
    off_policy: bool
    observations: tuple[str, ...]
    actions: tuple[str, ...]
    library: str
    trainable: bool
    host_steps_per_s: float
    sample_efficiency: float
    replay_buffer: bool
    description: str
    sources: Mapping[str, str]

    @property
    def tabular(self) -> bool:
        """A tabular body: the tabular family and Dyna-Q (tabular, model-based)."""
        return self.family == "tabular" or self.id == "dyna-q"

    def incompatibility(self, env: EnvSpec) -> str | None:
        """None if the algorithm can act in the env's spaces, else why it cannot (the
        planner excludes it; ``train`` refuses it)."""
        obs, act, name = env.observation, env.action, env.env_id
        if obs.kind not in self.observations:
            return f"needs {' or '.join(self.observations)} observations; {name} has {obs.kind}"
        if act.kind not in self.actions:
            return f"needs {' or '.join(self.actions)} actions; {name} has {act.kind}"
        if self.tabular and obs.kind == "box" and obs.dim > MAX_TABULAR_BOX_DIMS:
            return (
                f"a uniform grid over {obs.dim} observation dims is too large "
                f"(tabular needs ≤ {MAX_TABULAR_BOX_DIMS})"
            )
        if self.id == "sarsa-lambda" and obs.dim > MAX_TILE_CODING_DIMS:
            return f"tile coding needs ≤ {MAX_TILE_CODING_DIMS} observation dims, not {obs.dim}"
        return None


@dataclass(frozen=True)
class Hyperparams:
    """Hyperparameters for one algorithm on one env, with where they came from."""

    algorithm: str
    env_id: str | None
    params: Mapping[str, Any]
    n_timesteps: int
    source: str
    tuned: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "env_id": self.env_id,
            "params": dict(self.params),
            "n_timesteps": self.n_timesteps,
            "source": self.source,
            "tuned": self.tuned,
        }


def _read(*parts: str) -> Any:
    path = resources.files("rlbudget").joinpath("data", *parts)
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@functools.cache
def algorithms() -> dict[str, AlgorithmInfo]:
    """Every algorithm the planner knows, by id."""
    out = {}
    for algo_id, e in _read("algorithms.yaml").items():
        out[algo_id] = AlgorithmInfo(
            id=algo_id,
            family=str(e["family"]),
            model_based=bool(e["model_based"]),
            off_policy=bool(e["off_policy"]),
            observations=tuple(e["observations"]),
            actions=tuple(e["actions"]),
            library=str(e["library"]),
            trainable=bool(e["trainable"]),
            host_steps_per_s=float(e["host_steps_per_s"]),
            sample_efficiency=float(e["sample_efficiency"]),
            replay_buffer=bool(e["replay_buffer"]),
            description=str(e["description"]),
            sources=MappingProxyType(dict(e.get("sources", {}))),
        )
    return out


def algorithm_info(algorithm: str) -> AlgorithmInfo:
    """One algorithm's facts.

    :raises PlanError: unknown id, with a did-you-mean and the list of ids.
    """
    algos = algorithms()
    key = algorithm.strip().lower()
    if key in algos:
        return algos[key]
    close = difflib.get_close_matches(key, list(algos), n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else "."
    raise PlanError(f"unknown algorithm '{algorithm}'{hint} Known: {', '.join(algos)}")


@functools.cache
def _table(algorithm: str) -> dict[str, Any]:
    data: dict[str, Any] = _read("hyperparams", f"{algorithm}.yaml")
    return data


def _unversioned(env_id: str) -> str:
    return re.sub(r"-v\d+$", "", env_id)


def get_hyperparams(algorithm: str, env_id: str) -> Hyperparams:
    """Tuned hyperparameters for ``env_id`` if the data has them, else the default entry.

    An entry for another version of the same env (``LunarLander-v2`` for ``-v3``) counts
    as tuned; its source says which version it was tuned on.
    """
    info = algorithm_info(algorithm)
    table = _table(info.id)
    entry_id: str | None = env_id if env_id in table else None
    if entry_id is None:
        base = _unversioned(env_id)
        entry_id = next((k for k in table if k != "default" and _unversioned(k) == base), None)
    tuned = entry_id is not None
    entry = dict(table[entry_id if entry_id is not None else "default"])
    source = str(entry.pop("source"))
    if entry_id is not None and entry_id != env_id:
        source += f" (tuned for {entry_id})"
    n_timesteps = parse_count(entry.pop("n_timesteps"))
    return Hyperparams(
        algorithm=info.id,
        env_id=env_id if tuned else None,
        params=MappingProxyType(entry),
        n_timesteps=n_timesteps,
        source=source,
        tuned=tuned,
    )
