"""`medloom view RUN`: browse a run's items and trajectories in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from medloom.cli.stats_cmd import RunArg, RunsDirOpt
from medloom.core.errors import MedloomError


def view(
    run: RunArg,
    runs_dir: RunsDirOpt = Path("runs"),
    poll: Annotated[float, typer.Option(help="Seconds between looks for new events (0: never).")] = 1.0,
) -> None:
    """Browse items (kept / rejected / failed), their trajectories, calls, verdicts and revisions."""
    from medloom.runs.rundir import RunDir
    from medloom.tui.app import InspectApp

    try:
        found = RunDir.open(runs_dir, run)
    except MedloomError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    InspectApp(found.path, poll_s=poll).run()
