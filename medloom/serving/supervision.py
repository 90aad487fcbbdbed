"""POSIX process supervision: a server never outlives medloom, nor do the processes it spawned.

Three layers: the server runs in its own session and gets ``PR_SET_PDEATHSIG`` (Linux); a tiny
watchdog process (stdlib only) re-snapshots the server's descendants from ``/proc`` every 2 s,
so processes that left the group (a Ray executor, a ``setsid()`` child) are known, and kills the
group and those descendants once medloom is gone, or the descendants once the group is gone;
and :func:`sweep` does the same on an orderly stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1
WATCHDOG_GRACE_S = 10.0
"""After medloom dies: how long SIGTERM has before SIGKILL."""

WATCHDOG = r"""
import os, signal, sys, time
parent, pgid, grace = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])

def stat(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), fields[19]  # state, ppid, start time

def descendants(root):
    children = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return {}
    for name in names:
        if name.isdigit():
            info = stat(int(name))
            if info is not None:
                children.setdefault(info[1], []).append((int(name), info[2]))
    found, todo = {}, [root]
    while todo:
        for pid, started in children.get(todo.pop(), ()):
            if pid not in found:
                found[pid] = started
                todo.append(pid)
    return found

known = {}

def living_known():
    alive = {}
    for pid, started in known.items():
        info = stat(pid)
        if info is not None and info[2] == started and info[0] not in (b"Z", b"X"):
            alive[pid] = started
    return alive

def group_alive():
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True

def kill_all(sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in living_known():
        try:
            os.kill(pid, sig)
        except OSError:
            pass

def snapshot():
    global known
    known = living_known()
    known.update(descendants(pgid))

ticks = 0
while os.getppid() == parent:
    if ticks % 4 == 0:
        snapshot()
    if not group_alive():
        kill_all(signal.SIGKILL)  # the server is gone: what it left outside its group goes too
        sys.exit(0)
    ticks += 1
    time.sleep(0.5)
snapshot()  # what started since the last look, if the server still runs
kill_all(signal.SIGTERM)
deadline = time.monotonic() + grace
while time.monotonic() < deadline and (group_alive() or living_known()):
    time.sleep(0.2)
kill_all(signal.SIGKILL)
"""


def pdeathsig_preexec(parent_pid: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when its parent dies (Linux only).

    The kernel sends the signal when the *thread* that forked exits, so this is only used when
    launching from the main thread; the watchdog covers the other cases.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def start_watchdog(parent_pid: int, server_pid: int) -> subprocess.Popen[bytes] | None:
    """Start the watchdog of the server ``server_pid`` (the leader of its own group)."""
    arguments = [str(parent_pid), str(server_pid), str(WATCHDOG_GRACE_S)]
    with contextlib.suppress(OSError):
        return subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", WATCHDOG, *arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    return None


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group ``pgid`` (gone or foreign groups are ignored)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """Whether a member of the group ``pgid`` still runs (zombies do not count, with psutil)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        import psutil
    except ImportError:
        return True
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except (psutil.Error, OSError):
            continue
    return False


def descendants(pid: int) -> list[Any]:
    """``pid``'s descendants as ``psutil.Process`` objects (empty without psutil)."""
    try:
        import psutil

        return list(psutil.Process(pid).children(recursive=True))
    except Exception:
        return []


def sweep(processes: list[Any]) -> None:
    """SIGKILL the processes of an earlier :func:`descendants` snapshot that still run."""
    for proc in processes:
        with contextlib.suppress(Exception):
            if proc.is_running() and proc.status() != "zombie":
                proc.kill()
