"""`medloom view RUN`: browse a run's items and trajectories in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

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
        found.read_meta()  # a damaged run.json: one line here rather than a traceback in the viewer
    except MedloomError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    InspectApp(found.path, poll_s=poll).run()
