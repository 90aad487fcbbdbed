"""Per-item selection: top_k, majority vote (deterministic ties), first_passing, all."""

from __future__ import annotations

import random

import pytest

from medloom.core.records import Trace, Verdict
from medloom.graphs.conditions import matches
from medloom.nodes.selector import SelectorNode, select


def t(
    tid: str,
    answer: str | None = None,
    score: float | None = None,
    passed: bool | None = None,
    round: int = 0,
) -> Trace:
    verdicts = [] if passed is None else [Verdict(passed=passed, score=score, verifier="v")]
    if passed is None and score is not None:
        verdicts = [Verdict(passed=True, score=score, verifier="v")]
    return Trace(id=tid, item_id="q", node="n", text="", answer=answer, verdicts=verdicts, round=round)


def node(method: str, k: int = 1) -> SelectorNode:
    return SelectorNode(type="selector", method=method, k=k)  # type: ignore[arg-type]


def ids(traces: list[Trace]) -> list[str]:
    return [x.id for x in traces]


def shuffled(traces: list[Trace], seed: int) -> list[Trace]:
    out = list(traces)
    random.Random(seed).shuffle(out)
    return out


# -- top_k ----------------------------------------------------------------------------------


def test_top_k_ranks_by_score() -> None:
    traces = [t("a", score=2), t("b", score=5), t("c", score=4), t("d")]
    chosen, detail = select(node("top_k", k=2), traces)
    assert ids(chosen) == ["b", "c"]
    assert detail == {"scores": {"b": 5, "c": 4, "a": 2, "d": None}}


def test_top_k_ties_prefer_passing_then_fewer_rounds_then_id() -> None:
    traces = [
        t("z-fail", score=3, passed=False),
        t("y-r2", score=3, passed=True, round=2),
        t("x-r1", score=3, passed=True, round=1),
        t("w-r1", score=3, passed=True, round=1),
    ]
    expected = ["w-r1", "x-r1", "y-r2", "z-fail"]
    for seed in range(5):
        chosen, _ = select(node("top_k", k=4), shuffled(traces, seed))
        assert ids(chosen) == expected


def test_top_k_unscored_traces_come_last() -> None:
    chosen, _ = select(node("top_k", k=3), [t("a"), t("b", score=0.0), t("c", score=-1.0)])
    assert ids(chosen) == ["b", "c", "a"]


def test_top_k_uses_the_last_score() -> None:
    trace = Trace(
        id="a",
        item_id="q",
        node="n",
        text="",
        verdicts=[
            Verdict(passed=True, score=1.0, verifier="check"),
            Verdict(passed=True, score=2.0, verifier="judge"),
        ],
    )
    chosen, detail = select(node("top_k", k=1), [trace, t("b", score=1.5)])
    assert ids(chosen) == ["a"] and detail["scores"]["a"] == 2.0


def test_top_k_k_larger_than_the_input() -> None:
    chosen, _ = select(node("top_k", k=5), [t("a", score=1), t("b", score=2)])
    assert ids(chosen) == ["b", "a"]
    assert select(node("top_k"), []) == ([], {"scores": {}})


# -- vote -----------------------------------------------------------------------------------


def test_vote_majority() -> None:
    traces = [t("1", "A", 1), t("2", "B", 5), t("3", "A", 2), t("4", "C", 4), t("5", None, 5)]
    chosen, detail = select(node("vote"), traces)
    assert ids(chosen) == ["3"]  # the best-ranked trace with the winning answer
    assert detail == {"votes": {"A": 2, "B": 1, "C": 1}, "winner": "A", "tied": []}
    chosen, _ = select(node("vote", k=2), traces)
    assert ids(chosen) == ["3", "1"]


def test_vote_tie_goes_to_the_best_ranked_answer_in_any_order() -> None:
    traces = [
        t("g1/0", "A", score=3),
        t("g1/1", "B", score=4),
        t("g1/2", "A", score=1),
        t("g1/3", "B", score=2),
        t("g1/4", "C", score=5, passed=False),
    ]
    results = set()
    for seed in range(10):
        chosen, detail = select(node("vote"), shuffled(traces, seed))
        results.add((tuple(ids(chosen)), detail["winner"], tuple(detail["tied"])))
        assert detail["votes"] == {"A": 2, "B": 2, "C": 1}
    assert results == {(("g1/1",), "B", ("B", "A"))}


def test_vote_tie_with_equal_ranks_falls_back_to_stable_ids() -> None:
    # No scores or verdicts: rank ties are broken by trace id, so "x1" (answer D) wins.
    traces = [t("x2", "C"), t("x1", "D"), t("x4", "C"), t("x3", "D")]
    outcomes = {tuple(ids(select(node("vote"), shuffled(traces, s))[0])) for s in range(10)}
    assert outcomes == {("x1",)}


def test_vote_without_answers() -> None:
    chosen, detail = select(node("vote"), [t("a"), t("b")])
    assert chosen == [] and detail == {"reason": "no trace has an answer to vote with"}


# -- first_passing / all --------------------------------------------------------------------


def test_first_passing_prefers_fewer_rounds_then_id() -> None:
    traces = [
        t("b", passed=True, round=1),
        t("a", passed=False, round=0),
        t("c", passed=True, round=0),
        t("d", passed=True, round=0),
    ]
    for seed in range(5):
        chosen, detail = select(node("first_passing"), shuffled(traces, seed))
        assert ids(chosen) == ["c"] and detail == {}


def test_first_passing_uses_the_latest_verdict() -> None:
    trace = Trace(
        id="a",
        item_id="q",
        node="n",
        text="",
        verdicts=[Verdict(passed=True, verifier="check"), Verdict(passed=False, verifier="judge")],
    )
    chosen, detail = select(node("first_passing"), [trace, t("b")])
    assert chosen == [] and detail == {"reason": "no trace passed"}


def test_all_keeps_everything_in_order() -> None:
    traces = [t("c"), t("a", passed=False), t("b", score=3)]
    chosen, detail = select(node("all"), traces)
    assert ids(chosen) == ["c", "a", "b"] and detail == {}
    assert chosen is not traces


# -- edge conditions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "trace", "expected"),
    [
        ("always", t("a"), True),
        ("passed", t("a"), False),
        ("failed", t("a"), False),
        ("passed", t("a", passed=True), True),
        ("failed", t("a", passed=False), True),
        ("score >= 3", t("a", score=3), True),
        ("score > 3", t("a", score=3), False),
        ("score<2.5", t("a", score=2), True),
        ("score == -1", t("a", score=-1), True),
        ("score <= 5", t("a"), False),
    ],
)
def test_conditions(condition: str, trace: Trace, expected: bool) -> None:
    assert matches(condition, trace) is expected


def test_unknown_condition() -> None:
    with pytest.raises(ValueError, match="unknown condition"):
        matches("sometimes", t("a"))
