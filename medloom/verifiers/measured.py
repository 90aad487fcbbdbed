"""The verifier figures medloom ships: what each check verifies and its measured precision/recall.

``medloom/verifiers/data/measured.json`` is written by ``python bench/verifiers.py --write``; the
run report and the dataset card read it, so "verified" comes with the figures behind it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

MEASURED_FILE = Path(__file__).parent / "data" / "measured.json"

_OPTIONS = ("check_relations", "cover_path", "strict")
"""kg_grounding options that change what it catches (a recipe's check matches the benchmark row
with the same ones set)."""


class MeasuredVerifier(BaseModel):
    """One verifier of a recipe with the benchmark figures of its configuration (when measured)."""

    node: str
    check: str
    params: dict[str, Any]
    what: str
    measured_as: str | None = None
    scope: list[str] = []
    recall: float | None = None
    precision: float | None = None
    false_rejection_rate: float | None = None


@cache
def shipped() -> dict[str, Any]:
    """The shipped benchmark figures (empty when the file is missing)."""
    if not MEASURED_FILE.exists():
        return {}
    return dict(json.loads(MEASURED_FILE.read_text(encoding="utf-8")))


def _options(check: str, params: dict[str, Any]) -> tuple[str, ...]:
    if check != "kg_grounding":
        return ()
    return tuple(o for o in _OPTIONS if params.get(o))


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.0%}"


def _unmeasured(check: str, params: dict[str, Any]) -> str:
    if check == "kg_grounding" and params.get("steps") is False:
        return "every hop of the item's path is a KG edge (an exact lookup of ids and relations)"
    if check == "judge":
        return "an LLM's Correct/Error verdict (measure it: bench/verifiers.py --endpoint URL)"
    return "not measured by bench/verifiers.py"


def measure_verifier(node: str, check: str, params: dict[str, Any]) -> MeasuredVerifier:
    """The shipped figures for ``check`` configured with ``params`` (None figures when unmeasured)."""
    rows = [r for r in shipped().get("verifiers", []) if r.get("check") == check]
    wanted = _options(check, params)
    unmeasured = check == "kg_grounding" and params.get("steps") is False
    if params.get("coreference") is False or params.get("negation") is False:
        unmeasured = True
    by_model = [r for r in rows if r.get("model")]
    if by_model:  # a model's figures say nothing of another model the recipe may name
        row = by_model[-1]
        return MeasuredVerifier(
            node=node,
            check=check,
            params=params,
            what=f"{row.get('what', '')}; figures depend on the model: measured only with "
            f"{row['model']} (recall {_pct(row.get('recall'))}, precision {_pct(row.get('precision'))}, "
            f"false rejection {_pct(row.get('false_rejection_rate'))}); measure yours: "
            "bench/verifiers.py --endpoint URL",
        )
    for row in rows:
        p = row.get("params") or {}
        if not unmeasured and _options(check, p) == wanted and "coreference" not in p:
            return MeasuredVerifier(
                node=node,
                check=check,
                params=params,
                what=str(row.get("what", "")),
                measured_as=str(row.get("name")),
                scope=list(row.get("scope") or []),
                recall=row.get("recall"),
                precision=row.get("precision"),
                false_rejection_rate=row.get("false_rejection_rate"),
            )
    return MeasuredVerifier(node=node, check=check, params=params, what=_unmeasured(check, params))


def recipe_verifiers(config: dict[str, Any]) -> list[MeasuredVerifier]:
    """Every verifier of a recipe's verifier nodes, with its shipped figures."""
    out = []
    for name, node in (config.get("nodes") or {}).items():
        if not isinstance(node, dict) or node.get("type") != "verifier":
            continue
        for v in node.get("verifiers") or []:
            if v.get("check"):
                out.append(measure_verifier(name, str(v["check"]), dict(v.get("params") or {})))
            elif v.get("judge"):
                out.append(measure_verifier(name, "judge", {"judge": v["judge"]}))
    return out


def solver_summary(node: str, facets: dict[str, int]) -> list[str]:
    """Sentences on a label check's solvers from its ``label_check`` note facets."""
    out = []
    above, chance = facets.get("closed-book above chance", 0), facets.get("closed-book at chance", 0)
    if above + chance:
        line = f"{node}: the closed-book solver beat a guesser on {above}/{above + chance} items"
        if chance:
            line += f"; on the other {chance} it was at chance, so their difficulty tags say nothing"
        out.append(line)
    confirmed, unconfirmed = facets.get("open-book confirmed", 0), facets.get("open-book at chance", 0)
    if confirmed + unconfirmed:
        out.append(
            f"{node}: the open-book solver (shown the path's facts) confirmed {confirmed}/"
            f"{confirmed + unconfirmed} labels beyond chance"
        )
    posed, ill = facets.get("well posed (KG)", 0), facets.get("ill-posed (KG)", 0)
    if posed + ill:
        out.append(
            f"{node}: {posed}/{posed + ill} items well posed in the KG (only the answer satisfies the chain)"
        )
    return out


def verified_section(verifiers: list[dict[str, Any]], solvers: list[str]) -> list[str]:
    """Markdown lines: what each verifier checks and its shipped figures (for the dataset card)."""
    if not verifiers and not solvers:
        return []
    lines = [
        '## What "verified" means here',
        "",
        "Each verifier of the recipe, what it checks, and its recall and precision on injected errors"
        " and false-rejection rate on correct traces, as measured by `bench/verifiers.py` on real KG"
        " paths (the figures this medloom version ships; – where a verifier is not measured there).",
        "",
        "| node | verifier | what it checks | recall | precision | false rejection |",
        "| --- | --- | --- | --- | --- | --- |",
    ]

    def pct(value: Any) -> str:
        return "–" if value is None else f"{float(value):.0%}"

    for v in verifiers:
        name = v.get("measured_as") or v.get("check")
        lines.append(
            f"| {v.get('node')} | {name} | {v.get('what', '')} | {pct(v.get('recall'))}"
            f" | {pct(v.get('precision'))} | {pct(v.get('false_rejection_rate'))} |"
        )
    if solvers:
        lines += ["", *(f"- {s}." for s in solvers)]
    return [*lines, ""]
