"""Host calibration: how many env steps per second each algorithm trains at each hidden
width on *this* host (updates included), measured once and cached.

``rlbudget calibrate`` (:func:`calibrate`) trains every calibrated algorithm for a few
hundred steps at each width of :data:`WIDTHS` (one torch thread, on ``Pendulum-v1``) and
writes the figures to a YAML cache (:func:`cache_path`) under this host's key (CPU model,
torch version, logical cores: :func:`host_key`). ``rlbudget plan`` reads them
(:func:`load_calibration`, no torch import) and :mod:`rlbudget.plan.widths` turns them
into seconds per step for any hidden shape; without them it says "not calibrated" and
uses algorithms.yaml's figures scaled by the width law.

The cache is plain YAML, one entry per host, safe to read and to delete::

    schema: rlbudget.calibration/1
    hosts:
      Intel(R) Xeon(R) Processor | torch 2.5.1 | 2 cores:
        measured: '2026-12-03T15:10:02Z'
        env: Pendulum-v1
        observation_dim: 3
        action_dim: 1
        env_step_s: 4.9e-05          # the env's own step, included in steps_per_s
        steps: 300                   # timed env steps per point, after a warm-up
        threads: 1
        steps_per_s:
          sac: {16: 305.0, 32: 290.0, 64: 240.0, 256: 95.0}
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rlbudget.errors import RlbudgetError

SCHEMA = "rlbudget.calibration/1"
CACHE_ENV = "RLBUDGET_CACHE_DIR"
WIDTHS = (16, 32, 64, 256)
# Calibrated when present in algorithms.yaml: SB3's continuous-control and on-policy
# defaults, and the built-in lean SAC/TD3 (issue 18).
ALGORITHMS = ("sac", "td3", "ppo", "lean-sac", "lean-td3")
CALIBRATION_ENV = "Pendulum-v1"
LEAN_MODULE = "rlbudget.agents.offpolicy"
MAX_CACHE_BYTES = 1 << 20


@dataclass(frozen=True)
class HostKey:
    """What a calibration is valid for: the CPU model, torch's version, logical cores."""

    cpu: str
    torch: str
    cores: int

    @property
    def text(self) -> str:
        return f"{self.cpu} | torch {self.torch} | {self.cores} cores"


@dataclass(frozen=True)
class Calibration:
    """One host's measured training throughput: ``steps_per_s[algorithm][width]``."""

    key: HostKey
    measured: str
    env_id: str
    observation_dim: int
    action_dim: int
    env_step_s: float
    steps: int
    threads: int
    steps_per_s: Mapping[str, Mapping[int, float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "measured": self.measured,
            "env": self.env_id,
            "observation_dim": self.observation_dim,
            "action_dim": self.action_dim,
            "env_step_s": self.env_step_s,
            "steps": self.steps,
            "threads": self.threads,
            "steps_per_s": {a: dict(sorted(w.items())) for a, w in self.steps_per_s.items()},
        }


def cache_path() -> Path:
    """``$RLBUDGET_CACHE_DIR/calibration.yaml``, else ``$XDG_CACHE_HOME/rlbudget/…``, else
    ``~/.cache/rlbudget/calibration.yaml``."""
    base = os.environ.get(CACHE_ENV)
    if base:
        return Path(base) / "calibration.yaml"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "rlbudget" / "calibration.yaml"


def host_key() -> HostKey:
    """This host's key, read without importing torch."""
    from importlib import metadata

    cpu = platform.processor() or platform.machine() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       cpu)  # fmt: skip
    except OSError:
        pass
    try:
        torch = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch = "none"
    return HostKey(cpu, torch, os.cpu_count() or 1)


def _corrupt(path: Path, why: str) -> RlbudgetError:
    return RlbudgetError(
        f"{path}: not a readable calibration cache ({why}); delete it, or run "
        "`rlbudget calibrate` to measure again and replace it"
    )


def _read_hosts(path: Path) -> dict[str, Any]:
    """The cache's ``hosts`` mapping ({} when there is no file).

    :raises RlbudgetError: unreadable, not YAML, or not this schema.
    """
    import yaml

    from rlbudget.fileio import read_capped

    if not path.exists():
        return {}
    raw = read_capped(path, MAX_CACHE_BYTES, "a calibration cache")
    try:
        doc = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _corrupt(path, f"not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise _corrupt(path, f"schema is not {SCHEMA}")
    hosts = doc.get("hosts")
    if not isinstance(hosts, dict):
        raise _corrupt(path, "'hosts' is not a mapping")
    return hosts


def _entry(key: HostKey, doc: Any, path: Path) -> Calibration:
    where = f"hosts.{key.text}"
    try:
        measured, env_id = str(doc["measured"]), str(doc["env"])
        env_step_s = float(doc["env_step_s"])
        dims = int(doc["observation_dim"]), int(doc["action_dim"])
        rates = {
            str(algo): {_number(int, w, "a width"): _number(float, v, "a steps_per_s figure")
                        for w, v in widths.items()}
            for algo, widths in doc["steps_per_s"].items()
        }  # fmt: skip
        if any(not (math.isfinite(v) and v > 0) for w in rates.values() for v in w.values()):
            raise ValueError("a steps_per_s figure is not a finite positive number")
        if any(w < 1 for ws in rates.values() for w in ws):
            raise ValueError("a width is below 1")
        if not (math.isfinite(env_step_s) and env_step_s >= 0) or min(dims) < 1:
            raise ValueError("env_step_s must be a finite number ≥ 0, the dimensions ≥ 1")
        return Calibration(
            key=key, measured=measured, env_id=env_id,
            observation_dim=dims[0], action_dim=dims[1], env_step_s=env_step_s,
            steps=int(doc["steps"]), threads=int(doc["threads"]), steps_per_s=rates,
        )  # fmt: skip
    except KeyError as exc:
        raise _corrupt(path, f"{where} has no {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise _corrupt(path, f"{where}: {exc}") from None


def _number(kind: type[int] | type[float], value: Any, what: str) -> Any:
    """``kind(value)`` of a YAML number (a bool or a text is not one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} is {value!r}, not a number")
    return kind(value)


def load_calibration(path: Path | None = None, key: HostKey | None = None) -> Calibration | None:
    """This host's calibration from the cache, or None when it has not been measured.

    :raises RlbudgetError: the cache exists but cannot be read as one (the message names
        the file and says to delete it or run ``rlbudget calibrate``).
    """
    path = path or cache_path()
    key = key or host_key()
    doc = _read_hosts(path).get(key.text)
    return None if doc is None else _entry(key, doc, path)


def writable_cache(path: Path | None = None) -> Path:
    """``path`` (default :func:`cache_path`) with its folder created and writable; checked
    before minutes of measuring are spent.

    :raises RlbudgetError: the folder cannot be created or written (names it, and
        ``RLBUDGET_CACHE_DIR`` to move it).
    """
    path = path or cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ok = os.access(path.parent, os.W_OK)
        why = "not writable"
    except OSError as exc:
        ok, why = False, exc.strerror or type(exc).__name__
    if not ok:
        raise RlbudgetError(
            f"{path.parent}: cannot hold the calibration cache ({why}); set "
            f"{CACHE_ENV} to a writable folder"
        )
    return path


def save_calibration(cal: Calibration, path: Path | None = None) -> Path:
    """Write ``cal`` under its host key (atomically), keeping other hosts' entries and this
    host's figures of algorithms ``cal`` did not measure (``calibrate --algo sac`` adds to
    a full calibration); a cache that cannot be read is replaced."""
    import yaml

    from rlbudget.fileio import atomic_write_text

    path = path or cache_path()
    try:
        hosts = _read_hosts(path)
        previous = _entry(cal.key, hosts[cal.key.text], path) if cal.key.text in hosts else None
    except RlbudgetError:
        hosts, previous = {}, None
    if previous is not None and previous.env_id == cal.env_id:
        kept = {a: w for a, w in previous.steps_per_s.items() if a not in cal.steps_per_s}
        cal = replace(cal, steps_per_s={**kept, **cal.steps_per_s})
    hosts[cal.key.text] = cal.to_dict()
    writable_cache(path)
    header = (
        "# rlbudget host calibration: env steps per second of training (updates included)\n"
        "# per algorithm and hidden width, written by `rlbudget calibrate`. Safe to delete.\n"
    )
    body = yaml.safe_dump({"schema": SCHEMA, "hosts": hosts}, sort_keys=False,
                          allow_unicode=True)  # fmt: skip
    atomic_write_text(path, header + body)
    return path


def _sb3_steps_per_s(algorithm: str, width: int, steps: int, env_id: str) -> float:
    """Plain SB3 at RL Zoo's per-step update cost: off-policy, one gradient step of 256
    samples per env step; PPO, 4 envs and 10 epochs of 64-sample minibatches over each
    rollout (the same cost per env step as its Zoo settings). Timed after a warm-up that
    fills ``learning_starts`` (or one rollout); returns env steps per second."""
    import gymnasium as gym
    from stable_baselines3 import PPO, SAC, TD3
    from stable_baselines3.common.env_util import make_vec_env

    arch = {"net_arch": [width, width]}
    if algorithm == "ppo":
        n_steps = max(16, steps // 4 // 16 * 16)  # a rollout of 4 × n_steps, 64 | n_steps×4
        model: Any = PPO("MlpPolicy", make_vec_env(env_id, n_envs=4, seed=0), n_steps=n_steps,
                         batch_size=64, n_epochs=10, policy_kwargs=arch, seed=0,
                         device="cpu")  # fmt: skip
        warm = timed = 4 * n_steps
    else:
        cls = SAC if algorithm == "sac" else TD3
        warm, timed = 100, steps
        model = cls("MlpPolicy", gym.make(env_id), learning_starts=warm, batch_size=256,
                    policy_kwargs=arch, seed=0, device="cpu")  # fmt: skip
    model.learn(warm)
    start = time.perf_counter()
    model.learn(timed, reset_num_timesteps=False)
    return timed / (time.perf_counter() - start)


def _lean_steps_per_s(algorithm: str, width: int, steps: int, env_id: str) -> float:
    """The built-in lean SAC/TD3's own measurement (issue 18.2):
    ``measure_throughput(algorithm, env_id, width, steps=…)`` of :data:`LEAN_MODULE`."""
    import importlib

    module = importlib.import_module(LEAN_MODULE)
    return float(module.measure_throughput(algorithm, env_id, width, steps=steps))


def _env_step_s(env_id: str, steps: int = 2000) -> float:
    import gymnasium as gym

    env = gym.make(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    return (time.perf_counter() - start) / steps


def calibrate(
    algorithms: Sequence[str] | None = None,
    widths: Sequence[int] = WIDTHS,
    steps: int = 300,
    *,
    progress: Callable[[str], None] | None = None,
) -> Calibration:
    """Measure training throughput on this host (imports torch; seconds per point).

    :param algorithms: ids to measure (default: those of :data:`ALGORITHMS` the algorithms
        table knows).
    :param widths: hidden widths (two layers of each).
    :param steps: timed env steps per point, after a warm-up.
    :param progress: called with one line per point measured.
    :raises RlbudgetError: an algorithm that cannot be calibrated, or no torch.
    """
    from rlbudget.hyperparams import algorithms as known

    table = known()
    ids = list(algorithms) if algorithms else [a for a in ALGORITHMS if a in table]
    for a in ids:
        if a not in ALGORITHMS or a not in table:
            ok = ", ".join(x for x in ALGORITHMS if x in table)
            raise RlbudgetError(f"--algo {a}: cannot be calibrated; choose from {ok}")
    if steps < 50 or not widths or min(widths) < 1:
        raise RlbudgetError("calibrate: --steps must be ≥ 50 and every --width ≥ 1")
    try:
        import torch
    except ImportError:
        raise RlbudgetError(
            "calibrate needs torch and stable-baselines3: pip install 'rlbudget[sb3]'"
        ) from None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rates: dict[str, dict[int, float]] = {}
        for a in ids:
            measure = _lean_steps_per_s if table[a].library == "builtin" else _sb3_steps_per_s
            for w in sorted(widths):
                rate = measure(a, w, steps, CALIBRATION_ENV)
                rates.setdefault(a, {})[w] = round(rate, 1)
                if progress:
                    progress(f"{a} {w}-{w}: {rate:,.0f} env steps/s")
        env_step = _env_step_s(CALIBRATION_ENV)
    finally:
        torch.set_num_threads(threads)
    import gymnasium as gym

    env = gym.make(CALIBRATION_ENV)
    return Calibration(
        key=host_key(),
        measured=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        env_id=CALIBRATION_ENV,
        observation_dim=int(env.observation_space.shape[0]),  # type: ignore[index]
        action_dim=int(env.action_space.shape[0]),  # type: ignore[index]
        env_step_s=float(f"{env_step:.3g}"),
        steps=steps,
        threads=1,
        steps_per_s=rates,
    )
