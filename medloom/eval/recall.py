"""Reasoning recall (MedCaseReasoning): diagnostic accuracy and coverage of the clinician's reasoning.

Each solver answers every case (stage ``<solver>``, the case text only: no diagnosis, no reference
reasoning); a judge recipe (``configs/eval/recall_judge.yaml``, op ``reasoning_recall``) then
decides, one LLM call each, whether the final diagnosis matches the reference and whether the
solver's text covers each numbered reasoning statement (stage ``<solver>-judge``; every
judgement is a ``recall_judgement`` note in that run's trajectory). A judgement that is neither
yes nor no is *undecided*: counted apart, never as a match or as covered.

Figures per solver: **accuracy** = matched diagnoses / cases (Wilson interval); **recall** = the
mean over cases of covered / statements (MedCaseReasoning's per-case recall, averaged), beside
the pooled share covered / all statements.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from medloom.core.errors import ConfigError
from medloom.core.events import ItemFinished
from medloom.data.readers import BadRow, DatasetSpec, iter_rows
from medloom.eval.runner import solvers_from
from medloom.eval.stages import (
    StageRunner,
    item_ends,
    last_traces,
    markdown_table,
    notes_of,
    slug,
    write_summary,
)
from medloom.eval.stats import wilson_interval
from medloom.ops.reasoning_recall import RECALL_JUDGEMENT, statements_of
from medloom.runs.runner import EmbeddedProvider, ProgressHook

DEFAULT_JUDGE = Path("configs/eval/recall_judge.yaml")
"""The judge recipe used without ``--judge`` (relative to the current directory, as the default solvers)."""

CASE_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("id", "case_id", "pmcid"),
    "case": ("case", "case_prompt", "case_text", "question"),
    "diagnosis": ("diagnosis", "final_diagnosis", "answer"),
    "statements": ("reasoning", "statements", "diagnostic_reasoning"),
}
"""Columns tried for each case field (medloom's demo layout and MedCaseReasoning's)."""


class Case(BaseModel):
    id: str
    index: int
    case: str
    diagnosis: str
    statements: list[str]


class CaseScore(BaseModel):
    """One solver on one case."""

    solver: str
    case_id: str
    index: int
    diagnosis: str
    predicted: str | None
    match: str
    """The judge on the diagnosis: yes, no or undecided (no final diagnosis: no)."""
    statements: int
    covered: int
    undecided: int
    recall: float
    status: str
    """kept, or why the case has no judged answer (solver or judge failure)."""
    controls: int = 0
    control_yes: int = 0
    """Control judgements (another case's diagnosis or statement) the judge answered yes."""
    response: str = ""
    judgements: list[dict[str, Any]] = Field(default_factory=list)
    solver_run: str = ""
    judge_run: str = ""


class RecallSummary(BaseModel):
    solver: str
    config: str
    run_dir: str
    judge_run_dir: str
    n: int
    correct: int
    match_undecided: int
    accuracy: float
    ci_low: float
    ci_high: float
    statements: int
    covered: int
    undecided: int
    recall: float
    """Mean over cases of covered / statements."""
    pooled_recall: float
    """covered / statements over all cases."""
    unjudged: int
    """Cases with no judged answer (the solver or the judge failed on them)."""
    controls: int = 0
    control_yes: int = 0
    """Control judgements answered yes: a judge that says yes to another case's diagnosis or
    statement is biased, and its accuracy and recall are inflated by about that rate."""


class RecallResult(BaseModel):
    benchmark: str
    out_dir: str
    judge: str
    skipped_rows: list[tuple[int, str]] = Field(default_factory=list)
    solvers: list[RecallSummary] = Field(default_factory=list)
    cases: list[CaseScore] = Field(default_factory=list)


def _column(row: dict[str, Any], key: str, fields: dict[str, str]) -> str | None:
    if key in fields:
        return fields[key]
    return next((c for c in CASE_COLUMNS[key] if c in row), None)


def read_cases(
    path: str, fields: dict[str, str] | None = None, limit: int | None = None
) -> tuple[list[Case], list[tuple[int, str]]]:
    """Cases from a JSONL/CSV/Parquet/saved dataset; ``fields`` maps id, case, diagnosis and
    statements to columns (default: the first of :data:`CASE_COLUMNS` present)."""
    fields = dict(fields or {})
    unknown = set(fields) - set(CASE_COLUMNS)
    if unknown:
        raise ConfigError(
            f"unknown case field(s) {sorted(unknown)} in --field; use {', '.join(CASE_COLUMNS)}",
            key="--field",
        )
    if not Path(path).expanduser().exists() and "/" not in path.strip("/"):
        raise ConfigError(f"case file '{path}' does not exist; check --dataset", key="--dataset")
    cases: list[Case] = []
    bad: list[tuple[int, str]] = []
    for index, row in iter_rows(DatasetSpec(path=str(Path(path).expanduser()), limit=limit)):
        if isinstance(row, BadRow):
            bad.append((index, str(row)))
            continue
        cols = {k: _column(row, k, fields) for k in CASE_COLUMNS}
        missing = [
            k for k in ("case", "diagnosis", "statements") if cols[k] is None or not row.get(cols[k] or "")
        ]
        if missing:
            bad.append(
                (
                    index,
                    f"no {', '.join(missing)} (columns: {', '.join(row)}); "
                    f"map with --field {missing[0]}=COLUMN",
                )
            )
            continue
        statements = statements_of(row[cols["statements"] or ""])
        if not statements:
            bad.append((index, "no reasoning statements (a list, or text numbered 1. 2. ...)"))
            continue
        case_id = str(row[cols["id"]]) if cols["id"] and row.get(cols["id"]) is not None else str(index)
        cases.append(
            Case(
                id=case_id,
                index=index,
                case=str(row[cols["case"] or ""]),
                diagnosis=str(row[cols["diagnosis"] or ""]).strip(),
                statements=statements,
            )
        )
    if not cases:
        detail = f": {bad[0][1]}" if bad else ""
        raise ConfigError(f"no readable cases in {path}{detail}", key="--dataset")
    return cases, bad


def controls_for(case: Case, cases: list[Case]) -> list[dict[str, str]]:
    """What the judge should answer "no" to for ``case``: the next case's diagnosis and first
    statement (none with a single case, or when the next case has the same diagnosis)."""
    other = cases[(cases.index(case) + 1) % len(cases)]
    if other is case or other.diagnosis.lower() == case.diagnosis.lower():
        return []
    return [
        {"kind": "diagnosis", "subject": other.diagnosis},
        {"kind": "statement", "subject": other.statements[0]},
    ]


def _final_diagnosis(trace_answer: str | None, text: str) -> str | None:
    """The solver's final diagnosis: its parsed ``Answer:`` line, else a ``Final diagnosis:`` line."""
    if trace_answer and trace_answer.strip():
        return trace_answer.strip()
    hit = re.search(r"(?im)^\s*(?:final\s+)?diagnosis\s*:\s*(.+)$", text)
    return hit.group(1).strip() if hit else None


def _failure(stage: str, end: ItemFinished | None) -> str:
    if end is None:
        return f"{stage} missing: the run did not finish this case"
    return f"{stage} {end.status}: {end.reason}"


def score_case(
    solver: str, case: Case, response: str, predicted: str | None, judged: list[dict[str, Any]], status: str
) -> CaseScore:
    """Count one case's judgements (undecided apart, never covered; controls apart)."""
    scored = [j for j in judged if not j.get("control")]
    controls = [j.get("decision") for j in judged if j.get("control")] if status == "kept" else []
    decisions = [j.get("decision") for j in scored if j.get("kind") == "statement"]
    covered = decisions.count("yes")
    if status != "kept":
        covered = 0
    match = next((str(j.get("decision")) for j in scored if j.get("kind") == "diagnosis"), "no")
    return CaseScore(
        solver=solver,
        case_id=case.id,
        index=case.index,
        diagnosis=case.diagnosis,
        predicted=predicted,
        match=match if status == "kept" else "no",
        statements=len(case.statements),
        covered=covered,
        undecided=decisions.count("undecided") if status == "kept" else 0,
        recall=covered / len(case.statements) if case.statements else 0.0,
        status=status,
        controls=len(controls),
        control_yes=controls.count("yes"),
        response=response,
        judgements=judged,
    )


def summarize_recall(
    solver: str, config: str, run_dir: str, judge_dir: str, scores: list[CaseScore]
) -> RecallSummary:
    n = len(scores)
    correct = sum(s.match == "yes" for s in scores)
    low, high = wilson_interval(correct, n)
    statements = sum(s.statements for s in scores)
    covered = sum(s.covered for s in scores)
    return RecallSummary(
        solver=solver,
        config=config,
        run_dir=run_dir,
        judge_run_dir=judge_dir,
        n=n,
        correct=correct,
        match_undecided=sum(s.match == "undecided" for s in scores),
        accuracy=correct / n if n else 0.0,
        ci_low=low,
        ci_high=high,
        statements=statements,
        covered=covered,
        undecided=sum(s.undecided for s in scores),
        recall=sum(s.recall for s in scores) / n if n else 0.0,
        pooled_recall=covered / statements if statements else 0.0,
        unjudged=sum(s.status != "kept" for s in scores),
        controls=sum(s.controls for s in scores),
        control_yes=sum(s.control_yes for s in scores),
    )


async def aevaluate_recall(
    configs: Sequence[str | Path],
    cases_path: str | Path,
    *,
    judge: str | Path | None = None,
    endpoints: list[str] | None = None,
    limit: int | None = None,
    fields: dict[str, str] | None = None,
    overrides: list[str] | None = None,
    out_dir: str | Path | None = None,
    concurrency: int | None = None,
    no_cache: bool = False,
    embedded: EmbeddedProvider | None = None,
    progress: Callable[[str], ProgressHook | None] | None = None,
) -> RecallResult:
    """Run each solver on the cases, then the judge on each solver's answers.

    ``overrides`` apply to the solvers only; the judge recipe runs as written (pass ``judge``
    to judge with another model or prompt)."""
    solvers = solvers_from(configs)
    judge_path = Path(judge) if judge else DEFAULT_JUDGE
    if not judge_path.is_file():
        raise ConfigError(f"judge recipe {judge_path} not found; pass --judge FILE", key="--judge")
    cases, bad = read_cases(str(cases_path), fields, limit)
    out = Path(out_dir) if out_dir else Path("runs") / time.strftime("eval-recall-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    result = RecallResult(
        benchmark=str(cases_path), out_dir=str(out), judge=str(judge_path), skipped_rows=bad
    )
    async with contextlib.AsyncExitStack() as stack:
        stages = StageRunner(out, stack, endpoints, concurrency, no_cache, embedded, progress)
        for solver in solvers:
            stage = slug(solver.label)
            solver_dir = await stages.run(
                stage,
                solver.path,
                ({"id": c.id, "question": c.case} for c in cases),
                mcq=False,
                gold=False,
                overrides=overrides,
            )
            traces, ends = last_traces(solver_dir), item_ends(solver_dir)
            answers: dict[str, tuple[str, str | None]] = {}
            for case in cases:
                trace = traces.get(case.id)
                text = trace.text if trace else ""
                answers[case.id] = (text, _final_diagnosis(trace.answer if trace else None, text))
            judge_dir = await stages.run(
                f"{stage}-judge",
                judge_path,
                (
                    {
                        "id": c.id,
                        "question": c.case,
                        "answer": c.diagnosis,
                        "response": answers[c.id][0],
                        "predicted": answers[c.id][1] or "",
                        "statements": c.statements,
                        "controls": controls_for(c, cases),
                    }
                    for c in cases
                ),
                mcq=False,
                gold=True,
            )
            judged, judge_ends = notes_of(judge_dir, RECALL_JUDGEMENT), item_ends(judge_dir)
            scores = []
            for case in cases:
                status = "kept"
                if case.id not in traces:
                    status = _failure("solver", ends.get(case.id))
                elif judge_ends.get(case.id) is None or judge_ends[case.id].status != "kept":
                    status = _failure("judge", judge_ends.get(case.id))
                text, predicted = answers[case.id]
                score = score_case(solver.label, case, text, predicted, judged.get(case.id, []), status)
                scores.append(
                    score.model_copy(update={"solver_run": str(solver_dir), "judge_run": str(judge_dir)})
                )
            result.cases.extend(scores)
            result.solvers.append(
                summarize_recall(solver.label, str(solver.path), str(solver_dir), str(judge_dir), scores)
            )
    return result


RECALL_COLUMNS = (
    "solver",
    "n",
    "accuracy",
    "95% CI",
    "recall",
    "covered",
    "undecided",
    "failed",
    "ctrl yes",
)
"""covered: covered / reference statements over all cases (the pooled recall); ctrl yes: control
judgements answered yes / controls."""


def recall_cells(s: RecallSummary) -> list[str]:
    und = f"{s.undecided}" + (f" (+{s.match_undecided} dx)" if s.match_undecided else "")
    return [
        s.solver,
        str(s.n),
        f"{s.accuracy:.1%}",
        f"{s.ci_low:.0%}–{s.ci_high:.0%}",
        f"{s.recall:.1%}",
        f"{s.covered}/{s.statements}",
        und,
        str(s.unjudged),
        f"{s.control_yes}/{s.controls}" if s.controls else "–",
    ]


def write_recall(result: RecallResult) -> dict[str, Path]:
    """``recall.json`` (summaries), ``recall_cases.jsonl`` (per solver and case, with every
    judgement) and ``recall.md`` (the table and a per-case table)."""
    lines = [
        f"# Reasoning recall on {Path(result.benchmark).name}",
        "",
        *markdown_table(RECALL_COLUMNS, (recall_cells(s) for s in result.solvers)),
        "",
        "accuracy: judged diagnosis matches / cases (95% Wilson CI); recall: mean over cases of "
        "covered / reference statements; covered: all covered / all statements (pooled recall); undecided "
        "judgements count as not covered (and an undecided diagnosis as no match). ctrl yes: the "
        "judge said yes to another case's diagnosis or statement (should be no); a high "
        "rate means the judge is biased and the accuracy and recall above are inflated.",
        "",
        "| solver | case | diagnosis | predicted | match | covered | undecided | status |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {c.solver} | {c.case_id} | {c.diagnosis} | {(c.predicted or '–').replace('|', '/')[:60]} | "
            f"{c.match} | {c.covered}/{c.statements} | {c.undecided} | {c.status} |"
            for c in result.cases
        ),
        "",
        f"judge: `{result.judge}`",
        *(f"- {s.solver}: solver run `{s.run_dir}`, judge run `{s.judge_run_dir}`" for s in result.solvers),
    ]
    return write_summary(Path(result.out_dir), "recall", result, "cases", result.cases, lines)


def dumps(result: RecallResult, files: dict[str, Path]) -> str:
    payload = result.model_dump(mode="json", exclude={"cases"})
    payload["cases"] = [c.model_dump(mode="json", exclude={"response", "judgements"}) for c in result.cases]
    payload["files"] = {k: str(v) for k, v in files.items()}
    return json.dumps(payload)
