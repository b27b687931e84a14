"""The package's modules import each other in one direction only: no import circle, counting
every import statement (module level, inside functions, under ``TYPE_CHECKING``), since a
lazy import or a type-only one is still an arrow from one module to another (issue 16)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_servebench

PACKAGE = Path(pytest_servebench.__file__).parent

# Circles known and accepted for now, each named by its modules. Empty: keep it so. A circle
# inside a part of the package this test cannot have fixed (a backend, the functions platform)
# would be listed here with the reason, never silently skipped.
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()


def _modules(root: Path, package: str) -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, from every import statement in its source
    (``from . import x`` points at the submodule ``x`` when there is one)."""
    modules = _modules(root, package)
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        here = name if is_package else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    if sub in modules:
                        targets.add(sub)
                    elif source in modules:
                        targets.add(source)
        targets.discard(name)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected group of modules, as a path that ends where it
    starts (Tarjan's algorithm, then a walk around the group)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_circle(graph, group) for group in groups]


def _circle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    # A shortest way back to the start inside the group (breadth first).
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & group):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no circle through {start}")  # pragma: no cover - a group has one


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE, "pytest_servebench")
    assert "pytest_servebench.result" in graph and "pytest_servebench.backends.local" in graph
    found = [c for c in cycles(graph) if frozenset(c) not in KNOWN_CYCLES]
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_known_cycles_are_still_cycles() -> None:
    groups = {frozenset(c) for c in cycles(import_graph(PACKAGE, "pytest_servebench"))}
    assert groups >= KNOWN_CYCLES, "a known cycle is gone: take it off KNOWN_CYCLES"


def test_lower_layers_do_not_import_the_higher_ones() -> None:
    graph = import_graph(PACKAGE, "pytest_servebench")
    # The vocabulary and the judging of one result know nothing of history or sessions.
    for low in ("metrics", "stats", "records", "slo", "cost", "result"):
        reach = _reachable(graph, f"pytest_servebench.{low}")
        high = {m for m in reach if m.rpartition(".")[2] in
                ("history", "compare", "report", "session", "plugin", "cli")}
        assert not high, f"{low} reaches {sorted(high)}"


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        v = todo.pop()
        for w in graph.get(v, ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def test_a_cycle_through_a_lazy_or_type_only_import_is_found(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import thing\n")
    (pkg / "b.py").write_text("def f():\n    from .sub import c\n")
    (pkg / "sub" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import a\n")
    (pkg / "d.py").write_text("import pkg.a\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.d"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]]


def _imported_roots(path: Path) -> set[str]:
    """Top-level packages a module imports, counting lazy and type-only imports."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_plugin_never_imports_the_studies_models() -> None:
    """The plugin is target-agnostic: what it deploys comes from a model provider
    (``pytest_servebench.provider``), never from importing ``targets`` (issue 16, part 4)."""
    offenders = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                       if "targets" in _imported_roots(path))
    assert offenders == []


def test_the_check_sees_a_lazy_import_of_targets(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from targets.registry import get\n    return get\n")
    assert "targets" in _imported_roots(module)
