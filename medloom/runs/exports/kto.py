"""``kto``: unpaired ``prompt``, ``completion``, ``label`` (KTOTrainer): kept traces are desirable,
traces that failed a verifier are undesirable."""

from __future__ import annotations

from collections import Counter
from typing import Any

import datasets

from medloom.runs.exports.base import TEXT, ExportRows, text_or_messages
from medloom.runs.exports.layout import ExportOptions, completion_value, prompt_value, reply_text, same_text
from medloom.runs.exports.source import ExportItem


def kto_rows(items: list[ExportItem], options: ExportOptions) -> ExportRows:
    rows: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    for item in items:
        if item.question is None:
            skipped["item without a recorded question"] += 1
            continue
        kept = set(item.kept)
        seen: list[tuple[str, bool]] = []
        labelled = [(item.traces[t], True) for t in item.kept]
        labelled += [(t, False) for t in item.traces.values() if t.id not in kept and item.failed(t)]
        for trace, label in labelled:
            text = reply_text(item, trace, options)
            clash = [good for s, good in seen if same_text(s, text)]
            if clash:
                why = "duplicate text" if label in clash else "failed trace with the text of a kept one"
                skipped[why] += 1
                continue
            seen.append((text, label))
            failed = [] if label else item.failed(trace)
            rows.append(
                {
                    "prompt": prompt_value(item, options),
                    "completion": completion_value(text, options),
                    "label": label,
                    "trace_id": trace.id,
                    "item_id": item.item_id,
                    "reason": " | ".join(v.reason for v in failed if v.reason),
                }
            )
    side = text_or_messages(options)
    features = datasets.Features(
        {
            "prompt": side,
            "completion": side,
            "label": datasets.Value("bool"),
            "trace_id": TEXT,
            "item_id": TEXT,
            "reason": TEXT,
        }
    )
    method = (
        "Unpaired examples: every kept trace is desirable (`label` true); every trace that failed a "
        "verifier and was not kept is undesirable (`label` false, the verifier's reason in `reason`), "
        "including traces of rejected items. A reply whose text (up to whitespace) already appeared for the "
        "item counts once, and a failed trace with the text of a kept one is left out."
    )
    return ExportRows(rows, features, method, skipped)
