"""`medloom export RUN`: the kept rows as Parquet, JSONL or a `datasets` directory, with a dataset card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from medloom.cli.stats_cmd import RunArg, RunsDirOpt, open_run
from medloom.core.errors import MedloomError

ExportFormat = Literal["parquet", "jsonl", "hf"]


def export(
    run: RunArg,
    fmt: Annotated[
        ExportFormat, typer.Option("--format", "-f", help="parquet, jsonl or hf (save_to_disk).")
    ] = "parquet",
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output directory (default RUN/export/FORMAT).")
    ] = None,
    push_to_hub: Annotated[
        str | None, typer.Option("--push-to-hub", help="Also upload to this Hub dataset (OWNER/NAME).")
    ] = None,
    runs_dir: RunsDirOpt = Path("runs"),
) -> None:
    """Export the kept rows with a README.md dataset card (recipe, models, counts, licences)."""
    from medloom.runs.export import export_run  # imports `datasets`: only when exporting

    out, err = Console(), Console(stderr=True)
    try:
        found = open_run(run, runs_dir)
        path, rows = export_run(found, fmt, out_dir, push_to_hub=push_to_hub)
        out.print(f"[green]exported[/] {rows} rows ({fmt}) to {path}")
        if push_to_hub:
            out.print(f"[green]pushed[/] to the Hub dataset {push_to_hub}")
    except MedloomError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
