"""The float32 discretizer and tile coder emulated (issue 16, item 4): the C export linked for
the Cortex-M0+ (software float32) and the M4F (hardware float32) computes the same feature
and state indices as numpy, bit for bit, on every boundary observation of
:mod:`tests.test_grid`. Skipped when the toolchain, unicorn or capstone is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlbudget.emulate.image import build_image
from rlbudget.emulate.machine import Machine
from rlbudget.export import export_c
from tests import test_emulate
from tests.test_grid import DISC_CASES, OVERFLOW, TILE_CASES, case_obs

# arm-none-eabi-gcc, unicorn and capstone, as tests/test_emulate.py
pytestmark = [*test_emulate.pytestmark, pytest.mark.filterwarnings(OVERFLOW)]


@pytest.mark.parametrize("core", ["cortex-m0plus", "cortex-m4"])
@pytest.mark.parametrize("name", ["mountaincar-8x8", "3d-7x5-odd-widths", "normalized",
                                  "cartpole-3x5x6x7", "2d-odd"])  # fmt: skip
def test_emulated_indices_equal_numpy_at_boundaries(name: str, core: str, tmp_path: Path) -> None:
    policy = TILE_CASES[name][0] if name in TILE_CASES else DISC_CASES[name]
    obs = case_obs(policy)
    export_c(policy, tmp_path / "c")
    machine = Machine(build_image(tmp_path / "c", core, tmp_path), core)
    obs_at, act_at = machine.symbol("rlb_obs"), machine.symbol("rlb_action")
    dim = policy.action_space.dim
    got = np.empty((len(obs), dim), dtype=np.float32)
    for i, x in enumerate(obs):
        machine.write(obs_at, x.astype(np.float32).tobytes())
        machine.call("rlb_policy_act", obs_at, act_at, count=False)
        got[i] = np.frombuffer(machine.read(act_at, 4 * dim), dtype=np.float32)
    want = policy.act(obs)
    assert np.array_equal(got, want), obs[np.any(got != want, axis=1)][:5]
