"""Run functions of a Cortex-M image in unicorn and count their cycles.

:class:`Machine` maps the image's flash and RAM, loads its segments, and :meth:`~Machine.call`
runs one function as the C ABI calls it: arguments in r0..r3, the stack pointer at the top
of RAM, the link register at a stop address outside the image; it runs until the function
returns there, or raises after ``max_instructions`` (a one-line error: a policy that loops
forever, or one far too slow for any budget).

Cycles are counted per basic block (unicorn's block hook: one Python call per block, not
per instruction): each block's cost comes from :class:`~rlbudget.emulate.timing.CycleTable`
(capstone, cached by address), and a block whose successor does not start at its end
ended in a taken branch, which adds the branch's taken cost. With ``count_flash_reads``, data
reads from flash (constant weights, literal pools) are counted too (a memory hook on the
flash range: one Python call per read), for a device whose flash wait states no cache hides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlbudget.emulate.image import FLASH_BASE, FLASH_SIZE, RAM_BASE, RAM_SIZE, read_elf
from rlbudget.emulate.timing import CycleTable
from rlbudget.errors import RlbudgetError

STOP = FLASH_BASE + FLASH_SIZE - 0x100
"""Return address of every call: in mapped flash, past any image, never executed."""
UNICORN_CPU = {
    "cortex-m0plus": "UC_CPU_ARM_CORTEX_M0",
    "cortex-m3": "UC_CPU_ARM_CORTEX_M3",
    "cortex-m4": "UC_CPU_ARM_CORTEX_M4",
    "cortex-m33": "UC_CPU_ARM_CORTEX_M33",
    "cortex-m33-nofp": "UC_CPU_ARM_CORTEX_M33",
}
"""unicorn's CPU model per build (unicorn 2.1). It has no M0+ model: its M0 runs the same
ARMv6-M instructions (timing is ours)."""
TABLES = {"cortex-m33-nofp": "cortex-m33"}
"""The cycle table of a build, where its name is not the table's."""


@dataclass(frozen=True)
class CallStats:
    """One call: cycles at zero wait states, instructions, taken branches, and data reads
    from flash (0 unless the machine counts them)."""

    cycles: int
    instructions: int
    taken_branches: int
    flash_reads: int = 0


class Machine:
    """An emulated Cortex-M core with one image loaded (module docstring)."""

    def __init__(self, elf: Path, core: str, *, max_instructions: int = 50_000_000,
                 count_flash_reads: bool = False) -> None:  # fmt: skip
        import unicorn
        from unicorn import arm_const

        make: Any = unicorn.Uc  # type: ignore[attr-defined]

        if core not in UNICORN_CPU:
            raise RlbudgetError(f"no emulator model for '{core}'; known: {', '.join(UNICORN_CPU)}")
        self.core = core
        self.max_instructions = max_instructions
        self.table = CycleTable(TABLES.get(core, core))
        self.image = read_elf(elf)
        uc: Any = make(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        uc.ctl_set_cpu_model(getattr(arm_const, UNICORN_CPU[core]))
        uc.mem_map(FLASH_BASE, FLASH_SIZE)
        uc.mem_map(RAM_BASE, RAM_SIZE)
        for address, data, _ in self.image.segments:
            uc.mem_write(address, data)  # .bss is already zero in fresh memory
        self._uc: Any = uc
        self._c = arm_const
        self._state = [0, 0, 0, 0, -1, 0]  # cycles, instructions, taken, extra, end, flash reads
        self._hooks: list[int] = []
        self._count_flash_reads = count_flash_reads

    def _on_flash_read(self, *_: Any) -> None:
        self._state[5] += 1

    def _on_block(self, uc: Any, address: int, size: int, _: Any) -> None:
        s = self._state
        if s[4] >= 0 and address != s[4]:
            s[0] += s[3]  # the previous block's last branch was taken
            s[2] += 1
        block = self.table.block(bytes(uc.mem_read(address, size)), address)
        s[0] += block.cycles
        s[1] += block.instructions
        s[3] = block.taken_extra
        s[4] = address + size

    def symbol(self, name: str) -> int:
        """Address of ``name`` in the image (the Thumb bit cleared)."""
        if name not in self.image.symbols:
            raise RlbudgetError(f"the image has no symbol '{name}'")
        return self.image.symbols[name] & ~1

    def write(self, address: int, data: bytes) -> None:
        self._uc.mem_write(address, data)

    def read(self, address: int, size: int) -> bytes:
        return bytes(self._uc.mem_read(address, size))

    def call(self, function: str, *args: int, count: bool = True) -> tuple[int, CallStats | None]:
        """Run ``function(*args)`` (up to 4 integer/pointer arguments) to its return.

        :param count: count cycles (a Python call per basic block); without, the call runs
            at unicorn's native speed (≈ 100× faster) and only its result is read.
        :returns: r0 (as unsigned 32-bit) and the call's counts (None when not counted).
        :raises RlbudgetError: the call did not return within ``max_instructions``, or
            faulted (an unmapped access, an undefined instruction).
        """
        import unicorn
        from unicorn.unicorn import UcError

        uc, c = self._uc, self._c
        for reg, value in zip((c.UC_ARM_REG_R0, c.UC_ARM_REG_R1, c.UC_ARM_REG_R2,
                               c.UC_ARM_REG_R3), args, strict=False):  # fmt: skip
            uc.reg_write(reg, value & 0xFFFF_FFFF)
        uc.reg_write(c.UC_ARM_REG_SP, RAM_BASE + RAM_SIZE)
        uc.reg_write(c.UC_ARM_REG_LR, STOP | 1)
        self._state[:] = [0, 0, 0, 0, -1, 0]
        if count and not self._hooks:
            self._hooks.append(uc.hook_add(unicorn.UC_HOOK_BLOCK, self._on_block))
            if self._count_flash_reads:
                on_read, kind = self._on_flash_read, unicorn.UC_HOOK_MEM_READ
                end = FLASH_BASE + FLASH_SIZE - 1
                self._hooks.append(uc.hook_add(kind, on_read, None, FLASH_BASE, end))
        elif not count and self._hooks:
            for hook in self._hooks:
                uc.hook_del(hook)
            self._hooks = []
        try:
            uc.emu_start(self.symbol(function) | 1, STOP, count=self.max_instructions)
        except UcError as exc:
            pc = uc.reg_read(c.UC_ARM_REG_PC)
            raise RlbudgetError(f"emulated {function} faulted at {pc:#x} on {self.core}: "
                                f"{exc}") from None  # fmt: skip
        if uc.reg_read(c.UC_ARM_REG_PC) != STOP:
            raise RlbudgetError(
                f"emulated {function} did not return within {self.max_instructions:,} "
                f"instructions on {self.core} (the emulator's cap): the policy is far too "
                "slow for this core, or loops without end")  # fmt: skip
        if not count:
            return int(uc.reg_read(c.UC_ARM_REG_R0)), None
        s = self._state
        s[2] += 1  # the return to the caller (BX LR / POP {pc}: its cost is in its block)
        return int(uc.reg_read(c.UC_ARM_REG_R0)), CallStats(s[0], s[1], s[2], s[5])
