"""The files of an SB3 model, read without running code from them.

- the model ``.zip``: ``data`` as JSON, ``policy.pth`` by
  ``torch.load(..., weights_only=True)`` (tensors only; safe on torch ≥ 2.6)
  (:func:`read_sb3_zip`);
- ``vecnormalize.pkl`` by an allow-list unpickler (:func:`read_vecnormalize`, see
  :mod:`rlbudget.sb3.pickles`);
- an RL Zoo ``config.yml`` with a safe YAML loader that understands only the
  ``!!python/object/apply:collections.OrderedDict`` tag (:func:`read_zoo_config`);
- where those files lie in an RL Zoo or rl-trained-agents folder (:func:`locate`).

Every problem is one :class:`~rlbudget.errors.PolicyError` that names the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rlbudget.errors import PolicyError
from rlbudget.fileio import MAX_JSON_DEPTH, json_depth_ok
from rlbudget.policy.model import Array, Normalize
from rlbudget.sb3.convert import ALGORITHMS, normalize_from_stats
from rlbudget.sb3.pickles import VecNormalizeUnpickler

MAX_MEMBER_BYTES = 512 * 2**20  # a zip member bigger than this is refused (zip bombs)


def _read(path: str | Path) -> tuple[str, bytes]:
    """The file's name (for messages) and its bytes.

    :raises PolicyError: the file cannot be read.
    """
    where = str(path)
    try:
        return where, Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError(f"{where}: cannot read it ({exc.strerror}); check the path") from None


# --- the zip ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZipMeta:
    """What is known about an SB3 zip besides its data and weights."""

    path: str
    sha256: str
    sb3_version: str | None
    members: tuple[str, ...]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _member(z: zipfile.ZipFile, name: str, where: str) -> bytes:
    try:
        info = z.getinfo(name)
    except KeyError:
        raise PolicyError(
            f"{where}: has no '{name}'; not a Stable-Baselines3 model zip (save it with "
            "model.save(path))"
        ) from None
    if info.file_size > MAX_MEMBER_BYTES:
        raise PolicyError(f"{where}: '{name}' is {info.file_size} bytes uncompressed; refused")
    try:
        return z.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise PolicyError(
            f"{where}: '{name}' cannot be read ({_first_line(exc)}); the zip is corrupt, "
            "download or save it again"
        ) from None


def _torch_state_dict(raw: bytes, where: str) -> dict[str, Array]:
    import torch

    major, minor = (int(v) for v in re.findall(r"\d+", torch.__version__)[:2])
    if (major, minor) < (2, 6):
        raise PolicyError(
            f"torch {torch.__version__} cannot load weights safely (CVE-2025-32434); "
            "install torch ≥ 2.6 to import SB3 models"
        )
    try:
        with warnings.catch_warnings():  # torch warns about odd pickles before refusing them
            warnings.simplefilter("ignore")
            sd = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or hostile file
        if "Weights only load failed" in str(exc):
            raise PolicyError(
                f"{where}: policy.pth holds objects other than tensors; torch's weights-only "
                "loader refused them and nothing was executed. Do not load this file with SB3"
            ) from None
        reason = str(exc).strip().split(". ")[0].splitlines()[0][:160] if str(exc) else ""
        raise PolicyError(
            f"{where}: policy.pth is not a readable state dict ({type(exc).__name__}: "
            f"{reason}); the file is corrupt or not from SB3"
        ) from None
    if not isinstance(sd, Mapping):
        raise PolicyError(f"{where}: policy.pth does not hold a state dict")
    out: dict[str, Array] = {}
    for key, value in sd.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise PolicyError(f"{where}: policy.pth entry {key!r} is not a tensor")
        t = value.detach().cpu()
        out[key] = (t.float() if t.is_floating_point() else t).numpy()
    return out


def read_sb3_zip(path: str | Path) -> tuple[dict[str, Any], dict[str, Array], ZipMeta]:
    """Read an SB3 model zip: ``data`` as JSON, ``policy.pth`` as numpy arrays, metadata.

    Nothing is unpickled except tensors by torch's weights-only loader.

    :raises PolicyError: not a zip, missing members, corrupt JSON or weights.
    """
    where, raw = _read(path)
    if not zipfile.is_zipfile(io.BytesIO(raw)):
        raise PolicyError(f"{where}: not a zip file; give a model saved with model.save(path)")
    try:
        z = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise PolicyError(f"{where}: corrupt zip ({_first_line(exc)})") from None
    with z:
        data_raw = _member(z, "data", where)
        pth = _member(z, "policy.pth", where)
        names = tuple(z.namelist())
        version = None
        if "_stable_baselines3_version" in names:
            version = _member(z, "_stable_baselines3_version", where).decode(errors="replace")
    deep = PolicyError(f"{where}: 'data' is nested deeper than {MAX_JSON_DEPTH} levels; the "
                       "zip is corrupt or not from SB3")  # fmt: skip
    try:
        data = json.loads(data_raw)
    except RecursionError:
        raise deep from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(
            f"{where}: 'data' is not valid JSON ({exc}); the zip is corrupt or not from SB3"
        ) from None
    if not json_depth_ok(data):
        raise deep
    if not isinstance(data, dict):
        raise PolicyError(f"{where}: 'data' is not a JSON object; not a Stable-Baselines3 zip")
    sd = _torch_state_dict(pth, where)
    meta = ZipMeta(where, hashlib.sha256(raw).hexdigest(), version and version.strip(), names)
    return data, sd, meta


# --- vecnormalize.pkl ---------------------------------------------------------------------


def _state(obj: Any) -> dict[str, Any]:
    state = getattr(obj, "state", None)
    return state if isinstance(state, dict) else {}


def read_vecnormalize(path: str | Path) -> tuple[Normalize | None, list[str]]:
    """Observation statistics from a ``VecNormalize.save`` file, without trusting it.

    :returns: the normalize step (None when it was saved with ``norm_obs=False``) and
        warnings.
    :raises PolicyError: unreadable file, a class outside the allow-list, missing fields.
    """
    where, raw = _read(path)
    try:
        obj = VecNormalizeUnpickler(io.BytesIO(raw), where).load()
    except PolicyError:
        raise
    except Exception as exc:  # any parse error of an untrusted file is bad input
        raise PolicyError(
            f"{where}: not a readable vecnormalize.pkl ({type(exc).__name__}: "
            f"{_first_line(exc)}); save it again with VecNormalize.save"
        ) from None
    if getattr(type(obj), "qualname", "") != (
        "stable_baselines3.common.vec_env.vec_normalize.VecNormalize"
    ):
        raise PolicyError(f"{where}: does not hold a VecNormalize object; save it with "
                          "VecNormalize.save(path)")  # fmt: skip
    state = _state(obj)
    notes: list[str] = []
    if state.get("norm_obs", True) is False:
        return None, [f"{where}: saved with norm_obs=False; observations are not normalized"]
    rms = state.get("obs_rms")
    rms_state = _state(rms)
    if isinstance(rms, dict) or "mean" not in rms_state or "var" not in rms_state:
        raise PolicyError(
            f"{where}: no observation statistics (obs_rms.mean/var) for a flat observation; "
            "Dict observations are not supported"
        )
    try:
        clip_obs = float(state.get("clip_obs", 10.0))
        epsilon = float(state.get("epsilon", 1e-8))
        normalize = normalize_from_stats(rms_state["mean"], rms_state["var"], clip_obs, epsilon)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"{where}: invalid statistics ({exc})") from None
    except PolicyError as exc:
        raise PolicyError(f"{where}: {exc}") from None
    return normalize, notes


# --- RL Zoo config.yml --------------------------------------------------------------------


class _ZooConfigLoader(yaml.SafeLoader):
    """SafeLoader plus only ``!!python/object/apply:collections.OrderedDict``."""


def _ordered_dict(loader: yaml.SafeLoader, node: yaml.Node) -> dict[Any, Any]:
    if not isinstance(node, yaml.SequenceNode) or len(node.value) != 1:
        raise yaml.constructor.ConstructorError(
            None, None, "expected OrderedDict([[key, value], ...])", node.start_mark
        )
    pairs = loader.construct_sequence(node.value[0], deep=True)
    out: dict[Any, Any] = {}
    for pair in pairs:
        if not isinstance(pair, list) or len(pair) != 2:
            raise yaml.constructor.ConstructorError(
                None, None, "expected [key, value] pairs", node.start_mark
            )
        out[pair[0]] = pair[1]
    return out


_ZooConfigLoader.add_constructor(
    "tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _ordered_dict
)


def read_zoo_config(path: str | Path) -> dict[str, Any]:
    """An RL Zoo ``config.yml`` (hyperparameters) as a plain dict; no other tag is accepted.

    :raises PolicyError: unreadable YAML or any other ``!!python`` tag.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        if len(text) > 1_000_000:
            raise PolicyError(f"{p}: larger than 1 MB; not an RL Zoo config.yml")
        data = yaml.load(text, Loader=_ZooConfigLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise PolicyError(f"{p}: not a readable RL Zoo config.yml ({reason})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{p}: cannot read it ({exc})") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{p}: expected a mapping of hyperparameters")
    return data


# --- RL Zoo folders -----------------------------------------------------------------------


@dataclass(frozen=True)
class Located:
    """The files that make up one model: the zip and, in an RL Zoo folder, its companions."""

    zip_path: Path
    config: Path | None
    vecnormalize: Path | None
    env_id: str | None
    algo_hint: str | None
    nearby_vecnormalize: Path | None = None


_ENV_RE = re.compile(r"^(?:[\w.-]+/)?[\w.:-]+-v\d+$")


def _split_algo_env(name: str) -> tuple[str | None, str | None]:
    """``ppo-CartPole-v1`` → (ppo, CartPole-v1); ``CartPole-v1_1`` → (None, CartPole-v1)."""
    head, _, rest = name.partition("-")
    if head.lower() in ALGORITHMS and _ENV_RE.match(rest):
        return head.lower(), rest
    base = re.sub(r"_\d+$", "", name)
    return None, base if _ENV_RE.match(base) else None


def locate(path: str | Path) -> Located:
    """Find the model zip and its RL Zoo companions (``config.yml``, ``vecnormalize.pkl``).

    Layouts: a ``.zip``; a folder ``ALGO-ENV/`` holding ``ENV.zip`` (or ``ALGO-ENV.zip``,
    ``best_model.zip``), ``config.yml`` and ``vecnormalize.pkl`` (the rl-trained-agents
    and Hugging Face layout); or RL Zoo's ``logs/ALGO/ENV_N/`` with ``ENV.zip`` and
    ``ENV/config.yml``, ``ENV/vecnormalize.pkl``.

    :raises PolicyError: no such path, no zip or several candidate zips.
    """
    p = Path(path)
    if p.is_file():
        algo, env = _split_algo_env(p.stem)
        parent_algo, parent_env = _split_algo_env(p.parent.name)
        near = [p.parent / "vecnormalize.pkl", p.parent / p.stem / "vecnormalize.pkl"]
        found = next((v for v in near if v.is_file()), None)
        return Located(p, None, None, env or parent_env, algo or parent_algo, found)
    if not p.is_dir():
        raise PolicyError(f"{p}: no such file or folder; give an SB3 .zip or an RL Zoo folder")
    algo, env = _split_algo_env(p.name)
    if algo is None and p.parent.name.lower() in ALGORITHMS:
        algo = p.parent.name.lower()
    zips = sorted(z for z in p.glob("*.zip") if z.is_file())
    preferred = [p / f"{env}.zip", p / f"{algo}-{env}.zip"] if env else []
    chosen = next((z for z in preferred if z.is_file()), None)
    if chosen is None:
        finals = [z for z in zips if z.name != "best_model.zip"]
        if len(finals) == 1:
            chosen = finals[0]
        elif not finals and (p / "best_model.zip").is_file():
            chosen = p / "best_model.zip"
        elif not zips:
            raise PolicyError(f"{p}: holds no .zip model; give an SB3 .zip or an RL Zoo folder")
        else:
            names = ", ".join(z.name for z in zips)
            raise PolicyError(f"{p}: holds several models ({names}); give the .zip to import")
    if env is None:
        env = _split_algo_env(chosen.stem)[1]
    sub = [p, p / env] if env else [p]
    config = next((d / "config.yml" for d in sub if (d / "config.yml").is_file()), None)
    vecnorm = next((d / "vecnormalize.pkl" for d in sub if (d / "vecnormalize.pkl").is_file()),
                   None)  # fmt: skip
    return Located(chosen, config, vecnorm, env, algo)
