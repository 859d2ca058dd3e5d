"""What a run may start from: a teacher policy, recorded demonstrations, env make kwargs.

- :func:`load_teacher`: a policy folder, a Stable-Baselines3 ``.zip`` or an RL Zoo folder
  (read as ``rlbudget import`` reads it, :func:`rlbudget.sb3.importer.import_model`:
  nothing is unpickled), checked against the env's spaces.
- :func:`load_demos`: an ``.npz`` of recorded transitions (:data:`DEMO_KEYS`), read with
  ``allow_pickle=False`` and checked key by key against the env's spaces; or a Minari
  dataset id (``minari:ID``, optional extra ``rlbudget[minari]``) with flat Box/Discrete
  spaces.
- env kwargs (``--env-kwargs``, budget key ``task.env_kwargs``) are read by
  :func:`rlbudget.env_kwargs.parse_env_kwargs`.

Every problem is one :class:`~rlbudget.errors.RlbudgetError` line naming the file and
the key, raised before anything is written.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlbudget.errors import PlanError, PolicyError, RlbudgetError
from rlbudget.policy.model import Policy

if TYPE_CHECKING:
    from rlbudget.train.settings import RunSettings

DEMO_KEYS = ("observations", "actions", "rewards", "terminations", "truncations")
"""The arrays of a demos ``.npz`` (``numpy.savez(path, observations=..., ...)``), one row
per transition: the observation the action was taken in, the action, the reward, and
whether the episode terminated or was truncated after it."""
MAX_DEMOS_BYTES = 2 << 30  # 2 GiB: a demos file is loaded whole


def load_teacher(path: str | Path, env_id: str, *, what: str = "--teacher") -> Policy:
    """The teacher as a numpy :class:`Policy`, its spaces those of ``env_id``.

    :param path: a policy folder (``policy.json``), an SB3 ``.zip``, or an RL Zoo folder.
    :raises PolicyError: unreadable, unsupported, or for other spaces (one line).
    """
    from rlbudget.envs import env_mismatch
    from rlbudget.policy.io import JSON_NAME, load_policy

    p = Path(path)
    if not p.exists():
        raise PolicyError(f"{what} {p}: no such file or folder; give a policy folder, an SB3 "
                          ".zip or an RL Zoo folder")  # fmt: skip
    if (p / JSON_NAME).is_file():
        teacher = load_policy(p)
    else:
        from rlbudget.sb3.importer import import_model

        try:
            teacher = import_model(p).policy
        except PolicyError as exc:
            raise PolicyError(f"{what} {exc}") from None
    problem = env_mismatch(env_id, teacher.observation_space, teacher.action_space,
                           "the teacher's")  # fmt: skip
    if problem:
        raise PolicyError(f"{what} {p}: {problem}; give a teacher trained on {env_id}")
    return teacher


@dataclass(frozen=True)
class Demos:
    """Recorded transitions, checked: observations as the env gives them, and actions
    (int64 for Discrete, float32 ``[N, dim]`` for Box)."""

    observations: np.ndarray
    actions: np.ndarray
    episodes: int
    returns: tuple[float, ...]  # the return of each complete episode in the file


def _shape(a: np.ndarray) -> str:
    return "(" + ", ".join(str(d) for d in a.shape) + ("," if a.ndim == 1 else "") + ")"


def load_demos(path: str | Path, env_id: str) -> Demos:
    """Read ``path`` (an ``.npz`` with :data:`DEMO_KEYS`, or ``minari:DATASET_ID``) and check
    it against ``env_id``'s spaces.

    :raises RlbudgetError: a missing file or key, a pickle inside, a wrong shape or dtype,
        NaN/inf, an action outside the action space — one line naming file and key.
    """
    from rlbudget.envs import make_env, observation_spec, space_spec

    text = str(path)
    if text.startswith("minari:"):
        arrays, where = _minari(text.removeprefix("minari:")), text
    else:
        arrays, where = _read_npz(Path(path)), f"--demos {path}"
    env = make_env(env_id)
    try:
        obs_spec = observation_spec(env, env_id)
        act_spec = space_spec(env.action_space, what="action", env_id=env_id)
    finally:
        env.close()
    obs = arrays["observations"]
    n = obs.shape[0] if obs.ndim else 0
    if n == 0:
        raise RlbudgetError(f"{where}: 'observations' holds no rows; record at least one "
                            "transition")  # fmt: skip
    for key in DEMO_KEYS[2:]:
        a = arrays[key]
        if a.shape != (n,):
            raise RlbudgetError(f"{where}: '{key}' has shape {_shape(a)}, expected ({n},) "
                                "(one value per row of 'observations')")  # fmt: skip
    for key in ("terminations", "truncations"):
        a = arrays[key]
        if a.dtype != np.bool_ and not (np.issubdtype(a.dtype, np.integer)
                                        and np.isin(a, (0, 1)).all()):  # fmt: skip
            raise RlbudgetError(f"{where}: '{key}' has dtype {a.dtype}; write booleans "
                                "(or 0/1 integers)")  # fmt: skip
    want_obs = (n, *obs_spec.shape)
    if obs.shape != want_obs:
        raise RlbudgetError(
            f"{where}: 'observations' has shape {_shape(obs)}, expected {want_obs}: "
            f"{env_id}'s observations are {obs_spec.kind} {list(obs_spec.shape) or obs_spec.n}"
        )
    actions = arrays["actions"]
    if act_spec.kind == "discrete":
        want_act: tuple[int, ...] = (n,)
        if actions.shape == (n, 1):
            actions = actions[:, 0]
    else:
        want_act = (n, act_spec.dim)
        actions = actions.reshape(n, -1) if actions.shape == (n, *act_spec.shape) else actions
    if actions.shape != want_act:
        raise RlbudgetError(
            f"{where}: 'actions' has shape {_shape(arrays['actions'])}, expected {want_act}: "
            f"{env_id}'s actions are {act_spec.kind} {list(act_spec.shape) or act_spec.n}"
        )
    for key, a in (("observations", obs), ("actions", actions), ("rewards", arrays["rewards"])):
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or np.iscomplexobj(a):
            raise RlbudgetError(f"{where}: '{key}' has dtype {a.dtype}; write real numbers")
        bad = ~np.isfinite(np.asarray(a, dtype=np.float64))
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise RlbudgetError(f"{where}: '{key}' holds NaN or inf (first at row {row}); "
                                "drop those transitions")  # fmt: skip
    if act_spec.kind == "discrete":
        whole = np.issubdtype(actions.dtype, np.integer) or (actions == np.round(actions)).all()
        if not whole:
            raise RlbudgetError(f"{where}: 'actions' holds fractions; {env_id}'s actions are "
                                f"Discrete({act_spec.n}) integers")  # fmt: skip
        outside = (actions < 0) | (actions >= int(act_spec.n or 0))
        if outside.any():
            row = int(np.argwhere(outside)[0][0])
            raise RlbudgetError(
                f"{where}: 'actions' holds {actions[row]} at row {row}, outside {env_id}'s "
                f"Discrete({act_spec.n}) actions"
            )
        actions = actions.astype(np.int64)
    else:
        actions = actions.astype(np.float32)
    ends = np.asarray(arrays["terminations"], bool) | np.asarray(arrays["truncations"], bool)
    rewards = np.asarray(arrays["rewards"], np.float64)
    returns, start = [], 0
    for end in np.flatnonzero(ends):
        returns.append(float(rewards[start : end + 1].sum()))
        start = int(end) + 1
    return Demos(np.asarray(obs), actions, len(returns), tuple(returns))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    where = f"--demos {path}"
    if not path.is_file():
        what = "no such file" if not path.exists() else (
            "a folder" if path.is_dir() else "not a regular file")  # fmt: skip
        raise RlbudgetError(f"{where}: {what}; give an .npz written by numpy.savez with "
                            f"the keys {', '.join(DEMO_KEYS)}")  # fmt: skip
    if path.stat().st_size > MAX_DEMOS_BYTES:
        raise RlbudgetError(f"{where}: larger than {MAX_DEMOS_BYTES >> 30} GiB; split it")
    if not zipfile.is_zipfile(path):
        raise RlbudgetError(f"{where}: not an .npz (numpy.savez) file; write the demos with "
                            f"numpy.savez(path, {'=..., '.join(DEMO_KEYS)}=...)")  # fmt: skip
    out: dict[str, np.ndarray] = {}
    try:
        declared = _declared_bytes(path)
        if declared > MAX_DEMOS_BYTES:
            raise RlbudgetError(f"{where}: its arrays hold {declared / 2**30:.1f} GiB once read "
                                f"(more than {MAX_DEMOS_BYTES >> 30} GiB); split it")  # fmt: skip
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            missing = [k for k in DEMO_KEYS if k not in names]
            if missing:
                raise RlbudgetError(
                    f"{where}: key '{missing[0]}' is missing; a demos file holds "
                    f"{', '.join(DEMO_KEYS)} (it has {', '.join(sorted(names)) or 'none'})"
                )
            for key in DEMO_KEYS:
                try:
                    out[key] = np.asarray(npz[key])
                except ValueError as exc:
                    if "pickle" in str(exc):
                        raise RlbudgetError(
                            f"{where}: '{key}' is a pickled object array, which rlbudget "
                            "never loads; save plain numeric arrays"
                        ) from None
                    raise
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise RlbudgetError(f"{where}: cannot be read as an .npz ({exc})") from None
    return out


def _declared_bytes(path: Path) -> int:
    """What the :data:`DEMO_KEYS` arrays of the ``.npz`` at ``path`` take once read, from
    their ``.npy`` headers (a compressed file of a few MB may hold terabytes of zeros)."""
    total = 0
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        for key in DEMO_KEYS:
            if f"{key}.npy" not in names:
                continue  # named as missing by the caller
            with zf.open(f"{key}.npy") as f:
                version = np.lib.format.read_magic(f)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)  # fmt: skip
                shape, _, dtype = read(f)
            total += int(np.prod(shape, dtype=object)) * dtype.itemsize
    return total


def _minari(dataset_id: str) -> dict[str, np.ndarray]:
    """A Minari dataset's episodes as :data:`DEMO_KEYS` arrays (flat Box/Discrete only)."""
    where = f"--demos minari:{dataset_id}"
    try:
        import minari  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        raise RlbudgetError(f"{where}: Minari is not installed; pip install "
                            "'rlbudget[minari]'") from None  # fmt: skip
    try:
        dataset = minari.load_dataset(dataset_id)
    except Exception as exc:  # Minari raises many types; one line for all
        raise RlbudgetError(f"{where}: cannot be loaded ({exc})") from None
    parts: dict[str, list[np.ndarray]] = {k: [] for k in DEMO_KEYS}
    for ep in dataset.iterate_episodes():
        obs = np.asarray(ep.observations)
        if obs.dtype == object:
            raise RlbudgetError(f"{where}: its observations are not a flat Box or Discrete "
                                "space; rlbudget reads those only")  # fmt: skip
        parts["observations"].append(obs[:-1])  # Minari stores the final observation too
        for key in DEMO_KEYS[1:]:
            parts[key].append(np.asarray(getattr(ep, key)))
    if not parts["observations"]:
        raise RlbudgetError(f"{where}: holds no episodes")
    return {k: np.concatenate(v) for k, v in parts.items()}


IMITATION = ("bc", "dagger")
TEACHER_MARGIN = 0.05
"""How far below its teacher a student may stay and count as having reached it: 5 % of the
teacher's mean return (issue 19: "the teacher's return within 5 %")."""
PAIRED_TARGET = "the teacher's return on the same start states, less 5 % (paired)"
"""``target_from`` of a run with a teacher (:class:`rlbudget.agents.imitation.TeacherBar`)."""


def _absolute(path: str | None) -> str | None:
    if path is None or path.startswith("minari:"):
        return path
    return str(Path(path).resolve())


def check_prior(
    settings: RunSettings,
    *,
    teacher: str | None,
    demos: str | None,
    init: str | None,
    env_kwargs: Mapping[str, Any] | None,
) -> RunSettings:
    """``settings`` with what the run starts from, each checked against the env (made with
    ``env_kwargs``) before anything is written; paths made absolute (config.yaml).

    :raises RlbudgetError: a teacher or demos for an algorithm that does not imitate, a
        missing one for one that does, or any problem :func:`load_teacher`,
        :func:`load_demos` and :func:`rlbudget.agents.warmstart.check_init` find.
    """
    from rlbudget.env_kwargs import env_kwargs_applied
    from rlbudget.envs import make_env

    algo, env_id = settings.algorithm, settings.env_id
    if algo in IMITATION:
        check_sources(algo, teacher, demos)
    elif teacher or demos:
        given = "--teacher" if teacher else "--demos"
        raise PlanError(f"{given} is for --algo bc or dagger; to start {algo} from an existing "
                        "policy, use --init POLICY")  # fmt: skip
    with env_kwargs_applied(env_id, env_kwargs):
        make_env(env_id).close()  # bad env kwargs: one line, here
        if teacher:
            load_teacher(teacher, env_id)
        if demos:
            load_demos(demos, env_id)
        if init:
            from rlbudget.agents.warmstart import check_init

            check_init(algo, env_id, init, settings.hyperparameters)
            if settings.library == "sb3" and settings.hyperparameters.get("normalize"):
                raise PlanError(f"--init {init}: {algo} with normalize: true cannot start from "
                                "a policy (its actor sees normalized observations); add "
                                "-p normalize=false")  # fmt: skip
    kwargs = dict(env_kwargs) if env_kwargs else None
    settings = replace(settings, teacher=_absolute(teacher), demos=_absolute(demos),
                       init=_absolute(init), env_kwargs=kwargs)  # fmt: skip
    if algo in IMITATION and teacher:  # the stop rule: imitation.TeacherBar, not a fixed return
        settings = replace(settings, target_return=None, target_from=PAIRED_TARGET)
    return settings


def check_sources(algorithm: str, teacher: str | None, demos: str | None) -> None:
    """What each algorithm needs: bc a teacher or demos, dagger a teacher.

    :raises PlanError: one line saying which option to add.
    """
    if algorithm == "dagger" and not teacher:
        raise PlanError("dagger needs a teacher to label the student's states: add --teacher "
                        "POLICY (or use --algo bc with --demos FILE)")  # fmt: skip
    if algorithm == "bc" and not teacher and not demos:
        raise PlanError("bc needs a teacher (--teacher POLICY: a policy folder, an SB3 zip or "
                        "an RL Zoo folder) or demonstrations (--demos FILE.npz)")  # fmt: skip
