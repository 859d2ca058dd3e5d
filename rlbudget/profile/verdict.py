"""A deployable policy (or a training run) against its budget, with the safety margin.

:func:`profile` gathers every figure the budget limits and checks each one:

====================  ===========================================================  =========
limit                 figure                                                        source
====================  ===========================================================  =========
``inference.flash``   flash of the deployed format (:mod:`~rlbudget.profile.       measured
                      footprint`: linked size, or const arrays + code model)        /estimated
``inference.ram``     RAM of the deployed format (static buffers, I/O, stack; or   measured
                      a process's resident set for numpy/onnx)                      /estimated
``inference.latency`` target device: the device model's typical value; a          estimated
                      ``host``-class budget: p99 measured here                      /measured
``inference.energy``  device active power × that latency                           estimated
``device.flash``      the same flash figure against the device's own flash         as above
``device.ram``        the same RAM figure against the device's own SRAM            as above
``task.min_return``   mean return over ``episodes`` with the deployed runtime      measured
``training.*``        a run folder's records: wall time, env steps, peak RSS       measured
                      (sampled while training), CPU time × the host's power per    /estimated
                      busy core
====================  ===========================================================  =========

Each figure is checked as :mod:`rlbudget.limits` says: a cost passes when ``figure × (1 +
margin) ≤ limit`` (a figure exactly at the limit fails once any margin applies); the
return is a floor, not a cost: it passes when the mean return reaches the target, with no
margin (the spread is shown beside it). A limit the budget leaves out is NOT CHECKED (the
figure is still reported). The verdict is PASS when nothing fails; the *binding* limit is
:func:`rlbudget.limits.binding`'s.

When a memory check fails (flash or RAM, the budget's or the device's), the way out is
often another deployed format, not a smaller policy: numpy on a Raspberry Pi counts the
whole Python process (≈ 30 MiB) where the same policy compiled from C takes kilobytes. The
report then also gives the footprint of every *other* format that runs on the device
(:func:`deployable_formats`: C alone on a microcontroller) (:class:`FormatOption`: the
same :func:`~rlbudget.profile.footprint.footprint` figures, held to the same memory limits
with the margin) and whether it would fit; the verdict itself stays the profiled format's.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rlbudget.budget import Budget
from rlbudget.costs import estimate_energy, host_energy_j
from rlbudget.devices import Device, Range, get_device
from rlbudget.errors import PolicyError
from rlbudget.export.arm import DEFAULT_OPTIMIZE, opt_flag
from rlbudget.limits import FAIL, MEMORY_LIMITS, PASS, Check, binding, check, check_budget
from rlbudget.limits import target_return as target_rule
from rlbudget.policy.cascade import Cascade
from rlbudget.policy.model import Policy
from rlbudget.profile.footprint import FORMATS, Footprint, deployed, footprint
from rlbudget.profile.latency import HostLatency, estimate_target, measure_host

SCHEMA = "rlbudget.profile/1"
FORMAT_NAMES = {"numpy": "numpy", "c": "C", "onnx": "ONNX", "tflite": "TFLite Micro"}


@dataclass(frozen=True)
class ReturnFigure:
    """Episode returns with the deployed runtime, beside the target they are checked against."""

    env: str
    episodes: int
    seed: int
    mean: float
    std: float
    target: float | None
    target_from: str
    runtime: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FormatOption:
    """The same policy in another deployed format, against the budget's memory limits:
    its flash and RAM (as :class:`~rlbudget.profile.footprint.Footprint` gives them), the
    memory limits it fails with the margin, or why it could not be built (``error``)."""

    format: str
    flash_bytes: int | None
    ram_bytes: int | None
    flash_source: str | None
    ram_source: str | None
    failing: tuple[str, ...]
    error: str | None = None

    @property
    def fits(self) -> bool:
        """Every memory limit holds with the margin (and the format could be built)."""
        return self.error is None and not self.failing

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "fits": self.fits, "flash_bytes": self.flash_bytes,
                "ram_bytes": self.ram_bytes, "flash_source": self.flash_source,
                "ram_source": self.ram_source, "failing": list(self.failing),
                "error": self.error}  # fmt: skip


def memory_checks(memory: Footprint, budget: Budget) -> list[Check]:
    """Flash and RAM against the budget's inference limits and the device's own memory."""
    device = budget.device
    return [
        check_budget("inference.flash", memory.flash_bytes, budget, source=memory.flash_source,
                     how=memory.flash_how),
        check_budget("inference.ram", memory.ram_bytes, budget, source=memory.ram_source,
                     how=memory.ram_how),
        check_budget("device.flash", memory.flash_bytes, budget, source=memory.flash_source,
                     how=f"the inference.flash figure against {device.id}'s flash"),
        check_budget("device.ram", memory.ram_bytes, budget, source=memory.ram_source,
                     how=f"the inference.ram figure against {device.id}'s SRAM/RAM"),
    ]  # fmt: skip


def format_option(policy: Policy, fmt: str, budget: Budget, optimize: str = DEFAULT_OPTIMIZE
                  ) -> FormatOption:  # fmt: skip
    """``policy`` deployed as ``fmt`` against ``budget``'s memory limits (see the module
    docstring); a format that cannot express the policy, or whose runtime is not
    installed, is an option with its ``error``; C is built with ``-{optimize}``."""
    from rlbudget.errors import RlbudgetError

    try:
        memory = footprint(policy, fmt, budget.device, optimize)
    except RlbudgetError as exc:
        return FormatOption(fmt, None, None, None, None, (), str(exc))
    failing = tuple(c.limit for c in memory_checks(memory, budget) if c.status == FAIL)
    return FormatOption(fmt, memory.flash_bytes, memory.ram_bytes, memory.flash_source,
                        memory.ram_source, failing)  # fmt: skip


@dataclass(frozen=True)
class ProfileReport:
    """Everything :func:`profile` measured and estimated, and the verdict."""

    policy: str
    budget: str
    device: str
    device_class: str
    format: str
    margin: float
    footprint: Footprint
    host_latency: HostLatency | None
    target_latency: Range
    target_latency_how: str
    energy: Range
    energy_how: str
    returns: ReturnFigure | None
    training: dict[str, Any] | None
    checks: tuple[Check, ...]
    notes: tuple[str, ...] = field(default=())
    alternatives: tuple[FormatOption, ...] = field(default=())
    """The other formats, when a memory check fails (see the module docstring)."""
    one_build: bool = False
    """The emulated latency and the memory figures come from one compile."""

    @property
    def verdict(self) -> str:
        return FAIL if any(c.status == FAIL for c in self.checks) else PASS

    @property
    def target_latency_source(self) -> str:
        """``emulated`` when the target latency came from the emulator (its range is the
        min, mean and max over the emulated decisions), else ``estimated`` (the model)."""
        emulated = any(c.limit == "inference.latency" and c.source == "emulated"
                       for c in self.checks)  # fmt: skip
        return "emulated" if emulated else "estimated"

    @property
    def binding(self) -> Check | None:
        """The failing cost check furthest over its limit (the lowest headroom, a ratio);
        the return when it is the only failing check; None when everything passes."""
        return binding(self.checks)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (schema ``rlbudget.profile/1``, documented in the README)."""
        binding = self.binding
        return {
            "schema": SCHEMA, "verdict": self.verdict,
            "binding": None if binding is None else binding.limit,
            "policy": self.policy, "budget": self.budget, "device": self.device,
            "device_class": self.device_class, "format": self.format, "margin": self.margin,
            "checks": [c.to_dict() for c in self.checks],
            "return": None if self.returns is None else self.returns.to_dict(),
            "memory": self.footprint.to_dict(),
            "latency": {
                "target": {**self.target_latency.to_dict(), "how": self.target_latency_how},
                "host": None if self.host_latency is None else self.host_latency.to_dict(),
            },
            "energy": {**self.energy.to_dict(), "how": self.energy_how},
            "training": self.training,
            "notes": list(self.notes),
            "alternatives": [a.to_dict() for a in self.alternatives],
        }  # fmt: skip


def default_format(budget: Budget) -> str:
    """``c`` for microcontrollers (``mcu``, ``mcu-accel``), ``numpy`` otherwise."""
    return "c" if budget.device.device_class in ("mcu", "mcu-accel") else "numpy"


def deployable_formats(budget: Budget) -> tuple[str, ...]:
    """The formats that run on the budget's device: C alone on a microcontroller (no
    Python, no onnxruntime there), every format on a Linux-class device or the host."""
    # tflite (an opt-in format, with its own extra) is profiled when asked, not offered here
    if budget.device.device_class in ("mcu", "mcu-accel"):
        return ("c",)
    return tuple(f for f in FORMATS if f != "tflite")


def read_run(run_dir: Path) -> dict[str, Any]:
    """A training run's records (``summary.json``), checked for the fields profile reads."""
    path = run_dir / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PolicyError(f"{path}: not a readable run summary ({exc}); is {run_dir} a run "
                          "folder written by rlbudget train?") from None  # fmt: skip
    if not isinstance(summary, dict):
        raise PolicyError(f"{path}: expected a JSON object; the file is corrupt")
    for key in ("wall_s", "steps", "cpu_s", "peak_rss_bytes", "rapl_energy_j"):
        value = summary.get(key)
        if value is None and key not in ("wall_s", "steps"):
            continue  # optional: older runs, or no RAPL counter
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or value < 0):  # fmt: skip
            raise PolicyError(f"{path}: '{key}' must be a finite number ≥ 0, not "
                              f"{json.dumps(value)}; the file is corrupt")  # fmt: skip
    return summary


def _training_checks(summary: dict[str, Any], budget: Budget) -> list[Check]:
    checks = [
        check_budget("training.time", float(summary["wall_s"]), budget, source="measured",
                     how="wall time of the run (summary.json wall_s)"),
        check_budget("training.env_steps", float(summary["steps"]), budget, source="measured",
                     how="env steps taken (summary.json steps)"),
    ]  # fmt: skip
    rss = summary.get("peak_rss_bytes")
    if rss is not None:
        checks.append(check_budget("training.ram", float(rss), budget, source="measured",
                                   how="peak resident set, sampled while training"))  # fmt: skip
    cpu, rapl = summary.get("cpu_s"), summary.get("rapl_energy_j")
    if rapl is not None:
        checks.append(check_budget(
            "training.energy", float(rapl), budget, source="measured",
            how="RAPL counter of CPU package 0 over the run (the whole package: an upper "
            "bound)"))  # fmt: skip
    elif cpu is not None:
        power = get_device("host").active_power_w
        checks.append(check_budget(
            "training.energy", host_energy_j(float(cpu)), budget, source="estimated",
            how=f"CPU time {cpu:.1f} s × {power:g} W per busy core (the host device's active "
            "power); no RAPL counters were recorded"))  # fmt: skip
    return checks


def profile(
    policy: Policy,
    budget: Budget,
    *,
    fmt: str | None = None,
    env_id: str | None = None,
    episodes: int = 10,
    seed: int = 0,
    calls: int = 2000,
    run_summary: dict[str, Any] | None = None,
    policy_name: str = "policy",
    gym_packages: tuple[str, ...] = (),
    optimize: str = DEFAULT_OPTIMIZE,
) -> ProfileReport:
    """Measure and estimate ``policy`` deployed as ``fmt`` against ``budget``.

    :param fmt: ``numpy``, ``c``, ``onnx`` or ``tflite``; default :func:`default_format`.
    :param env_id: the env for returns and visited states; default the policy's provenance,
        then the budget's task (whose ``min_return`` applies only to its own env). Without
        one, the return is NOT CHECKED and host latency uses observations drawn from the
        observation space.
    :param episodes: return episodes (seeded with ``seed``, as ``evaluate``).
    :param calls: timed host decisions (≥ 1000).
    :param run_summary: a training run's ``summary.json``: adds the training checks.
    :param optimize: the C build the user ships, ``O2`` or ``Os``
        (:data:`~rlbudget.export.arm.OPTIMIZE`): flash and RAM are that build's, and so is
        the emulated latency (the int8 DSP path exists at ``-O2`` alone).
    :raises PolicyError: an unknown format, or a format that cannot express the policy.
    :raises EnvError: the env does not match the policy.
    :raises RlbudgetError: an unknown ``optimize``.
    """
    from rlbudget.envs import env_spec
    from rlbudget.profile.evaluate import evaluate, visited_observations

    fmt = fmt or default_format(budget)  # an unknown one is refused by footprint()
    if episodes < 1:
        raise PolicyError(f"profile: episodes must be ≥ 1, not {episodes}")
    opt_flag(optimize)  # an unknown build is refused before anything is built
    if fmt == "tflite":  # TFLite Micro would not be running this policy
        from rlbudget.export.tflite import rounding_mismatch

        mismatch = rounding_mismatch(policy, policy_name)
        if mismatch is not None:
            raise PolicyError(f"profile --format tflite: {mismatch}; nothing measured")
    device, m = budget.device, budget.margin
    env = env_id or policy.provenance.get("env") or budget.task.env_id
    notes: list[str] = []
    returns: ReturnFigure | None = None
    emulated: Range | None = None
    why = ""
    # C: one export for all, built with -{optimize} for its footprint and its emulation
    with deployed(policy, fmt, device, optimize) as (memory, actor, folder):
        if env:
            obs = visited_observations(policy, str(env), states=500, seed=seed,
                                       gym_packages=gym_packages)  # fmt: skip
            r = evaluate(policy, str(env), episodes=episodes, seed=seed,
                         gym_packages=gym_packages, act=actor)  # fmt: skip
            target = target_rule(budget.task, str(env), None)
            if target.value is None:  # the env's own threshold, read only when needed
                spec = env_spec(str(env), gym_packages=gym_packages, measure_steps=0)
                target = target_rule(budget.task, str(env), spec.reward_threshold)
            if target.note:
                notes.append(target.note)
            returns = ReturnFigure(str(env), episodes, seed, r.return_mean, r.return_std,
                                   target.value, target.source, fmt)  # fmt: skip
        else:
            obs = _space_samples(policy, seed)
            notes.append(
                "no env (budget task.env, --env or the policy's provenance): the "
                "return is not checked; host latency used random observations"
            )
        host = measure_host(actor, obs, fmt, calls=calls)
        cascade = isinstance(policy.body, Cascade)  # two paths: each by the device model
        if fmt == "c" and device.device_class in ("mcu", "mcu-accel") and not cascade:
            from rlbudget.emulate import profile_latency
            from rlbudget.emulate.avr import is_avr, profile_latency_avr

            if is_avr(device):  # avr-gcc -Os, as its footprint
                emulated, why = profile_latency_avr(policy, device, obs, exported=folder)
            else:
                emulated, why = profile_latency(policy, device, obs, exported=folder,
                                                optimize=optimize)  # fmt: skip

    learner = None
    if budget.inference.learn:  # the device learns each step: its state, its update
        if fmt != "c":
            raise PolicyError(f"inference.learn: the on-device learner is exported as C; "
                              f"profile --format c, not {fmt}")  # fmt: skip
        from rlbudget.profile.learn import learner_cost

        learner = learner_cost(policy, device, obs, seed=seed)
        memory = replace(memory, ram_bytes=memory.ram_bytes + learner.size.ram_bytes,
                         ram_how=f"{memory.ram_how}; + {learner.size.ram_bytes:,} B of "
                         f"learner state ({learner.dtype} values and traces, exact)")  # fmt: skip
        notes.append(f"inference.learn: each step is a decision plus an update; the update "
                     f"{learner.how}")  # fmt: skip
    target_latency, how = estimate_target(policy, device)
    latency_source = "estimated"
    unmodelled = None
    mean_latency = None
    if isinstance(policy.body, Cascade):  # worst case for the deadline, mean for energy
        from rlbudget.profile.cascade import cascade_latency

        paths = cascade_latency(policy, device, obs)
        target_latency, mean_latency, how = paths.worst, paths.mean, paths.how
        notes.append(f"{paths.how}: inference.latency is checked at the worst case (small + "
                     f"full, {paths.worst.typical * 1e6:.3g} µs), inference.energy at the mean "
                     f"({paths.mean.typical * 1e6:.3g} µs; small path "
                     f"{paths.small.typical * 1e6:.3g} µs)")  # fmt: skip
    if emulated is not None:
        target_latency, how, latency_source = emulated, why, "emulated"
        if not same_build(device, memory.target):
            notes.append(
                f"flash and RAM are of the {memory.target} build (a stand-in for "
                f"{device.core}); the latency is of the device's own core's build"
            )
    else:
        if why:
            notes.append(why)
        unmodelled = unmodelled_latency(device, fmt, optimize)
    if fmt != "c":
        how += (f"; it models compiled C: the {fmt} runtime's own per-call cost is in the "
                "host measurement")  # fmt: skip
    energy = estimate_energy(device, mean_latency or target_latency)
    if learner is not None:  # decision + update, each step
        if learner.update_s is None:
            unmodelled = unmodelled or learner.how
        else:
            u = learner.update_s
            target_latency = Range(target_latency.low + u, target_latency.typical + u,
                                   target_latency.high + u)  # fmt: skip
            energy = estimate_energy(device, target_latency)
            how += f"; + the update: {learner.how}"
            if learner.source == "estimated":
                latency_source = "estimated"
    if device.device_class == "host":
        latency_check = check_budget(
            "inference.latency",
            host.p99_s,
            budget,
            source="measured",
            how=f"p99 of {calls} single decisions on this host ({fmt})",
        )
        energy_figure: float | None = host.p99_s * device.active_power_w
        energy_how = f"host p99 × {device.active_power_w:g} W"
        # the energy block follows the latency that was checked: p50 .. p99 on this host
        energy = Range(host.p50_s, host.p99_s, host.p99_s) * device.active_power_w
    else:
        latency_check = check_budget(
            "inference.latency", None if unmodelled else target_latency.typical, budget,
            source=latency_source, how=unmodelled or how)  # fmt: skip
        energy_figure = None if unmodelled else energy.typical
        energy_how = (f"{device.active_power_w * 1e3:g} mW active power × the typical target "
                      "latency")  # fmt: skip
        if mean_latency is not None:
            energy_how += " (the cascade's mean over the visited states)"
        if latency_source == "emulated":
            energy_how = (f"{device.active_power_w * 1e3:g} mW active power × the emulated "
                          "mean latency")  # fmt: skip
    inference_flash, inference_ram, device_flash, device_ram = memory_checks(memory, budget)
    checks = [
        inference_flash,
        inference_ram,
        latency_check,
        check_budget("inference.energy", energy_figure, budget, source=latency_source,
                     how=unmodelled or energy_how),
        device_flash,
        device_ram,
        check("task.min_return", None if returns is None else returns.mean,
              None if returns is None else returns.target, m, source="measured",
              how="no env" if returns is None else
              f"mean of {episodes} episodes, deployed {fmt} runtime, seed {seed} "
              f"(target: {returns.target_from})"),
    ]  # fmt: skip
    if run_summary is not None:
        checks += _training_checks(run_summary, budget)
    alternatives: tuple[FormatOption, ...] = ()
    if any(c.status == FAIL and c.limit in MEMORY_LIMITS for c in checks):
        alternatives = tuple(format_option(policy, f, budget, optimize)
                             for f in deployable_formats(budget) if f != fmt)  # fmt: skip
    return ProfileReport(
        policy_name, budget.name, device.id, device.device_class, fmt, m, memory, host,
        target_latency, unmodelled or how, energy, energy_how, returns, run_summary,
        tuple(checks), tuple(notes), alternatives,
        one_build=emulated is not None and same_build(device, memory.target),
    )  # fmt: skip


STAND_IN_BUILDS = {"cortex-m0plus": "cortex-m0plus", "cortex-m4": "cortex-m4f"}
"""Emulated build → the footprint's build that is the same compile (the M7 runs the M4F
build: same object, its cycles scaled)."""


def same_build(device: Device, target: str) -> bool:
    """Whether ``device``'s emulated latency and a footprint built for ``target`` (its
    ``Footprint.target``) come from one compile."""
    from rlbudget.emulate.avr import is_avr
    from rlbudget.emulate.latency import emulated_core

    if is_avr(device):
        return True
    core = emulated_core(device)
    return core is not None and STAND_IN_BUILDS.get(core[0]) == target


def unmodelled_latency(device: Device, fmt: str, optimize: str) -> str | None:
    """Why a target latency on ``device`` cannot be estimated for this deployment (one line,
    the latency and energy are then NOT CHECKED), or None when the model applies. Asked only
    when the latency was not emulated."""
    from rlbudget.emulate.avr import is_avr
    from rlbudget.fitted import core_key

    if device.device_class not in ("mcu", "mcu-accel"):
        return None
    if fmt == "tflite":
        return ("not checked: TFLite Micro's interpreter and kernels on the target are not "
                "modelled (the cost model is of the C export, a lower bound); "
                "profile --format c checks the C export")  # fmt: skip
    if fmt == "c" and optimize != DEFAULT_OPTIMIZE and core_key(device) and not is_avr(device):
        return (f"not checked: plan's model is fitted to {opt_flag(DEFAULT_OPTIMIZE)} "
                f"emulation and a {opt_flag(optimize)} build is slower (an int8 MLP loses the "
                "DSP path: 2.3-3.3x on the M4F); install the emulator (arm-none-eabi-gcc and "
                'pip install "rlbudget[emulate]") to emulate this build, or profile '
                f"--optimize {DEFAULT_OPTIMIZE}")  # fmt: skip
    return None


def _space_samples(policy: Policy, seed: int, n: int = 500) -> Any:
    """Observations drawn uniformly from the observation space (bounds clipped to ±5)."""
    rng = np.random.default_rng(seed)
    space = policy.observation_space
    if space.kind == "discrete":
        return rng.integers(0, space.n or 1, size=n)
    low = np.maximum(np.asarray(space.low, np.float64), -5.0)
    high = np.minimum(np.asarray(space.high, np.float64), 5.0)
    return rng.uniform(low, high, size=(n, *space.shape)).astype(np.float32)
