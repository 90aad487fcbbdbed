"""The knowledge graph: typed nodes with ids and names, typed relations, in a networkx multigraph.

Nodes are small ints; names, ids and types live in parallel lists (types and relations are
interned as ints), and each edge is ``(head, tail, key=relation_code)`` with no attribute dict
of its own beyond networkx's, so a PrimeKG-sized graph (4M edges) stays within a few GiB.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import networkx as nx
from pydantic import BaseModel


class Entity(BaseModel):
    """One node as callers see it."""

    node: int
    id: str
    name: str
    type: str


class Edge(BaseModel):
    """One stored edge, in its stored direction (head → tail)."""

    head: int
    relation: str
    tail: int


_NO_ATTRS: Any = MappingProxyType({})
"""The attribute mapping of every edge: shared, read-only (the relation is the edge key)."""


@dataclass
class KnowledgeGraph:
    """A typed, directed multigraph; one edge per (head, tail, relation)."""

    graph: nx.MultiDiGraph = field(default_factory=nx.MultiDiGraph)
    ids: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    type_codes: array = field(default_factory=lambda: array("H"))
    types: list[str] = field(default_factory=list)
    relations: list[str] = field(default_factory=list)
    synonyms: dict[int, list[str]] = field(default_factory=dict)
    _by_key: dict[tuple[int, str], int] = field(default_factory=dict)
    _type_code: dict[str, int] = field(default_factory=dict)
    _relation_code: dict[str, int] = field(default_factory=dict)
    _degrees: array | None = None

    # -- building ---------------------------------------------------------------------------

    def type_code(self, type_name: str) -> int:
        code = self._type_code.get(type_name)
        if code is None:
            code = self._type_code[type_name] = len(self.types)
            self.types.append(type_name)
        return code

    def relation_code(self, relation: str) -> int:
        code = self._relation_code.get(relation)
        if code is None:
            code = self._relation_code[relation] = len(self.relations)
            self.relations.append(relation)
        return code

    def add_node(self, node_id: str, name: str, type_name: str) -> int:
        """The node for (type, id), created if new; a later non-empty name replaces an id-only one."""
        code = self.type_code(type_name)
        key = (code, node_id)
        node = self._by_key.get(key)
        if node is None:
            node = self._by_key[key] = len(self.ids)
            self.ids.append(node_id)
            self.names.append(name or node_id)
            self.type_codes.append(code)
            # what DiGraph.add_node does, minus its per-call overhead (see add_edge)
            self.graph._succ[node] = {}
            self.graph._pred[node] = {}
            self.graph._node[node] = {}
        elif name and self.names[node] == node_id:
            self.names[node] = name
        return node

    def add_edge(self, head: int, relation: str, tail: int) -> None:
        """Add the edge head → tail keyed by the relation's code (a repeated triple is stored once).

        Writes networkx's adjacency dicts directly, as ``MultiDiGraph.add_edge`` does, but with one
        shared read-only attribute mapping instead of a new dict per edge: about a third less
        memory and several times faster on PrimeKG-sized graphs. Both nodes must exist."""
        key = self.relation_code(relation)
        succ = self.graph._succ[head]
        keys = succ.get(tail)
        if keys is None:
            keys = succ[tail] = {}
            self.graph._pred[tail][head] = keys
        if key not in keys:
            keys[key] = _NO_ATTRS
            self._degrees = None

    def finish_loading(self) -> None:
        """Drop caches that direct adjacency writes bypass (networkx's own, and degrees)."""
        cache = getattr(self.graph, "__networkx_cache__", None)
        if isinstance(cache, dict):
            cache.clear()
        self._degrees = None

    def add_synonym(self, node: int, name: str) -> None:
        if name and name != self.names[node]:
            self.synonyms.setdefault(node, []).append(name)

    # -- reading ----------------------------------------------------------------------------

    @property
    def node_count(self) -> int:
        return len(self.ids)

    @property
    def edge_count(self) -> int:
        return int(self.graph.number_of_edges())

    def type_of(self, node: int) -> str:
        return self.types[self.type_codes[node]]

    def entity(self, node: int) -> Entity:
        return Entity(node=node, id=self.ids[node], name=self.names[node], type=self.type_of(node))

    def node_by_id(self, node_id: str, type_name: str | None = None) -> int | None:
        """The node with this id (and type, when given)."""
        if type_name is not None:
            code = self._type_code.get(type_name)
            return None if code is None else self._by_key.get((code, node_id))
        for code in range(len(self.types)):
            node = self._by_key.get((code, node_id))
            if node is not None:
                return node
        return None

    def degree(self, node: int) -> int:
        """Distinct neighbours of ``node`` (in either direction)."""
        if self._degrees is None:
            succ, pred = self.graph._succ, self.graph._pred
            self._degrees = array("L", (len(succ[n]) + len(pred[n]) for n in range(len(self.ids))))
        return int(self._degrees[node])

    def relations_between(self, head: int, tail: int) -> list[str]:
        """Relations of the edges stored head → tail."""
        keys = self.graph.succ[head].get(tail, {})
        return sorted(self.relations[k] for k in keys)

    def has_edge(self, a: int, b: int, relation: str | None = None, *, either_direction: bool = True) -> bool:
        """Whether an edge (of ``relation``, when given) joins ``a`` to ``b``."""
        pairs = [(a, b), (b, a)] if either_direction else [(a, b)]
        code = self._relation_code.get(relation) if relation is not None else None
        if relation is not None and code is None:
            return False
        for u, v in pairs:
            keys = self.graph.succ[u].get(v)
            if keys and (code is None or code in keys):
                return True
        return False

    def neighbours(self, node: int) -> Iterator[tuple[int, str, bool]]:
        """(neighbour, relation, forward) for every edge at ``node``; forward = stored node → neighbour."""
        for nbr, keys in self.graph.succ[node].items():
            for k in keys:
                yield nbr, self.relations[k], True
        for nbr, keys in self.graph.pred[node].items():
            for k in keys:
                yield nbr, self.relations[k], False

    def nodes_of_type(self, type_name: str) -> list[int]:
        code = self._type_code.get(type_name)
        if code is None:
            return []
        return [n for n, c in enumerate(self.type_codes) if c == code]

    def summary(self) -> str:
        return (
            f"{self.node_count} nodes ({len(self.types)} types), "
            f"{self.edge_count} edges ({len(self.relations)} relations)"
        )
