"""Content-addressed cache in SQLite (WAL): LLM samples keyed on request + sample index, and
embeddings keyed on model + text."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from medloom.core.calls import Choice, LLMRequest

log = logging.getLogger("medloom")

_SCHEMA_VERSION = 2
_MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS samples (
        key TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        choice TEXT NOT NULL,
        created REAL NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS embeddings (
        key TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        vector TEXT NOT NULL,
        created REAL NOT NULL
    )
    """,
]


class RequestCache:
    """Stores every sample once; a re-run or a resumed run never pays for it again."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._migrate()
        self.hits = 0
        self.misses = 0
        self.full = False
        """A write failed for lack of disk space (later ones are still tried)."""

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        for i in range(version, min(_SCHEMA_VERSION, len(_MIGRATIONS))):
            self._db.execute(_MIGRATIONS[i])
        self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def get_many(self, request: LLMRequest, count: int) -> dict[int, Choice]:
        """Cached samples 0..count-1 of ``request``, by sample index (missing ones absent)."""
        keys = [request.cache_key(i) for i in range(count)]
        marks = ",".join("?" * len(keys))
        with self._lock:
            rows = self._db.execute(
                f"SELECT key, choice FROM samples WHERE key IN ({marks})", keys
            ).fetchall()
        found: dict[int, Choice] = {}
        for key, raw in rows:
            index = int(key.rsplit(":", 1)[1])
            choice = Choice.model_validate_json(raw)
            found[index] = choice.model_copy(update={"index": index, "cache_hit": True})
        self.hits += len(found)
        self.misses += count - len(found)
        return found

    def put(self, request: LLMRequest, index: int, choice: Choice) -> None:
        """Store sample ``index`` of ``request`` (skipped, with a warning, when the disk is full)."""
        raw = json.dumps(choice.model_dump(mode="json", exclude={"cache_hit"}))
        with self._lock, self._unless_full():
            self._db.execute(
                "INSERT OR REPLACE INTO samples (key, model, choice, created) VALUES (?, ?, ?, ?)",
                (request.cache_key(index), request.model, raw, time.time()),
            )

    @contextlib.contextmanager
    def _unless_full(self) -> Iterator[None]:
        """A write that fails for lack of space is dropped: the call it would save was made and paid,
        so its item goes on; only a later re-run pays for it again."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_FULL and "full" not in str(exc):
                raise
            if not self.full:
                log.warning("request cache %s: %s; not caching until there is space", self.path, exc)
            self.full = True

    def get_embeddings(self, model: str, texts: Sequence[str]) -> dict[str, list[float]]:
        """Cached embeddings of ``texts`` by ``model``, by text (missing ones absent)."""
        keys = {_embedding_key(model, t): t for t in dict.fromkeys(texts)}
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        with self._lock:
            rows = self._db.execute(
                f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", list(keys)
            ).fetchall()
        found = {keys[key]: [float(v) for v in json.loads(raw)] for key, raw in rows}
        self.hits += sum(1 for t in texts if t in found)
        self.misses += sum(1 for t in texts if t not in found)
        return found

    def put_embeddings(self, model: str, vectors: dict[str, list[float]]) -> None:
        """Store the embedding of each text by ``model``."""
        now = time.time()
        rows = [(_embedding_key(model, t), model, json.dumps(v), now) for t, v in vectors.items()]
        with self._lock, self._unless_full():
            self._db.executemany(
                "INSERT OR REPLACE INTO embeddings (key, model, vector, created) VALUES (?, ?, ?, ?)", rows
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    def embedding_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _embedding_key(model: str, text: str) -> str:
    return hashlib.sha256(json.dumps([model, text], ensure_ascii=False).encode()).hexdigest()
