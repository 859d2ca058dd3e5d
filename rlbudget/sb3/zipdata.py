"""What an SB3 zip's ``data`` says: its spaces, policy class, policy kwargs and algorithm.

``data`` is JSON. The values SB3 could only pickle (``:serialized:``) are inspected with
:func:`rlbudget.sb3.pickles.inspect_pickle`, never unpickled; the JSON siblings SB3 writes
beside them are the fallback. Models saved by SB3 1.x with the old ``gym`` package and by
SB3 2.x with gymnasium are both read.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlbudget.envs import SpaceSpec
from rlbudget.errors import PolicyError
from rlbudget.policy.model import Array
from rlbudget.sb3.convert import ACTOR_CRITIC
from rlbudget.sb3.pickles import Global, Reduced, inert_array, inspect_pickle


def serialized(data: Mapping[str, Any], key: str, where: str) -> Any:
    """The inert value of ``data[key][":serialized:"]``; ``_MISSING`` when there is none."""
    entry = data.get(key)
    if not isinstance(entry, dict) or ":serialized:" not in entry:
        return _MISSING
    try:
        raw = base64.b64decode(str(entry[":serialized:"]).encode(), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise PolicyError(f"{where}: data.{key} is not valid base64 ({exc})") from None
    try:
        return inspect_pickle(raw, f"{where}: data.{key}")
    except RecursionError:
        raise PolicyError(f"{where}: data.{key} is nested too deeply; the zip is corrupt "
                          "(nothing from it was executed)") from None  # fmt: skip


_MISSING = object()

_CLASS_RE = re.compile(r"<class '([\w.]+)'>")


def _json_floats(text: Any, where: str) -> Array:
    """``"[-4.8e+00 -inf 1.]"`` (numpy's repr, as SB3 writes it into JSON) → array."""
    s = str(text).replace("[", " ").replace("]", " ").replace(",", " ")
    if "..." in s:
        raise PolicyError(f"{where}: the bounds are abbreviated in JSON and unreadable")
    try:
        return np.array([float(v) for v in s.split()], dtype=np.float64)
    except ValueError:
        raise PolicyError(f"{where}: cannot read the bounds {str(text)[:60]!r}") from None


def read_space(data: Mapping[str, Any], key: str, where: str, notes: list[str]) -> SpaceSpec:
    """``data[key]`` (an observation or action space) as a :class:`SpaceSpec`.

    The pickled space is inspected for exact bounds; the JSON siblings SB3 writes (``n``,
    ``shape``/``_shape``, ``low``, ``high``, ``dtype``) are the fallback.

    :raises PolicyError: a space other than Box or Discrete, or unreadable bounds.
    """
    what = "observation" if key.startswith("observation") else "action"
    entry = data.get(key)
    if not isinstance(entry, dict):
        raise PolicyError(f"{where}: data has no '{key}'; not a Stable-Baselines3 model zip")
    m = _CLASS_RE.search(str(entry.get(":type:", "")))
    cls = m.group(1).rsplit(".", 1)[-1] if m else ""
    inert = serialized(data, key, where)
    if isinstance(inert, Reduced) and isinstance(inert.func, Global):
        if not inert.func.module.startswith(("gym.spaces", "gymnasium.spaces")):
            raise PolicyError(
                f"{where}: data.{key} refers to {inert.func.path}, not a gym/gymnasium space; "
                "the zip is not a genuine SB3 model (nothing from it was executed)"
            )
        cls = inert.func.name
    if cls not in ("Box", "Discrete"):
        raise PolicyError(
            f"{where}: the {what} space is {cls or 'unknown'}; rlbudget imports models with "
            "Box or Discrete spaces (no Dict/MultiInputPolicy, MultiDiscrete or MultiBinary)"
        )
    state = inert.state if isinstance(inert, Reduced) and isinstance(inert.state, dict) else {}
    dtype = str(entry.get("dtype", "float32" if cls == "Box" else "int64"))
    if cls == "Discrete":
        n = inert_array(state["n"]) if isinstance(state.get("n"), Reduced) else state.get("n")
        start = state.get("start", entry.get("start", 0))
        start = inert_array(start) if isinstance(start, Reduced) else start
        try:
            n_int = int(n if n is not None else entry["n"])
            start_int = int(start if start is not None else 0)
        except (KeyError, TypeError, ValueError):
            raise PolicyError(f"{where}: data.{key} has no readable 'n'") from None
        if start_int != 0:
            raise PolicyError(
                f"{where}: the Discrete {what} space starts at {start_int}; rlbudget "
                "supports Discrete spaces that start at 0"
            )
        return SpaceSpec("discrete", (), n_int, None, None, dtype)
    low, high = inert_array(state.get("low")), inert_array(state.get("high"))
    if low is None or high is None:
        notes.append(f"{key}: bounds read from the JSON text (the pickled space was not readable)")
        low = _json_floats(entry.get("low"), f"{where}: data.{key}.low")
        high = _json_floats(entry.get("high"), f"{where}: data.{key}.high")
    shape_v = entry.get("_shape", entry.get("shape"))
    shape = tuple(shape_v) if isinstance(shape_v, list) else tuple(low.shape)
    if not all(type(v) is int and 0 <= v <= 2**31 for v in shape) or math.prod(shape) > 2**31:
        raise PolicyError(
            f"{where}: data.{key}: the shape {str(shape_v)[:60]} is not a list of sizes ≥ 0; "
            "the zip is corrupt or not from SB3"
        )
    size = math.prod(shape)
    try:
        low, high = np.broadcast_to(low, shape), np.broadcast_to(high, shape)
    except ValueError:
        raise PolicyError(f"{where}: data.{key}: bounds do not match shape {list(shape)}") from None
    if low.size != size:
        raise PolicyError(f"{where}: data.{key}: bounds do not match shape {list(shape)}")
    return SpaceSpec(
        "box", shape, None, tuple(float(v) for v in low.ravel()),
        tuple(float(v) for v in high.ravel()), dtype,
    )  # fmt: skip


# policy class name → algorithm (a family for the actor-critic class shared by several).
POLICY_CLASSES = {
    "ActorCriticPolicy": "actor-critic",
    "ActorCriticCnnPolicy": "actor-critic",
    "MaskableActorCriticPolicy": "actor-critic",
    "DQNPolicy": "dqn",
    "QRDQNPolicy": "qrdqn",
    "SACPolicy": "sac",
    "TQCPolicy": "tqc",
    "TD3Policy": "td3",
    "ARSPolicy": "ars",
    "ARSLinearPolicy": "ars",
}
CNN_FAMILIES = ("dqn", "qrdqn", "sac", "tqc", "td3")
"""The algorithms whose ``CnnPolicy`` class (``stable_baselines3.<algo>.policies.CnnPolicy``)
is their MLP policy class with SB3's NatureCNN features extractor."""
_UNSUPPORTED_CLASSES = {
    "MultiInputActorCriticPolicy": "a Dict-observation policy (MultiInputPolicy)",
    "MultiInputPolicy": "a Dict-observation policy (MultiInputPolicy)",
    "RecurrentActorCriticPolicy": "a recurrent (LSTM) policy",
    "RecurrentActorCriticCnnPolicy": "a recurrent CNN policy",
}


def policy_class(data: Mapping[str, Any], where: str) -> Global:
    """The policy class named in ``data["policy_class"]`` (read from its pickle opcodes)."""
    inert = serialized(data, "policy_class", where)
    if isinstance(inert, Global):
        return inert
    entry = data.get("policy_class")
    if isinstance(entry, dict) and isinstance(entry.get("__module__"), str):
        # the JSON siblings name the module; the class is the one whose methods are listed
        for v in entry.values():
            m = re.match(r"<function (\w+)\.", str(v))
            if m:
                return Global(entry["__module__"], m.group(1))
    raise PolicyError(f"{where}: data has no readable 'policy_class'; not an SB3 model zip")


@dataclass(frozen=True)
class PolicyKwargs:
    """The parts of ``policy_kwargs`` that change the actor's forward pass."""

    activation: str | None  # torch class name, e.g. "ReLU"; None: the algorithm's default
    squash_output: bool | None
    clip_mean: float | None
    normalize_images: bool = True  # an image observation is divided by 255 first


def policy_kwargs(data: Mapping[str, Any], where: str, notes: list[str]) -> PolicyKwargs:
    """Read activation_fn, squash_output and clip_mean from ``data["policy_kwargs"]``."""
    entry = data.get("policy_kwargs")
    if entry is None or entry == {}:
        return PolicyKwargs(None, None, None)
    if not isinstance(entry, dict):
        raise PolicyError(f"{where}: data.policy_kwargs is not an object")
    inert: Any = _MISSING
    try:
        inert = serialized(data, "policy_kwargs", where)
    except PolicyError as exc:
        notes.append(f"policy_kwargs: pickle not inspectable ({exc}); using its JSON text")
    kwargs: Mapping[str, Any] = inert if isinstance(inert, dict) else entry
    act = kwargs.get("activation_fn")
    activation: str | None = None
    if isinstance(act, Global):
        activation = act.name
    elif isinstance(act, str):
        m = _CLASS_RE.search(act)
        activation = m.group(1).rsplit(".", 1)[-1] if m else act
    elif act is not None:
        notes.append("policy_kwargs.activation_fn is unreadable; assuming the algorithm's default")
    squash = kwargs.get("squash_output")
    clip = kwargs.get("clip_mean")
    return PolicyKwargs(
        activation,
        squash if isinstance(squash, bool) else None,
        float(clip) if isinstance(clip, (int, float)) and not isinstance(clip, bool) else None,
        kwargs.get("normalize_images") is not False,
    )


def _family_hint(data: Mapping[str, Any]) -> str | None:
    """PPO, A2C and TRPO share ActorCriticPolicy; their saved hyperparameters differ."""
    if "cg_max_steps" in data:
        return "trpo"
    if "clip_range" in data:
        return "ppo"
    if "n_steps" in data and "n_epochs" not in data:
        return "a2c"
    return None


def detect_algorithm(
    data: Mapping[str, Any], where: str, *, hint: str | None = None, given: str | None = None
) -> tuple[str, str]:
    """The algorithm of a zip and how it was decided.

    :param hint: from the file or folder name (``ppo-CartPole-v1``), or None.
    :param given: ``--algo``; must agree with the policy class.
    :raises PolicyError: unsupported policy class, or ``--algo`` contradicting the zip.
    """
    cls = policy_class(data, where)
    if cls.name in _UNSUPPORTED_CLASSES:
        raise PolicyError(
            f"{where}: {cls.path} is {_UNSUPPORTED_CLASSES[cls.name]}; rlbudget imports "
            "MlpPolicy models (flat Box or Discrete observations)"
        )
    family = POLICY_CLASSES.get(cls.name)
    if cls.name == "CnnPolicy":
        family = next((f for f in CNN_FAMILIES if f in cls.module.split(".")), None)
    if family is None:
        raise PolicyError(
            f"{where}: policy class {cls.path} is not one rlbudget imports "
            f"(known: {', '.join(sorted(POLICY_CLASSES))})"
        )
    compatible = {"actor-critic": ACTOR_CRITIC, "td3": ("td3", "ddpg")}.get(family, (family,))
    if given is not None:
        algo = given.lower()
        if algo not in compatible:
            raise PolicyError(
                f"{where}: --algo {given} does not match the zip's policy class {cls.path} "
                f"(it fits {', '.join(compatible)})"
            )
        return algo, "--algo"
    if hint in compatible:
        return str(hint), "file name"
    if family == "actor-critic":
        guess = _family_hint(data)
        if guess is None:
            raise PolicyError(
                f"{where}: {cls.name} is used by PPO, A2C and TRPO and the zip does not say "
                "which; pass --algo ppo (or a2c, trpo)"
            )
        return guess, "saved hyperparameters"
    if family == "td3" and data.get("policy_delay") == 1 and data.get("target_noise_clip") == 0:
        return "ddpg", "saved hyperparameters"
    return family, "policy class"
