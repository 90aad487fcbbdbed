"""Export a run's kept rows as Parquet, JSONL or a `datasets` directory, or as training data (``sft``,
``dpo``, ``prm``, ``kto``: see ``medloom.runs.exports``), with a dataset card."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import datasets

from medloom.core.errors import RunError
from medloom.runs.card import dataset_card
from medloom.runs.exports import TRAINING_FORMATS, ExportOptions, card_section, training_rows
from medloom.runs.fold import fold_run
from medloom.runs.outputs import kept_dataset
from medloom.runs.rundir import RunDir

ExportFormat = Literal["parquet", "jsonl", "hf", "sft", "dpo", "prm", "kto"]
DATA_FILES: dict[str, str] = {"parquet": "data.parquet", "jsonl": "data.jsonl", "hf": "data-*.arrow"}
DATA_FILES |= dict.fromkeys(TRAINING_FORMATS, "data.parquet")
SAVED_FILES = ("data-*.arrow", "dataset_info.json", "state.json")
"""What ``save_to_disk`` writes (``--format hf`` writes it into ``--out`` itself, beside the card)."""


Pusher = Callable[[datasets.Dataset, str, str, str | None], None]


def hub_push(ds: datasets.Dataset, repo: str, card: str, token: str | None) -> None:
    """Upload rows and card with `datasets`' ``push_to_hub`` (token: argument, HF_TOKEN or login)."""
    from huggingface_hub import DatasetCard

    ds.push_to_hub(repo, token=token)
    DatasetCard(card).push_to_hub(repo, token=token, repo_type="dataset")


def export_run(
    run: RunDir,
    fmt: ExportFormat,
    out: Path | None = None,
    push_to_hub: str | None = None,
    pusher: Pusher = hub_push,
    options: ExportOptions | None = None,
) -> tuple[Path, int]:
    """Write the rows and a README.md card into ``out`` (default ``<run>/export/<fmt>``); optionally
    push both to the Hub dataset ``push_to_hub``. Returns the directory and the row count.

    Training formats write ``data.parquet`` and ``data.jsonl``; ``options`` shapes their rows."""
    if fmt not in DATA_FILES:
        raise RunError(f"unknown export format '{fmt}': use parquet, jsonl, hf, sft, dpo, prm or kto")
    if push_to_hub is not None and (push_to_hub.count("/") != 1 or not all(push_to_hub.split("/"))):
        raise RunError(f"--push-to-hub {push_to_hub!r}: give a Hub dataset id as OWNER/NAME")
    out = out or run.path / "export" / fmt
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file: give a directory (it receives the data and a README.md)")
    out.mkdir(parents=True, exist_ok=True)
    datasets.disable_progress_bars()
    config = run.read_config()
    fold = fold_run(run)  # one pass: the card's figures and where the kept rows are
    card = dataset_card(run, fold.stats, config, data_files=DATA_FILES[fmt])
    with tempfile.TemporaryDirectory(dir=run.path, prefix=".export-") as cache:
        if fmt in TRAINING_FORMATS:
            made = training_rows(run, fmt, options)
            card = f"{card.rstrip()}\n\n{card_section(fmt, made)}"
            ds = made.dataset()
        else:
            columns = (config.get("output") or {}).get("columns") or []
            ds = kept_dataset(run, fold.kept_offsets, columns, Path(cache))
        (out / "README.md").write_text(card)
        if fmt in ("parquet", *TRAINING_FORMATS):
            ds.to_parquet(str(out / "data.parquet"))
        if fmt in ("jsonl", *TRAINING_FORMATS):
            ds.to_json(str(out / "data.jsonl"), lines=True, force_ascii=False)
        if fmt == "hf":  # into ``out`` itself, so ``datasets.load_from_disk(out)`` works
            for stale in (p for pattern in SAVED_FILES for p in out.glob(pattern)):
                stale.unlink()
            ds.save_to_disk(str(out), num_shards=1 if len(ds) == 0 else None)
        if push_to_hub is not None:
            try:
                pusher(ds, push_to_hub, card, os.environ.get("HF_TOKEN"))
            except Exception as exc:  # network, auth and Hub errors all end the same way
                raise RunError(
                    f"pushing run {run.run_id} to the Hub dataset '{push_to_hub}' failed "
                    f"({type(exc).__name__}: {str(exc)[:300]}); the export is still in {out}. Check network "
                    "access and a token with write access (HF_TOKEN or `huggingface-cli login`)."
                ) from exc
        return out, len(ds)
