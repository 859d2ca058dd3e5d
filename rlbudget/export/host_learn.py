"""The exported learner (``export --format c --learn``) compiled for this host and driven
from Python through ctypes: the "device" of the tests and of ``benchmarks/on_device.py``.

Built as :mod:`rlbudget.export.host` builds a policy (``-std=c99 -O3 -fPIC -shared``).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from rlbudget.agents.learner import LearnParams
from rlbudget.errors import PolicyError
from rlbudget.export.host import FLAGS, find_compiler
from rlbudget.export.learn import export_learner
from rlbudget.policy.model import Policy


class HostLearner:
    """``rlb_policy_*`` of the learner's C export, one method each, same names as
    :class:`~rlbudget.agents.learner.Learner`'s."""

    def __init__(self, policy: Policy, params: LearnParams, dtype: str,
                 folder: str | os.PathLike[str]) -> None:  # fmt: skip
        compiler = find_compiler()
        if compiler is None:
            raise PolicyError("no C compiler found (set CC, or install gcc) to build the learner")
        folder = Path(folder)
        self.export = export_learner(policy, folder, params, dtype)
        library = folder / "liblearn.so"
        cmd = [compiler, *FLAGS, str(folder / "policy.c"), "-o", str(library)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PolicyError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
        lib = ctypes.CDLL(str(library))
        ptr, c_int = ctypes.c_void_p, ctypes.c_int
        self._act = lib.rlb_policy_act
        self._act.argtypes, self._act.restype = [ptr, ptr], c_int
        self._explore = lib.rlb_policy_act_explore
        self._explore.argtypes, self._explore.restype = [ptr], c_int
        self._learn = lib.rlb_policy_learn
        self._learn.argtypes = [ptr, c_int, ctypes.c_float, ptr, c_int]
        self._learn.restype = c_int
        self._reset = lib.rlb_policy_reset
        self._reset.argtypes, self._reset.restype = [], None
        self._end = lib.rlb_policy_end_episode
        self._end.argtypes, self._end.restype = [], None
        self._state = lib.rlb_policy_state
        self._state.argtypes, self._state.restype = [ctypes.POINTER(ctypes.c_uint32)], ptr
        dim = policy.observation_space.dim
        self._obs = np.zeros(dim, dtype=np.float32)
        self._next = np.zeros(dim, dtype=np.float32)

    def act(self, obs: Any) -> int:
        self._obs[...] = np.ravel(obs)
        return int(self._act(self._obs.ctypes.data, None))

    def act_explore(self, obs: Any) -> int:
        self._obs[...] = np.ravel(obs)
        return int(self._explore(self._obs.ctypes.data))

    def learn(self, obs: Any, action: int, reward: float, next_obs: Any, done: bool) -> int:
        self._obs[...] = np.ravel(obs)
        self._next[...] = np.ravel(next_obs)
        return int(self._learn(self._obs.ctypes.data, int(action), float(reward),
                               self._next.ctypes.data, int(bool(done))))  # fmt: skip

    def end_episode(self) -> None:
        self._end()

    def reset(self) -> None:
        self._reset()

    def dump(self) -> bytes:
        """The state's bytes, as ``rlb_policy_state`` hands them out."""
        n = ctypes.c_uint32(0)
        address = self._state(ctypes.byref(n))
        return ctypes.string_at(address, n.value)
