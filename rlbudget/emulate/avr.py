"""Cycle-accurate latency and the real memory of a policy's C export on AVR (ATmega328P).

:func:`link_avr` builds ``policy.c`` as an Arduino Uno user ships it (``avr-gcc -Os
-mmcu=atmega328p -DF_CPU=16000000``, ``-std=gnu99`` so that the export's ``RLB_CONST``
tables are ``const __flash``, in flash) with a small harness, and reads the image's
``.text``/``.data``/``.bss`` with ``avr-size``. The link lifts the ATmega328P's region
limits, so a policy that does not fit still links and reports how much it needs: the
caller compares with the chip (:func:`memory_problem`; ``profile`` FAILs on the figures).

:func:`emulate_avr` runs that image in simavr, cycle-accurate (each instruction costs what
the AVR instruction set manual says, ``lpm`` 3 cycles, ``call`` 4, taken branches 2), and
checks every action against numpy's :meth:`Policy.act` (a mismatch is an error, not a
figure). Data in and out goes through a runner written here against libsimavr (Debian
``libsimavr-dev``) and compiled with the host's C compiler: the harness writes 1 to the
GPIOR0 register before each decision and 2 after it; on 1 the runner copies the next
observation into the harness's ``rlb_obs`` and notes simavr's cycle counter, on 2 it
prints the cycles between the two writes and the harness's ``rlb_out`` bytes (an int16
result, then the float action: AVR structs have no padding). The count is the function
with its return plus 12 cycles of the harness (four LDI for the arguments, CALL 4, two
STS for the result, per the AVR instruction set manual). Why libsimavr rather than
simavr's command line: its cycle counter is exact, with no timer interrupt perturbing the
count (Timer1 would overflow every 4 ms at 16 MHz), and no UART text to parse.

AVR's ``double`` is 32 bits in avr-gcc 5.4; the export uses none (float32 MLPs, and the
tile coder and discretizer in float32 and integers, as numpy), so nothing changes there.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlbudget.devices import Device, Range
from rlbudget.emulate.image import read_elf
from rlbudget.emulate.latency import (
    AGREEMENT,
    ENV_SWITCH,
    PROFILE_OBSERVATIONS,
    EmulatedLatency,
    same_action,
)
from rlbudget.errors import RlbudgetError
from rlbudget.export.arm import SectionSizes
from rlbudget.fitted import core_key
from rlbudget.policy.model import Policy

MCUS = {"arduino-uno": "atmega328p"}
"""The AVR part of each AVR device in ``devices.yaml``."""
FLASH_BYTES, SRAM_BYTES = 32 * 1024, 2 * 1024
"""The ATmega328P's flash and SRAM (datasheet; the Uno's bootloader takes 0.5 KiB of flash)."""
CFLAGS = ("-std=gnu99", "-Os", "-Wall", "-ffunction-sections", "-fdata-sections",
          "-Wl,--gc-sections", "-Wl,--defsym=__TEXT_REGION_LENGTH__=0x20000",
          "-Wl,--defsym=__DATA_REGION_LENGTH__=0xff00")  # fmt: skip
"""avr-gcc flags besides ``-mmcu`` and ``-DF_CPU``: the Arduino's optimization (``-Os``)
and C dialect (GNU C, where ``__flash`` exists); the two ``--defsym`` lift the part's
flash and SRAM limits so that an image too large still links and says by how much."""
MARKER = 0x3E
"""GPIOR0's data-space address on the ATmega328P (I/O 0x1E): the harness's markers."""
MAX_CYCLES = 50_000_000
"""Cycles one emulated decision may take: ≈ 3 s at 16 MHz, far beyond any budget."""
TIMEOUT_S = 600
TOOL_HINT = "Debian: apt-get install gcc-avr avr-libc libsimavr-dev"

HARNESS = """#include <avr/io.h>
#include <stdint.h>
#include "policy.h"
float rlb_obs[RLB_OBS_DIM];
struct { int16_t result; float action[RLB_ACTION_DIM]; } rlb_out;
int main(void)
{
    for (;;) {
        GPIOR0 = 1; /* the runner writes rlb_obs and starts counting */
        __asm__ __volatile__("" ::: "memory");
        rlb_out.result = (int16_t)rlb_policy_act(rlb_obs, rlb_out.action);
        GPIOR0 = 2; /* the runner stops counting and reads rlb_out */
        __asm__ __volatile__("" ::: "memory");
    }
}
"""
EMPTY = "int main(void) { return 0; }\n"

SIMAVR_INCLUDES = """#include <simavr/sim_avr.h>
#include <simavr/sim_elf.h>
#include <simavr/sim_io.h>
"""
"""libsimavr's headers that :data:`RUNNER` includes (:func:`missing_tools` looks for them)."""
RUNNER = r"""/* rlbudget's simavr runner (rlbudget/emulate/avr.py) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <simavr/sim_avr.h>
#include <simavr/sim_elf.h>
#include <simavr/sim_io.h>

static FILE *obs_file;
static unsigned long obs_addr, obs_bytes, out_addr, out_bytes, left;
static avr_cycle_count_t start;
static unsigned long long steps;
static int timing, finished;
static unsigned char buf[4096];

/* GPIOR0 written: 1 before a decision, 2 after it */
static void marker(avr_t *avr, avr_io_addr_t addr, uint8_t v, void *param)
{
    unsigned long i;
    (void)param;
    avr->data[addr] = v;
    if (v == 1) {
        if (left == 0 || (obs_bytes && fread(buf, 1, obs_bytes, obs_file) != obs_bytes)) {
            finished = 1;
            return;
        }
        --left;
        memcpy(avr->data + obs_addr, buf, obs_bytes);
        timing = 1;
        steps = 0;
        start = avr->cycle;
    } else if (v == 2 && timing) {
        timing = 0; /* both writes are seen at the start of their 1-cycle OUT */
        printf("rlb %llu %llu ", (unsigned long long)(avr->cycle - start - 1), steps - 1);
        for (i = 0; i < out_bytes; ++i) {
            printf("%02x", avr->data[out_addr + i]);
        }
        printf("\n");
    }
}

int main(int argc, char **argv)
{
    elf_firmware_t fw;
    avr_t *avr;
    unsigned long long cap;
    int state;
    if (argc != 10) {
        fprintf(stderr, "usage: runner elf mcu hz marker obs n obs_at:n out_at:n cap\n");
        return 2;
    }
    memset(&fw, 0, sizeof fw);
    if (elf_read_firmware(argv[1], &fw) != 0) {
        fprintf(stderr, "simavr cannot read %s\n", argv[1]);
        return 2;
    }
    avr = avr_make_mcu_by_name(argv[2]);
    if (!avr) {
        fprintf(stderr, "simavr has no core %s\n", argv[2]);
        return 2;
    }
    avr_init(avr);
    avr->log = 0;
    fw.frequency = strtoul(argv[3], NULL, 10);
    avr_load_firmware(avr, &fw);
    obs_file = fopen(argv[5], "rb");
    left = strtoul(argv[6], NULL, 10);
    if (!obs_file || sscanf(argv[7], "%lx:%lu", &obs_addr, &obs_bytes) != 2
        || sscanf(argv[8], "%lx:%lu", &out_addr, &out_bytes) != 2 || obs_bytes > sizeof buf) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    cap = strtoull(argv[9], NULL, 10);
    avr_register_io_write(avr, (avr_io_addr_t)strtoul(argv[4], NULL, 0), marker, NULL);
    for (;;) {
        state = avr_run(avr);
        ++steps;
        if (finished) {
            return 0;
        }
        if (state == cpu_Done || state == cpu_Crashed) {
            fprintf(stderr, "the firmware stopped at pc 0x%x (simavr state %d)\n",
                    avr->pc, state);
            return 4;
        }
        if (timing && avr->cycle - start > cap) {
            return 3;
        }
    }
}
"""


class DoesNotFit(RlbudgetError):
    """The linked image needs more flash or SRAM than the part has."""


class Unavailable(RlbudgetError):
    """The simavr runner does not build here (libsimavr missing or broken)."""


def is_avr(device: Device) -> bool:
    """Whether ``device``'s core is an 8-bit AVR."""
    return core_key(device) == "avr"


def mcu(device: Device) -> str:
    """The AVR part of ``device`` (:data:`MCUS`)."""
    if device.id not in MCUS:
        raise RlbudgetError(f"no AVR part known for {device.id} ({device.core}); known: "
                            f"{', '.join(MCUS)}")  # fmt: skip
    return MCUS[device.id]


@functools.cache
def _simavr_headers() -> bool:
    """libsimavr's headers are where the host compiler looks (any prefix, not only /usr)."""
    try:
        run = subprocess.run(["cc", "-fsyntax-only", "-x", "c", "-"], input=SIMAVR_INCLUDES,
                             capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    return run.returncode == 0


def missing_tools() -> str | None:
    """Why AVR figures cannot be had here (one line), or None: avr-gcc, avr-size, a host C
    compiler and libsimavr's headers are needed."""
    tools = [t for t in ("avr-gcc", "avr-size") if shutil.which(t) is None]
    if shutil.which("cc") is None:
        tools.append("a host C compiler (cc)")
    elif not _simavr_headers():
        tools.append("libsimavr's headers")
    if tools:
        return f"{' and '.join(tools)} not installed ({TOOL_HINT})"
    return None


def _run(cmd: list[str], what: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RlbudgetError(f"{what} took over {timeout:g} s; check the toolchain") from None
    if run.returncode != 0:
        first = next((ln for ln in run.stderr.splitlines() if "rror" in ln), run.stderr)
        raise RlbudgetError(f"{what} failed: {first.strip()}")
    return run


@dataclass(frozen=True)
class AvrImage:
    """A linked AVR image and its sections, as ``avr-size`` reads them (flash = code and
    ``__flash`` constants plus ``.data``'s initial values; static SRAM = ``.data`` + ``.bss``,
    the stack comes on top)."""

    elf: Path
    sizes: SectionSizes

    @property
    def flash_bytes(self) -> int:
        return self.sizes.flash_bytes

    @property
    def sram_bytes(self) -> int:
        return self.sizes.ram_bytes


def link_avr(sources: list[Path], elf: Path, part: str, clock_hz: float,
             include: Path | None = None) -> AvrImage:  # fmt: skip
    """Compile and link ``sources`` for ``part`` (module docstring) and read its sizes.

    :raises DoesNotFit: a constant array over 32,767 B (avr-gcc's limit for one object).
    :raises RlbudgetError: a tool is missing, or the compiler's first error line.
    """
    reason = missing_tools()
    if reason is not None:
        raise RlbudgetError(f"cannot build for AVR: {reason}")
    cmd = ["avr-gcc", f"-mmcu={part}", f"-DF_CPU={int(clock_hz)}UL", *CFLAGS,
           *([f"-I{include}"] if include else []), *map(str, sources), "-lm", "-o",
           str(elf)]  # fmt: skip
    try:
        _run(cmd, f"linking the {part} image")
    except RlbudgetError as exc:
        if "is too large" not in str(exc):
            raise
        raise DoesNotFit(f"cannot build for the {part}: a constant array of policy.c is over "
                         "32,767 B, the most one avr-gcc object may hold (the chip has "
                         f"{FLASH_BYTES // 1024} KiB of flash in all)") from None  # fmt: skip
    fields = _run(["avr-size", str(elf)], "avr-size").stdout.splitlines()[1].split()
    return AvrImage(elf, SectionSizes(int(fields[0]), int(fields[1]), int(fields[2])))


def link_policy(export_dir: Path, out_dir: Path, device: Device) -> AvrImage:
    """The emulation image of the C export in ``export_dir``: ``policy.c`` and the harness."""
    harness = out_dir / "rlb_avr_main.c"
    harness.write_text(HARNESS)
    return link_avr([harness, export_dir / "policy.c"], out_dir / "policy-avr.elf",
                    mcu(device), device.clock_hz, include=export_dir)  # fmt: skip


def policy_cost(export_dir: Path, device: Device) -> tuple[AvrImage, AvrImage, int]:
    """For ``profile``'s footprint: the image of ``policy.c`` called by the harness, the
    image of an empty ``main`` (what the policy adds is the difference), and the stack
    bytes of ``policy.c``'s functions (``-fstack-usage``, summed: no recursion)."""
    with tempfile.TemporaryDirectory(prefix="rlbudget-avr-") as tmp:
        out = Path(tmp)
        full = link_policy(export_dir, out, device)
        (out / "empty.c").write_text(EMPTY)
        empty = link_avr([out / "empty.c"], out / "empty.elf", mcu(device), device.clock_hz)
        obj = out / "policy.o"
        _run(["avr-gcc", f"-mmcu={mcu(device)}", *CFLAGS[:5], "-fstack-usage", "-c",
              str(export_dir / "policy.c"), "-o", str(obj)], "avr-gcc -fstack-usage")  # fmt: skip
        lines = obj.with_suffix(".su").read_text().splitlines()
    stack = sum(int(line.split("\t")[1]) for line in lines if line.count("\t") >= 2)
    return full, empty, stack


def memory_problem(image: AvrImage, part: str = "ATmega328P") -> str | None:
    """One line when ``image`` does not fit the part's flash or SRAM, else None."""
    if image.flash_bytes > FLASH_BYTES:
        return (f"the firmware needs {image.flash_bytes:,} B of flash, the {part} has "
                f"{FLASH_BYTES:,} B")  # fmt: skip
    if image.sram_bytes > SRAM_BYTES:
        return (f"the firmware needs {image.sram_bytes:,} B of static SRAM, the {part} has "
                f"{SRAM_BYTES:,} B")  # fmt: skip
    return None


def runner(out_dir: Path) -> Path:
    """The libsimavr runner (module docstring), compiled into ``out_dir``."""
    source = out_dir / "rlb_simavr_runner.c"
    source.write_text(RUNNER)
    exe = out_dir / "rlb_simavr_runner"
    try:
        _run(["cc", "-O2", str(source), "-lsimavr", "-o", str(exe)],
             "compiling the simavr runner (libsimavr-dev)")  # fmt: skip
    except RlbudgetError as exc:
        raise Unavailable(str(exc)) from None
    return exe


@dataclass(frozen=True)
class Decision:
    """One emulated decision: cycles, instructions, and the harness's ``rlb_out`` bytes."""

    cycles: int
    instructions: int
    out: bytes


def simulate(elf: Path, part: str, clock_hz: float, obs: bytes, n: int, obs_at: int,
             out_at: int, out_bytes: int, *, max_cycles: int = MAX_CYCLES,
             timeout: float = TIMEOUT_S) -> list[Decision]:  # fmt: skip
    """Run ``elf`` in simavr for ``n`` decisions (the GPIOR0 protocol, module docstring),
    the ``len(obs) // n`` bytes of each observation written at data address ``obs_at``.

    :raises RlbudgetError: a decision exceeds ``max_cycles``, the firmware stops or
        crashes, or simavr runs past ``timeout`` seconds.
    """
    with tempfile.TemporaryDirectory(prefix="rlbudget-simavr-") as tmp:
        exe = runner(Path(tmp))
        (Path(tmp) / "obs.bin").write_bytes(obs)
        cmd = [str(exe), str(elf), part, str(int(clock_hz)), hex(MARKER),
               str(Path(tmp) / "obs.bin"), str(n), f"{obs_at:x}:{len(obs) // max(n, 1)}",
               f"{out_at:x}:{out_bytes}", str(max_cycles)]  # fmt: skip
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                 timeout=timeout)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise RlbudgetError(f"simavr ran over {timeout:g} s on {n} decisions; emulate "
                                "fewer observations") from None  # fmt: skip
    if run.returncode == 3:
        raise RlbudgetError(
            f"an emulated decision did not finish within {max_cycles:,} cycles on the {part} "
            f"(the emulator's cap, {max_cycles / clock_hz:g} s): the policy is far too slow "
            "for this chip, or loops without end")  # fmt: skip
    if run.returncode != 0:
        raise RlbudgetError(f"simavr: {(run.stderr.strip().splitlines() or ['failed'])[-1]}")
    out = []
    for line in run.stdout.splitlines():
        if line.startswith("rlb "):
            _, cycles, steps, *data = line.split()
            out.append(Decision(int(cycles), int(steps), bytes.fromhex("".join(data))))
    if len(out) != n:
        raise RlbudgetError(f"simavr reported {len(out)} decisions of {n}")
    return out


def emulate_avr(policy: Policy, device: Device, observations: Any, *,
                exported: Path | None = None,
                max_cycles: int | None = None) -> EmulatedLatency:  # fmt: skip
    """Emulate one decision per observation on the AVR ``device`` (module docstring): every
    decision counted and its action checked against numpy's; ``max_cycles`` per decision
    (default :data:`MAX_CYCLES`); ``exported``: a folder that already holds ``policy``'s C
    export (``profile`` passes its own), else the policy is exported here.

    :raises RlbudgetError: a missing tool, an image that does not fit the part, a decision
        over ``max_cycles``, or an emulated action that differs from numpy's.
    """
    from rlbudget.export.c import export_c

    part = mcu(device)
    obs_all = np.asarray(observations)
    if len(obs_all) == 0:
        raise RlbudgetError("emulation needs at least one observation")
    dim = max(policy.action_space.dim, 1)
    discrete = policy.action_space.kind == "discrete"
    obs32 = obs_all.reshape(len(obs_all), -1).astype(np.float32)  # AVR float: IEEE, little end
    with tempfile.TemporaryDirectory(prefix="rlbudget-avr-") as tmp:
        if exported is None:
            exported = Path(tmp) / "c"
            export_c(policy, exported)
        image = link_policy(exported, Path(tmp), device)
        problem = memory_problem(image, part.upper().replace("ATMEGA", "ATmega"))
        if problem is not None:
            raise DoesNotFit(f"cannot emulate {device.id}: {problem}")
        symbols = read_elf(image.elf).symbols
        decisions = simulate(image.elf, part, device.clock_hz, obs32.tobytes(), len(obs32),
                             symbols["rlb_obs"] & 0xFFFF, symbols["rlb_out"] & 0xFFFF,
                             2 + 4 * dim, max_cycles=max_cycles or MAX_CYCLES)  # fmt: skip
    for i, (obs, d) in enumerate(zip(obs_all, decisions, strict=True)):
        got: Any = (int.from_bytes(d.out[:2], "little", signed=True) if discrete
                    else np.frombuffer(d.out[2 : 2 + 4 * dim], dtype="<f4").copy())  # fmt: skip
        same, want = same_action(policy, obs, got)
        if not same:
            raise RlbudgetError(
                f"the emulated AVR C policy chose {got!r} on observation {i}, numpy chose "
                f"{want!r}: the export and the policy disagree")  # fmt: skip
    c = np.array([d.cycles for d in decisions], dtype=np.float64)
    clock = device.clock_hz
    how = (f"emulated: policy.c avr-gcc -Os -mmcu={part}, cycle-accurate in simavr; every "
           f"action on {len(c)} observations {AGREEMENT}; flash {image.flash_bytes:,} B, "
           f"static SRAM {image.sram_bytes:,} B (whole image, avr-size); no flash wait "
           "states on AVR")  # fmt: skip
    mean_s = float(c.mean()) / clock
    return EmulatedLatency(
        device.id, f"{part} (simavr)", len(c), len(c), round(c.min()), float(c.mean()),
        round(c.max()), float(c.min()) / clock, mean_s, float(c.max()) / clock,
        device.active_power_w, 0.0, how,
    )  # fmt: skip


def profile_latency_avr(policy: Policy, device: Device, observations: Any, *,
                        exported: Path | None = None) -> tuple[Range | None, str]:  # fmt: skip
    """:func:`rlbudget.emulate.profile_latency` for an AVR device: the emulated range and
    how, or None and the one line saying why not (a missing tool, or an image that does
    not fit the part, which ``profile``'s memory checks report)."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None, ""
    reason = missing_tools()
    if reason is not None:
        return None, f"latency and energy estimated, not emulated: {reason}"
    try:
        e = emulate_avr(policy, device, np.asarray(observations)[:PROFILE_OBSERVATIONS],
                        exported=exported)  # fmt: skip
    except (DoesNotFit, Unavailable) as exc:
        return None, f"latency and energy estimated, not emulated: {exc}"
    how = (f"{e.cycles_min:,} / {e.cycles_mean:,.0f} / {e.cycles_max:,} cycles (min/mean/max) "
           f"at {device.clock_hz / 1e6:g} MHz; {e.how}")  # fmt: skip
    return Range(e.seconds_min, e.seconds_mean, e.seconds_max), how
