"""Stable-Baselines3 interop: import SB3 models safely, convert them, train with SB3.

Modules, in the order an import reads a model:

- :mod:`~rlbudget.sb3.pickles` — what a pickle describes, inspected without running it;
- :mod:`~rlbudget.sb3.files` — the files (model zip, ``vecnormalize.pkl``, RL Zoo
  ``config.yml``) and where they lie in an RL Zoo folder;
- :mod:`~rlbudget.sb3.zipdata` — what a zip's ``data`` says (spaces, policy class,
  algorithm);
- :mod:`~rlbudget.sb3.convert` — an SB3 actor's weights → a framework-free
  :class:`~rlbudget.policy.Policy`;
- :mod:`~rlbudget.sb3.importer` — :func:`~rlbudget.sb3.importer.import_model`, the above
  put together (``rlbudget import``);
- :mod:`~rlbudget.sb3.training` — :func:`~rlbudget.sb3.training.train_sb3`, SB3 training
  behind the built-in agents' loop contract (``rlbudget train --algo ppo``), with
  :mod:`~rlbudget.sb3.checkpoint` for its pickle-free checkpoints.

torch and SB3 are imported inside the functions that need them, so importing these
modules stays cheap.
"""

from __future__ import annotations

from rlbudget._lazy import submodules

__getattr__ = submodules(__name__)  # submodules on first use, after import rlbudget
