"""Run a coroutine of medloom's async API (``arun``, ``aevaluate``) from synchronous code, wherever
that code is called from."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from medloom.runs.signals import Terminated, cancel_on_sigterm

T = TypeVar("T")

SIGTERM_STATUS = 143
"""The exit status a SIGTERM leaves (128 + 15), as ``medloom run`` exits with."""

log = logging.getLogger("medloom")


def run_sync(make: Callable[[], Coroutine[Any, Any, T]], *, instead: str) -> T:
    """The result of the coroutine ``make()``, run to its end.

    - No event loop runs in this thread: it runs here on a new loop; in the main thread a SIGTERM
      stops it like Ctrl-C (:func:`~medloom.runs.signals.cancel_on_sigterm`: sessions end
      interrupted, reports are written), then ``SystemExit(143)`` is raised: uncaught, the process
      ends with the status ``medloom run`` gives, without a traceback; ``except SystemExit`` goes on.
    - An event loop runs (Jupyter, an async app): it runs in a worker thread with its own loop and
      this call blocks until it ends; ``instead`` (e.g. ``await medloom.arun(...)``) names the call
      that keeps the caller's loop responsive.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        try:
            return asyncio.run(cancel_on_sigterm(make()))
        except Terminated:
            raise SystemExit(SIGTERM_STATUS) from None
    log.info("called inside a running event loop: running in a worker thread (%s is better there)", instead)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="medloom-sync") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
