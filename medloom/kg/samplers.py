"""Path samplers, deterministic for a given seed.

- :func:`sample_chains`: rare-entity longest chains (seeds of low degree, a small subgraph
  around each, the longest simple chain in it under type and relation constraints).
- :func:`shortest_paths`: all shortest paths between two entity sets, capped per pair.
- :func:`mask_subgraph`: a chain's subgraph with one end entity hidden as the answer.
- :func:`distractors`: same-type entities that do not satisfy the chain.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import islice

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medloom.kg.model import KnowledgeGraph
from medloom.kg.paths import KGPath, PathNode, make_path, path_node, reverse_path
from medloom.kg.verbalise import verbalise_hop


class ChainConstraints(BaseModel):
    """What a sampled chain must look like (None: anything)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_hops: int = Field(default=3, ge=1)
    max_hops: int = Field(default=6, ge=1)
    relations: tuple[str, ...] | None = None
    """Relations a hop may use."""
    node_types: tuple[str, ...] | None = None
    """Types every node on the chain may have."""
    start_types: tuple[str, ...] | None = None
    end_types: tuple[str, ...] | None = None
    """Types the answer (the chain's far end) may have."""
    max_seed_degree: int | None = None
    """Seeds have at most this degree; default: the lower quartile of the candidates' degrees."""
    subgraph_nodes: int = Field(default=8, ge=2)
    """Nodes in the subgraph grown around each seed (the chain lies inside it)."""
    distinct_types_at_end: bool = True
    """The answer's type differs from the seed's (avoids trivial 'A resembles B' answers)."""

    @model_validator(mode="after")
    def _bounds(self) -> ChainConstraints:
        if self.min_hops > self.max_hops:
            raise ValueError(f"min_hops ({self.min_hops}) exceeds max_hops ({self.max_hops})")
        return self


class Chain(BaseModel):
    """A sampled chain: the path from the rare seed to the answer, and the subgraph it came from."""

    path: KGPath
    seed_degree: int
    subgraph: list[PathNode]


def _allowed(kg: KnowledgeGraph, c: ChainConstraints) -> tuple[set[str] | None, set[int] | None]:
    relations = set(c.relations) if c.relations else None
    types = {kg.types.index(t) for t in c.node_types if t in kg.types} if c.node_types else None
    return relations, types


def _steps(
    kg: KnowledgeGraph,
    node: int,
    relations: set[str] | None,
    types: set[int] | None,
    candidates: list[int] | None = None,
) -> list[int]:
    """Neighbours (among ``candidates``, default all) reachable over an allowed relation, with
    an allowed type, sorted."""
    succ, pred = kg.graph.succ[node], kg.graph.pred[node]
    pool = sorted(set(succ) | set(pred)) if candidates is None else candidates
    if relations is None and types is None:
        return [n for n in pool if n != node]
    codes = {kg._relation_code[r] for r in relations if r in kg._relation_code} if relations else None
    out = []
    for nbr in pool:
        if nbr == node or (types is not None and kg.type_codes[nbr] not in types):
            continue
        keys = set(succ.get(nbr, ())) | set(pred.get(nbr, ()))
        if codes is None or keys & codes:
            out.append(nbr)
    return out


HUB_SAMPLE = 64
"""Around a hub, only this many random neighbours are considered when growing a subgraph."""


def rare_seeds(kg: KnowledgeGraph, c: ChainConstraints) -> list[int]:
    """Candidate seeds of low degree (≥1), rarest first."""
    wanted = set(c.start_types) if c.start_types else None
    candidates = [
        (kg.degree(n), n)
        for n in range(kg.node_count)
        if (wanted is None or kg.type_of(n) in wanted) and kg.degree(n) > 0
    ]
    if not candidates:
        return []
    candidates.sort()
    limit = c.max_seed_degree
    if limit is None:
        limit = max(2, candidates[len(candidates) // 4][0])
    return [n for d, n in candidates if d <= limit]


def subgraph_around(
    kg: KnowledgeGraph,
    seed: int,
    size: int,
    rng: random.Random,
    relations: set[str] | None = None,
    types: set[int] | None = None,
) -> list[int]:
    """Up to ``size`` nodes grown breadth-first from ``seed`` (neighbours in seeded random order)."""
    chosen = [seed]
    seen = {seed}
    frontier = [seed]
    while frontier and len(chosen) < size:
        nxt: list[int] = []
        for node in frontier:
            pool = sorted(set(kg.graph.succ[node]) | set(kg.graph.pred[node]))
            if len(pool) > HUB_SAMPLE:
                pool = sorted(rng.sample(pool, HUB_SAMPLE))
            nbrs = [n for n in _steps(kg, node, relations, types, pool) if n not in seen]
            rng.shuffle(nbrs)
            for nbr in nbrs[:3]:  # a narrow, deep neighbourhood: room for long chains
                if len(chosen) >= size:
                    break
                seen.add(nbr)
                chosen.append(nbr)
                nxt.append(nbr)
        frontier = nxt
    return chosen


def _adjacent(kg: KnowledgeGraph, a: int, b: int) -> bool:
    return b in kg.graph.succ[a] or b in kg.graph.pred[a]


def longest_chain(
    kg: KnowledgeGraph,
    seed: int,
    nodes: list[int],
    c: ChainConstraints,
    rng: random.Random,
    relations: set[str] | None = None,
) -> list[int] | None:
    """The longest simple chain from ``seed`` inside ``nodes`` (≤ max_hops) whose end has an
    allowed end type; ties broken by ``rng``. None when no chain reaches ``min_hops``."""
    inside = set(nodes)
    end_types = set(c.end_types) if c.end_types else None
    best: list[list[int]] = []
    best_len = c.min_hops - 1
    ordered = sorted(inside)
    adjacency = {
        n: _steps(kg, n, relations, None, [m for m in ordered if _adjacent(kg, n, m)]) for n in nodes
    }

    def visit(path: list[int]) -> None:
        nonlocal best, best_len
        hops = len(path) - 1
        end = path[-1]
        if hops >= c.min_hops and (end_types is None or kg.type_of(end) in end_types):
            ok = not c.distinct_types_at_end or kg.type_codes[end] != kg.type_codes[path[0]]
            if ok and hops > best_len:
                best, best_len = [list(path)], hops
            elif ok and hops == best_len:
                best.append(list(path))
        if hops >= c.max_hops:
            return
        for nbr in adjacency[end]:
            if nbr not in path:
                path.append(nbr)
                visit(path)
                path.pop()

    visit([seed])
    return rng.choice(best) if best else None


def iter_chains(kg: KnowledgeGraph, c: ChainConstraints, seed: int = 0) -> Iterator[Chain]:
    """Chains from rare seeds in a seeded order; each (start, answer) pair at most once."""
    rng = random.Random(seed)
    relations, types = _allowed(kg, c)
    seeds = rare_seeds(kg, c)
    rng.shuffle(seeds)
    pairs: set[tuple[int, int]] = set()
    for s in seeds:
        local = random.Random(f"{seed}:{kg.ids[s]}:{kg.type_of(s)}")
        nodes = subgraph_around(kg, s, c.subgraph_nodes, local, relations, types)
        chain = longest_chain(kg, s, nodes, c, local, relations)
        if chain is None or (chain[0], chain[-1]) in pairs:
            continue
        pairs.add((chain[0], chain[-1]))
        yield Chain(
            path=make_path(kg, chain, relations),
            seed_degree=kg.degree(s),
            subgraph=[path_node(kg, n) for n in nodes],
        )


def sample_chains(kg: KnowledgeGraph, n: int, c: ChainConstraints, seed: int = 0) -> list[Chain]:
    return list(islice(iter_chains(kg, c, seed), n))


# -- shortest paths ---------------------------------------------------------------------------


def _undirected(kg: KnowledgeGraph, node: int) -> list[int]:
    return sorted(set(kg.graph.succ[node]) | set(kg.graph.pred[node]))


def shortest_paths(
    kg: KnowledgeGraph,
    sources: list[int],
    targets: list[int],
    *,
    per_pair: int = 50,
    max_hops: int = 4,
    relations: set[str] | None = None,
) -> list[KGPath]:
    """All shortest paths (edges in either direction, ≤ max_hops) for each source × target
    pair, at most ``per_pair`` per pair, in a deterministic order."""
    out: list[KGPath] = []
    for s in dict.fromkeys(sources):
        for t in dict.fromkeys(targets):
            if s == t:
                continue
            preds = _bfs_predecessors(kg, s, t, max_hops, relations)
            if t not in preds:
                continue
            for nodes in islice(_walk_back(preds, t), per_pair):
                out.append(make_path(kg, nodes, relations))
    return out


def _bfs_predecessors(
    kg: KnowledgeGraph, s: int, t: int, max_hops: int, relations: set[str] | None
) -> dict[int, list[int]]:
    preds: dict[int, list[int]] = {s: []}
    level = [s]
    for _ in range(max_hops):
        if t in preds or not level:
            break
        nxt: dict[int, list[int]] = {}
        for u in level:
            nbrs = _undirected(kg, u) if relations is None else _steps(kg, u, relations, None)
            for v in nbrs:
                if v not in preds:
                    nxt.setdefault(v, []).append(u)
        preds.update(nxt)
        level = sorted(nxt)
    return preds


def _walk_back(preds: dict[int, list[int]], t: int) -> Iterator[list[int]]:
    if not preds[t]:
        yield [t]
        return
    for p in preds[t]:
        for head in _walk_back(preds, p):
            yield [*head, t]


# -- masking and distractors -------------------------------------------------------------------


class MaskedSubgraph(BaseModel):
    """A chain's facts with one end entity hidden: the question writer's view."""

    answer: PathNode
    anchor: PathNode
    """The named end (the rare seed when the answer is the tail)."""
    mask: str
    facts: list[str]
    """The chain's hops as sentences, the answer replaced by ``mask``."""
    context: list[str]
    """Other facts among the subgraph's nodes that do not mention the answer."""


def mask_subgraph(
    kg: KnowledgeGraph, chain: Chain, *, end: str = "tail", mask: str = "[ANSWER]", max_context: int = 6
) -> MaskedSubgraph:
    """Hide the chain's ``end`` ("tail": the far end, "head": the seed) as the answer."""
    path = reverse_path(chain.path) if end == "head" else chain.path
    answer = path.end
    facts = [verbalise_hop(h, mask=mask, masked_id=answer.id) for h in path.hops]
    on_path = {(h.head.id, h.relation, h.tail.id) for h in path.hops}
    ids = [kg.node_by_id(n.id, n.type) for n in chain.subgraph]
    nodes = [n for n in ids if n is not None and kg.ids[n] != answer.id]
    context: list[str] = []
    for u in nodes:
        for v in nodes:
            for rel in kg.relations_between(u, v):
                if (kg.ids[u], rel, kg.ids[v]) not in on_path and len(context) < max_context:
                    context.append(verbalise_hop(make_path(kg, [u, v], {rel}).hops[0]))
    return MaskedSubgraph(answer=answer, anchor=path.start, mask=mask, facts=facts, context=context)


def satisfying_ends(kg: KnowledgeGraph, path: KGPath, *, max_frontier: int = 200_000) -> set[int]:
    """Every entity reached from the path's start by the same relations in the same directions."""
    start = kg.node_by_id(path.start.id, path.start.type)
    frontier = {start} if start is not None else set()
    for hop in path.hops:
        code = kg._relation_code.get(hop.relation)
        nxt: set[int] = set()
        for u in frontier:
            adj = kg.graph.succ[u] if hop.forward else kg.graph.pred[u]
            nxt.update(v for v, keys in adj.items() if code in keys)
            if len(nxt) > max_frontier:
                break
        frontier = nxt
    return frontier


def distractors(kg: KnowledgeGraph, path: KGPath, k: int, seed: int = 0) -> list[PathNode]:
    """``k`` entities of the answer's type that the chain does not lead to (nor on the path)."""
    rng = random.Random(f"{seed}:{path.start.id}:{path.end.id}")
    valid = satisfying_ends(kg, path)
    on_path = {(n.id, n.type) for n in path.nodes}
    pool = [
        n
        for n in kg.nodes_of_type(path.end.type)
        if n not in valid and (kg.ids[n], path.end.type) not in on_path and kg.degree(n) > 0
    ]
    names = {kg.names[n].lower() for n in valid}
    pool = [n for n in pool if kg.names[n].lower() not in names]
    return [path_node(kg, n) for n in rng.sample(pool, min(k, len(pool)))]
