"""Medprompt's ops: kNN few-shot selection, the choice-shuffle ensemble and the majority vote."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from medloom.agents.templates import TemplateLibrary
from medloom.core.errors import GraphError
from medloom.core.events import EmbeddingCall
from medloom.core.records import Item, Trace
from medloom.graphs.build import build_graph
from medloom.graphs.runtime import instantiate, resolve_models
from medloom.graphs.spec import GraphSpec
from medloom.llm.cache import RequestCache
from medloom.ops.choice_shuffle import permutations_for, shuffled_item, vote
from medloom.testing import FakeRequest
from tests.graphs.test_engine import ends, run

BANK = [
    ("kidney-1", "Which urine finding is typical of nephrotic syndrome in the kidney?", "Fatty casts"),
    ("heart-1", "Which drug class lowers mortality in heart failure?", "Beta blockers"),
    ("kidney-2", "Which kidney disease shows red cell casts in the urine?", "Nephritic syndrome"),
    ("lung-1", "Which spirometry pattern is typical of asthma?", "Reversible obstruction"),
]


def _bank(tmp_path: Path) -> Path:
    path = tmp_path / "bank.jsonl"
    rows = [
        {
            "item_id": ident,
            "question": question,
            "options": [{"key": "A", "text": answer}, {"key": "B", "text": "Something else"}],
            "reasoning": f"Step 1: The textbook answer is {answer}.\nAnswer: A",
            "answer": "A",
        }
        for ident, question, answer in BANK
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _spec(nodes: dict[str, Any], edges: list[str], **extra: Any) -> GraphSpec:
    return GraphSpec.model_validate(
        {
            "name": "medprompt-test",
            "models": {"m": {"model": "fake-model"}},
            "dataset": {"path": "unused.jsonl"},
            "nodes": nodes,
            "edges": edges,
            **extra,
        }
    )


async def _run(spec: GraphSpec, client: Any, items: list[Item]) -> list[Any]:
    compiled = build_graph(spec)
    models = await resolve_models(spec, client)
    rt = instantiate(compiled, client, models, TemplateLibrary())
    return await run(rt, items)


def _item(n: int, question: str, options: dict[str, str] | None = None) -> Item:
    options = options or {"A": "Propranolol", "B": "Levothyroxine", "C": "Radioactive iodine", "D": "Surgery"}
    return Item(id=f"q{n}", index=n, question=question, options=options, answer="A", data={})


def _knn(bank: Path, **params: Any) -> dict[str, Any]:
    return {"type": "step", "op": "knn_fewshot", "params": {"bank": str(bank), **params}}


COLUMNS = {"fewshot_ids": "meta.fewshot_ids", "votes": "meta.votes", "fewshot": "data.fewshot"}


async def test_lexical_knn_picks_the_lexically_nearest_bank_items(fake_llm, tmp_path: Path) -> None:
    server, client = fake_llm(lambda req: "unused")
    spec = _spec({"fewshot": _knn(_bank(tmp_path), k=2)}, [], output={"columns": COLUMNS})
    question = "Which urine casts are seen in kidney disease with nephritic syndrome?"
    events = await _run(spec, client, [_item(1, question)])
    (row,) = ends(events)["q1"].rows
    assert row["fewshot_ids"] == ["kidney-2", "kidney-1"]
    fewshot = row["fewshot"]
    assert fewshot[0]["steps"] == ["The textbook answer is Nephritic syndrome."]
    assert fewshot[0]["options"] == {"A": "Nephritic syndrome", "B": "Something else"}
    assert server.request_count == 0  # lexical similarity needs no model


async def test_knn_never_picks_the_items_own_question(fake_llm, tmp_path: Path) -> None:
    _server, client = fake_llm(lambda req: "unused")
    spec = _spec({"fewshot": _knn(_bank(tmp_path), k=1)}, [], output={"columns": COLUMNS})
    events = await _run(spec, client, [_item(1, BANK[1][1])])
    (row,) = ends(events)["q1"].rows
    assert row["fewshot_ids"] != ["heart-1"]


def _topic_embedder(text: str) -> list[float]:
    """Synonyms land on one axis: only an embedding (not word overlap) can match them."""
    lowered = text.lower()
    return [
        float(any(w in lowered for w in ("kidney", "renal", "nephr"))),
        float(any(w in lowered for w in ("heart", "cardiac"))),
        float(any(w in lowered for w in ("lung", "asthma", "pulmonary"))),
        0.1,
    ]


async def test_embedding_knn_uses_the_embeddings_endpoint_and_embeds_the_bank_once(
    fake_llm, tmp_path: Path
) -> None:
    server, client = fake_llm(lambda req: "unused", embedder=_topic_embedder)
    spec = _spec(
        {"fewshot": _knn(_bank(tmp_path), k=1, embedding={"model": "fake-embed"})},
        [],
        output={"columns": COLUMNS},
    )
    # No word in common with the heart example, but the same embedding axis.
    items = [_item(1, "Cardiac output falls: which therapy?"), _item(2, "Pulmonary function test?")]
    events = await _run(spec, client, items)
    found = {i: e.rows[0]["fewshot_ids"] for i, e in ends(events).items()}
    assert found == {"q1": ["heart-1"], "q2": ["lung-1"]}
    bank_texts = [t for t in server.embedding_inputs if "textbook" not in t and "Fatty casts" in t]
    assert len(bank_texts) == 1  # the bank was embedded once for both items
    assert len(server.embedding_inputs) == len(BANK) + 2
    # through the run's client: routed by node, accounted, and in the trajectory
    assert {t.get("node") for t in server.embedding_tags} == {"fewshot"}
    calls = [e for e in events if isinstance(e, EmbeddingCall)]
    assert [(c.item_id, len(c.texts), c.node) for c in calls if len(c.texts) > 1] == [
        ("q1", len(BANK), "fewshot")
    ]
    assert sum(c.response.usage.prompt_tokens for c in calls if c.response) > 0
    assert ends(events)["q2"].stats["fewshot"].calls == 1
    assert client.ledger.by_model["fake-embed"].calls == 3


async def test_embeddings_are_cached_across_runs(fake_llm, tmp_path: Path) -> None:
    server, client = fake_llm(lambda req: "unused", embedder=_topic_embedder)
    client.cache = RequestCache(tmp_path / "cache.sqlite")
    spec = _spec(
        {"fewshot": _knn(_bank(tmp_path), k=1, embedding={"model": "fake-embed"})},
        [],
        output={"columns": COLUMNS},
    )
    items = [_item(1, "Cardiac output falls: which therapy?")]
    await _run(spec, client, items)
    sent = len(server.embedding_inputs)
    events = await _run(spec, client, items)  # a fresh op (bank re-embedded) over the same cache
    assert len(server.embedding_inputs) == sent == len(BANK) + 1
    (row,) = ends(events)["q1"].rows
    assert row["fewshot_ids"] == ["heart-1"]
    calls = [e for e in events if isinstance(e, EmbeddingCall)]
    assert calls and all(c.response is not None and c.response.cache_hit for c in calls)
    client.cache.close()


def test_a_missing_bank_names_the_key(tmp_path: Path) -> None:
    spec = _spec({"fewshot": _knn(tmp_path / "nope.jsonl")}, [])
    with pytest.raises(GraphError) as err:
        build_graph(spec)
    assert "nodes.fewshot.params.bank" in str(err.value) and "medprompt_bank.yaml" in str(err.value)


def test_permutations_are_distinct_deterministic_and_start_with_the_original_order() -> None:
    orders = permutations_for(["A", "B", "C", "D"], 5, "0:q1")
    assert orders[0] == ["A", "B", "C", "D"]
    assert len({tuple(o) for o in orders}) == 5
    assert orders == permutations_for(["A", "B", "C", "D"], 5, "0:q1")
    assert len(permutations_for(["A", "B"], 5, "x")) == 2  # only two orders exist


def test_shuffled_item_maps_shown_letters_back_and_hides_gold() -> None:
    item = _item(1, "Q?")
    view, back = shuffled_item(item, ["C", "A", "D", "B"])
    assert view.options == {
        "A": "Radioactive iodine",
        "B": "Propranolol",
        "C": "Surgery",
        "D": "Levothyroxine",
    }
    assert back == {"A": "C", "B": "A", "C": "D", "D": "B"}
    assert view.answer is None


def _shown_letter(req: FakeRequest, text: str) -> str:
    block = req.prompt_text.rsplit("Question:", 1)[-1]
    return re.search(rf"^([A-D])\) {re.escape(text)}$", block, re.M).group(1)  # type: ignore[union-attr]


SHUFFLE = {"type": "step", "op": "choice_shuffle", "model": "m", "template": "medprompt_cot"}
VOTE = {"type": "step", "op": "majority_vote"}


async def test_choice_shuffle_maps_answers_back_to_the_original_letters(fake_llm, tmp_path: Path) -> None:
    # A model that always finds the right option text, wherever it is shown.
    server, client = fake_llm(lambda req: f"Step 1: It fits.\nAnswer: {_shown_letter(req, 'Propranolol')}")
    nodes = {"fewshot": _knn(_bank(tmp_path), k=2), "shuffle": SHUFFLE, "vote": VOTE}
    spec = _spec(nodes, ["fewshot -> shuffle", "shuffle -> vote"], output={"columns": COLUMNS})
    events = await _run(spec, client, [_item(1, "Which drug treats heart failure symptoms?")])
    shuffled = [e.trace for e in events if getattr(e, "type", "") == "trace" and e.node == "shuffle"]
    assert len(shuffled) == 5 and server.request_count == 5
    assert {t.answer for t in shuffled} == {"A"}
    assert len({t.meta["shown_answer"] for t in shuffled}) > 1  # shown at different positions
    assert all(t.meta["fewshot_ids"][0] == "heart-1" for t in shuffled)
    assert all(
        "Which drug class lowers mortality in heart failure?" in r.prompt_text for r in server.requests
    )
    end = ends(events)["q1"]
    (row,) = end.rows
    assert row["predicted"] == "A" and row["votes"] == {"A": 5}


async def test_a_position_biased_model_votes_for_what_it_was_shown_first(fake_llm, tmp_path: Path) -> None:
    _server, client = fake_llm(lambda req: "Step 1: The first option.\nAnswer: A")
    spec = _spec({"shuffle": SHUFFLE, "vote": VOTE}, ["shuffle -> vote"], output={"columns": COLUMNS})
    events = await _run(spec, client, [_item(1, "Q?")])
    shuffled = [e.trace for e in events if getattr(e, "type", "") == "trace" and e.node == "shuffle"]
    assert [t.answer for t in shuffled] == [t.meta["order"][0] for t in shuffled]
    (row,) = ends(events)["q1"].rows
    assert sum(row["votes"].values()) == 5


def _t(i: int, answer: str | None) -> Trace:
    return Trace(id=f"q/p{i}", item_id="q", node="shuffle", text="", answer=answer, sample_index=i)


def test_a_tied_vote_goes_to_the_answer_given_first() -> None:
    assert vote([_t(0, "B"), _t(1, "A"), _t(2, "A"), _t(3, "B"), _t(4, "C")]) == (
        "B",
        {"A": 2, "B": 2, "C": 1},
    )
    assert vote([_t(0, None), _t(1, "C"), _t(2, "A"), _t(3, "A"), _t(4, "C")])[0] == "C"
    assert vote([_t(0, "D"), _t(1, "A"), _t(2, "A")])[0] == "A"
    assert vote([_t(0, None)]) == (None, {})


async def test_majority_vote_op_breaks_ties_by_permutation_order(fake_llm) -> None:
    # Shown order decides the answer: the model picks Levothyroxine (B) when it is shown first or
    # second, Propranolol (A) otherwise; whichever way the votes split, a tie resolves the same way.
    def reply(req: FakeRequest) -> str:
        letter = _shown_letter(req, "Levothyroxine")
        pick = "Levothyroxine" if letter in "AB" else "Propranolol"
        return f"Step 1: Hmm.\nAnswer: {_shown_letter(req, pick)}"

    _server, client = fake_llm(reply)
    spec = _spec({"shuffle": SHUFFLE, "vote": VOTE}, ["shuffle -> vote"], output={"columns": COLUMNS})
    first = ends(await _run(spec, client, [_item(1, "Q?")]))["q1"].rows[0]
    again = ends(await _run(spec, client, [_item(1, "Q?")]))["q1"].rows[0]
    assert first["predicted"] == again["predicted"] and first["votes"] == again["votes"]
    votes = first["votes"]
    assert set(votes) <= {"A", "B"} and sum(votes.values()) == 5
    assert first["predicted"] == max(sorted(votes), key=lambda a: (votes[a], a == "B"))
