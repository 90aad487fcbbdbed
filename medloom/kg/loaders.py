"""Load triples into a KnowledgeGraph: Hetionet TSVs, PrimeKG's CSV, or a generic triples file.

A malformed row is skipped, counted and reported with its file and line; a file that cannot
be read at all (missing, no usable header) raises a DataError saying how to fix it.
"""

from __future__ import annotations

import csv
import gzip
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel, Field

from medloom.core.errors import DataError
from medloom.kg.model import KnowledgeGraph
from medloom.kg.spec import KGFormat

log = logging.getLogger("medloom.kg")
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class RowProblem(BaseModel):
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class LoadReport(BaseModel):
    """What a load read, kept and skipped."""

    files: list[str] = Field(default_factory=list)
    rows: int = 0
    skipped: int = 0
    problems: list[RowProblem] = Field(default_factory=list)
    """The first ``max_problems`` malformed rows (``skipped`` counts all of them)."""
    max_problems: int = 20

    def problem(self, file: Path | str, line: int, reason: str) -> None:
        self.skipped += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(RowProblem(file=str(file), line=line, reason=reason))
            log.warning("%s:%d: %s (row skipped)", file, line, reason)


@contextmanager
def _open_text(path: Path) -> Iterator[TextIO]:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            yield handle
    else:
        with path.open(encoding="utf-8", newline="") as handle:
            yield handle


def _delimiter(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    return "," if name.endswith(".csv") else "\t"


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line, fields) of every row after the header, with the header first as line 1."""
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=_delimiter(path))
        for row in reader:
            yield reader.line_num, row


def _header(path: Path, rows: Iterator[tuple[int, list[str]]]) -> list[str]:
    try:
        _, header = next(rows)
    except StopIteration:
        raise DataError(f"{path}: empty file (expected a header row)") from None
    return [h.strip() for h in header]


def _columns(path: Path, header: list[str], required: list[str], hint: str) -> dict[str, int]:
    index = {name: i for i, name in enumerate(header)}
    missing = [c for c in required if c not in index]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)} (header: {', '.join(header)}); {hint}"
        )
    return index


def _counted(
    path: Path, rows: Iterator[tuple[int, list[str]]], report: LoadReport, *, skip_whitespace: bool = False
) -> Iterator[tuple[int, list[str]]]:
    """The non-empty rows after the header, each counted in ``report.rows`` (the file is recorded).

    ``skip_whitespace`` also passes over a row that is one blank field."""
    report.files.append(str(path))
    for line, row in rows:
        if not row or (skip_whitespace and len(row) == 1 and not row[0].strip()):
            continue
        report.rows += 1
        yield line, row


# -- generic triples --------------------------------------------------------------------------

TRIPLES_HINT = (
    "a triples file needs a header with head, relation, tail "
    "(optional head_type, tail_type, head_id, tail_id)"
)


def load_triples(path: Path, kg: KnowledgeGraph, report: LoadReport) -> None:
    """``head, relation, tail`` rows; optional ``head_type, tail_type, head_id, tail_id`` and
    ``head_synonyms, tail_synonyms`` (``|``-separated)."""
    rows = _rows(path)
    header = _header(path, rows)
    col = _columns(path, header, ["head", "relation", "tail"], TRIPLES_HINT)
    width = len(header)
    opt = {
        k: col.get(k)
        for k in ("head_type", "tail_type", "head_id", "tail_id", "head_synonyms", "tail_synonyms")
    }

    def get(row: list[str], key: str, default: str) -> str:
        i = opt[key]
        return row[i].strip() if i is not None and row[i].strip() else default

    for line, row in _counted(path, rows, report, skip_whitespace=True):
        if len(row) != width:
            report.problem(path, line, f"{len(row)} fields where the header has {width}")
            continue
        head, relation, tail = (row[col[k]].strip() for k in ("head", "relation", "tail"))
        if not head or not relation or not tail:
            empty = [k for k, v in (("head", head), ("relation", relation), ("tail", tail)) if not v]
            report.problem(path, line, f"empty {', '.join(empty)}")
            continue
        h = kg.add_node(get(row, "head_id", head), head, get(row, "head_type", "entity"))
        t = kg.add_node(get(row, "tail_id", tail), tail, get(row, "tail_type", "entity"))
        kg.add_edge(h, relation, t)
        for node, key in ((h, "head_synonyms"), (t, "tail_synonyms")):
            for synonym in get(row, key, "").split("|"):
                if synonym.strip() and synonym.strip() not in kg.synonyms.get(node, []):
                    kg.add_synonym(node, synonym.strip())


# -- PrimeKG ----------------------------------------------------------------------------------

PRIMEKG_HINT = "PrimeKG's kg.csv has x_name, x_type, display_relation (or relation), y_name, y_type"


def load_primekg(path: Path, kg: KnowledgeGraph, report: LoadReport) -> None:
    """PrimeKG's CSV: ``x_name, x_type, display_relation, y_name, y_type`` (+ ``x_id, y_id, relation``)."""
    rows = _rows(path)
    header = _header(path, rows)
    col = _columns(path, header, ["x_name", "y_name"], PRIMEKG_HINT)
    rel_col = col.get("display_relation", col.get("relation"))
    if rel_col is None:
        raise DataError(f"{path}: no display_relation or relation column; {PRIMEKG_HINT}")
    fallback_rel = col.get("relation")
    width = len(header)
    xid, yid, xt, yt = (col.get(k) for k in ("x_id", "y_id", "x_type", "y_type"))
    known: dict[tuple[str, str], int] = {}
    for line, row in _counted(path, rows, report):
        if len(row) != width:
            report.problem(path, line, f"{len(row)} fields where the header has {width}")
            continue
        x, y = row[col["x_name"]].strip(), row[col["y_name"]].strip()
        relation = row[rel_col].strip() or (row[fallback_rel].strip() if fallback_rel is not None else "")
        if not x or not y or not relation:
            empty = [k for k, v in (("x_name", x), ("y_name", y), ("relation", relation)) if not v]
            report.problem(path, line, f"empty {', '.join(empty)}")
            continue
        x_type = row[xt].strip() if xt is not None and row[xt].strip() else "entity"
        y_type = row[yt].strip() if yt is not None and row[yt].strip() else "entity"
        x_id = row[xid].strip() if xid is not None and row[xid].strip() else x
        y_id = row[yid].strip() if yid is not None and row[yid].strip() else y
        # a local (type, id) → node cache: most rows name nodes already seen
        head = known.get((x_type, x_id))
        if head is None:
            head = known[(x_type, x_id)] = kg.add_node(x_id, x, x_type)
        tail = known.get((y_type, y_id))
        if tail is None:
            tail = known[(y_type, y_id)] = kg.add_node(y_id, y, y_type)
        kg.add_edge(head, relation, tail)


# -- Hetionet ---------------------------------------------------------------------------------

_NEO4J_ID = re.compile(r"^[^:]*:(?:ID|START_ID|END_ID)\((?P<kind>[^)]+)\)$")


def _kind_of(path: Path, column: str) -> str:
    m = _NEO4J_ID.match(column)
    if not m:
        raise DataError(
            f"{path}: header column '{column}' should look like ':START_ID(Kind)' / 'xId:ID(Kind)' "
            "(Hetionet's neo4j-style TSVs)"
        )
    return m.group("kind")


def _hetionet_verbs(directory: Path) -> dict[str, str]:
    """metaedge file stem → verb, from metaedges.tsv when present."""
    path = directory / "metaedges.tsv"
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as handle:
        return {
            row["metaedge"]: row["verb"].lower()
            for row in csv.DictReader(handle, delimiter="\t")
            if row.get("metaedge") and row.get("verb")
        }


def load_hetionet(directory: Path, kg: KnowledgeGraph, report: LoadReport) -> None:
    """A Hetionet directory: ``nodes.tsv`` (id ``Kind::raw``, name, kind) and/or ``nodes/*.tsv``,
    and ``edges/<Source>_<Verb>_<Target>.tsv`` with ``:START_ID(Kind)  :END_ID(Kind)`` headers."""
    known: dict[tuple[str, str], int] = {}
    nodes_tsv = directory / "nodes.tsv"
    node_files = sorted((directory / "nodes").glob("*.tsv*")) if (directory / "nodes").is_dir() else []
    edge_files = sorted((directory / "edges").glob("*.tsv*")) if (directory / "edges").is_dir() else []
    if not edge_files:
        raise DataError(f"{directory}: no edges/*.tsv files; a Hetionet directory has nodes.tsv and edges/")
    if nodes_tsv.is_file():
        rows = _rows(nodes_tsv)
        col = _columns(
            nodes_tsv,
            _header(nodes_tsv, rows),
            ["id", "name", "kind"],
            "Hetionet's nodes.tsv has id, name, kind",
        )
        for line, row in _counted(nodes_tsv, rows, report):
            if len(row) != len(col):
                report.problem(nodes_tsv, line, f"{len(row)} fields where the header has {len(col)}")
                continue
            node_id, name, kind = (row[col[k]].strip() for k in ("id", "name", "kind"))
            if not node_id or not kind:
                report.problem(nodes_tsv, line, "empty id or kind")
                continue
            raw = node_id.split("::", 1)[1] if "::" in node_id else node_id
            known[(kind, raw)] = kg.add_node(raw, name, kind)
    for path in node_files:
        rows = _rows(path)
        header = _header(path, rows)
        if len(header) < 2:
            raise DataError(f"{path}: expected 'xId:ID(Kind)<TAB>name' header")
        kind = _kind_of(path, header[0])
        for line, row in _counted(path, rows, report):
            if len(row) != len(header) or not row[0].strip():
                report.problem(path, line, f"expected {len(header)} fields with a non-empty id")
                continue
            known[(kind, row[0].strip())] = kg.add_node(row[0].strip(), row[1].strip(), kind)
    verbs = _hetionet_verbs(directory)
    for path in edge_files:
        stem = path.name.split(".")[0]
        parts = stem.split("_")
        verb = verbs.get(stem) or (parts[1].lower() if len(parts) >= 3 else stem.lower())
        rows = _rows(path)
        header = _header(path, rows)
        if len(header) < 2:
            raise DataError(f"{path}: expected ':START_ID(Kind)<TAB>:END_ID(Kind)' header")
        start_kind, end_kind = _kind_of(path, header[0]), _kind_of(path, header[1])
        for line, row in _counted(path, rows, report):
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                report.problem(path, line, "expected two non-empty ids")
                continue
            head = known.get((start_kind, row[0].strip()))
            tail = known.get((end_kind, row[1].strip()))
            if head is None or tail is None:
                missing = row[0] if head is None else row[1]
                report.problem(
                    path, line, f"unknown {start_kind if head is None else end_kind} id '{missing.strip()}'"
                )
                continue
            kg.add_edge(head, verb, tail)


# -- dispatch ---------------------------------------------------------------------------------


def detect_format(path: Path) -> KGFormat:
    if path.is_dir():
        return "hetionet"
    with _open_text(path) as handle:
        first = handle.readline()
    fields = {f.strip() for f in re.split(r"[,\t]", first)}
    return "primekg" if "x_name" in fields else "triples"


def load_into(kg: KnowledgeGraph, path: Path, fmt: KGFormat, report: LoadReport) -> None:
    if not path.exists():
        raise DataError(f"knowledge graph not found: {path} (set kg.source to 'demo' or an existing path)")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "hetionet":
        if not path.is_dir():
            raise DataError(f"{path}: the hetionet format needs a directory (nodes.tsv, edges/)")
        load_hetionet(path, kg, report)
    elif path.is_dir():
        raise DataError(f"{path} is a directory; format '{fmt}' reads one file")
    elif fmt == "primekg":
        load_primekg(path, kg, report)
    else:
        load_triples(path, kg, report)
    kg.finish_loading()


def load_text(text: str, fmt: KGFormat = "triples") -> tuple[KnowledgeGraph, LoadReport]:
    """Load from an in-memory TSV/CSV (for tests and small examples)."""
    import tempfile

    suffix = ".csv" if fmt == "primekg" else ".tsv"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"kg{suffix}"
        path.write_text(text, encoding="utf-8")
        kg, report = KnowledgeGraph(), LoadReport()
        load_into(kg, path, fmt, report)
    return kg, report
