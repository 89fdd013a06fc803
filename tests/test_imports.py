"""The package's import graph: no circle, and every import points down (nothing below the CLI imports it)."""

import ast
from pathlib import Path

import lenet

PACKAGE = Path(lenet.__file__).parent


def _module_imports() -> dict[str, set[str]]:
    """Each module of lenet -> the lenet modules it imports at module level (imports inside functions,
    which the CLI uses to start fast, run later and cannot make a circle at import time)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        imported = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                imported |= {f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def test_the_import_graph_has_no_circle():
    graph, state, circles = _module_imports(), {}, []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                circles.append(path[path.index(imported):] + [imported])
            elif imported not in state:
                visit(imported, path + [imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert len(graph) > 30 and circles == []


def test_nothing_below_the_command_line_imports_it():
    graph = _module_imports()
    above = ("lenet.cli", "lenet.__main__", "lenet.testing")  # the command line, and what tests and benchmarks share
    below = {m: imported for m, imported in graph.items() if not m.startswith(above)}
    assert below and all(not i.startswith(("lenet.cli", "lenet.testing")) for imported in below.values() for i in imported)
