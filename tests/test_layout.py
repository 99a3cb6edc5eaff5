"""The package's layout: no import cycles, package `__init__` files that import nothing, and
import chains no deeper than before the stage folders (docs/architecture.md).

The graph is read from the source (AST), so it sees what a run may never reach. Cycles count every
import: module level, under TYPE_CHECKING, and lazy ones inside functions. A lazy import is how a
hot path stays fast (`pinner check` never loads typer), not a way around the layering: a module
that imports another lazily still depends on it, and a cycle through one is a cycle.
Depth ("levels") counts the imports that run when a module is imported (module level, outside
TYPE_CHECKING): that is what each `import` costs, and the number the layout must not raise. The
depth over every import is printed beside it (`pytest -s`), with its longest chain.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pinner"
# import-time depth of the flat package (pinner.plan -> diagnose -> fit -> builds -> knowledge
# -> fingerprint -> safe); the stage folders keep it
LEVELS_BEFORE = 7


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _import_nodes(tree: ast.Module, *, runtime_only: bool) -> list[ast.Import | ast.ImportFrom]:
    if not runtime_only:
        return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(stmts: list[ast.stmt]) -> None:
        for node in stmts:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(node)
            elif isinstance(node, ast.If):
                if ast.unparse(node.test) not in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(tree.body)
    return found


@cache
def _graph(*, runtime_only: bool) -> dict[str, frozenset[str]]:
    """pinner module -> the pinner modules it imports (`from pinner.x import y` names module
    pinner.x.y when that is a module, else pinner.x)."""
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        deps: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _import_nodes(tree, runtime_only=runtime_only):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in mods else node.module)
            elif node.level:  # relative: resolve against this module's package
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    deps.add(sub if sub in mods else module)
        graph[name] = frozenset(d for d in deps if d in mods and d != name)
    return graph


def _cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, deps = work[-1]
            for dep in deps:
                if dep not in index:
                    index[dep] = low[dep] = len(index)
                    stack.append(dep)
                    on_stack.add(dep)
                    work.append((dep, iter(sorted(graph[dep]))))
                    break
                if dep in on_stack:
                    low[node] = min(low[node], index[dep])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _depth(graph: dict[str, frozenset[str]]) -> tuple[int, list[str]]:
    """(levels, the longest chain) of an acyclic graph: a module that imports no pinner module
    is level 1."""
    level: dict[str, int] = {}

    def of(name: str) -> int:
        if name not in level:
            level[name] = 1 + max((of(d) for d in graph[name]), default=0)
        return level[name]

    top = max(graph, key=of)
    chain = [top]
    while graph[chain[-1]]:
        chain.append(max(graph[chain[-1]], key=of))
    return level[top], chain


def test_no_import_cycles() -> None:
    cycles = _cycles(_graph(runtime_only=False))
    assert not cycles, "import cycles (lazy and TYPE_CHECKING imports count): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_package_init_files_import_nothing() -> None:
    # Importing pinner.lock.check must not load the rest of the lock stage: a package's
    # __init__.py opens with a docstring of what the stage takes and gives, and imports nothing
    # (`from __future__` aside). pinner/__init__.py holds the version only.
    offenders = []
    for init in sorted(PACKAGE.rglob("__init__.py")):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        rel = str(init.relative_to(PACKAGE.parent))
        if ast.get_docstring(tree) is None:
            offenders.append(f"{rel}: no docstring")
        code = [
            node
            for node in tree.body[1:]
            if not (isinstance(node, ast.ImportFrom) and node.module == "__future__")
            and not isinstance(node, (ast.Assign, ast.AnnAssign))
        ]
        if code:
            first = ast.unparse(code[0]).splitlines()[0]
            offenders.append(f"{rel}: {len(code)} statements, from line {code[0].lineno}: {first}")
    assert not offenders, "package __init__ files hold code:\n" + "\n".join(offenders)


def test_import_depth_is_not_raised() -> None:
    levels, chain = _depth(_graph(runtime_only=True))
    graph = _graph(runtime_only=False)
    if not _cycles(graph):
        every, every_chain = _depth(graph)
        print(f"import levels, every import counted: {every}: {' -> '.join(every_chain)}")
    print(f"import levels at import time: {levels}: {' -> '.join(chain)}")
    assert levels <= LEVELS_BEFORE, " -> ".join(chain)


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    # The checks above are only as good as the graph: a function-level import and a
    # TYPE_CHECKING one are edges of the full graph and not of the import-time one.
    every, runtime = _graph(runtime_only=False), _graph(runtime_only=True)
    assert set(every) == set(runtime)
    assert all(runtime[m] <= every[m] for m in every)
    lazy = every["pinner.cli"] - runtime["pinner.cli"]
    assert lazy, "cli imports the typer commands lazily: an edge of the full graph only"
    assert "pinner.errors" in runtime["pinner.cli"]
