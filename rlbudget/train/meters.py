"""What watches a training run without steering it: peak memory, CPU package energy,
progress lines for a log file, and TensorBoard scalars for the built-in agents."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rlbudget.agents.common import Episode
from rlbudget.errors import RlbudgetError, TrainingError

RSS_SAMPLE_S = 0.2  # how often the peak-RSS sampler looks


class PeakRSS:
    """The process's peak resident memory, sampled by a daemon thread (psutil): torch
    allocations are invisible to tracemalloc."""

    def __init__(self, every_s: float = RSS_SAMPLE_S) -> None:
        import threading

        import psutil

        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.every_s = every_s
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="rlbudget-rss", daemon=True)

    def _run(self) -> None:
        while not self.done.wait(self.every_s):
            self.sample()

    def sample(self) -> int:
        self.peak = max(self.peak, self.process.memory_info().rss)
        return self.peak

    def __enter__(self) -> PeakRSS:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.sample()


RAPL_PACKAGE = Path("/sys/class/powercap/intel-rapl:0")


class RaplEnergy:
    """Joules of CPU package 0 over a span, from Linux's RAPL counter
    (``/sys/class/powercap/intel-rapl:0/energy_uj``), wrap-around included. The counter
    is the whole package's (every process on it), so it is an upper bound for the run.
    ``joules`` is None where the host has no readable counter (VMs, non-Intel/AMD CPUs,
    no permission)."""

    def __init__(self, root: Path = RAPL_PACKAGE) -> None:
        self.root = root
        self.joules: float | None = None
        self._start: int | None = None

    def _read(self, name: str) -> int | None:
        try:
            return int((self.root / name).read_text().strip())
        except (OSError, ValueError):
            return None

    def __enter__(self) -> RaplEnergy:
        self._start = self._read("energy_uj")
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._read("energy_uj")
        if self._start is None or end is None:
            return
        delta = end - self._start
        if delta < 0:  # the counter wrapped once
            delta += self._read("max_energy_range_uj") or 0
        self.joules = delta / 1e6 if delta >= 0 else None


class ProgressLog:
    """Plain progress lines for a log file (stderr that is not a terminal): steps,
    steps/s, the mean return of the last 20 episodes and the ETA; the first after the first
    episode, then one every ``every_s`` seconds. Rates count this session's steps, so a
    resumed run's ETA is right.

    :param total: the step budget. :param start_step: the step a resumed run starts at.
    """

    def __init__(self, total: int, write: Callable[[str], None], *, every_s: float = 10.0,
                 start_step: int = 0) -> None:  # fmt: skip
        self.total, self.write, self.every_s = total, write, every_s
        self.start_step = start_step
        self.t0 = time.perf_counter()
        self.last: float | None = None
        self.recent: list[float] = []

    def __call__(self, ep: Episode) -> None:
        self.recent.append(ep.ret)
        del self.recent[:-20]
        now = time.perf_counter()
        if self.last is not None and now - self.last < self.every_s:
            return
        self.last = now
        line = self.line(ep.step, now - self.t0)
        self.write(f"{line}, {ep.note}" if ep.note else line)  # model-based: model loss

    def line(self, step: int, elapsed_s: float) -> str:
        """One progress line at ``step``, ``elapsed_s`` seconds into this session.

        >>> log = ProgressLog(1000, print, start_step=200)
        >>> log.recent = [1.0, 2.0]
        >>> log.line(600, 2.0)
        'step 600/1,000 (60%), 200 steps/s, return(2) 1.5, ETA 2 s'
        """
        rate = (step - self.start_step) / elapsed_s if elapsed_s > 0 else 0.0
        ret = sum(self.recent) / len(self.recent) if self.recent else float("nan")
        # the first second is mostly setup: no ETA from it
        eta = f"{(self.total - step) / rate:,.0f} s" if rate > 0 and elapsed_s >= 1 else "?"
        return (f"step {step:,}/{self.total:,} ({step / max(self.total, 1):.0%}), "
                f"{rate:,.0f} steps/s, return({len(self.recent)}) {ret:.4g}, "
                f"ETA {eta}")  # fmt: skip


class TensorBoardLog:
    """The scalars SB3 writes (``rollout/ep_rew_mean``, ``rollout/ep_len_mean`` over the
    last 100 episodes, ``rollout/exploration_rate``, ``time/fps``) and the evaluations
    (``eval/mean_reward``) for a built-in agent, as TensorBoard event files under ``logdir``
    (tensorboard's own writer: ``pip install 'rlbudget[tensorboard]'``), at most every
    ``every`` steps."""

    def __init__(self, logdir: Path, every: int, start_step: int = 0) -> None:
        try:
            from tensorboard.compat.proto.event_pb2 import Event
            from tensorboard.compat.proto.summary_pb2 import Summary
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError:
            raise TrainingError(
                "--tensorboard needs TensorBoard: pip install 'rlbudget[tensorboard]'"
            ) from None
        try:
            logdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RlbudgetError(f"--tensorboard {logdir}: cannot create it ({exc.strerror})"
                                ) from None  # fmt: skip
        self.event, self.summary = Event, Summary
        self.writer = EventFileWriter(str(logdir))
        self.every, self.next = max(1, every), start_step + max(1, every)
        self.t0, self.step0 = time.perf_counter(), start_step
        self.rets: list[float] = []
        self.lens: list[int] = []

    def scalars(self, step: int, values: dict[str, float]) -> None:
        summary = self.summary(value=[self.summary.Value(tag=k, simple_value=float(v))
                                      for k, v in values.items()])  # fmt: skip
        self.writer.add_event(self.event(wall_time=time.time(), step=step, summary=summary))

    def episode(self, ep: Episode) -> None:
        self.rets.append(ep.ret)
        self.lens.append(ep.length)
        del self.rets[:-100], self.lens[:-100]
        if ep.step < self.next:
            return
        self.next = (ep.step // self.every + 1) * self.every
        elapsed = time.perf_counter() - self.t0
        self.scalars(ep.step, {
            "rollout/ep_rew_mean": sum(self.rets) / len(self.rets),
            "rollout/ep_len_mean": sum(self.lens) / len(self.lens),
            "rollout/exploration_rate": ep.epsilon,
            "time/fps": (ep.step - self.step0) / elapsed if elapsed > 0 else 0.0,
        })  # fmt: skip

    def close(self) -> None:
        self.writer.close()
