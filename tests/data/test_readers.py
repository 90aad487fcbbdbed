"""Reading items from JSONL, CSV, Parquet and saved `datasets`; field maps and bad rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medloom.core.errors import DataError
from medloom.core.records import Item
from medloom.data import BadRow, DatasetSpec, FieldMap, count_rows, iter_items, iter_rows, row_to_item

OPTIONS = {"A": "Propranolol", "B": "Levothyroxine", "C": "Radioactive iodine", "D": "Surgery"}


def row(n: int, **overrides: Any) -> dict[str, Any]:
    base = {
        "id": f"q{n}",
        "question": f"Case {n}: thyrotoxic palpitations. Best initial drug?",
        "options": OPTIONS,
        "answer": "A",
        "topic": "endocrine",
    }
    base.update(overrides)
    return base


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines),
        encoding="utf-8",
    )
    return path


def items(spec: DatasetSpec, base_dir: Path | None = None) -> list[tuple[int, Item | BadRow]]:
    return list(iter_items(spec, base_dir))


def good(entries: list[tuple[int, Item | BadRow]]) -> list[Item]:
    return [e for _, e in entries if isinstance(e, Item)]


def bad(entries: list[tuple[int, Item | BadRow]]) -> dict[int, str]:
    return {i: str(e) for i, e in entries if isinstance(e, BadRow)}


# -- JSONL ----------------------------------------------------------------------------------


def test_jsonl_items(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [row(0), row(1, answer="C")])
    out = items(DatasetSpec(path=str(path), fields=FieldMap(id="id")))
    assert [i for i, _ in out] == [0, 1]
    first, second = good(out)
    assert (first.id, first.index, first.answer, first.options) == ("q0", 0, "A", OPTIONS)
    assert first.question.startswith("Case 0:")
    assert first.data == row(0)  # every original field is kept
    assert first.gold_text == "Propranolol"
    assert (second.id, second.answer, second.gold_text) == ("q1", "C", "Radioactive iodine")


def test_jsonl_bad_lines_are_reported_with_their_line_numbers(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [row(0), "", '{"id": "q1", "question": ', "   ", "[1, 2, 3]", row(3), '"just a string"'],
    )
    out = items(DatasetSpec(path=str(path), fields=FieldMap(id="id")))
    # Blank lines are skipped and do not count as rows.
    assert [i for i, _ in out] == [0, 1, 2, 3, 4]
    assert [i.id for i in good(out)] == ["q0", "q3"]
    errors = bad(out)
    assert set(errors) == {1, 2, 4}
    assert errors[1].startswith("line 3: invalid JSON")
    assert errors[2] == "line 5: expected a JSON object, got list"
    assert errors[4] == "line 7: expected a JSON object, got str"


def test_jsonl_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_text(json.dumps(row(0)) + "\n", encoding="utf-8-sig")
    assert [i.id for i in good(items(DatasetSpec(path=str(path), fields=FieldMap(id="id"))))] == ["q0"]


def test_ids_default_to_the_row_index(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [row(0), row(1)])
    assert [i.id for i in good(items(DatasetSpec(path=str(path))))] == ["0", "1"]


# -- CSV ------------------------------------------------------------------------------------


def write_csv(path: Path, header: list[str], rows: list[list[Any]], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_options_as_a_json_column(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "d.csv",
        ["id", "question", "options", "answer"],
        [
            ["q0", "Best drug?", json.dumps(OPTIONS), "A"],
            ["q1", "Second-line?", json.dumps(["Propranolol", "Methimazole"]), "B"],
        ],
    )
    first, second = good(items(DatasetSpec(path=str(path), fields=FieldMap(id="id"))))
    assert first.options == OPTIONS and first.answer == "A"
    assert second.options == {"A": "Propranolol", "B": "Methimazole"} and second.answer == "B"


def test_csv_options_as_several_columns(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "d.csv",
        ["qid", "stem", "opa", "opb", "opc", "gold"],
        [["x1", "Best drug?", "Propranolol", "Levothyroxine", "Surgery", "Surgery"]],
    )
    fields = FieldMap(id="qid", question="stem", options=["opa", "opb", "opc"], answer="gold")
    (item,) = good(items(DatasetSpec(path=str(path), fields=fields)))
    assert item.id == "x1" and item.question == "Best drug?"
    assert item.options == {"A": "Propranolol", "B": "Levothyroxine", "C": "Surgery"}
    assert item.answer == "C"  # the gold option text became its letter


def test_csv_missing_option_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", ["question", "opa", "answer"], [["q?", "x", "A"]])
    fields = FieldMap(options=["opa", "opb"])
    assert bad(items(DatasetSpec(path=str(path), fields=fields))) == {0: "missing option columns ['opb']"}


def test_csv_ragged_rows(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        'question,options,answer\n"ok?","[""x"", ""y""]",A\ntoo,many,values,here\nfew,values\n',
        encoding="utf-8",
    )
    out = items(DatasetSpec(path=str(path)))
    assert [i.question for i in good(out)] == ["ok?"]
    assert bad(out) == {
        1: "line 3: more values than header columns",
        2: "line 4: fewer values than header columns",
    }


def test_tsv_and_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    path.write_text(
        'id\tquestion\toptions\tanswer\nq0\tBest drug?\t{"A": "x", "B": "y"}\tB\n', encoding="utf-8-sig"
    )
    (item,) = good(items(DatasetSpec(path=str(path), fields=FieldMap(id="id"))))
    assert (item.id, item.options, item.answer) == ("q0", {"A": "x", "B": "y"}, "B")


def test_csv_options_that_are_not_json(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", ["question", "options", "answer"], [["q?", "A) x B) y", "A"]])
    assert bad(items(DatasetSpec(path=str(path)))) == {0: "field 'options' is not a JSON object or list"}


# -- Parquet --------------------------------------------------------------------------------


def test_parquet_with_struct_and_list_options(tmp_path: Path) -> None:
    structs = tmp_path / "s.parquet"
    pq.write_table(
        pa.Table.from_pylist(
            [
                row(0),
                row(1, options={**OPTIONS, "E": "Watchful waiting"}, answer="E"),
            ]
        ),
        structs,
    )
    first, second = good(items(DatasetSpec(path=str(structs), fields=FieldMap(id="id"))))
    # The struct column gives row 0 an "E": None, which is not an option.
    assert first.options == OPTIONS
    assert second.options == {**OPTIONS, "E": "Watchful waiting"} and second.answer == "E"

    lists = tmp_path / "l.parquet"
    pq.write_table(pa.table({"q": ["Best drug?"], "choices": [["x", "y", "z"]], "label": ["z"]}), lists)
    fields = FieldMap(question="q", options="choices", answer="label")
    (item,) = good(items(DatasetSpec(path=str(lists), fields=fields)))
    assert (item.options, item.answer) == ({"A": "x", "B": "y", "C": "z"}, "C")


def test_parquet_many_rows_and_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.pq"
    pq.write_table(pa.Table.from_pylist([row(n) for n in range(2500)]), path)
    spec = DatasetSpec(path=str(path), fields=FieldMap(id="id"))
    out = items(spec)
    assert len(good(out)) == 2500 and [i for i, _ in out] == list(range(2500))
    assert count_rows(spec) == 2500
    limited = DatasetSpec(path=str(path), fields=FieldMap(id="id"), limit=3)
    assert [i.id for i in good(items(limited))] == ["q0", "q1", "q2"]
    assert count_rows(limited) == 3


# -- `datasets` saved to disk ----------------------------------------------------------------


def test_saved_dataset_and_dataset_dict(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    train = datasets.Dataset.from_list([row(0), row(1)])
    test = datasets.Dataset.from_list([row(7, answer="Surgery")])
    train.save_to_disk(str(tmp_path / "single"))
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "dict"))

    single = items(DatasetSpec(path=str(tmp_path / "single"), fields=FieldMap(id="id")))
    assert [i.id for i in good(single)] == ["q0", "q1"]

    spec = DatasetSpec(path=str(tmp_path / "dict"), split="test", fields=FieldMap(id="id"))
    (item,) = good(items(spec))
    assert (item.id, item.answer, item.options) == ("q7", "D", OPTIONS)
    default_split = DatasetSpec(path=str(tmp_path / "dict"), fields=FieldMap(id="id"))
    assert [i.id for i in good(items(default_split))] == ["q0", "q1"]

    with pytest.raises(DataError, match=r"has splits \['train', 'test'\], not 'validation'"):
        items(DatasetSpec(path=str(tmp_path / "dict"), split="validation"))


def test_directory_that_is_not_a_saved_dataset(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="save_to_disk"):
        items(DatasetSpec(path=str(tmp_path / "empty")))


# -- field mapping and validation -----------------------------------------------------------


def test_field_mapping(tmp_path: Path) -> None:
    raw = {"uid": 17, "prompt": "Which drug?", "choices": {"a": "x", "b": "y"}, "label": "b", "extra": [1]}
    path = write_jsonl(tmp_path / "d.jsonl", [raw])
    fields = FieldMap(id="uid", question="prompt", options="choices", answer="label")
    (item,) = good(items(DatasetSpec(path=str(path), fields=fields)))
    assert (item.id, item.question, item.options, item.answer) == (
        "17",
        "Which drug?",
        {"a": "x", "b": "y"},
        "b",
    )
    assert item.data == raw


def test_free_text_items_without_options(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "Dose?", "answer": "  5 mg "}])
    (item,) = good(items(DatasetSpec(path=str(path), fields=FieldMap(options=None))))
    assert (item.options, item.answer) == (None, "5 mg")
    (item,) = good(items(DatasetSpec(path=str(path), fields=FieldMap(options=None, answer=None))))
    assert item.answer is None


@pytest.mark.parametrize(
    ("gold", "letter"),
    [("Radioactive iodine", "C"), ("radioactive IODINE.", "C"), ("(d)", "D"), ("B) Levothyroxine", "B")],
)
def test_gold_given_as_option_text_becomes_the_letter(gold: str, letter: str) -> None:
    item = row_to_item(0, row(0, answer=gold), FieldMap())
    assert item.answer == letter


def test_gold_matching_no_option() -> None:
    with pytest.raises(
        BadRow, match=r"gold answer 'Metformin' is not one of the options \['A', 'B', 'C', 'D'\]"
    ):
        row_to_item(0, row(0, answer="Metformin"), FieldMap())


@pytest.mark.parametrize(
    ("fields", "changes", "message"),
    [
        (FieldMap(), {"question": None}, "field 'question' is empty or not text"),
        (FieldMap(), {"question": "   "}, "field 'question' is empty or not text"),
        (FieldMap(question="stem"), {}, "missing field 'stem' (question)"),
        (FieldMap(options="choices"), {}, "missing field 'choices' (options)"),
        (FieldMap(answer="gold"), {}, "missing field 'gold' (gold answer)"),
        (FieldMap(), {"answer": ""}, "missing field 'answer' (gold answer)"),
        (FieldMap(), {"answer": None}, "missing field 'answer' (gold answer)"),
        (FieldMap(id="qid"), {}, "missing field 'qid' (id)"),
        (FieldMap(), {"options": {"A": "only one"}}, "field 'options' has fewer than two options"),
        (FieldMap(), {"options": 42}, "field 'options' must be a dict or a list, got int"),
    ],
)
def test_missing_or_bad_fields_name_the_field(
    fields: FieldMap, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadRow) as err:
        row_to_item(3, row(3, **changes), fields)
    assert str(err.value) == message


def test_bad_fields_are_reported_per_row(tmp_path: Path) -> None:
    rows = [row(0), {"id": "q1", "options": OPTIONS, "answer": "A"}, row(2)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    out = items(DatasetSpec(path=str(path), fields=FieldMap(id="id")))
    assert [i.id for i in good(out)] == ["q0", "q2"]
    assert bad(out) == {1: "missing field 'question' (question)"}


def test_duplicate_ids_are_reported(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [row(0), row(1), row(0, question="Same id again?"), row(1)])
    out = items(DatasetSpec(path=str(path), fields=FieldMap(id="id")))
    assert [i.id for i in good(out)] == ["q0", "q1"]
    assert bad(out) == {
        2: "duplicate id 'q0' (first at row 0)",
        3: "duplicate id 'q1' (first at row 1)",
    }


def test_a_bad_row_does_not_claim_its_id(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [row(0, answer="Metformin"), row(0)])
    out = items(DatasetSpec(path=str(path), fields=FieldMap(id="id")))
    assert [(i, e.id) for i, e in out if isinstance(e, Item)] == [(1, "q0")]


# -- limit, count, formats, paths -----------------------------------------------------------


def test_limit_counts_rows_including_bad_ones(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [row(0), "{bad", row(2), row(3)])
    out = items(DatasetSpec(path=str(path), limit=3))
    assert [i for i, _ in out] == [0, 1, 2]
    assert len(good(out)) == 2 and list(bad(out)) == [1]
    assert count_rows(DatasetSpec(path=str(path), limit=3)) == 3
    assert count_rows(DatasetSpec(path=str(path))) == 4


def test_count_rows_for_csv_and_unknown(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", ["question", "answer"], [["a", "1"], ["b", "2"]])
    assert count_rows(DatasetSpec(path=str(path))) == 2
    assert count_rows(DatasetSpec(path=str(tmp_path / "data.xlsx"))) is None


def test_relative_paths_resolve_against_the_base_dir(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d.jsonl", [row(0)])
    spec = DatasetSpec(path="d.jsonl", fields=FieldMap(id="id"))
    assert [i.id for i in good(items(spec, base_dir=tmp_path))] == ["q0"]
    assert count_rows(spec, base_dir=tmp_path) == 1


def test_explicit_format_overrides_the_suffix(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.txt", [row(0)])
    with pytest.raises(DataError, match="cannot tell the format"):
        list(iter_rows(DatasetSpec(path=str(path))))
    assert len(list(iter_rows(DatasetSpec(path=str(path), format="jsonl")))) == 1


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist; check dataset\.path"):
        list(iter_rows(DatasetSpec(path=str(tmp_path / "missing.jsonl"))))


def test_dataset_spec_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError):
        DatasetSpec.model_validate({"path": "x.jsonl", "limt": 3})
    with pytest.raises(ValueError):
        DatasetSpec.model_validate({"path": "x.jsonl", "limit": 0})


def test_hub_names_are_recognised_without_loading(tmp_path: Path) -> None:
    from medloom.data.readers import resolve_format

    assert resolve_format(DatasetSpec(path="org/medqa"), Path("org/medqa")) == "hub"
    with pytest.raises(DataError):
        resolve_format(DatasetSpec(path="./local/thing"), Path("./local/thing"))
