"""The few-shot bank: solved MCQ examples (self-generated CoT kept where it matched gold).

A bank is any dataset medloom reads (JSONL, Parquet, a saved dataset) whose rows carry a
question, options, the reasoning and the answer letter: the ``data.jsonl`` / ``dataset/`` of a
``configs/medprompt_bank.yaml`` run, or a hand-written file like ``configs/data/medprompt_bank.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from medloom.agents.parsing import parse_steps
from medloom.core.errors import ConfigError
from medloom.data.readers import BadRow, DatasetSpec, iter_rows


class BankExample(BaseModel):
    """One solved example, ready for a few-shot prompt."""

    id: str
    question: str
    options: dict[str, str]
    steps: list[str]
    answer: str

    @property
    def text(self) -> str:
        """What similarity is computed on: the question and its options."""
        return " ".join([self.question, *self.options.values()])


def _options(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list) and all(isinstance(o, dict) and "key" in o for o in value):
        return {str(o["key"]): str(o.get("text", "")) for o in value}
    if isinstance(value, list):
        return {chr(ord("A") + i): str(v) for i, v in enumerate(value)}
    raise ValueError(f"options must be a mapping or a list, got {type(value).__name__}")


def example_from_row(index: int, row: dict[str, Any]) -> BankExample:
    """A bank example from a run output row or a hand-written row; raises ValueError."""
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("no question")
    options = _options(row.get("options"))
    answer = str(row.get("answer") or row.get("predicted") or "").strip()
    if answer not in options:
        raise ValueError(f"answer '{answer}' is not one of the options {list(options)}")
    steps = row.get("steps")
    if not isinstance(steps, list) or not steps:
        reasoning = str(row.get("reasoning") or "")
        steps = [s.text for s in parse_steps(reasoning)]
    if not steps:
        raise ValueError("no reasoning steps ('steps' list or 'reasoning' with 'Step k:' lines)")
    ident = row.get("item_id") or row.get("id") or index
    return BankExample(
        id=str(ident), question=question, options=options, steps=[str(s) for s in steps], answer=answer
    )


def load_bank(path: str | Path, *, key: str | None = None) -> list[BankExample]:
    """Every usable example in ``path``; errors name the file, the row and the fix."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(
            f"few-shot bank '{path}' does not exist; build one with "
            "`medloom run configs/medprompt_bank.yaml` and point this key at its data.jsonl",
            key=key,
        )
    examples: list[BankExample] = []
    for index, row in iter_rows(DatasetSpec(path=str(p))):
        if isinstance(row, BadRow):
            raise ConfigError(f"few-shot bank {p}: row {index}: {row}", key=key)
        try:
            examples.append(example_from_row(index, row))
        except (ValueError, json.JSONDecodeError) as exc:
            raise ConfigError(f"few-shot bank {p}: row {index}: {exc}", key=key) from None
    if not examples:
        raise ConfigError(f"few-shot bank {p} has no examples", key=key)
    return examples
