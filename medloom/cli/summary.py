"""The summary printed when a run ends."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from medloom.runs.report import Report


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def print_summary(console: Console, report: Report, run_dir: str) -> None:
    items = Table(title=f"run {report.run_id}", show_header=True, header_style="bold")
    for col in ("items", "kept", "rejected", "failed", "skipped rows", "rows", "pass rate"):
        items.add_column(col, justify="right")
    items.add_row(
        str(report.items),
        f"[green]{report.kept}",
        f"[yellow]{report.rejected}",
        f"[red]{report.failed}",
        str(report.skipped_rows),
        str(report.rows),
        _pct(report.pass_rate),
    )
    console.print(items)
    nodes = Table(title="nodes", header_style="bold")
    for col in (
        "node",
        "in",
        "out",
        "passed",
        "failed",
        "dropped",
        "pass rate",
        "calls",
        "cached",
        "tokens out",
    ):
        nodes.add_column(col, justify="right" if col != "node" else "left")
    for name, s in report.nodes.items():
        nodes.add_row(
            name,
            str(s.traces_in),
            str(s.traces_out),
            str(s.passed),
            str(s.failed),
            str(s.dropped),
            _pct(s.pass_rate),
            str(s.calls),
            str(s.cached_calls),
            f"{s.completion_tokens:,}",
        )
    console.print(nodes)
    console.print(
        f"tokens: {report.prompt_tokens:,} prompt + {report.completion_tokens:,} completion"
        f" · {report.calls} calls ({report.cached_calls} from cache)"
        + (f" · cost {report.cost:.4f}" if report.cost else "")
        + f" · wall {report.wall_time_s:.1f} s · {report.output_tokens_per_s:,.0f} tok/s"
    )
    if report.budget is not None:
        limits = ", ".join(f"{k}={v:g}" for k, v in report.budget.model_dump(exclude_none=True).items())
        state = (
            f"[bold yellow]stopped[/]: {report.stopped_by.cap} reached"
            if report.stopped_by
            else "within caps"
        )
        console.print(f"budget: {limits} · spent {report.spend.describe()} · {state}")
    if report.rejection_reasons:
        console.print("[bold]top rejection reasons[/]")
        for reason, count in report.rejection_reasons[:5]:
            console.print(f"  {count:>5} × {reason}")
    if report.failure_reasons:
        console.print("[bold red]failures[/]")
        for reason, count in report.failure_reasons[:5]:
            console.print(f"  {count:>5} × {reason}")
    if report.skipped:
        console.print(f"[bold yellow]{report.skipped_rows} input rows skipped[/] (first ones):")
        for row in report.skipped[:5]:
            console.print(f"  row {row['index']}: {row['reason']}")
    console.print(
        f"\n[bold]dataset[/]      {run_dir}/dataset  (also data.parquet, data.jsonl, README.md)\n"
        f"[bold]trajectories[/] {run_dir}/trajectories.jsonl\n"
        f"[bold]report[/]       {run_dir}/report.json"
    )
