"""Section sizes of an exported ``policy.c`` on Cortex-M, from the real cross compiler.

When ``arm-none-eabi-gcc`` and ``arm-none-eabi-size`` are on PATH (Debian:
``apt-get install gcc-arm-none-eabi``), :func:`cortex_m_sizes` compiles ``policy.c`` as
one object per target (``-Os -ffunction-sections -fdata-sections``, C99, warnings as
errors) and reads ``.text`` (code plus the ``const`` arrays, which live in flash),
``.data`` and ``.bss`` (the static buffers) with ``arm-none-eabi-size``. Without the
toolchain it returns None and says why; nothing else needs it.

What the object does not hold: the caller's stack (a few scalars), the C library, and,
for a float policy that uses ``tanhf``/``expf`` (``needs_libm``), those functions. Linked
with newlib-nano (``--specs=nano.specs --gc-sections``), a program calling ``tanhf`` was
4,044 B larger on Cortex-M0+ (software float) and 964 B larger on M4F than the same
program without it (measured with the Debian toolchain, GCC 12.2).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlbudget.errors import RlbudgetError

TARGETS: dict[str, tuple[str, ...]] = {
    "cortex-m0plus": ("-mcpu=cortex-m0plus", "-mthumb"),
    "cortex-m4f": ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
}
"""The two targets issue 6 names: the smallest Cortex-M (no FPU) and the common M4F."""
CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Os",
          "-ffunction-sections", "-fdata-sections")  # fmt: skip
OPTIMIZE = ("O2", "Os")
"""The builds ``profile`` can describe (``--optimize``): gcc's ``-O2`` or ``-Os``. One choice
sets both the footprint (:func:`firmware_cost`, :func:`stack_usage`) and the emulated
image (:func:`rlbudget.emulate.image.build_image`): they differ by more than code size, as
the int8 kernels take their DSP path (``dsp_int8.c``) only where not optimizing for size."""
DEFAULT_OPTIMIZE = "O2"
"""What ``profile`` describes unless told otherwise: the emulator's build since issue 16."""
TOOLCHAIN_HINT = "arm-none-eabi-gcc is not installed (Debian: apt-get install gcc-arm-none-eabi)"


@dataclass(frozen=True)
class SectionSizes:
    """Bytes of one compiled object, as ``arm-none-eabi-size`` prints them (Berkeley)."""

    text: int
    data: int
    bss: int

    @property
    def flash_bytes(self) -> int:
        """What the object puts in flash: code and constants, plus ``.data``'s initial values."""
        return self.text + self.data

    @property
    def ram_bytes(self) -> int:
        """Static RAM: ``.data`` and ``.bss``."""
        return self.data + self.bss

    def to_dict(self) -> dict[str, int]:
        return {"text": self.text, "data": self.data, "bss": self.bss,
                "flash_bytes": self.flash_bytes, "ram_bytes": self.ram_bytes}  # fmt: skip


def _run(cmd: list[str], failure: str) -> str:
    """Run a toolchain command; its stdout, or :class:`RlbudgetError` with ``failure`` and
    the compiler's first error line."""
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        first = next((ln for ln in run.stderr.splitlines() if "rror" in ln), run.stderr)
        raise RlbudgetError(f"{failure}: {first.strip()}")
    return run.stdout


def _sections(size: str, path: Path) -> SectionSizes:
    """``.text``, ``.data``, ``.bss`` of an object or image, from ``arm-none-eabi-size``."""
    text, data, bss = (int(v) for v in _run([size, str(path)], str(path)).splitlines()[1]
                       .split()[:3])  # fmt: skip
    return SectionSizes(text, data, bss)


def toolchain() -> tuple[str, str] | None:
    """Paths of ``arm-none-eabi-gcc`` and ``arm-none-eabi-size``, or None."""
    gcc, size = shutil.which("arm-none-eabi-gcc"), shutil.which("arm-none-eabi-size")
    return (gcc, size) if gcc and size else None


def cortex_m_sizes(export_dir: str | Path) -> dict[str, SectionSizes] | None:
    """Compile ``export_dir/policy.c`` for every target in :data:`TARGETS` and size it.

    :returns: sizes by target name, or None when the toolchain is not installed.
    :raises RlbudgetError: ``policy.c`` is missing, or the compiler rejects it (a bug in the
        export: the message carries the compiler's first error line).
    """
    tools = toolchain()
    if tools is None:
        return None
    gcc, size = tools
    source = Path(export_dir) / "policy.c"
    if not source.is_file():
        raise RlbudgetError(f"{source}: no such file; export the policy with --format c first")
    out: dict[str, SectionSizes] = {}
    with tempfile.TemporaryDirectory(prefix="rlbudget-arm-") as tmp:
        for target, flags in TARGETS.items():
            obj = Path(tmp) / f"{target}.o"
            _run([gcc, *flags, *CFLAGS, "-c", str(source), "-o", str(obj)],
                 f"{source}: arm-none-eabi-gcc ({target}) failed")  # fmt: skip
            out[target] = _sections(size, obj)
    return out


LINK_FLAGS = ("--specs=nano.specs", "--specs=nosys.specs", "-ffunction-sections",
              "-fdata-sections", "-Wl,--gc-sections")  # fmt: skip
FIRMWARE_MAIN = """#include "policy.h"
volatile float rlb_in[RLB_OBS_DIM];
static float rlb_out[RLB_ACTION_DIM];
int main(void) { return rlb_policy_act((const float *)rlb_in, rlb_out); }
"""
EMPTY_MAIN = "int main(void) { return 0; }\n"


def opt_flag(optimize: str) -> str:
    """gcc's flag for one of :data:`OPTIMIZE` (``-O2``, ``-Os``).

    :raises RlbudgetError: another value.
    """
    if optimize not in OPTIMIZE:
        raise RlbudgetError(f"unknown optimization '{optimize}'; use one of {', '.join(OPTIMIZE)}")
    return f"-{optimize}"


def firmware_cost(export_dir: str | Path, target: str, optimize: str = "Os"
                  ) -> SectionSizes | None:  # fmt: skip
    """What the policy adds to a linked firmware image on ``target``: a program whose
    ``main`` calls ``rlb_policy_act`` on static input/output buffers, minus an empty
    ``main``, both built with ``-{optimize}`` (:data:`OPTIMIZE`) and linked with newlib-nano
    and ``--gc-sections`` (``-lm``).

    Unlike :func:`cortex_m_sizes` (the object alone), this counts the library routines the
    policy pulls in (software float on a core without an FPU, ``tanhf``, 64-bit multiply)
    and the caller's observation and action buffers in ``.bss``.

    :returns: the difference of the two images' sections, or None without the toolchain.
    :raises RlbudgetError: ``policy.c`` is missing, ``target`` or ``optimize`` is unknown, or
        linking fails.
    """
    flag = opt_flag(optimize)
    tools = toolchain()
    if tools is None:
        return None
    if target not in TARGETS:
        raise RlbudgetError(f"unknown Cortex-M target '{target}'; known: {', '.join(TARGETS)}")
    gcc, size = tools
    folder = Path(export_dir)
    if not (folder / "policy.c").is_file():
        raise RlbudgetError(f"{folder / 'policy.c'}: no such file; export the policy first")
    full = _link(gcc, size, target, flag, FIRMWARE_MAIN, (str(folder / "policy.c"),),
                 str(folder))  # fmt: skip
    empty = _empty_image(gcc, size, target, flag)
    return SectionSizes(full.text - empty.text, full.data - empty.data, full.bss - empty.bss)


@functools.cache
def _empty_image(gcc: str, size: str, target: str, flag: str) -> SectionSizes:
    """The image of an empty ``main``: the same for every policy, linked once per target
    and optimization ``flag``."""
    return _link(gcc, size, target, flag, EMPTY_MAIN, (), "")


def _link(gcc: str, size: str, target: str, flag: str, main: str, sources: tuple[str, ...],
          include: str) -> SectionSizes:  # fmt: skip
    """Sections of ``main`` (C text) linked with ``sources`` for ``target`` at ``flag``."""
    with tempfile.TemporaryDirectory(prefix="rlbudget-arm-") as tmp:
        main_c, elf = Path(tmp) / "main.c", Path(tmp) / "image.elf"
        main_c.write_text(main)
        flags = [f"-I{include}"] if include else []
        _run([gcc, *TARGETS[target], flag, *LINK_FLAGS, *flags, str(main_c), *sources, "-lm", "-o",
              str(elf)], f"{include or 'an empty main'}: linking for {target} failed")  # fmt: skip
        return _sections(size, elf)


def stack_usage(export_dir: str | Path, target: str, optimize: str = "Os") -> int | None:
    """Bytes of stack that ``policy.c``'s functions use on ``target`` built with
    ``-{optimize}`` (:data:`OPTIMIZE`), from GCC's ``-fstack-usage``: the sum of every
    function's frame (an upper bound on the deepest call chain, as there is no recursion).
    Library routines (``tanhf``, software float) are not counted. None without the
    toolchain.
    """
    flag = opt_flag(optimize)
    tools = toolchain()
    if tools is None:
        return None
    source = Path(export_dir) / "policy.c"
    cflags = [f if f != "-Os" else flag for f in CFLAGS]
    with tempfile.TemporaryDirectory(prefix="rlbudget-arm-") as tmp:
        obj = Path(tmp) / "policy.o"
        _run([tools[0], *TARGETS[target], *cflags, "-fstack-usage", "-c", str(source), "-o",
              str(obj)], f"{source}: arm-none-eabi-gcc ({target}) failed")  # fmt: skip
        lines = obj.with_suffix(".su").read_text().splitlines()
    return sum(int(line.split("\t")[1]) for line in lines if line.count("\t") >= 2)


def sizes_to_dict(sizes: dict[str, SectionSizes] | None) -> dict[str, Any]:
    """JSON form: ``{"available": bool, "targets": {name: sizes} | None, "note": str}``."""
    if sizes is None:
        return {"available": False, "targets": None, "note": TOOLCHAIN_HINT}
    flags = {t: " ".join((*f, *CFLAGS)) for t, f in TARGETS.items()}
    return {"available": True, "targets": {t: s.to_dict() for t, s in sizes.items()},
            "note": f"object sizes of policy.c, compiled with {flags}"}  # fmt: skip
