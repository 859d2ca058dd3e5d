"""The run folder: creating it, what a run writes there (config.yaml, metrics.csv,
curve.png, summary.json) and reading it back.

Every file is written atomically; ``metrics.csv`` also grows by one flushed row per
finished episode while training runs (:class:`MetricsLog`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlbudget import __version__
from rlbudget.agents.common import Episode
from rlbudget.errors import RlbudgetError
from rlbudget.fileio import LOCK, atomic_write_text, check_unlocked, is_empty_dir

if TYPE_CHECKING:
    from rlbudget.train.settings import RunSettings

SUMMARY = "summary.json"


@dataclass(frozen=True)
class TargetCheck:
    """The confirmation that stopped a run at its target (:func:`~rlbudget.train.target_met`):
    fresh episodes, their seed, the mean return and its 95 % lower confidence bound."""

    episodes: int
    seed: int
    mean: float
    lower_95: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainSummary:
    """What ``RUN_DIR/summary.json`` holds: why the run stopped, its steps, time and
    resources, and its last evaluation. ``rlbudget run`` records it as its train stage."""

    run_dir: str
    algorithm: str
    env: str
    seed: int
    stopped_by: str
    steps: int
    episodes: int
    wall_s: float
    cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    rapl_energy_j: float | None = None
    steps_per_s: float = 0.0
    target_return: float | None = None
    last_eval_return: float | None = None
    target_check: TargetCheck | None = None
    extra: dict[str, Any] | None = None  # the trainer's own figures (pets: planner returns)
    evals: tuple[tuple[int, float], ...] = ()  # (step, mean return) of each screen: the curve

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainSummary:
        """:raises TypeError: a missing or unknown key (a summary of another version)."""
        check = data.get("target_check")
        evals = tuple((int(s), float(r)) for s, r in data.get("evals", ()))
        return cls(**{**data, "target_check": None if check is None else TargetCheck(**check),
                      "evals": evals})  # fmt: skip


def read_summary(run_dir: str | os.PathLike[str]) -> TrainSummary | None:
    """``RUN_DIR/summary.json`` (None when there is none).

    :raises RlbudgetError: a summary.json this version cannot read.
    """
    path = Path(run_dir) / SUMMARY
    if not path.is_file():
        return None
    try:
        return TrainSummary.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, AttributeError) as exc:
        raise RlbudgetError(f"{path}: not a training summary this version of rlbudget wrote "
                            f"({exc}); train again into a new folder") from None  # fmt: skip


def write_summary(summary: TrainSummary, run_dir: Path) -> None:
    atomic_write_text(run_dir / SUMMARY, json.dumps(summary.to_dict(), indent=2) + "\n")


def write_config(settings: RunSettings, run_dir: Path) -> None:
    """config.yaml: every resolved setting, and the versions of what trains."""
    config = {**asdict(settings), "versions": _versions(settings.library)}
    atomic_write_text(run_dir / "config.yaml", _yaml(config))


def start_step(run_dir: str | os.PathLike[str]) -> int:
    """The step a resumed run starts at: its checkpoint's (0 without one)."""
    path = Path(run_dir) / "checkpoint" / "state.json"
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _versions(library: str = "builtin") -> dict[str, str]:
    from importlib import metadata

    import gymnasium
    import numpy

    versions = {
        "rlbudget": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "gymnasium": gymnasium.__version__,
    }
    if library == "sb3":
        for dist in ("torch", "stable-baselines3", "sb3-contrib"):
            with contextlib.suppress(metadata.PackageNotFoundError):  # sb3-contrib: optional
                versions[dist] = metadata.version(dist)
    return versions


ABANDONED = {"config.yaml", "metrics.csv", LOCK}


def abandoned(path: Path) -> bool:
    """A run folder killed before its first checkpoint: config.yaml (and the metrics.csv
    it began) but no checkpoint, policy or summary."""
    names = {child.name for child in path.iterdir()}
    return "config.yaml" in names and names <= ABANDONED


def prepare_run_dir(
    run_dir: str | os.PathLike[str], say: Callable[[str], None] | None = None
) -> Path:
    """Create RUN_DIR (and its parents); refuse one that already holds files, unless it
    holds only what a run killed before its first checkpoint leaves (config.yaml): that
    one is an empty run, cleared and started over (``say`` is told).

    :raises RlbudgetError: RUN_DIR holds other files, or another job holds its lock.
    """
    path = Path(run_dir)
    check_unlocked(path)
    if path.is_dir() and abandoned(path):
        for name in ABANDONED - {LOCK}:
            (path / name).unlink(missing_ok=True)
        if say is not None:
            say(f"{path}: holds only the config.yaml of a run killed before its first "
                "checkpoint; starting it over")  # fmt: skip
    if path.exists() and not is_empty_dir(path):
        raise RlbudgetError(
            f"{path}: exists and is not an empty folder; choose a new -o RUN_DIR "
            "(nothing was overwritten)"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RlbudgetError(f"{path}: cannot create the run folder ({exc.strerror})") from None
    return path


METRICS_HEADER = ("step", "episode", "return", "length", "wall_s", "exploration")


def _metrics_row(e: Episode) -> list[Any]:
    return [e.step, e.episode, f"{e.ret:.6g}", e.length, f"{e.wall_s:.4f}", f"{e.epsilon:.4g}"]


class MetricsLog:
    """``metrics.csv`` as training goes: one row per finished episode, flushed, so that
    ``tail -f`` and a kill see every finished episode (the end of a run rewrites it
    atomically from the episodes kept)."""

    def __init__(self, path: Path, episodes: tuple[Episode, ...] = ()) -> None:
        atomic_write_text(path, metrics_csv(episodes))  # a resume: the checkpoint's rows
        self.file = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self.writer = csv.writer(self.file, lineterminator="\n")

    def add(self, ep: Episode) -> None:
        self.writer.writerow(_metrics_row(ep))
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def read_metrics(path: Path) -> tuple[Episode, ...]:
    """The episodes of a ``metrics.csv`` (as :func:`metrics_csv` writes it), rounded as
    written."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    return tuple(Episode(int(r[0]), int(r[1]), float(r[2]), int(r[3]), float(r[4]), float(r[5]))
                 for r in rows)  # fmt: skip


def metrics_csv(episodes: tuple[Episode, ...]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(METRICS_HEADER)
    for e in episodes:
        w.writerow(_metrics_row(e))
    return buf.getvalue()


def write_curve(
    episodes: tuple[Episode, ...],
    evals: list[tuple[int, float]],
    s: RunSettings,
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if episodes:
        steps = np.array([e.step for e in episodes])
        rets = np.array([e.ret for e in episodes])
        window = max(1, len(rets) // 50)
        smooth = np.convolve(rets, np.ones(window) / window, mode="valid")
        ax.plot(steps, rets, ".", alpha=0.2, markersize=2, label="training episode return")
        ax.plot(steps[window - 1 :], smooth, label=f"training, mean of {window} (with exploration)")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", color="tab:green",
                label=f"greedy policy, {s.eval_episodes} evaluation episodes")  # fmt: skip
    if s.target_return is not None:
        ax.axhline(s.target_return, color="tab:red", linestyle="--", label="target")
    ax.set_xlabel("env steps")
    ax.set_ylabel("return")
    ax.set_title(f"{s.algorithm} on {s.env_id} (seed {s.seed})")
    if ax.get_legend_handles_labels()[0]:  # an empty run has nothing to label
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def _yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def locate_run(target: Path) -> tuple[Path, Path | None]:
    """The policy folder ``target`` names, and the training run folder that holds it: a
    policy folder gives itself and None; a run folder (``rlbudget train -o RUN``, or any
    folder with ``summary.json`` or ``policy/`` and no ``policy.json``) gives RUN/policy
    and RUN.

    :raises RlbudgetError: a run folder that lacks summary.json or policy/.
    """
    run = not (target / "policy.json").exists() and (
        (target / "summary.json").exists() or (target / "policy").is_dir()
    )
    if not run:
        return target, None
    for needed in ("summary.json", "policy"):
        if not (target / needed).exists():
            raise RlbudgetError(f"{target}: a run folder needs {needed} (rlbudget train -o "
                                "writes both); give the policy folder itself to profile "
                                "the policy alone")  # fmt: skip
    return target / "policy", target
