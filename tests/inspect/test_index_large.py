"""A synthetic 100k-item run: the index is built once, cached, extended by appended lines only,
items are read from their own byte span, and the list renders only the rows on screen."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from medloom.core.events import ItemFinished, ItemStarted
from medloom.runs.rundir import RunMeta, Session
from medloom.runs.store import TRAJECTORIES
from medloom.tui.app import InspectApp
from medloom.tui.index import INDEX_FILE, TrajectoryIndex, open_index
from medloom.tui.item_list import ItemList

N = 100_000


def _lines(start: int, stop: int) -> bytes:
    """Started and finished events for items start..stop-1, interleaved like a concurrent run."""
    started = ItemStarted(item_id="ITEM", index=0, input={"question": "q?", "answer": "A"}, ts=1.0)
    kept = ItemFinished(item_id="ITEM", status="kept", ts=2.0)
    rejected = ItemFinished(item_id="ITEM", status="rejected", node="verify", reason="wrong answer", ts=2.0)
    s_tpl = started.model_dump_json(exclude_none=True).encode()
    k_tpl, r_tpl = (e.model_dump_json(exclude_none=True).encode() for e in (kept, rejected))
    out = []
    for i in range(start, stop):
        item = f"q{i:06d}".encode()
        out.append(s_tpl.replace(b"ITEM", item))
        if i >= 4:
            j = i - 4
            end = r_tpl if j % 10 == 0 else k_tpl
            out.append(end.replace(b"ITEM", f"q{j:06d}".encode()))
    return b"\n".join(out) + b"\n"


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("big") / "big-run"
    run.mkdir()
    meta = RunMeta(run_id=run.name, recipe="synthetic", created=1.0, sessions=[Session(started=1.0)])
    (run / "run.json").write_text(meta.model_dump_json())
    (run / "config.yaml").write_text("name: synthetic\n")
    (run / TRAJECTORIES).write_bytes(_lines(0, N))
    return run


@pytest.mark.slow
def test_index_is_cached_and_extended_incrementally(big_run: Path) -> None:
    first = open_index(big_run)
    assert len(first.items) == N
    counts = first.counts()
    assert counts["running"] == 4 and counts["rejected"] == (N - 4 + 9) // 10
    assert (big_run / INDEX_FILE).exists()
    size = (big_run / TRAJECTORIES).stat().st_size
    assert first.bytes_read == size

    again = TrajectoryIndex(big_run)  # from the cache
    assert len(again.items) == N and again.refresh() == 0
    assert again.bytes_read == 0, "a cached index must not re-read the trajectories"

    extra = _lines(N, N + 3)
    with (big_run / TRAJECTORIES).open("ab") as fh:
        fh.write(extra)
    assert again.refresh() > 0
    assert again.bytes_read == len(extra), "only the appended lines are read"
    assert len(again.items) == N + 3 and again.by_id["q099996"].status == "kept"

    middle = again.by_id["q050000"]
    before = again.bytes_read
    events = again.events("q050000")
    assert [e.type for _, e in events] == ["item_started", "item_end"]
    assert again.bytes_read - before < 2_000, "an item is read from its own span only"
    assert middle.status == "rejected" and middle.reason == "wrong answer"


@pytest.mark.slow
async def test_the_list_renders_only_visible_rows(big_run: Path) -> None:
    started = time.monotonic()
    app = InspectApp(big_run, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        items = app.query_one(ItemList)
        assert len(items.view) >= N
        await pilot.press("pagedown", "pagedown", "end")
        await pilot.pause()
        assert items.cursor == len(items.view) - 1
        assert items.rows_rendered < 24 * 8, f"{items.rows_rendered} rows rendered for a 24-line screen"
        await pilot.press("3")
        assert len(items.view) == app.index.counts()["rejected"]
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "ItemScreen"
    print(f"100k items: opened, paged and filtered in {time.monotonic() - started:.1f}s")
    assert json.loads((big_run / INDEX_FILE).read_text().splitlines()[0])["scanned"] > 0
