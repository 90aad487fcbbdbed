"""The tables of `medloom stats` as rich renderables (printed by the CLI, shown by the viewer's `s`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table

from medloom.core.notes import facets_text, listing_cell, note_schema

if TYPE_CHECKING:
    from medloom.runs.stats import RunStats


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", header_style="bold")
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right")
    return table


def run_state_note(stats: RunStats) -> str:
    """ " — live" or " — interrupted (resume with ...)" for the overview's title; "" for an ended run."""
    if stats.interrupted:
        return f" — interrupted (resume with medloom run --resume {stats.report.run_id})"
    return " — live" if stats.live else ""


def render_stats(stats: RunStats) -> Group:
    """All tables of ``medloom stats`` (also used by the terminal viewer's statistics screen)."""
    rep = stats.report
    parts: list[RenderableType] = []
    overview = _table(
        f"run {rep.run_id} ({rep.recipe}){run_state_note(stats)}",
        "items",
        "kept",
        "rejected",
        "failed",
        "skipped rows",
        "rows",
        "pass rate",
    )
    overview.add_row(
        *map(str, (rep.items, rep.kept, rep.rejected, rep.failed, rep.skipped_rows, rep.rows)),
        _pct(rep.pass_rate),
    )
    overview.caption = (
        f"wall {rep.wall_time_s:.1f} s · {rep.items_per_s:.2f} items/s · "
        f"{rep.output_tokens_per_s:.1f} output tok/s · {rep.sessions} session(s)"
    )
    overview.caption_justify = "left"
    parts.append(overview)
    nodes = _table(
        "nodes", "node", "in", "out", "passed", "failed", "pass rate", "dropped", "calls", "cached"
    )
    for name, node in rep.nodes.items():
        nodes.add_row(
            name,
            *map(str, (node.traces_in, node.traces_out, node.passed, node.failed)),
            _pct(node.pass_rate),
            *map(str, (node.dropped, node.calls, node.cached_calls)),
        )
    parts.append(nodes)
    if stats.rounds:
        rounds = _table("pass rate by refinement round", "node", "round", "passed", "failed", "pass rate")
        for r in stats.rounds:
            rounds.add_row(r.node, str(r.round), str(r.passed), str(r.failed), _pct(r.pass_rate))
        parts.append(rounds)
    if stats.usage:
        usage = _table(
            "tokens and cost",
            "node",
            "model",
            "calls",
            "cached",
            "failed",
            "prompt tok",
            "compl. tok",
            "cost",
        )
        for u in stats.usage:
            usage.add_row(
                u.node,
                u.model,
                *map(str, (u.calls, u.cached_calls, u.failed_calls, u.prompt_tokens, u.completion_tokens)),
                f"{u.cost:.4f}",
            )
        parts.append(usage)
    if stats.latency_by_node:
        latency = _table("latency (s, uncached calls)", "node", "calls", "p50", "p90", "p99", "max")
        for node_name, pct in stats.latency_by_node.items():
            latency.add_row(
                node_name, str(int(pct["n"])), *(f"{pct[k]:.3f}" for k in ("p50", "p90", "p99", "max"))
            )
        parts.append(latency)
    if stats.throughput:
        through = _table(
            f"throughput ({stats.bucket_s:g} s windows)",
            "from s",
            "items",
            "",
            "kept",
            "rejected",
            "failed",
            "out tok/s",
        )
        peak = max(b.items for b in stats.throughput) or 1
        for b in stats.throughput:
            bar = "█" * round(10 * b.items / peak)
            through.add_row(
                f"{b.start_s:g}",
                str(b.items),
                bar,
                *map(str, (b.kept, b.rejected, b.failed)),
                f"{b.tokens_per_s:.1f}",
            )
        parts.append(through)
    if rep.notes:
        notes = _table("step notes", "node", "kind", "notes", "of which")
        notes.columns[1].justify = notes.columns[3].justify = "left"
        for node_name, kinds in rep.notes.items():
            for kind, count in kinds.items():
                facets = rep.note_facets.get(node_name, {}).get(kind, {})
                notes.add_row(node_name, kind, str(count), facets_text(facets))
        parts.append(notes)
    for kind, records in rep.listings.items():
        schema = note_schema(kind)
        if schema is None or schema.listing is None or not records:
            continue
        columns = [c for c in schema.listing.columns if c.stats]
        listed = _table(schema.listing.stats_title, *(c.stats for c in columns))
        for column, spec in zip(listed.columns, columns, strict=True):
            column.justify = "right" if spec.percent else "left"
        for record in records:
            listed.add_row(*(listing_cell(record, c) for c in columns))
        parts.append(listed)
    for title, reasons in (
        ("rejection reasons", rep.rejection_reasons),
        ("failure reasons", rep.failure_reasons),
    ):
        if reasons:
            table = _table(title, "reason", "items")
            for reason, count in reasons:
                table.add_row(reason, str(count))
            parts.append(table)
    return Group(*parts)
