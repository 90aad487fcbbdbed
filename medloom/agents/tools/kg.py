"""Knowledge-graph tools over the recipe's ``resources.kg`` (tool set ``kg``): find an entity,
its neighbours (by relation and type), the relations between two entities, shortest paths.

Entities are named as the agent would name them; every answer names entities back by name and
type, so an agent never handles node numbers.
"""

from __future__ import annotations

from typing import Any

from medloom.agents.tools.base import Tool, ToolEnv, register_toolset, tool
from medloom.kg.paths import Hop
from medloom.kg.samplers import shortest_paths
from medloom.kg.store import LoadedKG


class EntityNotFound(ValueError):
    """No entity matches a name (the message suggests close names)."""


def _node(kg: LoadedKG, name: str) -> int:
    matches = kg.index.fuzzy(name, limit=1, min_score=85.0)
    if matches:
        return matches[0].node
    close = kg.index.fuzzy(name, limit=5, min_score=60.0)
    hint = f"; close names: {', '.join(kg.kg.names[m.node] for m in close)}" if close else ""
    raise EntityNotFound(f"no entity named '{name}'{hint} (try find_entity)")


def _label(kg: LoadedKG, node: int) -> str:
    return f"{kg.kg.names[node]} ({kg.kg.type_of(node)})"


def kg_tools(loaded: LoadedKG, *, limit: int = 25) -> list[Tool]:
    """The KG tools bound to one loaded graph (``limit``: most results an answer lists)."""
    graph = loaded.kg

    @tool
    def find_entity(name: str, type: str | None = None) -> list[dict[str, Any]]:
        """Find knowledge-graph entities by name or synonym (fuzzy); optionally of one type
        (e.g. Disease, Compound, Gene, Anatomy, Symptom)."""
        matches = loaded.index.fuzzy(name, type_name=type, limit=5, min_score=70.0)
        if not matches:
            raise EntityNotFound(f"no entity like '{name}'" + (f" of type {type}" if type else ""))
        return [
            {"name": graph.names[m.node], "type": graph.type_of(m.node), "degree": graph.degree(m.node)}
            for m in matches
        ]

    @tool
    def neighbours(entity: str, relation: str | None = None, type: str | None = None) -> dict[str, Any]:
        """Entities linked to an entity, optionally only by one relation (e.g. treats, causes)
        and of one type. Each line reads 'entity -relation-> other' in the stored direction."""
        node = _node(loaded, entity)
        lines: list[str] = []
        for nbr, rel, forward in graph.neighbours(node):
            if relation is not None and rel != relation:
                continue
            if type is not None and graph.type_of(nbr) != type:
                continue
            a, b = (node, nbr) if forward else (nbr, node)
            lines.append(f"{_label(loaded, a)} -{rel}-> {_label(loaded, b)}")
        lines = sorted(set(lines))
        out: dict[str, Any] = {"entity": _label(loaded, node), "count": len(lines), "edges": lines[:limit]}
        if len(lines) > limit:
            out["note"] = f"first {limit} of {len(lines)}; filter by relation or type"
        return out

    @tool
    def relations_between(entity_a: str, entity_b: str) -> list[str]:
        """The relations that directly link two entities, in either direction."""
        a, b = _node(loaded, entity_a), _node(loaded, entity_b)
        found = [f"{_label(loaded, a)} -{r}-> {_label(loaded, b)}" for r in graph.relations_between(a, b)]
        found += [f"{_label(loaded, b)} -{r}-> {_label(loaded, a)}" for r in graph.relations_between(b, a)]
        return found or [f"no direct relation between {_label(loaded, a)} and {_label(loaded, b)}"]

    @tool
    def shortest_path(source: str, target: str, max_hops: int = 4) -> list[str]:
        """Shortest paths (up to 5, at most max_hops edges, either direction) between two entities."""
        a, b = _node(loaded, source), _node(loaded, target)
        paths = shortest_paths(graph, [a], [b], per_pair=5, max_hops=min(max_hops, 6))
        if not paths:
            return [f"no path of at most {max_hops} hops"]
        return [_walk(p.nodes[0].name, p.hops) for p in paths]

    return [find_entity, neighbours, relations_between, shortest_path]


def _walk(start: str, hops: list[Hop]) -> str:
    """``A -treats-> B <-binds- C``: each hop in walking order, arrows in the stored direction."""
    parts = [start]
    for hop in hops:
        parts.append(
            f"-{hop.relation}-> {hop.target.name}" if hop.forward else f"<-{hop.relation}- {hop.target.name}"
        )
    return " ".join(parts)


@register_toolset("kg")
def kg_toolset(env: ToolEnv, params: dict[str, Any]) -> list[Tool]:
    """``tools: [kg]`` or ``{kg: {limit: 25}}``."""
    unknown = set(params) - {"limit"}
    if unknown:
        raise ValueError(f"tool set 'kg': unknown params {sorted(unknown)} (params: limit)")
    return kg_tools(env.kg, limit=int(params.get("limit", 25)))
