"""Write an evaluation's files: per-item predictions, a results table in Markdown, JSON."""

from __future__ import annotations

import json
from pathlib import Path

from medloom.eval.records import EvalResult, SolverResult

COLUMNS = ("solver", "n", "correct", "accuracy", "CI", "answered", "tokens/item", "cost/item", "s/item")


def row_cells(s: SolverResult, confidence: float = 0.95) -> list[str]:
    """The table cells of one solver (shared by the terminal table and results.md)."""
    return [
        s.solver,
        str(s.n),
        str(s.correct),
        f"{s.accuracy:.1%}",
        f"{s.ci_low:.1%}–{s.ci_high:.1%}",
        f"{s.answered}/{s.n}",
        f"{s.tokens_per_item:,.0f}",
        f"${s.cost_per_item:.6f}" if s.cost else "–",
        f"{s.seconds_per_item:.2f}",
    ]


def results_markdown(result: EvalResult) -> str:
    level = f"{result.confidence:.0%}"
    header = [c if c != "CI" else f"{level} CI (Wilson)" for c in COLUMNS]
    lines = [
        "# Evaluation results",
        "",
        f"Benchmark: `{result.benchmark}`",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" if i == 0 else "---:" for i in range(len(header))) + " |",
    ]
    lines += ["| " + " | ".join(row_cells(s)) + " |" for s in result.solvers]
    lines += [
        "",
        "accuracy = correct / n (no answer counts as wrong); tokens are prompt + completion per item; "
        "s/item = the run's wall time / n (items run concurrently).",
        "",
        "Runs (trajectories, reports):",
        "",
    ]
    lines += [f"- {s.solver}: `{s.config}` → `{s.run_dir}`" for s in result.solvers]
    if result.skipped_rows:
        lines += ["", f"Skipped benchmark rows: {len(result.skipped_rows)}"]
        lines += [f"- row {i}: {why}" for i, why in result.skipped_rows[:20]]
    return "\n".join(lines) + "\n"


def write_results(result: EvalResult) -> dict[str, Path]:
    """predictions.jsonl, predictions.parquet, results.md and results.json in the output dir."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(result.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [p.model_dump(mode="json") for p in result.predictions]
    paths = {
        "predictions_jsonl": out / "predictions.jsonl",
        "predictions_parquet": out / "predictions.parquet",
        "results_md": out / "results.md",
        "results_json": out / "results.json",
    }
    with paths["predictions_jsonl"].open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    table = pa.Table.from_pylist(
        [{**row, "detail": json.dumps(row["detail"], ensure_ascii=False)} for row in rows]
    )
    pq.write_table(table, paths["predictions_parquet"])
    paths["results_md"].write_text(results_markdown(result), encoding="utf-8")
    summary = result.model_dump(mode="json", exclude={"predictions"})
    paths["results_json"].write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return paths
