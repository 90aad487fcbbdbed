"""An agent: a model binding, a prompt template, sampling settings and a parser."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medloom.agents.context import AgentContext
from medloom.agents.templates import TemplateLibrary
from medloom.core.calls import ChatMessage, LLMRequest, LLMResponse
from medloom.core.errors import LLMError
from medloom.core.records import Item, Trace
from medloom.llm.client import LLMClient

Mode = Literal["chat", "completion"]


class ModelRef(BaseModel):
    """A model as a recipe names it, bound to the served name and its endpoints."""

    model_config = ConfigDict(frozen=True)

    alias: str
    served: str
    endpoints: tuple[str, ...] | None = None
    mode: Mode = "chat"


class Sampling(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = 0.0
    top_p: float | None = None
    max_tokens: int = Field(default=384, ge=1)
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    logprobs: int | None = None


COMPLETION_STOP = ("###", "\nQuestion:")


class Agent:
    """Renders its template, calls its model and reports every call to the context."""

    def __init__(
        self,
        name: str,
        model: ModelRef,
        template: str,
        client: LLMClient | None,
        *,
        sampling: Sampling | None = None,
        templates: TemplateLibrary | None = None,
    ):
        self.name = name
        self.model = model
        self.template = template
        self.client = client
        self.sampling = sampling or Sampling()
        self.templates = templates or TemplateLibrary()

    def build_request(
        self,
        variables: dict[str, Any],
        *,
        n: int = 1,
        temperature: float | None = None,
        schema: dict[str, Any] | None = None,
    ) -> tuple[LLMRequest, str]:
        """The request and the response prefix (a completion prompt's unfinished last line)."""
        rendered = self.templates.render(self.template, self.model.mode, variables)
        s = self.sampling
        common: dict[str, Any] = {
            "model": self.model.served,
            "temperature": s.temperature if temperature is None else temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "seed": s.seed,
            "n": n,
            "logprobs": s.logprobs,
            "response_schema": schema,
        }
        if isinstance(rendered, str):
            prefix = rendered.rsplit("\n", 1)[-1]
            stop = s.stop if s.stop is not None else COMPLETION_STOP
            return LLMRequest(prompt=rendered, stop=stop, **common), prefix
        messages: tuple[ChatMessage, ...] = tuple(rendered)
        return LLMRequest(messages=messages, stop=s.stop, **common), ""

    def tags(self, ctx: AgentContext) -> dict[str, str]:
        """Who calls, for in-process transports (fakes route on it) and sticky routing (the
        ``item``); never sent to a server."""
        return ctx.tags(self.name)

    async def call(
        self,
        variables: dict[str, Any],
        ctx: AgentContext | None = None,
        *,
        n: int = 1,
        temperature: float | None = None,
        schema: dict[str, Any] | None = None,
    ) -> tuple[list[str], LLMResponse]:
        """Sample ``n`` outputs; returns their full texts (prefix included) and the response."""
        ctx = ctx or AgentContext()
        if self.client is None:
            raise RuntimeError(f"agent '{self.name}' is not bound to an LLM client")
        request, prefix = self.build_request(variables, n=n, temperature=temperature, schema=schema)
        endpoints = list(self.model.endpoints) if self.model.endpoints else None
        try:
            response = await self.client.generate(request, endpoints=endpoints, tags=self.tags(ctx))
        except LLMError as err:
            ctx.call(self.name, request, error=str(err))
            raise
        ctx.call(self.name, request, response)
        texts = [_join(prefix, c.text) for c in response.choices]
        return texts, response


def _join(prefix: str, text: str) -> str:
    if not prefix:
        return text.strip()
    sep = "" if not text or text[0].isspace() else " "
    return f"{prefix}{sep}{text}".strip()


def item_variables(item: Item) -> dict[str, Any]:
    """Template variables of an item."""
    return {
        "item": item,
        "question": item.question,
        "options": item.options or {},
        "gold": item.answer,
        "gold_text": item.gold_text,
        "data": item.data,
    }


def trace_variables(trace: Trace) -> dict[str, Any]:
    """Template variables of a trace."""
    return {
        "trace": trace,
        "steps": trace.steps,
        "answer": trace.answer or "(none)",
        "reasoning": trace.text,
    }
