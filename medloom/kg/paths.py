"""Paths through the graph as plain records (what items, rows and checks carry)."""

from __future__ import annotations

from itertools import pairwise

from pydantic import BaseModel

from medloom.kg.model import KnowledgeGraph


class PathNode(BaseModel):
    id: str
    name: str
    type: str


class Hop(BaseModel):
    """One step of a walk, ``source`` → ``target`` in walking order.

    ``forward`` is True when the stored edge points the same way (source is its head), so
    ``(head, relation, tail)`` is always the fact as the KG states it.
    """

    source: PathNode
    relation: str
    target: PathNode
    forward: bool = True

    @property
    def head(self) -> PathNode:
        return self.source if self.forward else self.target

    @property
    def tail(self) -> PathNode:
        return self.target if self.forward else self.source


class KGPath(BaseModel):
    nodes: list[PathNode]
    hops: list[Hop]

    @property
    def start(self) -> PathNode:
        return self.nodes[0]

    @property
    def end(self) -> PathNode:
        return self.nodes[-1]

    @property
    def intermediates(self) -> list[PathNode]:
        return self.nodes[1:-1]

    @property
    def relations(self) -> list[str]:
        return [h.relation for h in self.hops]

    def __len__(self) -> int:
        return len(self.hops)


def reverse_path(path: KGPath) -> KGPath:
    """The same walk taken from its other end."""
    return KGPath(
        nodes=list(reversed(path.nodes)),
        hops=[
            h.model_copy(update={"source": h.target, "target": h.source, "forward": not h.forward})
            for h in reversed(path.hops)
        ],
    )


def path_node(kg: KnowledgeGraph, node: int) -> PathNode:
    return PathNode(id=kg.ids[node], name=kg.names[node], type=kg.type_of(node))


def hop_between(kg: KnowledgeGraph, a: int, b: int, allowed: set[str] | None = None) -> Hop | None:
    """A hop from ``a`` to ``b`` over an edge in either direction (forward edges first, then by
    relation name), restricted to ``allowed`` relations when given."""
    for forward, (u, v) in ((True, (a, b)), (False, (b, a))):
        for relation in kg.relations_between(u, v):
            if allowed is None or relation in allowed:
                return Hop(
                    source=path_node(kg, a), relation=relation, target=path_node(kg, b), forward=forward
                )
    return None


def make_path(kg: KnowledgeGraph, nodes: list[int], allowed: set[str] | None = None) -> KGPath:
    """The path through ``nodes`` (consecutive nodes must be adjacent)."""
    hops = []
    for a, b in pairwise(nodes):
        hop = hop_between(kg, a, b, allowed)
        if hop is None:
            raise ValueError(f"no edge between {kg.names[a]!r} and {kg.names[b]!r}")
        hops.append(hop)
    return KGPath(nodes=[path_node(kg, n) for n in nodes], hops=hops)


def hop_is_edge(kg: KnowledgeGraph, hop: Hop) -> bool:
    """Whether the KG holds the fact ``hop`` states (its relation, in its stored direction)."""
    head = kg.node_by_id(hop.head.id, hop.head.type)
    tail = kg.node_by_id(hop.tail.id, hop.tail.type)
    return (
        head is not None
        and tail is not None
        and kg.has_edge(head, tail, hop.relation, either_direction=False)
    )
