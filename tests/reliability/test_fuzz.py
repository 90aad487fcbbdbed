"""Property-based fuzzing of the config loader and the dataset readers: a user's mistake gives a
ConfigError / DataError naming the problem, or a reported skipped row; never a traceback."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medloom.core.errors import ConfigError, DataError
from medloom.core.records import Item
from medloom.data.items import iter_items
from medloom.data.readers import BadRow, DatasetSpec, count_rows
from medloom.graphs.build import build_graph, template_library
from medloom.graphs.loader import apply_override, load_raw, validate_spec
from tests.helpers import RECIPE

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE: dict[str, Any] = yaml.safe_load(RECIPE.read_text())
BASE["dataset"]["path"] = str(RECIPE.parent / BASE["dataset"]["path"])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["gen", "generate", "verify", "mcq_cot", "a -> b", "passed", "score >= 3", "-1"]),
)
yaml_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a nested dict/list config."""
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            found += _paths(v, (*prefix, i))
    return found


PATHS = _paths(BASE)


def _check_spec(data: Any) -> None:
    """Validation and graph checks either pass or raise ConfigError (GraphError is one)."""
    try:
        if not isinstance(data, dict):
            raise ConfigError("top level is not a mapping")
        spec = validate_spec(data, file="fuzz.yaml")
        build_graph(spec, file="fuzz.yaml", templates=template_library(spec, RECIPE.parent))
    except ConfigError as exc:
        assert str(exc).strip()


@FUZZ
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(PATHS), st.sampled_from(["set", "delete", "add"]), yaml_values),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_recipe_gives_config_errors_only(edits: list[tuple[tuple[Any, ...], str, Any]]) -> None:
    data = copy.deepcopy(BASE)
    for path, action, value in edits:
        parent: Any = data
        try:
            for part in path[:-1]:
                parent = parent[part]
            last = path[-1]
            if action == "set":
                parent[last] = value
            elif action == "delete":
                del parent[last]
            elif isinstance(parent[last], dict):
                parent[last]["extra_key"] = value
            elif isinstance(parent[last], list):
                parent[last].append(value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced this path
    _check_spec(data)


@FUZZ
@given(text=st.text(max_size=300) | st.binary(max_size=300))
def test_arbitrary_config_file_gives_config_error_or_mapping(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recipe.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        try:
            data = load_raw(path)
        except ConfigError as exc:
            assert str(path) in str(exc)
            return
        assert isinstance(data, dict)
        _check_spec(data)


@FUZZ
@given(assignment=st.text(max_size=40), value=yaml_values)
def test_overrides_give_config_errors_only(assignment: str, value: Any) -> None:
    data = copy.deepcopy(BASE)
    for text in (assignment, f"{assignment}={json.dumps(value, default=str)}"):
        try:
            apply_override(data, text, file="fuzz.yaml")
        except ConfigError as exc:
            assert str(exc).strip()
    _check_spec(data)


def _read_all(path: Path, fields: dict[str, Any] | None = None) -> list[Item | BadRow]:
    spec = DatasetSpec(path=str(path), fields=fields or {"id": "id"})
    try:
        count_rows(spec)
        return [entry for _, entry in iter_items(spec)]
    except DataError as exc:
        assert str(path.name) in str(exc) or str(path) in str(exc), exc
        return []


json_rows = st.one_of(
    yaml_values,
    st.fixed_dictionaries(
        {"id": scalars, "question": scalars, "answer": scalars},
        optional={"options": yaml_values},
    ),
)


@FUZZ
@given(rows=st.lists(json_rows, max_size=8), noise=st.binary(max_size=40), cut=st.integers(0, 400))
def test_jsonl_reader_reports_bad_rows(rows: list[Any], noise: bytes, cut: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "items.jsonl"
        body = "\n".join(json.dumps(r, default=str) for r in rows).encode()
        path.write_bytes(body[:cut] + noise + body[cut:])
        for entry in _read_all(path):
            assert isinstance(entry, Item | BadRow)
            if isinstance(entry, BadRow):
                assert str(entry).strip()


@FUZZ
@given(
    header=st.lists(st.sampled_from(["id", "question", "options", "answer", "x", ""]), max_size=5),
    cells=st.lists(st.lists(st.text(max_size=10), max_size=6), max_size=6),
    noise=st.binary(max_size=20),
    suffix=st.sampled_from([".csv", ".tsv"]),
)
def test_csv_reader_reports_bad_rows(
    header: list[str], cells: list[list[str]], noise: bytes, suffix: str
) -> None:
    sep = "\t" if suffix == ".tsv" else ","
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"items{suffix}"
        text = "\n".join(sep.join(row) for row in [header, *cells])
        path.write_bytes(text.encode() + noise)
        for entry in _read_all(path, {"id": "id", "options": ["x", "options"]}):
            assert isinstance(entry, Item | BadRow)


def test_cli_reports_a_broken_recipe_and_dataset_without_traceback(tmp_path: Path) -> None:
    from tests.helpers import medloom_cli

    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: x\n\x80\x81 nodes: {}\n")
    result = medloom_cli("validate", str(binary))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert "not UTF-8" in result.stderr + result.stdout

    data = tmp_path / "items.jsonl"
    good = json.loads((RECIPE.parent / BASE["dataset"]["path"]).read_text().splitlines()[0])
    data.write_bytes(json.dumps(good).encode() + b"\n\xff\xfe not text\n{broken\n")
    spec = DatasetSpec(path=str(data), fields={"id": "id"})
    entries = [entry for _, entry in iter_items(spec)]
    assert isinstance(entries[0], Item)
    assert [str(e) for e in entries[1:]] == [
        "line 2: not UTF-8 text (byte 1)",
        "line 3: invalid JSON (Expecting property name enclosed in double quotes at column 2)",
    ]
