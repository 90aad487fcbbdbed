"""Typed LLM requests and responses, independent of any wire format."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ToolCall(BaseModel):
    """One function call a model asked for (OpenAI ``tool_calls`` entry); ``arguments`` is the
    raw JSON text the model wrote (it may be invalid: the tool runner reports that back)."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: str = "{}"

    def wire(self) -> dict[str, Any]:
        """The OpenAI chat schema of this call."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


class ChatMessage(BaseModel):
    """One chat turn: ``tool_calls`` on an assistant turn that calls tools, ``tool_call_id`` on
    the ``tool`` turn that answers one."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: tuple[ToolCall, ...] | None = None
    tool_call_id: str | None = None

    def wire(self) -> dict[str, Any]:
        """The OpenAI chat schema of this message (tool fields only when present)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [c.wire() for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


class LLMRequest(BaseModel):
    """A chat (``messages``) or completion (``prompt``) request to one model."""

    model_config = ConfigDict(frozen=True)

    model: str
    messages: tuple[ChatMessage, ...] | None = None
    prompt: str | None = None
    temperature: float = 0.0
    top_p: float | None = None
    max_tokens: int = 512
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1)
    logprobs: int | None = Field(default=None, ge=0, le=20)
    response_schema: dict[str, Any] | None = None
    tools: tuple[dict[str, Any], ...] | None = None
    """Function tools offered in chat mode (OpenAI ``tools`` entries)."""
    echo: bool = False
    """Completion only: return the prompt with its token log-probabilities (vLLM, legacy OpenAI);
    with ``max_tokens=0`` the prompt is scored without generating."""

    @model_validator(mode="after")
    def _one_of_prompt_or_messages(self) -> LLMRequest:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'messages' (chat) or 'prompt' (completion)")
        if self.echo and self.prompt is None:
            raise ValueError(
                "'echo' (prompt log-probabilities) needs a completion 'prompt', not chat messages"
            )
        return self

    @property
    def mode(self) -> Literal["chat", "completion"]:
        return "chat" if self.messages is not None else "completion"

    def cache_key(self, sample_index: int) -> str:
        """Content address of sample ``sample_index`` of this request (``n`` is not part of it)."""
        body = self.model_dump(mode="json", exclude={"n"} | (set() if self.echo else {"echo"}))
        # Tool fields join the key only when used, so keys of requests without tools are unchanged.
        if body.get("tools") is None:
            body.pop("tools", None)
        for message in body.get("messages") or []:
            for name in ("tool_calls", "tool_call_id"):
                if message.get(name) is None:
                    message.pop(name, None)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        return f"{digest}:{sample_index}"


class Usage(BaseModel):
    """Token counts of one call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    offset: int | None = None
    """Where the token starts in the choice's text (completions' ``text_offset``)."""


class Choice(BaseModel):
    """One sample of a response."""

    index: int
    text: str
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] | None = None
    cache_hit: bool = False
    tool_calls: list[ToolCall] | None = None
    """Native tool calls of a chat answer (None when it called none)."""


class LLMResponse(BaseModel):
    """The samples of one request, with where and how they were obtained."""

    model: str
    choices: list[Choice]
    usage: Usage = Field(default_factory=Usage)
    """Tokens paid for by this request (cache hits cost nothing)."""
    latency_s: float = 0.0
    endpoint: str | None = None
    attempts: int = 1
    errors: list[str] = Field(default_factory=list)
    """Failures that were retried before this response was obtained."""

    @property
    def cache_hit(self) -> bool:
        return bool(self.choices) and all(c.cache_hit for c in self.choices)

    @property
    def text(self) -> str:
        return self.choices[0].text if self.choices else ""


class EmbeddingResponse(BaseModel):
    """Embeddings of several texts, in input order, with where and how they were obtained."""

    model: str
    vectors: list[list[float]] = Field(default_factory=list, exclude=True)
    """Not serialised: a trajectory keeps the texts and the usage, the cache keeps the vectors."""
    usage: Usage = Field(default_factory=Usage)
    """Tokens paid for (cached texts cost nothing)."""
    inputs: int = 0
    """How many texts were embedded."""
    cached: int = 0
    """How many of the texts came from the cache."""
    latency_s: float = 0.0
    endpoint: str | None = None
    attempts: int = 0
    errors: list[str] = Field(default_factory=list)

    @property
    def cache_hit(self) -> bool:
        return self.inputs > 0 and self.cached == self.inputs
