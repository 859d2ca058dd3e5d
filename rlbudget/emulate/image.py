"""A bare-metal Cortex-M image of an exported C policy, built with ``arm-none-eabi-gcc``.

:func:`build_image` links ``policy.c`` (``rlbudget export --format c``) with a startup
file and a linker script written here: a vector table, a reset handler that copies
``.data`` and clears ``.bss``, then calls ``rlb_policy_act`` on static buffers in a loop:
the smallest firmware a user could flash. It is compiled as a user would ship it:
``-O2`` (or ``-Os``: ``profile --optimize``, whose footprint is then of the same build)
``-mthumb``, the core's ``-mcpu`` (and ``-mfloat-abi=hard`` with ``-mfpu=fpv4-sp-d16``
on an M4F, ``fpv5-sp-d16`` on an M33 with its FPU), ``-nostartfiles``, newlib-nano
(``--specs=nano.specs --specs=nosys.specs``), ``--gc-sections``, libgcc and libm from the
toolchain (software float on the M0+ and the M3).

:func:`read_elf` reads the image back: its loadable segments (at their run addresses, so
``.data`` is already initialised) and its symbols, from the ELF headers (no extra package).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rlbudget.errors import RlbudgetError
from rlbudget.export.arm import DEFAULT_OPTIMIZE, opt_flag

FLASH_BASE, FLASH_SIZE = 0x0000_0000, 2 << 20
RAM_BASE, RAM_SIZE = 0x2000_0000, 1 << 20
"""The emulated memory map: 2 MiB of flash, 1 MiB of RAM (larger than any device here, so
an image that links is one the emulator can run; the device's own sizes are
:mod:`rlbudget.profile.footprint`'s business)."""

CPU_FLAGS: dict[str, tuple[str, ...]] = {
    "cortex-m0plus": ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"),
    "cortex-m3": ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"),
    "cortex-m4": ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
    "cortex-m33": ("-mcpu=cortex-m33", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"),
    "cortex-m33-nofp": ("-mcpu=cortex-m33+nofp", "-mthumb", "-mfloat-abi=soft"),
}
"""Compiler flags per emulated build (the M4 build is the M4F's, and the M7's stand-in; an
M33 without its optional FPU gets ``cortex-m33-nofp``)."""
CFLAGS = ("-std=c99", "-ffunction-sections", "-fdata-sections", "-nostartfiles",
          "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections")  # fmt: skip
OPTIMIZATION = opt_flag(DEFAULT_OPTIMIZE)
"""The optimization of an image unless told otherwise (``optimize``: ``O2`` or ``Os``)."""

LINKER_SCRIPT = f"""MEMORY {{
  FLASH (rx) : ORIGIN = {FLASH_BASE:#x}, LENGTH = {FLASH_SIZE}
  RAM (rwx)  : ORIGIN = {RAM_BASE:#x}, LENGTH = {RAM_SIZE}
}}
ENTRY(rlb_reset)
SECTIONS {{
  .text : {{ KEEP(*(.vectors)) *(.text*) *(.rodata*) . = ALIGN(4); }} > FLASH
  .ARM.exidx : {{ *(.ARM.exidx*) }} > FLASH
  .data : {{ _sdata = .; *(.data*) . = ALIGN(4); _edata = .; }} > RAM AT > FLASH
  _sidata = LOADADDR(.data);
  .bss (NOLOAD) : {{ _sbss = .; *(.bss*) *(COMMON) . = ALIGN(4); _ebss = .; }} > RAM
  end = .; _end = .;
  _estack = ORIGIN(RAM) + LENGTH(RAM);
}}
"""

STARTUP = """#include "policy.h"
extern unsigned int _sidata, _sdata, _edata, _sbss, _ebss, _estack;
float rlb_obs[RLB_OBS_DIM];
float rlb_action[RLB_ACTION_DIM > 0 ? RLB_ACTION_DIM : 1];
volatile int rlb_result;
void rlb_reset(void);
__attribute__((section(".vectors"), used)) static void *const rlb_vectors[2] = {
    &_estack, (void *)rlb_reset};
void rlb_reset(void)
{
    unsigned int *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) { *dst++ = *src++; }
    for (dst = &_sbss; dst < &_ebss;) { *dst++ = 0; }
    for (;;) { rlb_result = rlb_policy_act(rlb_obs, rlb_action); }
}
"""

TOOLCHAIN_HINT = "arm-none-eabi-gcc is not installed (Debian: apt-get install gcc-arm-none-eabi)"


def compiler() -> str | None:
    """Path of ``arm-none-eabi-gcc``, or None."""
    return shutil.which("arm-none-eabi-gcc")


def link(core: str, sources: list[Path], elf: Path, *, include: Path | None = None,
         optimize: str = DEFAULT_OPTIMIZE) -> Path:  # fmt: skip
    """Compile and link ``sources`` for ``core`` at ``-{optimize}`` with our linker script
    into ``elf``.

    :raises RlbudgetError: no toolchain, an unknown core or optimization, or the compiler's
        first error line.
    """
    flag = opt_flag(optimize)
    gcc = compiler()
    if gcc is None:
        raise RlbudgetError(TOOLCHAIN_HINT)
    if core not in CPU_FLAGS:
        raise RlbudgetError(f"no emulated build for '{core}'; known: {', '.join(CPU_FLAGS)}")
    script = elf.with_suffix(".ld")
    script.write_text(LINKER_SCRIPT)
    cmd = [
        gcc,
        *CPU_FLAGS[core],
        flag,
        *CFLAGS,
        "-T",
        str(script),
        *([f"-I{include}"] if include else []),
        *map(str, sources),
        "-lm",
        "-o",
        str(elf),
    ]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    except subprocess.TimeoutExpired:
        raise RlbudgetError(f"linking the {core} image took over 120 s; check the toolchain "
                            "(arm-none-eabi-gcc)") from None  # fmt: skip
    if run.returncode != 0:
        first = next((ln for ln in run.stderr.splitlines() if "rror" in ln), run.stderr)
        raise RlbudgetError(f"linking the {core} image failed: {first.strip()}")
    return elf


def build_image(export_dir: Path, core: str, out_dir: Path, optimize: str = DEFAULT_OPTIMIZE
                ) -> Path:  # fmt: skip
    """The firmware image of the C export in ``export_dir`` for ``core`` at ``-{optimize}``
    (module docstring)."""
    policy_c = export_dir / "policy.c"
    if not policy_c.is_file():
        raise RlbudgetError(f"{policy_c}: no such file; export the policy with --format c first")
    startup = out_dir / "rlb_startup.c"
    startup.write_text(STARTUP)
    return link(core, [startup, policy_c], out_dir / f"policy-{core}.elf", include=export_dir,
                optimize=optimize)  # fmt: skip


@dataclass(frozen=True)
class Elf:
    """The loadable segments ``(address, bytes, memory size)`` and symbol addresses."""

    segments: tuple[tuple[int, bytes, int], ...]
    symbols: dict[str, int]


def read_elf(path: Path) -> Elf:
    """Segments and symbols of a 32-bit little-endian ARM ELF file."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise RlbudgetError(f"{path}: not a 32-bit little-endian ELF file")
    phoff, shoff = struct.unpack_from("<II", data, 0x1C)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x2A)
    segments = []
    for i in range(phnum):
        kind, offset, vaddr, _, filesz, memsz = struct.unpack_from(
            "<6I", data, phoff + i * phentsize
        )
        if kind == 1 and memsz:  # PT_LOAD
            segments.append((vaddr, data[offset : offset + filesz], memsz))
    sections = [struct.unpack_from("<10I", data, shoff + i * shentsize) for i in range(shnum)]
    symbols: dict[str, int] = {}
    for sec in sections:
        if sec[1] != 2:  # SHT_SYMTAB
            continue
        strtab = sections[sec[6]]
        names = data[strtab[4] : strtab[4] + strtab[5]]
        for j in range(sec[5] // 16):
            name_off, value = struct.unpack_from("<II", data, sec[4] + 16 * j)
            name = names[name_off : names.index(b"\0", name_off)].decode()
            if name:
                symbols[name] = value
    return Elf(tuple(segments), symbols)
