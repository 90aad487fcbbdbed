"""An LLM verifier: judges a trace against the gold answer, with per-step flags and reasons."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from medloom.agents.agent import Agent, item_variables, trace_variables
from medloom.agents.context import AgentContext
from medloom.agents.parsing import parse_json_object
from medloom.core.records import Item, Trace, Verdict


class JudgeOutput(BaseModel):
    """What a judge must say; parsed from JSON (structured output) or from labelled lines."""

    verdict: str
    score: float | None = Field(default=None, ge=0, le=5)
    wrong_steps: list[int] = Field(default_factory=list)
    reason: str = ""

    @field_validator("verdict")
    @classmethod
    def _known(cls, value: str) -> str:
        word = value.strip().strip("*").split()[0].lower() if value.strip() else ""
        if word.startswith("correct"):
            return "Correct"
        if word.startswith(("error", "incorrect", "wrong")):
            return "Error"
        raise ValueError(f"verdict must be Correct or Error, got {value!r}")

    @field_validator("wrong_steps", mode="before")
    @classmethod
    def _steps(cls, value: Any) -> list[int]:
        if value is None:
            return []
        if isinstance(value, int):
            return [value]
        if isinstance(value, str):
            return [int(n) for n in re.findall(r"\d+", value)]
        return [int(v) for v in value]

    @property
    def passed(self) -> bool:
        return self.verdict == "Correct"


JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["Correct", "Error"]},
        "score": {"type": "integer", "minimum": 0, "maximum": 5},
        "wrong_steps": {"type": "array", "items": {"type": "integer"}},
        "reason": {"type": "string"},
    },
    "required": ["verdict", "score", "wrong_steps", "reason"],
}

_LINE = re.compile(r"^\s*(verdict|score|wrong steps|flagged steps|reason)\s*[:\-]\s*(.*)$", re.I | re.M)


def parse_judge(text: str) -> JudgeOutput | None:
    """JSON first, then ``Verdict: / Score: / Wrong steps: / Reason:`` lines; None if neither."""
    obj = parse_json_object(text)
    if obj is not None:
        try:
            return JudgeOutput.model_validate(obj)
        except ValidationError:
            pass
    fields: dict[str, Any] = {}
    for key, value in _LINE.findall(text):
        key = key.lower()
        # The first line of each kind wins ("wrong steps" is stored as "wrong_steps").
        if ("wrong_steps" if key in ("wrong steps", "flagged steps") else key) in fields:
            continue
        if key == "verdict":
            fields["verdict"] = value
        elif key == "score":
            m = re.search(r"\d+(?:\.\d+)?", value)
            if m:
                fields["score"] = min(5.0, float(m.group(0)))
        elif key in ("wrong steps", "flagged steps"):
            fields["wrong_steps"] = value
        elif key == "reason" and "reason" not in fields:
            fields["reason"] = value.strip()
    if "verdict" not in fields:
        return None
    try:
        return JudgeOutput.model_validate(fields)
    except ValidationError:
        return None


class LLMJudge:
    """Asks an agent for a Correct/Error verdict with a 0–5 score, wrong steps and a reason."""

    def __init__(self, agent: Agent, *, parse_retries: int = 1, structured: bool = True):
        self.agent = agent
        self.name = agent.name
        self.parse_retries = parse_retries
        self.structured = structured

    async def verify(self, item: Item, trace: Trace, ctx: AgentContext | None = None) -> Verdict:
        ctx = ctx or AgentContext(item_id=item.id)
        variables = {**item_variables(item), **trace_variables(trace)}
        schema = JUDGE_SCHEMA if self.structured else None
        texts, _ = await self.agent.call(variables, ctx, schema=schema)
        parsed = parse_judge(texts[0]) if texts else None
        if parsed is None and self.parse_retries > 0:
            retry_t = max(0.7, self.agent.sampling.temperature)
            texts, _ = await self.agent.call(
                variables, ctx, n=self.parse_retries, temperature=retry_t, schema=schema
            )
            parsed = next((p for p in map(parse_judge, texts) if p is not None), None)
        if parsed is None:
            sample = (texts[0] if texts else "").strip().replace("\n", " ")[:160]
            return Verdict(
                passed=False,
                reasons=[f"judge output unparseable: {sample!r}"],
                verifier=self.name,
                node=ctx.node,
            )
        known = {s.index for s in trace.steps}
        flags = {i: parsed.reason or "marked wrong by the judge" for i in parsed.wrong_steps if i in known}
        passed = parsed.passed and not flags
        reasons = [parsed.reason] if parsed.reason else []
        if parsed.passed and flags:
            reasons.append("judged correct but flagged steps; treated as an error")
        return Verdict(
            passed=passed,
            score=parsed.score,
            step_flags=flags,
            reasons=reasons or [parsed.verdict],
            verifier=self.name,
            node=ctx.node,
        )
