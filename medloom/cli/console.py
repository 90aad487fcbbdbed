"""What every command shares: the output consoles, turning an error into an exit, finding a config."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from medloom.core.errors import ConfigError

out = Console()
err = Console(stderr=True)


def resolve_config(config: str) -> Path:
    """A path, or the name of a recipe in ./configs."""
    path = Path(config)
    if path.is_file():
        return path
    for candidate in (Path("configs") / f"{config}.yaml", Path("configs") / config):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"config file not found: {config} (see `medloom recipes` for the built-in ones)")


def fail(exc: Exception) -> typer.Exit:
    """Print ``exc`` and the exit to raise: 2 for a config error, 1 otherwise."""
    err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)  # one line, whatever the width
    return typer.Exit(2 if isinstance(exc, ConfigError) else 1)
