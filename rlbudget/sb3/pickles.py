"""Safe pickle inspection: what a pickle describes, without running it.

SB3 pickles what JSON cannot hold (spaces, ``policy_class``, sometimes ``policy_kwargs``
in a zip's ``data``; the whole ``vecnormalize.pkl``). Two ways to read them here, neither
of which executes anything from the file:

- :func:`inspect_pickle` walks the opcodes with :func:`pickletools.genops` and builds inert
  values (a :class:`Global` is just a module and a name; a :class:`Reduced` is a call that
  is never made). Nothing is imported, nothing is called. :func:`inert_array` reads the
  numpy arrays such a value describes.
- :class:`VecNormalizeUnpickler` is an allow-list unpickler for ``vecnormalize.pkl``: numpy
  array reconstruction only; SB3's VecNormalize/RunningMeanStd, gym/gymnasium spaces and
  numpy's random generators become inert records (:class:`InertRecord`). Anything else is
  refused before it is loaded.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlbudget.errors import PolicyError
from rlbudget.policy.model import Array

MAX_PICKLE_OPS = 1_000_000


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


class VecNormalizeUnpickler(pickle.Unpickler):
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
