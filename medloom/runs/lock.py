"""An exclusive lock on a run directory, so two processes never run (and pay for) the same items.

The lock is an ``flock`` on ``<run>/.lock``: the kernel releases it when the holder exits or dies
(even by SIGKILL), so a stale lock cannot outlive its process and a reused pid cannot fake a
holder. The file also names the holder (pid, host, start time) for the error a second process gets.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from medloom.core.errors import RunError

LOCK_FILE = ".lock"


class RunLocked(RunError):
    """Another live process holds the run directory."""

    def __init__(self, run_id: str, holder: dict[str, Any]):
        self.holder = holder
        pid = holder.get("pid", "?")
        host = holder.get("host", "?")
        since = holder.get("since")
        when = f" since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}" if since else ""
        super().__init__(
            f"run {run_id} is in use by pid {pid} on host {host}{when}; "
            "wait for it to end (or stop that process), then resume"
        )


class RunLock:
    """``with RunLock(run_dir): ...`` holds the run exclusively; raises :class:`RunLocked` if taken."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK_FILE
        self.run_id = run_dir.name
        self._fh: IO[str] | None = None

    def acquire(self) -> RunLock:
        try:
            fh = self.path.open("a+", encoding="utf-8")  # not inherited by child processes (PEP 446)
        except OSError as exc:
            raise RunError(
                f"cannot lock run {self.run_id}: {exc.strerror or exc} ({self.path}); the run directory "
                "must be writable to run or resume it"
            ) from None
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(self.path)
            fh.close()
            raise RunLocked(self.run_id, holder) from None
        except BaseException:
            fh.close()
            raise
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": round(time.time(), 3)}
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(holder))
            fh.flush()
        except OSError:
            pass  # the lock holds without the note (e.g. a full disk); the error then says "pid ?"
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the file drops the flock
            self._fh = None

    @property
    def held(self) -> bool:
        return self._fh is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def read_holder(path: Path) -> dict[str, Any]:
    """Who holds the lock, as written by the holder ({} when unknown)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def lock_held(run_dir: Path) -> bool:
    """Whether some process (this one included) holds the run's lock right now."""
    path = run_dir / LOCK_FILE
    try:
        fh = path.open("r", encoding="utf-8")
    except FileNotFoundError:
        return False
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False
