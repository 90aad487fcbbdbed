"""A fake endpoint that plays every role of the kg_multihop recipe from the KG's own items.

It knows the items the recipe's source makes (same params, same seed), so it can write a
question, answer it, and explain it through the path, like a model that gets them right, or
leak an intermediate name into the question when asked to.
"""

from __future__ import annotations

import re
from pathlib import Path

from medloom.core.records import Item
from medloom.data.sources import item_source
from medloom.graphs.loader import load_spec
from medloom.kg.paths import KGPath
from medloom.kg.verbalise import role_question
from medloom.testing import FakeRequest


class KGOracle:
    def __init__(self, recipe: Path, overrides: list[str] | None = None, *, leak: bool = False):
        spec = load_spec(recipe, overrides)
        self.items = [it for _, it in item_source(spec, recipe.parent) if isinstance(it, Item)]
        self.by_first_fact = {it.data["facts"][0]: it for it in self.items}
        self.leak = leak

    def question_for(self, item: Item) -> str:
        """A question that starts with the anchor (the prompt ends with it) and walks the path."""
        extra = f" by way of {item.data['intermediates'][0]}" if self.leak else ""
        return f"{item.data['anchor']}{extra}: {role_question(KGPath.model_validate(item.data['path']))}"

    def _item_by_question(self, prompt: str) -> Item:
        for it in self.items:
            role = role_question(KGPath.model_validate(it.data["path"]))
            if self.question_for(it) in prompt or role in prompt:
                return it
        raise AssertionError(f"no known question in prompt: {prompt[-300:]}")

    def __call__(self, req: FakeRequest) -> str:
        prompt = req.prompt_text
        if "Hidden entity type:" in prompt:  # the question writer (continues "Question: <anchor>")
            last_facts = prompt.rsplit("Facts:\n", 1)[1]
            first = re.sub(r"^- ", "", last_facts.splitlines()[0])
            item = self.by_first_fact[first]
            assert prompt.endswith(f"Question: {item.data['anchor']}\n") or prompt.endswith(
                f"Question: {item.data['anchor']}"
            ), prompt[-200:]
            return self.question_for(item).removeprefix(str(item.data["anchor"]))
        item = self._item_by_question(prompt)
        # the options as this prompt shows them (the label check's open-book solver shuffles them)
        shown = re.findall(rf"^([A-Z])\) {re.escape(str(item.gold_text))}$", prompt, re.M)
        letter = shown[-1] if shown else item.answer
        if "one fact per numbered step" in prompt:  # the reasoning writer (continues "Step 1:")
            facts = item.data["path_text"]
            lines = [facts[0]] + [f"Step {i}: {f}" for i, f in enumerate(facts[1:], start=2)]
            return " " + "\n".join(lines) + f"\nAnswer: {letter}"
        # the solver (mcq_cot)
        return f" {item.data['anchor']} leads to {item.gold_text}.\nAnswer: {item.answer}"
