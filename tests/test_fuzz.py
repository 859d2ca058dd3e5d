"""Fuzzing the two files a user hands rlbudget most: budgets and policy folders.

Every mutated input must end in exit 0, 1 or 2 with no traceback (exit 3 is a bug).
Run in-process (Typer's CliRunner), so 1,000 budgets and 200 policy folders take about a
minute. The generators are plain functions of a seed, so ``benchmarks/attacks.py`` re-runs
the same cases (it loads this file by path, so it also runs against an older rlbudget).
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = ROOT / "budgets"

WEIRD_VALUES = [
    "0", "-1", "1e999", "-1e999", "nan", ".nan", ".inf", "1e-20 GiB", "1e-300", "0.0001",
    "1e-10", "abc", "[]", "{}", "[[[[[[[[[[]]]]]]]]]]", "null", "~", "true", "''", "\"\"",
    "&a x", "*a", "!!python/object:os.system x", "1 parsec", "4 MIB", "320KiB", "2ms",
    "99999999999999999999999999 GiB", "1_000", "0x10", "1e6", "10 %", "150%", "-0",
    "\x00", "\x07", "\x1b[31m", "\ufffe", "é", "1.5mJ", "2W", "15min", "200k",
]  # fmt: skip


def mutate_budget(text: str, rng: random.Random) -> str:
    """One random mutation of a budget's YAML text (values, lines, bytes, nesting)."""
    lines = text.splitlines()
    kind = rng.randrange(8)
    if kind <= 2 and lines:  # replace a value
        i = rng.randrange(len(lines))
        head, sep, _ = lines[i].partition(":")
        lines[i] = f"{head}{sep or ':'} {rng.choice(WEIRD_VALUES)}"
    elif kind == 3 and lines:  # drop or duplicate a line
        i = rng.randrange(len(lines))
        if rng.random() < 0.5:
            del lines[i]
        else:
            lines.insert(i, lines[i])
    elif kind == 4:  # a random byte or character
        pos = rng.randrange(len(text) + 1)
        return (
            text[:pos]
            + chr(rng.choice([0, 7, 9, 27, 0x85, 0xFEFF, rng.randrange(32, 127)]))
            + text[pos:]
        )
    elif kind == 5 and lines:  # reindent a line
        i = rng.randrange(len(lines))
        lines[i] = " " * rng.choice([0, 1, 3, 8]) + lines[i].lstrip()
    elif kind == 6:  # deep nesting or a huge scalar
        deep = rng.choice(["[" * 500 + "]" * 500, "{a: " * 200 + "1" + "}" * 200, "9" * 5000])
        lines.append(f"extra: {deep}")
    else:  # an unknown or misspelt key
        extra = rng.choice(["ram: 1KiB", "inferense: {}", "task: 3", "device: 7"])
        lines.insert(rng.randrange(len(lines) + 1), extra)
    return "\n".join(lines) + "\n"


def budget_cases(n: int, seed: int = 0) -> Iterator[str]:
    """``n`` mutated budgets (one to three mutations each of a bundled example)."""
    rng = random.Random(seed)
    sources = sorted(BUDGETS.glob("*.yaml"))
    texts = [p.read_text(encoding="utf-8") for p in sources]
    for _ in range(n):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 3)):
            text = mutate_budget(text, rng)
        yield text


def base_policies(folder: Path) -> list[Path]:
    """Three small valid policies for CartPole-v1: normalize + mlp, a discretized table, and
    tile coding + linear."""
    import numpy as np

    from rlbudget.envs import env_spec
    from rlbudget.policy import (
        MLP,
        Dense,
        Discretize,
        Head,
        Linear,
        Normalize,
        Policy,
        Table,
        TileCode,
        save_policy,
    )

    rng = np.random.default_rng(0)

    def f32(*shape: int) -> Any:
        return rng.standard_normal(shape).astype(np.float32)

    s = env_spec("CartPole-v1", measure_steps=0)
    lo, hi = np.array([-2.4, -3, -0.21, -3]), np.array([2.4, 3, 0.21, 3])
    tc = TileCode(lo, hi, 2, 3, 128)
    policies = {
        "mlp": Policy(s.observation, s.action, (Normalize(f32(4), np.abs(f32(4)) + 0.5, 5.0),),
                      MLP((Dense(f32(4, 8), f32(8), "tanh"), Dense(f32(8, 2), f32(2)))),
                      Head("argmax"), {"env": "CartPole-v1"}),
        "table": Policy(s.observation, s.action, (Discretize(lo, hi, (3, 3, 4, 4)),),
                        Table(f32(144, 2)), Head("argmax"), {"env": "CartPole-v1"}),
        "tiles": Policy(s.observation, s.action, (tc,),
                        Linear(f32(tc.features, 2), f32(2), None), Head("argmax"),
                        {"env": "CartPole-v1"}),
    }  # fmt: skip
    return [save_policy(p, folder / name, parents=True) for name, p in policies.items()]


WEIRD_JSON: list[Any] = [0, -1, 1e999, -1e999, float("nan"), 1e38, -1e-300, 2.5, 2**64, "3",
                         None, True, [], {}, [[[]]], "inf"]  # fmt: skip


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def mutate_policy(folder: Path, rng: random.Random) -> str:
    """One random mutation of a policy folder in place; returns what it did."""
    jp, ap = folder / "policy.json", folder / "policy.safetensors"
    kind = rng.randrange(6)
    try:
        doc = json.loads(jp.read_text(errors="replace"))
    except (ValueError, RecursionError):  # an earlier mutation broke the JSON: flip bytes
        kind = 5
    if kind <= 2:  # a field's value
        path = rng.choice(list(_paths(doc)))
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if kind == 2 and isinstance(parent, dict):
            del parent[path[-1]]
            what = f"del {path}"
        else:
            value = rng.choice(WEIRD_JSON)
            parent[path[-1]] = value
            what = f"{path} = {value!r}"
        jp.write_text(json.dumps(doc))  # writes NaN/Infinity literals, as a hand edit might
        return what
    if kind == 3:  # deep nesting
        depth = rng.choice([40, 5000, 200_000])
        doc["x"] = "DEEP"
        jp.write_text(json.dumps(doc).replace('"DEEP"', "[" * depth + "]" * depth))
        return f"nesting {depth}"
    target = rng.choice([jp, ap])
    data = bytearray(target.read_bytes())
    if kind == 4:  # truncate
        cut = rng.randrange(len(data))
        target.write_bytes(bytes(data[:cut]))
        return f"truncate {target.name} at {cut}"
    for _ in range(rng.randint(1, 8)):  # flip bytes
        data[rng.randrange(len(data))] = rng.randrange(256)
    target.write_bytes(bytes(data))
    return f"flip bytes of {target.name}"


def policy_cases(n: int, workdir: Path, seed: int = 0) -> Iterator[tuple[Path, str]]:
    """``n`` mutated copies of :func:`base_policies` under ``workdir``."""
    rng = random.Random(seed)
    bases = base_policies(workdir / "bases")
    for i in range(n):
        folder = workdir / f"p{i}"
        shutil.copytree(rng.choice(bases), folder)
        what = "; ".join(mutate_policy(folder, rng) for _ in range(rng.randint(1, 2)))
        yield folder, what


def run_cli(args: list[str]) -> tuple[int, str, BaseException | None]:
    """(exit code, stderr, an exception that escaped) of one in-process rlbudget call."""
    from typer.testing import CliRunner

    from rlbudget.cli import app

    r = CliRunner().invoke(app, args)
    escaped = r.exception if not isinstance(r.exception, SystemExit) else None
    return r.exit_code, r.stderr, escaped


def fuzz_budgets(n: int, workdir: Path, seed: int = 0,
                 on_case: Callable[[str, int, str, BaseException | None], None] | None = None,
                 ) -> list[tuple[str, int, str]]:  # fmt: skip
    """Run ``check`` on ``n`` mutated budgets (and ``plan`` on every 20th); the failures."""
    bad = []
    path = workdir / "budget.yaml"
    for i, text in enumerate(budget_cases(n, seed)):
        path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
        for cmd in (["check"], ["plan"]) if i % 20 == 0 else (["check"],):
            code, stderr, escaped = run_cli([*cmd, str(path)])
            if on_case:
                on_case(text, code, stderr, escaped)
            if code not in (0, 1, 2) or "Traceback" in stderr or escaped is not None:
                bad.append((text, code, stderr[-300:] or repr(escaped)))
    return bad


def fuzz_policies(n: int, workdir: Path, seed: int = 0,
                  on_case: Callable[[str, int, str, BaseException | None], None] | None = None,
                  ) -> list[tuple[str, int, str]]:  # fmt: skip
    """Run ``show``, ``evaluate`` and ``export`` on ``n`` mutated policy folders; failures."""
    bad = []
    for folder, what in policy_cases(n, workdir, seed):
        for cmd in (["show", str(folder)],
                    ["evaluate", str(folder), "--env", "CartPole-v1", "--episodes", "1"],
                    ["export", str(folder), "--format", "c", "-o", str(folder / "c")]):  # fmt: skip
            code, stderr, escaped = run_cli(cmd)
            if on_case:
                on_case(what, code, stderr, escaped)
            if code not in (0, 1, 2) or "Traceback" in stderr or escaped is not None:
                bad.append((what, code, stderr[-300:] or repr(escaped)))
    return bad


@pytest.mark.slow
def test_fuzz_budgets(tmp_path: Path) -> None:
    bad = fuzz_budgets(1000, tmp_path)
    assert not bad, bad[:5]


@pytest.mark.slow
def test_fuzz_policy_folders(tmp_path: Path) -> None:
    bad = fuzz_policies(200, tmp_path)
    assert not bad, bad[:5]
