"""The medprompt_cot templates render the retrieved examples, in both modes."""

from __future__ import annotations

from medloom.agents.agent import item_variables
from medloom.agents.templates import TemplateLibrary
from medloom.core.records import Item

SHOT = {
    "id": "b1",
    "question": "Which vector transmits Lyme disease?",
    "options": {"A": "Anopheles mosquito", "B": "Ixodes tick"},
    "steps": ["Lyme disease is caused by Borrelia.", "Ixodes ticks transmit it."],
    "answer": "B",
}


def _item(fewshot: list[dict[str, object]] | None) -> Item:
    data = {"fewshot": fewshot} if fewshot is not None else {}
    options = {"A": "Insulin", "B": "Glucagon"}
    return Item(id="q", index=0, question="Which hormone lowers glucose?", options=options, data=data)


def test_completion_prompt_shows_the_examples_then_the_question() -> None:
    prompt = TemplateLibrary().render("medprompt_cot", "completion", item_variables(_item([SHOT])))
    assert isinstance(prompt, str)
    assert "Question: Which vector transmits Lyme disease?" in prompt
    assert "Step 2: Ixodes ticks transmit it.\nAnswer: B\n###" in prompt
    assert prompt.index("Lyme") < prompt.index("lowers glucose")
    assert prompt.endswith("B) Glucagon\nStep 1:")


def test_completion_prompt_without_a_bank_uses_the_builtin_examples() -> None:
    prompt = TemplateLibrary().render("medprompt_cot", "completion", item_variables(_item(None)))
    assert isinstance(prompt, str) and prompt.count("###") >= 2 and "Lyme" not in prompt


def test_chat_prompt_gives_each_example_as_a_user_and_assistant_turn() -> None:
    messages = TemplateLibrary().render("medprompt_cot", "chat", item_variables(_item([SHOT, SHOT])))
    assert isinstance(messages, list)
    assert [m.role for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[2].content.endswith("Answer: B")
    assert "lowers glucose" in messages[-1].content
