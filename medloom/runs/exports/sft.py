"""``sft``: one conversation per kept trace (SFTTrainer's ``messages``, or ``prompt`` + ``completion``)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import datasets

from medloom.core.records import Trace
from medloom.runs.exports.base import MESSAGES, TEXT, TOOL_MESSAGES, ExportRows, text_or_messages
from medloom.runs.exports.layout import (
    ExportOptions,
    completion_value,
    prompt_messages,
    prompt_text,
    prompt_value,
    reply_text,
)
from medloom.runs.exports.source import ExportItem


def tool_conversation(trace: Trace) -> list[dict[str, Any]] | None:
    """A tool-using agent's conversation (``meta.messages`` with tool turns), in the columns of
    ``TOOL_MESSAGES``; None for other traces."""
    messages = trace.meta.get("messages")
    if not isinstance(messages, list) or not any(m.get("role") == "tool" for m in messages):
        return None
    return [
        {
            "role": m["role"],
            "content": m.get("content") or "",
            "tool_calls": m.get("tool_calls") or None,
            "tool_call_id": m.get("tool_call_id"),
        }
        for m in messages
    ]


def sft_rows(items: list[ExportItem], options: ExportOptions) -> ExportRows:
    if options.sft_style == "messages" and options.layout == "conversational":
        tool_rows = _tool_rows(items)
        if tool_rows is not None:
            return tool_rows
    rows: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    for item in items:
        if item.question is None:
            skipped["item without a recorded question"] += 1
            continue
        for trace_id in item.kept:
            trace = item.traces[trace_id]
            reply = reply_text(item, trace, options)
            ids = {"item_id": item.item_id, "trace_id": trace_id}
            if options.sft_style == "prompt_completion":
                rows.append(
                    {"prompt": prompt_value(item, options), "completion": completion_value(reply, options)}
                    | ids
                )
            elif options.layout == "conversational":
                reply_message = {"role": "assistant", "content": reply}
                rows.append({"messages": [*prompt_messages(item, options), reply_message]} | ids)
            else:
                rows.append({"text": prompt_text(item, options) + reply} | ids)
    if options.sft_style == "prompt_completion":
        side = text_or_messages(options)
        columns: dict[str, Any] = {"prompt": side, "completion": side}
    else:
        columns = {"messages": MESSAGES} if options.layout == "conversational" else {"text": TEXT}
    features = datasets.Features(columns | {"item_id": TEXT, "trace_id": TEXT})
    method = (
        "One row per kept trace (the rows of the run's own dataset). The prompt is the question with its "
        "options" + (" after a system message" if options.system else "") + "; the assistant reply is the "
        "trace's parsed steps (`Step k: …`, or its raw text when no steps were parsed)"
        + (" inside `<think>…</think>`" if options.reasoning == "think" else "")
        + ", then `Answer: LETTER. option text`. Rejected and failed items give no rows."
    )
    return ExportRows(rows, features, method, skipped)


def _tool_rows(items: list[ExportItem]) -> ExportRows | None:
    """Rows of a run whose kept traces are tool-using conversations (None: it has none)."""
    rows: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    for item in items:
        for trace_id in item.kept:
            trace = item.traces[trace_id]
            messages = tool_conversation(trace)
            if messages is None:
                skipped["kept trace without tool calls"] += 1
                continue
            tools = json.dumps(trace.meta.get("tools") or [], ensure_ascii=False)
            rows.append({"messages": messages, "tools": tools, "item_id": item.item_id, "trace_id": trace_id})
    if not rows:
        return None
    features = datasets.Features(
        {"messages": TOOL_MESSAGES, "tools": TEXT, "item_id": TEXT, "trace_id": TEXT}
    )
    method = (
        "One row per kept tool-using trajectory: the conversation as the agent had it, in the OpenAI "
        "chat schema (system, user, assistant turns with `tool_calls`, `tool` turns with "
        "`tool_call_id`), after any rewrite the recipe made; `tools` is the JSON list of the tools "
        "offered (pass `json.loads(row['tools'])` as `tools=` to `apply_chat_template`)."
    )
    return ExportRows(rows, features, method, skipped)
