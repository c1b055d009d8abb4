"""The import graph of the package, TYPE_CHECKING and function-local imports included:
no cycles, and the loop does not know `Agent`. (`lint-imports` in CI checks the layers.)"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

import agentkit


def _graph() -> dict[str, set[str]]:
    graph = grimp.build_graph("agentkit", exclude_type_checking_imports=False)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in edges[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def test_the_import_graph_has_no_cycles() -> None:
    edges = _graph()
    assert len(edges) > 30
    assert _cycles(edges) == []


def test_nothing_below_agent_imports_it() -> None:
    top = (
        "agentkit._agent",
        "agentkit.serve",
        "agentkit.mcp",
        "agentkit.testing",
        "agentkit.sessions",
        "agentkit.durable",
        "agentkit.otel",
        "agentkit.ratelimit",
        "agentkit.cli",
    )
    edges = _graph()
    importers = {m for m, imported in edges.items() if "agentkit._agent" in imported}
    assert {m for m in importers if not m.startswith(top) and m != "agentkit"} == set()


def test_the_loop_does_not_refer_to_agent() -> None:
    source = (Path(agentkit.__file__).parent / "_run" / "loop.py").read_text()
    names = {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}
    assert "Agent" not in names
