"""Verdicts on a trace, with their per-step flags shown on the steps they flag."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from medloom.core.records import Trace, Verdict


def render_steps(trace: Trace, verdicts: list[Verdict]) -> Text:
    """The trace's steps; a flagged step is marked and followed by each verifier's reason."""
    text = Text()
    if not trace.steps:
        text.append(trace.text + "\n")
    for step in trace.steps:
        flags = [(v.verifier, v.step_flags[step.index]) for v in verdicts if step.index in v.step_flags]
        style = "bold red" if flags else ""
        text.append("⚑ " if flags else "  ", style="red")
        text.append(f"Step {step.index}: ", style="bold " + style)
        text.append(step.text + "\n", style=style)
        for verifier, why in flags:
            text.append(f"     └ {verifier}: {why}\n", style="yellow")
    text.append(f"Answer: {trace.answer}\n", style="bold")
    return text


def render_verdict(
    verdict: Verdict, trace: Trace | None, others: list[Verdict] | None = None
) -> RenderableType:
    head = Text()
    if verdict.undecided:
        head.append("UNDECIDED", style="bold yellow")
    else:
        head.append(
            "PASSED" if verdict.passed else "FAILED", style="bold green" if verdict.passed else "bold red"
        )
    head.append(f"  by {verdict.verifier}")
    if verdict.score is not None:
        head.append(f"  score {verdict.score:g}")
    if verdict.failed_by:
        head.append(f"  failed: {', '.join(verdict.failed_by)}", style="red")
    head.append("\n")
    for reason in verdict.reasons:
        head.append(f"• {reason}\n")
    if verdict.step_flags:
        head.append(f"flags steps {sorted(verdict.step_flags)}\n", style="yellow")
    if trace is None:
        return head
    return Group(head, Text("trace " + trace.id, style="dim"), render_steps(trace, [verdict]))


def render_trace(trace: Trace, verdicts: list[Verdict]) -> RenderableType:
    head = Text()
    head.append(f"{trace.id}\n", style="bold")
    head.append(f"model {trace.model}  T={trace.temperature}  round {trace.round}  answer {trace.answer}\n")
    if trace.parse_error:
        head.append(f"parse error: {trace.parse_error}\n", style="red")
    for v in verdicts:
        mark = "✓" if v.passed else "✗"
        head.append(f"{mark} {v.verifier}: {v.reason}\n", style="green" if v.passed else "red")
    return Group(head, render_steps(trace, verdicts))
