"""Prompt templates: every built-in renders in both modes; lookup, errors and overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from medloom.agents.agent import item_variables, trace_variables
from medloom.agents.parsing import parse_reasoning
from medloom.agents.templates import BUILTIN_DIR, TemplateLibrary, split_chat
from medloom.core.errors import ConfigError
from medloom.core.records import Item, Trace

ITEM = Item(
    id="q1",
    index=0,
    question="A 30-year-old woman with palpitations and heat intolerance. Best initial treatment?",
    options={"A": "Propranolol", "B": "Levothyroxine", "C": "Surgery"},
    answer="A",
)
TRACE_TEXT = (
    "Step 1: Palpitations and heat intolerance suggest hyperthyroidism.\n"
    "Step 2: Levothyroxine treats the symptoms.\n"
    "Answer: B"
)


def _trace() -> Trace:
    steps, answer, _ = parse_reasoning(TRACE_TEXT, ITEM.options)
    return Trace(id="q1/gen/m/t0/0", item_id="q1", node="gen", text=TRACE_TEXT, steps=steps, answer=answer)


def _variables(other_reasons: list[str] | None = None) -> dict:
    return {
        **item_variables(ITEM),
        **trace_variables(_trace()),
        "flags": [{"index": 2, "reason": "levothyroxine worsens hyperthyroidism"}],
        "reasons": ["answer B does not match gold A"],
        "other_reasons": other_reasons if other_reasons is not None else ["confused hypo- and hyper-"],
    }


BUILTINS = ["mcq_cot", "mcq_judge", "mcq_refine"]


def test_available_lists_the_builtins_without_partials() -> None:
    available = TemplateLibrary().available()
    assert set(BUILTINS) <= set(available)
    assert available == sorted(available)
    assert not any(name.startswith("_") for name in available)  # partials are not templates


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("mode", ["chat", "completion"])
def test_builtin_renders_with_the_item(name: str, mode: str) -> None:
    out = TemplateLibrary().render(name, mode, _variables())  # type: ignore[arg-type]
    text = out if isinstance(out, str) else "\n".join(m.content for m in out)
    assert ITEM.question in text
    for letter, option in ITEM.options.items():  # type: ignore[union-attr]
        assert f"{letter}) {option}" in text
    assert "{{" not in text and "{%" not in text


@pytest.mark.parametrize("mode", ["chat", "completion"])
def test_judge_shows_steps_answer_and_gold(mode: str) -> None:
    out = TemplateLibrary().render("mcq_judge", mode, _variables())  # type: ignore[arg-type]
    text = out if isinstance(out, str) else out[-1].content
    assert "Correct answer: A) Propranolol" in text
    assert "Step 1: Palpitations and heat intolerance suggest hyperthyroidism." in text
    assert "Step 2: Levothyroxine treats the symptoms.\nAnswer: B" in text


@pytest.mark.parametrize("mode", ["chat", "completion"])
def test_refine_shows_flags_and_other_reasons(mode: str) -> None:
    lib = TemplateLibrary()
    out = lib.render("mcq_refine", mode, _variables())  # type: ignore[arg-type]
    text = out if isinstance(out, str) else out[-1].content
    assert "levothyroxine worsens hyperthyroidism" in text
    assert "confused hypo- and hyper-" in text
    assert "Step 2: Levothyroxine treats the symptoms." in text
    without = lib.render("mcq_refine", mode, _variables(other_reasons=[]))  # type: ignore[arg-type]
    text = without if isinstance(without, str) else without[-1].content
    assert "other attempts" not in text
    assert "levothyroxine worsens hyperthyroidism" in text


def test_completion_prompts_end_with_the_unfinished_line() -> None:
    lib = TemplateLibrary()
    cot = lib.render("mcq_cot", "completion", item_variables(ITEM))
    judge = lib.render("mcq_judge", "completion", _variables())
    refine = lib.render("mcq_refine", "completion", _variables())
    assert isinstance(cot, str) and cot.endswith("C) Surgery\nStep 1:")
    assert isinstance(judge, str) and judge.endswith("Answer: B\nReview:\nVerdict:")
    # The refiner continues the first flagged step.
    assert isinstance(refine, str) and refine.endswith("Corrected steps:\nStep 2:")


def test_completion_prompt_contains_the_few_shot_examples_then_the_item() -> None:
    cot = TemplateLibrary().render("mcq_cot", "completion", item_variables(ITEM))
    assert isinstance(cot, str)
    blocks = cot.split("###")
    assert len(blocks) == 3
    assert "Answer: A" in blocks[0] and "Answer: B" in blocks[1]
    assert ITEM.question in blocks[2] and "Answer:" not in blocks[2]


@pytest.mark.parametrize("name", BUILTINS)
def test_chat_templates_split_into_system_and_user(name: str) -> None:
    messages = TemplateLibrary().render(name, "chat", _variables())
    assert isinstance(messages, list)
    assert [m.role for m in messages] == ["system", "user"]
    assert "---" not in messages[0].content
    assert messages[1].content.startswith("Question: ")


def test_split_chat_markers() -> None:
    text = "preamble\n--- system ---\nbe brief\n--- user ---\nhi\n--- assistant ---\nhello\n--- user ---\n\n"
    messages = split_chat(text)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "preamble"),
        ("system", "be brief"),
        ("user", "hi"),
        ("assistant", "hello"),
    ]


def test_missing_variable_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"mcq_judge\.chat\.j2.*steps"):
        TemplateLibrary().render("mcq_judge", "chat", item_variables(ITEM))


def test_missing_template(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        TemplateLibrary([tmp_path]).render("nope", "chat", {})
    assert "nope.chat.j2" in str(err.value)
    assert "variant exists" not in str(err.value)
    assert err.value.key == "template"


def test_missing_mode_names_the_other_variant(tmp_path: Path) -> None:
    (tmp_path / "only_chat.chat.j2").write_text("--- user ---\nhello {{ question }}\n")
    lib = TemplateLibrary([tmp_path])
    with pytest.raises(ConfigError, match=r"only_chat\.completion\.j2.*a chat variant exists"):
        lib.render("only_chat", "completion", {"question": "q"})
    (tmp_path / "only_completion.completion.j2").write_text("Q: {{ question }}\nA:")
    with pytest.raises(ConfigError, match=r"a completion variant exists"):
        lib.render("only_completion", "chat", {"question": "q"})


def test_user_directory_overrides_a_builtin(tmp_path: Path) -> None:
    (tmp_path / "mcq_cot.chat.j2").write_text(
        '{% import "_mcq_macros.j2" as m %}--- user ---\n'
        "CUSTOM {{ question }}\n{{ m.options_block(options) }}"
    )
    lib = TemplateLibrary([tmp_path])
    messages = lib.render("mcq_cot", "chat", item_variables(ITEM))
    assert isinstance(messages, list) and len(messages) == 1
    assert messages[0].content.startswith(f"CUSTOM {ITEM.question}\nA) Propranolol")
    assert lib.source_path("mcq_cot", "chat") == tmp_path / "mcq_cot.chat.j2"
    # The completion variant still comes from the built-ins.
    assert lib.source_path("mcq_cot", "completion") == BUILTIN_DIR / "mcq_cot.completion.j2"
    assert lib.has("mcq_cot", "completion")
    assert "mcq_cot" in lib.available()


def test_user_directory_adds_templates(tmp_path: Path) -> None:
    (tmp_path / "free.completion.j2").write_text("Q: {{ question }}\n\nA:\n\n")
    lib = TemplateLibrary([tmp_path])
    assert lib.available() == sorted([*TemplateLibrary().available(), "free"])
    # Trailing whitespace is removed so the model continues right after "A:".
    assert lib.render("free", "completion", {"question": "2+2?"}) == "Q: 2+2?\n\nA:"


def test_few_shot_blocks_are_rendered_once_per_library(tmp_path: Path) -> None:
    """The MCQ few-shot examples are read and rendered on the first render only (not per call):
    an edit to the examples file after it does not reach the prompts of the same library."""
    (tmp_path / "_mcq_examples.j2").write_text((BUILTIN_DIR / "_mcq_examples.j2").read_text())
    lib = TemplateLibrary([tmp_path])
    variables = _variables()
    first = {name: lib.render(name, "completion", variables) for name in ("mcq_cot", "mcq_judge")}
    examples = (BUILTIN_DIR / "_mcq_examples.j2").read_text()
    (tmp_path / "_mcq_examples.j2").write_text(examples.replace("Serum ferritin", "Serum zinc"))
    again = {name: lib.render(name, "completion", variables) for name in ("mcq_cot", "mcq_judge")}
    assert again == first
    assert "Serum ferritin" in str(first["mcq_cot"]) and "Serum ferritin" in str(first["mcq_judge"])
    assert "Serum zinc" in str(TemplateLibrary([tmp_path]).render("mcq_cot", "completion", variables))
