"""Import any Stable-Baselines3 ``.zip`` (or an RL Zoo folder) without running code from it.

``Algo.load()`` unpickles parts of the zip, so a crafted file runs code on load. Here the
files are read by :mod:`rlbudget.sb3.files` (JSON, torch's weights-only loader, an
allow-list unpickler, a safe YAML loader), what the zip's ``data`` says is read by
:mod:`rlbudget.sb3.zipdata` (pickled values inspected by :mod:`rlbudget.sb3.pickles`,
never unpickled), and the weights become a :class:`~rlbudget.policy.Policy` by
:func:`rlbudget.sb3.convert.convert`. :func:`import_model` puts those together, checks
the result against the env, and says what it found out on the way.

Every problem is one :class:`~rlbudget.errors.PolicyError` that names the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlbudget.errors import PolicyError, RlbudgetError
from rlbudget.policy.model import MLP, Policy
from rlbudget.sb3.cnn import channels_last, channels_last_policy
from rlbudget.sb3.convert import (
    ACTOR_CRITIC,
    ALGORITHMS,
    DEFAULT_ACTIVATION,
    DEFAULT_CLIP_MEAN,
    convert,
)
from rlbudget.sb3.files import locate, read_sb3_zip, read_vecnormalize, read_zoo_config
from rlbudget.sb3.zipdata import detect_algorithm, policy_class, policy_kwargs, read_space


@dataclass(frozen=True)
class ImportResult:
    """A converted policy and everything the import found out on the way."""

    policy: Policy
    algorithm: str
    algorithm_from: str
    source: str
    sha256: str
    sb3_version: str | None
    env_id: str | None
    vecnormalize: str | None
    config: str | None
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        info = self.policy.summary()
        body = self.policy.body
        layers = (
            [[int(la.W.shape[0]), int(la.W.shape[1]), la.activation] for la in body.layers]
            if isinstance(body, MLP)
            else []
        )
        return {
            "algorithm": self.algorithm,
            "algorithm_from": self.algorithm_from,
            "source": self.source,
            "sha256": self.sha256,
            "sb3_version": self.sb3_version,
            "env": self.env_id,
            "vecnormalize": self.vecnormalize,
            "config": self.config,
            "observation_space": info["observation_space"],
            "action_space": info["action_space"],
            "preprocess": info["preprocess"],
            "layers": layers,
            "head": info["head"],
            "parameters": info["parameters"],
            "bytes": info["bytes"],
            "macs": info["macs"],
            "warnings": list(self.warnings),
        }


def _check_env(policy: Policy, env_id: str, *, required: bool, notes: list[str]) -> Policy:
    """The env's spaces must be the policy's; an env that cannot be made is an error only
    when the user named it. A CNN policy on SB3's channels-first images is moved to the
    env's channels-last ones where SB3 transposed them (``VecTransposeImage``)."""
    from rlbudget.envs import make_env, space_mismatch

    try:
        env = make_env(env_id)
    except RlbudgetError as exc:
        if required:
            raise
        notes.append(f"env '{env_id}' (from the file names) could not be made: {exc}")
        return policy
    try:
        shape = tuple(getattr(env.observation_space, "shape", None) or ())
        model_shape = policy.observation_space.shape
        if len(shape) == 3 and len(model_shape) == 3 and shape == channels_last(model_shape):
            policy = channels_last_policy(policy)
            notes.append(f"the model reads [C, H, W] images (SB3's VecTransposeImage); the "
                         f"policy reads the env's {list(shape)} images as they come")  # fmt: skip
        problem = space_mismatch(env, env_id, policy.observation_space, policy.action_space,
                                 "the model's")  # fmt: skip
        if problem:
            raise PolicyError(f"{problem}; pass the env the model was trained on")
    finally:
        env.close()
    return policy


def _zoo_warnings(config: Mapping[str, Any], has_vecnormalize: bool, where: str) -> list[str]:
    out = []
    for key in ("env_wrapper", "frame_stack"):
        if config.get(key):
            out.append(
                f"{where}: {key}={config[key]!r}; the wrapper is not part of the imported "
                "policy: apply it to the env's observations yourself"
            )
    normalize = config.get("normalize")
    text = re.sub(r"\s", "", str(normalize))  # e.g. "dict(norm_obs=False, norm_reward=True)"
    obs_normalized = normalize is True or (
        isinstance(normalize, str)
        and normalize != "False"
        and not re.search(r"norm_obs['\"]?[=:]False", text)
    )
    if obs_normalized and not has_vecnormalize:
        raise PolicyError(
            f"{where}: the model was trained with normalize={normalize!r} but no "
            "vecnormalize.pkl was found; pass --vecnormalize FILE (without it the policy "
            "would silently get unnormalized observations)"
        )
    return out


def import_model(
    path: str | Path,
    *,
    env_id: str | None = None,
    vecnormalize: str | Path | None = None,
    algorithm: str | None = None,
) -> ImportResult:
    """Import an SB3 ``.zip`` or an RL Zoo folder as a :class:`Policy`, running nothing from it.

    :param path: a model zip, or a folder holding one (RL Zoo / rl-trained-agents layout).
    :param env_id: the env the model is for; its spaces are checked against the model's
        and it is recorded in provenance (default: from the file or folder name).
    :param vecnormalize: a ``vecnormalize.pkl`` (default: the one in the RL Zoo folder).
    :param algorithm: when the zip cannot tell (PPO/A2C/TRPO share one policy class).
    :raises PolicyError: anything unreadable, unsupported or inconsistent, naming the file.
    """
    loc = locate(path)
    where = str(loc.zip_path)
    notes: list[str] = []
    if algorithm is not None and algorithm.lower() not in ALGORITHMS:
        raise PolicyError(
            f"--algo {algorithm}: unknown algorithm; rlbudget imports {', '.join(ALGORITHMS)}"
        )
    data, state_dict, meta = read_sb3_zip(loc.zip_path)
    algo, algo_from = detect_algorithm(data, where, hint=loc.algo_hint, given=algorithm)
    obs = read_space(data, "observation_space", where, notes)
    act = read_space(data, "action_space", where, notes)
    kwargs = policy_kwargs(data, where, notes)
    config: dict[str, Any] = {}
    if loc.config is not None:
        config = read_zoo_config(loc.config)
    vec_path = Path(vecnormalize) if vecnormalize is not None else loc.vecnormalize
    if loc.config is not None:
        notes += _zoo_warnings(config, vec_path is not None, str(loc.config))
    if vec_path is None and loc.nearby_vecnormalize is not None:
        notes.append(
            f"{loc.nearby_vecnormalize} lies beside the model; if it was trained with it, "
            f"import again with --vecnormalize {loc.nearby_vecnormalize}"
        )
    normalize = None
    if vec_path is not None:
        normalize, more = read_vecnormalize(vec_path)
        notes += more
    activation = kwargs.activation or DEFAULT_ACTIVATION[algo]
    squash = bool(kwargs.squash_output) if algo in ACTOR_CRITIC else False
    if algo == "ars":
        cls = policy_class(data, where).name
        default = cls != "ARSLinearPolicy"  # SB3-contrib: MlpPolicy squashes, Linear does not
        squash = default if kwargs.squash_output is None else kwargs.squash_output
        squash = squash and act.kind == "box"
    env = env_id or loc.env_id
    provenance: dict[str, Any] = {
        "source": "stable-baselines3 zip",
        "file": loc.zip_path.name,
        "sha256": meta.sha256,
        "algorithm": algo,
        "env": env,
        "sb3_version": meta.sb3_version,
        "vecnormalize": None if vec_path is None else vec_path.name,
        "transforms": [],
    }
    try:
        policy = convert(
            algo, state_dict, obs, act, activation=activation, normalize=normalize,
            provenance=provenance, squash_output=squash,
            clip_mean=kwargs.clip_mean if kwargs.clip_mean is not None else DEFAULT_CLIP_MEAN,
            normalize_images=kwargs.normalize_images,
        )  # fmt: skip
    except PolicyError as exc:
        raise PolicyError(f"{where}: {exc}") from None
    if env is not None:
        policy = _check_env(policy, env, required=env_id is not None, notes=notes)
    return ImportResult(
        policy=policy,
        algorithm=algo,
        algorithm_from=algo_from,
        source=where,
        sha256=meta.sha256,
        sb3_version=meta.sb3_version,
        env_id=env,
        vecnormalize=None if vec_path is None else str(vec_path),
        config=None if loc.config is None else str(loc.config),
        warnings=tuple(notes),
    )
