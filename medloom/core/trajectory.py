"""The trajectory file format: one JSON event a line, a header line at the start of each session.

Every line carries its schema version as ``v`` (so any line can be read on its own, from any
offset); the header also names the writer and the session. Reading migrates lines written by older
versions, one version step at a time, and refuses lines from a newer medloom with a clear error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from medloom.core.errors import TrajectoryError
from medloom.core.events import EVENT_ADAPTER, SCHEMA_VERSION, Event


class TrajectoryHeader(BaseModel):
    """The first line a session writes: the schema version of what follows, and who wrote it."""

    v: int = SCHEMA_VERSION
    type: Literal["header"] = "header"
    ts: float = Field(default_factory=time.time)
    run_id: str | None = None
    attempt: int = 0
    """The session (0 for the first, +1 per resume), as in the events' ``attempt``."""
    writer: str = ""
    """``medloom <version>``."""


Migration = Callable[[dict[str, Any]], dict[str, Any]]


def _v1_to_v2(event: dict[str, Any]) -> dict[str, Any]:
    """v2 only added things (the header line; failed calls, samples and cost in ``item_end`` node
    stats, which read as 0 for v1, where costs come from the ``llm_call`` events instead)."""
    return event


MIGRATIONS: dict[int, Migration] = {1: _v1_to_v2}
"""Version → the function turning an event (a dict) of that version into the next version's form."""

_CURRENT = b'{"v":%d,' % SCHEMA_VERSION
_HEADER = b'"type":"header"'


def is_header(line: bytes) -> bool:
    return _HEADER in line[:64]


def migrate(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` (a decoded line of any version up to the current one) in the current form."""
    version = int(event.get("v", 1))
    if version > SCHEMA_VERSION:
        raise TrajectoryError(
            f"a trajectory line has schema version {version}, but this medloom reads up to "
            f"{SCHEMA_VERSION}: upgrade medloom (pip install -U medloom) to read this run"
        )
    while version < SCHEMA_VERSION:
        event = MIGRATIONS[version](event)
        version += 1
        event["v"] = version
    return event


def decode_line(line: str | bytes) -> Event | TrajectoryHeader:
    """The event (or session header) on one line, migrated to the current schema."""
    raw = line.encode() if isinstance(line, str) else line
    try:
        if raw.startswith(_CURRENT) and not is_header(raw):
            return EVENT_ADAPTER.validate_json(raw)  # the common case: no dict in between
        data = migrate(json.loads(raw))
        if data.get("type") == "header":
            return TrajectoryHeader.model_validate(data)
        return EVENT_ADAPTER.validate_python(data)
    except (ValidationError, ValueError) as exc:
        raise TrajectoryError(f"not a trajectory event: {raw[:120]!r}… ({exc})") from exc


def decode_event(line: str | bytes) -> Event:
    """The event on one line (not a header), migrated to the current schema."""
    decoded = decode_line(line)
    if isinstance(decoded, TrajectoryHeader):
        raise TrajectoryError("expected an event, found a session header line")
    return decoded
