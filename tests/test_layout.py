"""The package's shape (issue 15, item 7): no import circle among rlbudget's modules, and no
module using another module's private (``_name``) names. Both read the source with ``ast``
(nothing is imported): about two seconds for the four tests."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rlbudget"


@functools.cache
def modules() -> dict[str, ast.Module]:
    """Every module of the package by its dotted name, parsed."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return out


def type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the import statements under ``if TYPE_CHECKING:`` (never run)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def imports(name: str, tree: ast.Module, known: set[str]) -> list[tuple[str, str | None]]:
    """(module, imported name or None) for every rlbudget import in ``tree`` that runs,
    at module level or inside a function (a lazy import is a dependency all the same)."""
    skip = type_checking_only(tree)
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names if a.name.split(".")[0] == "rlbudget"]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}: a relative import; the package imports absolutely"
            base = node.module or ""
            if base.split(".")[0] != "rlbudget":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((sub, None) if sub in known else (base, alias.name))
    return out


def import_graph() -> dict[str, set[str]]:
    trees = modules()
    known = set(trees)
    graph: dict[str, set[str]] = {m: set() for m in trees}
    for name, tree in trees.items():
        for module, _ in imports(name, tree, known):
            if module in known and module != name:
                graph[name].add(module)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_lazy_imports() -> None:
    graph = import_graph()
    assert "rlbudget.policy.model" in graph["rlbudget.policy.io"]
    assert "rlbudget.export.c" in graph["rlbudget.profile.footprint"]  # inside a function


def test_no_import_circle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " → ".join(cycle or [])


def private_uses() -> set[tuple[str, str]]:
    """(module, other module's ``_name``) for each private name a module takes from
    another: ``from rlbudget.x import _name`` or ``x._name`` on an imported module."""
    trees = modules()
    known = set(trees)
    out = set()
    for name, tree in trees.items():
        aliases = {}
        for module, imported in imports(name, tree, known):
            if imported is None:
                continue
            if imported.startswith("_") and not imported.startswith("__"):
                out.add((name, f"{module}.{imported}"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                aliases |= {a.asname: a.name for a in node.names if a.asname in known or
                            (a.asname and a.name in known)}  # fmt: skip
            elif isinstance(node, ast.ImportFrom) and node.module:
                aliases |= {(a.asname or a.name): f"{node.module}.{a.name}" for a in node.names
                            if f"{node.module}.{a.name}" in known}  # fmt: skip
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):  # fmt: skip
                out.add((name, f"{aliases[node.value.id]}.{node.attr}"))
    return {(m, n) for m, n in out if n.rsplit(".", 1)[0] != m}


def test_no_module_uses_another_modules_private_names() -> None:
    found = private_uses()
    assert not found, sorted(found)
