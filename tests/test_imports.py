"""Modules depend on each other in one direction: no two icpo modules import each other, directly or
through others (imports inside functions and the command modules the CLI loads by name included)."""

from __future__ import annotations

import ast
from pathlib import Path

import icpo.cli

SOURCE = Path(__file__).parents[1] / "src"


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in SOURCE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t not in (name, "icpo")}
    graph["icpo.cli"] |= set(icpo.cli.COMMAND_MODULES)
    return graph


def test_no_two_modules_import_each_other():
    graph = import_graph()
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for target in sorted(graph[node]):
            if target in path:
                cycles.append(path[path.index(target) :] + [target])
            elif len(path) < len(graph):
                visit(target, [*path, target])

    for start in sorted(graph):
        visit(start, [start])
    assert not cycles, sorted({" -> ".join(c) for c in cycles})[:5]


def test_files_are_replaced_atomically_in_one_place():
    """icpo.runfolder is the one home of atomic file writes; only the warm-up moves a whole folder."""
    calls = {
        module_name(path)
        for path in SOURCE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr in ("replace", "rename") and _is_os(node.value)
    }
    assert calls <= {"icpo.runfolder", "icpo.warmup"}, calls


def _is_os(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "os"
