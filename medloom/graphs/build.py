"""Build a networkx graph from a spec and check it before anything runs.

The checks are generic: each node's kind (``medloom.nodes``) checks its own references and
says whether it may start a graph, sit in a loop, or bound one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from medloom.agents.templates import TemplateLibrary
from medloom.core.errors import GraphError
from medloom.core.registry import REGISTRY
from medloom.graphs.conditions import Condition
from medloom.graphs.spec import GraphSpec
from medloom.graphs.template_check import check_template_variables
from medloom.nodes.kind import NodeBuild, NodeKind, node_kind

Route = tuple[str, tuple[Condition, ...]]


@dataclass
class CompiledGraph:
    """A checked graph: its nodes in execution order, grouped into loops (components)."""

    spec: GraphSpec
    graph: nx.DiGraph
    entries: list[str]
    components: list[list[str]]
    sinks: set[str]
    routes: dict[str, list[Route]] = field(default_factory=dict)
    """Per node, its out-edges in order with their parsed conditions."""
    max_visits: int = 100
    """How often one item may enter one node (a runtime guard against a loop that never ends)."""


def template_library(spec: GraphSpec, base_dir: Path | None) -> TemplateLibrary:
    paths: list[str | Path] = []
    if spec.templates_dir:
        directory = Path(spec.templates_dir)
        if not directory.is_absolute() and base_dir is not None:
            directory = base_dir / directory
        paths.append(directory)
    if base_dir is not None and (base_dir / "templates").is_dir():
        paths.append(base_dir / "templates")
    return TemplateLibrary(paths)


def kinds_of(spec: GraphSpec) -> dict[str, NodeKind[Any]]:
    return {name: node_kind(node.type) for name, node in spec.nodes.items()}


def visit_bound(spec: GraphSpec, kinds: dict[str, NodeKind[Any]]) -> int:
    """The most times an item may enter one node: ``run.max_node_visits``, or enough for every
    bounded loop to run all its rounds, twice over."""
    if spec.run.max_node_visits is not None:
        return spec.run.max_node_visits
    rounds = sum(kind.loop_bound(spec.nodes[name]) for name, kind in kinds.items())
    return 8 + 2 * rounds


def build_graph(
    spec: GraphSpec, *, file: str | Path | None = None, templates: TemplateLibrary | None = None
) -> CompiledGraph:
    """Check ``spec`` (unknown names, unbounded cycles, unreachable nodes, template variables)
    and order its nodes."""
    templates = templates or TemplateLibrary()

    def fail(message: str, key: str) -> GraphError:
        return GraphError(message, file=file, key=key)

    graph = nx.DiGraph()
    for name, node in spec.nodes.items():
        graph.add_node(name, spec=node)
    routes: dict[str, list[Route]] = {name: [] for name in spec.nodes}
    for i, edge in enumerate(spec.edges):
        for end, label in ((edge.source, "from"), (edge.target, "to")):
            if end not in spec.nodes:
                raise fail(f"unknown node '{end}' (nodes: {', '.join(spec.nodes)})", f"edges.{i}.{label}")
        if graph.has_edge(edge.source, edge.target):
            graph.edges[edge.source, edge.target]["conditions"].append(edge.condition)
        else:
            graph.add_edge(edge.source, edge.target, conditions=[edge.condition])
    for source in spec.nodes:
        routes[source] = [(t, tuple(graph.edges[source, t]["conditions"])) for t in graph.successors(source)]

    _check_endpoints(spec, fail)
    kinds = kinds_of(spec)
    base_dir = Path(file).resolve().parent if file else None
    for name, kind in kinds.items():
        build = NodeBuild(node=name, graph=spec, templates=templates, models={}, file=file, base_dir=base_dir)
        kind.check(spec.nodes[name], build)
    check_template_variables(spec, kinds, templates, file)

    entries = [n for n in graph.nodes if graph.in_degree(n) == 0]
    if not entries:
        raise fail("no entry node: every node has an incoming edge; start with a generator", "edges")
    for name in entries:
        if not kinds[name].can_start:
            starters = sorted(t for t, k in _all_kinds().items() if k.can_start)
            raise fail(
                f"node '{name}' has no incoming edge, so it would never receive traces; "
                f"only {' and '.join(_plural(t) for t in starters)} can start a graph (add an edge into it)",
                f"nodes.{name}",
            )
    for name, kind in kinds.items():
        problem = kind.placement(name, spec.nodes[name], [spec.nodes[p] for p in graph.predecessors(name)])
        if problem:
            raise fail(problem, f"nodes.{name}")

    reachable: set[str] = set()
    for entry in entries:
        reachable |= nx.descendants(graph, entry) | {entry}
    unreachable = [n for n in graph.nodes if n not in reachable]
    if unreachable:
        raise fail(
            f"node '{unreachable[0]}' is unreachable from the entry nodes {entries}",
            f"nodes.{unreachable[0]}",
        )

    _check_loops_are_bounded(graph, kinds, fail)
    condensed = nx.condensation(graph)
    components: list[list[str]] = []
    for cid in nx.topological_sort(condensed):
        members: set[str] = condensed.nodes[cid]["members"]
        if len(members) > 1 or any(graph.has_edge(n, n) for n in members):
            cycle = " → ".join(sorted(members))
            for n in sorted(members):
                if not kinds[n].in_loops:
                    raise fail(f"{kinds[n].tag} '{n}' cannot sit inside the loop {cycle}", f"nodes.{n}")
        components.append(_order_component(graph, members))

    sinks = {n for n in graph.nodes if graph.out_degree(n) == 0}
    if not sinks:
        raise fail("the graph has no final node (every node has an outgoing edge)", "edges")
    return CompiledGraph(
        spec=spec,
        graph=graph,
        entries=entries,
        components=components,
        sinks=sinks,
        routes=routes,
        max_visits=visit_bound(spec, kinds),
    )


def _check_loops_are_bounded(graph: nx.DiGraph, kinds: dict[str, NodeKind[Any]], fail: Any) -> None:
    """Every cycle must pass through a node that bounds loops (a refiner's ``max_rounds``):
    the graph without those nodes has no cycle."""
    free = graph.subgraph(n for n in graph.nodes if not kinds[n].bounds_loops)
    for members in nx.strongly_connected_components(free):
        if len(members) > 1 or any(free.has_edge(n, n) for n in members):
            cycle = " → ".join(sorted(members))
            bounders = sorted(t for t, k in _all_kinds().items() if k.bounds_loops)
            raise fail(
                f"unbounded cycle through {cycle}: every loop must pass through a "
                f"{' or '.join(bounders)} (its max_rounds bounds the loop)",
                "edges",
            )


def _all_kinds() -> dict[str, NodeKind[Any]]:
    return REGISTRY.all("node")


def _plural(word: str) -> str:
    return f"{word}s"


def _order_component(graph: nx.DiGraph, members: set[str]) -> list[str]:
    """Members in the order traces reach them: from where the loop is entered, depth first."""
    if len(members) == 1:
        return list(members)
    sub = graph.subgraph(members)
    starts = sorted(n for n in members if any(p not in members for p in graph.predecessors(n)))
    order: list[str] = []
    for start in starts or sorted(members):
        for n in nx.dfs_preorder_nodes(sub, start):
            if n not in order:
                order.append(n)
    return order


def _check_endpoints(spec: GraphSpec, fail: Any) -> None:
    endpoint_names = {e.name for e in spec.endpoints if e.name}
    for alias, model in spec.models.items():
        for ep in model.endpoints or []:
            if spec.endpoints and ep not in endpoint_names:
                raise fail(
                    f"unknown endpoint '{ep}' (endpoints: {sorted(endpoint_names)})",
                    f"models.{alias}.endpoints",
                )
