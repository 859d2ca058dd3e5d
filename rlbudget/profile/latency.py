"""Decision latency: measured on this host in the deployed format, estimated on the target.

- :func:`deployed_actor`: the policy as the device runs it: ``numpy``
  (:meth:`Policy.act`), ``c`` (the C export compiled for this host with ``-O3`` and called
  through ctypes, :class:`~rlbudget.export.host.HostPolicy`), ``onnx`` (onnxruntime, CPU,
  one thread) or ``tflite`` (TFLite Micro's Python interpreter, its reference kernels).
  Each takes one observation and returns one action.
- :func:`measure_host` times one decision at a time after a warm-up, on observations
  the policy itself visits, on one thread (numpy's BLAS pool held to one thread with
  threadpoolctl; onnxruntime's session is built with one thread). Reports p50/p90/p99
  and the mean.
  ctypes' own call overhead (≈ 0.5–1 µs here) is included in the C figure.
- :func:`estimate_target` prices the policy with plan's model: on the cores fitted to
  emulation (:mod:`rlbudget.fitted`) from :func:`policy_shape`'s counts, elsewhere with
  the per-MAC model of :mod:`rlbudget.costs` on its MACs, layers, arithmetic and
  nonlinearities: a low/typical/high range.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlbudget.costs import estimate_latency, extra_cycles
from rlbudget.devices import Device, Range
from rlbudget.errors import PolicyError
from rlbudget.fitted import (
    Shape,
    fitted_latency,
    linear_shape,
    mlp_shape,
    table_shape,
    tile_shape,
)
from rlbudget.policy.model import (
    CNN,
    MLP,
    Array,
    Discretize,
    Linear,
    PackedTable,
    Policy,
    QuantizedMLP,
    Table,
    TileCode,
)

Actor = Callable[[Any], Any]


@contextmanager
def deployed_actor(policy: Policy, fmt: str) -> Iterator[Actor]:
    """``act(obs) -> action`` running ``policy`` as deployed in ``fmt`` (module docstring).

    :raises PolicyError: an unknown format, no C compiler (``c``), or the onnx extra
        missing (``onnx``).
    """
    if fmt == "numpy":
        yield policy.act
        return
    with tempfile.TemporaryDirectory(prefix="rlbudget-actor-") as tmp:
        if fmt == "c":
            from rlbudget.export.host import HostPolicy

            yield HostPolicy(policy, Path(tmp) / "c").act
        elif fmt == "onnx":
            yield _onnx_actor(policy, Path(tmp))
        elif fmt == "tflite":
            yield _tflite_actor(policy, Path(tmp))
        else:
            raise PolicyError(f"unknown format '{fmt}'; use numpy, c, onnx or tflite")


def _onnx_actor(policy: Policy, folder: Path) -> Actor:
    from rlbudget.export.onnx import export_onnx, onnx_runner

    run = onnx_runner(export_onnx(policy, folder / "onnx").files[0])
    discrete = policy.action_space.kind == "discrete"

    def act(obs: Any) -> Any:
        out = run(np.asarray(obs)[None])[0]
        return int(out) if discrete else out

    return act


def _tflite_actor(policy: Policy, folder: Path) -> Actor:
    from rlbudget.export.tflite import export_tflite, tflm_runner

    run = tflm_runner(export_tflite(policy, folder / "tflite").files[0])
    discrete = policy.action_space.kind == "discrete"

    def act(obs: Any) -> Any:
        out = run(obs)[0].reshape(-1)
        return int(out[0]) if discrete else out.astype(np.float32, copy=False)

    return act


@dataclass(frozen=True)
class HostLatency:
    """Seconds per decision on this host, one decision at a time."""

    format: str
    calls: int
    warmup: int
    p50_s: float
    p90_s: float
    p99_s: float
    mean_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_host(actor: Actor, observations: Array, fmt: str, *, calls: int = 2000,
                 warmup: int = 200) -> HostLatency:  # fmt: skip
    """Time ``calls`` single decisions (after ``warmup`` untimed ones), cycling through
    ``observations``; each call is timed on its own with ``perf_counter_ns``."""
    from threadpoolctl import threadpool_limits

    if calls < 1000:
        raise PolicyError(f"host latency needs at least 1000 timed calls, not {calls}")
    n = len(observations)
    times = np.empty(calls, dtype=np.float64)
    clock = time.perf_counter_ns
    with threadpool_limits(limits=1):  # one thread, as on a device (BLAS, OpenMP pools)
        for i in range(warmup):
            actor(observations[i % n])
        for i in range(calls):
            obs = observations[i % n]
            start = clock()
            actor(obs)
            times[i] = clock() - start
    p50, p90, p99 = np.percentile(times, [50, 90, 99]) * 1e-9
    return HostLatency(fmt, calls, warmup, float(p50), float(p90), float(p99),
                       float(times.mean() * 1e-9))  # fmt: skip


def arithmetic(policy: Policy) -> str:
    """The dtype the body computes in on the device: int8, int16, fp16 or fp32."""
    body = policy.body
    if isinstance(body, CNN):
        return "int8" if body.int8 else "fp32"
    if isinstance(body, QuantizedMLP):
        return "int8"
    if isinstance(body, MLP):
        return "fp16" if body.half else "fp32"
    if isinstance(body, Linear) and body.scale is not None:
        return "int16" if body.W.dtype == np.int16 else "int8"
    return "fp32"


def policy_shape(policy: Policy) -> Shape | None:
    """What the fitted model (:mod:`rlbudget.fitted`) reads of ``policy``, or None for a
    body it has no model for (float16, a sparse table)."""
    body, pre = policy.body, policy.preprocess
    tanh_head = policy.action_space.dim if policy.head.kind == "tanh_rescale" else 0
    if isinstance(body, MLP | QuantizedMLP):
        if isinstance(body, MLP) and body.half:
            return None
        widths = [int(body.layers[0].W.shape[0]), *(int(la.W.shape[1]) for la in body.layers)]
        tanh = sum(int(la.W.shape[1]) for la in body.layers
                   if la.activation in ("tanh", "sigmoid"))  # fmt: skip
        return mlp_shape(widths, tanh + tanh_head, "int8" if isinstance(body, QuantizedMLP)
                         else "fp32")  # fmt: skip
    box_dims = sum(len(p.bins) for p in pre if isinstance(p, Discretize))
    actions = policy.action_space.n or 1
    if isinstance(body, Table):
        return table_shape(box_dims, actions, packed=False)
    if isinstance(body, PackedTable):
        return table_shape(box_dims, actions, packed=True) if body.stored is None else None
    tiles = [p for p in pre if isinstance(p, TileCode)]
    if isinstance(body, Linear) and tiles:
        tc = tiles[0]
        return tile_shape(tc.tilings, len(tc.low), int(body.W.shape[1]), arithmetic(policy))
    if isinstance(body, Linear) and not any(isinstance(p, Discretize) for p in pre):
        return linear_shape(int(body.W.shape[0]), int(body.W.shape[1]), arithmetic(policy))
    return None


def estimate_target(policy: Policy, device: Device) -> tuple[Range, str]:
    """Latency range of one decision on ``device`` and the assumptions, in words."""
    fitted = fitted_latency(device, policy_shape(policy))
    if fitted is not None:
        return fitted.latency_s, fitted.how
    body = policy.body
    dtype = arithmetic(policy)
    dense = body.dense if isinstance(body, CNN) else body  # a CNN: its convolutions, then this
    layers = len(dense.layers) if isinstance(dense, MLP | QuantizedMLP) else (
        1 if isinstance(dense, Linear) else 0)  # fmt: skip
    layers += len(body.layers) if isinstance(body, CNN) else 0
    nonlinear = 0
    if isinstance(dense, MLP | QuantizedMLP):
        nonlinear = sum(int(la.W.shape[1]) for la in dense.layers
                        if la.activation in ("tanh", "sigmoid"))  # fmt: skip
    if policy.head.kind == "tanh_rescale":
        nonlinear += policy.action_space.dim
    extra = extra_cycles(nonlinear, policy.observation_space.dim, dtype, device.fpu)
    latency = estimate_latency(device, macs=policy.macs, layers=layers, dtype=dtype,
                               extra_cycles=extra)  # fmt: skip
    how = (f"device model: {policy.macs:,} MACs in {dtype} at "
           f"{device.macs_per_second(dtype) / 1e6:,.0f} M MAC/s, {layers} layer(s) × "
           f"{device.layer_overhead_s * 1e6:g} µs, {nonlinear} tanh/sigmoid, invoke "
           f"{device.invoke_overhead_s * 1e6:g} µs; range ±1.75×")  # fmt: skip
    return latency, how
