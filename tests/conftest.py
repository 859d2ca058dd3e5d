"""Shared fixtures: paths to the repo's example budgets and to the RL Zoo models, and a
writer for budget text. Test policies come from :mod:`tests.factories`."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

import tests.fake_envs  # noqa: F401  (registers the fake envs; their module counts as imported)

# profile's emulated latency (issue 16) stays off except in tests/test_emulate.py, which
# turns it on: it takes seconds per profile and changes the latency figure the older tests pin
os.environ.setdefault("RLBUDGET_EMULATE", "0")
# plan reads this host's training-throughput calibration (issue 18.3) from a user cache: the
# tests read an empty one of their own, so that plans do not depend on who ran `calibrate`
os.environ.setdefault("RLBUDGET_CACHE_DIR", tempfile.mkdtemp(prefix="rlbudget-test-cache-"))

ROOT = Path(__file__).resolve().parent.parent
BUDGETS = ROOT / "budgets"
ZOO = ROOT.parent / "shared" / "zoo"
"""The five RL Zoo models (``../shared/zoo`` beside the checkout, not in the repository):
``ZOO / "ppo-CartPole-v1"`` and so on. Tests that read one are marked :func:`needs_zoo`."""


def needs_zoo(*names: str) -> pytest.MarkDecorator:
    """Skip the test when :data:`ZOO`, or one of the named model folders in it, is absent."""
    if not ZOO.is_dir():
        return pytest.mark.skipif(True, reason=f"the RL Zoo models are not here ({ZOO} is missing)")
    missing = [n for n in names if not (ZOO / n).is_dir()]
    return pytest.mark.skipif(bool(missing), reason=f"{ZOO} lacks {', '.join(missing)}")


@pytest.fixture
def write_budget(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write budget text to tmp_path/NAME and return its path."""

    def write(text: str, name: str = "budget.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
