"""``dpo``: ``prompt``, ``chosen``, ``rejected`` (DPOTrainer). Pairs an op recorded (Med-REFL) are used
as they are; otherwise a kept trace is paired with a trace of the same item that failed a verifier."""

from __future__ import annotations

from collections import Counter
from typing import Any

import datasets

from medloom.core.records import Trace
from medloom.runs.exports.base import TEXT, ExportRows, text_or_messages
from medloom.runs.exports.layout import ExportOptions, completion_value, prompt_value, reply_text, same_text
from medloom.runs.exports.source import ExportItem


def _unique(candidates: list[tuple[Trace, str]]) -> list[tuple[Trace, str]]:
    out: list[tuple[Trace, str]] = []
    for trace, text in candidates:
        if not any(same_text(text, seen) for _, seen in out):
            out.append((trace, text))
    return out


def diagonal(n_chosen: int, n_rejected: int, limit: int) -> list[tuple[int, int]]:
    """Index pairs spreading over both sides first: (0,0), (1,1), (0,1), (1,0), … up to ``limit``."""
    pairs = [(i, j) for i in range(n_chosen) for j in range(n_rejected)]
    return sorted(pairs, key=lambda p: ((p[0] - p[1]) % max(n_chosen, n_rejected, 1), p[0]))[:limit]


def _derived(item: ExportItem, options: ExportOptions, skipped: Counter[str]) -> list[dict[str, Any]]:
    kept = set(item.kept)
    chosen = _unique([(item.traces[t], reply_text(item, item.traces[t], options)) for t in item.kept])
    failing = [t for t in item.traces.values() if t.id not in kept and item.failed(t)]
    rejected: list[tuple[Trace, str]] = []
    for trace in failing:
        text = reply_text(item, trace, options)
        if any(same_text(text, c) for _, c in chosen):
            skipped["rejected trace with the same text as a chosen one"] += 1
            continue
        rejected.append((trace, text))
    rejected = _unique(rejected)
    if not chosen or not rejected:
        why = "item without both a kept and a failed trace" if item.kept else "item without a kept trace"
        skipped[why] += 1
        return []
    rows = []
    for i, j in diagonal(len(chosen), len(rejected), options.pairs_per_item):
        (good, good_text), (bad, bad_text) = chosen[i], rejected[j]
        failed = item.failed(bad)
        rows.append(
            {
                "chosen": good_text,
                "rejected": bad_text,
                "trace_id": good.id,
                "rejected_trace_id": bad.id,
                "pair_kind": "kept_vs_failed",
                "rejected_by": ", ".join(n for v in failed for n in v.failing),
                "rejected_reason": " | ".join(v.reason for v in failed if v.reason),
            }
        )
    return rows


def _recorded(item: ExportItem, options: ExportOptions, skipped: Counter[str]) -> list[dict[str, Any]]:
    rows = []
    for pair in item.pairs:
        chosen, rejected = str(pair.get("chosen", "")), str(pair.get("rejected", ""))
        if same_text(chosen, rejected):
            skipped["recorded pair with the same text on both sides"] += 1
            continue
        rows.append(
            {
                "chosen": chosen,
                "rejected": rejected,
                "trace_id": str(pair.get("chosen_trace_id", "")),
                "rejected_trace_id": str(pair.get("rejected_trace_id", "")),
                "pair_kind": str(pair.get("kind", "recorded")),
                "rejected_by": str(pair.get("rejected_by", "")),
                "rejected_reason": str(pair.get("reason", "")),
            }
        )
    return rows


def dpo_rows(items: list[ExportItem], options: ExportOptions) -> ExportRows:
    rows: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    for item in items:
        if item.question is None:
            skipped["item without a recorded question"] += 1
            continue
        pairs = _recorded(item, options, skipped) if item.pairs else _derived(item, options, skipped)
        prompt = prompt_value(item, options)
        for pair in pairs:
            pair["chosen"] = completion_value(pair["chosen"], options)
            pair["rejected"] = completion_value(pair["rejected"], options)
            rows.append({"prompt": prompt, **pair, "item_id": item.item_id})
    side = text_or_messages(options)
    features = datasets.Features(
        {
            "prompt": side,
            "chosen": side,
            "rejected": side,
            "trace_id": TEXT,
            "rejected_trace_id": TEXT,
            "pair_kind": TEXT,
            "rejected_by": TEXT,
            "rejected_reason": TEXT,
            "item_id": TEXT,
        }
    )
    method = (
        "Per item, when an op recorded preference pairs (`preference_pair` notes, e.g. Med-REFL's "
        "`mid_reasoning` and `post_reasoning` pairs), those pairs are used as written. Otherwise "
        "*chosen* replies come from the item's kept traces and *rejected* replies from traces of the same "
        "item that failed a verifier and were not kept; `rejected_by` and `rejected_reason` name the "
        "verifier and its reason. Replies with the same text (up to whitespace) are never paired, and "
        f"duplicates count once. At most {options.pairs_per_item} pairs per item, spread over different "
        "chosen and rejected replies first. `trace_id` is the chosen trace, `rejected_trace_id` the other."
    )
    return ExportRows(rows, features, method, skipped)
