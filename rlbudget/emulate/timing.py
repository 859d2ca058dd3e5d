"""Cycles of executed Thumb code, from a core's instruction timing table (data).

The tables live in ``rlbudget/data/cycles/<core>.yaml``, with their source (the ARM
Technical Reference Manuals' instruction summaries, zero wait states). :class:`CycleTable`
classifies each instruction with capstone once per basic block (:meth:`block`) and gives
the block's cycles when it falls through and the extra cycles when its last instruction is
a branch that is taken. The emulator tells taken from not taken by where execution goes
next: a branch is taken when the next executed address is not the block's end.

What a block costs:

- every instruction its class's ``cycles``; ``multiple`` classes add ``per_register`` per
  register in the list (a ``d`` register counts 2); a POP or LDM that loads ``pc`` adds
  ``pop_pc_extra``;
- a single load/store directly after another one costs ``pipelined`` where the table has it
  (Cortex-M4);
- a conditional branch (``b<cond>``, ``cbz``, ``cbnz``) costs ``cycles`` when it falls
  through and ``taken`` when taken;
- a mnemonic the table does not list costs ``default`` and is counted in
  :attr:`CycleTable.unclassified`, so that a figure never hides a guess.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from rlbudget.errors import RlbudgetError

CONDITIONS = ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge",
              "lt", "gt", "le", "al")  # fmt: skip
CORES = ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33")


@functools.cache
def load_table(core: str) -> dict[str, Any]:
    """The YAML data for ``core`` (one of :data:`CORES`, or ``flash``)."""
    path = resources.files("rlbudget") / "data" / "cycles" / f"{core}.yaml"
    try:
        data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RlbudgetError(f"no cycle table for '{core}'; known: {', '.join(CORES)}") from None
    return data


@dataclass(frozen=True)
class Block:
    """One basic block: cycles when it falls through, extra cycles when its last branch is
    taken, its instruction count, and how many of them the table did not list."""

    cycles: int
    taken_extra: int
    instructions: int
    unclassified: int


@dataclass
class CycleTable:
    """The timing table of one core, and the capstone disassembler that reads the code."""

    core: str
    _by_mnemonic: dict[str, tuple[str, dict[str, Any]]] = field(init=False, repr=False)
    _default: int = field(init=False)
    _refill: int = field(init=False)
    _pop_pc_extra: int = field(init=False)
    source: str = field(init=False)
    unclassified: dict[str, int] = field(init=False, default_factory=dict)
    _cache: dict[tuple[int, int], Block] = field(init=False, default_factory=dict, repr=False)
    _md: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import capstone

        data = load_table(self.core)
        self.source = str(data["source"])
        if "classes" not in data:  # a table that borrows another core's (Cortex-M33)
            if float(data.get("factor", 1.0)) != 1.0:
                raise RlbudgetError(f"cycle table '{self.core}' has no classes (it scales "
                                    f"'{data.get('base')}')")  # fmt: skip
            base = load_table(str(data["base"]))
            data = {**base, "classes": {**base["classes"], **data.get("extra_classes", {})}}
        self._default = int(data["default"])
        self._refill = int(data["pipeline_refill"])
        self._by_mnemonic = {}
        for name, cls in data["classes"].items():
            for mnemonic in cls["mnemonics"]:
                self._by_mnemonic[str(mnemonic)] = (str(name), cls)
        self._pop_pc_extra = int(data["classes"].get("pop_pc_extra", {}).get("cycles", 0))
        md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
        md.detail = True
        self._md = md

    def lookup(self, mnemonic: str) -> tuple[str, dict[str, Any]] | None:
        """The class of a capstone mnemonic: width suffix, condition and the flag-setting
        ``s`` are stripped in turn until the table knows it."""
        base = mnemonic.lower().split(".")[0]
        if base.startswith("it") and set(base[2:]) <= {"t", "e"}:
            base = "it"  # ITTE, ITEET, ...: one IT instruction
        tries = [base]
        for stem in (base, base[:-1] if base.endswith("s") else None):
            if stem is None:
                continue
            tries.append(stem)
            if len(stem) > 2 and stem[-2:] in CONDITIONS:
                tries.append(stem[:-2])
                if stem[:-2].endswith("s"):
                    tries.append(stem[:-3])
        for name in tries:
            if name in self._by_mnemonic:
                return self._by_mnemonic[name]
        return None

    def block(self, code: bytes, address: int) -> Block:
        """Cycles of the basic block ``code`` at ``address`` (cached by address and size)."""
        key = (address, len(code))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        from capstone.arm import ARM_CC_AL, ARM_CC_INVALID, ARM_OP_REG

        cycles = taken_extra = count = unknown = 0
        previous_single = False
        for insn in self._md.disasm(code, address):
            count += 1
            found = self.lookup(insn.mnemonic)
            taken_extra = 0
            if found is None:
                unknown += 1
                self.unclassified[insn.mnemonic] = self.unclassified.get(insn.mnemonic, 0) + 1
                cycles += self._default
                previous_single = False
                continue
            _, cls = found
            cost = int(cls["cycles"])
            if "per_register" in cls:
                regs = [insn.reg_name(op.reg) for op in insn.operands if op.type == ARM_OP_REG]
                if insn.mnemonic.startswith(("ldrd", "strd")):
                    regs = regs[:2]  # the two data registers, not the base
                elif not insn.mnemonic.startswith(("push", "pop", "vpush", "vpop")):
                    regs = regs[1:]  # LDM/STM/VLDM/VSTM: the first register is the base
                n = sum(2 if r.startswith("d") else 1 for r in regs)
                cost += int(cls["per_register"]) * n
                if "pc" in regs:
                    cost += self._pop_pc_extra
            if "pipelined" in cls and previous_single:
                cost = int(cls["pipelined"])
            previous_single = "pipelined" in cls
            if "taken" in cls:
                conditional = insn.mnemonic.startswith(("cbz", "cbnz")) or (
                    insn.cc not in (ARM_CC_INVALID, ARM_CC_AL))  # fmt: skip
                if conditional:
                    taken_extra = int(cls["taken"]) - cost
                else:
                    cost = int(cls["taken"])
            cycles += cost
        block = Block(cycles, taken_extra, count, unknown)
        self._cache[key] = block
        return block
