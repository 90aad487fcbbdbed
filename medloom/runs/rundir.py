"""The run directory: config snapshot, run metadata, trajectories, outputs, report."""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from medloom.core.budget import BudgetCaps, CapReached
from medloom.core.errors import RunError
from medloom.runs.lock import lock_held
from medloom.runs.shards import ShardPlan, ShardSlice
from medloom.runs.store import TRAJECTORIES


class Session(BaseModel):
    """One process's stint on a run (the first, then one per resume)."""

    started: float
    ended: float | None = None
    status: str = "running"
    """running, completed, stopped (a budget cap), refused (a start check), interrupted or crashed."""
    command: list[str] = Field(default_factory=list)
    endpoints: list[str] = Field(default_factory=list)
    pid: int | None = None
    """The process running the session (absent in runs made before it was recorded)."""
    host: str | None = None
    budget: BudgetCaps | None = None
    """The caps the session ran under (absent without caps)."""
    stopped_by: CapReached | None = None
    """The cap that stopped the session (its status is then ``stopped``)."""
    reason: str | None = None
    """Why a start check refused the session before any item (its status is then ``refused``)."""


class RunMeta(BaseModel):
    run_id: str
    recipe: str
    created: float
    config_file: str | None = None
    source_config: dict[str, Any] | None = None
    """The config file as loaded when the run was made (before overrides): a resume compares the file
    with it to notice edits."""
    medloom_version: str = ""
    sessions: list[Session] = Field(default_factory=list)
    shards: ShardPlan | None = None
    """Set on a sharded run's directory: how its items were split (``medloom.runs.shards``)."""
    shard: ShardSlice | None = None
    """Set on a shard's directory (``RUN/shard-K``): the part of the items it runs."""


META_SPARE_BYTES = 512
"""Blank space kept at the end of run.json (see :meth:`RunDir.write_meta`)."""

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
    def create(
        cls,
        runs_dir: Path,
        recipe: str,
        config: dict[str, Any],
        config_file: str | None,
        source_config: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        shards: ShardPlan | None = None,
        shard: ShardSlice | None = None,
    ) -> RunDir:
        """Make ``runs_dir/<new id>/`` with its config snapshot and run.json, all or nothing: the files
        are written in a hidden directory that is renamed into place, so a full disk or a crash
        leaves no half-made run behind. A shard (``shard``) goes in ``runs_dir/<name>/`` and keeps
        the sharded run's id (the parent directory's name), which its rows carry."""
        from medloom import __version__

        run_id = name or new_run_id(recipe)
        staging = runs_dir / f".creating-{run_id}"
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
            staging.mkdir()
            draft = cls(staging)
            draft.write_config(config)
            meta = RunMeta(
                run_id=runs_dir.name if shard is not None else run_id,
                recipe=recipe,
                created=time.time(),
                config_file=config_file,
                source_config=source_config,
                medloom_version=__version__,
                shards=shards,
                shard=shard,
            )
            draft.write_meta(meta)
            staging.rename(runs_dir / run_id)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            problem = storage_problem(exc)
            raise RunError(f"cannot create a run in {runs_dir}: {problem}, then run again") from None
        return cls(runs_dir / run_id)

    @classmethod
    def open(cls, runs_dir: Path, run_id: str) -> RunDir:
        candidate = Path(run_id)
        path = candidate if candidate.is_dir() and (candidate / "run.json").exists() else runs_dir / run_id
        if not (path / "run.json").exists():
            metas = runs_dir.glob("*/run.json") if runs_dir.exists() else []
            known = sorted(p.parent.name for p in metas if not p.parent.name.startswith("."))
            hint = f"; latest runs there: {', '.join(known[-5:])}" if known else " (it holds no runs)"
            raise RunError(f"no run '{run_id}' in {runs_dir}{hint}")
        return cls(path)

    def read_meta(self) -> RunMeta:
        """run.json; a :class:`RunError` naming the file when it is unreadable or damaged."""
        try:
            return RunMeta.model_validate_json(self.meta_path.read_bytes())
        except FileNotFoundError:
            raise RunError(f"{self.meta_path} is missing: {self.path} is not a run directory") from None
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(map(str, problem.get("loc", ())))
            what = f"{where}: {problem['msg']}" if where else str(problem["msg"])
            raise RunError(
                f"{self.meta_path} is damaged ({what}); restore it from a backup, or start a new run"
            ) from None

    def write_meta(self, meta: RunMeta) -> None:
        """Replace run.json atomically. The file ends with spare blank space, so that when the disk is
        full the session's end can still be recorded by rewriting the file in place."""
        body = meta.model_dump_json(indent=2).encode() + b"\n"
        tmp = self.meta_path.with_suffix(".tmp")
        try:
            tmp.write_bytes(body + b" " * META_SPARE_BYTES + b"\n")
            tmp.replace(self.meta_path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not self._rewrite_meta_in_place(body):
                raise

    def _rewrite_meta_in_place(self, body: bytes) -> bool:
        """Overwrite run.json within its present size (needs no free blocks); False if it does not fit."""
        try:
            size = self.meta_path.stat().st_size
            if len(body) > size:
                return False
            with self.meta_path.open("r+b") as fh:
                fh.write(body + b" " * (size - len(body) - 1) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError:
            return False
        return True

    def state(self, now: float | None = None) -> RunState:
        """``live`` while a session still runs; ``interrupted`` when the last session is marked running
        but its process is gone (killed, crashed machine); ``ended`` otherwise.

        A session that recorded its pid on this host is checked directly; otherwise (an older run, or
        another host) it counts as dead once its trajectory file has not grown for ``STALE_S``.
        """
        sessions = self.read_meta().sessions
        if not sessions or sessions[-1].status != "running":
            return "ended"
        if lock_held(self.path):
            return "live"
        last = sessions[-1]
        if last.pid is not None and last.host == socket.gethostname():
            return "live" if session_alive(last) else "interrupted"
        try:
            touched = self.trajectories.stat().st_mtime
        except FileNotFoundError:
            touched = last.started
        return "live" if (now or time.time()) - touched < STALE_S else "interrupted"

    def write_config(self, config: dict[str, Any]) -> None:
        """Replace the config snapshot atomically."""
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
        tmp.replace(self.config_path)

    def read_config(self) -> dict[str, Any]:
        try:
            data = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise RunError(
                f"{self.config_path} cannot be read ({exc}); the run directory is damaged"
            ) from None
        if not isinstance(data, dict):
            raise RunError(f"{self.config_path} is not a mapping; the run directory is damaged")
        return data

    def read_report(self) -> dict[str, Any]:
        return dict(json.loads(self.report_path.read_text()))


def storage_problem(exc: OSError) -> str:
    """An OS error while writing run files, said so that the user knows what to do."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device{where}: free some space"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"not allowed to write{where}: choose a writable --runs-dir"
    return f"{exc.strerror or exc}{where}"


def resume_command(run_dir: Path) -> str:
    """The command line that continues the run in ``run_dir``."""
    import shlex

    where = "" if run_dir.parent == Path("runs") else f" --runs-dir {shlex.quote(str(run_dir.parent))}"
    return f"medloom run --resume {run_dir.name}{where}"


class RunStorageError(RunError):
    """Writing the run's files failed (a full disk, a lost mount); the session ends interrupted."""
