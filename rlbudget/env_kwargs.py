"""A run's env kwargs (``task.env_kwargs``, ``--env-kwargs``): held for an env id while a
run lasts, so every :func:`rlbudget.envs.make_env` of that id gets them, and the
``attributes`` key, set on the unwrapped env after it is made (physics a constructor does
not take). Parsing and checking the JSON is :func:`parse_env_kwargs`.

A policy trained with env kwargs records them in its provenance (``env_kwargs``, by
:func:`rlbudget.agents.common.provenance`); :func:`policy_physics` applies them again where
the policy is evaluated, compressed or profiled (``--env-kwargs`` overrides them, ``'{}'``
is the env's default physics).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rlbudget.errors import EnvError, RlbudgetError

if TYPE_CHECKING:
    from rlbudget.policy.model import Policy

_env_kwargs: dict[str, dict[str, Any]] = {}


def applied_kwargs(env_id: str) -> dict[str, Any]:
    """The env kwargs :func:`env_kwargs_applied` holds for ``env_id`` now ({} if none)."""
    return dict(_env_kwargs.get(env_id, {}))


@contextmanager
def env_kwargs_applied(env_id: str, kwargs: Mapping[str, Any] | None) -> Iterator[None]:
    """Within the block, every :func:`make_env` of ``env_id`` gets ``kwargs`` (a run's
    ``task.env_kwargs``: its training env, evaluations and confirmations alike).

    The key ``attributes`` is not passed to ``gymnasium.make``: its numbers are set on the
    unwrapped env after it is made (physics a constructor does not take, e.g. CartPole's
    ``force_mag``, ``gravity``, ``masscart``).
    """
    if not kwargs:
        yield
        return
    before = _env_kwargs.get(env_id)
    _env_kwargs[env_id] = dict(kwargs)
    try:
        yield
    finally:
        if before is None:
            _env_kwargs.pop(env_id, None)
        else:
            _env_kwargs[env_id] = before


def recorded_kwargs(policy: Policy) -> dict[str, Any] | None:
    """The env kwargs the policy was trained with (its provenance's ``env_kwargs``), if any,
    checked as ``--env-kwargs`` is (a policy file is user input: no ``render_mode``, no
    ``attributes`` that are not numbers).

    :raises RlbudgetError: the recorded env kwargs would be refused on the command line.
    """
    kwargs = policy.provenance.get("env_kwargs")
    if kwargs is None or kwargs == {}:
        return None
    return parse_env_kwargs(kwargs, "the policy's provenance env_kwargs (override them with "
                                    "--env-kwargs)")  # fmt: skip


@contextmanager
def policy_physics(
    policy: Policy, env_id: str, given: Mapping[str, Any] | None = None
) -> Iterator[dict[str, Any] | None]:
    """Within the block, ``env_id`` is made with the physics ``policy`` was trained with:
    ``given`` (``--env-kwargs``; ``{}``: the env's default) when not None, else the env
    kwargs its provenance records when ``env_id`` is the env it was trained on.

    :yields: the env kwargs applied (None: the default physics).
    """
    if given is not None:
        kwargs = dict(given) or None
    else:
        own = policy.provenance.get("env") in (None, env_id)
        kwargs = recorded_kwargs(policy) if own else None
    with env_kwargs_applied(env_id, kwargs):
        yield kwargs


def refused_kwargs(env_id: str, kwargs: Mapping[str, Any], exc: Exception) -> EnvError:
    """The env's constructor refused a value it was given: one line naming the kwargs."""
    return EnvError(f"environment '{env_id}' cannot be made with the env kwargs "
                    f"{', '.join(sorted(kwargs))} ({type(exc).__name__}: {exc}); fix their "
                    "values")  # fmt: skip


def set_attributes(env: Any, env_id: str, attributes: Mapping[str, Any]) -> None:
    """Set ``attributes`` (an env kwargs' ``attributes``) on the unwrapped env: existing
    numbers only, of their own kind (a whole number stays whole)."""
    base = env.unwrapped
    for name, value in attributes.items():
        old = getattr(base, name, None)
        if isinstance(old, bool) or not isinstance(old, int | float):
            raise EnvError(
                f"env kwargs attributes.{name}: environment '{env_id}' has no numeric "
                f"attribute '{name}' to set; name one of its physics constants"
            )
        if not math.isfinite(value) or (isinstance(old, int) and not float(value).is_integer()):
            kind = "a whole number" if isinstance(old, int) else "a finite number"
            raise EnvError(f"env kwargs attributes.{name}: {value} for '{env_id}', whose "
                           f"{name} is {kind} ({old})")  # fmt: skip
        setattr(base, name, type(old)(value))


ATTRIBUTES = "attributes"
"""The one ``--env-kwargs`` key that is not a ``gymnasium.make`` kwarg: numbers set on the
unwrapped env after it is made (``{"attributes": {"force_mag": 8.0}}`` changes CartPole's
push, which its constructor does not take); each must already exist on the env."""


def parse_env_kwargs(text: str | dict[str, Any] | None, what: str) -> dict[str, Any] | None:
    """A JSON object of make kwargs (or an already parsed mapping, from a budget file).

    :param what: how the message names its source (``--env-kwargs``, ``task.env_kwargs``).
    :raises RlbudgetError: not JSON, not an object, or a bad ``attributes`` entry.
    """
    if text is None:
        return None
    value: Any = text
    if isinstance(text, str):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RlbudgetError(f"{what} '{text}': not JSON ({exc.msg}); write an object such "
                                """as '{"g": 9.81}'""") from None  # fmt: skip
        except RecursionError:  # '[[[[…' deeper than the parser goes
            raise RlbudgetError(f"{what}: nested too deeply to read; write a flat object such "
                                """as '{"g": 9.81}'""") from None  # fmt: skip
    if not isinstance(value, dict):
        raise RlbudgetError(f"{what}: write a JSON object of gymnasium.make kwargs, such as "
                            f"""'{{"g": 9.81}}', not {type(value).__name__}""")  # fmt: skip
    for key in NOT_KWARGS:
        if key in value:
            raise RlbudgetError(
                f"{what}: '{key}' is not an env kwarg rlbudget trains with "
                "(it changes how the env is stepped or rendered); remove it"
            )
    bad = _non_finite(value)
    if bad is not None:
        raise RlbudgetError(f"{what}: '{bad[0]}' is {bad[1]}; env kwargs hold finite numbers "
                            "(NaN or inf would reach the physics)")  # fmt: skip
    steps = value.get("max_episode_steps")
    if steps is not None and (type(steps) is not int or not 1 <= steps <= MAX_EPISODE_STEPS):
        raise RlbudgetError(f"{what}: 'max_episode_steps' must be an integer from 1 to "
                            f"{MAX_EPISODE_STEPS:,}, not {steps!r} (an evaluation episode "
                            "runs to it)")  # fmt: skip
    attrs = value.get(ATTRIBUTES, {})
    if not isinstance(attrs, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in attrs.values()
    ):
        raise RlbudgetError(f"{what}: '{ATTRIBUTES}' must map attribute names to numbers, "
                            """e.g. {"attributes": {"force_mag": 8.0}}""")  # fmt: skip
    return dict(value)


MAX_EPISODE_STEPS = 1_000_000
"""The longest episode env kwargs may ask for: evaluations play whole episodes, and a
screen of Pendulum episodes 10**12 steps long would never end."""

NOT_KWARGS = ("render_mode", "autoreset", "apply_api_compatibility")
"""``gymnasium.make`` options that change how the env is stepped or rendered (a window, an
automatic reset rlbudget's loops do not expect), refused in env kwargs."""


def _non_finite(value: Any, key: str = "") -> tuple[str, float] | None:
    """The first NaN/inf number in ``value`` (nested dicts and lists), with its key path."""
    if isinstance(value, float) and not math.isfinite(value):
        return key, value
    items: Any = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ())  # fmt: skip
    for k, v in items:
        found = _non_finite(v, f"{key}.{k}" if key else str(k))
        if found is not None:
            return found
    return None
