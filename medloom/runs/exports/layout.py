"""How a trace becomes a training example: the prompt (system, question with options) and the
assistant's reply (reasoning steps, optionally inside ``<think>``, then the answer)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medloom.core.records import Trace
from medloom.runs.exports.source import ExportItem

Message = dict[str, str]

DEFAULT_SYSTEM = (
    "You are a careful clinician. Reason step by step, one numbered step a line, then state the answer."
)


class ExportOptions(BaseModel):
    """Choices shared by the training exports (CLI flags of the same names)."""

    model_config = ConfigDict(extra="forbid")

    layout: Literal["conversational", "standard"] = "conversational"
    """Conversational: lists of ``{role, content}`` messages; standard: plain strings."""
    sft_style: Literal["messages", "prompt_completion"] = "messages"
    """SFT rows as one ``messages`` conversation, or as ``prompt`` + ``completion``."""
    system: str | None = DEFAULT_SYSTEM
    """The system message (None or empty: none)."""
    reasoning: Literal["plain", "think"] = "plain"
    """Where the steps go: as plain text before the answer, or inside ``<think>…</think>``."""
    pairs_per_item: int = Field(default=4, ge=1)
    """DPO: at most this many (chosen, rejected) pairs per item."""
    prm_after_error: Literal["false", "truncate"] = "false"
    """PRM: steps after the first flagged step are labelled False, or left out."""


def user_text(item: ExportItem) -> str:
    """The question with its options, as the user asks it."""
    lines = [(item.question or "").strip()]
    if item.options:
        lines.append("")
        lines += [f"{key}. {text}" for key, text in item.options.items()]
    return "\n".join(lines)


def prompt_messages(item: ExportItem, options: ExportOptions) -> list[Message]:
    messages = [{"role": "system", "content": options.system}] if options.system else []
    return [*messages, {"role": "user", "content": user_text(item)}]


def prompt_text(item: ExportItem, options: ExportOptions) -> str:
    """The standard-layout prompt: the system text (if any), a blank line, the question."""
    parts = [options.system] if options.system else []
    return "\n\n".join([*parts, user_text(item)]) + "\n\n"


def reasoning_text(trace: Trace) -> str:
    """The steps as written ("Step k: …"), or the raw text when nothing was parsed."""
    return trace.steps_text() if trace.steps else trace.text.strip()


def answer_text(item: ExportItem, trace: Trace) -> str:
    if trace.answer is None:
        return ""
    option = (item.options or {}).get(trace.answer)
    return f"Answer: {trace.answer}. {option}" if option else f"Answer: {trace.answer}"


def reply_text(item: ExportItem, trace: Trace, options: ExportOptions, reasoning: str | None = None) -> str:
    """The assistant's reply for a trace (``reasoning`` replaces the trace's own steps)."""
    body = reasoning if reasoning is not None else reasoning_text(trace)
    answer = answer_text(item, trace) if reasoning is None else ""
    if options.reasoning == "think":
        return f"<think>\n{body}\n</think>\n\n{answer}".rstrip()
    return "\n\n".join(p for p in (body, answer) if p)


def prompt_value(item: ExportItem, options: ExportOptions) -> Any:
    """The ``prompt`` column in the chosen layout."""
    if options.layout == "conversational":
        return prompt_messages(item, options)
    return prompt_text(item, options)


def completion_value(text: str, options: ExportOptions) -> Any:
    """A ``completion`` / ``chosen`` / ``rejected`` column in the chosen layout."""
    return [{"role": "assistant", "content": text}] if options.layout == "conversational" else text


def same_text(a: str, b: str) -> bool:
    """Equal up to whitespace: such a pair teaches nothing."""
    return " ".join(a.split()) == " ".join(b.split())
