"""`medloom stats RUN`: a run's counts, pass rates, usage, latency and throughput as rich tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from medloom.core.errors import MedloomError, RunError
from medloom.tui.stats_tables import render_stats

if TYPE_CHECKING:
    from medloom.runs.rundir import RunDir

RunArg = Annotated[str, typer.Argument(help="A run id (in --runs-dir) or a run directory.")]
RunsDirOpt = Annotated[Path, typer.Option(help="Where run directories are.")]


def open_run(run: str, runs_dir: Path) -> RunDir:
    """The run directory named by an id or a path; a clear error when there is none."""
    from medloom.runs.rundir import RunDir

    found = RunDir.open(runs_dir, run)
    if not found.trajectories.exists():
        raise RunError(f"{found.trajectories} does not exist: the run has not started writing events yet")
    return found


def stats(
    run: RunArg,
    runs_dir: RunsDirOpt = Path("runs"),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (for scripts) instead of tables.")
    ] = False,
) -> None:
    """Counts, pass rates per node and round, tokens and cost, latency, throughput, rejection reasons."""
    from medloom.runs.fold import compute_stats
    from medloom.runs.stats import stats_json

    out, err = Console(), Console(stderr=True)
    try:
        result = compute_stats(open_run(run, runs_dir))
    except MedloomError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(stats_json(result), indent=2))
        return
    out.print(render_stats(result))
