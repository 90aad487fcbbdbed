"""`python -m tests.reliability.full_disk_driver ARGS`: the real `medloom` entry point on a simulated
full disk (the tests cannot fill a real one in CI).

``MEDLOOM_TEST_DISK_ROOM`` is how many bytes of trajectory fit before the disk is full (the write
that crosses it lands partly, like a real one, then fails with ENOSPC). With
``MEDLOOM_TEST_DISK_ALL=1`` every later file write (run.json, report.json, ...) fails too.
``MEDLOOM_TEST_DISK_AT_START=1`` makes the disk full from the first file write of the run.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import IO, Any

from medloom.runs import store

ROOM = int(os.environ.get("MEDLOOM_TEST_DISK_ROOM", "0"))
EVERYTHING = os.environ.get("MEDLOOM_TEST_DISK_ALL") == "1"
full = os.environ.get("MEDLOOM_TEST_DISK_AT_START") == "1"


def _no_space(name: object = None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(name) if name else None)


class FullDisk:
    """A file that holds ``ROOM`` more bytes."""

    def __init__(self, fh: IO[bytes]):
        self.fh = fh
        self.written = 0

    def write(self, data: bytes) -> int:
        global full
        room = ROOM - self.written
        if full or room < len(data):
            if room > 0 and not full:
                self.fh.write(data[:room])
                self.fh.flush()
                self.written += room
            full = True
            raise _no_space(self.fh.name)
        self.written += len(data)
        return self.fh.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fh, name)


_writer_init = store.TrajectoryWriter.__init__


def _init(self: store.TrajectoryWriter, *args: Any, **kwargs: Any) -> None:
    _writer_init(self, *args, **kwargs)
    self._fh = FullDisk(self._fh)  # type: ignore[assignment]


_write_text = Path.write_text
_write_bytes = Path.write_bytes


def _guarded(original: Any) -> Any:
    def write(self: Path, data: Any, *args: Any, **kwargs: Any) -> int:
        if full and (EVERYTHING or os.environ.get("MEDLOOM_TEST_DISK_AT_START") == "1"):
            self.open("w").close()  # a real full disk leaves the file created, and empty
            raise _no_space(self)
        return int(original(self, data, *args, **kwargs))

    return write


store.TrajectoryWriter.__init__ = _init  # type: ignore[method-assign]
Path.write_text = _guarded(_write_text)  # type: ignore[method-assign]
Path.write_bytes = _guarded(_write_bytes)  # type: ignore[method-assign]

if __name__ == "__main__":
    from medloom.cli.main import main

    sys.argv[0] = "medloom"
    main()
