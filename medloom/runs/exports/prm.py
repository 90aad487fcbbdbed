"""``prm``: process-reward rows ``prompt``, ``completions`` (the steps), ``labels`` (one bool a step),
TRL's stepwise-supervision layout, labelled from the verifiers' step flags.

The rule: a step flagged by any verifier is False; every step before the first flagged step is True;
steps after the first flagged step are False (they build on a wrong step), or left out with
``prm_after_error="truncate"``. A trace with no flags is all True when it passed every verifier.
A trace that failed a verifier without flagging a step has no step-level evidence: it is skipped."""

from __future__ import annotations

from collections import Counter
from typing import Any

import datasets

from medloom.core.records import Trace
from medloom.runs.exports.base import TEXT, ExportRows
from medloom.runs.exports.layout import ExportOptions, prompt_text
from medloom.runs.exports.source import ExportItem


def step_labels(trace: Trace, after_error: str = "false") -> tuple[list[bool], int | None] | None:
    """Labels for the trace's steps and the first flagged step, or None when it cannot be labelled."""
    flagged = {index for v in trace.verdicts for index in v.step_flags}
    indices = [s.index for s in trace.steps]
    first = min((i for i in indices if i in flagged), default=None)
    if first is None:
        if not trace.verdicts or any(not v.passed for v in trace.verdicts):
            return None
        return [True] * len(indices), None
    labels = [i < first for i in indices]
    if after_error == "truncate":
        labels = labels[: indices.index(first) + 1]
    return labels, first


def prm_rows(items: list[ExportItem], options: ExportOptions) -> ExportRows:
    rows: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    for item in items:
        if item.question is None:
            skipped["item without a recorded question"] += 1
            continue
        seen: set[tuple[str, ...]] = set()
        for trace in item.traces.values():
            if not trace.steps:
                skipped["trace without parsed steps"] += 1
                continue
            labelled = step_labels(trace, options.prm_after_error)
            if labelled is None:
                why = "trace without verdicts" if not trace.verdicts else "failed without step flags"
                skipped[why] += 1
                continue
            labels, first = labelled
            completions = [s.text for s in trace.steps][: len(labels)]
            key = tuple(completions)
            if key in seen:
                skipped["duplicate steps"] += 1
                continue
            seen.add(key)
            rows.append(
                {
                    "prompt": prompt_text(item, options),
                    "completions": completions,
                    "labels": labels,
                    "trace_id": trace.id,
                    "item_id": item.item_id,
                    "first_error_step": first,
                    "flags": [
                        f"step {i} ({v.verifier}): {why}"
                        for v in trace.verdicts
                        for i, why in sorted(v.step_flags.items())
                    ],
                }
            )
    features = datasets.Features(
        {
            "prompt": TEXT,
            "completions": datasets.List(TEXT),
            "labels": datasets.List(datasets.Value("bool")),
            "trace_id": TEXT,
            "item_id": TEXT,
            "first_error_step": datasets.Value("int32"),
            "flags": datasets.List(TEXT),
        }
    )
    after = (
        "labelled False (they build on a wrong step)"
        if options.prm_after_error == "false"
        else "left out (the row ends at the first wrong step)"
    )
    method = (
        "One row per trace with parsed steps and verdicts (kept or not), `completions` being its steps. "
        "Labels come from the verifiers' step flags: a flagged step is False, every step before the "
        f"first flagged step is True, and steps after the first flagged step are {after}. A trace with "
        "no flags is all True when it passed every verifier; a trace that failed without flagging any "
        "step carries no step-level evidence and is skipped. `first_error_step` is 1-based; `flags` "
        "lists every flag with its verifier."
    )
    return ExportRows(rows, features, method, skipped)
