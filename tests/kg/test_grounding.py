"""The kg_grounding check: true and false claims in steps, and real versus fake path hops."""

from __future__ import annotations

from medloom.core.records import Item, Step, Trace
from medloom.kg import load_kg
from medloom.kg.samplers import ChainConstraints, sample_chains
from medloom.verifiers import registered_checks
from medloom.verifiers.kg_grounding import KGGrounding


def trace(*steps: str) -> Trace:
    return Trace(
        id="t", item_id="i", node="n", text="", steps=[Step(index=i, text=s) for i, s in enumerate(steps, 1)]
    )


def test_true_claims_pass_and_false_claims_are_flagged_on_their_step() -> None:
    check = registered_checks()["kg_grounding"]()
    item = Item(id="i", index=0)
    # Demo KG facts: Eribulin treats breast cancer; Metformin does not treat breast cancer.
    ok = check.check(item, trace("Eribulin treats breast cancer.", "So the answer is B."))
    assert ok.passed, ok.reasons
    bad = check.check(
        item,
        trace("Eribulin treats breast cancer.", "Metformin is first-line for breast cancer.", "Answer B."),
    )
    assert not bad.passed and list(bad.step_flags) == [2]
    assert "Metformin" in bad.step_flags[2]


def test_short_gene_symbols_only_match_in_capitals() -> None:
    check = KGGrounding()
    assert check.loaded.index.mentions("the cat sat") == []


def test_path_field_checks_every_hop_is_a_real_edge() -> None:
    kg = load_kg().kg
    (chain,) = sample_chains(kg, 1, ChainConstraints(min_hops=3, max_hops=3), seed=2)
    check = KGGrounding(path_field="path", steps=False)
    good = Item(id="i", index=0, data={"path": chain.path.model_dump()})
    assert check.check(good, trace()).passed
    forged = chain.path.model_copy(deep=True)
    forged.hops[1].relation = "treats" if forged.hops[1].relation != "treats" else "binds"
    verdict = check.check(Item(id="i", index=0, data={"path": forged.model_dump()}), trace())
    assert not verdict.passed and verdict.reasons[0].startswith("hop 2: the KG has no")
    missing = check.check(Item(id="i", index=0), trace())
    assert not missing.passed and "no 'path' path" in missing.reasons[0]


def test_relation_wording_is_checked_when_asked() -> None:
    item = Item(id="i", index=0)
    strict = KGGrounding(check_relations=True)
    assert strict.check(item, trace("Eribulin treats breast cancer.")).passed
    assert strict.check(item, trace("Breast cancer is treated by Eribulin.")).passed
    wrong = strict.check(item, trace("Eribulin binds breast cancer."))
    assert not wrong.passed and "Eribulin treats breast cancer" in wrong.step_flags[1]
    # without check_relations only adjacency is required
    assert KGGrounding().check(item, trace("Eribulin binds breast cancer.")).passed


def test_cover_path_flags_the_position_of_each_hop_no_step_states() -> None:
    from medloom.kg.verbalise import kg_facts

    kg = load_kg().kg
    (chain,) = sample_chains(kg, 1, ChainConstraints(min_hops=3, max_hops=3), seed=2)
    item = Item(id="i", index=0, data={"path": chain.path.model_dump()})
    facts = kg_facts(chain.path)
    check = KGGrounding(cover_path="path", steps=False)
    assert check.check(item, trace(*facts)).passed
    skipped = check.check(item, trace(facts[0], facts[2]))
    assert not skipped.passed and list(skipped.step_flags) == [2]
    assert "hop 2 " in skipped.step_flags[2] and "hop 3" not in " ".join(skipped.reasons)
    short = check.check(item, trace(facts[0], facts[1]))
    assert not short.passed and list(short.step_flags) == [2]  # hop 3 has no step 3: the last step
    assert "hop 3 of the path" in short.step_flags[2]
