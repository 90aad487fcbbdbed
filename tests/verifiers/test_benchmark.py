"""A fast subset of bench/verifiers.py: the deterministic checks on injected errors, demo KG."""

from __future__ import annotations

from functools import cache

import pytest

from medloom.eval.injection import CORRECT, QUESTION_KINDS, TRACE_KINDS, Case, build_cases
from medloom.eval.verifier_bench import BENCH, VerifierFigures, score
from medloom.kg import load_kg
from medloom.verifiers import registered_checks
from medloom.verifiers.measured import recipe_verifiers, shipped


@cache
def cases() -> dict[str, list[Case]]:
    traces, questions = build_cases(load_kg(), "demo", items=10, seed=3)
    return {"trace": traces, "question": questions}


def run(name: str) -> VerifierFigures:
    (entry,) = [b for b in BENCH if b[0] == name]
    _, check, params, what, scope, which = entry
    verifier = registered_checks()[check](**params)
    passed = {c.id: verifier.check(c.item, c.trace).passed for c in cases()[which]}
    return score(name, check, cases()[which], passed, scope=scope, params=params, what=what)


def test_every_kind_is_injected_into_real_paths() -> None:
    kinds = {c.kind for c in cases()["trace"]}
    assert kinds == {CORRECT, *TRACE_KINDS}
    assert {c.kind for c in cases()["question"]} == {CORRECT, *QUESTION_KINDS}
    # an injected case differs from the correct case it was made from
    by_id = {c.id: c for c in cases()["trace"]}
    for c in cases()["trace"]:
        if c.is_error:
            assert c.trace.text != by_id[c.base].trace.text, c.id


@pytest.mark.parametrize(
    "name",
    [
        "kg_grounding",
        "kg_grounding check_relations",
        "kg_grounding check_relations cover_path",
        "kg_grounding strict",
        "mcq_answer",
        "question_fidelity",
        "leakage",
    ],
)
def test_each_deterministic_check_meets_the_bar_on_its_kinds(name: str) -> None:
    figures = run(name)
    for kind in figures.scope:
        kf = figures.kinds[kind]
        assert kf.recall >= 0.95, (kind, kf)
        assert kf.precision is None or kf.precision >= 0.95, (kind, kf)
    assert figures.false_rejection_rate is not None and figures.false_rejection_rate <= 0.05


def test_the_old_check_misses_coreferences_and_denials() -> None:
    figures = run("kg_grounding (no coreference, no negation)")
    assert figures.kinds["non_edge_coref"].recall == 0.0
    assert figures.kinds["negated_edge"].recall == 0.0
    assert (figures.false_rejection_rate or 0) > 0.05  # true denials read as claims


def test_shipped_figures_cover_every_benchmarked_verifier() -> None:
    rows = {r["name"]: r for r in shipped()["verifiers"]}
    assert {b[0] for b in BENCH} <= set(rows)
    assert rows["kg_grounding strict"]["recall"] >= 0.95


def test_a_recipe_s_verifiers_get_their_shipped_figures() -> None:
    config = {
        "nodes": {
            "check": {
                "type": "verifier",
                "verifiers": [
                    {
                        "check": "kg_grounding",
                        "params": {"check_relations": True, "cover_path": "path", "strict": True},
                    },
                    {"check": "kg_grounding", "params": {"path_field": "path", "steps": False}},
                    {"check": "mcq_answer"},
                    {"judge": "judge"},
                ],
            }
        }
    }
    strict, path_hops, mcq, judge = recipe_verifiers(config)
    assert strict.measured_as == "kg_grounding strict" and strict.recall is not None
    assert path_hops.measured_as is None and "exact lookup" in path_hops.what
    assert mcq.measured_as == "mcq_answer"
    # a judge's figures belong to the model they were measured with, never to the recipe's judge
    assert judge.recall is None and judge.measured_as is None and "--endpoint" in judge.what
    judged_with = [r for r in shipped()["verifiers"] if r["check"] == "judge" and r.get("model")]
    assert all(r["model"] in judge.what for r in judged_with)
