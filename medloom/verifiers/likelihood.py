"""Log-probability verifiers: read the model's own token probabilities of a gold continuation.

Both score a *continuation* (the gold answer line, or a reference text) after a *context* (the
question, and some of the trace's steps), with the prompt log-probabilities of an OpenAI-compatible
``/v1/completions`` endpoint (``echo`` with ``max_tokens: 0``; vLLM gives them, most hosted chat APIs
do not: then the verdict says it cannot decide).

- **belief shift** (ΔSePer-style): ``log P(gold | question, steps) − log P(gold | question)``; a
  trace passes when it raises the gold answer's log-probability by at least ``threshold`` nats.
- **step likelihood** (P2S-style): for every step prefix ``k`` the mean per-token log-probability
  ``s_k`` of the continuation given the question and steps ``1..k``; step ``k``'s reward is
  ``s_k − s_{k−1}``, and a step whose reward is below ``-flag_drop`` is flagged (the flags feed the
  refiner and the ``prm`` labels).

The prefixes of one trace are scored in one batched request (a list of prompts), each prompt cached,
and every number is in the verdict (reasons) and a ``likelihood`` note.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from medloom.agents.agent import ModelRef, item_variables
from medloom.agents.context import AgentContext
from medloom.agents.templates import TemplateLibrary
from medloom.core.calls import LLMRequest, LLMResponse, TokenLogprob
from medloom.core.errors import LLMError
from medloom.core.records import Item, Step
from medloom.llm.client import LLMClient

CONTEXT_TEMPLATE = "likelihood_context"
NO_PROMPT_LOGPROBS = (
    "the endpoint returned no prompt log-probabilities; log-probability verifiers need an "
    "OpenAI-compatible /v1/completions endpoint that honours 'echo' with 'logprobs' (vLLM does; "
    "most hosted chat APIs do not)"
)


class CannotDecide(Exception):
    """The endpoint cannot give the log-probabilities a verdict needs (the message says why)."""


@dataclass(frozen=True)
class SpanScore:
    """The log-probability of a continuation after a context."""

    total: float
    tokens: int

    @property
    def mean(self) -> float:
        return self.total / self.tokens if self.tokens else 0.0

    @property
    def probability(self) -> float:
        return math.exp(self.total)


def span_score(tokens: Sequence[TokenLogprob], continuation_chars: int) -> SpanScore:
    """Sum of the log-probabilities of the tokens covering the last ``continuation_chars`` characters
    of the echoed text (a token straddling the boundary counts: it carries part of the continuation).

    Measured from the end, so a leading special token the server decodes (``<bos>``) cannot shift it.
    """
    if not tokens or any(t.offset is None for t in tokens):
        raise CannotDecide(NO_PROMPT_LOGPROBS)
    last = tokens[-1]
    assert last.offset is not None
    start = last.offset + len(last.token) - continuation_chars
    covered = [t for t in tokens if t.offset is not None and t.offset + len(t.token) > start]
    if not covered or continuation_chars <= 0:
        raise CannotDecide("the continuation to score is empty")
    return SpanScore(total=sum(t.logprob for t in covered), tokens=len(covered))


def belief_shift(with_trace: SpanScore, question_only: SpanScore) -> float:
    """How many nats the trace raises the continuation's log-probability (ΔSePer-style)."""
    return with_trace.total - question_only.total


def step_rewards(prefix_scores: Sequence[SpanScore]) -> list[float]:
    """P2S-style per-step rewards: ``s_k − s_{k−1}`` over mean per-token log-probabilities, for the
    scores of prefixes ``0..n`` (prefix 0: the question alone)."""
    means = [s.mean for s in prefix_scores]
    return [after - before for before, after in pairwise(means)]


def flagged_steps(rewards: Sequence[float], flag_drop: float) -> list[int]:
    """1-based steps whose reward is below ``-flag_drop``."""
    return [k for k, r in enumerate(rewards, start=1) if r < -flag_drop]


def gold_continuation(item: Item, reference_field: str | None = None) -> str:
    """What is scored: an optional reference text from ``item.data`` then the gold answer line."""
    if item.answer is None:
        raise CannotDecide("the item has no gold answer to score")
    answer = item.answer
    if item.options and answer in item.options:
        answer = f"{answer}) {item.options[answer]}"
    reference = str(item.data.get(reference_field, "")).strip() if reference_field else ""
    return f"{reference}\nAnswer: {answer}" if reference else f"Answer: {answer}"


class LikelihoodScorer:
    """Scores gold continuations after question-and-steps contexts with one completion model."""

    def __init__(
        self,
        client: LLMClient | None,
        model: ModelRef,
        templates: TemplateLibrary,
        *,
        name: str = "likelihood",
        template: str = CONTEXT_TEMPLATE,
    ):
        self.client, self.model, self.templates = client, model, templates
        self.name, self.template = name, template

    def context(self, item: Item, steps: list[Step]) -> str:
        rendered = self.templates.render(
            self.template, "completion", {**item_variables(item), "steps": steps}
        )
        assert isinstance(rendered, str)
        return rendered.rstrip() + "\n"

    def _call(
        self, ctx: AgentContext, request: LLMRequest, response: LLMResponse | None, error: str = ""
    ) -> None:
        ctx.call(self.name, request, response, error)

    async def score_many(self, pairs: Sequence[tuple[str, str]], ctx: AgentContext) -> list[SpanScore]:
        """Scores of each (context, continuation), all in one batched request."""
        if self.client is None:
            raise RuntimeError(f"'{self.name}' is not bound to an LLM client")
        prompts = [context + continuation for context, continuation in pairs]
        endpoints = list(self.model.endpoints) if self.model.endpoints else None
        tags = ctx.tags(self.name)
        try:
            scored = await self.client.score_prompts(
                self.model.served, prompts, endpoints=endpoints, tags=tags
            )
        except LLMError as err:
            request = LLMRequest(
                model=self.model.served, prompt=prompts[0], max_tokens=0, echo=True, logprobs=0
            )
            self._call(ctx, request, None, str(err))
            if err.status in (400, 422):
                raise CannotDecide(f"{NO_PROMPT_LOGPROBS} ({err})") from err
            raise
        out = []
        for (request, response), (_, continuation) in zip(scored, pairs, strict=True):
            self._call(ctx, request, response)
            choice = response.choices[0] if response.choices else None
            if choice is None or not choice.logprobs or not choice.text.endswith(continuation):
                raise CannotDecide(NO_PROMPT_LOGPROBS)
            out.append(span_score(choice.logprobs, len(continuation)))
        return out

    async def score(self, context: str, continuation: str, ctx: AgentContext) -> SpanScore:
        (score,) = await self.score_many([(context, continuation)], ctx)
        return score

    async def prefixes(
        self, item: Item, steps: list[Step], continuation: str, ctx: AgentContext, counts: Sequence[int]
    ) -> list[SpanScore]:
        """Scores of the continuation after the first ``k`` steps, for each ``k`` in ``counts``
        (one batched request)."""
        return await self.score_many([(self.context(item, steps[:k]), continuation) for k in counts], ctx)
