"""The MedResearcher-R1 recipe (configs/medresearcher.yaml) end to end with scripted replies on
the in-process mock endpoint: the agent is guided by masked path hints, rejection sampling keeps
the trajectories that earn it, the rewrite removes the guidance, and the rows are chat
conversations with tool calls that ``datasets`` loads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import datasets

import medloom
from medloom.data.sources import item_source
from medloom.graphs.loader import load_spec
from medloom.llm.transport import MockTransport, TransportRequest, TransportResponse
from tests.helpers import REPO

RECIPE = REPO / "configs" / "medresearcher.yaml"


def _golds() -> dict[frozenset[str], str]:
    """Each source item's option texts → its gold answer text."""
    spec = load_spec(RECIPE)
    found: dict[frozenset[str], str] = {}
    for _, item in item_source(spec, RECIPE.parent):
        assert not isinstance(item, Exception)
        found[frozenset((item.options or {}).values())] = item.gold_text or ""
    return found


class Script:
    """The agent calls find_entity, then search (saying it follows the hint), then answers: with
    the gold answer at temperature 0.7, with a wrong option at 1.0."""

    def __init__(self) -> None:
        self.golds = _golds()
        self.nodes: list[str] = []

    def __call__(self, request: TransportRequest) -> TransportResponse:
        if request.path == "/models":
            return TransportResponse.of_json({"data": [{"id": "scripted"}]})
        body = dict(request.body or {})
        node = request.tags.get("node", "")
        self.nodes.append(node)
        if node == "answer":
            text = self._agent_turn(body["prompt"], body["temperature"])
        elif node == "rewrite":
            text = " I search the passages about the linked entities."
        else:
            text = " What is it?"  # unusable drafts: the question built from the path is asked
        n = body.get("n", 1)
        choices = [{"index": i, "text": text, "finish_reason": "stop"} for i in range(n)]
        return TransportResponse.of_json(
            {"choices": choices, "usage": {"prompt_tokens": 50, "completion_tokens": 9}}
        )

    def _agent_turn(self, prompt: str, temperature: float) -> str:
        mine = prompt.rsplit("\nQuestion: ", 1)[1]
        options = dict(re.findall(r"^([A-E])\) (.+)$", mine, re.M))
        turn = mine.count("<tool_response>")
        if turn == 0:
            call = {"name": "find_entity", "arguments": {"name": "cancer"}}
            return f"I start from the question.</think>\n<tool_call>{json.dumps(call)}"
        if turn == 1:
            return (
                "<think>The hint ([MASK1], treats, [MASK2]) says to follow the guidance.</think>\n"
                '<tool_call>{"name": "search", "arguments": {"query": "treats"}}'
            )
        gold = self.golds[frozenset(options.values())]
        answer = gold if temperature < 0.9 else next(t for t in options.values() if t != gold)
        return f"<think>I have it.</think>\n<answer>{answer}"


def run_recipe(runs_dir: Path) -> medloom.RunResult:
    return medloom.run(
        str(RECIPE),
        endpoints=["http://mock/v1"],
        limit=3,
        runs_dir=runs_dir,
        transport=MockTransport(Script()),
    )


def test_recipe_keeps_valid_hint_free_tool_trajectories(tmp_path: Path) -> None:
    result = run_recipe(tmp_path)
    report = result.report
    assert report.items == 3 and report.kept == 3 and report.failed == 0
    # 4 samples per item, 2 at each temperature: the wrong answers fail the answer filter only
    assert len(result.dataset) == 6
    rows = result.dataset
    for row in rows:
        messages: list[dict[str, Any]] = row["messages"]  # native columns: lists of dicts
        tools: list[dict[str, Any]] = row["tools"]
        assert [m["role"] for m in messages] == [
            "system",
            "user",
            "assistant",
            "tool",
            "assistant",
            "tool",
            "assistant",
        ]
        assert messages[2]["tool_calls"][0]["function"]["name"] == "find_entity"
        assert messages[3]["tool_call_id"] == messages[2]["tool_calls"][0]["id"]
        assert {t["function"]["name"] for t in tools} >= {"find_entity", "neighbours", "search"}
        every_text = "\n".join(m["content"] or "" for m in messages)
        assert (
            "MASK" not in every_text
            and "hint" not in every_text.lower()
            and "guidance" not in every_text.lower()
        )
        assert messages[4]["content"] == "I search the passages about the linked entities."
        assert row["turns"] == 3 and row["tool_calls"] == 2
    assert rows[0]["path_hints"][0].startswith("([MASK")
    # the saved dataset loads back with the conversations intact
    loaded = datasets.load_from_disk(str(result.run_dir / "dataset"))
    assert loaded[0]["messages"][2]["tool_calls"][0]["function"]["name"] == "find_entity"


def test_sft_export_of_tool_trajectories_fits_the_embedded_chat_template(
    tmp_path: Path, prepared_model_dir: Path
) -> None:
    """The ``sft`` export keeps the tool calls, and the embedded model's tokenizer renders the rows
    with their tools (the template medloom ships: tool calls in its text protocol)."""
    from transformers import AutoTokenizer

    result = run_recipe(tmp_path)
    rows = medloom.training_dataset(result.run_dir, "sft")
    assert len(rows) == 6
    tokenizer = AutoTokenizer.from_pretrained(str(prepared_model_dir))
    template = (REPO / "medloom" / "serving" / "chat_template.jinja").read_text()
    for row in rows:
        messages = [{k: v for k, v in m.items() if v is not None} for m in row["messages"]]
        text = tokenizer.apply_chat_template(
            messages, tools=json.loads(row["tools"]), chat_template=template, tokenize=False
        )
        assert text.count('<tool_call>{"name": "find_entity"') == 1
        assert text.count("<tool_response>") == 2 and '"name": "search"' in text
        assert "MASK" not in text
