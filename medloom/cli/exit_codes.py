"""The exit status of ``medloom run``: documented in docs/reliability.md, relied on by scripts and CI."""

from __future__ import annotations

from enum import IntEnum

from medloom.runs.report import Report


class ExitCode(IntEnum):
    OK = 0
    """Every item ended kept or rejected."""
    ERROR = 1
    """The run could not start or stopped on an error: unknown or damaged run, run directory locked by
    another process, disk full, an internal error."""
    CONFIG = 2
    """The config or the command line is wrong (nothing ran)."""
    ITEMS_FAILED = 3
    """The run ended, but at least one item failed (resume with --retry-failed to run them again)."""
    NO_ITEMS = 4
    """The run ended without a single item: an empty dataset, or every input row was skipped."""
    BUDGET = 5
    """A budget cap (``--max-cost/--max-tokens/--max-calls``, ``run.budget``) was reached: no new item
    started, the items in flight finished, the session is marked stopped and the report names the
    cap and the spend. Resume with a higher cap to go on (cached calls are not paid again)."""
    INTERRUPTED = 130
    """Ctrl-C (SIGINT): the session is marked interrupted and the report written; resume it."""
    TERMINATED = 143
    """SIGTERM (``timeout``, schedulers, containers): handled like Ctrl-C."""


def run_exit_code(report: Report) -> ExitCode:
    """The exit status of a run that ended, from its report (all sessions, not only the last; a
    budget stop of the last session comes first, since items remain)."""
    if report.stopped_by is not None:
        return ExitCode.BUDGET
    if report.items == 0:
        return ExitCode.NO_ITEMS
    if report.failed > 0:
        return ExitCode.ITEMS_FAILED
    return ExitCode.OK
