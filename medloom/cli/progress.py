"""Rich progress while a run goes: items, kept/rejected/failed, calls, tokens/s, ETA."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from medloom.core.events import ItemFinished
from medloom.llm.client import LLMClient


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


class ProgressBoard:
    """One live display with a line per run, for runs going at once (``medloom eval``'s solvers):
    rich draws one live display at a time."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress = _progress(self.console)
        self._open = 0

    def hook(self, label: str) -> RichProgress:
        """The progress hook of the run labelled ``label``."""
        return RichProgress(self.console, board=self, label=label)

    def opened(self) -> None:
        if self._open == 0:
            self.progress.start()
        self._open += 1

    def closed(self) -> None:
        self._open -= 1
        if self._open == 0:
            self.progress.stop()


class RichProgress:
    """A ProgressHook that draws one live line on stderr (its own, or one of a board's)."""

    def __init__(
        self, console: Console | None = None, *, board: ProgressBoard | None = None, label: str = "items"
    ):
        self.console = console or Console(stderr=True)
        self.board = board
        self.label = label
        self.progress = board.progress if board is not None else _progress(self.console)
        self.counts = {"kept": 0, "rejected": 0, "failed": 0}
        self.client: LLMClient | None = None
        self.started = time.monotonic()
        self.task: TaskID | None = None

    def on_start(self, total: int | None, already_done: int, client: LLMClient) -> None:
        self.client = client
        self.started = time.monotonic()
        if self.board is not None:
            self.board.opened()
        else:
            self.progress.start()
        self.task = self.progress.add_task(
            self.label, total=total, completed=min(already_done, total or already_done), stats=""
        )

    def _stats(self) -> str:
        c = self.counts
        decided = c["kept"] + c["rejected"]
        rate = f"{c['kept'] / decided:.0%}" if decided else "–"
        parts = [
            f"[green]{c['kept']} kept[/] [yellow]{c['rejected']} rejected[/] "
            f"[red]{c['failed']} failed[/] pass {rate}"
        ]
        if self.client is not None:
            ledger = self.client.ledger
            elapsed = max(1e-6, time.monotonic() - self.started)
            parts.append(f"{ledger.calls} calls {ledger.completion_tokens / elapsed:,.0f} tok/s")
        return " · ".join(parts)

    def on_item(self, end: ItemFinished) -> None:
        self.counts[end.status] += 1
        if self.task is not None:
            self.progress.update(self.task, advance=1, stats=self._stats())

    def on_finish(self) -> None:
        if self.task is not None:
            self.progress.update(self.task, stats=self._stats())
        if self.board is not None:
            self.board.closed()
        else:
            self.progress.stop()
