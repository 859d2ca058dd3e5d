"""The exported C policy, compiled for this host and called from Python through ctypes.

Used to measure the C decision's latency next to numpy and SB3 (``benchmarks/``) and to
check the generated code against :meth:`Policy.act` without a harness process. The
library is compiled with the host's ``cc``/``gcc`` as ``-std=c99 -O3 -fPIC -shared``: the
same portable C99 a firmware builds, at the optimization level a host build would use (no
``-march=native``, so the library runs on any machine of the same architecture).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from rlbudget.errors import PolicyError
from rlbudget.export.c import export_c
from rlbudget.policy.model import Policy

FLAGS = ("-std=c99", "-O3", "-fPIC", "-shared")


def find_compiler() -> str | None:
    """``$CC``, else ``cc``, else ``gcc`` on the PATH (None when there is none)."""
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return name
    return None


class HostPolicy:
    """``policy``'s C export as a shared library; :meth:`act` calls ``rlb_policy_act``.

    The observation and action buffers are allocated once; :meth:`act` copies one
    observation in and returns the action (an ``int`` for discrete actions, else a float32
    array), like :meth:`Policy.act` on one observation.
    """

    def __init__(self, policy: Policy, folder: str | os.PathLike[str]) -> None:
        compiler = find_compiler()
        if compiler is None:
            raise PolicyError("no C compiler found (set CC, or install gcc) to build the policy")
        folder = Path(folder)
        self.export = export_c(policy, folder)
        library = folder / "libpolicy.so"
        cmd = [compiler, *FLAGS, str(folder / "policy.c"), "-o", str(library)]
        if self.export.needs_libm:
            cmd.append("-lm")
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PolicyError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
        self._lib = ctypes.CDLL(str(library))
        self._fn = self._lib.rlb_policy_act
        self._fn.restype = ctypes.c_int
        self._fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.discrete = policy.action_space.kind == "discrete"
        self._obs = np.zeros(policy.observation_space.dim, dtype=np.float32)
        self._obs_view = self._obs.reshape(policy.observation_space.shape or (1,))
        self._action = np.zeros(max(policy.action_space.dim, 1), dtype=np.float32)
        self._obs_ptr = self._obs.ctypes.data
        self._action_ptr = self._action.ctypes.data

    def act(self, obs: Any) -> Any:
        self._obs_view[...] = obs  # the one copy in; ravel would add a microsecond
        result = self._fn(self._obs_ptr, self._action_ptr)
        return int(result) if self.discrete else self._action.copy()
