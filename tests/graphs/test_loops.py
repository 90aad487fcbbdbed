"""Issue 12: validate proves every loop ends, a runtime guard stops an item that loops anyway,
and templates may only read variables their node provides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from medloom.agents.templates import TemplateLibrary
from medloom.core.errors import GraphError
from medloom.core.events import ItemFinished
from medloom.core.records import Item
from medloom.graphs.build import build_graph, template_library
from medloom.graphs.engine import Engine
from medloom.graphs.loader import load_spec, validate_spec
from medloom.graphs.runtime import instantiate, resolve_models
from medloom.graphs.spec import GraphSpec
from tests.helpers import medloom_cli

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "configs" / "mcq_refine.yaml"
WRONG = "Step 1: Levothyroxine treats thyroid disease.\nAnswer: B"


def test_a_loop_back_from_the_judge_is_unbounded_even_beside_a_refiner() -> None:
    data = yaml.safe_load(RECIPE.read_text())
    data["edges"].append({"from": "judge", "to": "verify", "when": "failed"})
    spec = validate_spec(data, file=RECIPE)
    with pytest.raises(GraphError) as err:
        build_graph(spec, file=RECIPE, templates=template_library(spec, RECIPE.parent))
    assert err.value.key == "edges"
    assert "unbounded cycle through judge → verify" in str(err.value)
    assert "refiner" in str(err.value)


def test_the_recipe_itself_is_bounded() -> None:
    spec = load_spec(RECIPE)
    compiled = build_graph(spec, file=RECIPE, templates=template_library(spec, RECIPE.parent))
    assert compiled.max_visits == 8 + 2 * spec.nodes["refine"].max_rounds  # type: ignore[attr-defined]


def loop_spec(**run: Any) -> GraphSpec:
    return GraphSpec.model_validate(
        {
            "name": "guard",
            "models": {"m": {"model": "fake-model"}},
            "dataset": {"path": "unused.jsonl"},
            "run": run,
            "nodes": {
                "gen": {"type": "generator", "models": ["m"], "template": "mcq_cot"},
                "verify": {"type": "verifier", "verifiers": [{"check": "mcq_answer"}]},
                "refine": {"type": "refiner", "model": "m", "max_rounds": 3},
                "done": {"type": "selector", "method": "all"},
            },
            "edges": [
                "gen -> verify",
                {"from": "verify", "to": "refine", "when": "failed"},
                {"from": "verify", "to": "done", "when": "passed"},
                "refine -> verify",
            ],
        }
    )


async def test_an_item_entering_a_node_too_often_fails_with_a_reason(fake_llm: Any) -> None:
    _, client = fake_llm(lambda req: WRONG)
    spec = loop_spec(max_node_visits=2)
    rt = instantiate(build_graph(spec), client, await resolve_models(spec, client), TemplateLibrary())
    events: list[Any] = []
    item = Item(id="q1", index=0, question="Which drug?", options={"A": "Propranolol", "B": "T4"}, answer="A")
    await Engine(rt, events.append, run_id="guard").run([(0, item)])
    end = next(e for e in events if isinstance(e, ItemFinished))
    assert (end.status, end.node) == ("failed", "verify")
    assert end.reason is not None
    assert "entered 2 times for one item" in end.reason and "run.max_node_visits" in end.reason
    assert end.stats["verify"].failed == 2  # what ran before the guard is still counted


def test_an_unknown_template_variable_names_file_key_and_variable(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "case.chat.j2").write_text(
        "--- user ---\nA patient aged {{ patient.age }} asks: {{ question }}\n"
    )
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "vars",
                "models": {"m": {"model": "x"}},
                "dataset": {"path": "items.jsonl"},
                "nodes": {"gen": {"type": "generator", "models": ["m"], "template": "case"}},
            }
        )
    )
    spec = load_spec(recipe)
    with pytest.raises(GraphError) as err:
        build_graph(spec, file=recipe, templates=template_library(spec, tmp_path))
    assert err.value.key == "nodes.gen.template"
    message = str(err.value)
    assert str(recipe) in message and "case.chat.j2" in message and "'patient'" in message


def test_item_fields_loop_variables_and_includes_are_known(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "_facts.j2").write_text(
        "{% for k, v in options.items() %}{{ k }}: {{ v }}\n{% endfor %}"
    )
    (tmp_path / "templates" / "case.chat.j2").write_text(
        '--- user ---\n{% set age = data.age %}{{ question }} ({{ age }})\n{% include "_facts.j2" %}\n'
    )
    spec = GraphSpec.model_validate(
        {
            "name": "vars",
            "models": {"m": {"model": "x"}},
            "dataset": {"path": "items.jsonl"},
            "nodes": {"gen": {"type": "generator", "models": ["m"], "template": "case"}},
        }
    )
    build_graph(spec, templates=template_library(spec, tmp_path))


def _medagents_recipe(tmp_path: Path, report_template: str) -> Path:
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "my_report.chat.j2").write_text(report_template)
    recipe = tmp_path / "recipe.yaml"
    experts = {
        "type": "step",
        "op": "medagents_experts",
        "model": "m",
        "params": {"report_template": "my_report"},
    }
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "op-vars",
                "models": {"m": {"model": "x"}},
                "dataset": {"path": "items.jsonl"},
                "nodes": {"experts": experts},
            }
        )
    )
    return recipe


def test_an_op_template_reading_a_variable_its_op_does_not_pass_fails_validate(tmp_path: Path) -> None:
    recipe = _medagents_recipe(
        tmp_path, "--- user ---\n{{ question }}\n{{ question_analyses }}\n{{ expert_notes }}\n"
    )
    result = medloom_cli("validate", str(recipe))
    assert result.returncode == 2, result.stdout + result.stderr
    message = " ".join((result.stdout + result.stderr).split())
    assert "nodes.experts.params.report_template" in message
    assert "my_report.chat.j2" in message and "'expert_notes'" in message


def test_an_op_template_reading_what_its_op_passes_validates(tmp_path: Path) -> None:
    recipe = _medagents_recipe(
        tmp_path, "--- user ---\n{{ question }}\n{{ question_analyses }}\n{{ option_analyses }}\n"
    )
    result = medloom_cli("validate", str(recipe))
    assert result.returncode == 0, result.stdout + result.stderr
