"""The README's "Library first" table runs as written after ``import rlbudget`` (issue 14,
item 18): every name it uses exists (fast), and (slow) every line runs, in order."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rlbudget

from .conftest import BUDGETS, ZOO, needs_zoo

ROOT = Path(__file__).resolve().parents[1]


def library_lines() -> list[str]:
    """The Python column of the table under "## Library first", top to bottom."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Library first", 1)[1].split("\n## ", 1)[0]
    lines = []
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split(" | ")]
        if len(cells) == 2 and cells[1].startswith("`rlbudget."):
            lines.append(re.fullmatch(r"`(.*)`", cells[1]).group(1))  # type: ignore[union-attr]
    return lines


def dotted_names(code: str) -> list[str]:
    """``rlbudget.a.b`` chains in ``code``, longest form of each."""
    names = []
    for node in ast.walk(ast.parse(code)):
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id == "rlbudget" and parts:
            names.append(".".join(["rlbudget", *reversed(parts)]))
    return names


def test_the_table_is_all_there() -> None:
    lines = library_lines()
    assert len(lines) == 14, lines
    for line in lines:
        ast.parse(line)


def test_every_name_in_the_table_resolves_after_import_rlbudget() -> None:
    script = (
        "import sys, rlbudget\n"
        f"for name in {sorted({n for line in library_lines() for n in dotted_names(line)})!r}:\n"
        "    obj = rlbudget\n"
        "    for part in name.split('.')[1:]:\n"
        "        try:\n"
        "            obj = getattr(obj, part)\n"
        "        except AttributeError as exc:\n"
        "            sys.exit(f'{name}: {exc}')\n"
    )
    # a fresh interpreter: no test has imported the submodules already
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_import_rlbudget_imports_no_torch() -> None:
    r = subprocess.run([sys.executable, "-c", "import sys, rlbudget; rlbudget.train; "
                        "rlbudget.profile.verdict; print('torch' in sys.modules)"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.stdout == "False\n", r.stderr
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        rlbudget.nope  # noqa: B018


@pytest.mark.slow
@needs_zoo("ppo-CartPole-v1")  # its CartPole-v1.zip is the table's model.zip
def test_every_line_of_the_table_runs_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(BUDGETS / "esp32-cartpole.yaml", tmp_path / "budget.yaml")
    shutil.copy(BUDGETS / "esp32-cartpole.yaml", tmp_path / "b.yaml")
    shutil.copy(ZOO / "ppo-CartPole-v1" / "CartPole-v1.zip", tmp_path / "model.zip")
    lake = (BUDGETS / "rp2040-frozenlake.yaml").read_text()
    (tmp_path / "lake.yaml").write_text(lake)
    (tmp_path / "sweep.yaml").write_text("name: tiny\nbudgets: [lake.yaml]\nstage: plan\n")
    monkeypatch.chdir(tmp_path)
    namespace = {"rlbudget": rlbudget}
    for line in library_lines():
        exec(compile(line, "README.md", "eval"), namespace)
    assert (tmp_path / "fw" / "policy.c").exists() and (tmp_path / "onnx").exists()
