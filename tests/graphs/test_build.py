"""Graph checks before a run: names, models, checks, templates, cycles, reachability, order."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from medloom.agents.templates import TemplateLibrary
from medloom.core.errors import ConfigError, GraphError
from medloom.graphs.build import build_graph, template_library
from medloom.graphs.conditions import Failed, Passed, ScoreCompare
from medloom.graphs.loader import load_spec
from medloom.graphs.spec import GraphSpec

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "configs" / "mcq_refine.yaml"

GEN = {"type": "generator", "models": ["m"], "template": "mcq_cot"}
VER = {"type": "verifier", "verifiers": [{"check": "mcq_answer"}]}
REF = {"type": "refiner", "model": "m", "max_rounds": 2}
SEL = {"type": "selector", "method": "top_k"}


def make(nodes: dict[str, Any], edges: list[Any], **extra: Any) -> GraphSpec:
    data: dict[str, Any] = {
        "name": "t",
        "models": {"m": {"model": "fake-model"}},
        "dataset": {"path": "items.jsonl"},
        "nodes": nodes,
        "edges": edges,
    }
    data.update(extra)
    return GraphSpec.model_validate(data)


def graph_error(spec: GraphSpec, **kw: Any) -> GraphError:
    with pytest.raises(GraphError) as err:
        build_graph(spec, **kw)
    assert isinstance(err.value, ConfigError)
    return err.value


LOOP_NODES = {"gen": GEN, "verify": VER, "refine": REF, "select": SEL}
LOOP_EDGES = [
    "gen -> verify",
    {"from": "verify", "to": "select", "when": "passed"},
    {"from": "verify", "to": "refine", "when": "failed"},
    "refine -> verify",
]


def test_accepts_a_refine_loop() -> None:
    compiled = build_graph(make(LOOP_NODES, LOOP_EDGES))
    assert compiled.entries == ["gen"]
    assert compiled.components == [["gen"], ["verify", "refine"], ["select"]]
    assert compiled.sinks == {"select"}
    assert compiled.graph.edges["verify", "refine"]["conditions"] == [Failed()]
    assert [target for target, _ in compiled.routes["verify"]] == ["select", "refine"]


def test_accepts_the_demo_recipe_and_orders_its_components() -> None:
    spec = load_spec(RECIPE)
    compiled = build_graph(spec, file=RECIPE)
    assert compiled.entries == ["generate"]
    assert compiled.components == [["generate"], ["verify", "refine"], ["judge"], ["select"]]
    assert compiled.sinks == {"select"}
    assert compiled.graph.edges["verify", "judge"]["conditions"] == [Passed()]


def test_parallel_edges_collect_their_conditions() -> None:
    edges = [
        "gen -> verify",
        {"from": "verify", "to": "select", "when": "passed"},
        {"from": "verify", "to": "select", "when": "score >= 0.5"},
    ]
    compiled = build_graph(make({"gen": GEN, "verify": VER, "select": SEL}, edges))
    assert compiled.graph.edges["verify", "select"]["conditions"] == [Passed(), ScoreCompare(">=", 0.5)]


def test_two_generators_feeding_one_verifier() -> None:
    nodes = {"a": GEN, "b": GEN, "verify": VER, "select": SEL}
    compiled = build_graph(make(nodes, ["a -> verify", "b -> verify", "verify -> select"]))
    assert sorted(compiled.entries) == ["a", "b"]
    assert compiled.components[-2:] == [["verify"], ["select"]]


@pytest.mark.parametrize(("edge", "key"), [("gen -> verfy", "edges.0.to"), ("gne -> verify", "edges.0.from")])
def test_unknown_node_in_an_edge(edge: str, key: str) -> None:
    err = graph_error(make({"gen": GEN, "verify": VER}, [edge]), file="r.yaml")
    assert err.key == key
    assert err.file == "r.yaml"
    assert "unknown node" in str(err) and "(nodes: gen, verify)" in str(err)
    assert str(err).startswith(f"r.yaml: key '{key}'")


def test_unknown_model_in_a_generator() -> None:
    err = graph_error(make({"gen": {**GEN, "models": ["m", "big"]}, "verify": VER}, ["gen -> verify"]))
    assert err.key == "nodes.gen.models.1"
    assert "unknown model 'big' (models: m)" in str(err)


def test_unknown_model_in_a_refiner_and_a_judge() -> None:
    err = graph_error(make({**LOOP_NODES, "refine": {**REF, "model": "x"}}, LOOP_EDGES))
    assert err.key == "nodes.refine.model"
    judge = {"type": "verifier", "verifiers": [{"check": "format"}, {"judge": "critic"}]}
    err = graph_error(make({"gen": GEN, "judge": judge}, ["gen -> judge"]))
    assert err.key == "nodes.judge.verifiers.1.judge"
    assert "unknown model 'critic'" in str(err)


def test_unknown_check() -> None:
    verify = {"type": "verifier", "verifiers": [{"check": "format"}, {"check": "mcq_anwser"}]}
    err = graph_error(make({"gen": GEN, "verify": verify}, ["gen -> verify"]))
    assert err.key == "nodes.verify.verifiers.1.check"
    assert "unknown check 'mcq_anwser'" in str(err) and "mcq_answer" in str(err)


def test_bad_check_parameters() -> None:
    verify = {"type": "verifier", "verifiers": [{"check": "format", "params": {"min_stpes": 2}}]}
    err = graph_error(make({"gen": GEN, "verify": verify}, ["gen -> verify"]))
    assert err.key == "nodes.verify.verifiers.0.params"
    assert "min_stpes" in str(err)


def test_unknown_template() -> None:
    err = graph_error(make({"gen": {**GEN, "template": "mcq_cto"}, "verify": VER}, ["gen -> verify"]))
    assert err.key == "nodes.gen.template"
    assert "'mcq_cto.chat.j2' not found" in str(err)
    assert "mcq_cot" in str(err)  # the available templates are listed


def test_template_missing_for_the_model_mode(tmp_path: Path) -> None:
    (tmp_path / "chat_only.chat.j2").write_text("--- user ---\n{{ question }}\n")
    lib = TemplateLibrary([tmp_path])
    nodes = {"gen": {**GEN, "template": "chat_only"}, "verify": VER}
    build_graph(make(nodes, ["gen -> verify"]), templates=lib)  # chat model: fine
    completion = {"m": {"model": "fake-model", "mode": "completion"}}
    err = graph_error(make(nodes, ["gen -> verify"], models=completion), templates=lib)
    assert err.key == "nodes.gen.template"
    assert "chat_only.completion.j2" in str(err)


def test_unknown_endpoint() -> None:
    spec = make(
        {"gen": GEN, "verify": VER},
        ["gen -> verify"],
        models={"m": {"model": "x", "endpoints": ["lcoal"]}},
        endpoints=[{"name": "local", "base_url": "http://127.0.0.1:8000/v1"}],
    )
    err = graph_error(spec)
    assert err.key == "models.m.endpoints"
    assert "unknown endpoint 'lcoal'" in str(err)


def test_unbounded_cycle_without_a_refiner() -> None:
    nodes = {"gen": GEN, "v1": VER, "v2": VER, "select": SEL}
    edges = [
        "gen -> v1",
        "v1 -> v2",
        {"from": "v2", "to": "v1", "when": "failed"},
        {"from": "v2", "to": "select", "when": "passed"},
    ]
    err = graph_error(make(nodes, edges))
    assert err.key == "edges"
    assert "unbounded cycle through v1 → v2" in str(err)
    assert "refiner" in str(err)


def test_self_loop_without_a_refiner() -> None:
    nodes = {"gen": GEN, "v": VER, "select": SEL}
    err = graph_error(make(nodes, ["gen -> v", {"from": "v", "to": "v", "when": "failed"}, "v -> select"]))
    assert "unbounded cycle through v" in str(err)


def test_unreachable_node() -> None:
    nodes = {"gen": GEN, "verify": VER, "select": SEL, "orphan_check": VER, "orphan_fix": REF}
    edges = [
        "gen -> verify",
        "verify -> select",
        {"from": "orphan_check", "to": "orphan_fix", "when": "failed"},
        "orphan_fix -> orphan_check",
    ]
    err = graph_error(make(nodes, edges))
    assert err.key == "nodes.orphan_check"
    assert "unreachable from the entry nodes ['gen']" in str(err)


def test_non_generator_entry() -> None:
    nodes = {"gen": GEN, "verify": VER, "extra": VER, "select": SEL}
    err = graph_error(make(nodes, ["gen -> verify", "verify -> select", "extra -> select"]))
    assert err.key == "nodes.extra"
    # the kinds that may start a graph are listed (built-in kinds come and go: match loosely)
    assert re.search(r"only (\w+ and )*generators( and \w+)* and steps can start a graph", str(err))


def test_no_entry_at_all() -> None:
    nodes = {"verify": VER, "refine": REF}
    err = graph_error(make(nodes, [{"from": "verify", "to": "refine", "when": "failed"}, "refine -> verify"]))
    assert err.key == "edges" and "no entry node" in str(err)


def test_generator_after_another_node_is_allowed() -> None:
    nodes = {"gen": GEN, "gen2": GEN, "verify": VER}
    compiled = build_graph(make(nodes, ["gen -> gen2", "gen2 -> verify"]))
    assert compiled.entries == ["gen"]


def test_generator_inside_a_loop() -> None:
    nodes = {"gen": GEN, "verify": VER, "refine": REF, "gen2": GEN}
    edges = [
        "gen -> verify",
        {"from": "verify", "to": "refine", "when": "failed"},
        "refine -> gen2",
        "gen2 -> verify",
    ]
    err = graph_error(make(nodes, edges))
    assert err.key == "nodes.gen2" and "generator 'gen2' cannot sit inside the loop" in str(err)


def test_refiner_must_follow_a_verifier() -> None:
    nodes = {"gen": GEN, "refine": REF, "verify": VER}
    err = graph_error(make(nodes, ["gen -> refine", "refine -> verify"]))
    assert err.key == "nodes.refine" and "must follow a verifier" in str(err)


def test_selector_inside_a_loop() -> None:
    nodes = {"gen": GEN, "verify": VER, "refine": REF, "pick": SEL, "out": SEL}
    edges = [
        "gen -> verify",
        {"from": "verify", "to": "out", "when": "passed"},
        {"from": "verify", "to": "refine", "when": "failed"},
        "refine -> pick",
        "pick -> verify",
    ]
    err = graph_error(make(nodes, edges))
    assert err.key == "nodes.pick"
    assert "selector 'pick' cannot sit inside the loop" in str(err)


def test_graph_without_a_final_node() -> None:
    nodes = {"gen": GEN, "verify": VER, "refine": REF}
    edges = ["gen -> verify", {"from": "verify", "to": "refine", "when": "failed"}, "refine -> verify"]
    err = graph_error(make(nodes, edges))
    assert err.key == "edges" and "no final node" in str(err)


def test_template_library_search_order(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "prompts" / "mine.chat.j2").write_text("--- user ---\nfrom prompts\n")
    (tmp_path / "templates" / "mine.chat.j2").write_text("--- user ---\nfrom templates\n")
    (tmp_path / "templates" / "other.chat.j2").write_text("--- user ---\nother\n")
    spec = make(LOOP_NODES, LOOP_EDGES, templates_dir="prompts")
    lib = template_library(spec, tmp_path)
    assert lib.search_paths[:2] == [tmp_path / "prompts", tmp_path / "templates"]
    assert lib.render("mine", "chat", {})[0].content == "from prompts"  # type: ignore[union-attr]
    assert lib.has("other", "chat")
    nodes = {**LOOP_NODES, "gen": {**GEN, "template": "other"}}
    build_graph(make(nodes, LOOP_EDGES), templates=lib)
