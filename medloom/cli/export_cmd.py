"""`medloom export RUN`: the kept rows as Parquet, JSONL or a `datasets` directory, or training data
for TRL (sft, dpo, prm, kto), with a dataset card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape

from medloom.cli.stats_cmd import RunArg, RunsDirOpt, open_run
from medloom.core.errors import MedloomError

ExportFormat = Literal["parquet", "jsonl", "hf", "sft", "dpo", "prm", "kto"]


def export(
    run: RunArg,
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            "-f",
            help="parquet, jsonl, hf (save_to_disk), or a training layout: sft, dpo, prm, kto.",
        ),
    ] = "parquet",
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output directory (default RUN/export/FORMAT).")
    ] = None,
    push_to_hub: Annotated[
        str | None, typer.Option("--push-to-hub", help="Also upload to this Hub dataset (OWNER/NAME).")
    ] = None,
    runs_dir: RunsDirOpt = Path("runs"),
    layout: Annotated[
        Literal["conversational", "standard"],
        typer.Option(help="Training formats: lists of chat messages, or plain strings."),
    ] = "conversational",
    sft_style: Annotated[
        Literal["messages", "prompt_completion"],
        typer.Option("--sft-style", help="sft: one `messages` column, or `prompt` + `completion`."),
    ] = "messages",
    system: Annotated[
        str | None, typer.Option(help="Training formats: the system message ('' for none).")
    ] = None,
    reasoning: Annotated[
        Literal["plain", "think"],
        typer.Option(help="Training formats: steps as plain text, or inside <think>…</think>."),
    ] = "plain",
    pairs_per_item: Annotated[int, typer.Option("--pairs-per-item", min=1, help="dpo: pairs per item.")] = 4,
    prm_after_error: Annotated[
        Literal["false", "truncate"],
        typer.Option("--prm-after-error", help="prm: steps after the first error labelled False, or cut."),
    ] = "false",
) -> None:
    """Export the kept rows (or training data) with a README.md dataset card (recipe, models, counts,
    licences, and for training formats how pairs and labels were made)."""
    from medloom.runs.export import export_run  # imports `datasets`: only when exporting
    from medloom.runs.exports import ExportOptions

    options = ExportOptions(
        layout=layout,
        sft_style=sft_style,
        reasoning=reasoning,
        pairs_per_item=pairs_per_item,
        prm_after_error=prm_after_error,
    )
    if system is not None:
        options.system = system or None

    out, err = Console(), Console(stderr=True)
    try:
        found = open_run(run, runs_dir)
        path, rows = export_run(found, fmt, out_dir, push_to_hub=push_to_hub, options=options)
        out.print(f"[green]exported[/] {rows} rows ({fmt}) to {path}")
        if push_to_hub:
            out.print(f"[green]pushed[/] to the Hub dataset {push_to_hub}")
    except MedloomError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
