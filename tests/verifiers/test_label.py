"""The label check: solver accuracy against chance, and well-posedness from the KG (issue 13)."""

from __future__ import annotations

import re

from medloom.core.records import Item
from medloom.kg import load_kg
from medloom.kg.samplers import satisfying_ends
from medloom.ops.kg_multihop import shuffled
from medloom.testing import FakeRequest
from medloom.verifiers.label import beats_chance, chance_tail, needed_to_beat_chance, options_satisfying
from tests.graphs.test_engine import ends, make_spec, run, runtime
from tests.verifiers.test_kg_gaps import OPTIONS, slc9a1_path


def test_one_of_four_right_is_what_a_guesser_gets_most_of_the_time() -> None:
    # the old rule (min_correct: 1 of 4 samples, 5 options) passes a uniform guesser 59 % of the time
    assert round(chance_tail(1, 4, 5), 2) == 0.59
    assert not beats_chance(1, 4, 5, alpha=0.1)
    assert needed_to_beat_chance(4, 5, alpha=0.1) == 3  # a guesser reaches 3/4 2.7 % of the time
    assert chance_tail(3, 4, 5) < 0.1 < chance_tail(2, 4, 5)
    assert needed_to_beat_chance(2, 2, alpha=0.01) is None  # too few samples to tell at all


def test_options_satisfying_the_chain_come_from_the_kg() -> None:
    kg = load_kg().kg
    path = slc9a1_path()
    assert options_satisfying(kg, path, OPTIONS) == ["B"]  # only stomach cancer
    reached = sorted(kg.names[n] for n in satisfying_ends(kg, path) if kg.names[n] != "stomach cancer")
    ill_posed = {**OPTIONS, "C": reached[0]}
    assert options_satisfying(kg, path, ill_posed) == ["B", "C"]


def test_shuffles_are_seeded_permutations_that_map_back() -> None:
    options = {"A": "a", "B": "b", "C": "c", "D": "d", "E": "e"}
    moved, back = shuffled(options, "item:0")
    assert sorted(moved.values()) == sorted(options.values())
    assert all(options[back[new]] == text for new, text in moved.items())
    assert shuffled(options, "item:0") == (moved, back)


def label_spec(**params: object) -> object:
    return make_spec(
        {
            "gen": {"type": "generator", "models": ["m"], "template": "mcq_cot"},
            "label": {
                "type": "step",
                "op": "kg_label_check",
                "model": "m",
                "template": "mcq_cot",
                "params": {"samples": 4, "open_book_samples": 4, **params},
            },
            "out": {"type": "selector", "method": "all"},
        },
        ["gen -> label", "label -> out"],
        output={"columns": {"difficulty": "data.difficulty", "label": "data.label_check"}},
    )


def slc9a1_item(options: dict[str, str] = OPTIONS) -> Item:
    return Item(
        id="slc9a1",
        index=0,
        question="SLC9A1 is associated with a disease that resembles which disease?",
        options=options,
        answer="B",
        data={"path": slc9a1_path().model_dump(), "path_facts": ["x"], "path_text": ["x"]},
    )


def solver(open_book: str, closed_book: str = "always A"):  # type: ignore[no-untyped-def]
    """Reads the options the prompt shows; answers by rule ("gold" / "always A")."""

    def reply(req: FakeRequest) -> str:
        prompt = req.prompt_text
        rule = open_book if "Facts" in prompt.rsplit("###", 1)[-1] else closed_book
        shown = re.findall(r"^([A-Z])\) stomach cancer$", prompt, re.M)
        letter = shown[-1] if rule == "gold" else "A"
        return f" it follows.\nAnswer: {letter}"

    return reply


async def test_a_guessing_solver_does_not_confirm_a_label_and_a_reader_does(fake_llm) -> None:
    _server, client = fake_llm(solver(open_book="always A"))
    end = ends(await run(await runtime(label_spec(), client), [slc9a1_item()]))["slc9a1"]  # type: ignore[arg-type]
    # letter A under 4 shuffles is right about once: chance, so the label is unconfirmed (not "ill-posed")
    assert end.status == "rejected" and end.reason_code == "label unconfirmed (open-book solver at chance)"

    _server, client = fake_llm(solver(open_book="gold"))
    end = ends(await run(await runtime(label_spec(), client), [slc9a1_item()]))["slc9a1"]  # type: ignore[arg-type]
    assert end.status == "kept", end.reason
    (row,) = end.rows
    label = row["label"] if isinstance(row["label"], dict) else __import__("json").loads(row["label"])
    assert label["open_book_confirmed"] and label["well_posed_kg"]
    # the closed-book solver always says A: a difficulty tag, reported at chance, never a filter
    assert label["closed_book_beats_chance"] is False


async def test_an_item_a_distractor_also_answers_is_ill_posed_whatever_the_solver(fake_llm) -> None:
    kg = load_kg().kg
    other = sorted(
        kg.names[n] for n in satisfying_ends(kg, slc9a1_path()) if kg.names[n] != "stomach cancer"
    )[0]
    _server, client = fake_llm(solver(open_book="gold"))
    item = slc9a1_item({**OPTIONS, "C": other})
    end = ends(await run(await runtime(label_spec(), client), [item]))["slc9a1"]  # type: ignore[arg-type]
    assert end.status == "rejected" and end.reason_code == "ill-posed (KG)"
    assert "['C'] also satisfy the chain" in str(end.reason)
