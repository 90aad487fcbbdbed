"""``sft``: one conversation per kept trace (SFTTrainer's ``messages``, or ``prompt`` + ``completion``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import datasets

from medloom.runs.exports.base import MESSAGES, TEXT, ExportRows, text_or_messages
from medloom.runs.exports.layout import (
    ExportOptions,
    completion_value,
    prompt_messages,
    prompt_text,
    prompt_value,
    reply_text,
)
from medloom.runs.exports.source import ExportItem


def sft_rows(items: list[ExportItem], options: ExportOptions) -> ExportRows:
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
