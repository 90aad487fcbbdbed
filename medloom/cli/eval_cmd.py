"""``medloom eval``: several graphs as solvers over one MCQ benchmark, side by side."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from medloom.cli.console import err, fail, out, resolve_config
from medloom.cli.exit_codes import ExitCode
from medloom.cli.modes import ModeOption, with_mode
from medloom.core.errors import ConfigError, MedloomError
from medloom.eval.outputs import COLUMNS, row_cells, write_results
from medloom.eval.records import EvalResult


def comparison_table(result: EvalResult) -> Table:
    table = Table(title=f"eval on {Path(result.benchmark).name}", header_style="bold")
    for column in COLUMNS:
        name = f"{result.confidence:.0%} CI" if column == "CI" else column
        if column == "solver":
            table.add_column(name, no_wrap=True, min_width=max(len(s.solver) for s in result.solvers))
        elif column in ("CI", "accuracy"):  # the figures that matter: never truncated
            table.add_column(name, justify="right", no_wrap=True, min_width=11 if column == "CI" else 6)
        else:
            table.add_column(name, justify="right")
    for solver in result.solvers:
        table.add_row(*row_cells(solver))
    return table


def _fields(assignments: list[str] | None) -> dict[str, str]:
    fields = {}
    for assignment in assignments or []:
        key, sep, column = assignment.partition("=")
        if not sep or not key.strip() or not column.strip():
            raise ConfigError(f"--field '{assignment}' must look like answer=COLUMN", key="--field")
        fields[key.strip()] = column.strip()
    return fields


def eval_command(
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            "-d",
            help="MCQ benchmark (JSONL, CSV, Parquet, saved dataset, or a Hub name org/name).",
        ),
    ],
    configs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Solver configs (YAML files or recipe names); default: configs/eval/direct.yaml, "
            "configs/eval/cot.yaml, configs/medprompt.yaml and configs/medagents.yaml, where present."
        ),
    ] = None,
    endpoint: Annotated[
        list[str] | None,
        typer.Option("--endpoint", "-e", help="OpenAI-compatible base URL (repeat for a pool)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N benchmark items.")] = None,
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="Map an item field to a column: answer=answer_idx (repeatable)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a key in every config: models.gen.model=NAME."),
    ] = None,
    mode: ModeOption = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output directory (default: runs/eval-<time>/).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="Items in flight at once.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not use the request cache.")] = False,
    resume: Annotated[
        bool,
        typer.Option(help="Continue the killed evaluation in --out: each solver's run resumes item by item."),
    ] = False,
    accept_config_change: Annotated[
        bool,
        typer.Option(help="With --resume: apply the keys edited in a solver's config file since it started."),
    ] = False,
    sequential: Annotated[
        bool,
        typer.Option(help="Run the solvers one after another (default: all at once, one endpoint pool)."),
    ] = False,
    split: Annotated[
        str | None, typer.Option(help="Split of a Hub dataset or saved DatasetDict (default: train).")
    ] = None,
    dataset_config: Annotated[
        str | None, typer.Option("--dataset-config", help="Configuration name of a Hub dataset.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON (for scripts).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    metric: Annotated[
        str,
        typer.Option(help="accuracy (MCQ) or recall (open-ended cases: diagnosis + reasoning recall)."),
    ] = "accuracy",
    attack: Annotated[
        str | None, typer.Option(help="medfuzz: attack each solver's correct answers and re-score.")
    ] = None,
    turns: Annotated[int, typer.Option(help="Attacker turns per question (--attack medfuzz).")] = 3,
    judge: Annotated[
        str | None,
        typer.Option(help="Judge recipe (recall) or attacker recipe (medfuzz) instead of configs/eval's."),
    ] = None,
) -> None:
    """Run each graph as a solver over an MCQ benchmark; compare accuracy (Wilson CI), tokens,
    cost and time per item; write predictions.jsonl/.parquet, results.md and results.json."""
    from medloom.cli.progress import ProgressBoard
    from medloom.eval.runner import aevaluate, default_solvers
    from medloom.runs.signals import Terminated, cancel_on_sigterm

    board = ProgressBoard(err)

    try:
        if metric != "accuracy" or attack is not None:
            from medloom.cli.eval_clinical import clinical_eval

            if resume or sequential or split or dataset_config:
                raise ConfigError(
                    "--resume, --sequential, --split and --dataset-config apply to accuracy evaluations "
                    "only (not with --metric recall or --attack)",
                    key="--resume",
                )

            # Without CONFIG: recall scores the diagnose solver, MedFuzz attacks the default solvers.
            clinical_default = default_solvers() if attack else [resolve_config("configs/eval/diagnose.yaml")]
            clinical_eval(
                metric=metric,
                attack=attack,
                configs=[resolve_config(c) for c in configs] if configs else clinical_default,
                dataset=dataset,
                judge=resolve_config(judge) if judge else None,
                turns=turns,
                endpoints=endpoint,
                limit=limit,
                fields=_fields(field),
                overrides=with_mode(mode, set_),
                out_dir=out_dir,
                concurrency=concurrency,
                no_cache=no_cache,
                as_json=as_json,
                quiet=quiet,
            )
            return
        paths = [resolve_config(c) for c in configs] if configs else default_solvers()
        silent = quiet or as_json
        result = asyncio.run(
            cancel_on_sigterm(
                aevaluate(
                    paths,
                    dataset,
                    endpoints=endpoint,
                    limit=limit,
                    fields=_fields(field),
                    split=split,
                    config_name=dataset_config,
                    overrides=with_mode(mode, set_),
                    out_dir=out_dir,
                    concurrency=concurrency,
                    no_cache=no_cache,
                    resume=resume,
                    accept_config_change=accept_config_change,
                    sequential=sequential,
                    progress=None if silent else board.hook,
                )
            )
        )
        files = write_results(result)
    except (KeyboardInterrupt, Terminated) as exc:
        term = isinstance(exc, Terminated)
        hint = (
            f": continue with the same command plus --resume (and --out {out_dir})"
            if out_dir
            else " (evaluations with --out DIR can be resumed with --resume)"
        )
        err.print(f"[yellow]{'terminated' if term else 'interrupted'}[/]{hint}")
        raise typer.Exit(ExitCode.TERMINATED if term else ExitCode.INTERRUPTED) from None
    except MedloomError as exc:
        raise fail(exc) from None
    if as_json:
        payload = result.model_dump(mode="json", exclude={"predictions"})
        payload["files"] = {k: str(v) for k, v in files.items()}
        out.print_json(json.dumps(payload))
        return
    out.print(comparison_table(result))
    for solver in result.solvers:
        if solver.failed:
            err.print(
                f"[yellow]{solver.solver}: {solver.failed} of {solver.n} items failed (counted as wrong); "
                f"see their reasons in predictions.jsonl and {solver.run_dir}/report.json[/]"
            )
    out.print(f"predictions: {files['predictions_jsonl']}  results: {files['results_md']}")
