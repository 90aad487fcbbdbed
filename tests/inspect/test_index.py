"""The trajectory index on a real run: partial lines, resumed items, a replaced file, span reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from medloom.core.events import ItemFinished, ItemStarted
from medloom.runs.store import TRAJECTORIES
from medloom.tui.index import INDEX_FILE, TrajectoryIndex, open_index


def _copy(mcq_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(mcq_run, run)
    (run / INDEX_FILE).unlink(missing_ok=True)
    return run


def test_index_matches_the_report_and_reads_only_an_items_own_events(mcq_run: Path, tmp_path: Path) -> None:
    run = _copy(mcq_run, tmp_path)
    index = open_index(run)
    report = json.loads((run / "report.json").read_text())
    counts = index.counts()
    assert (counts["kept"], counts["rejected"], counts["failed"]) == (
        report["kept"],
        report["rejected"],
        report["failed"],
    )
    lines = (run / TRAJECTORIES).read_text().splitlines()
    for entry in index.items:
        events = index.events(entry.item_id)
        assert {e.item_id for _, e in events} == {entry.item_id}
        assert len(events) == entry.events == sum(f'"item_id":"{entry.item_id}"' in line for line in lines)
        assert events[-1][1].type == "item_end"


def test_a_partial_line_waits_and_a_resumed_item_starts_over(mcq_run: Path, tmp_path: Path) -> None:
    run = _copy(mcq_run, tmp_path)
    index = open_index(run)
    failed = next(e for e in index.items if e.status == "failed")
    retry = ItemStarted(item_id=failed.item_id, index=0, input={}, attempt=1).model_dump_json()
    end = ItemFinished(item_id=failed.item_id, status="kept", attempt=1).model_dump_json()
    with (run / TRAJECTORIES).open("a") as fh:
        fh.write(retry + "\n" + end[:20])  # the end is still being written
    index.refresh()
    assert index.by_id[failed.item_id].status == "running"
    with (run / TRAJECTORIES).open("a") as fh:
        fh.write(end[20:] + "\n")
    index.refresh()
    entry = index.by_id[failed.item_id]
    assert (entry.status, entry.reason) == ("kept", None)
    assert [e.attempt for _, e in index.events(failed.item_id)][-2:] == [1, 1]


def test_a_replaced_trajectory_file_is_indexed_afresh(mcq_run: Path, tmp_path: Path) -> None:
    run = _copy(mcq_run, tmp_path)
    open_index(run)
    lines = (run / TRAJECTORIES).read_bytes().splitlines(keepends=True)
    (run / TRAJECTORIES).write_bytes(b"".join(reversed(lines)))  # same size, different content
    index = TrajectoryIndex(run)
    assert index.items == [] and index.scanned == 0  # the cache did not match the file
    index.refresh()
    assert index.items[0].item_id == json.loads(lines[-1])["item_id"]
