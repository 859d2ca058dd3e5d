"""The planner on the host: rebuild a PETS run's ensemble and CEM planner from its run
folder (``model/model.json`` and ``model/ensemble.safetensors``, written by
:func:`~rlbudget.agents.model_based.pets.train_pets`), for ``rlbudget evaluate --planner``.

Only JSON and safetensors are read (nothing is executed), every field is checked, and a
missing or malformed file is one :class:`~rlbudget.errors.PolicyError` naming it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rlbudget.errors import PolicyError

MODEL_INFO = "model/model.json"
MODEL_FILE = "model/ensemble.safetensors"
FORMAT = "rlbudget-pets-ensemble/1"


def planner_for(policy_dir: str | Path, seed: int = 0) -> Callable[[Any], Any]:
    """The planner's act function for the PETS run whose ``policy/`` folder is given.

    :raises PolicyError: no model beside the policy, or one this version cannot read.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.numpy import load

    from rlbudget.agents.model_based.ensemble import Ensemble
    from rlbudget.agents.model_based.planner import CEM, Planner

    run = Path(policy_dir).resolve().parent
    info_path, model_path = run / MODEL_INFO, run / MODEL_FILE
    if not info_path.is_file() or not model_path.is_file():
        raise PolicyError(f"{policy_dir}: no planner beside this policy ({info_path} or "
                          f"{model_path} is missing); --planner needs the policy/ folder of "
                          "a pets run")  # fmt: skip
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        arrays = load(model_path.read_bytes())
        if info.get("format") != FORMAT:
            raise ValueError(f"format {info.get('format')!r}, expected {FORMAT!r}")
        obs_dim, n_act = int(info["obs_dim"]), int(info["action_dim"])
        ens = Ensemble(obs_dim + n_act, obs_dim, int(info["members"]),
                       [int(w) for w in info["model_arch"]], seed)  # fmt: skip
        ens.load_arrays(arrays)
        p = info["planner"]
        cem = CEM(int(p["horizon"]), int(p["population"]), int(p["iterations"]),
                  float(p["elite_fraction"]), float(p["alpha"]),
                  int(p["particles_per_member"]), bool(p["aleatoric"]),
                  int(p.get("replan_every", 1)), float(p.get("keep_elites", 0.0)))  # fmt: skip
        discrete = bool(info["discrete"])
        low = None if discrete else np.asarray(info["action_low"], np.float32)
        high = None if discrete else np.asarray(info["action_high"], np.float32)
        obs_low = np.asarray(info["obs_low"], np.float32)
        obs_high = np.asarray(info["obs_high"], np.float32)
        planner = Planner(ens, cem, low=low, high=high, n=n_act if discrete else None,
                          terminates=bool(info["terminates"]), seed=seed, obs_low=obs_low,
                          obs_high=obs_high)  # fmt: skip
        lo, hi = info["reward_range"]
        planner.reward_range = (float(lo), float(hi))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
        raise PolicyError(f"{run / 'model'}: not a PETS model this version can read "
                          f"({exc}); train again") from None  # fmt: skip
    torch.set_num_threads(1)

    def act(obs: Any) -> Any:
        return planner.act(np.asarray(obs, np.float32).ravel())

    return act
