"""N-gram decontamination: contaminated items are removed and reported, clean ones pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from medloom.core.errors import GraphError
from medloom.core.events import Note, TraceDropped
from medloom.graphs.build import build_graph
from medloom.ops.decontaminate import ngrams
from tests.graphs.test_engine import GEN, RIGHT, ends, item, make_spec, run, runtime

SELECT = {"type": "selector", "method": "all"}


def eval_set(tmp_path: Path, questions: list[str]) -> Path:
    path = tmp_path / "eval.jsonl"
    rows = [{"id": f"ev{i}", "question": q, "options": {"A": "x", "B": "y"}} for i, q in enumerate(questions)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def decon(path: Path, **params: Any) -> dict[str, Any]:
    return {"type": "step", "op": "decontaminate", "params": {"eval_sets": [{"path": str(path)}], **params}}


def test_ngrams_of_short_texts_are_the_whole_text() -> None:
    assert ngrams("Peaked T waves!", 8) == {("peaked", "t", "waves")}
    assert len(ngrams(" ".join(f"w{i}" for i in range(10)), 8)) == 3


async def test_contaminated_item_is_removed_and_reported(fake_llm, tmp_path: Path) -> None:
    server, client = fake_llm(lambda req: RIGHT)
    leaked = item(1)
    clean = item(2).model_copy(update={"question": "Which nerve innervates the deltoid muscle in adults?"})
    path = eval_set(tmp_path, [leaked.question + " Explain.", "Unrelated evaluation question about kidneys."])
    spec = make_spec(
        {"decon": decon(path, include_options=False), "gen": GEN, "out": SELECT},
        ["decon -> gen", "gen -> out"],
    )
    events = await run(await runtime(spec, client), [leaked, clean], concurrency=1)
    by_id = ends(events)
    assert (by_id["q1"].status, by_id["q1"].node, by_id["q1"].reason_code) == (
        "rejected",
        "decon",
        "contaminated",
    )
    reason = by_id["q1"].reason or ""
    assert "100% of its 8-grams occur in eval set 'eval.jsonl'" in reason and "closest: ev0" in reason
    assert by_id["q2"].status == "kept"
    (note,) = [e for e in events if isinstance(e, Note)]
    assert (note.item_id, note.kind, note.data["closest_eval_id"], note.data["overlap"]) == (
        "q1",
        "contaminated",
        "ev0",
        1.0,
    )
    assert server.request_count == 1  # the contaminated item never reached the generator


async def test_overlap_below_threshold_is_kept(fake_llm, tmp_path: Path) -> None:
    _server, client = fake_llm(lambda req: RIGHT)
    words = item(1).question.split()
    path = eval_set(tmp_path, [" ".join(words[:8]) + " and then something else entirely different here"])
    spec = make_spec(
        {"decon": decon(path, include_options=False, threshold=0.5), "gen": GEN, "out": SELECT},
        ["decon -> gen", "gen -> out"],
    )
    end = ends(await run(await runtime(spec, client), [item(1)]))["q1"]
    assert end.status == "kept"  # one shared 8-gram out of several is under 50%


async def test_trace_target_drops_contaminated_traces(fake_llm, tmp_path: Path) -> None:
    _server, client = fake_llm(lambda req: RIGHT)
    path = eval_set(
        tmp_path,
        ["Step 1: The thyroid is overactive. Step 2: A beta blocker controls the symptoms. Answer: A"],
    )
    spec = make_spec(
        {"gen": GEN, "decon": decon(path, target="traces", n=4), "out": SELECT},
        ["gen -> decon", "decon -> out"],
    )
    events = await run(await runtime(spec, client), [item(1)])
    end = ends(events)["q1"]
    assert end.status == "rejected" and end.node == "decon"
    (dropped,) = [e for e in events if isinstance(e, TraceDropped)]
    assert dropped.reason.startswith("contaminated: ")


def test_missing_eval_set_names_the_key(tmp_path: Path) -> None:
    spec = make_spec({"gen": GEN, "decon": decon(tmp_path / "nope.jsonl")}, ["gen -> decon"])
    with pytest.raises(GraphError) as err:
        build_graph(spec)
    assert err.value.key == "nodes.decon.params.eval_sets.0.path"
    assert "nope.jsonl" in str(err.value)


async def test_eval_set_from_a_saved_dataset_uses_its_test_split(fake_llm, tmp_path: Path) -> None:
    import datasets

    leaked = item(1)
    rows = {"id": ["t0"], "question": [leaked.question], "options": [{"A": "x", "B": "y"}]}
    other = {"id": ["tr0"], "question": ["A training question about the spleen."], "options": [{"A": "x"}]}
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict(other), "test": datasets.Dataset.from_dict(rows)}
    ).save_to_disk(str(tmp_path / "evalset"))
    _server, client = fake_llm(lambda req: RIGHT)
    spec = make_spec(
        {"decon": decon(tmp_path / "evalset", include_options=False), "gen": GEN, "out": SELECT},
        ["decon -> gen", "gen -> out"],
    )
    end = ends(await run(await runtime(spec, client), [leaked]))["q1"]
    assert (end.status, end.reason_code) == ("rejected", "contaminated")
    assert end.reason is not None and "closest: t0" in end.reason
