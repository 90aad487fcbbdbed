"""A tool-using agent: a ReAct loop of model turns and tool calls, with bounds.

Two protocols, so any endpoint works:

- ``chat``: native tool calls (the request's ``tools``, the answer's ``tool_calls``; vLLM needs
  ``--enable-auto-tool-choice --tool-call-parser NAME``). A chat answer that writes the text
  protocol's ``<tool_call>`` instead is understood too. A turn without tool calls is final.
- ``completion``: a text protocol for base models. The model writes ``<think>…</think>``, then
  ``<tool_call>{"name": …, "arguments": {…}}</tool_call>`` (generation stops there, the tool runs
  and ``<tool_response>…</tool_response>`` is appended) or ``<answer>…</answer>``.

The loop stops on a final answer or a bound (``max_turns``, ``max_tool_calls``, a token budget
shared by the item's samples). Every turn, call and result is a typed trajectory event, and the
conversation is kept in the OpenAI chat schema (``Trace.meta["messages"]``) for training data.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from medloom.agents.agent import Agent
from medloom.agents.context import AgentContext
from medloom.agents.tools.base import ToolBox, ToolResult
from medloom.core.calls import ChatMessage, LLMRequest, LLMResponse, ToolCall
from medloom.core.errors import LLMError
from medloom.core.events import AgentTurn, ToolCalled, ToolReturned
from medloom.core.records import Item, Step, Trace

StopReason = Literal["answer", "max_turns", "max_tool_calls", "token_budget", "empty", "llm_error"]

TEXT_STOPS = ("</tool_call>", "</answer>", "<tool_response>")
"""Where a completion turn ends: after a tool call, after the answer, or before the model
invents a tool's response."""

_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_ANSWER = re.compile(r"<answer>\s*(.*?)\s*(?:</answer>|$)", re.S)


@dataclass(frozen=True)
class Bounds:
    max_turns: int = 8
    max_tool_calls: int = 8
    max_tokens_per_item: int | None = None
    """Prompt and completion tokens of all of an item's samples; None: no budget."""


@dataclass
class TokenBudget:
    """Tokens an item's samples spent together."""

    limit: int | None
    spent: int = 0

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.spent >= self.limit


@dataclass
class Episode:
    """One conversation in progress."""

    trace_id: str
    messages: list[ChatMessage]
    prompt: str = ""
    """Completion protocol: the text so far."""
    turns: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    answer: str | None = None
    stop: StopReason = "max_turns"
    finish_reason: str | None = None
    steps: list[str] = field(default_factory=list)


def parse_text_turn(text: str) -> tuple[str, list[ToolCall], str | None, list[str]]:
    """Content before any call, the calls, the answer, and errors of calls that are not JSON."""
    calls: list[ToolCall] = []
    errors: list[str] = []
    for raw in _TOOL_CALL.findall(text):
        call_id = f"call_{uuid.uuid4().hex[:8]}"
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or not isinstance(body.get("name"), str):
                raise ValueError("needs a 'name'")
            arguments = body.get("arguments", {})
            args_text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
            calls.append(ToolCall(id=call_id, name=body["name"], arguments=args_text))
        except ValueError as exc:
            calls.append(ToolCall(id=call_id, name="", arguments=raw))
            errors.append(
                f'error: the tool call is not valid JSON ({exc}); write <tool_call>{{"name": "TOOL", '
                '"arguments": {...}}</tool_call>'
            )
    answer_match = _ANSWER.search(text)
    answer = answer_match.group(1).strip() if answer_match else None
    content = text.split("<tool_call>", 1)[0].strip() if calls else text.strip()
    return content, calls, answer or None, errors


def final_answer(text: str) -> str | None:
    """A chat turn's answer: inside ``<answer>`` when present, else the text's last line."""
    match = _ANSWER.search(text)
    if match:
        return match.group(1).strip() or None
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else None


class ToolAgent:
    """Runs episodes of one agent (model, template, sampling) with a toolbox."""

    def __init__(self, agent: Agent, tools: ToolBox, bounds: Bounds):
        self.agent = agent
        self.tools = tools
        self.bounds = bounds

    @property
    def mode(self) -> Literal["chat", "completion"]:
        return self.agent.model.mode

    async def run(
        self,
        item: Item,
        variables: dict[str, Any],
        ctx: AgentContext,
        *,
        budget: TokenBudget,
        temperature: float | None = None,
        sample_index: int = 0,
        clean_variables: dict[str, Any] | None = None,
    ) -> Trace:
        """One episode on ``item``: a trace whose ``answer`` is the final answer (None if a bound
        stopped it first) and whose ``meta`` holds the conversation and its counts.

        ``clean_variables`` (the variables without guidance the trajectory must not show) render
        the system and user turns a training row should start with (``meta.clean_head``)."""
        tool_vars = {"tools": self.tools.specs(), "tool_names": list(self.tools.tools)}
        variables = {**variables, **tool_vars}
        first, _ = self.agent.build_request(variables, temperature=temperature)
        if sample_index:  # samples of one item differ even at one temperature (and in the cache)
            first = first.model_copy(update={"seed": (first.seed or 0) + sample_index})
        trace_id = f"{item.id}/{ctx.node}/{sample_index}-{uuid.uuid4().hex[:6]}"
        if first.messages is not None:
            episode = Episode(trace_id, list(first.messages))
        else:
            episode = Episode(trace_id, self._head_messages(variables, first), prompt=first.prompt or "")
        head_turns = len(episode.messages)
        clean_head: list[ChatMessage] | None = None
        if clean_variables is not None:
            clean_vars = {**clean_variables, **tool_vars}
            clean_first, _ = self.agent.build_request(clean_vars, temperature=temperature)
            clean_head = (
                list(clean_first.messages)
                if clean_first.messages is not None
                else self._head_messages(clean_vars, clean_first)
            )
        while True:
            if episode.turns >= self.bounds.max_turns:
                episode.stop = "max_turns"
                break
            if budget.exhausted:
                episode.stop = "token_budget"
                break
            try:
                response = await self._call(self._request(first, episode), ctx)
            except LLMError:
                episode.stop = "llm_error"
                break
            budget.spent += response.usage.total_tokens
            episode.turns += 1
            if await self._turn(episode, response, ctx):
                break
        trace = self._trace(item, episode, temperature, sample_index)
        trace.meta["head_turns"] = head_turns
        if clean_head is not None:
            trace.meta["clean_head"] = [m.wire() for m in clean_head]
        return trace

    def _head_messages(self, variables: dict[str, Any], first: LLMRequest) -> list[ChatMessage]:
        """Completion protocol: the conversation's system and user turns, from the template's
        chat variant when there is one (else the whole prompt as the user turn)."""
        library, name = self.agent.templates, self.agent.template
        if library.has(name, "chat"):
            rendered = library.render(name, "chat", variables)
            if isinstance(rendered, list):
                return rendered
        return [ChatMessage(role="user", content=first.prompt or "")]

    def _request(self, first: LLMRequest, episode: Episode) -> LLMRequest:
        if self.mode == "chat":
            tools = tuple(self.tools.specs()) or None
            return first.model_copy(update={"messages": tuple(episode.messages), "tools": tools})
        stop = tuple(dict.fromkeys((*(self.agent.sampling.stop or ()), *TEXT_STOPS)))
        return first.model_copy(update={"prompt": episode.prompt, "stop": stop})

    async def _call(self, request: LLMRequest, ctx: AgentContext) -> LLMResponse:
        if self.agent.client is None:
            raise RuntimeError(f"agent '{self.agent.name}' is not bound to an LLM client")
        endpoints = list(self.agent.model.endpoints) if self.agent.model.endpoints else None
        try:
            response = await self.agent.client.generate(
                request, endpoints=endpoints, tags=self.agent.tags(ctx)
            )
        except LLMError as err:
            ctx.call(self.agent.name, request, error=str(err))
            raise
        ctx.call(self.agent.name, request, response)
        return response

    async def _turn(self, episode: Episode, response: LLMResponse, ctx: AgentContext) -> bool:
        """Apply one model turn; True when the episode ends."""
        choice = response.choices[0] if response.choices else None
        text = choice.text if choice else ""
        episode.finish_reason = choice.finish_reason if choice else None
        native = list(choice.tool_calls or []) if choice else []
        # The completion prompt opens each turn's <think>: the recorded turn gets it back.
        opened = self.mode == "completion" and episode.prompt.rstrip().endswith("<think>")
        shown = f"<think>{text.lstrip()}" if opened and "<think>" not in text else text
        content, calls, answer, parse_errors = parse_text_turn(shown)
        if native:
            calls, parse_errors, content, answer = native, [], text.strip(), None
        elif self.mode == "chat" and not calls:
            answer = final_answer(text)
        turn = episode.turns
        ctx.send(
            AgentTurn(
                item_id=ctx.item_id, attempt=ctx.attempt, node=ctx.node, trace_id=episode.trace_id,
                turn=turn, content=content, tool_calls=calls, answer=None if calls else answer,
            )
        )  # fmt: skip
        if content:
            episode.steps.append(content)
        if self.mode == "completion":
            episode.prompt += text
        if not calls:
            closed = self.mode == "completion" and answer is not None and "</answer>" not in text
            if closed:
                episode.prompt += "</answer>"
            said = shown.strip() + ("</answer>" if closed else "")
            episode.messages.append(ChatMessage(role="assistant", content=said))
            if answer is not None:
                episode.answer, episode.stop = answer, "answer"
                return True
            if not text.strip():
                episode.stop = "empty"
                return True
            return False  # reasoning only: the next turn continues it
        episode.messages.append(ChatMessage(role="assistant", content=content, tool_calls=tuple(calls)))
        if self.mode == "completion":
            episode.prompt = (
                episode.prompt.rstrip() + "\n</tool_call>\n" if "</tool_call>" not in text else episode.prompt
            )
        errors = iter(parse_errors)
        stop = False
        for call in calls:
            if episode.tool_calls >= self.bounds.max_tool_calls:
                result = ToolResult(
                    call, f"error: tool call limit ({self.bounds.max_tool_calls}) reached", True
                )
                stop = True
            elif call.name == "" and parse_errors:
                result = ToolResult(call, next(errors, "error: invalid tool call"), True)
            else:
                ctx.send(ToolCalled(item_id=ctx.item_id, attempt=ctx.attempt, node=ctx.node,
                                    trace_id=episode.trace_id, turn=turn, call=call))  # fmt: skip
                started = time.perf_counter()
                result = await self.tools.call(call)
                episode.tool_calls += 1
                ctx.send(
                    ToolReturned(
                        item_id=ctx.item_id, attempt=ctx.attempt, node=ctx.node,
                        trace_id=episode.trace_id, turn=turn, call_id=call.id, name=call.name,
                        content=result.content, error=result.error, latency_s=time.perf_counter() - started,
                    )
                )  # fmt: skip
            episode.tool_errors += int(result.error)
            episode.messages.append(ChatMessage(role="tool", content=result.content, tool_call_id=call.id))
            if self.mode == "completion":
                episode.prompt += f"<tool_response>\n{result.content}\n</tool_response>\n"
        if stop:
            episode.stop = "max_tool_calls"
        return stop

    def _trace(self, item: Item, episode: Episode, temperature: float | None, sample_index: int) -> Trace:
        transcript = _transcript(episode.messages)
        return Trace(
            id=episode.trace_id,
            item_id=item.id,
            node=self.agent.name,
            model=self.agent.model.alias,
            text=transcript,
            steps=[Step(index=i, text=s) for i, s in enumerate(episode.steps, 1)],
            answer=episode.answer,
            parse_error=None if episode.answer is not None else f"no final answer ({episode.stop})",
            finish_reason=episode.finish_reason,
            temperature=temperature,
            sample_index=sample_index,
            meta={
                "protocol": self.mode,
                "messages": [m.wire() for m in episode.messages],
                "tools": self.tools.specs(),
                "turns": episode.turns,
                "tool_calls": episode.tool_calls,
                "tool_errors": episode.tool_errors,
                "stop_reason": episode.stop,
            },
        )


def _transcript(messages: list[ChatMessage]) -> str:
    """The conversation as readable text (the trace's ``text``)."""
    lines: list[str] = []
    for m in messages:
        if m.role == "tool":
            lines.append(f"[tool {m.tool_call_id}] {m.content}")
            continue
        if m.content:
            lines.append(f"[{m.role}] {m.content}")
        for call in m.tool_calls or ():
            lines.append(f"[{m.role} calls {call.name}] {call.arguments}")
    return "\n".join(lines)
