"""Parse model output into steps and a final answer (the MCQ choice: ``medloom.core.text``)."""

from __future__ import annotations

import json
import re
from typing import Any

from medloom.core.records import Step
from medloom.core.text import extract_choice

_STEP = re.compile(r"^\s*(?:\*\*)?Step\s*(\d+)\s*(?:\*\*)?\s*[:.)\-–]\s*(?:\*\*)?\s*(.*)$", re.I)
_ANSWER_LINE = re.compile(
    r"^\s*(?:\*\*)?(?:final\s+answer|answer)(?:\*\*)?\s*[:\-–]\s*(?:\*\*)?\s*(.+?)\s*$", re.I
)
_ANSWER_IS = re.compile(r"(?:the\s+)?(?:final\s+)?answer\s+is\s*[:\-]?\s*(.+?)(?:[.\n]|$)", re.I)
# A line that states the answer in prose ("Therefore, the answer is (C).") ends the steps too.
_ANSWER_IS_LINE = re.compile(
    r"^\s*(?:\*\*)?(?:(?:so|thus|hence|therefore),?\s+)?(?:the\s+)?(?:final\s+)?answer\s+is\b", re.I
)


def parse_steps(text: str) -> list[Step]:
    """Lines "Step k: ..." (continuation lines join the step) up to the answer line."""
    steps: list[Step] = []
    for line in text.splitlines():
        m = _STEP.match(line)
        if m:
            steps.append(Step(index=int(m.group(1)), text=m.group(2).strip()))
        elif _ANSWER_LINE.match(line) or _ANSWER_IS_LINE.match(line):
            break
        elif steps and line.strip():
            steps[-1] = Step(index=steps[-1].index, text=f"{steps[-1].text} {line.strip()}".strip())
    return steps


def parse_answer(text: str) -> str | None:
    """The last "Answer: ..." line, else the last "the answer is ..." phrase."""
    found: str | None = None
    for line in text.splitlines():
        m = _ANSWER_LINE.match(line)
        if m:
            found = m.group(1).strip()
    if found is None:
        matches = _ANSWER_IS.findall(text)
        if matches:
            found = matches[-1].strip()
    return found or None


def parse_reasoning(
    text: str, options: dict[str, str] | None = None
) -> tuple[list[Step], str | None, str | None]:
    """Steps, answer (a letter when ``options`` are given) and a parse error, if any."""
    steps = parse_steps(text)
    raw = parse_answer(text)
    if options:
        answer = extract_choice(raw, options) if raw else None
        if answer is None:
            # A base model sometimes writes the letter without the "Answer:" label.
            answer = extract_choice(text.strip().splitlines()[-1], options) if text.strip() else None
        if answer is None:
            return steps, None, "no final answer naming one of the options"
        return steps, answer, None
    if raw is None:
        return steps, None, "no final answer line ('Answer: ...')"
    return steps, raw, None


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (tolerates code fences and surrounding prose)."""
    start = text.find("{")
    while start != -1:
        depth = 0
        in_str = False
        escape = False
        for i in range(start, len(text)):
            ch = text[i]
            if in_str:
                if escape:
                    escape = False
                elif ch == "\\":
                    escape = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    try:
                        value = json.loads(text[start : i + 1])
                    except json.JSONDecodeError:
                        break
                    return value if isinstance(value, dict) else None
        start = text.find("{", start + 1)
    return None
