"""Adding a node kind and an op is a plugin that touches no existing file."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from medloom.agents.templates import TemplateLibrary
from medloom.core import registry as registry_module
from medloom.core.events import ItemFinished, Note
from medloom.core.records import Item
from medloom.core.registry import REGISTRY, UnknownName
from medloom.graphs.build import build_graph
from medloom.graphs.engine import Engine
from medloom.graphs.runtime import instantiate, resolve_models
from medloom.graphs.spec import GraphSpec
from medloom.runs.report import note_facets
from medloom.tui.note_view import note_label

ANSWER = "Step 1: Beta blockers control adrenergic symptoms.\nAnswer: A"


@pytest.fixture
def example_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Install tests/nodes/example_plugin.py as if a package listed it in ``medloom.plugins``."""
    plugin = EntryPoint(name="example", value="tests.nodes.example_plugin:setup", group="medloom.plugins")

    def fake_entry_points(group: str) -> list[EntryPoint]:
        return [plugin] if group == registry_module.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)
    REGISTRY.load_plugins()
    yield
    REGISTRY.remove("node", "tally")
    REGISTRY.remove("op", "shout")
    REGISTRY.remove("note", "shouted")


def spec() -> GraphSpec:
    data: dict[str, Any] = {
        "name": "plugin-test",
        "models": {"m": {"model": "fake-model"}},
        "dataset": {"path": "unused.jsonl"},
        "nodes": {
            "gen": {"type": "generator", "models": ["m"], "template": "mcq_cot", "samples": 2},
            "count": {"type": "tally", "label": "batch"},
            "loud": {"type": "step", "op": "shout", "params": {"suffix": "!!"}},
        },
        "edges": ["gen -> count", "count -> loud"],
        "output": {"columns": {"batch": "meta.batch", "shout": "meta.shout"}},
    }
    return GraphSpec.model_validate(data)


def test_without_the_plugin_the_kind_is_unknown() -> None:
    with pytest.raises(UnknownName, match="unknown node type 'tally'"):
        REGISTRY.get("node", "tally")


async def test_a_plugin_node_kind_and_op_run_in_a_graph(example_plugin: None, fake_llm: Any) -> None:
    _, client = fake_llm(lambda req: [ANSWER, ANSWER])
    graph = spec()
    compiled = build_graph(graph)
    rt = instantiate(compiled, client, await resolve_models(graph, client), TemplateLibrary())
    events: list[Any] = []
    item = Item(
        id="q1", index=0, question="Which drug?", options={"A": "Propranolol", "B": "Iodine"}, answer="A"
    )
    await Engine(rt, events.append, run_id="plugin-run").run([(0, item)])
    end = next(e for e in events if isinstance(e, ItemFinished))
    assert end.status == "kept"
    assert [(row["batch"], row["shout"]) for row in end.rows] == [(2, "A!!"), (2, "A!!")]
    assert end.stats["count"].passed == 2  # the kind counts in its own stats
    assert end.stats["loud"].traces_out == 2
    notes = [e for e in events if isinstance(e, Note)]
    assert [n.kind for n in notes] == ["shouted", "shouted"]
    assert note_facets(notes[0]) == {"A": 1}  # the report counts what the op declared
    assert str(note_label(notes[0])) == "shout A!!"  # the viewer shows what the op declared
