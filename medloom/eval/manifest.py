"""``OUT/eval.json``: what an evaluation runs (benchmark, solvers, overrides) and each solver's run.

Written before any solver starts and again as soon as each solver's run directory exists, so a
killed evaluation knows which run to resume for each solver (``medloom eval ... --resume``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from medloom.core.errors import ConfigError

MANIFEST = "eval.json"


class SolverEntry(BaseModel):
    label: str
    config: str
    """The solver's config file, resolved."""
    run_id: str | None = None
    """Its run under ``OUT/runs/`` once started."""


class EvalManifest(BaseModel):
    benchmark: dict[str, Any]
    """The ``dataset:`` section every solver runs with (path, fields, limit …)."""
    overrides: list[str] = Field(default_factory=list)
    """``--set`` assignments applied to every solver."""
    solvers: list[SolverEntry]

    def run_id(self, label: str) -> str | None:
        return next((s.run_id for s in self.solvers if s.label == label), None)

    def set_run_id(self, label: str, run_id: str) -> None:
        for entry in self.solvers:
            if entry.label == label:
                entry.run_id = run_id

    def differences(self, other: EvalManifest) -> list[str]:
        """What ``other`` (the command now) asks differently from this (the evaluation started)."""
        found = []
        if self.benchmark != other.benchmark:
            found.append(f"benchmark {self.benchmark} → {other.benchmark}")
        if self.overrides != other.overrides:
            found.append(f"--set {self.overrides} → {other.overrides}")
        mine = [(s.label, s.config) for s in self.solvers]
        theirs = [(s.label, s.config) for s in other.solvers]
        if mine != theirs:
            found.append(f"solvers {mine} → {theirs}")
        return found


def manifest_path(out: Path) -> Path:
    return out / MANIFEST


def read_manifest(out: Path) -> EvalManifest | None:
    """The manifest of the evaluation in ``out``; None when there is none."""
    path = manifest_path(out)
    if not path.exists():
        return None
    try:
        return EvalManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, ValidationError) as exc:
        raise ConfigError(
            f"{path} cannot be read ({exc}); the evaluation directory is damaged: start again with "
            "another --out",
            key="--out",
        ) from None


def write_manifest(out: Path, manifest: EvalManifest) -> None:
    """Replace ``OUT/eval.json`` atomically."""
    path = manifest_path(out)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def start_or_resume(out: Path, wanted: EvalManifest, resume: bool) -> EvalManifest:
    """The manifest to run with: ``wanted`` for a new evaluation, the stored one (with its run ids)
    to resume. Refuses to start over an existing evaluation, and to resume one with another
    benchmark, solver list or ``--set`` (its runs would mix two evaluations)."""
    stored = read_manifest(out)
    if not resume:
        if stored is not None:
            raise ConfigError(
                f"{out} already holds an evaluation: add --resume to continue it, or give another --out",
                key="--out",
            )
        return wanted
    if stored is None:
        raise ConfigError(
            f"nothing to resume: {manifest_path(out)} does not exist; run without --resume to start "
            "an evaluation there",
            key="--resume",
        )
    changes = stored.differences(wanted)
    if changes:
        raise ConfigError(
            f"the evaluation in {out} was started differently; resume it with the same command, or "
            f"start a new one with another --out. Changed: {'; '.join(changes)}",
            key="--resume",
        )
    return stored
