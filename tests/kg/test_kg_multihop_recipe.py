"""configs/kg_multihop.yaml end to end through the CLI against a fake endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medloom.kg import load_kg
from medloom.kg.paths import KGPath, hop_is_edge
from medloom.testing.fake import FakeOpenAIServer
from tests.helpers import REPO, medloom_cli, only_run, read_report
from tests.kg.oracle import KGOracle

RECIPE = REPO / "configs" / "kg_multihop.yaml"


def run_recipe(tmp_path: Path, oracle: KGOracle, *extra: str) -> Path:
    with FakeOpenAIServer(oracle) as server:
        result = medloom_cli(
            "run", str(RECIPE), "--endpoint", server.base_url, "--runs-dir", str(tmp_path), *extra
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return only_run(tmp_path)


@pytest.mark.slow
def test_kept_rows_carry_real_kg_paths_difficulty_and_grounded_traces(tmp_path: Path) -> None:
    oracle = KGOracle(RECIPE, ["source.params.n=3"])
    run_dir = run_recipe(tmp_path, oracle, "--limit", "3")
    report = read_report(run_dir)
    assert (report["items"], report["kept"]) == (3, 3), report["rejection_reasons"]
    rows = [json.loads(line) for line in (run_dir / "data.jsonl").read_text().splitlines()]
    kg = load_kg().kg
    for row in rows:
        path = KGPath.model_validate(row["path"])  # a struct, not JSON text
        assert 2 <= len(path) <= 4 and all(hop_is_edge(kg, h) for h in path.hops)
        assert row["answer_text"] == path.end.name and row["predicted"] == row["answer"]
        assert len(row["options"]) == 5
        assert row["difficulty"] == "easy" and row["solver_correct"] == 4
        assert all(n.name not in row["question"] for n in path.intermediates[:1])
        assert path.start.name in row["question"]
        assert len(row["steps"]) == len(path)
        assert row["question_source"] == "llm"
    # the report and the card say what each verifier checks and its shipped figures (issue 13)
    strict = [v for v in report["verifiers"] if v["measured_as"] == "kg_grounding strict"]
    assert strict and strict[0]["node"] == "check_reason" and strict[0]["recall"] >= 0.95
    assert any(v["check"] == "question_fidelity" and v["recall"] for v in report["verifiers"])
    assert any("open-book solver" in s and "3/3" in s for s in report["solvers"]), report["solvers"]
    card = (run_dir / "README.md").read_text()
    assert 'What "verified" means here' in card and "kg_grounding strict" in card


def item_ends(run_dir: Path) -> list[dict[str, str]]:
    lines = (run_dir / "trajectories.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if '"item_end"' in line]


@pytest.mark.slow
def test_a_question_naming_an_intermediate_is_never_used(tmp_path: Path) -> None:
    oracle = KGOracle(RECIPE, ["source.params.n=2"], leak=True)
    run_dir = run_recipe(tmp_path, oracle, "--limit", "2", "--set", "nodes.question.params.fallback=none")
    report = read_report(run_dir)
    assert (report["items"], report["kept"], report["rejected"]) == (2, 0, 2)
    # every candidate the writer gives names an intermediate: the question step rejects the item
    assert [r for r, _ in report["rejection_reasons"]] == ["question: no usable question"]
    named = {it.data["intermediates"][0] for it in oracle.items}
    ends = item_ends(run_dir)
    assert all(any(f"names '{n}'" in e["reason"] for n in named) for e in ends), ends


@pytest.mark.slow
def test_without_a_usable_question_the_path_built_role_question_is_asked(tmp_path: Path) -> None:
    oracle = KGOracle(RECIPE, ["source.params.n=2"], leak=True)
    run_dir = run_recipe(tmp_path, oracle, "--limit", "2")
    report = read_report(run_dir)
    assert (report["items"], report["kept"]) == (2, 2), report["rejection_reasons"]
    rows = [json.loads(line) for line in (run_dir / "data.jsonl").read_text().splitlines()]
    for row in rows:
        path = KGPath.model_validate(row["path"])  # a struct, not JSON text
        assert row["question_source"] == "role_question"
        assert row["question"].startswith(path.start.name) and row["question"].endswith("?")
        assert not any(n.name.lower() in row["question"].lower() for n in [*path.intermediates, path.end])


@pytest.mark.slow
def test_the_leakage_check_rejects_what_the_writer_lets_through(tmp_path: Path) -> None:
    oracle = KGOracle(RECIPE, ["source.params.n=2"], leak=True)
    run_dir = run_recipe(tmp_path, oracle, "--limit", "2", "--set", "nodes.question.params.avoid_field=null")
    report = read_report(run_dir)
    assert (report["items"], report["kept"], report["rejected"]) == (2, 0, 2)
    assert [r for r, _ in report["rejection_reasons"]] == ["check_question: failed leakage"]
    named = {it.data["intermediates"][0] for it in oracle.items}
    ends = item_ends(run_dir)
    assert all(any(n in e["reason"] for n in named) and "the question names" in e["reason"] for e in ends)


def test_kg_source_override_switches_the_graph_items_come_from(tmp_path: Path) -> None:
    from medloom.data.sources import item_source
    from medloom.graphs.loader import load_spec

    kg_file = tmp_path / "tiny.tsv"
    rows = ["head\trelation\ttail\thead_type\ttail_type"]
    rows += [f"Drug{i}\ttreats\tDisease{i}\tCompound\tDisease" for i in range(8)]
    rows += [f"Disease{i}\tassociates\tGENE{i}\tDisease\tGene" for i in range(8)]
    kg_file.write_text("\n".join(rows) + "\n")
    spec = load_spec(
        RECIPE, [f"resources.kg.source={kg_file}", "source.params.n=2", "source.params.options=4"]
    )
    items = [it for _, it in item_source(spec, RECIPE.parent)]
    assert len(items) == 2
    for it in items:
        assert not isinstance(it, Exception)
        path = KGPath.model_validate(it.data["path"])
        names = {n.name for n in path.nodes} | set((it.options or {}).values())
        assert all(n.startswith(("Drug", "Disease", "GENE")) for n in names)
        assert it.options and it.answer and it.options[it.answer] == path.end.name


def test_relations_missing_from_a_switched_kg_are_a_config_error(tmp_path: Path) -> None:
    from medloom.core.errors import ConfigError
    from medloom.data.sources import item_source
    from medloom.graphs.loader import load_spec

    kg_file = tmp_path / "kg.csv"
    kg_file.write_text(
        "x_name,x_type,display_relation,y_name,y_type\nMetformin,drug,indication,diabetes,disease\n"
    )
    spec = load_spec(RECIPE, [f"kg.source={kg_file}"])
    with pytest.raises(ConfigError, match="indication") as err:
        list(item_source(spec, RECIPE.parent))
    assert err.value.key == "source.params.relations"
