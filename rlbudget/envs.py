"""Environments: make a gymnasium env and read it into an :class:`EnvSpec`.

gymnasium is imported inside the functions, so ``import rlbudget.envs`` is cheap.

Custom envs, as in RL Zoo: ``module:EnvId`` (gymnasium imports ``module``, which
registers ``EnvId``), or ``gym_packages=["my_pkg"]`` (``--gym-package``) to import
modules that register envs before the id is looked up.

Supported spaces: ``Box`` and ``Discrete`` that starts at 0. A ``Discrete`` with
another ``start`` is rejected, because the policy's one-hot and argmax use
``0..n-1`` as they are; the error says how to shift it.

Composite observations are read as one of those two, and :func:`make_env` wraps the
env so that its observations match (:func:`composite_observation`):

- a ``Tuple`` of ``Discrete`` spaces (Blackjack's) is their product, one ``Discrete``
  of ``n_1 * … * n_k`` states: the state is the parts' mixed-radix index, row-major
  (``(p_1 * n_2 + p_2) * n_3 + p_3`` for three parts, each counted from its ``start``);
  the spec keeps the radices, and the C export writes the same index function;
- any other ``Tuple`` or ``Dict`` of ``Box``, ``Discrete``, ``MultiDiscrete`` and
  ``MultiBinary`` parts is flattened to one float32 ``Box`` by
  ``gymnasium.spaces.flatten`` (Discrete parts one-hot, Dict keys in sorted order).

Either way the spec carries a ``note`` that says so; plan shows it. Every other space
gets an :class:`~rlbudget.errors.EnvError` that says which wrapper makes it Discrete or
Box.

Importing a module runs its code, so an id read from a file (a model's or folder's name,
``policy.json``'s provenance, a plan or sweep file) may not name a module that is not
imported yet: only ids the user named (``--env``, the budget given on the command line:
:func:`trust_env_ids`), ``trusted=True`` from Python, or ``--trust-env-id``
(:func:`trust_all_env_ids`) may. A module already imported (``--gym-package``, or by the
caller) runs nothing more. For a plain id, the registered ``entry_point``'s package must be
imported already too (registering it ran that package's code).

``module:EnvId`` is gymnasium's own syntax and ``gymnasium.make`` does the lookup;
:func:`make_env` imports ``module`` itself first only so that a module that cannot
be imported gets one exact error line (gymnasium re-raises only
``ModuleNotFoundError``, with its own text), and validates the id with gymnasium's
``parse_env_id``.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rlbudget.env_kwargs import applied_kwargs, refused_kwargs, set_attributes
from rlbudget.errors import EnvError

# gymnasium writes "unbounded" float bounds as ±inf, but some envs use huge finite values.
UNBOUNDED = 1e10


def _json_float(x: float) -> float | str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


@dataclass(frozen=True)
class SpaceSpec:
    """A Discrete or Box space as plain data.

    ``radices``: for a Discrete read from a Tuple of Discrete spaces, the parts' sizes
    (the state is their mixed-radix index, see :meth:`index`); else None. ``note``: how
    a Tuple or Dict space was read (None for a plain Discrete or Box).
    """

    kind: str
    shape: tuple[int, ...]
    n: int | None
    low: tuple[float, ...] | None
    high: tuple[float, ...] | None
    dtype: str
    radices: tuple[int, ...] | None = None
    note: str | None = None

    def index(self, parts: Any) -> Any:
        """The state index of Tuple-of-Discrete observations ``parts`` ([..., k], each
        part counted from 0): row-major mixed radix, as the env wrapper and the C export.

        >>> SpaceSpec("discrete", (), 704, None, None, "int64", (32, 11, 2)).index([14, 10, 1])
        329
        """
        import numpy as np

        if self.radices is None:
            raise ValueError("index() is for a Discrete read from a Tuple of Discrete spaces")
        p = np.asarray(parts, dtype=np.int64)
        idx = np.ravel_multi_index(tuple(np.moveaxis(p, -1, 0)), self.radices)
        return int(idx) if np.ndim(idx) == 0 else idx

    @property
    def dim(self) -> int:
        """Box: number of elements; Discrete: 1."""
        return math.prod(self.shape) if self.kind == "box" else 1

    @property
    def infinite_bounds(self) -> bool:
        """A Box with any bound that is infinite or ≥ 1e10 in magnitude."""
        if self.kind != "box" or self.low is None or self.high is None:
            return False
        return any(abs(v) >= UNBOUNDED for v in (*self.low, *self.high))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "shape": list(self.shape),
            "n": self.n,
            "low": None if self.low is None else [_json_float(v) for v in self.low],
            "high": None if self.high is None else [_json_float(v) for v in self.high],
            "dtype": self.dtype,
            "dim": self.dim,
            "infinite_bounds": self.infinite_bounds,
            "radices": None if self.radices is None else list(self.radices),
            "note": self.note,
        }


@dataclass(frozen=True)
class EnvSpec:
    """What the planner needs to know about an env."""

    env_id: str
    observation: SpaceSpec
    action: SpaceSpec
    reward_threshold: float | None
    max_episode_steps: int | None
    step_cost_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "observation": self.observation.to_dict(),
            "action": self.action.to_dict(),
            "reward_threshold": self.reward_threshold,
            "max_episode_steps": self.max_episode_steps,
            "step_cost_s": self.step_cost_s,
        }


# How to make a space Discrete or Box, by (what, space class); FlattenObservation turns
# MultiDiscrete into one-hot and MultiBinary into one flat Box (Tuple and Dict observations
# are read without a wrapper: composite_observation).
_FLATTEN = "flatten it to a Box with gymnasium.wrappers.FlattenObservation"
_HINTS: dict[tuple[str, str], str] = {
    ("observation", "MultiBinary"): _FLATTEN,
    ("observation", "MultiDiscrete"): _FLATTEN,
    ("observation", "Discrete"): "shift it to 0 with gymnasium.wrappers.TransformObservation",
    ("action", "Discrete"): "shift it to 0 with gymnasium.wrappers.TransformAction",
}
_ACTION_HINT = "give it a Discrete or Box action space with gymnasium.wrappers.TransformAction"
_OTHER_HINT = "map it to a Box with gymnasium.wrappers.TransformObservation"


def _hint(what: str, kind: str) -> str:
    return _HINTS.get((what, kind), _ACTION_HINT if what == "action" else _OTHER_HINT)


def space_mismatch(env: Any, env_id: str, observation: SpaceSpec, action: SpaceSpec,
                   whose: str) -> str | None:  # fmt: skip
    """How ``env``'s spaces differ from ``observation`` / ``action`` (``whose``: "the
    policy's", "the teacher's" …), as the start of an error line; None when they match.
    """
    for what, want in (("observation", observation), ("action", action)):
        got = (observation_spec(env, env_id) if what == "observation"
               else space_spec(env.action_space, what=what, env_id=env_id))  # fmt: skip
        if (got.kind, got.shape, got.n) != (want.kind, want.shape, want.n):
            return (f"environment '{env_id}' has a {got.kind} {what} space "
                    f"{list(got.shape) or got.n}, but {whose} is {want.kind} "
                    f"{list(want.shape) or want.n}")  # fmt: skip
    return None


def env_mismatch(env_id: str, observation: SpaceSpec, action: SpaceSpec,
                 whose: str) -> str | None:  # fmt: skip
    """:func:`space_mismatch` against a fresh ``env_id`` env, closed afterwards."""
    env = make_env(env_id)
    try:
        return space_mismatch(env, env_id, observation, action, whose)
    finally:
        env.close()


def space_spec(space: Any, *, what: str = "observation", env_id: str = "") -> SpaceSpec:
    """Read a gymnasium ``Discrete`` (starting at 0) or ``Box`` space, or a ``Tuple`` or
    ``Dict`` observation space as :func:`composite_observation` reads it.

    :param space: the gymnasium space.
    :param what: ``"observation"`` or ``"action"``; used in the error message and its hint.
    :param env_id: the env's id, for the error message.
    :raises EnvError: any other space (or a Discrete with ``start != 0``), with the wrapper
        that fixes it.
    """
    from gymnasium import spaces

    kind = type(space).__name__
    if isinstance(space, spaces.Discrete):
        start = int(space.start)
        if start == 0:
            return SpaceSpec("discrete", (), int(space.n), None, None, str(space.dtype))
        hint = _hint(what, "Discrete")
        raise EnvError(
            f"environment '{env_id}' has a Discrete {what} space that starts at {start}; "
            f"rlbudget supports Discrete spaces that start at 0, and Box spaces. Wrap the env "
            f"({hint}) and register the wrapped env."
        )
    if isinstance(space, spaces.Box):
        return SpaceSpec(
            "box",
            tuple(int(s) for s in space.shape),
            None,
            tuple(float(v) for v in space.low.ravel()),
            tuple(float(v) for v in space.high.ravel()),
            str(space.dtype),
        )
    if what == "observation" and isinstance(space, spaces.Tuple | spaces.Dict):
        return composite_observation(space, env_id)[2]
    hint = _hint(what, kind)
    raise EnvError(
        f"environment '{env_id}' has a {kind} {what} space; rlbudget supports Discrete and Box "
        f"spaces. Wrap the env ({hint}) and register the wrapped env."
    )


_LEAVES = ("Box", "Discrete", "MultiDiscrete", "MultiBinary")


def _unsupported_part(space: Any, path: str = "") -> tuple[str, str] | None:
    """The first part of a Tuple/Dict space that flatten cannot turn into numbers:
    (its path, e.g. ``['name']`` or ``[2]``, and its class name); None when all can."""
    from gymnasium import spaces

    if isinstance(space, spaces.Tuple | spaces.Dict):
        items = space.spaces.items() if isinstance(space, spaces.Dict) else enumerate(space.spaces)
        for key, part in items:
            found = _unsupported_part(part, f"{path}[{key!r}]")
            if found is not None:
                return found
        return None
    return None if type(space).__name__ in _LEAVES else (path, type(space).__name__)


def composite_observation(space: Any, env_id: str = "") -> tuple[Any, Any, SpaceSpec]:
    """How a Tuple or Dict observation space is read: (the gymnasium Discrete or Box it
    becomes, the function from one observation to that space's, its :class:`SpaceSpec`).

    A Tuple of Discrete spaces becomes one Discrete (their product; the mixed-radix index
    of the parts), anything else one float32 Box by ``gymnasium.spaces.flatten``.

    :raises EnvError: a part that is not Box, Discrete, MultiDiscrete, MultiBinary or a
        Tuple/Dict of those, named by its path; an empty Tuple or Dict.
    """
    import numpy as np
    from gymnasium import spaces

    kind = type(space).__name__
    bad = _unsupported_part(space)
    if bad is not None or not space.spaces:
        where = f"a {bad[1]} part at {bad[0]}" if bad else "no parts"
        raise EnvError(
            f"environment '{env_id}' has a {kind} observation space with {where}; rlbudget "
            f"reads Tuple and Dict spaces of {', '.join(_LEAVES)} parts. Wrap the env "
            f"({_OTHER_HINT}) and register the wrapped env."
        )
    parts = space.spaces
    if isinstance(space, spaces.Tuple) and all(isinstance(p, spaces.Discrete) for p in parts):
        radices = tuple(int(p.n) for p in parts)
        starts = np.array([int(p.start) for p in parts], dtype=np.int64)
        n = math.prod(radices)

        def to_index(obs: Any) -> int:
            p = np.asarray(obs, dtype=np.int64) - starts
            return int(np.ravel_multi_index(tuple(p), radices))

        note = (f"{space} is read as Discrete({n}): the state is the parts' mixed-radix "
                f"index, row-major (radices {', '.join(map(str, radices))})")  # fmt: skip
        spec = SpaceSpec("discrete", (), n, None, None, "int64", radices, note)
        return spaces.Discrete(n), to_index, spec
    flat: Any = spaces.flatten_space(space)  # a Box, for Box/Discrete/Multi* parts
    box = spaces.Box(flat.low.astype(np.float32), flat.high.astype(np.float32),
                     dtype=np.float32)  # fmt: skip

    def to_box(obs: Any) -> Any:
        return np.asarray(spaces.flatten(space, obs), dtype=np.float32)

    order = f"; Dict keys in sorted order: {', '.join(map(str, parts))}" if isinstance(
        space, spaces.Dict) else ""  # fmt: skip
    note = (f"the {kind} observation space is flattened to a Box of {box.shape[0]} values "
            f"by gymnasium.spaces.flatten (Discrete parts one-hot{order})")  # fmt: skip
    spec = space_spec(box)
    return box, to_box, SpaceSpec(spec.kind, spec.shape, None, spec.low, spec.high,
                                  spec.dtype, None, note)  # fmt: skip


def observation_spec(env: Any, env_id: str = "") -> SpaceSpec:
    """The spec of an env made by :func:`make_env`: for a Tuple or Dict space, the one
    read from the original space (with its note and radices); else the env's own."""
    try:  # set on the composite reader, which the NaN/inf guard wraps
        spec = env.get_wrapper_attr("rlbudget_observation")
    except AttributeError:
        spec = None
    if isinstance(spec, SpaceSpec):
        return spec
    return space_spec(env.observation_space, what="observation", env_id=env_id)


def _read_composite(env: Any, env_id: str) -> Any:
    """``env`` wrapped so that a Tuple/Dict observation arrives as :func:`composite_observation`
    reads it; any other env as it is."""
    from gymnasium import spaces
    from gymnasium.wrappers import TransformObservation

    if not isinstance(env.observation_space, spaces.Tuple | spaces.Dict):
        return env
    target, func, spec = composite_observation(env.observation_space, env_id)
    wrapped = TransformObservation(env, func, target)
    wrapped.rlbudget_observation = spec  # type: ignore[attr-defined]
    return wrapped


def _import(module: str, what: str) -> None:
    """Import ``module``; an ImportError becomes an EnvError that starts with ``what``."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise EnvError(
            f"{what}: cannot import module '{module}' ({exc}); "
            "check that it is installed and on PYTHONPATH"
        ) from None


_ID_FORM = (
    "gymnasium ids look like [namespace/]Name-vN (e.g. CartPole-v1), "
    "or module:Name-vN for a custom env"
)


def _split_id(env_id: str) -> tuple[str, str]:
    """``"module:Name-vN"`` → (module, name); a plain id → ("", id). Checks the id's form."""
    from gymnasium import error as gym_error
    from gymnasium.envs.registration import parse_env_id

    parts = env_id.split(":")
    module, name = ("", parts[0]) if len(parts) == 1 else (parts[0], parts[-1])
    malformed = EnvError(f"environment id '{env_id}' is malformed; {_ID_FORM}")
    if len(parts) > 2 or not name.strip() or (len(parts) == 2 and not module.strip()):
        raise malformed
    try:
        parse_env_id(name)
    except gym_error.Error:
        raise malformed from None
    return module, name


# Set by ``rlbudget --trust-env-id``; an environment variable so that sweep workers inherit it.
TRUST_ENV_VAR = "RLBUDGET_TRUST_ENV_ID"
_trusted_ids: set[str] = set()


_trusted_budgets: set[str] = set()


def trust_all_env_ids(trust: bool) -> None:
    """Let (or stop letting) any env id import its module; forget ids and budget files
    trusted one by one."""
    _trusted_ids.clear()
    _trusted_budgets.clear()
    if trust:
        os.environ[TRUST_ENV_VAR] = "1"
    else:
        os.environ.pop(TRUST_ENV_VAR, None)


def trust_env_ids(*env_ids: str | None) -> None:
    """Ids the user named (``--env``, the budget's task.env) may import their module."""
    _trusted_ids.update(i for i in env_ids if i)


def trust_budget_file(path: str | os.PathLike[str]) -> None:
    """The task.env of the budget at ``path`` (the user's own, given on the command line) may
    import its module, once the budget is loaded (:func:`budget_loaded`)."""
    _trusted_budgets.add(os.path.abspath(path))


def budget_loaded(path: str | os.PathLike[str], env_id: str | None) -> None:
    """Called by ``load_budget``: trust ``env_id`` if ``path`` is a trusted budget file."""
    if env_id and os.path.abspath(path) in _trusted_budgets:
        _trusted_ids.add(env_id)


OWN_ENV_MODULES = ("rlbudget.bandits.env", "rlbudget.pixels.env")
"""rlbudget's own env modules: importing one runs no code but rlbudget's."""


def _check_imports(env_id: str, module: str, name: str, trusted: bool) -> None:
    """Refuse an id whose making would import a module the user did not name."""
    if trusted or env_id in _trusted_ids or os.environ.get(TRUST_ENV_VAR) == "1":
        return
    if module and module not in sys.modules and module not in OWN_ENV_MODULES:
        raise EnvError(
            f"environment id '{env_id}' names module '{module}': making it would import that "
            f"module and run its code, and the id was not given by you. Pass --env {env_id} "
            f"(or --gym-package {module}) to run it, or rlbudget --trust-env-id to trust env "
            "ids read from files (from Python: trusted=True, or import the module first)"
        )
    from gymnasium.envs.registration import registry

    spec = registry.get(name)
    entry = getattr(spec, "entry_point", None)
    if isinstance(entry, str) and ":" in entry:
        package = entry.split(":", 1)[0].split(".", 1)[0]
        if package not in sys.modules:
            raise EnvError(
                f"environment '{env_id}' is registered with entry point '{entry}', whose package "
                f"'{package}' is not imported; making it would run that package's code. Pass "
                f"--gym-package {package} to run it"
            )


def _unknown_env(env_id: str, module: str, name: str, exc: Exception) -> EnvError:
    """The message for an id that gymnasium's registry does not have."""
    import difflib

    from gymnasium import error as gym_error
    from gymnasium.envs.registration import find_highest_version, get_env_id, parse_env_id, registry

    ns, base, _ = parse_env_id(name)
    tail = (
        "Use a registered gymnasium id, module:EnvId for a custom env, "
        "or --gym-package to import the module that registers it"
    )
    if isinstance(exc, gym_error.NamespaceNotFound):
        return EnvError(
            f"unknown environment '{env_id}': no environment is registered in namespace "
            f"'{ns}'. Install the package that registers it and import it with --gym-package"
        )
    if isinstance(exc, gym_error.DeprecatedEnv):
        latest = find_highest_version(ns, base)
        unversioned = get_env_id(ns, base, None)
        newer = get_env_id(ns, base, latest) if latest is not None else unversioned
        if newer in registry and newer != name:
            import gymnasium

            return EnvError(
                f"environment '{env_id}' is deprecated in gymnasium {gymnasium.__version__}; "
                f"use '{newer}'"
            )
    close = difflib.get_close_matches(name, list(registry), n=1, cutoff=0.6)
    imported = f" (module '{module}' was imported but registers no '{name}')" if module else ""
    hint = f"; did you mean '{close[0]}'?" if close else "."
    return EnvError(f"unknown environment '{env_id}'{imported}{hint} {tail}")


def import_gym_packages(gym_packages: Sequence[str]) -> None:
    """Import the modules a user named with ``--gym-package`` (this runs their code; they
    register custom envs for every later ``make_env`` in this process).

    :raises EnvError: a module that cannot be imported.
    """
    for package in gym_packages:
        _import(package, f"--gym-package {package}")


def make_env(
    env_id: str,
    *,
    gym_packages: Sequence[str] = (),
    trusted: bool = False,
    guard: bool = True,
    **kwargs: Any,
) -> Any:
    """``gymnasium.make`` with RL-Zoo-like conveniences and one-line errors.

    The env comes wrapped in :class:`rlbudget.finite.EnvGuard`: its first NaN/inf
    observation or reward raises :class:`~rlbudget.finite.NonFiniteError` (step and
    episode named).

    :param env_id: a registered id, or ``module:EnvId`` (gymnasium imports ``module``, which
        registers ``EnvId``).
    :param gym_packages: modules to import first (they register envs), like RL Zoo's
        ``--gym-packages``.
    :param trusted: the caller named ``env_id`` itself, so a ``module:EnvId`` may import
        ``module`` (which runs its code); otherwise only an already imported module or an id
        passed to :func:`trust_env_ids` may.
    :param guard: wrap it in the NaN/inf guard (False: the caller checks, as SB3's
        vectorized training does with its own step count).
    :param kwargs: passed to ``gymnasium.make``, after those of
        :func:`rlbudget.env_kwargs.env_kwargs_applied` for this id.
    :return: the env; one with a Tuple or Dict observation space comes wrapped so that its
        observations are read as :func:`composite_observation` says (the spec with its note:
        :func:`observation_spec`).
    :raises EnvError: a malformed or unknown id (with did-you-mean), a deprecated version
        (with the current one), a module that cannot be imported, a missing extra dependency,
        an id that would import a module nobody named.
    """
    import gymnasium as gym
    from gymnasium import error as gym_error

    import_gym_packages(gym_packages)
    module, name = _split_id(env_id)
    _check_imports(env_id, module, name, trusted)
    if module:
        _import(module, f"environment '{env_id}'")
    # gymnasium warns (in colour) before it raises for an outdated id; hold its warnings
    # back so a failure is one line, and show them only when the env was made.
    with warnings.catch_warnings(record=True) as held:
        warnings.simplefilter("always")
        kwargs = {**applied_kwargs(env_id), **kwargs}
        attributes = kwargs.pop("attributes", None)
        try:
            env = gym.make(env_id, **kwargs)
        except TypeError as exc:
            if not kwargs:
                raise
            if "argument" not in str(exc):
                raise refused_kwargs(env_id, kwargs, exc) from None
            raise EnvError(
                f"environment '{env_id}' does not take the env kwargs "
                f"{', '.join(sorted(kwargs))} (gymnasium.make refused them); for physics its "
                'constructor lacks, write {"attributes": {"NAME": VALUE}}'
            ) from None
        except (gym_error.UnregisteredEnv, gym_error.DeprecatedEnv) as exc:
            raise _unknown_env(env_id, module, name, exc) from None
        except gym_error.DependencyNotInstalled as exc:
            raise EnvError(f"environment '{env_id}' needs an extra package: {exc}") from None
        except Exception as exc:  # the env's own constructor, refusing a value it was given
            if not kwargs:
                raise
            raise refused_kwargs(env_id, kwargs, exc) from None
    for w in held:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if attributes:
        try:
            set_attributes(env, env_id, attributes)
        except EnvError:
            env.close()
            raise
    try:
        env = _read_composite(env, env_id)
    except EnvError:
        env.close()
        raise
    if not guard:
        return env
    from rlbudget.finite import guard as guarded

    return guarded(env, env_id)


def env_spec(
    env_id: str,
    *,
    gym_packages: Sequence[str] = (),
    measure_steps: int = 200,
    seed: int = 0,
    trusted: bool = False,
) -> EnvSpec:
    """Make the env, read its spaces and limits, and time ``measure_steps`` random steps.

    :param env_id: as for :func:`make_env`; kept as given in the spec (so ``module:EnvId``
        can be made again later).
    :param gym_packages: as for :func:`make_env`.
    :param measure_steps: random-action steps to time (0 or less: not measured,
        ``step_cost_s`` is None).
    :param seed: seeds the env's reset and the action sampler.
    :param trusted: as for :func:`make_env`.
    :raises EnvError: the env cannot be made or has unsupported spaces.
    """
    env = make_env(env_id, gym_packages=gym_packages, trusted=trusted)
    try:
        obs = observation_spec(env, env_id)
        act = space_spec(env.action_space, what="action", env_id=env_id)
        spec = env.spec
        threshold = getattr(spec, "reward_threshold", None)
        limit = getattr(spec, "max_episode_steps", None)
        step_cost = _time_steps(env, measure_steps, seed) if measure_steps > 0 else None
    finally:
        env.close()
    return EnvSpec(
        env_id=env_id,
        observation=obs,
        action=act,
        reward_threshold=None if threshold is None else float(threshold),
        max_episode_steps=None if limit is None else int(limit),
        step_cost_s=step_cost,
    )


STEP_TIME_QUANTILE = 0.25  # of single steps: other processes' load inflates the mean


def _time_steps(env: Any, steps: int, seed: int) -> float:
    """What one ``env.step`` costs, robust to load and rounded into a band.

    Each random-action step is timed alone and the lower quartile is taken: a step that
    another process preempted is slow by milliseconds, while the env's own cost is the
    same in every step, so the plan (which ranks options by this figure) does not change
    with the machine's load. The figure is rounded up to 1, 2 or 5 × 10^k seconds.
    Resets are not timed.
    """
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    env.reset(seed=seed)
    times: list[float] = []
    for a in actions:
        start = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(a)
        times.append(time.perf_counter() - start)
        if terminated or truncated:
            env.reset()
    times.sort()
    return step_time_band(times[int(STEP_TIME_QUANTILE * (len(times) - 1))])


def step_time_band(seconds: float) -> float:
    """``seconds`` rounded up to 1, 2 or 5 × 10^k (a band: a measurement's jitter within
    it gives the same figure).

    >>> step_time_band(3.1e-6), step_time_band(1e-5), step_time_band(1.2e-3)
    (5e-06, 1e-05, 0.002)
    """
    if seconds <= 0:
        return 0.0
    exponent = math.floor(math.log10(seconds))
    for mantissa in (1, 2, 5, 10):
        band = float(f"{mantissa}e{exponent}")
        if seconds <= band * (1 + 1e-9):
            return band
    return float(f"1e{exponent + 1}")
