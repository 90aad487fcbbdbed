"""``op: consultation`` (starts the graph): a doctor agent interviews a patient simulator playing
the case (``medloom.agents.consultation``), ``samples`` consultations per case.

    consult:
      type: step
      op: consultation
      model: doctor                  # the doctor under test
      sampling: {temperature: 0, max_tokens: 64}
      params:
        patient_model: patient       # the simulator (default: the node's model)
        max_turns: 6                 # doctor turns, the conclusion included
        samples: 1

Each consultation is one trace: ``answer`` the doctor's conclusion, ``meta.transcript`` the turns
(``{turn, speaker, text, redacted}``), ``meta.stop_reason`` (``conclusion``, ``max_turns``, ``empty``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from medloom.agents.agent import Sampling
from medloom.agents.consultation import END_NOTE, TURN_NOTE, ConsultationRunner
from medloom.agents.context import AgentContext
from medloom.core.notes import NoteSchema, NoteView, Segment, register_note
from medloom.core.records import Item, Trace
from medloom.nodes.protocol import NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op


class ConsultationParams(OpParams):
    doctor_template: str = "consult_doctor"
    patient_template: str = "consult_patient"
    patient_model: str | None = None
    """The simulator's model alias (default: the node's model)."""
    patient_sampling: Sampling | None = None
    """The simulator's sampling (default: the node's)."""
    max_turns: int = Field(default=6, ge=1, le=50)
    samples: int = Field(default=1, ge=1, le=16)
    record_field: str = "record"
    opening_field: str = "complaint"
    hidden_fields: list[str] = Field(default_factory=lambda: ["diagnosis"])
    """Case fields the simulator never sees; a reply naming one is replaced by ``leak_reply``."""
    leak_reply: str = "I don't know what it is, doctor. That's why I came."


@register_op("consultation")
class ConsultationOp(BaseOp):
    """Simulated doctor–patient consultations on each case."""

    Params = ConsultationParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        p: ConsultationParams = self.params
        doctor = build.agent(p.doctor_template, name=f"{self.node}:doctor")
        patient = build.agent(
            p.patient_template,
            model=p.patient_model,
            sampling=p.patient_sampling,
            name=f"{self.node}:patient",
        )
        self.runner = ConsultationRunner(
            doctor,
            patient,
            max_turns=p.max_turns,
            record_field=p.record_field,
            opening_field=p.opening_field,
            hidden_fields=tuple(p.hidden_fields),
            leak_reply=p.leak_reply,
        )

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        try:
            self.runner.opening(item)
        except ValueError as exc:
            return NodeOutput(reject=str(exc), reject_code="no complaint")
        done = await asyncio.gather(
            *(self.runner.run(item, ctx, sample_index=i, node=self.node) for i in range(self.params.samples))
        )
        for trace in done:
            ctx.trace_created(trace)
        return NodeOutput(traces=list(done))


def _plain(value: object) -> list[Segment]:
    return [(str(value), "")]


@register_note(TURN_NOTE)
class ConsultTurnNote(NoteSchema):
    """``consult_turn``: one turn of a consultation (who spoke, what they said)."""

    def facets(self, data: dict[str, Any]) -> dict[str, int]:
        return {"redacted patient replies": 1} if data.get("redacted") else {}

    def view(self, data: dict[str, Any]) -> NoteView:
        speaker = str(data.get("speaker", "?"))
        style = "cyan" if speaker == "doctor" else "magenta"
        label: list[Segment] = [
            (f"{data.get('turn', '?')} {speaker}: ", style),
            (str(data.get("text", "")), ""),
        ]
        facts: list[tuple[str, list[Segment]]] = [("said", _plain(data.get("text", "")))]
        if data.get("redacted"):
            label.append((" (redacted)", "yellow"))
            facts += [
                ("model wrote", _plain(data.get("original", ""))),
                ("named", _plain(", ".join(map(str, data.get("named") or [])))),
            ]
        return NoteView(title=f"turn {data.get('turn', '?')} ({speaker})", label=label, facts=facts)


@register_note(END_NOTE)
class ConsultationNote(NoteSchema):
    """``consultation``: how a consultation ended (conclusion or bound) and after how many turns."""

    def facets(self, data: dict[str, Any]) -> dict[str, int]:
        return {f"ended: {data.get('stop', '?')}": 1}

    def view(self, data: dict[str, Any]) -> NoteView:
        stop = str(data.get("stop", "?"))
        style = "green" if stop == "conclusion" else "yellow"
        return NoteView(
            title="consultation",
            label=[
                ("consultation ", "bold"),
                (stop, style),
                (f" after {data.get('doctor_turns', '?')} turns", ""),
            ],
            facts=[
                ("ended", [(stop, style)]),
                ("doctor turns", _plain(f"{data.get('doctor_turns', '?')} of {data.get('max_turns', '?')}")),
                ("conclusion", _plain(data.get("conclusion") or "(none)")),
                ("redacted replies", _plain(data.get("redacted", 0))),
            ],
        )
