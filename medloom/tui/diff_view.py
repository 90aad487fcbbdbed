"""A refiner's revision as a line diff against the original trace."""

from __future__ import annotations

import difflib

from rich.console import Group, RenderableType
from rich.text import Text

from medloom.core.events import TraceRevised


def diff_lines(before: str, after: str) -> list[str]:
    """Unified diff lines (without the file header) of two trace texts."""
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), "original", "revised", lineterm="", n=2
    )
    return [line for line in lines if not line.startswith(("---", "+++"))]


def render_revision(event: TraceRevised) -> RenderableType:
    rev = event.revision
    head = Text()
    head.append(f"revision round {rev.round} by {rev.node}\n", style="bold magenta")
    head.append(f"{event.trace_id} → {event.new_trace_id}\n", style="dim")
    head.append(f"flagged steps: {rev.flagged_steps}\n", style="yellow")
    for reason in dict.fromkeys(rev.reasons):
        head.append(f"• {reason}\n")
    body = Text()
    for line in diff_lines(rev.before, rev.after):
        style = (
            "green"
            if line.startswith("+")
            else "red"
            if line.startswith("-")
            else "cyan"
            if line.startswith("@@")
            else ""
        )
        body.append(line + "\n", style=style)
    return Group(head, body)
