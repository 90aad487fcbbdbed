"""Run graphs as solvers over an MCQ benchmark and score them against the gold letters.

Each config is run as an ordinary medloom run (its own run directory, trajectories and
report, under ``OUT/runs/``) with its ``dataset:`` replaced by the benchmark; the solvers run at
once over shared endpoint pools, and each run's final fold over its log also gathers its
predictions (:class:`~medloom.eval.predictions.PredictionPart`). ``OUT/eval.json`` records each
solver's run, so a killed evaluation resumes item by item. A solver must not look at the gold
answer: use graphs without gold-answer verifiers (``configs/eval/*.yaml``, ``configs/medprompt.yaml``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from medloom.core.errors import ConfigError
from medloom.eval.benchmark import benchmark_spec, gold_items
from medloom.eval.manifest import EvalManifest, SolverEntry, start_or_resume, write_manifest
from medloom.eval.predictions import PredictionPart
from medloom.eval.predictions import read_predictions as read_predictions  # where medfuzz reads it
from medloom.eval.records import EvalResult, Prediction, SolverResult
from medloom.eval.stats import wilson_interval
from medloom.graphs.loader import load_raw, validate_spec
from medloom.llm.pool import SharedPools
from medloom.runs.rundir import RunDir
from medloom.runs.runner import (
    EmbeddedProvider,
    ProgressHook,
    arun,
    default_embedded_provider,
    prepare_config,
)
from medloom.runs.stats import run_prices
from medloom.runs.sync import run_sync

T = TypeVar("T")


@dataclass
class Solver:
    """One config to evaluate, with the label it gets in the table."""

    label: str
    path: Path
    raw: dict[str, Any]


DEFAULT_SOLVERS = (
    "configs/eval/direct.yaml",
    "configs/eval/cot.yaml",
    "configs/medprompt.yaml",
    "configs/medagents.yaml",
)
"""What ``medloom eval`` compares when given no configs: those of these that exist (relative to
the current directory), as MedAgentsBench compares direct answers, CoT and agent methods."""


def default_solvers(root: Path | None = None) -> list[Path]:
    base = root or Path.cwd()
    found = [base / p for p in DEFAULT_SOLVERS if (base / p).is_file()]
    if not found:
        raise ConfigError(
            f"no solver configs given and none of {', '.join(DEFAULT_SOLVERS)} exist under {base}; "
            "pass CONFIG files to evaluate"
        )
    return found


def solvers_from(paths: Sequence[str | Path]) -> list[Solver]:
    """Load the configs; labels are recipe names, disambiguated by file stem when repeated."""
    if not paths:
        raise ConfigError("give at least one solver CONFIG to evaluate")
    loaded = [(Path(p), load_raw(p)) for p in paths]
    names = [str(raw.get("name") or path.stem) for path, raw in loaded]
    solvers = []
    for (path, raw), name in zip(loaded, names, strict=True):
        if raw.get("source") is not None:
            raise ConfigError(
                "a solver reads benchmark items: remove 'source:' (eval supplies 'dataset:')",
                file=path,
                key="source",
            )
        label = name if names.count(name) == 1 else f"{name} ({path.stem})"
        solvers.append(Solver(label=label, path=path, raw=raw))
    return solvers


def _has_own_endpoints(solver: Solver, overrides: list[str] | None) -> bool:
    data = prepare_config(solver.raw, file=str(solver.path), overrides=overrides)
    return bool(data.get("endpoints"))


def summarize(
    solver: Solver, run_dir: Path, preds: list[Prediction], wall_time_s: float, confidence: float
) -> SolverResult:
    n = len(preds)
    correct = sum(p.correct for p in preds)
    low, high = wilson_interval(correct, n, confidence)
    return SolverResult(
        solver=solver.label,
        config=str(solver.path),
        run_dir=str(run_dir),
        n=n,
        correct=correct,
        answered=sum(p.predicted is not None for p in preds),
        failed=sum(p.status in ("failed", "missing") for p in preds),
        accuracy=correct / n if n else 0.0,
        ci_low=low,
        ci_high=high,
        prompt_tokens=sum(p.prompt_tokens for p in preds),
        completion_tokens=sum(p.completion_tokens for p in preds),
        cost=round(sum(p.cost for p in preds), 8),
        wall_time_s=round(wall_time_s, 3),
    )


async def aevaluate(
    configs: Sequence[str | Path],
    benchmark: str | Path,
    *,
    endpoints: list[str] | None = None,
    limit: int | None = None,
    fields: dict[str, str] | None = None,
    split: str | None = None,
    config_name: str | None = None,
    overrides: list[str] | None = None,
    out_dir: str | Path | None = None,
    concurrency: int | None = None,
    no_cache: bool = False,
    resume: bool = False,
    accept_config_change: bool = False,
    sequential: bool = False,
    confidence: float = 0.95,
    embedded: EmbeddedProvider | None = None,
    progress: Callable[[str], ProgressHook | None] | None = None,
) -> EvalResult:
    """Evaluate every config on ``benchmark``; one embedded server (if needed) serves them all.

    The solvers run at once (``sequential``: one after another) over one endpoint pool per
    endpoint list, so each endpoint's ``max_concurrency`` holds across solvers. ``resume``
    continues the evaluation in ``out_dir`` (``OUT/eval.json``): each solver's run resumes item by
    item, its finished calls from the request cache; ``accept_config_change`` as for ``medloom run``.
    """
    solvers = solvers_from(configs)
    dataset = benchmark_spec(benchmark, fields, limit, split=split, config_name=config_name)
    items, bad = gold_items(dataset)
    if not items:
        raise ConfigError(f"benchmark {benchmark} has no readable items", key="--dataset")
    if resume and out_dir is None:
        raise ConfigError("--resume continues the evaluation in --out DIR: give its --out", key="--out")
    out = Path(out_dir) if out_dir else Path("runs") / time.strftime("eval-%Y%m%d-%H%M%S")
    benchmark_section = dataset.model_dump(mode="json", exclude_none=True)
    wanted = EvalManifest(
        benchmark=benchmark_section,
        overrides=list(overrides or []),
        solvers=[SolverEntry(label=s.label, config=str(s.path.resolve())) for s in solvers],
    )
    solver_overrides = [*(overrides or []), "dataset=" + json.dumps(benchmark_section)]
    for solver in solvers:  # a broken config stops the evaluation before any solver pays for calls
        data = prepare_config(
            solver.raw, file=str(solver.path), overrides=solver_overrides, endpoints=endpoints
        )
        validate_spec(data, file=solver.path)
    manifest = start_or_resume(out, wanted, resume)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, manifest)
    result = EvalResult(benchmark=dataset.path, out_dir=str(out), confidence=confidence, skipped_rows=bad)
    pools = SharedPools()

    async def one(solver: Solver, urls: list[str] | None) -> tuple[Path, float, PredictionPart]:
        part = PredictionPart()

        def started(run_dir: Path) -> None:
            part.prices = run_prices(RunDir(run_dir))
            if manifest.run_id(solver.label) != run_dir.name:
                manifest.set_run_id(solver.label, run_dir.name)
                write_manifest(out, manifest)

        run = await arun(
            solver.path,
            overrides=solver_overrides,
            endpoints=urls,
            concurrency=concurrency,
            resume=manifest.run_id(solver.label),
            accept_config_change=accept_config_change,
            runs_dir=out / "runs",
            no_cache=no_cache,
            progress=progress(solver.label) if progress else None,
            on_run_dir=started,
            fold_parts=[part],
            pools=pools,
        )
        return run.run_dir, run.report.wall_time_s, part

    async with contextlib.AsyncExitStack() as stack:
        plans: list[tuple[Solver, list[str] | None]] = []
        shared: list[str] | None = None
        for solver in solvers:
            urls = endpoints
            if not urls and not _has_own_endpoints(solver, overrides):
                if shared is None:
                    data = prepare_config(solver.raw, file=str(solver.path), overrides=solver_overrides)
                    spec = validate_spec(data, file=solver.path)
                    shared = await stack.enter_async_context((embedded or default_embedded_provider())(spec))
                urls = shared
            plans.append((solver, urls))
        if sequential:
            finished = [await one(solver, urls) for solver, urls in plans]
        else:
            finished = await all_or_none([one(solver, urls) for solver, urls in plans])
    for solver, (run_dir, wall, part) in zip(solvers, finished, strict=True):
        preds = part.predictions(solver.label, items)
        result.predictions.extend(preds)
        result.solvers.append(summarize(solver, run_dir, preds, wall, confidence))
    return result


async def all_or_none(work: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Await every coroutine at once, results in order; the first error cancels the others (their
    runs end as interrupted, resumable) and is raised once they have wound down."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def evaluate(configs: Sequence[str | Path], benchmark: str | Path, **kwargs: Any) -> EvalResult:
    """Synchronous :func:`aevaluate`; write the files with ``medloom.eval.outputs.write_results``.

    Inside a running event loop (Jupyter, an async app) it runs in a worker thread and blocks until
    it ends: ``await medloom.eval.aevaluate(...)`` keeps that loop responsive. From a script's main
    thread a SIGTERM stops it as Ctrl-C does (see :func:`medloom.run`)."""
    return run_sync(
        lambda: aevaluate(configs, benchmark, **kwargs), instead="await medloom.eval.aevaluate(...)"
    )
