"""Build a networkx graph from a spec and check it before anything runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

from medloom.agents.templates import TemplateLibrary
from medloom.core.errors import GraphError
from medloom.graphs.spec import (
    GeneratorNode,
    GraphSpec,
    JudgeSpec,
    RefinerNode,
    SelectorNode,
    StepNode,
    VerifierNode,
)
from medloom.nodes.step import OpBuild, registered_ops
from medloom.verifiers import CHECKS


@dataclass
class CompiledGraph:
    """A checked graph: its nodes in execution order, grouped into loops (components)."""

    spec: GraphSpec
    graph: nx.DiGraph
    entries: list[str]
    components: list[list[str]]
    sinks: set[str]


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


def build_graph(
    spec: GraphSpec, *, file: str | Path | None = None, templates: TemplateLibrary | None = None
) -> CompiledGraph:
    """Check ``spec`` (unknown names, unbounded cycles, unreachable nodes) and order its nodes."""
    templates = templates or TemplateLibrary()

    def fail(message: str, key: str) -> GraphError:
        return GraphError(message, file=file, key=key)

    graph = nx.DiGraph()
    for name, node in spec.nodes.items():
        graph.add_node(name, spec=node)
    for i, edge in enumerate(spec.edges):
        for end, label in ((edge.source, "from"), (edge.target, "to")):
            if end not in spec.nodes:
                raise fail(f"unknown node '{end}' (nodes: {', '.join(spec.nodes)})", f"edges.{i}.{label}")
        if graph.has_edge(edge.source, edge.target):
            graph.edges[edge.source, edge.target]["conditions"].append(edge.when)
        else:
            graph.add_edge(edge.source, edge.target, conditions=[edge.when])

    _check_models_and_templates(spec, templates, fail)
    _check_steps(spec, templates, file, fail)

    entries = [n for n in graph.nodes if graph.in_degree(n) == 0]
    if not entries:
        raise fail("no entry node: every node has an incoming edge; start with a generator", "edges")
    for name in entries:
        if not isinstance(spec.nodes[name], GeneratorNode | StepNode):
            raise fail(
                f"node '{name}' has no incoming edge, so it would never receive traces; "
                "only generators and steps can start a graph (add an edge into it)",
                f"nodes.{name}",
            )
    for name, node in spec.nodes.items():
        if isinstance(node, RefinerNode):
            preds = list(graph.predecessors(name))
            if not any(isinstance(spec.nodes[p], VerifierNode) for p in preds):
                raise fail(
                    f"refiner '{name}' must follow a verifier (it repairs what a verdict flagged)",
                    f"nodes.{name}",
                )

    reachable: set[str] = set()
    for entry in entries:
        reachable |= nx.descendants(graph, entry) | {entry}
    unreachable = [n for n in graph.nodes if n not in reachable]
    if unreachable:
        raise fail(
            f"node '{unreachable[0]}' is unreachable from the entry nodes {entries}",
            f"nodes.{unreachable[0]}",
        )

    condensed = nx.condensation(graph)
    components: list[list[str]] = []
    for cid in nx.topological_sort(condensed):
        members: set[str] = condensed.nodes[cid]["members"]
        is_loop = len(members) > 1 or any(graph.has_edge(n, n) for n in members)
        if is_loop:
            cycle = " → ".join(sorted(members))
            if not any(isinstance(spec.nodes[n], RefinerNode) for n in members):
                raise fail(
                    f"unbounded cycle through {cycle}: a loop must contain a refiner "
                    "(its max_rounds bounds the loop)",
                    "edges",
                )
            inside = [n for n in members if isinstance(spec.nodes[n], SelectorNode | GeneratorNode)]
            if inside:
                kind = "selector" if isinstance(spec.nodes[inside[0]], SelectorNode) else "generator"
                raise fail(
                    f"{kind} '{inside[0]}' cannot sit inside the loop {cycle}",
                    f"nodes.{inside[0]}",
                )
        components.append(_order_component(graph, members))

    sinks = {n for n in graph.nodes if graph.out_degree(n) == 0}
    if not sinks:
        raise fail("the graph has no final node (every node has an outgoing edge)", "edges")
    return CompiledGraph(spec=spec, graph=graph, entries=entries, components=components, sinks=sinks)


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


def _check_models_and_templates(
    spec: GraphSpec, templates: TemplateLibrary, fail: Callable[[str, str], GraphError]
) -> None:
    endpoint_names = {e.name for e in spec.endpoints if e.name}
    for alias, model in spec.models.items():
        for ep in model.endpoints or []:
            if spec.endpoints and ep not in endpoint_names:
                raise fail(
                    f"unknown endpoint '{ep}' (endpoints: {sorted(endpoint_names)})",
                    f"models.{alias}.endpoints",
                )

    def need_model(alias: str, key: str) -> str:
        if alias not in spec.models:
            raise fail(f"unknown model '{alias}' (models: {', '.join(spec.models)})", key)
        return spec.models[alias].mode

    def need_template(name: str, mode: str, key: str) -> None:
        if not templates.has(name, mode):  # type: ignore[arg-type]
            available = ", ".join(templates.available())
            raise fail(
                f"prompt template '{name}.{mode}.j2' not found (available: {available})",
                key,
            )

    for name, node in spec.nodes.items():
        if isinstance(node, GeneratorNode):
            for i, alias in enumerate(node.models):
                mode = need_model(alias, f"nodes.{name}.models.{i}")
                need_template(node.template, mode, f"nodes.{name}.template")
        elif isinstance(node, RefinerNode):
            mode = need_model(node.model, f"nodes.{name}.model")
            need_template(node.template, mode, f"nodes.{name}.template")
        elif isinstance(node, VerifierNode):
            for i, v in enumerate(node.verifiers):
                if isinstance(v, JudgeSpec):
                    mode = need_model(v.judge, f"nodes.{name}.verifiers.{i}.judge")
                    need_template(v.template, mode, f"nodes.{name}.verifiers.{i}.template")
                elif v.check not in CHECKS:
                    raise fail(
                        f"unknown check '{v.check}' (checks: {', '.join(sorted(CHECKS))})",
                        f"nodes.{name}.verifiers.{i}.check",
                    )
                else:
                    try:
                        CHECKS[v.check].from_params(v.params, spec)
                    except TypeError as exc:
                        raise fail(
                            f"bad parameters for check '{v.check}': {exc}",
                            f"nodes.{name}.verifiers.{i}.params",
                        ) from None


def _check_steps(
    spec: GraphSpec,
    templates: TemplateLibrary,
    file: str | Path | None,
    fail: Callable[[str, str], GraphError],
) -> None:
    """Each step's op exists and accepts its params, models and templates (built unbound)."""
    ops = registered_ops()
    for name, node in spec.nodes.items():
        if not isinstance(node, StepNode):
            continue
        if node.op not in ops:
            raise fail(f"unknown op '{node.op}' (ops: {', '.join(sorted(ops))})", f"nodes.{name}.op")
        for i, alias in enumerate(node.models or []):
            if alias not in spec.models:
                raise fail(
                    f"unknown model '{alias}' (models: {', '.join(spec.models)})", f"nodes.{name}.models.{i}"
                )
        base_dir = Path(file).resolve().parent if file else None
        ops[node.op](
            OpBuild(
                node=name, spec=node, graph=spec, templates=templates, models={}, file=file, base_dir=base_dir
            )
        )
