"""The append-only trajectory file: one JSON event a line, safe to read while it grows."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from medloom.core.events import Event, ItemFinished
from medloom.core.trajectory import TrajectoryHeader, decode_event, is_header

TRAJECTORIES = "trajectories.jsonl"


class TrajectoryWriter:
    """Appends events after a session header (``medloom.core.trajectory``); flushes at item boundaries
    so a killed run loses at most what was in flight.

    A write that fails (a full disk) is fatal for the session: the writer keeps the error in
    :attr:`error`, writes nothing more (a partial last line is cut on resume) and calls
    ``on_error``, which stops the engine; without ``on_error`` the error is raised.
    """

    def __init__(
        self,
        path: Path,
        header: TrajectoryHeader | None = None,
        on_error: Callable[[OSError], None] | None = None,
    ):
        self.path = path
        self.on_error = on_error
        self.error: OSError | None = None
        repair_tail(path)
        self._fh: IO[bytes] = path.open("ab")
        self.events_written = 0
        self._append((header or TrajectoryHeader()).model_dump_json(exclude_none=True), flush=True)

    def write(self, event: Event) -> None:
        flush = event.type in ("item_end", "item_started", "row_skipped")
        if self._append(event.model_dump_json(exclude_none=True), flush):
            self.events_written += 1

    def _append(self, line: str, flush: bool) -> bool:
        if self.error is not None:
            return False
        try:
            self._fh.write(line.encode() + b"\n")
            if flush:
                self._fh.flush()
        except OSError as exc:
            self.error = exc
            if self.on_error is None:
                raise
            self.on_error(exc)
            return False
        return True

    def flush(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh.closed:
            return
        try:
            self.flush()
        except OSError as exc:
            self.error = self.error or exc
        finally:
            with contextlib.suppress(OSError):  # the unwritten tail is lost; resume cuts a partial line
                self._fh.close()


def repair_tail(path: Path) -> int:
    """Cut a partial last line left by a killed writer; returns the bytes removed."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        block = 1 << 16
        pos = size
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            cut = chunk.rfind(b"\n")
            if cut != -1:
                keep = start + cut + 1
                fh.truncate(keep)
                return size - keep
            pos = start
        fh.truncate(0)
        return size


def iter_events(path: Path, types: set[str] | None = None) -> Iterator[tuple[int, Event]]:
    """(byte offset, event) pairs, migrated to the current schema (session headers are skipped);
    ``types`` filters cheaply before parsing."""
    if not path.exists():
        return
    needles = [f'"type":"{t}"'.encode() for t in types] if types else None
    with path.open("rb") as fh:
        offset = 0
        for line in fh:
            start = offset
            offset += len(line)
            if not line.endswith(b"\n"):
                break  # a line still being written
            if needles is not None and not any(n in line for n in needles):
                continue
            if is_header(line):
                continue
            yield start, decode_event(line)


def read_event_at(path: Path, offset: int) -> Event:
    with path.open("rb") as fh:
        fh.seek(offset)
        return decode_event(fh.readline())


def events_at(path: Path, offsets: Iterable[int]) -> Iterator[Event]:
    """The events starting at ``offsets`` (one open file, one seek each)."""
    with path.open("rb") as fh:
        for offset in offsets:
            fh.seek(offset)
            yield decode_event(fh.readline())


def final_items(path: Path) -> dict[str, tuple[int, ItemFinished]]:
    """The last ``item_end`` of each item, by item id: (offset, event)."""
    finals: dict[str, tuple[int, ItemFinished]] = {}
    for offset, event in iter_events(path, {"item_end"}):
        assert isinstance(event, ItemFinished)
        finals[event.item_id] = (offset, event.model_copy(update={"rows": []}))
    return finals


def final_outcomes(path: Path) -> dict[str, tuple[int, str]]:
    """The last ``item_end`` of each item, by item id: (offset, status). Keeps no events, so
    memory stays small for runs of any length."""
    finals: dict[str, tuple[int, str]] = {}
    for offset, event in iter_events(path, {"item_end"}):
        assert isinstance(event, ItemFinished)
        finals[event.item_id] = (offset, event.status)
    return finals
