"""Prompts are laid out for prefix caching: fixed instructions and few-shot examples first, then the
item, then what varies per call. Sticky routing sends an item's calls to one server; these tests
check that those calls then share everything up to and including the item."""

from __future__ import annotations

from typing import Any

import pytest

from medloom.agents.agent import item_variables, trace_variables
from medloom.agents.templates import TemplateLibrary
from medloom.core.records import Item, Step, Trace

# The generator, verifier and refiner templates of the MCQ recipes (mcq_refine, reasonmed).
PER_TRACE = ["mcq_judge", "mcq_refine", "reasonmed_verify", "reasonmed_refine", "reasonmed_rank"]
ITEMS = [
    Item(id="a", index=0, question="A 40-year-old man has chest pain on exertion. Next test?", answer="B",
         options={"A": "CT head", "B": "Exercise ECG", "C": "Lumbar puncture", "D": "Skin biopsy"}),
    Item(id="b", index=1, question="A child has a barking cough and stridor. Most likely cause?", answer="C",
         options={"A": "Asthma", "B": "Epiglottitis", "C": "Croup", "D": "Pertussis"}),
]  # fmt: skip


def trace(item: Item, answer: str, steps: list[str]) -> Trace:
    return Trace(
        id=f"{item.id}-{answer}",
        item_id=item.id,
        node="generate",
        text="\n".join(steps),
        steps=[Step(index=i + 1, text=s) for i, s in enumerate(steps)],
        answer=answer,
    )


def variables(item: Item, t: Trace) -> dict[str, Any]:
    flag = {"index": 1, "reason": f"step 1 of {t.id} is wrong"}
    return item_variables(item) | trace_variables(t) | {"flags": [flag], "other_reasons": [t.id]}


def text(rendered: str | list[Any]) -> str:
    if isinstance(rendered, str):
        return rendered
    return "\n".join(f"{m.role}: {m.content}" for m in rendered)


def shared_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


@pytest.mark.parametrize("mode", ["completion", "chat"])
@pytest.mark.parametrize("name", PER_TRACE)
def test_two_traces_of_one_item_share_the_instructions_examples_and_item(name: str, mode: Any) -> None:
    library = TemplateLibrary()
    item = ITEMS[0]
    first = trace(item, "A", ["Exertional pain suggests a head problem."])
    second = trace(item, "B", ["Exertional chest pain suggests angina.", "Stress testing fits."])
    one = text(library.render(name, mode, variables(item, first)))
    two = text(library.render(name, mode, variables(item, second)))
    prefix = shared_prefix(one, two)
    assert item.question in prefix
    assert all(option in prefix for option in (item.options or {}).values())
    assert first.steps[0].text not in prefix and second.steps[0].text not in prefix


@pytest.mark.parametrize("mode", ["completion", "chat"])
@pytest.mark.parametrize("name", ["mcq_cot", *PER_TRACE])
def test_different_items_share_everything_before_the_item(name: str, mode: Any) -> None:
    library = TemplateLibrary()
    rendered = [
        text(library.render(name, mode, variables(item, trace(item, "A", ["Some step."])))) for item in ITEMS
    ]
    prefix = shared_prefix(*rendered)
    for item, full in zip(ITEMS, rendered, strict=True):
        assert item.question not in prefix
        # Nothing of the item before the shared part ends: the item starts where the prompts differ.
        assert full.index(item.question) >= len(prefix) - len("Question: ")
    if mode == "completion":
        assert len(prefix) > len(rendered[0]) / 2  # the instructions and few-shot examples
    else:
        assert len(prefix) > len("system: ") + 40  # the system message
