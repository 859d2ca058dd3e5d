"""Memory of a deployed policy on its target: flash (weights + code/runtime) and RAM.

:func:`footprint` answers for one deployed format:

- ``c`` (microcontrollers): the export's ``const`` arrays and static buffers are exact
  (:func:`~rlbudget.export.c.export_c` counts them). Code: with ``arm-none-eabi-gcc``
  installed, **measured** (for a Cortex-M0+ or M4F device; for another core the same
  build is a labelled *estimate*, a proxy) by linking the policy into a minimal firmware
  (:func:`~rlbudget.export.arm.firmware_cost`: flash = linked ``.text + .data``, RAM =
  ``.data + .bss`` including the caller's observation/action buffers) plus the stack from
  ``gcc -fstack-usage``; without it, **estimated** from per-body constants measured the
  same way at ``-Os`` (``rlbudget/data/c_code_sizes.yaml``). The Cortex-M target follows
  the device: M4F for a core with an FPU, M0+ without. An AVR device (the Arduino Uno) is
  linked with ``avr-gcc -Os -mmcu=atmega328p`` instead (:mod:`rlbudget.emulate.avr`, the
  tables in flash); without avr-gcc, its estimate uses the ATmega328P's own code constants.
- The Cortex-M build is ``optimize`` (:data:`~rlbudget.export.arm.OPTIMIZE`: ``O2``, the
  default, or ``Os``), the same one that ``profile`` emulates: at ``-O2`` an int8 policy on
  a core with the DSP extension also holds ``rlb_x16`` (2 B per input of its widest layer),
  more code and more stack (``dsp_int8.c``); at ``-Os`` it has none of them and takes the
  portable loop. The estimate without the toolchain adds ``rlb_x16`` to its ``-Os`` figures
  for an ``-O2`` M4F build. AVR is built (and emulated) at ``-Os`` whatever ``optimize``.
- ``tflite`` (TFLite Micro): flash = ``policy.tflite`` (exact) + the interpreter core
  (``rlbudget/data/tflite_micro.yaml``, estimated; kernels not counted), RAM = the
  smallest tensor arena TFLite Micro's Python interpreter runs the model in, **measured**
  (on this 64-bit host: its own structures hold 8-byte pointers, so a 32-bit device needs
  somewhat less; stack not counted).
- ``numpy`` / ``onnx`` (Linux-class devices): flash = the policy files on disk plus the
  runtime installed on this host (numpy, or onnxruntime's package), RAM = the resident set
  of a fresh process that loads the policy and takes one decision, **measured on this
  host** (the target runs the same Python stack; its allocator may differ).

Working RAM of the body alone (:attr:`Footprint.buffer_bytes`) is
:attr:`Policy.buffer_bytes <rlbudget.policy.model.Policy.buffer_bytes>`: the largest pair
of live activation buffers, as TFLite Micro's arena is sized.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rlbudget.devices import Device
from rlbudget.errors import PolicyError
from rlbudget.export.arm import DEFAULT_OPTIMIZE, opt_flag
from rlbudget.policy.model import (
    CNN,
    MLP,
    Linear,
    PackedTable,
    Policy,
    QuantizedMLP,
    TileCode,
)
from rlbudget.profile.latency import Actor, deployed_actor

if TYPE_CHECKING:
    from rlbudget.export.c import ExportResult

FORMATS = ("numpy", "c", "onnx", "tflite")


@dataclass(frozen=True)
class Footprint:
    """Bytes of one policy deployed in one format; ``*_source`` says measured or estimated
    and ``*_how`` how."""

    format: str
    target: str  # "cortex-m4f", "cortex-m0plus", "atmega328p" (AVR), or "host"
    weight_bytes_by_dtype: dict[str, int]
    weight_bytes: int  # every array the policy stores
    buffer_bytes: int  # working buffers of the body (activations, input, output)
    code_bytes: int  # code and runtime
    flash_bytes: int
    ram_bytes: int
    flash_source: str
    flash_how: str
    ram_source: str
    ram_how: str
    build: str = ""  # c: the compiler and optimization both figures describe ("gcc -O2")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@functools.cache
def code_sizes() -> dict[str, Any]:
    """``rlbudget/data/c_code_sizes.yaml``."""
    text = (resources.files("rlbudget") / "data" / "c_code_sizes.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def cortex_target(device: Device) -> str:
    """The Cortex-M proxy of ``device``: ``cortex-m4f`` with an FPU, else ``cortex-m0plus``."""
    return "cortex-m4f" if device.fpu else "cortex-m0plus"


def body_variant(policy: Policy) -> str:
    """The key of :func:`code_sizes` ``code`` for this policy's C export."""
    body = policy.body
    if isinstance(body, CNN):  # no sizes of the conv kernels yet: its dense part's (fewer)
        return body_variant(replace(policy, body=body.dense))  # type: ignore[arg-type]
    if isinstance(body, QuantizedMLP):
        from rlbudget.export.c import argmax_on_acc

        last = body.layers[-1]
        if not last.float_output:
            return "mlp_int8-int8-output"
        return "mlp_int8-argmax" if argmax_on_acc(policy, last) else "mlp_int8"
    if isinstance(body, MLP):
        return "mlp-fp16" if body.half else "mlp"
    if isinstance(body, PackedTable):
        return "packed_table" if body.stored is None else "packed_table-sparse"
    if isinstance(body, Linear):
        tiles = any(isinstance(p, TileCode) for p in policy.preprocess)
        return "linear-tiles" if tiles else "linear"
    return "table"


TARGET_CORES = {"cortex-m0plus": "Cortex-M0+", "cortex-m4f": "Cortex-M4F", "atmega328p": "AVR"}


def own_core(device: Device, target: str) -> bool:
    """Whether ``target`` is ``device``'s own core (a named Cortex-M0+ / M4F device), so a
    build for it measures the device; any other core is a proxy."""
    return not device.inline and device.core.split(" ")[0] == TARGET_CORES[target]


def _proxy(device: Device, target: str) -> str:
    """Words saying that a Cortex-M build stands in for another core, or nothing."""
    if own_core(device, target):
        return ""
    return f"; {target} stands in for {device.id}'s {device.core}"


def dsp_scratch_bytes(policy: Policy, target: str, optimize: str) -> int:
    """RAM that the int8 DSP path adds to ``policy``'s static buffers in an ``-{optimize}``
    build for ``target`` (``rlb_x16``, :func:`~rlbudget.export.c_int8.dsp_buffer_bytes`):
    only an int8 body, built for the M4F (a core with the DSP extension) not at ``-Os``."""
    body = policy.body.dense if isinstance(policy.body, CNN) else policy.body  # its dense part
    if not isinstance(body, QuantizedMLP) or target != "cortex-m4f" or optimize == "Os":
        return 0
    from rlbudget.export.c_int8 import dsp_buffer_bytes

    return dsp_buffer_bytes(body.layers)


def _avr_footprint(policy: Policy, device: Device, exported: ExportResult) -> Footprint | None:
    """The ``c`` footprint on an AVR device, linked with avr-gcc (:mod:`rlbudget.emulate.avr`:
    what the policy adds to an image, its tables in flash), or None without the toolchain,
    on another core, or for an array too large for avr-gcc (over 32 KiB, more than the
    chip's flash: the estimate's flash figure fails the check)."""
    from rlbudget.emulate.avr import DoesNotFit, is_avr, mcu, missing_tools, policy_cost

    if not is_avr(device) or missing_tools() is not None:
        return None
    try:
        full, empty, stack = policy_cost(exported.files[0].parent, device)
    except DoesNotFit:  # an array over avr-gcc's 32 KiB: the estimate's flash says how much
        return None
    flash = full.flash_bytes - empty.flash_bytes
    static = full.sram_bytes - empty.sram_bytes
    weights = policy.bytes_by_dtype()
    return Footprint(
        "c", mcu(device), weights, sum(weights.values()), policy.buffer_bytes,
        flash - exported.flash_bytes, flash, static + stack,
        "measured", f"avr-gcc -Os -mmcu={mcu(device)}, linked (.text + .data; the constants "
        "in flash as __flash)",
        "measured", f"linked .data + .bss {static} B (static buffers and the caller's "
        f"input/output) + stack {stack} B (avr-gcc -fstack-usage)", "avr-gcc -Os",
    )  # fmt: skip


def _c_footprint(policy: Policy, device: Device, exported: ExportResult,
                 optimize: str = DEFAULT_OPTIMIZE) -> Footprint:  # fmt: skip
    """The ``c`` footprint of ``policy``, whose C export is ``exported`` (on disk), built
    with ``-{optimize}`` (an AVR device: ``-Os``)."""
    from rlbudget.emulate.avr import is_avr, mcu
    from rlbudget.export.arm import firmware_cost, stack_usage

    flag = opt_flag(optimize)
    target = cortex_target(device)
    weights = policy.bytes_by_dtype()
    io = 4 * (policy.observation_space.dim + max(policy.action_space.dim, 1))
    avr = _avr_footprint(policy, device, exported)
    if avr is not None:
        return avr
    compiler = "arm-none-eabi-gcc"
    if is_avr(device):  # no avr-gcc here: AVR's own code constants, not a Cortex-M build
        target, compiler, flag = mcu(device), "avr-gcc", "-Os"
    measured = (None if compiler == "avr-gcc"
                else firmware_cost(exported.files[0].parent, target, optimize))  # fmt: skip
    stack = stack_usage(exported.files[0].parent, target, optimize) if measured else None
    sizes = code_sizes()
    if measured is not None and stack is not None:
        flash = measured.text + measured.data
        ram = measured.data + measured.bss + stack
        # a build for the device's own core is a measurement; for another core, a proxy
        source = "measured" if own_core(device, target) else "estimated"
        return Footprint(
            "c", target, weights, sum(weights.values()), policy.buffer_bytes,
            flash - exported.flash_bytes, flash, ram,
            source, f"arm-none-eabi-gcc {flag}, linked for {target} (.text + .data)"
            + _proxy(device, target),
            source, f"linked .data + .bss {measured.data + measured.bss} B (static "
            f"buffers and the caller's input/output) + stack {stack} B (gcc -fstack-usage "
            f"{flag})" + _proxy(device, target),
            f"arm-none-eabi-gcc {flag}",
        )  # fmt: skip
    variant = body_variant(policy)
    code = int(sizes["code"][variant][target])
    libm = int(sizes["libm"][target]) if exported.needs_libm else 0
    stack = int(sizes["stack"][variant][target])
    scratch = dsp_scratch_bytes(policy, target, optimize)
    dsp = f" + DSP input buffer {scratch} B (exact, {flag})" if scratch else ""
    return Footprint(
        "c", target, weights, sum(weights.values()), policy.buffer_bytes,
        code + libm, exported.flash_bytes + code + libm,
        exported.ram_bytes + scratch + io + stack,
        "estimated", f"const arrays {exported.flash_bytes} B (exact) + code {code} B for "
        f"'{variant}' on {target}" + (f" + libm {libm} B" if libm else "")
        + f" (rlbudget/data/c_code_sizes.yaml, -Os builds; {compiler} not installed)"
        + _proxy(device, target),
        "estimated", f"static buffers {exported.ram_bytes} B (exact){dsp} + input/output "
        f"{io} B + stack ≈{stack} B (gcc -fstack-usage -Os on similar exports)",
        f"{compiler} {flag}",
    )  # fmt: skip


RSS_PROBE = """
import json, sys, psutil
from rlbudget.policy import load_policy
import numpy as np
p = load_policy(sys.argv[1])
obs = np.zeros(p.observation_space.shape or (), dtype=np.float32)
if sys.argv[2] == "onnx":
    from rlbudget.export.onnx import run_onnx
    run_onnx(sys.argv[3], obs[None])
else:
    p.act(obs)
print(json.dumps({"rss": psutil.Process().memory_info().rss}))
"""


def _package_bytes(module: str) -> int:
    """Bytes of an installed package's folder (0 when it is not installed)."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return 0
    root = Path(next(iter(spec.submodule_search_locations)))
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def _process_footprint(policy: Policy, fmt: str) -> Footprint:
    from rlbudget.policy import save_policy

    weights = policy.bytes_by_dtype()
    with tempfile.TemporaryDirectory(prefix="rlbudget-profile-") as tmp:
        folder = save_policy(policy, Path(tmp) / "policy")
        files = [f for f in folder.iterdir() if f.is_file()]
        model = ""
        if fmt == "onnx":
            from rlbudget.export.onnx import export_onnx

            model = str(export_onnx(policy, Path(tmp) / "onnx").files[0])
            files = [Path(model)]
        stored = sum(f.stat().st_size for f in files)
        run = subprocess.run([sys.executable, "-c", RSS_PROBE, str(folder), fmt, model],
                             capture_output=True, text=True, check=False)  # fmt: skip
    if run.returncode != 0:
        raise PolicyError(f"measuring the {fmt} runtime's memory failed: "
                          f"{run.stderr.strip().splitlines()[-1:]}")  # fmt: skip
    rss = int(json.loads(run.stdout)["rss"])
    runtime_pkg = "onnxruntime" if fmt == "onnx" else "numpy"
    runtime = _package_bytes(runtime_pkg)
    what = "policy.onnx" if fmt == "onnx" else "policy.json + policy.safetensors"
    return Footprint(
        fmt, "host", weights, sum(weights.values()), policy.buffer_bytes, runtime,
        stored + runtime, rss,
        "estimated", f"{what} {stored} B (on disk) + the {runtime_pkg} package installed here "
        f"{runtime} B (Python itself not counted)",
        "measured", "resident set of a fresh Python process that loaded the policy and took "
        "one decision, on this host",
    )  # fmt: skip


def _tflite_footprint(policy: Policy) -> Footprint:
    from rlbudget.export.tflite import arena_bytes, build_model

    data = build_model(policy)
    arena = arena_bytes(data)
    table = yaml.safe_load(resources.files("rlbudget.data").joinpath("tflite_micro.yaml")
                           .read_text(encoding="utf-8"))  # fmt: skip
    core = int(table["interpreter_flash_bytes"])
    weights = policy.bytes_by_dtype()
    return Footprint(
        "tflite", "tflite-micro", weights, sum(weights.values()), policy.buffer_bytes, core,
        len(data) + core, arena,
        "estimated", f"policy.tflite {len(data)} B (exact) + TFLite Micro's interpreter core "
        f"≈{core} B ({table['source']})",
        "measured", f"smallest tensor arena TFLite Micro runs policy.tflite in: {arena} B "
        "(its Python interpreter on this 64-bit host; stack not counted)",
    )  # fmt: skip


def footprint(policy: Policy, fmt: str, device: Device, optimize: str = DEFAULT_OPTIMIZE
              ) -> Footprint:  # fmt: skip
    """Flash and RAM of ``policy`` deployed as ``fmt`` on ``device`` (module docstring);
    ``optimize``: the C build (``O2``, ``Os``).

    :raises PolicyError: an unknown format, or a policy the format cannot express.
    :raises RlbudgetError: an unknown ``optimize``.
    """
    if fmt not in FORMATS:
        raise PolicyError(f"unknown format '{fmt}'; use one of {', '.join(FORMATS)}")
    if fmt == "tflite":
        return _tflite_footprint(policy)
    if fmt == "c":
        from rlbudget.export.c import export_c

        with tempfile.TemporaryDirectory(prefix="rlbudget-profile-") as tmp:
            return _c_footprint(policy, device, export_c(policy, Path(tmp) / "c"), optimize)
    return _process_footprint(policy, fmt)


@contextmanager
def deployed(policy: Policy, fmt: str, device: Device, optimize: str = DEFAULT_OPTIMIZE
             ) -> Iterator[tuple[Footprint, Actor, Path | None]]:  # fmt: skip
    """``policy`` deployed as ``fmt`` on ``device``: its :func:`footprint`, an actor that
    runs it as deployed (:func:`~rlbudget.profile.latency.deployed_actor`), and for ``c``
    the folder of the export (None otherwise). For ``c`` all three come from one export:
    the C is generated once, measured (built with ``-{optimize}``), compiled for this host
    (and emulated, by the caller, at the same ``optimize``).

    :raises PolicyError: as :func:`footprint` and :func:`~rlbudget.profile.latency.
        deployed_actor` (no C compiler for ``c``, the onnx extra missing for ``onnx``).
    """
    if fmt != "c":
        memory = footprint(policy, fmt, device)
        with deployed_actor(policy, fmt) as actor:
            yield memory, actor, None
        return
    from rlbudget.export.host import HostPolicy

    with tempfile.TemporaryDirectory(prefix="rlbudget-profile-") as tmp:
        host = HostPolicy(policy, Path(tmp) / "c")
        yield _c_footprint(policy, device, host.export, optimize), host.act, Path(tmp) / "c"
