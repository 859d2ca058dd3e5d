"""The C runtime's source files (``rlbudget/export/runtime/``), as the export pastes them.

Each ``.c`` file there is one piece of the runtime (a kernel and its helpers), plain C99
that compiles on its own (the tests build every file with ``-Wall -Wextra -Werror
-pedantic``). Its parameters are ``RLB_*`` macros with a default under ``#ifndef``; its
variants are ``#if`` branches on them. :func:`instance` does what the C preprocessor
would do with those parameters given, and no more, so that ``policy.c`` holds each piece
the policy uses as readable C, with no macro left and no unused branch (as ``unifdef``
does): it drops the file's opening comment and its defaults, keeps the ``#if`` branches
the parameters select, and writes each parameter's value (or an instance's new name) in
place of its identifier. Functions become ``static`` (``RLB_API``). ``RLB_CONST`` (the
constant arrays' qualifier: ``const``, or ``const __flash`` on AVR) stays a macro, which
``policy.c`` defines once (:data:`CONST_MACRO`).

A new kernel: a file that starts with its comment, then ``#ifndef RLB_API`` /
``#define RLB_API`` / ``#include "runtime.h"`` / ``#endif`` and a default per parameter;
its variants listed in ``tests/test_c_runtime.py``; and in :mod:`rlbudget.export.c`,
``w.helper(key, instance("file.c", ...))`` where a policy needs it.

>>> print(instance("argmax.c", RLB_VALUE="int8_t", rlb_argmax="rlb_argmax_int8"))
... # doctest: +ELLIPSIS
/* index of the first largest value (numpy's argmax) */
static int rlb_argmax_int8(const int8_t *y, int32_t n)
...
"""

from __future__ import annotations

import functools
import re
from importlib.resources import files

from rlbudget.errors import PolicyError

RUNTIME = files("rlbudget.export") / "runtime"
"""The folder of the C runtime's files (package data)."""

_IDENTIFIER = re.compile(r"\b[A-Za-z_]\w*\b")
_PARAMETER = re.compile(r"\bRLB_(?!CONST\b)[A-Z0-9_]+\b")
_TARGET = re.compile(r"!?defined\(__[A-Z][A-Z0-9_]*\)( && !?defined\(__[A-Z][A-Z0-9_]*\))*")
"""An ``#if`` on the compiler's target and options, ``defined(__ARM_FEATURE_DSP) &&
!defined(__OPTIMIZE_SIZE__)``: its branches are all pasted with their directives (and an
``#include`` inside), for the compiler that builds ``policy.c`` to choose."""

CONST_MACRO = """/* RLB_CONST: the constants' qualifier. On AVR (Harvard) a plain const array is
   copied to SRAM at start-up, so there they live in flash as avr-gcc's __flash (C with
   GNU extensions: -std=gnu99/gnu11, the Arduino default); elsewhere const is flash */
#if defined(__AVR__) && defined(__FLASH) && !defined(__STRICT_ANSI__)
#define RLB_CONST const __flash
#else
#define RLB_CONST const
#endif"""
"""The definition of ``RLB_CONST`` in ``policy.c``, as ``runtime.h`` has it for the files
compiled on their own."""


@functools.cache
def source(name: str) -> str:
    """The text of the runtime file ``name`` (e.g. ``"dense_int8.c"``)."""
    return (RUNTIME / name).read_text(encoding="utf-8")


def instance(name: str, **parameters: str | int) -> str:
    """The runtime file ``name`` with ``parameters`` given, as ``policy.c`` holds it.

    :param name: a file in :data:`RUNTIME`.
    :param parameters: a value for every ``RLB_*`` parameter the kept text or an ``#if``
        reads (a C type, a constant, or 0/1 for an ``#if``), and new names for functions.
    :raises PolicyError: a parameter is missing, or the file holds a directive other
        than ``#ifndef`` (its defaults) and ``#if``/``#elif``/``#else``/``#endif`` (a bug
        in the runtime file).
    """
    values = {"RLB_API": "static", **{k: str(v) for k, v in parameters.items()}}
    text = source(name)
    if text.startswith("/*"):
        text = text.split("*/", 1)[1]
    kept: list[str] = []
    levels: list[tuple[bool, bool]] = []  # per open #if: (this branch is kept, one was)
    targets: list[int] = []  # the levels of the open #ifs on the compiler's target
    for line in text.splitlines():
        directive = line.strip()
        live = all(keep for keep, _ in levels)
        if not directive.startswith("#"):
            if live:
                kept.append(line)
            continue
        word, _, condition = directive[1:].strip().partition(" ")
        condition = condition.split("/*")[0].strip()
        verbatim = bool(targets) and targets[-1] == len(levels) - 1
        if word == "if" and _TARGET.fullmatch(condition):
            targets.append(len(levels))
            levels.append((True, True))  # both branches kept, with their directives
            verbatim = True
        elif word not in ("else", "endif"):
            verbatim = word == "include" and bool(targets)
        if verbatim:
            if word == "endif":
                levels.pop()
                targets.pop()
            if live:
                kept.append(line)
            continue
        if word in ("if", "ifndef"):  # #ifndef: a default, for compiling the file alone
            keep = live and word == "if" and _true(condition, values, name)
            levels.append((keep, keep or not live))
        elif word == "elif" and levels:
            keep = not levels[-1][1] and _true(condition, values, name)
            levels[-1] = (keep, levels[-1][1] or keep)
        elif word == "else" and levels:
            levels[-1] = (not levels[-1][1], True)
        elif word == "endif" and levels:
            levels.pop()
        elif live:
            raise PolicyError(f"runtime file {name}: unexpected directive {directive!r}")
    body = _IDENTIFIER.sub(lambda m: values.get(m.group(), m.group()), "\n".join(kept))
    missing = _PARAMETER.search(body)
    if missing:
        raise PolicyError(f"runtime file {name}: no value given for {missing.group()}")
    return body.strip("\n")


def _true(condition: str, values: dict[str, str], name: str) -> bool:
    """An ``#if`` condition over 0/1 parameters, as C reads it: terms ``NAME`` or ``!NAME``
    joined by ``&&`` and ``||`` (``&&`` binds tighter; no parentheses)."""

    def term(word: str) -> bool:
        bare = word.lstrip("!").strip()
        negated, word = (len(word) - len(word.lstrip("!"))) % 2 == 1, bare
        value = word if word.isdigit() else values.get(word, "")
        if not value.isdigit():
            raise PolicyError(f"runtime file {name}: no 0/1 value given for {word or '#if'}")
        return (int(value) != 0) != negated

    return any(all(term(w.strip()) for w in part.split("&&")) for part in condition.split("||"))
