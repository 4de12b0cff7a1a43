"""The import graph of the ``ragprune`` package, read from its source with ``ast``, has no cycle.

What counts as an edge
----------------------
Every ``import`` and ``from ... import`` statement in a module counts, at module level and inside functions
(a lazy import is still a dependency: calling that function loads the other module), except those under
``if TYPE_CHECKING:`` (never run; their ``else:`` branch counts). Relative imports are resolved against the
module's package. ``import a.b.c`` (and ``from a.b import c``) is an edge to ``a.b.c`` if that is a module
or package of ``ragprune``, else to ``a.b`` (``c`` is then a name defined in ``a.b``). Imports of other
distributions are ignored. Imports whose module name is computed at run time
(``importlib.import_module(table[name])``) cannot be read from the source and are not seen.

Packages along the way
----------------------
Importing ``ragprune.x.y`` first runs ``ragprune/x/__init__.py``, so that import also implies an edge to
the package ``ragprune.x``. Taken naively, this turns every lazy re-export into a cycle: ``ragprune.x``'s
``__getattr__`` lazily imports ``ragprune.x.y`` for its callers, ``ragprune.x.y`` imports a sibling
``ragprune.x.z`` by its absolute name, and ``ragprune.x.y -> ragprune.x -> ragprune.x.y`` closes, although
nothing ever loads in a circle. The rule used here follows what Python actually runs:

* The implied edge reaches the package's ``__init__`` **body** only: its module-level imports. Reaching
  ``ragprune.x`` on the way to ``ragprune.x.y`` executes the ``__init__`` body; it does not call
  ``ragprune.x``'s functions (its ``__getattr__`` runs only for a caller that asks ``ragprune.x`` for a
  name). In the printed cycles that node is written ``ragprune.x (__init__ body)``.
* An explicit import of the package itself (``import ragprune.x``, ``from ragprune.x import Name``) uses
  its names, so it reaches everything the package loads, lazily or not.
* No implied edge from a module to its own enclosing packages: they have been initialised (or are being
  initialised) before the module's body starts, so importing a sibling by its absolute name runs nothing
  new. An explicit ``from ragprune.x import Name`` inside ``ragprune.x.y`` is still an edge to ``ragprune.x``.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "ragprune"
INIT_BODY = " (__init__ body)"


@dataclass(frozen=True)
class Edge:
    target: str  # a module name, or "<package> (__init__ body)"
    path: Path
    lineno: int
    statement: str
    lazy: bool
    implied: bool = False  # the package ``__init__`` that importing a submodule runs first


def _module_names() -> dict[str, Path]:
    """Every module and package of ragprune (by dotted name) and its source file."""
    modules: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Each import statement that can run, and whether it sits inside a function (lazy)."""
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append((node, lazy))
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, lazy)
            return
        inner = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return found


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _targets(node: ast.Import | ast.ImportFrom, name: str, path: Path, modules: dict[str, Path]) -> list[str]:
    """The ragprune modules a statement imports (before the packages along the way)."""
    if isinstance(node, ast.Import):
        wanted = [alias.name for alias in node.names]
    else:
        if node.level:
            parts = _package_of(name, path).split(".")
            base = ".".join(parts[: len(parts) - (node.level - 1)])
            base = f"{base}.{node.module}" if node.module else base
        else:
            base = node.module or ""
        wanted = [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"] or [base]
    targets = []
    for dotted in wanted:
        while dotted and dotted not in modules:  # a name defined in a module: the edge goes to the module
            dotted = dotted.rpartition(".")[0]
        if dotted:
            targets.append(dotted)
    return targets


def _graph() -> dict[str, list[Edge]]:
    """Edges out of each module, and out of each package's ``__init__`` body (see the module docstring)."""
    modules = _module_names()
    graph: dict[str, list[Edge]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        source = path.read_text(encoding="utf-8").splitlines()
        # The packages initialised before this module's body runs: its parents, and itself for a package.
        enclosing = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        if path.name == "__init__.py":
            enclosing.add(name)
        edges: list[Edge] = []
        for node, lazy in _imports(tree):
            statement = source[node.lineno - 1].strip()
            for target in _targets(node, name, path, modules):
                edges.append(Edge(target, path, node.lineno, statement, lazy))
                parts = target.split(".")
                for i in range(1, len(parts)):
                    package = ".".join(parts[:i])
                    if package not in enclosing:
                        edges.append(Edge(package + INIT_BODY, path, node.lineno, statement, lazy, True))
        graph[name] = [edge for edge in edges if edge.target != name]
        if path.name == "__init__.py":
            graph[name + INIT_BODY] = [edge for edge in graph[name] if not edge.lazy]
    return graph


def _shortest_cycle(graph: dict[str, list[Edge]], start: str, allowed: set[str]) -> list[Edge]:
    """A shortest cycle through ``start`` within ``allowed`` (breadth-first), as its edges in order."""
    came_from: dict[str, tuple[str, Edge]] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for edge in graph[node]:
            if edge.target == start:
                cycle = [edge]
                while node != start:
                    node, previous = came_from[node]
                    cycle.append(previous)
                return cycle[::-1]
            if edge.target in allowed and edge.target not in came_from and edge.target != start:
                came_from[edge.target] = (node, edge)
                queue.append(edge.target)
    return []


def _strongly_connected(graph: dict[str, list[Edge]]) -> list[set[str]]:
    """Tarjan's strongly connected components that hold a cycle (more than one node)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for edge in edges:
                target = edge.target
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(graph[target])))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(component)
    return components


def _describe(graph: dict[str, list[Edge]], components: list[set[str]]) -> str:
    lines = []
    for component in sorted(components, key=sorted):
        lines.append(f"cycle among {len(component)} modules: {', '.join(sorted(component))}")
        shown: set[tuple[str, ...]] = set()
        for start in sorted(component):
            cycle = _shortest_cycle(graph, start, component)
            nodes = tuple(sorted(edge.target for edge in cycle))
            if not cycle or nodes in shown:
                continue
            shown.add(nodes)
            lines.append(f"  {start}")
            for edge in cycle:
                where = f"{edge.path.relative_to(ROOT.parent)}:{edge.lineno}"
                lines.append(f"    -> {edge.target}    [{where}, {_kind(edge)}: {edge.statement}]")
        lines.append("  every edge inside it:")
        for source in sorted(component):
            listed = set()
            for edge in graph[source]:
                where = f"{edge.path.relative_to(ROOT.parent)}:{edge.lineno}"
                if edge.target in component and (edge.target, where) not in listed:
                    listed.add((edge.target, where))
                    lines.append(f"    {source} -> {edge.target}    [{where}, {_kind(edge)}]")
    return "\n".join(lines)


def _kind(edge: Edge) -> str:
    kind = "lazy" if edge.lazy else "module level"
    return f"{kind}, runs the package's __init__" if edge.implied else kind


def test_graph_sees_the_package() -> None:
    graph = _graph()
    assert "ragprune" in graph and "ragprune (__init__ body)" in graph
    assert "ragprune.types" in {edge.target for edge in graph["ragprune"]}
    # process.py imports its siblings by absolute name: no implied edge back to its own package.
    assert "ragprune.pipeline (__init__ body)" not in {e.target for e in graph["ragprune.pipeline.process"]}


def test_no_import_cycle() -> None:
    graph = _graph()
    components = _strongly_connected(graph)
    assert not components, "import cycles in ragprune:\n" + _describe(graph, components)
