"""``medloom eval --metric recall`` and ``medloom eval --attack medfuzz``: the clinical evaluations."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import typer
from rich.table import Table

from medloom.cli.console import err, out
from medloom.cli.progress import RichProgress
from medloom.core.errors import ConfigError
from medloom.runs.runner import ProgressHook

METRICS = ("accuracy", "recall")
ATTACKS = ("medfuzz",)


def _table(title: str, columns: tuple[str, ...], rows: list[list[str]]) -> Table:
    """Headers wrap at spaces, figures stay whole (a solver fits an 80-column terminal)."""
    table = Table(title=title, header_style="bold", box=None, padding=(0, 1), show_edge=False)
    for i, column in enumerate(columns):
        width = max([len(r[i]) for r in rows] + [len(w) for w in column.split()])
        table.add_column(column.replace(" ", "\n"), justify="left" if i == 0 else "right", min_width=width)
    for row in rows:
        table.add_row(*row)
    return table


def _progress(silent: bool) -> Callable[[str], ProgressHook | None] | None:
    if silent:
        return None

    def hook(stage: str) -> ProgressHook:
        err.rule(f"stage {stage}")
        return RichProgress(err)

    return hook


def clinical_eval(
    *,
    metric: str,
    attack: str | None,
    configs: list[Path],
    dataset: str,
    judge: Path | None,
    turns: int,
    endpoints: list[str] | None,
    limit: int | None,
    fields: dict[str, str],
    overrides: list[str] | None,
    out_dir: Path | None,
    concurrency: int | None,
    no_cache: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Run the recall metric or the MedFuzz attack, print its table (or JSON), write its files."""
    if metric not in METRICS:
        raise ConfigError(f"unknown --metric '{metric}'; use one of {', '.join(METRICS)}", key="--metric")
    if attack is not None and attack not in ATTACKS:
        raise ConfigError(f"unknown --attack '{attack}'; use one of {', '.join(ATTACKS)}", key="--attack")
    if attack and metric == "recall":
        raise ConfigError("--attack medfuzz scores MCQ accuracy; drop --metric recall", key="--metric")
    common = {
        "endpoints": endpoints,
        "limit": limit,
        "fields": fields,
        "overrides": overrides,
        "out_dir": out_dir,
        "concurrency": concurrency,
        "no_cache": no_cache,
        "progress": _progress(quiet or as_json),
    }
    if attack == "medfuzz":
        from medloom.eval.medfuzz import MEDFUZZ_COLUMNS, aattack, medfuzz_cells, write_medfuzz

        fuzz = asyncio.run(aattack(configs, dataset, attacker=judge, turns=turns, **common))  # type: ignore[arg-type]
        files = write_medfuzz(fuzz)
        if as_json:
            out.print_json(fuzz.model_dump_json(exclude={"attacks"}))
        else:
            rows = [medfuzz_cells(s) for s in fuzz.solvers]
            out.print(_table(f"MedFuzz on {Path(dataset).name}", MEDFUZZ_COLUMNS, rows))
            out.print("  ".join(f"{k}: {v}" for k, v in files.items()))
        stopped = [s for s in fuzz.solvers if s.stopped]
        for s in stopped:
            err.print(f"[yellow]{s.solver}: {s.stopped} (the figures count the turns that finished)[/]")
        if stopped:
            raise typer.Exit(1)
        return
    else:
        from medloom.eval.recall import RECALL_COLUMNS, aevaluate_recall, dumps, recall_cells, write_recall

        recall = asyncio.run(aevaluate_recall(configs, dataset, judge=judge, **common))  # type: ignore[arg-type]
        files = write_recall(recall)
        if as_json:
            out.print_json(dumps(recall, files))
            return
        out.print(
            _table(
                f"reasoning recall on {Path(dataset).name}",
                RECALL_COLUMNS,
                [recall_cells(s) for s in recall.solvers],
            )
        )
    out.print("  ".join(f"{k}: {v}" for k, v in files.items()))
