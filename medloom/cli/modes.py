"""``--mode chat|completion``: one switch for every model alias of a recipe (``models.*.mode``)."""

from __future__ import annotations

from typing import Annotated

import typer

from medloom.core.errors import ConfigError

MODES = ("chat", "completion")

ModeOption = Annotated[
    str | None,
    typer.Option(
        "--mode",
        help="chat (instruct models, hosted APIs) or completion (few-shot, base models) for every "
        "model alias; same as --set 'models.*.mode=MODE' (a later --set of one alias wins).",
    ),
]


def with_mode(mode: str | None, overrides: list[str] | None) -> list[str] | None:
    """``overrides`` preceded by ``models.*.mode=MODE`` when a mode is given."""
    if mode is None:
        return overrides
    if mode not in MODES:
        raise ConfigError(f"--mode must be chat or completion, not {mode!r}", key="--mode")
    return [f"models.*.mode={mode}", *(overrides or [])]
