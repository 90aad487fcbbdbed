"""KG step ops on their own: question cleaning, difficulty, entity linking and its tie-break."""

from __future__ import annotations

from medloom.core.records import Item
from medloom.ops.kg_multihop import clean_question, difficulty
from medloom.testing import FakeRequest
from tests.graphs.test_engine import ends, make_spec, run, runtime

SELECT = {"type": "selector", "method": "all"}


def test_clean_question_keeps_the_question_sentence() -> None:
    raw = "Question: Which compound binds the target of X?\n\nFacts:\n- X binds Y"
    assert clean_question(raw) == "Which compound binds the target of X?"
    assert clean_question("  which disease?  Because ...") == "which disease?"


def test_difficulty_from_solver_accuracy() -> None:
    assert [difficulty(c, 4) for c in (0, 1, 2, 3, 4)] == ["hard", "medium", "medium", "easy", "easy"]


def link_spec() -> object:
    return make_spec(
        {
            "link": {"type": "step", "op": "kg_link_entities", "model": "m", "template": "kg_entities"},
            "out": SELECT,
        },
        ["link -> out"],
        output={"columns": {"q": "data.kg_question_entities", "a": "data.kg_answer_entities"}},
    )


ITEM = Item(
    id="q1",
    index=0,
    question="Which inhaled corticosteroid is used for the maintenance treatment of asthma?",
    options={"A": "Acarbose", "B": "Fluticasone furoate"},
    answer="B",
)


async def test_linking_moves_question_names_out_of_the_answer_list_and_tie_breaks(fake_llm) -> None:
    prompts: list[str] = []

    def reply(req: FakeRequest) -> str:
        prompts.append(req.prompt_text)
        if "Best match" in req.prompt_text or "Reply with the number" in req.prompt_text:
            return "2"
        # the extractor wrongly lists the disease as the answer, and misspells the drug
        return "Question entities: asthma; diabetes mellitus\nAnswer entities: asthma; fluticasone furoat"

    _server, client = fake_llm(reply)
    spec = link_spec()
    end = ends(await run(await runtime(spec, client), [ITEM]))["q1"]  # type: ignore[arg-type]
    assert end.status == "kept", end.reason

    (row,) = end.rows
    question = [e["mention"] for e in row["q"]]
    answer = {e["name"]: e["how"] for e in row["a"]}
    assert question == ["asthma", "diabetes mellitus"]
    assert answer == {"Fluticasone furoate": "fuzzy"}
    linked = {e["mention"]: (e["name"], e["how"]) for e in row["q"]}
    assert linked["diabetes mellitus"] == ("type 2 diabetes mellitus", "llm tie-break")
    tiebreak = [p for p in prompts if "Best match" in p or "Reply with the number" in p]
    assert len(tiebreak) == 1 and "type 1 diabetes mellitus" in tiebreak[0]


async def test_item_without_kg_entities_is_rejected(fake_llm) -> None:
    _server, client = fake_llm(lambda req: "Question entities: none\nAnswer entities: none")
    spec = link_spec()
    odd = ITEM.model_copy(update={"question": "Which one is it?", "options": {"A": "x", "B": "y"}})
    end = ends(await run(await runtime(spec, client), [odd]))["q1"]  # type: ignore[arg-type]
    assert (end.status, end.reason_code) == ("rejected", "no question entity in KG")


def test_role_question_names_only_the_start_and_asks_for_the_end() -> None:
    from medloom.kg.paths import Hop, KGPath, PathNode
    from medloom.kg.verbalise import role_question

    a = PathNode(id="a", name="Acamprosate", type="Compound")
    d1 = PathNode(id="d1", name="alcohol dependence", type="Disease")
    d2 = PathNode(id="d2", name="nicotine dependence", type="Disease")
    c = PathNode(id="c", name="Varenicline", type="Compound")
    g = PathNode(id="g", name="CHRNA4", type="Gene")
    path = KGPath(
        nodes=[a, d1, d2, c, g],
        hops=[
            Hop(source=a, relation="treats", target=d1),
            Hop(source=d1, relation="resembles", target=d2),
            Hop(source=d2, relation="treats", target=c, forward=False),
            Hop(source=c, relation="binds", target=g),
        ],
    )
    assert role_question(path) == (
        "Acamprosate treats a disease; that disease resembles a second disease; the second disease "
        "is treated by a compound; that compound binds the protein encoded by which gene?"
    )
