"""SIGTERM treated like Ctrl-C while a run goes (in ``medloom run`` and in ``medloom.run()`` called
from a script's main thread): the run is cancelled, so its session ends interrupted and its report
is written; then :class:`Terminated` is raised.

A handler is installed only where that is safe: in the main thread, while SIGTERM has its default
action (a program that handles SIGTERM itself keeps its handler), and it is removed when the run
ends, which restores the default action."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Terminated(Exception):
    """The process received SIGTERM; the run stopped cleanly (its session is marked interrupted)."""


def _may_handle_sigterm() -> bool:
    """Whether SIGTERM still has its default action (nobody in this program handles it)."""
    try:
        return signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    except (AttributeError, ValueError):  # no SIGTERM on this platform
        return False


async def cancel_on_sigterm(work: Coroutine[Any, Any, T]) -> T:
    """Await ``work``; a SIGTERM cancels it (once) and raises :class:`Terminated` when it has wound down."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received = False

    def on_sigterm() -> None:
        nonlocal received
        if not received and task is not None:
            received = True
            task.cancel()

    if not _may_handle_sigterm():
        return await work
    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals on this platform
        return await work
    try:
        return await work
    except asyncio.CancelledError:
        if not received:
            raise
        if task is not None:
            task.uncancel()
        raise Terminated from None
    finally:
        loop.remove_signal_handler(signal.SIGTERM)  # back to the default action
