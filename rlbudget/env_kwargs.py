"""A run's env kwargs (``task.env_kwargs``, ``--env-kwargs``): held for an env id while a
run lasts, so every :func:`rlbudget.envs.make_env` of that id gets them, and the
``attributes`` key, set on the unwrapped env after it is made (physics a constructor does
not take). Parsing and checking the JSON is :func:`rlbudget.agents.prior.parse_env_kwargs`.

A policy trained with env kwargs records them in its provenance (``env_kwargs``, by
:func:`rlbudget.agents.common.provenance`); :func:`policy_physics` applies them again where
the policy is evaluated, compressed or profiled (``--env-kwargs`` overrides them, ``'{}'``
is the env's default physics).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rlbudget.errors import EnvError

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
    from rlbudget.agents.prior import parse_env_kwargs

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
