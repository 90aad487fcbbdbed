"""Step nodes and item sources: the extension points recipes build on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medloom.agents.context import AgentContext
from medloom.agents.templates import TemplateLibrary
from medloom.core.errors import ConfigError, GraphError
from medloom.core.records import Item, Trace
from medloom.data.sources import SourceSpec, item_source, register_source
from medloom.graphs.build import build_graph
from medloom.graphs.runtime import instantiate, resolve_models
from medloom.graphs.spec import GraphSpec
from medloom.kg.spec import KGResources
from medloom.nodes.protocol import Drop, NodeOutput
from medloom.nodes.step import BaseOp, OpParams, register_op
from medloom.testing import FakeRequest
from tests.graphs.test_engine import GEN, RIGHT, WRONG, ends, item, make_spec, run, runtime


class TagParams(OpParams):
    tag: str
    reject_topic: str | None = None


@register_op("test_tag")
class TagStep(BaseOp):
    """Adds a tag to the item's data; rejects items of one topic; drops traces answering B."""

    Params = TagParams

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        if self.params.reject_topic and item.data.get("topic") == self.params.reject_topic:
            return NodeOutput(reject=f"topic {self.params.reject_topic} is excluded", reject_code="excluded")
        tagged = item.model_copy(update={"data": {**item.data, "tag": self.params.tag}})
        keep = [
            t.model_copy(update={"meta": {**t.meta, "tag": self.params.tag}})
            for t in traces
            if t.answer != "B"
        ]
        drops = [Drop(t, "answered B", "answered B") for t in traces if t.answer == "B"]
        return NodeOutput(traces=keep, drops=drops, item=tagged)


@register_op("test_hint")
class HintStep(BaseOp):
    """An entry step that emits one trace carrying a hint for the next generator."""

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        assert traces == []
        hint = Trace(id=f"{item.id}/hint", item_id=item.id, node=self.node, text="Think about beta blockers.")
        return NodeOutput(traces=[hint])


SELECT = {"type": "selector", "method": "all"}


def step(op: str, **params: Any) -> dict[str, Any]:
    return {"type": "step", "op": op, "params": params}


def test_unknown_op_names_the_node_and_lists_ops() -> None:
    spec = make_spec({"gen": GEN, "post": step("no_such_op")}, ["gen -> post"])
    with pytest.raises(GraphError) as err:
        build_graph(spec)
    assert err.value.key == "nodes.post.op"
    assert "unknown op 'no_such_op'" in str(err.value) and "test_tag" in str(err.value)


def test_bad_params_name_the_key() -> None:
    spec = make_spec({"gen": GEN, "post": step("test_tag", tga="x")}, ["gen -> post"])
    with pytest.raises(GraphError) as err:
        build_graph(spec)
    assert err.value.key in ("nodes.post.params.tag", "nodes.post.params.tga")


async def test_step_updates_item_drops_traces_and_fills_columns(fake_llm) -> None:
    answers = iter([RIGHT, WRONG])
    _server, client = fake_llm(lambda req: next(answers))
    spec = make_spec(
        {"gen": {**GEN, "temperatures": [0.1, 0.2]}, "post": step("test_tag", tag="cardio"), "out": SELECT},
        ["gen -> post", "post -> out"],
        output={"columns": {"tag": "data.tag", "trace_tag": "meta.tag"}},
    )
    events = await run(await runtime(spec, client), [item(1)], concurrency=1)
    end = ends(events)["q1"]
    assert end.status == "kept"
    (row,) = end.rows
    assert (row["predicted"], row["tag"], row["trace_tag"]) == ("A", "cardio", "cardio")
    assert end.stats["post"].dropped == 1 and end.stats["post"].traces_in == 2


async def test_step_rejects_the_whole_item(fake_llm) -> None:
    _server, client = fake_llm(lambda req: RIGHT)
    spec = make_spec(
        {"gen": GEN, "post": step("test_tag", tag="x", reject_topic="endocrine"), "out": SELECT},
        ["gen -> post", "post -> out"],
    )
    end = ends(await run(await runtime(spec, client), [item(1)]))["q1"]
    assert (end.status, end.node, end.reason_code) == ("rejected", "post", "excluded")
    assert end.reason == "topic endocrine is excluded"


async def test_entry_step_feeds_a_generator_its_inputs(fake_llm, tmp_path: Path) -> None:
    (tmp_path / "hinted.chat.j2").write_text(
        "{% for t in inputs %}Hint: {{ t.text }}\n{% endfor %}Question: {{ question }}\n"
    )
    prompts: list[str] = []

    def reply(req: FakeRequest) -> str:
        prompts.append(req.prompt_text)
        return RIGHT

    _server, client = fake_llm(reply)
    spec = make_spec(
        {"hint": step("test_hint"), "gen": {**GEN, "template": "hinted"}, "out": SELECT},
        ["hint -> gen", "gen -> out"],
    )
    templates = TemplateLibrary([tmp_path])
    rt = instantiate(
        build_graph(spec, templates=templates), client, await resolve_models(spec, client), templates
    )
    end = ends(await run(rt, [item(1)]))["q1"]
    assert end.status == "kept"
    assert len(prompts) == 1 and "Hint: Think about beta blockers." in prompts[0]


@register_source("test_counting")
class CountingSource:
    def __init__(self, source: SourceSpec, resources: KGResources, base_dir: Path | None):
        self.n = int(source.params["n"])

    def count(self) -> int | None:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, Item | Exception]]:
        for i in range(self.n):
            yield i, item(i)


def source_spec(op: str, **extra: Any) -> GraphSpec:
    return GraphSpec.model_validate(
        {
            "name": "s",
            "models": {"m": {}},
            "source": {"op": op, "params": {"n": 5}, **extra},
            "nodes": {"gen": GEN},
        }
    )


def test_source_makes_items_up_to_its_limit() -> None:
    src = item_source(source_spec("test_counting", limit=3))
    assert src.count() == 3
    assert [i for i, _ in src] == [0, 1, 2]


def test_unknown_source_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        item_source(source_spec("nope"))
    assert err.value.key == "source.op" and "test_counting" in str(err.value)


def test_dataset_and_source_are_exclusive() -> None:
    with pytest.raises(ValueError, match="exactly one of 'dataset'"):
        GraphSpec.model_validate(
            {
                "name": "s",
                "models": {"m": {}},
                "nodes": {"gen": GEN},
                "dataset": {"path": "x.jsonl"},
                "source": {"op": "test_counting"},
            }
        )
