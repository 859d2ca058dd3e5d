"""The C export as a host shared library called through ctypes (HostPolicy)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rlbudget.compress.quantize import quantize_int8
from rlbudget.errors import PolicyError
from rlbudget.export.host import HostPolicy
from tests.factories import cartpole_mlp, observations, pendulum_mlp

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc on the PATH")


def test_int8_library_matches_numpy_bit_for_bit(tmp_path: Path) -> None:
    obs = observations("CartPole-v1")
    q = quantize_int8(cartpole_mlp(), obs[:1000])
    lib = HostPolicy(q, tmp_path / "q")
    assert not lib.export.needs_libm and (tmp_path / "q" / "libpolicy.so").is_file()
    got = np.array([lib.act(o) for o in obs])
    assert got.dtype.kind == "i" and np.array_equal(got, q.act(obs))


def test_continuous_library_matches_numpy(tmp_path: Path) -> None:
    obs = observations("Pendulum-v1")
    p = pendulum_mlp("relu", "tanh_rescale")
    q = quantize_int8(p, obs[:1000])
    lib = HostPolicy(q, tmp_path / "q")
    got = np.stack([lib.act(o) for o in obs])
    assert got.dtype == np.float32 and np.array_equal(got, q.act(obs))  # int8: exact
    lib = HostPolicy(p, tmp_path / "p")
    got = np.stack([lib.act(o) for o in obs])
    assert np.abs(got - p.act(obs)).max() <= 1e-5


def test_no_compiler_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rlbudget.export.host.find_compiler", lambda: None)
    with pytest.raises(PolicyError) as err:
        HostPolicy(cartpole_mlp(), tmp_path / "x")
    assert str(err.value) == "no C compiler found (set CC, or install gcc) to build the policy"
