"""Import any Stable-Baselines3 ``.zip`` (or an RL Zoo folder) without running code from it.

``Algo.load()`` unpickles parts of the zip, so a crafted file runs code on load. Here:

- ``data`` is read as JSON. Values SB3 could only pickle (``:serialized:``: spaces,
  ``policy_class``, sometimes ``policy_kwargs``) are *inspected*, never unpickled:
  :func:`inspect_pickle` walks the opcodes with :func:`pickletools.genops` and builds inert
  values (a :class:`Global` is just a module and a name; a :class:`Reduced` is a call that
  is never made). Nothing is imported, nothing is called.
- ``policy.pth`` is read by ``torch.load(..., weights_only=True)`` (tensors only; safe on
  torch ≥ 2.6).
- ``vecnormalize.pkl`` is unpickled by an allow-list unpickler: numpy array reconstruction
  only; SB3's VecNormalize/RunningMeanStd, gym/gymnasium spaces and numpy's random
  generators become inert records. Anything else is refused before it is loaded.
- An RL Zoo ``config.yml`` is read with a safe YAML loader that understands only the
  ``!!python/object/apply:collections.OrderedDict`` tag.

Models saved by SB3 1.x with the old ``gym`` package and by SB3 2.x with gymnasium are
both read. Every problem is one :class:`~rlbudget.errors.PolicyError` that names the file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rlbudget.agents.sb3_convert import (
    ACTOR_CRITIC,
    ALGORITHMS,
    DEFAULT_ACTIVATION,
    DEFAULT_CLIP_MEAN,
    convert,
    normalize_from_stats,
)
from rlbudget.envs import SpaceSpec
from rlbudget.errors import PolicyError, RlbudgetError
from rlbudget.fileio import MAX_JSON_DEPTH, json_depth_ok
from rlbudget.policy.model import MLP, Array, Normalize, Policy

MAX_MEMBER_BYTES = 512 * 2**20  # a zip member bigger than this is refused (zip bombs)
MAX_PICKLE_OPS = 1_000_000


def _read(path: str | Path) -> tuple[str, bytes]:
    """The file's name (for messages) and its bytes.

    :raises PolicyError: the file cannot be read.
    """
    where = str(path)
    try:
        return where, Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError(f"{where}: cannot read it ({exc.strerror}); check the path") from None


# --- inert pickle inspection --------------------------------------------------------------


@dataclass(frozen=True)
class Global:
    """A reference to ``module.name`` found in a pickle (never imported)."""

    module: str
    name: str

    @property
    def path(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False)
class Reduced:
    """A call ``func(*args)`` the pickle asks for (never made), with what was set on it."""

    func: Any
    args: Any
    state: Any = None
    items: dict[Any, Any] = field(default_factory=dict)
    elements: list[Any] = field(default_factory=list)


_MARK = object()


def inspect_pickle(data: bytes, where: str) -> Any:
    """The value a pickle describes, built from inert pieces only.

    Strings, numbers, bytes, lists, tuples, dicts and sets come back as themselves; a
    class or function reference is a :class:`Global`; an object construction is a
    :class:`Reduced`. No module is imported and nothing from the pickle is called.

    :raises PolicyError: the bytes are not a pickle rlbudget can inspect.
    """
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    try:
        for count, (op, arg, _) in enumerate(pickletools.genops(data)):
            if count > MAX_PICKLE_OPS:
                raise PolicyError(f"{where}: the pickle is too large to inspect")
            name = op.name
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                return stack.pop()
            if name == "MARK":
                marks.append(len(stack))
            elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
                stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
            elif name in ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4",
                          "FLOAT", "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING",
                          "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
                          "BINBYTES", "SHORT_BINBYTES", "BINBYTES8"):  # fmt: skip
                stack.append(arg)
            elif name == "BYTEARRAY8":
                stack.append(bytes(arg or b""))
            elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_TUPLE", "EMPTY_SET"):
                stack.append({"EMPTY_LIST": [], "EMPTY_DICT": {}, "EMPTY_TUPLE": (),
                              "EMPTY_SET": set()}[name])  # fmt: skip
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                items = stack[-n:]
                del stack[-n:]
                stack.append(tuple(items))
            elif name == "TUPLE":
                stack.append(tuple(pop_mark()))
            elif name == "LIST":
                stack.append(pop_mark())
            elif name in ("DICT", "SETITEMS"):
                items = pop_mark()
                pairs = dict(zip(items[::2], items[1::2], strict=True))
                if name == "DICT":
                    stack.append(pairs)
                else:
                    _setitems(stack[-1], pairs)
            elif name == "SETITEM":
                value = stack.pop()
                key = stack.pop()
                _setitems(stack[-1], {key: value})
            elif name in ("APPEND", "APPENDS"):
                items = [stack.pop()] if name == "APPEND" else pop_mark()
                target = stack[-1]
                (target if isinstance(target, list) else target.elements).extend(items)
            elif name in ("ADDITEMS", "FROZENSET"):
                items = pop_mark()
                if name == "FROZENSET":
                    stack.append(frozenset(items))
                else:
                    stack[-1].update(items)
            elif name == "POP":
                stack.pop()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(stack[-1])
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg or 0)] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[int(arg or 0)])
            elif name == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
                stack.append(Global(module, attr))
            elif name == "STACK_GLOBAL":
                attr = stack.pop()
                module = stack.pop()
                stack.append(Global(str(module), str(attr)))
            elif name in ("REDUCE", "NEWOBJ"):
                args = stack.pop()
                stack.append(Reduced(stack.pop(), args))
            elif name == "NEWOBJ_EX":
                kwargs = stack.pop()
                args = stack.pop()
                stack.append(Reduced(stack.pop(), (args, kwargs)))
            elif name in ("INST", "OBJ"):
                items = pop_mark()
                if name == "INST":
                    module, _, attr = str(arg).partition(" ")
                    stack.append(Reduced(Global(module, attr), tuple(items)))
                else:
                    stack.append(Reduced(items[0], tuple(items[1:])))
            elif name == "BUILD":
                state = stack.pop()
                target = stack[-1]
                if isinstance(target, Reduced):
                    target.state = state
            elif name in ("PERSID", "BINPERSID"):
                pid = arg if name == "PERSID" else stack.pop()
                stack.append(Reduced(Global("<persistent>", "id"), (pid,)))
            else:  # EXT*, NEXT_BUFFER, READONLY_BUFFER: never written by SB3/cloudpickle
                raise PolicyError(f"{where}: the pickle uses opcode {name}, which rlbudget "
                                  "does not inspect")  # fmt: skip
    except PolicyError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, AttributeError) as exc:
        raise PolicyError(f"{where}: not a readable pickle ({exc})") from None
    raise PolicyError(f"{where}: the pickle ends without STOP (truncated)")


def _setitems(target: Any, pairs: Mapping[Any, Any]) -> None:
    (target if isinstance(target, dict) else target.items).update(pairs)


_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                  "numpy._core.numeric", "numpy")  # fmt: skip


def _dtype(value: Any) -> np.dtype[Any] | None:
    """A plain numeric dtype from an inert ``numpy.dtype('f4', …)`` construction."""
    if isinstance(value, Reduced) and value.func == Global("numpy", "dtype"):
        code = value.args[0] if isinstance(value.args, tuple) and value.args else None
        if isinstance(code, str) and re.fullmatch(r"[fiub]\d?\d?|\?|b1", code):
            try:
                dt = np.dtype(code)  # "i3", "u9", "f3" are no dtype
            except TypeError:
                return None
            if dt.kind not in "fiub":
                return None
            state = value.state
            if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">"):
                dt = dt.newbyteorder(state[1])
            return dt
    return None


def inert_array(value: Any) -> Array | None:
    """An ndarray (or numpy scalar) described by an inert construction; None otherwise.

    Understands ``numpy.core.multiarray._reconstruct`` + its state,
    ``numpy.core.numeric._frombuffer`` and ``numpy.core.multiarray.scalar``.
    """
    try:
        return _inert_array(value)
    except (TypeError, ValueError, OverflowError, MemoryError):
        return None  # a dtype, shape or buffer that do not fit: not an array we read


def _inert_array(value: Any) -> Array | None:
    if not isinstance(value, Reduced) or not isinstance(value.func, Global):
        return None
    func, args = value.func, value.args
    if func.module not in _NUMPY_MODULES or not isinstance(args, tuple):
        return None
    if func.name == "_reconstruct" and isinstance(value.state, tuple) and len(value.state) == 5:
        _, shape, dt, fortran, raw = value.state
        dtype = _dtype(dt)
        if dtype is None or not isinstance(raw, bytes) or not isinstance(shape, tuple):
            return None
        flat = np.frombuffer(raw, dtype=dtype)
        return flat.reshape(shape, order="F" if fortran else "C").astype(dtype.newbyteorder("="))
    if func.name == "_frombuffer" and len(args) == 4:
        raw, dt, shape, order = args
        dtype = _dtype(dt)
        if dtype is None or not isinstance(raw, bytes) or not isinstance(shape, tuple):
            return None
        if order not in ("C", "F"):
            return None
        flat = np.frombuffer(raw, dtype=dtype)
        out: Array = flat.reshape(shape, order="F" if order == "F" else "C")
        return out.astype(dtype.newbyteorder("="))
    if func.name == "scalar" and len(args) == 2 and isinstance(args[1], bytes):
        dtype = _dtype(args[0])
        return None if dtype is None else np.frombuffer(args[1], dtype=dtype)[:1].reshape(())
    return None


# --- vecnormalize.pkl ---------------------------------------------------------------------


class InertRecord:
    """Stands in for a class named in ``vecnormalize.pkl``: it only stores what it is given."""

    qualname = "InertRecord"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state


_RECORD_MODULES = (
    "stable_baselines3.common.vec_env.vec_normalize",
    "stable_baselines3.common.running_mean_std",
    "gym.spaces.box", "gym.spaces.discrete", "gym.spaces.dict", "gym.spaces.multi_discrete",
    "gym.spaces.multi_binary", "gym.spaces.tuple",
    "gymnasium.spaces.box", "gymnasium.spaces.discrete", "gymnasium.spaces.dict",
    "gymnasium.spaces.multi_discrete", "gymnasium.spaces.multi_binary",
    "gymnasium.spaces.tuple",
    "numpy.random._pickle",  # generator/bit-generator constructors of a space's np_random
    "collections",  # OrderedDict of Dict spaces
)  # fmt: skip
_NUMPY_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}  # fmt: skip


class _VecNormalizeUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, where: str) -> None:
        super().__init__(file)
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_ALLOWED:
            return super().find_class(module, name)
        if module in _RECORD_MODULES and name.isidentifier():
            if module == "collections" and name != "OrderedDict":
                raise self._refuse(module, name)
            return type(name, (InertRecord,), {"qualname": f"{module}.{name}"})
        raise self._refuse(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise PolicyError(f"{self.where}: refers to a persistent id; not a vecnormalize.pkl")

    def _refuse(self, module: str, name: str) -> PolicyError:
        return PolicyError(
            f"{self.where}: refers to {module}.{name}, which rlbudget does not load; a "
            "vecnormalize.pkl holds only VecNormalize statistics (nothing was executed)"
        )


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
        obj = _VecNormalizeUnpickler(io.BytesIO(raw), where).load()
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

# --- what the zip says: spaces, policy class, kwargs ------------------------------------

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
    "MaskableActorCriticPolicy": "actor-critic",
    "DQNPolicy": "dqn",
    "QRDQNPolicy": "qrdqn",
    "SACPolicy": "sac",
    "TQCPolicy": "tqc",
    "TD3Policy": "td3",
    "ARSPolicy": "ars",
    "ARSLinearPolicy": "ars",
}
_UNSUPPORTED_CLASSES = {
    "ActorCriticCnnPolicy": "a CNN policy",
    "CnnPolicy": "a CNN policy",
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


# --- import -------------------------------------------------------------------------------


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


def _check_env(policy: Policy, env_id: str, *, required: bool, notes: list[str]) -> None:
    """The env's spaces must be the policy's; an env that cannot be made is an error only
    when the user named it."""
    from rlbudget.envs import make_env, space_mismatch

    try:
        env = make_env(env_id)
    except RlbudgetError as exc:
        if required:
            raise
        notes.append(f"env '{env_id}' (from the file names) could not be made: {exc}")
        return
    try:
        problem = space_mismatch(env, env_id, policy.observation_space, policy.action_space,
                                 "the model's")  # fmt: skip
        if problem:
            raise PolicyError(f"{problem}; pass the env the model was trained on")
    finally:
        env.close()


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
        )  # fmt: skip
    except PolicyError as exc:
        raise PolicyError(f"{where}: {exc}") from None
    if env is not None:
        _check_env(policy, env, required=env_id is not None, notes=notes)
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
