"""The run directory: config snapshot, run metadata, trajectories, outputs, report."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from medloom.core.errors import RunError
from medloom.runs.store import TRAJECTORIES


class Session(BaseModel):
    """One process's stint on a run (the first, then one per resume)."""

    started: float
    ended: float | None = None
    status: str = "running"
    command: list[str] = Field(default_factory=list)
    endpoints: list[str] = Field(default_factory=list)
    pid: int | None = None
    """The process running the session (absent in runs made before it was recorded)."""
    host: str | None = None


class RunMeta(BaseModel):
    run_id: str
    recipe: str
    created: float
    config_file: str | None = None
    medloom_version: str = ""
    sessions: list[Session] = Field(default_factory=list)


STALE_S = 600.0
"""A running session without a checkable process counts as dead when its trajectories are this old."""

RunState = Literal["live", "interrupted", "ended"]


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), from /proc on Linux; None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def session_alive(session: Session) -> bool:
    """Whether the session's process (recorded on this host) still runs; a pid that a newer process
    took over (it started after the session did) does not count."""
    if session.pid is None or not pid_alive(session.pid):
        return False
    started = process_started(session.pid)
    return started is None or started <= session.started + 2.0


def new_run_id(recipe: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", recipe.lower()).strip("-")[:40] or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{secrets.token_hex(2)}"


class RunDir:
    """Paths and metadata of ``runs/<run-id>/``."""

    def __init__(self, path: Path):
        self.path = path

    @property
    def run_id(self) -> str:
        return self.path.name

    config_path = property(lambda self: self.path / "config.yaml")
    meta_path = property(lambda self: self.path / "run.json")
    trajectories = property(lambda self: self.path / TRAJECTORIES)
    report_path = property(lambda self: self.path / "report.json")
    dataset_dir = property(lambda self: self.path / "dataset")
    parquet_path = property(lambda self: self.path / "data.parquet")
    jsonl_path = property(lambda self: self.path / "data.jsonl")
    card_path = property(lambda self: self.path / "README.md")
    log_path = property(lambda self: self.path / "medloom.log")

    @classmethod
    def create(cls, runs_dir: Path, recipe: str, config: dict[str, Any], config_file: str | None) -> RunDir:
        runs_dir.mkdir(parents=True, exist_ok=True)
        run = cls(runs_dir / new_run_id(recipe))
        run.path.mkdir()
        run.config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        from medloom import __version__

        meta = RunMeta(
            run_id=run.run_id,
            recipe=recipe,
            created=time.time(),
            config_file=config_file,
            medloom_version=__version__,
        )
        run.write_meta(meta)
        return run

    @classmethod
    def open(cls, runs_dir: Path, run_id: str) -> RunDir:
        candidate = Path(run_id)
        path = candidate if candidate.is_dir() and (candidate / "run.json").exists() else runs_dir / run_id
        if not (path / "run.json").exists():
            known = sorted(p.name for p in runs_dir.glob("*/run.json")) if runs_dir.exists() else []
            hint = f"; runs in {runs_dir}: {', '.join(p.split('/')[0] for p in known[-5:])}" if known else ""
            raise RunError(f"no run '{run_id}' in {runs_dir}{hint}")
        return cls(path)

    def read_meta(self) -> RunMeta:
        return RunMeta.model_validate_json(self.meta_path.read_text())

    def write_meta(self, meta: RunMeta) -> None:
        tmp = self.meta_path.with_suffix(".tmp")
        tmp.write_text(meta.model_dump_json(indent=2))
        tmp.replace(self.meta_path)

    def state(self, now: float | None = None) -> RunState:
        """``live`` while a session still runs; ``interrupted`` when the last session is marked running
        but its process is gone (killed, crashed machine); ``ended`` otherwise.

        A session that recorded its pid on this host is checked directly; otherwise (an older run, or
        another host) it counts as dead once its trajectory file has not grown for ``STALE_S``.
        """
        sessions = self.read_meta().sessions
        if not sessions or sessions[-1].status != "running":
            return "ended"
        last = sessions[-1]
        if last.pid is not None and last.host == socket.gethostname():
            return "live" if session_alive(last) else "interrupted"
        try:
            touched = self.trajectories.stat().st_mtime
        except FileNotFoundError:
            touched = last.started
        return "live" if (now or time.time()) - touched < STALE_S else "interrupted"

    def read_config(self) -> dict[str, Any]:
        data = yaml.safe_load(self.config_path.read_text())
        if not isinstance(data, dict):
            raise RunError(f"{self.config_path} is not a mapping; the run directory is damaged")
        return data

    def read_report(self) -> dict[str, Any]:
        return dict(json.loads(self.report_path.read_text()))
