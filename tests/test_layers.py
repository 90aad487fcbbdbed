"""The import layers (README, Layout): no module imports a layer above its own, and the packages'
import graph has no cycle. Imports are read with ``ast`` (every import statement, including those
inside functions and ``TYPE_CHECKING`` blocks: a deferred import is still a dependency)."""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "medloom"

LAYERS: dict[str, int] = {
    "core": 0,
    "llm": 1,
    "testing": 1,  # the fake OpenAI-compatible server for tests
    "kg": 2,
    "data": 2,
    "agents": 3,
    "verifiers": 3,
    "nodes": 4,
    "ops": 4,
    "graphs": 5,
    "runs": 6,
    "eval": 6,
    "scale": 6,  # sharded runs on Ray: the runs package's engine in shard actors
    "cli": 7,
    "tui": 7,
}
"""Bottom first: a package may import packages of a lower number (and of its own number, as long as
the package graph stays acyclic)."""

ONLY_IMPORTS: dict[str, set[str]] = {"serving": {"core"}}
"""Packages outside the ladder and the only packages they may import."""


def _package_of(module: str) -> str | None:
    """The layer package of ``medloom.X.…`` (None for the root package, the public API)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "medloom" else None


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def imports_by_module() -> dict[str, set[str]]:
    """Every medloom module → the medloom modules it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                targets.add(source)
                targets.update(f"{source}.{alias.name}" for alias in node.names)
        found[name] = {t for t in targets if t.startswith("medloom")}
    # ``from medloom.x import name``: the module medloom.x.name if there is one, else medloom.x.
    return {
        name: {t if t in found else t.rsplit(".", 1)[0] for t in targets} for name, targets in found.items()
    }


def layer_violations(imports: dict[str, set[str]] | None = None) -> set[tuple[str, str]]:
    """(module, imported package) pairs that break the layer rules."""
    bad: set[tuple[str, str]] = set()
    for module, targets in (imports_by_module() if imports is None else imports).items():
        own = _package_of(module)
        if own is None:
            continue  # medloom/__init__.py: the public API re-exports from every layer
        for target in targets:
            other = _package_of(target)
            if other is None or other == own:
                continue
            if own in ONLY_IMPORTS:
                allowed = other in ONLY_IMPORTS[own]
            elif other in ONLY_IMPORTS:
                allowed = True  # anyone may use serving (it sits beside the ladder)
            else:
                assert own in LAYERS, f"{module}: package '{own}' has no layer in tests/test_layers.py"
                assert other in LAYERS, f"{target}: package '{other}' has no layer in tests/test_layers.py"
                allowed = LAYERS[other] <= LAYERS[own]
            if not allowed:
                bad.add((module, other))
    return bad


def package_graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    for module, targets in imports_by_module().items():
        own = _package_of(module)
        for target in targets:
            other = _package_of(target)
            if own and other and other != own:
                graph.add_edge(own, other)
    return graph


def test_no_module_imports_a_layer_above_its_own() -> None:
    bad = layer_violations()
    listing = "\n".join(f"  {module} imports medloom.{package}" for module, package in sorted(bad))
    assert not bad, (
        f"upward imports (see the layer table in README.md, Layout):\n{listing}\n"
        "move the shared code down a layer (often into medloom/core) instead of importing upwards"
    )


def test_package_import_graph_has_no_cycle() -> None:
    graph = package_graph()
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, "package import cycles: " + "; ".join(" → ".join([*c, c[0]]) for c in cycles)


def test_no_module_import_cycle_inside_a_package() -> None:
    by_package: dict[str, nx.DiGraph] = defaultdict(nx.DiGraph)
    for module, targets in imports_by_module().items():
        own = _package_of(module)
        for target in targets:
            if target in imports_by_module() and _package_of(target) == own and target != module:
                parent = module.rsplit(".", 1)[0]
                if target == parent:
                    continue  # a submodule importing its own package's __init__ is not a cycle
                by_package[own or "medloom"].add_edge(module, target)
    cycles = [c for g in by_package.values() for c in nx.simple_cycles(g)]
    assert not cycles, "module import cycles: " + "; ".join(" → ".join([*c, c[0]]) for c in cycles)


@pytest.mark.parametrize(
    ("module", "target", "upward"),
    [
        ("medloom.kg.model", "medloom.verifiers.match", True),
        ("medloom.core.events", "medloom.llm.client", True),
        ("medloom.serving.vllm_server", "medloom.llm.client", True),
        ("medloom.serving.vllm_server", "medloom.core.errors", False),
        ("medloom.runs.card", "medloom.kg.store", False),
    ],
)
def test_the_rules_themselves(module: str, target: str, upward: bool) -> None:
    assert ((module, _package_of(target)) in layer_violations({module: {target}})) is upward
