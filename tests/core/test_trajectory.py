"""Reading the trajectory format: session headers, per-line versions, migration of v1 lines.

``data/run_v1`` is a run made by medloom before the v2 format (commit 89f0e8e, the mcq_refine
recipe on the fake server: kept, rejected and failed items), kept to prove old runs stay readable.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import medloom.core.trajectory as trajectory
from medloom.core.errors import TrajectoryError
from medloom.core.events import SCHEMA_VERSION, ItemFinished, ItemStarted
from medloom.core.trajectory import TrajectoryHeader, decode_event, decode_line, migrate
from medloom.runs.store import TrajectoryWriter, iter_events

V1_RUN = Path(__file__).parent / "data" / "run_v1"


def test_every_v1_line_reads_as_a_current_event() -> None:
    lines = (V1_RUN / "trajectories.jsonl").read_bytes().splitlines(keepends=True)
    raw_types = Counter(json.loads(line)["type"] for line in lines)
    assert all(json.loads(line)["v"] == 1 for line in lines)
    events = [decode_event(line) for line in lines]
    assert Counter(e.type for e in events) == raw_types
    assert {e.v for e in events} == {SCHEMA_VERSION}
    ends = [e for e in events if isinstance(e, ItemFinished)]
    assert Counter(e.status for e in ends) == {"kept": 5, "rejected": 2, "failed": 1}
    kept = next(e for e in ends if e.status == "kept")
    assert kept.rows and kept.stats["generate"].calls >= 1
    assert kept.stats["generate"].failed_calls == 0  # v2 fields read as 0 in v1 lines


def test_a_session_starts_with_a_header_that_readers_skip(tmp_path: Path) -> None:
    path = tmp_path / "trajectories.jsonl"
    writer = TrajectoryWriter(path, TrajectoryHeader(run_id="r1", attempt=0, writer="medloom test"))
    writer.write(ItemStarted(item_id="q1", index=0, input={}))
    writer.close()
    first = decode_line(path.read_bytes().splitlines()[0])
    assert isinstance(first, TrajectoryHeader)
    assert (first.v, first.run_id, first.writer) == (SCHEMA_VERSION, "r1", "medloom test")
    assert [e.type for _, e in iter_events(path)] == ["item_started"]
    with pytest.raises(TrajectoryError, match="session header"):
        decode_event(path.read_bytes().splitlines()[0])


def test_a_resumed_v1_run_mixes_versions_and_reads_whole(tmp_path: Path) -> None:
    path = tmp_path / "trajectories.jsonl"
    path.write_bytes((V1_RUN / "trajectories.jsonl").read_bytes())
    writer = TrajectoryWriter(path, TrajectoryHeader(attempt=1))
    writer.write(ItemStarted(item_id="late", index=99, input={}, attempt=1))
    writer.close()
    events = [e for _, e in iter_events(path)]
    assert len(events) == 79 + 1
    assert events[-1].item_id == "late" and events[-1].attempt == 1


def test_a_line_from_a_newer_medloom_says_to_upgrade() -> None:
    line = json.dumps(
        {"v": SCHEMA_VERSION + 1, "type": "item_started", "item_id": "q", "index": 0, "input": {}}
    )
    with pytest.raises(TrajectoryError, match=r"upgrade medloom"):
        decode_event(line)


def test_a_line_that_is_no_event_names_itself() -> None:
    with pytest.raises(TrajectoryError, match="not a trajectory event"):
        decode_event('{"v": 2, "type": "mystery", "item_id": "q"}')


def test_migrations_run_in_order_up_to_the_current_version(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    def step(version: int) -> trajectory.Migration:
        def apply(event: dict[str, Any]) -> dict[str, Any]:
            seen.append(version)
            return {**event, f"from_v{version}": True}

        return apply

    monkeypatch.setattr(trajectory, "SCHEMA_VERSION", 4)
    monkeypatch.setattr(trajectory, "MIGRATIONS", {1: step(1), 2: step(2), 3: step(3)})
    migrated = migrate({"v": 2, "type": "item_started"})
    assert seen == [2, 3]
    assert migrated["v"] == 4 and migrated["from_v2"] and migrated["from_v3"] and "from_v1" not in migrated
