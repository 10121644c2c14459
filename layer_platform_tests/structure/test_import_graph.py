"""The package's shape: no import cycle between its modules, and no module too long to read.

The graph is built from the source (``ast``), not by importing: every ``import`` counts, also
inside functions (an import moved into a function to dodge a cycle still is one); imports
under ``if TYPE_CHECKING:`` do not run and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import layer_platform

ROOT = Path(layer_platform.__file__).parent
PACKAGE = "layer_platform"
MAX_LINES = 400
MAX_ASSET_LINES = 300


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, skipping ``if TYPE_CHECKING:`` bodies."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports (a submodule named by ``from`` counts)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in _imports(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                target = _resolve(name, path, node)
                targets = [target]
                targets += [f"{target}.{alias.name}" for alias in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_finder_sees_a_cycle_through_a_function_local_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    local = ast.parse("def f():\n    from layer_platform.defs import sensors\n")
    assert [n.module for n in _imports(local)] == ["layer_platform.defs"]


def test_no_import_cycle_in_layer_platform():
    graph = import_graph()
    assert "layer_platform.defs.definitions" in graph["layer_platform.orchestration.pipeline"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_no_module_is_too_long():
    lengths = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert {n: k for n, k in lengths.items() if k > MAX_LINES} == {}
    assets = ROOT / "defs" / "assets"
    too_long = {
        path.name: k
        for path in assets.glob("*.py")
        if (k := len(path.read_text().splitlines())) > MAX_ASSET_LINES
    }
    assert too_long == {}


#: Where Dagster may be imported: the wiring, the code that drives it, the loading entry point.
DAGSTER_ALLOWED = (
    "layer_platform.defs",
    "layer_platform.orchestration",
    "layer_platform.definitions",
)


def test_domain_packages_never_import_dagster():
    """Imaging, io, models, attribution, statistics, tracking, warehouse ... stay plain Python."""
    offenders = []
    for name, path in _modules().items():
        if name.startswith(DAGSTER_ALLOWED):
            continue
        for node in _imports(ast.parse(path.read_text(), filename=str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            if any(n and (n == "dagster" or n.startswith(("dagster.", "dagster_"))) for n in names):
                offenders.append(name)
    assert offenders == []
