"""Stages of the clinical evaluations: a recipe run over rows that eval writes itself.

Reasoning recall and MedFuzz run several graphs one after the other (solver, judge, attacker,
solver again on the rewrites). Each stage writes its input rows to ``OUT/inputs/<stage>.jsonl``,
runs an ordinary medloom run on them (its own run directory under ``OUT/runs/<stage>/``, with
trajectories and report), and reads back what it needs from the trajectories.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from medloom.core.events import ItemFinished, Note, TraceCreated
from medloom.core.records import Trace
from medloom.graphs.loader import load_raw, validate_spec
from medloom.runs.runner import (
    EmbeddedProvider,
    ProgressHook,
    arun,
    default_embedded_provider,
    prepare_config,
)
from medloom.runs.store import iter_events


@dataclass
class StageRunner:
    """Runs stages with one set of endpoints: the given ones, each config's own, or one embedded
    server started on first need and shared by every later stage."""

    out: Path
    stack: contextlib.AsyncExitStack
    endpoints: list[str] | None = None
    concurrency: int | None = None
    no_cache: bool = False
    embedded: EmbeddedProvider | None = None
    progress: Callable[[str], ProgressHook | None] | None = None
    _shared: list[str] | None = field(default=None, init=False)

    async def _urls(self, config: Path, overrides: list[str]) -> list[str] | None:
        if self.endpoints:
            return self.endpoints
        data = prepare_config(load_raw(config), file=str(config), overrides=overrides)
        if data.get("endpoints"):
            return None
        if self._shared is None:
            spec = validate_spec(data, file=config)
            provider = self.embedded or default_embedded_provider()
            self._shared = await self.stack.enter_async_context(provider(spec))
        return self._shared

    async def run(
        self,
        stage: str,
        config: Path,
        rows: Iterable[dict[str, Any]],
        *,
        mcq: bool,
        gold: bool,
        overrides: list[str] | None = None,
    ) -> Path:
        """Run ``config`` over ``rows`` (``id``, ``question``, and ``options``/``answer`` when
        ``mcq``/``gold``); returns the run directory."""
        inputs = self.out / "inputs" / f"{stage}.jsonl"
        inputs.parent.mkdir(parents=True, exist_ok=True)
        inputs.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        dataset = {
            "path": str(inputs.resolve()),
            "fields": {
                "id": "id",
                "question": "question",
                "options": "options" if mcq else None,
                "answer": "answer" if gold else None,
            },
        }
        every = [*(overrides or []), "dataset=" + json.dumps(dataset)]
        result = await arun(
            config,
            overrides=every,
            endpoints=await self._urls(config, every),
            concurrency=self.concurrency,
            runs_dir=self.out / "runs" / stage,
            no_cache=self.no_cache,
            progress=self.progress(stage) if self.progress else None,
        )
        return result.run_dir


def last_traces(run_dir: Path) -> dict[str, Trace]:
    """Each item's last created trace."""
    out: dict[str, Trace] = {}
    for _, event in iter_events(run_dir / "trajectories.jsonl", {"trace"}):
        if isinstance(event, TraceCreated):
            out[event.item_id] = event.trace
    return out


def item_ends(run_dir: Path) -> dict[str, ItemFinished]:
    """Each item's last outcome."""
    out: dict[str, ItemFinished] = {}
    for _, event in iter_events(run_dir / "trajectories.jsonl", {"item_end"}):
        if isinstance(event, ItemFinished):
            out[event.item_id] = event
    return out


def notes_of(run_dir: Path, kind: str) -> dict[str, list[dict[str, Any]]]:
    """Each item's notes of ``kind`` (their data), in order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for _, event in iter_events(run_dir / "trajectories.jsonl", {"note"}):
        if isinstance(event, Note) and event.kind == kind:
            out.setdefault(event.item_id, []).append(event.data)
    return out


def item_events(run_dir: Path, item_id: str) -> list[dict[str, Any]]:
    """The raw trajectory lines of one item, each tagged with its run directory's name."""
    path = run_dir / "trajectories.jsonl"
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        event = json.loads(line)
        if event.get("item_id") == item_id:
            lines.append({"run": run_dir.name, **event})
    return lines


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table."""
    return [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def write_summary(
    out: Path, name: str, result: BaseModel, records_key: str, records: Sequence[BaseModel], lines: list[str]
) -> dict[str, Path]:
    """``<name>.json`` (the result without its records), ``<name>_<records_key>.jsonl`` (one
    record a line) and ``<name>.md`` (``lines``)."""
    files = {
        "json": out / f"{name}.json",
        records_key: out / f"{name}_{records_key}.jsonl",
        "md": out / f"{name}.md",
    }
    files["json"].write_text(result.model_dump_json(indent=2, exclude={records_key}), encoding="utf-8")
    files[records_key].write_text("".join(r.model_dump_json() + "\n" for r in records), encoding="utf-8")
    files["md"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files


def slug(name: str) -> str:
    """``name`` as a file or directory name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
