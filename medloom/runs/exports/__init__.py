"""Training-ready exports of a run, in the column layouts TRL's trainers read.

``sft`` (SFTTrainer), ``dpo`` (DPOTrainer), ``prm`` (stepwise supervision) and ``kto`` (KTOTrainer),
one module each; they read the run files only. From Python::

    from medloom.runs.exports import training_dataset
    ds = training_dataset("runs/<run-id>", "dpo", pairs_per_item=2)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import datasets

from medloom.core.errors import RunError
from medloom.runs.exports.base import ExportRows
from medloom.runs.exports.dpo import dpo_rows
from medloom.runs.exports.kto import kto_rows
from medloom.runs.exports.layout import ExportOptions
from medloom.runs.exports.prm import prm_rows
from medloom.runs.exports.sft import sft_rows
from medloom.runs.exports.source import ExportItem, read_items
from medloom.runs.rundir import RunDir

TrainingFormat = Literal["sft", "dpo", "prm", "kto"]
TRAINING_FORMATS: dict[str, Callable[[list[ExportItem], ExportOptions], ExportRows]] = {
    "sft": sft_rows,
    "dpo": dpo_rows,
    "prm": prm_rows,
    "kto": kto_rows,
}
TRAINERS = {"sft": "SFTTrainer", "dpo": "DPOTrainer", "prm": "a process reward model", "kto": "KTOTrainer"}


def training_rows(run: RunDir, fmt: str, options: ExportOptions | None = None) -> ExportRows:
    """The rows of one training format, read from the run's trajectories."""
    make = TRAINING_FORMATS.get(fmt)
    if make is None:
        raise RunError(f"unknown training format '{fmt}': use one of {', '.join(TRAINING_FORMATS)}")
    return make(read_items(run.trajectories), options or ExportOptions())


def training_dataset(run: str | Path | RunDir, fmt: TrainingFormat, **options: Any) -> datasets.Dataset:
    """A run as a `datasets.Dataset` in a training format; ``options`` are ExportOptions fields."""
    found = run if isinstance(run, RunDir) else RunDir(Path(run))
    return training_rows(found, fmt, ExportOptions(**options)).dataset()


def card_section(fmt: str, rows: ExportRows) -> str:
    """The dataset card's paragraph on how this format's rows were made."""
    lines = [
        f"## Training export: `{fmt}`",
        "",
        f"{len(rows.rows)} rows for {TRAINERS[fmt]} (TRL's column layout). {rows.method}",
        "Every row keeps `trace_id` (and `item_id`): the trace's events are in `trajectories.jsonl`.",
    ]
    if rows.skipped:
        lines += ["", "Left out:", ""]
        lines += [f"- {count} × {why}" for why, count in rows.skipped.most_common()]
    return "\n".join(lines) + "\n"


__all__ = [
    "TRAINING_FORMATS",
    "ExportOptions",
    "ExportRows",
    "TrainingFormat",
    "card_section",
    "training_dataset",
    "training_rows",
]
