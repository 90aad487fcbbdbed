"""Run graphs as solvers over an MCQ benchmark and score them against the gold letters.

Each config is run as an ordinary medloom run (its own run directory, trajectories and
report, under ``OUT/runs/``) with its ``dataset:`` replaced by the benchmark; predictions are
then read back from the trajectories. A solver must not look at the gold answer: use graphs
without gold-answer verifiers (``configs/eval/*.yaml``, ``configs/medprompt.yaml``).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medloom.core.errors import ConfigError
from medloom.core.events import ItemFinished, LLMCall, TraceCreated
from medloom.core.records import Item, Trace
from medloom.core.usage import UsageTally
from medloom.eval.benchmark import benchmark_spec, gold_items
from medloom.eval.records import EvalResult, Prediction, SolverResult
from medloom.eval.stats import wilson_interval
from medloom.graphs.loader import load_raw, validate_spec
from medloom.llm.settings import LLMSettings
from medloom.runs.runner import (
    EmbeddedProvider,
    ProgressHook,
    arun,
    default_embedded_provider,
    prepare_config,
)
from medloom.runs.store import iter_events
from medloom.runs.sync import run_sync


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


def row_vote(rows: list[dict[str, Any]]) -> tuple[str | None, dict[str, int]]:
    """The answer of a solver that kept several rows for an item: the most common ``predicted``
    (self-consistency); a tie goes to the answer of the earliest row."""
    answers = [str(r["predicted"]) for r in rows if r.get("predicted")]
    counts = Counter(answers)
    if not counts:
        return None, {}
    top = max(counts.values())
    return next(a for a in answers if counts[a] == top), dict(sorted(counts.items()))


def read_predictions(run_dir: Path, solver: str, items: list[Item]) -> list[Prediction]:
    """One prediction per benchmark item from a finished run's trajectories."""
    prices = LLMSettings.model_validate(_read_yaml(run_dir / "config.yaml").get("llm") or {}).prices
    ends: dict[str, ItemFinished] = {}
    usage: dict[str, UsageTally] = defaultdict(UsageTally)
    last_trace: dict[str, Trace] = {}
    for _, event in iter_events(run_dir / "trajectories.jsonl", {"llm_call", "item_end", "trace"}):
        if isinstance(event, ItemFinished):
            ends[event.item_id] = event
        elif isinstance(event, TraceCreated):
            last_trace[event.item_id] = event.trace
        elif isinstance(event, LLMCall):
            usage[event.item_id].add(event.response, prices.get(event.request.model))
    out = []
    for item in items:
        end = ends.get(item.id)
        rows = end.rows if end is not None and end.status == "kept" else []
        predicted, votes = row_vote(rows)
        row = next((r for r in rows if r.get("predicted") == predicted), rows[0] if rows else {})
        fallback = None
        if end is not None and end.status == "rejected" and item.id in last_trace:
            # Rejected after answering (e.g. by a recipe's own final gold check): the solver's
            # answer is still its last trace's.
            fallback = last_trace[item.id]
            predicted = fallback.answer
        spent = usage.get(item.id, UsageTally())
        detail = {k: _text(v) for k, v in row.items() if k in _DETAIL_COLUMNS and v is not None}
        if len(rows) > 1:
            detail["row_votes"] = json.dumps(votes)
        if fallback is not None:
            detail["answer_from"] = f"last trace {fallback.id} (item rejected at {end.node if end else '?'})"
        out.append(
            Prediction(
                solver=solver,
                item_id=item.id,
                index=item.index,
                gold=item.answer,
                predicted=predicted,
                correct=predicted is not None and predicted == item.answer,
                status=end.status if end is not None else "missing",
                reason=end.reason if end is not None else "the run did not finish this item",
                prompt_tokens=spent.prompt_tokens,
                completion_tokens=spent.completion_tokens,
                cost=round(spent.cost, 8),
                wall_s=end.wall_s if end is not None else 0.0,
                calls=spent.calls,
                detail=detail,
            )
        )
    return out


_DETAIL_COLUMNS = ("votes", "agreement", "fewshot_ids")
"""Output columns copied into predictions when a solver's rows have them (medprompt's)."""


def _text(value: object) -> str:
    """A detail value as text: structured values (votes, ids) as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    return data if isinstance(data, dict) else {}


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
    overrides: list[str] | None = None,
    out_dir: str | Path | None = None,
    concurrency: int | None = None,
    no_cache: bool = False,
    confidence: float = 0.95,
    embedded: EmbeddedProvider | None = None,
    progress: Callable[[str], ProgressHook | None] | None = None,
) -> EvalResult:
    """Evaluate every config on ``benchmark``; one embedded server (if needed) serves them all."""
    solvers = solvers_from(configs)
    dataset = benchmark_spec(benchmark, fields, limit)
    items, bad = gold_items(dataset)
    if not items:
        raise ConfigError(f"benchmark {benchmark} has no readable items", key="--dataset")
    out = Path(out_dir) if out_dir else Path("runs") / time.strftime("eval-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    dataset_override = "dataset=" + json.dumps(dataset.model_dump(mode="json", exclude_none=True))
    result = EvalResult(benchmark=dataset.path, out_dir=str(out), confidence=confidence, skipped_rows=bad)
    async with contextlib.AsyncExitStack() as stack:
        shared: list[str] | None = None
        for solver in solvers:
            urls = endpoints
            if not urls and not _has_own_endpoints(solver, overrides):
                if shared is None:
                    data = prepare_config(
                        solver.raw, file=str(solver.path), overrides=[*(overrides or []), dataset_override]
                    )
                    spec = validate_spec(data, file=solver.path)
                    shared = await stack.enter_async_context((embedded or default_embedded_provider())(spec))
                urls = shared
            run = await arun(
                solver.path,
                overrides=[*(overrides or []), dataset_override],
                endpoints=urls,
                concurrency=concurrency,
                runs_dir=out / "runs",
                no_cache=no_cache,
                progress=progress(solver.label) if progress else None,
            )
            wall = run.report.wall_time_s
            preds = read_predictions(run.run_dir, solver.label, items)
            result.predictions.extend(preds)
            result.solvers.append(summarize(solver, run.run_dir, preds, wall, confidence))
    return result


def evaluate(configs: Sequence[str | Path], benchmark: str | Path, **kwargs: Any) -> EvalResult:
    """Synchronous :func:`aevaluate`; write the files with ``medloom.eval.outputs.write_results``.

    Inside a running event loop (Jupyter, an async app) it runs in a worker thread and blocks until
    it ends: ``await medloom.eval.aevaluate(...)`` keeps that loop responsive. From a script's main
    thread a SIGTERM stops it as Ctrl-C does (see :func:`medloom.run`)."""
    return run_sync(
        lambda: aevaluate(configs, benchmark, **kwargs), instead="await medloom.eval.aevaluate(...)"
    )
