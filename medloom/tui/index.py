"""A byte-offset index of trajectories.jsonl by item, cached in the run dir and extended incrementally.

The cache is two lines: a header (bytes scanned, the file's first bytes) and one JSON array of
items. Scanning reads each line's head with regular expressions (no JSON parsing of prompts or rows), so
a 100k-item run indexes quickly once, and reopening it reads only the lines appended since.
An item's events are read on demand from its byte span (``first``..``last``).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import astuple, dataclass
from pathlib import Path

from medloom.core.events import Event
from medloom.core.trajectory import decode_event
from medloom.runs.store import TRAJECTORIES

INDEX_FILE = ".medloom-index.json"
INDEX_VERSION = 3
HEAD_BYTES = 512
"""How much of a line the scanner looks at (ids, type, node and status come first)."""

_ITEM_ID = re.compile(rb'"item_id":"((?:[^"\\]|\\.)*)"')
_TYPE = re.compile(rb'"type":"(\w+)"')
_NODE = re.compile(rb'"node":"((?:[^"\\]|\\.)*)"')
_STATUS = re.compile(rb'"status":"(kept|rejected|failed)"')
_REASON = re.compile(rb'"reason":"((?:[^"\\]|\\.)*)"')
_PREDICTED = re.compile(rb'"predicted":"((?:[^"\\]|\\.)*)"(?:,"score":(-?[\d.eE+]+))?')


def _unescape(raw: bytes) -> str:
    return str(json.loads(b'"' + raw + b'"'))


@dataclass(slots=True)
class ItemEntry:
    """What the index knows about one item without reading its events."""

    item_id: str
    ordinal: int
    """Order of first appearance in the file."""
    first: int
    """Byte offset of the item's first event."""
    last: int
    """Byte offset of the item's last event so far."""
    events: int = 0
    status: str = "running"
    """kept | rejected | failed, or running while it has no ``item_end``."""
    node: str | None = None
    reason: str | None = None
    llm_calls: int = 0
    rows: int = 0
    answer: str | None = None
    """A kept item's first row: its predicted answer and score ("B, score 4")."""


class TrajectoryIndex:
    """Items of a run in order of first appearance, each with its byte span in the trajectory file."""

    def __init__(self, run_dir: Path, *, use_cache: bool = True):
        self.run_dir = run_dir
        self.path = run_dir / TRAJECTORIES
        self.cache_path = run_dir / INDEX_FILE
        self.use_cache = use_cache
        self.items: list[ItemEntry] = []
        self.by_id: dict[str, ItemEntry] = {}
        self.scanned = 0
        """Bytes of the trajectory file already indexed (always at a line boundary)."""
        self.bytes_read = 0
        """Trajectory bytes read by this object (scans and item reads): lazy reads stay small."""
        self.skipped_rows = 0
        self._head = b""
        self._saved_at = 0.0
        if use_cache:
            self._load_cache()

    # -- scanning ---------------------------------------------------------------------------

    def refresh(self) -> int:
        """Index lines appended since the last scan; returns how many items changed."""
        if not self.path.exists():
            return 0
        size = self.path.stat().st_size
        if size < self.scanned or (self.scanned and self._file_head() != self._head):
            self._reset()  # the file was replaced or truncated
        if size == self.scanned:
            return 0
        changed: set[str] = set()
        with self.path.open("rb") as fh:
            fh.seek(self.scanned)
            offset = self.scanned
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # still being written
                self.bytes_read += len(line)
                self._index_line(line, offset, changed)
                offset += len(line)
        self.scanned = offset
        if not self._head:
            self._head = self._file_head()
        return len(changed)

    def _index_line(self, line: bytes, offset: int, changed: set[str]) -> None:
        head = line[:HEAD_BYTES]
        kind = _TYPE.search(head)
        found = _ITEM_ID.search(head)
        if kind is None or found is None:
            return
        event_type = kind.group(1)
        if event_type == b"row_skipped":
            self.skipped_rows += 1
            return
        item_id = _unescape(found.group(1))
        entry = self.by_id.get(item_id)
        if entry is None:
            entry = ItemEntry(item_id=item_id, ordinal=len(self.items), first=offset, last=offset)
            self.items.append(entry)
            self.by_id[item_id] = entry
        entry.last = offset
        entry.events += 1
        changed.add(item_id)
        if event_type == b"llm_call":
            entry.llm_calls += 1
        elif event_type == b"item_started" and entry.status != "running":
            entry.status, entry.node, entry.reason = "running", None, None  # a retry after a resume
        elif event_type == b"item_end":
            status = _STATUS.search(line)
            node = _NODE.search(head)
            entry.status = status.group(1).decode() if status else "failed"
            entry.node = _unescape(node.group(1)) if node else None
            # A kept item has no reason of its own; the first "reason" would be a row's verdict.
            reason = _REASON.search(line) if entry.status != "kept" else None
            entry.reason = _unescape(reason.group(1)) if reason else None
            entry.rows = line.count(b'"trace_id":') if entry.status == "kept" else 0
            entry.answer = None
            rows_at = line.find(b'"rows":[{')
            if rows_at != -1:
                row = _PREDICTED.search(line, rows_at)
                if row:
                    score = row.group(2)
                    entry.answer = _unescape(row.group(1)) + (f", score {score.decode()}" if score else "")

    def _file_head(self) -> bytes:
        with self.path.open("rb") as fh:
            return fh.read(256)

    def _reset(self) -> None:
        self.items, self.by_id, self.scanned, self._head, self.skipped_rows = [], {}, 0, b"", 0

    # -- reading ----------------------------------------------------------------------------

    def events(self, item_id: str) -> list[tuple[int, Event]]:
        """The item's events (byte offset, event), read from its span of the file only."""
        entry = self.by_id[item_id]
        needle = b'"item_id":' + json.dumps(item_id, ensure_ascii=False).encode()
        found: list[tuple[int, Event]] = []
        with self.path.open("rb") as fh:
            fh.seek(entry.first)
            offset = entry.first
            for line in fh:
                if offset > entry.last:
                    break
                self.bytes_read += len(line)
                if needle in line[:HEAD_BYTES] and line.endswith(b"\n"):
                    found.append((offset, decode_event(line)))
                offset += len(line)
        return found

    def counts(self) -> dict[str, int]:
        out = {"kept": 0, "rejected": 0, "failed": 0, "running": 0}
        for entry in self.items:
            out[entry.status] = out.get(entry.status, 0) + 1
        return out

    # -- cache ------------------------------------------------------------------------------

    def save(self, min_interval_s: float = 0.0) -> bool:
        """Write the cache (at most every ``min_interval_s``); False when skipped or not writable."""
        if not self.use_cache or not self.scanned or time.monotonic() - self._saved_at < min_interval_s:
            return False
        header = {
            "v": INDEX_VERSION,
            "scanned": self.scanned,
            "head": self._head.hex(),
            "skipped_rows": self.skipped_rows,
        }
        tmp = self.cache_path.with_suffix(".tmp")
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                fh.write(json.dumps(header) + "\n")
                fh.write(json.dumps([astuple(e) for e in self.items], ensure_ascii=False) + "\n")
            tmp.replace(self.cache_path)
        except OSError:
            return False  # a read-only run directory: the index just stays in memory
        self._saved_at = time.monotonic()
        return True

    def _load_cache(self) -> None:
        if not self.cache_path.exists() or not self.path.exists():
            return
        try:
            with self.cache_path.open(encoding="utf-8") as fh:
                header = json.loads(fh.readline())
                if header.get("v") != INDEX_VERSION:
                    return
                head = bytes.fromhex(header["head"])
                if self.path.stat().st_size < header["scanned"] or self._file_head() != head:
                    return  # a different or truncated file: rebuild
                items = [ItemEntry(*row) for row in json.loads(fh.readline())]
        except (OSError, ValueError, KeyError, TypeError):
            return
        self.items = items
        self.by_id = {e.item_id: e for e in items}
        self.scanned = header["scanned"]
        self._head = head
        self.skipped_rows = header.get("skipped_rows", 0)


def open_index(run_dir: Path) -> TrajectoryIndex:
    """The run's index, from its cache plus whatever was appended since; the cache is updated."""
    index = TrajectoryIndex(run_dir)
    if index.refresh():
        index.save()
    return index
