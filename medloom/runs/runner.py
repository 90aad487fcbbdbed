"""Run a graph over a dataset into a run directory; resume a killed run."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import functools
import logging
import os
import shutil
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from medloom import __version__
from medloom.core.budget import BudgetCaps, BudgetLedger, CapReached
from medloom.core.errors import ConfigError, DataError, MedloomError
from medloom.core.events import ItemFinished
from medloom.core.trajectory import TrajectoryHeader
from medloom.data.sources import item_source
from medloom.graphs.build import build_graph, template_library
from medloom.graphs.engine import Engine
from medloom.graphs.loader import apply_override, load_raw, validate_spec
from medloom.graphs.runtime import instantiate, resolve_models
from medloom.graphs.spec import GraphSpec
from medloom.llm.cache import RequestCache
from medloom.llm.client import LLMClient
from medloom.llm.pool import SharedPools
from medloom.llm.settings import check_api_keys
from medloom.llm.transport import Transport
from medloom.runs.budget import check_budget, session_ledger
from medloom.runs.capacity import concurrency_advice
from medloom.runs.card import write_card
from medloom.runs.config_change import ConfigChanged, apply_changes, changed_keys, dotted
from medloom.runs.endpoint_overrides import apply_endpoint_concurrency, apply_endpoint_urls
from medloom.runs.fold import FoldPart, fold_run
from medloom.runs.lock import RunLock
from medloom.runs.outputs import write_output_files
from medloom.runs.report import Report, write_report
from medloom.runs.rundir import RunDir, RunStorageError, Session, resume_command, storage_problem
from medloom.runs.secrets import SecretFilter
from medloom.runs.shards import ShardItems, sharded_run_error
from medloom.runs.store import TrajectoryWriter, final_outcomes, iter_events
from medloom.runs.sync import run_sync

if TYPE_CHECKING:
    import datasets

log = logging.getLogger("medloom")

EmbeddedProvider = Callable[[GraphSpec], contextlib.AbstractAsyncContextManager[list[str]]]


class ProgressHook(Protocol):
    def on_start(self, total: int | None, already_done: int, client: LLMClient) -> None: ...
    def on_item(self, end: ItemFinished) -> None: ...
    def on_finish(self) -> None: ...


@dataclass(frozen=True)
class _Shared:
    """What the caller of :func:`arun` hands down to the run's client and its final fold."""

    transport: Transport | None = None
    budget: BudgetLedger | None = None
    pools: SharedPools | None = None
    fold_parts: Sequence[FoldPart] = ()


_NOTHING_SHARED = _Shared()


@dataclass
class RunResult:
    run_dir: Path
    report: Report

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @functools.cached_property
    def dataset(self) -> datasets.Dataset:
        """The kept rows, loaded from the run's ``dataset/`` on first use (``datasets`` takes over a
        second to import, which a run that only writes its files does not pay)."""
        import datasets

        return datasets.load_from_disk(str(self.run_dir / "dataset"))


def prepare_config(
    raw: dict[str, Any],
    *,
    file: str | None,
    overrides: list[str] | None = None,
    endpoints: list[str] | None = None,
    limit: int | None = None,
    concurrency: int | None = None,
    no_cache: bool = False,
    api_key_env: str | None = None,
    endpoint_concurrency: int | None = None,
    caps: BudgetCaps | None = None,
) -> dict[str, Any]:
    """The config dict with command-line overrides applied (validated later); ``caps`` set the
    ``run.budget`` caps they give.

    ``--endpoint`` URLs replace the endpoints first, so ``--set endpoints.0.KEY=...`` refines them."""
    data = copy.deepcopy(raw)
    if endpoints:
        apply_endpoint_urls(data, endpoints, api_key_env=api_key_env, file=file)
    elif api_key_env is not None:
        raise ConfigError("--api-key-env names the key of an --endpoint URL: give --endpoint too", file=file)
    for assignment in overrides or []:
        apply_override(data, assignment, file=file)
    if endpoint_concurrency is not None:
        apply_endpoint_concurrency(data, endpoint_concurrency, file=file)
    if limit is not None:
        data.setdefault("source" if "source" in data else "dataset", {})["limit"] = limit
    if concurrency is not None:
        data.setdefault("run", {})["concurrency"] = concurrency
    if no_cache:
        data.setdefault("llm", {}).setdefault("cache", {})["enabled"] = False
    if caps is not None and caps.any:
        budget = data.setdefault("run", {}).setdefault("budget", {})
        budget.update(caps.model_dump(exclude_none=True))
    return data


def _localize_dataset_path(data: dict[str, Any], base_dir: Path | None) -> None:
    """A relative dataset path that exists beside the config file (and not here) points there."""
    dataset = data.get("dataset")
    if base_dir is None or not isinstance(dataset, dict) or not isinstance(dataset.get("path"), str):
        return
    path = Path(dataset["path"])
    if not path.is_absolute() and not path.exists() and (base_dir / path).exists():
        dataset["path"] = str((base_dir / path).resolve())


@contextlib.asynccontextmanager
async def _no_embedded(spec: GraphSpec) -> AsyncIterator[list[str]]:
    raise ConfigError(
        "no endpoint configured: pass --endpoint URL (any OpenAI-compatible server), add "
        "'endpoints:' to the config, or install medloom[local] for the embedded vLLM default",
        key="endpoints",
    )
    yield []  # pragma: no cover


def default_embedded_provider() -> EmbeddedProvider:
    try:
        from medloom.serving.embedded import embedded_endpoints
    except ImportError:
        return _no_embedded
    return embedded_endpoints


async def arun(
    config: str | Path | GraphSpec | dict[str, Any] | None = None,
    *,
    overrides: list[str] | None = None,
    endpoints: list[str] | None = None,
    limit: int | None = None,
    concurrency: int | None = None,
    resume: str | None = None,
    retry_failed: bool = False,
    accept_config_change: bool = False,
    runs_dir: str | Path | None = None,
    no_cache: bool = False,
    progress: ProgressHook | None = None,
    embedded: EmbeddedProvider | None = None,
    transport: Transport | None = None,
    api_key_env: str | None = None,
    endpoint_concurrency: int | None = None,
    on_run_dir: Callable[[Path], None] | None = None,
    fold_parts: Sequence[FoldPart] = (),
    pools: SharedPools | None = None,
    caps: BudgetCaps | None = None,
    budget: BudgetLedger | None = None,
) -> RunResult:
    """Run (or resume) a recipe; returns the run directory, its report and the kept rows.

    ``caps`` override the config's budget caps (``run.budget``): they bound the run's spend over all
    its sessions; once one is reached no new item starts, the items in flight finish, and the
    session ends ``stopped`` (``report.stopped_by`` says which cap). ``budget`` replaces the
    in-process ledger with a shared one (e.g. one counter for every shard of a run); it must then
    hold the run's earlier spend itself.

    The run directory is locked while this runs (:class:`~medloom.runs.lock.RunLocked` if another
    process holds it). ``on_run_dir`` is called with the run directory as soon as it is known.
    ``transport`` replaces the HTTP transport of the run's LLM client (e.g. an in-process fake's).
    ``fold_parts`` see the run's events in the one pass over its log at the end (after a resume,
    the whole log); ``pools`` shares endpoint pools (routing, per-endpoint concurrency) with other
    runs of this process.
    """
    config_file: str | None = None
    if isinstance(config, GraphSpec):
        config = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(config, str | Path):
        config_file = str(Path(config).resolve())
    base_dir = Path(config_file).parent if config_file else None
    lock: RunLock | None = None
    try:
        source: dict[str, Any] | None = None
        if resume:
            base = Path(runs_dir) if runs_dir else Path("runs")
            run = RunDir.open(base, resume)
            lock = RunLock(run.path).acquire()
            meta = run.read_meta()
            if meta.shards is not None:
                raise sharded_run_error(run.run_id, meta.shards)
            raw = _resume_config(run, config_file, accept_config_change)
            file = str(run.config_path)
            meta = run.read_meta()
            if meta.config_file and base_dir is None:
                base_dir = Path(meta.config_file).resolve().parent
        else:
            if config is None:
                raise ConfigError("give a config file (or --resume RUN_ID)")
            raw = config if isinstance(config, dict) else load_raw(config)
            source = raw if config_file else None
            file = str(config) if config_file else "<config>"
        data = prepare_config(
            raw,
            file=file,
            overrides=overrides,
            endpoints=endpoints,
            limit=limit,
            concurrency=concurrency,
            no_cache=no_cache,
            api_key_env=api_key_env,
            endpoint_concurrency=endpoint_concurrency,
            caps=caps,
        )
        _localize_dataset_path(data, base_dir)
        spec = validate_spec(data, file=file)
        check_budget(spec, file=file)
        check_api_keys(spec.endpoints)  # a missing key variable: one line now, not a failure per item
        templates = template_library(spec, base_dir)
        compiled = build_graph(spec, file=file, templates=templates)
        root = Path(runs_dir) if runs_dir else Path(spec.run.runs_dir)
        if not resume:
            run = RunDir.create(root, spec.name, data, config_file, source_config=source)
            lock = RunLock(run.path).acquire()
        if on_run_dir is not None:
            on_run_dir(run.path)
        handler = _attach_log(run, spec)
        own_log = _LOGGING_RUN.set(run.run_id)
        try:
            graph = (spec, compiled, templates)
            where = (file, base_dir)
            shared = _Shared(transport, budget, pools, fold_parts)
            result = await _start(run, graph, data, root, where, retry_failed, progress, embedded, shared)
            if (warning := no_items_warning(result.report)) is not None:
                log.warning("run %s: %s", result.run_id, warning)
        except RunStorageError:
            raise  # logged where it happened
        except (ConfigError, DataError) as exc:
            if not resume and not items_started(run):  # refused at start: leave no run behind
                discard_refused_run(run)
            else:
                log.error("run %s stopped: %s: %s", run.run_id, type(exc).__name__, exc)
            raise
        except Exception as exc:
            trace = not isinstance(exc, MedloomError)  # medloom's own errors say what to fix already
            log.error("run %s stopped: %s: %s", run.run_id, type(exc).__name__, exc, exc_info=trace)
            raise
        finally:
            _LOGGING_RUN.reset(own_log)
            logging.getLogger("medloom").removeHandler(handler)
            handler.close()
    finally:
        if lock is not None:
            lock.release()
    return result


async def _start(
    run: RunDir,
    graph: tuple[GraphSpec, Any, Any],
    data: dict[str, Any],
    root: Path,
    where: tuple[str, Path | None],
    retry_failed: bool,
    progress: ProgressHook | None,
    embedded: EmbeddedProvider | None,
    shared: _Shared,
) -> RunResult:
    """Start the embedded server when no endpoint is configured, then run the items."""
    spec, compiled, templates = graph
    file = where[0]
    async with contextlib.AsyncExitStack() as stack:
        if not spec.endpoints:
            urls = await stack.enter_async_context((embedded or default_embedded_provider())(spec))
            spec = validate_spec(prepare_config(data, file=file, endpoints=urls), file=file)
            compiled = build_graph(spec, file=file, templates=templates)
        return await _execute(
            run, spec, compiled, templates, root, data, where, retry_failed, progress, shared
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _resume_config(run: RunDir, config_file: str | None, accept_change: bool) -> dict[str, Any]:
    """The run's config snapshot; when the recipe file (given now, or the one the run was made from)
    was edited since, a :class:`ConfigChanged` error, or with ``accept_change`` the snapshot with the
    edited keys applied (recorded in the run directory)."""
    snapshot = run.read_config()
    meta = run.read_meta()
    path = config_file or meta.config_file
    if meta.source_config is None or path is None or not Path(path).is_file():
        return snapshot
    current = load_raw(path)
    keys = changed_keys(meta.source_config, current)
    if not keys:
        return snapshot
    if not accept_change:
        raise ConfigChanged(path, run.run_id, keys)
    log.warning("run %s resumes with edited keys of %s: %s", run.run_id, path, ", ".join(map(dotted, keys)))
    snapshot = apply_changes(snapshot, current, keys)
    run.write_config(snapshot)
    meta.source_config = current
    meta.config_file = str(Path(path).resolve())
    run.write_meta(meta)
    return snapshot


def no_items_warning(report: Report) -> str | None:
    """Why a run processed no item at all (an empty dataset, or every row skipped); None otherwise."""
    if report.items > 0:
        return None
    if report.skipped_rows:
        return (
            f"no items ran: all {report.skipped_rows} input rows were skipped "
            "(see the skipped rows in the report; check dataset.fields and the file's encoding)"
        )
    return "no items ran: the dataset is empty (check dataset.path, dataset.split and --limit)"


async def _execute(
    run: RunDir,
    spec: GraphSpec,
    compiled: Any,
    templates: Any,
    root: Path,
    data: dict[str, Any],
    where: tuple[str, Path | None],
    retry_failed: bool,
    progress: ProgressHook | None,
    shared: _Shared = _NOTHING_SHARED,
) -> RunResult:
    file, base_dir = where
    budget = shared.budget
    if budget is None:
        budget = session_ledger(spec.run.budget, run.trajectories, spec.llm.prices)
    cache = _open_cache(spec, root) if spec.llm.cache.enabled else None
    meta = run.read_meta()
    for earlier in meta.sessions:
        if earlier.status == "running":  # killed without closing: this session takes over
            earlier.status = "interrupted"
            earlier.ended = earlier.ended or _last_write(run, earlier.started)
    session = Session(
        started=time.time(),
        command=[Path(sys.argv[0]).name, *sys.argv[1:]],
        endpoints=[e.base_url for e in spec.endpoints],
        pid=os.getpid(),
        host=socket.gethostname(),
        budget=budget.caps if budget is not None else None,
    )
    meta.sessions.append(session)
    try:
        run.write_meta(meta)
    except OSError as exc:
        if cache is not None:
            cache.close()
        problem = storage_problem(exc)
        raise RunStorageError(
            f"cannot start a session of run {run.run_id}: {problem}, then `{resume_command(run.path)}`"
        ) from None
    attempt = len(meta.sessions) - 1
    if (advice := concurrency_advice(spec)) is not None:
        log.warning(advice)
        print(f"medloom: warning: {advice}", file=sys.stderr, flush=True)
    client = LLMClient(
        spec.endpoints, spec.llm, cache=cache, transport=shared.transport, budget=budget, pools=shared.pools
    )
    work: asyncio.Future[None] | None = None

    def stop_on_write_error(exc: OSError) -> None:
        if work is not None:
            work.cancel()

    run_id = meta.run_id if meta.shard is not None else run.run_id  # a shard's rows carry the run's id
    header = TrajectoryHeader(run_id=run_id, attempt=attempt, writer=f"medloom {__version__}")
    writer = TrajectoryWriter(run.trajectories, header, on_error=stop_on_write_error)
    status = "crashed"
    engine: Engine | None = None
    refusal: str | None = None
    try:
        if writer.error is not None:  # not even the session header fits: stop before paying for calls
            raise writer.error
        models = await resolve_models(spec, client)
        check_budget(spec, file=file, models={alias: ref.served for alias, ref in models.items()})
        rt = instantiate(compiled, client, models, templates, file=file, base_dir=base_dir)
        finals = final_outcomes(run.trajectories)
        done = {i for i, (_, status) in finals.items() if not (retry_failed and status == "failed")}
        items: Any = item_source(spec, base_dir)
        if meta.shard is not None:  # one shard of a sharded run: only the items it owns
            items = ShardItems(items, meta.shard)
        total = items.count()
        if progress:
            progress.on_start(total, len(done), client)
        engine = Engine(
            rt,
            writer.write,
            run_id=run_id,
            attempt=attempt,
            concurrency=spec.run.concurrency,
            on_item_done=progress.on_item if progress else None,
            budget=budget,
        )
        log.info("run %s session %d: %d items already done", run.run_id, attempt, len(done))
        work = asyncio.ensure_future(engine.run(items, done=done))
        try:
            await work
        except asyncio.CancelledError:
            if writer.error is None:
                raise
        if writer.error is not None:
            raise writer.error
        status = "stopped" if engine.stopped_by is not None else "completed"
    except (KeyboardInterrupt, asyncio.CancelledError):
        status = "interrupted"
        raise
    except (ConfigError, DataError) as exc:
        if engine is None:  # a start check refused the run (unserved model, wrong URL, rejected key)
            status, refusal = "refused", str(exc)
        raise
    except OSError as exc:
        status = "interrupted"  # a full disk: resume once there is space again
        log.error("run %s stopped: %s", run.run_id, storage_problem(exc))
        raise RunStorageError(
            f"run {run.run_id} stopped (session marked interrupted): {storage_problem(exc)}, "
            f"then `{resume_command(run.path)}`"
        ) from None
    finally:
        writer.close()
        await client.aclose()
        if cache is not None:
            cache.close()
        if progress:
            progress.on_finish()
        stopped_by = engine.stopped_by if engine else None
        report, written = _finish(run, spec, data, status, stopped_by, shared.fold_parts, refusal)
    if report is None or not written:  # pragma: no cover - a storage failure raised above
        raise RunStorageError(f"run {run.run_id}: the report could not be written")
    return RunResult(run_dir=run.path, report=report)


def _open_cache(spec: GraphSpec, root: Path) -> RequestCache:
    path = Path(spec.llm.cache.path) if spec.llm.cache.path else root / ".cache" / "llm.sqlite"
    try:
        return RequestCache(path)
    except (OSError, sqlite3.Error) as exc:
        raise RunStorageError(
            f"cannot open the request cache {path} ({exc}): free some space or fix its permissions, "
            "or run with --no-cache"
        ) from None


def items_started(run: RunDir) -> bool:
    """Whether any item of the run has started (in any session)."""
    return next(iter_events(run.trajectories, {"item_started"}), None) is not None


def discard_refused_run(run: RunDir) -> None:
    """Remove a new run that a start check refused before any item (an unserved model, a wrong
    URL, a rejected key): nothing ran and the error says what to fix, so no run directory is left
    behind, as if it had not been made. A resumed run keeps its directory; its session is marked
    ``refused`` with the reason."""
    log.info("run %s refused at start (no item ran): its directory is removed", run.run_id)
    shutil.rmtree(run.path, ignore_errors=True)


def _finish(
    run: RunDir,
    spec: GraphSpec,
    data: dict[str, Any],
    status: str,
    stopped_by: CapReached | None = None,
    parts: Sequence[FoldPart] = (),
    reason: str | None = None,
) -> tuple[Report | None, bool]:
    """Close the session in run.json (with the cap that stopped it, or why it was refused), then write
    the report, the outputs and the card; returns the report and whether the outputs were written.
    When the disk is full this does what it can and logs what it could not (resume writes it all
    again)."""
    report: Report | None = None
    written = False
    step = "run.json"
    try:
        meta = run.read_meta()
        meta.sessions[-1].ended = time.time()
        meta.sessions[-1].status = status
        meta.sessions[-1].stopped_by = stopped_by
        meta.sessions[-1].reason = reason
        run.write_meta(meta)
        step = "report.json"
        fold = fold_run(run, spec.llm.prices, parts)
        report = fold.report
        write_report(run, report)
        step = "the dataset outputs"
        write_output_files(run, fold.kept_offsets, spec.output.columns)
        written = True
        step = "the dataset card"
        write_card(run, fold.stats, data)
    except OSError as exc:
        if status in ("completed", "stopped"):
            problem = storage_problem(exc)
            raise RunStorageError(
                f"run {run.run_id} ended, but writing {step} failed: {problem}, then "
                f"`{resume_command(run.path)}` writes the outputs again"
            ) from None
        log.error("run %s: %s not written: %s", run.run_id, step, storage_problem(exc))
    return report, written


def _last_write(run: RunDir, started: float) -> float:
    """When the trajectory file was last written (when a killed session stopped), not before ``started``."""
    try:
        return max(started, run.trajectories.stat().st_mtime)
    except FileNotFoundError:
        return started


class RunLogHandler(logging.FileHandler):
    """The run's log file; a write that fails (a full disk) is dropped silently, since the console
    already gets the one line that matters."""

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handleError(record)


_LOGGING_RUN: contextvars.ContextVar[str | None] = contextvars.ContextVar("medloom_run", default=None)
"""The run whose task is logging (several runs may go at once in one process: ``medloom eval``)."""


class _OwnRunOnly(logging.Filter):
    """Keeps the records of this run's task (and those logged outside any run)."""

    def __init__(self, run_id: str):
        super().__init__()
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        current = _LOGGING_RUN.get()
        return current is None or current == self.run_id


def _attach_log(run: RunDir, spec: GraphSpec) -> logging.Handler:
    handler = RunLogHandler(run.log_path, encoding="utf-8")
    handler.addFilter(_OwnRunOnly(run.run_id))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    names = [e.api_key_env for e in spec.endpoints if e.api_key_env]
    handler.addFilter(SecretFilter([os.environ[n] for n in names if os.environ.get(n)]))
    logger = logging.getLogger("medloom")
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


def run(config: str | Path | GraphSpec | dict[str, Any] | None = None, **kwargs: Any) -> RunResult:
    """Synchronous :func:`arun` (same arguments).

    Called where an event loop is already running (Jupyter, an async app), the run goes to a
    worker thread with its own loop and this call blocks until it ends; ``await medloom.arun(...)``
    is the better choice there, since it keeps the caller's loop responsive.

    Called from a script's main thread, a SIGTERM (``timeout``, schedulers, containers) stops the
    run as Ctrl-C does: the items in flight are cancelled, the session ends interrupted, the report
    is written, and ``SystemExit(143)`` is raised (``resume=RUN_ID`` goes on later). The handler is
    installed only while SIGTERM has its default action, and removed when the run ends.
    """
    started: list[Path] = []
    user_hook: Callable[[Path], None] | None = kwargs.pop("on_run_dir", None)

    def on_run_dir(path: Path) -> None:
        started.append(path)
        if user_hook is not None:
            user_hook(path)

    try:
        return run_sync(
            lambda: arun(config, on_run_dir=on_run_dir, **kwargs), instead="await medloom.arun(...)"
        )
    except SystemExit:
        where = f"; `{resume_command(started[-1])}` goes on" if started else ""
        log.warning("run terminated by SIGTERM, session marked interrupted%s", where)
        raise
