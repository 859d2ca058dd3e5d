"""An SB3 model's whole training state as a :class:`~rlbudget.agents.common.Checkpoint`.

**Checkpoints** never need unpickling: the state dicts SB3 itself saves
(``_get_torch_save_params``: policy with target networks, optimizers, SAC/TQC's
``log_ent_coef`` and its optimizer) are flattened into safetensors arrays with a JSON
skeleton, with the replay buffer, the VecNormalize statistics and the RNG states (torch as
its uint8 state tensor, numpy's MT19937 key), in the same atomic folder format as the
built-in agents (:class:`~rlbudget.agents.common.Checkpoint`). They are written at
rollout boundaries (the start of a rollout, i.e. just after an update) every
``checkpoint_every`` steps, and at the stop.

**Resume** rebuilds the model with the same settings and loads that state. Identical to
the stopped run: weights, target networks, optimizer moments and step counts, the entropy
coefficient, the replay buffer (contents, position, full flag; a compact one's stored
rows, :mod:`rlbudget.sb3.replay`), VecNormalize's running
means/variances/counts, ``num_timesteps``, ``_n_updates``, ``_n_calls`` (DQN's target
update clock), hence every schedule (learning rate, clip range, ε), the global python,
numpy and torch RNG states and the action space's RNG, and the episode log. Not
identical: the envs cannot be saved mid-episode, so they are reset, seeded with
``seed + num_timesteps`` (deterministic): the episodes in progress at the stop are cut
(not logged) and the first actions after a resume differ from a straight run's; an
on-policy stop mid-rollout loses that partial rollout (see Stops in
:mod:`rlbudget.sb3.training`); TD3's Ornstein-Uhlenbeck noise and VecNormalize's per-env
discounted return restart at zero; gSDE's noise matrix is redrawn. A resumed run is
therefore a faithful continuation, not a bit-for-bit replay of a straight run, but it is
reproducible: resuming the same checkpoint twice gives the same result.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import numpy as np

from rlbudget.agents.common import Checkpoint, Episode


def attribute(obj: Any, dotted: str) -> Any:
    """``obj.a.b`` for ``dotted`` = ``"a.b"``: how SB3 names what it saves."""
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


# --- state dicts ⇄ safetensors arrays + a JSON skeleton ----------------------------------


def _encode(obj: Any, path: str, arrays: dict[str, np.ndarray]) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        arrays[path] = obj.detach().cpu().numpy().copy()
        return {"tensor": path}
    if isinstance(obj, Mapping):
        return {"dict": [[k, _encode(v, f"{path}/{k}", arrays)] for k, v in obj.items()]}
    if isinstance(obj, list | tuple):
        items = [_encode(v, f"{path}/{i}", arrays) for i, v in enumerate(obj)]
        return {"tuple" if isinstance(obj, tuple) else "list": items}
    if obj is None or isinstance(obj, bool | int | float | str):
        return {"value": obj}
    raise TypeError(f"cannot checkpoint {path}: {type(obj).__name__}")


def _decode(node: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Any:
    import torch

    if "tensor" in node:
        return torch.from_numpy(np.array(arrays[node["tensor"]]))
    if "dict" in node:
        return {k: _decode(v, arrays) for k, v in node["dict"]}
    if "list" in node:
        return [_decode(v, arrays) for v in node["list"]]
    if "tuple" in node:
        return tuple(_decode(v, arrays) for v in node["tuple"])
    return node["value"]


REPLAY_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
COUNTERS = ("num_timesteps", "_n_updates", "_n_calls", "_episode_num")
# an Episode as a dict (dataclasses.asdict deep-copies field by field: 10× slower)
EPISODE_KEYS = tuple(f.name for f in fields(Episode))


def model_checkpoint(
    model: Any, vecnorm: Any, episodes: list[Episode], wall_s: float, algorithm: str
) -> Checkpoint:
    """Everything resume needs (see the module docstring), as a Checkpoint."""
    import torch

    arrays: dict[str, np.ndarray] = {}
    state_dicts, variables = model._get_torch_save_params()
    torch_state = {name: _encode(attribute(model, name).state_dict(), f"sd/{name}", arrays)
                   for name in state_dicts}  # fmt: skip
    torch_vars = {
        name: _encode(attribute(model, name), f"var/{name}", arrays) for name in variables
    }
    state: dict[str, Any] = {
        "algorithm": algorithm,
        "steps": int(model.num_timesteps),
        "wall_s": wall_s,
        "episodes": [{k: getattr(e, k) for k in EPISODE_KEYS} for e in episodes],
        "counters": {k: int(getattr(model, k)) for k in COUNTERS if hasattr(model, k)},
        "state_dicts": torch_state,
        "variables": torch_vars,
    }
    buffer = getattr(model, "replay_buffer", None)
    if buffer is not None and hasattr(buffer, "compact"):  # rlbudget.sb3.replay's
        arrays.update(buffer.compact.arrays("replay/compact/"))
        state["replay"] = {"pos": int(buffer.pos), "full": bool(buffer.full)}
    elif buffer is not None:
        filled = buffer.buffer_size if buffer.full else buffer.pos
        for name in REPLAY_ARRAYS:
            if hasattr(buffer, name):
                arrays[f"replay/{name}"] = getattr(buffer, name)[:filled].copy()
        state["replay"] = {"pos": int(buffer.pos), "full": bool(buffer.full)}
    if vecnorm is not None:
        for name in ("obs_rms", "ret_rms"):
            rms = getattr(vecnorm, name)
            arrays[f"vecnorm/{name}/mean"] = np.asarray(rms.mean, dtype=np.float64)
            arrays[f"vecnorm/{name}/var"] = np.asarray(rms.var, dtype=np.float64)
            state[f"vecnorm_{name}_count"] = float(rms.count)
    legacy: Any = np.random.get_state()
    arrays["rng/numpy_key"] = np.asarray(legacy[1])
    arrays["rng/torch"] = torch.get_rng_state().numpy().copy()
    py_state = random.getstate()
    state["rng"] = {
        "numpy": [legacy[0], int(legacy[2]), int(legacy[3]), float(legacy[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "action_space": dict(model.action_space.np_random.bit_generator.state),
    }
    return Checkpoint(state, arrays)


def restore_model(model: Any, vecnorm: Any, ck: Checkpoint) -> None:
    """Load a :func:`model_checkpoint` into a freshly built model with the same settings."""
    import torch

    state, arrays = ck.state, ck.arrays
    for name, node in state["state_dicts"].items():
        attribute(model, name).load_state_dict(_decode(node, arrays))
    for name, node in state["variables"].items():
        attribute(model, name).data.copy_(_decode(node, arrays))
    for key, value in state["counters"].items():
        setattr(model, key, int(value))
    if "replay" in state:
        buffer = model.replay_buffer
        if hasattr(buffer, "compact"):
            buffer.compact.load(arrays, "replay/compact/")
        for name in REPLAY_ARRAYS:
            if f"replay/{name}" in arrays:
                saved = arrays[f"replay/{name}"]
                getattr(buffer, name)[: len(saved)] = saved
        buffer.pos, buffer.full = int(state["replay"]["pos"]), bool(state["replay"]["full"])
    if vecnorm is not None:
        for name in ("obs_rms", "ret_rms"):
            rms = getattr(vecnorm, name)
            rms.mean = np.array(arrays[f"vecnorm/{name}/mean"])
            rms.var = np.array(arrays[f"vecnorm/{name}/var"])
            rms.count = float(state[f"vecnorm_{name}_count"])
    rng = state["rng"]
    kind, pos, has_gauss, gauss = rng["numpy"]
    np.random.set_state((kind, np.array(arrays["rng/numpy_key"]), pos, has_gauss, gauss))
    torch.set_rng_state(torch.from_numpy(np.array(arrays["rng/torch"])))
    version, internal, py_gauss = rng["python"]
    random.setstate((version, tuple(internal), py_gauss))
    model.action_space.np_random.bit_generator.state = rng["action_space"]
