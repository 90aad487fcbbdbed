"""A request cache on a full disk: the paid-for sample still reaches its item (issue 12 item 7).

Before, SQLite's "database or disk is full" on the cache write failed the item after its call had
been made and paid for, and the failure was recorded, so a resume skipped the item."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from medloom.core.calls import Choice
from medloom.llm import LLMRequest, RequestCache


class FullDatabase:
    """A connection whose writes fail the way SQLite's do when the disk is full."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.lstrip().startswith("INSERT"):
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        raise sqlite3.OperationalError("database or disk is full")

    def close(self) -> None:
        self.db.close()


def test_writes_to_a_full_cache_are_dropped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = RequestCache(tmp_path / "llm.sqlite")
    cache._db = FullDatabase(cache._db)  # type: ignore[assignment]
    request = LLMRequest(model="m", prompt="q")
    cache.put(request, 0, Choice(index=0, text="a"))
    cache.put(request, 1, Choice(index=1, text="b"))
    cache.put_embeddings("e", {"text": [0.1, 0.2]})
    assert cache.full
    assert cache.get_many(request, 2) == {}
    warnings = [r for r in caplog.records if "not caching" in r.getMessage()]
    assert len(warnings) == 1
    cache.close()


def test_other_database_errors_still_raise(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "llm.sqlite")
    cache.close()
    with pytest.raises(sqlite3.ProgrammingError):
        cache.put(LLMRequest(model="m", prompt="q"), 0, Choice(index=0, text="a"))
