"""MedFuzz's attacker and guard: rewrite an MCQ to violate a benchmark assumption, then check that
the gold answer still holds.

``op: medfuzz_attack`` starts an item (no incoming edge). The item is one benchmark question under
attack, as ``medloom eval --attack medfuzz`` writes them each turn: the original ``question``,
``options`` and gold ``answer``, and ``data.history`` (the earlier rewrites of this question with
the target's answers, so the attacker can adapt). The attacker (the node's model and template,
``medfuzz_attack``) writes a rewrite; the guard (``guard_template``, ``medfuzz_guard``, on
``guard_model`` or the node's model, greedy) answers ``Valid: yes|no``; anything else is
undecided, which fails the guard. The rewrite is a trace with the guard's verdict, and a
``medfuzz_rewrite`` note records turn, rewrite, guard decision and reply. With
``data.guard_control`` (another benchmark question) the guard also judges that question against
this item's options and gold answer, where the right reply is no: ``control_guard`` in the note
measures the guard's bias toward yes and decides nothing.
"""

from __future__ import annotations

import re
from typing import Any

from medloom.agents.agent import Sampling, item_variables
from medloom.agents.context import AgentContext
from medloom.core.notes import NoteSchema, register_note
from medloom.core.records import Item, Trace, Verdict
from medloom.nodes.protocol import NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op
from medloom.ops.reasoning_recall import parse_decision

MEDFUZZ_REWRITE = "medfuzz_rewrite"

_LABEL = re.compile(r"^\s*(?:rewritten question|question)\s*:\s*", re.I)


def clean_rewrite(text: str) -> str:
    """The rewritten question without its label, a leading bare option letter (a base model often
    repeats the correct answer first) or any options the attacker repeated after it."""
    body = _LABEL.sub("", text.strip())
    lines = body.splitlines()
    while lines and re.fullmatch(r"\s*[A-J]\)?\.?\s*", lines[0]):
        lines.pop(0)
    kept: list[str] = []
    for line in lines:
        if re.match(r"^\s*[A-J]\)\s", line) or re.match(r"^\s*correct answer\s*:", line, re.I):
            break
        kept.append(line)
    return "\n".join(kept).strip()


class MedfuzzParams(OpParams):
    guard_template: str = "medfuzz_guard"
    guard_model: str | None = None
    """Model alias of the guard (default: the node's model)."""
    guard_max_tokens: int = 48


@register_op("medfuzz_attack")
class MedfuzzAttack(BaseOp):
    """One attacker turn on one question, checked by the guard."""

    Params = MedfuzzParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        self.attacker = build.agent(name=f"{build.node}:attacker")
        self.guard = build.agent(
            self.params.guard_template,
            model=self.params.guard_model,
            sampling=Sampling(temperature=0.0, max_tokens=self.params.guard_max_tokens),
            name=f"{build.node}:guard",
        )

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        history = list(item.data.get("history") or [])
        turn = len(history) + 1
        texts, _ = await self.attacker.call(item_variables(item), ctx)
        rewrite = clean_rewrite(texts[0] if texts else "")
        data: dict[str, Any] = {"turn": turn, "rewrite": rewrite}
        if rewrite:
            guard_vars = {**item_variables(item), "question": rewrite}
            replies, _ = await self.guard.call(guard_vars, ctx)
            reply = replies[0] if replies else ""
            data |= {"guard": parse_decision(reply), "guard_reply": reply}
        else:
            data |= {"guard": "no", "guard_reply": "the attacker wrote no rewrite"}
        control = str(item.data.get("guard_control") or "").strip()
        if control:
            # Another question with this item's options: the gold answer cannot hold, so a "yes"
            # here measures the guard's bias (never decides anything).
            replies, _ = await self.guard.call({**item_variables(item), "question": control}, ctx)
            reply = replies[0] if replies else ""
            data |= {"control_guard": parse_decision(reply), "control_reply": reply}
        ctx.note(MEDFUZZ_REWRITE, data)
        trace = Trace(
            id=f"{item.id}:turn{turn}",
            item_id=item.id,
            node=ctx.node or "attack",
            text=rewrite,
            meta={"medfuzz": data},
        )
        ctx.trace_created(trace)
        verdict = Verdict(
            passed=data["guard"] == "yes",
            reasons=[f"guard: {data['guard']} ({data['guard_reply'][:200]})"],
            verifier="medfuzz_guard",
            node=ctx.node,
        )
        ctx.verdict(trace.id, verdict)
        return NodeOutput(traces=[trace.model_copy(update={"verdicts": [verdict]})])


@register_note(MEDFUZZ_REWRITE)
class MedfuzzRewriteNote(NoteSchema):
    """``medfuzz_rewrite``: one attacker rewrite and the guard's decision on it."""

    def facets(self, data: dict[str, Any]) -> dict[str, int]:
        return {f"guard {data.get('guard', '?')}": 1}
