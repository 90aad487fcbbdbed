"""Samplers (determinism, constraints, rare-entity bias), verbalisation, masking, distractors."""

from __future__ import annotations

import statistics

import pytest

from medloom.kg import load_kg, load_text
from medloom.kg.paths import hop_is_edge, make_path
from medloom.kg.samplers import (
    ChainConstraints,
    distractors,
    mask_subgraph,
    rare_seeds,
    sample_chains,
    satisfying_ends,
    shortest_paths,
)
from medloom.kg.verbalise import verbalise_hop, verbalise_path

SMALL = (
    "head\trelation\ttail\thead_type\ttail_type\n"
    "DrugA\ttreats\tDisease1\tCompound\tDisease\n"
    "DrugB\ttreats\tDisease1\tCompound\tDisease\n"
    "DrugB\tbinds\tGENE1\tCompound\tGene\n"
    "Disease1\tassociates\tGENE1\tDisease\tGene\n"
    "Disease1\tassociates\tGENE2\tDisease\tGene\n"
    "Disease2\tassociates\tGENE2\tDisease\tGene\n"
    "Disease2\tlocalizes\tliver\tDisease\tAnatomy\n"
    "Disease3\tlocalizes\tlung\tDisease\tAnatomy\n"
)


def node(kg, name: str) -> int:  # type: ignore[no-untyped-def]
    found = [n for n, nm in enumerate(kg.names) if nm == name]
    assert found, name
    return found[0]


def test_chains_are_deterministic_for_a_seed_and_vary_across_seeds() -> None:
    kg = load_kg().kg
    c = ChainConstraints(min_hops=2, max_hops=4)
    first = [ch.path.model_dump() for ch in sample_chains(kg, 8, c, seed=7)]
    again = [ch.path.model_dump() for ch in sample_chains(kg, 8, c, seed=7)]
    other = [ch.path.model_dump() for ch in sample_chains(kg, 8, c, seed=8)]
    assert len(first) == 8 and first == again and first != other


def test_chains_respect_hops_types_relations_and_are_real_simple_paths() -> None:
    kg = load_kg().kg
    c = ChainConstraints(
        min_hops=3,
        max_hops=4,
        relations=("treats", "associates", "binds", "localizes"),
        end_types=("Compound",),
    )
    chains = sample_chains(kg, 10, c, seed=3)
    assert len(chains) >= 5
    for ch in chains:
        path = ch.path
        assert 3 <= len(path) <= 4
        assert path.end.type == "Compound" and path.start.type != "Compound"
        assert set(path.relations) <= set(c.relations or ())
        assert len({(n.id, n.type) for n in path.nodes}) == len(path.nodes)  # simple
        assert all(hop_is_edge(kg, h) for h in path.hops)
        assert [h.source for h in path.hops] == path.nodes[:-1]


def test_seeds_are_biased_towards_rare_entities() -> None:
    kg = load_kg().kg
    c = ChainConstraints(min_hops=2, max_hops=4)
    chains = sample_chains(kg, 20, c, seed=0)
    degrees = [kg.degree(n) for n in range(kg.node_count) if kg.degree(n) > 0]
    assert statistics.mean(ch.seed_degree for ch in chains) < statistics.median(degrees)
    limit = max(2, sorted(degrees)[len(degrees) // 4])
    assert all(kg.degree(s) <= limit for s in rare_seeds(kg, c))


def test_shortest_paths_between_sets_are_capped_per_pair() -> None:
    kg, _ = load_text(SMALL)
    a, liver = node(kg, "DrugA"), node(kg, "liver")
    paths = shortest_paths(kg, [a], [liver], per_pair=5, max_hops=5)
    assert [[n.name for n in p.nodes] for p in paths] == [["DrugA", "Disease1", "GENE2", "Disease2", "liver"]]
    b, g1 = node(kg, "DrugB"), node(kg, "GENE1")
    d1 = node(kg, "Disease1")
    both = shortest_paths(kg, [a, b], [g1, d1], per_pair=1)
    assert {(p.start.name, p.end.name, len(p)) for p in both} == {
        ("DrugA", "GENE1", 2),
        ("DrugA", "Disease1", 1),
        ("DrugB", "GENE1", 1),
        ("DrugB", "Disease1", 1),
    }
    assert shortest_paths(kg, [a], [node(kg, "lung")]) == []  # not connected
    assert shortest_paths(kg, [a], [liver], max_hops=3) == []  # too far


def test_verbalisation_uses_relation_phrases_in_both_directions() -> None:
    kg, _ = load_text(SMALL)
    path = make_path(kg, [node(kg, "GENE1"), node(kg, "DrugB"), node(kg, "Disease1")])
    assert verbalise_path(path) == [
        "the protein encoded by GENE1 is bound by DrugB",
        "DrugB treats Disease1",
    ]
    assert verbalise_path(path, mask_end="[X]")[-1] == "DrugB treats [X]"
    odd = make_path(kg, [node(kg, "Disease1"), node(kg, "DrugA")])
    assert verbalise_hop(odd.hops[0]) == "Disease1 is treated by DrugA"
    with pytest.raises(ValueError, match="no edge between 'DrugA' and 'liver'"):
        make_path(kg, [node(kg, "DrugA"), node(kg, "liver")])
    unknown, _ = load_text("head\trelation\ttail\nx\tfrobnicates\ty\n")
    assert verbalise_hop(make_path(unknown, [0, 1]).hops[0]) == "x — frobnicates → y"


def test_mask_and_distractors_do_not_satisfy_the_chain() -> None:
    kg, _ = load_text(SMALL)
    c = ChainConstraints(min_hops=2, max_hops=3, subgraph_nodes=8, max_seed_degree=1)
    (chain, *_) = [ch for ch in sample_chains(kg, 10, c, seed=1) if ch.path.start.name == "DrugA"]
    masked = mask_subgraph(kg, chain)
    assert masked.answer == chain.path.end and masked.anchor.name == "DrugA"
    assert masked.facts[-1].count("[ANSWER]") == 1 and chain.path.end.name not in " ".join(masked.facts)
    valid = {kg.names[n] for n in satisfying_ends(kg, chain.path)}
    assert chain.path.end.name in valid
    options = distractors(kg, chain.path, 5, seed=1)
    assert options and all(d.type == chain.path.end.type and d.name not in valid for d in options)
    assert distractors(kg, chain.path, 5, seed=1) == options


def test_bad_constraints_are_rejected() -> None:
    with pytest.raises(ValueError, match="min_hops"):
        ChainConstraints(min_hops=5, max_hops=3)


def test_kg_chains_can_mask_the_rare_seed_instead_of_the_far_end() -> None:
    from medloom.graphs.spec import GraphSpec
    from medloom.ops.kg_chains import ChainSource

    def items(mask: str) -> list:  # type: ignore[type-arg]
        spec = GraphSpec.model_validate(
            {
                "name": "m",
                "models": {"m": {}},
                "source": {"op": "kg_chains", "params": {"n": 3, "mask": mask, "seed": 4}},
                "nodes": {
                    "s": {"type": "step", "op": "kg_question", "model": "m", "template": "kg_question"}
                },
            }
        )
        assert spec.source is not None
        return [it for _, it in ChainSource(spec.source, spec.resources, None)]

    tails, heads = items("tail"), items("head")
    kg = load_kg().kg
    for tail_item, head_item in zip(tails, heads, strict=True):
        seed = tail_item.data["path"]["nodes"][0]
        assert head_item.data["answer_entity"] == seed  # the rare seed is now the answer
        assert head_item.options[head_item.answer] == seed["name"]
        assert head_item.data["path"]["nodes"] == list(reversed(tail_item.data["path"]["nodes"]))
        assert head_item.data["facts"][-1].count("[ANSWER]") == 1
        assert seed["name"] not in " ".join(head_item.data["facts"])
        assert kg.degree(kg.node_by_id(seed["id"], seed["type"]) or 0) == tail_item.data["seed_degree"]
