"""A simulated consultation (Baichuan-M2's patient simulator): a doctor agent interviews a
patient-simulator agent that plays one case record, until the doctor concludes or a bound stops it.

- The patient opens with the case's chief complaint (its own words, from the record, no model
  call), then answers each doctor turn from the record only, in lay terms (its template says so).
  Fields the record hides from the patient (the final diagnosis) never reach its prompt, and a
  reply that names one anyway is replaced (``leak_reply``) and marked ``redacted``.
- The doctor asks one question per turn and ends with a line starting ``Conclusion:`` (its
  diagnosis and plan); ``max_turns`` doctor turns at most.

Both agents see the conversation so far and nothing else of each other. Every turn is a
``consult_turn`` note in the trajectory; the trace holds the typed transcript in ``meta``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from medloom.agents.agent import Agent, item_variables
from medloom.agents.context import AgentContext
from medloom.core.records import Item, Trace
from medloom.core.text import normalise

Speaker = Literal["doctor", "patient"]
StopReason = Literal["conclusion", "max_turns", "empty"]

TURN_NOTE = "consult_turn"
END_NOTE = "consultation"

_CONCLUSION = re.compile(r"^\W*(?:final\s+)?conclusion\s*[:：]\s*(?P<text>.*)$", re.I | re.M | re.S)
_LABEL = re.compile(r"^\s*\**\s*(?:doctor|dr|patient)\s*\**\s*[:：]\s*\**\s*", re.I)
_NEXT_SPEAKER = re.compile(r"\n\s*\**\s*(?:doctor|dr|patient)\s*\**\s*[:：]\**", re.I)

DOCTOR_STOPS = ("\nPatient:", "\nPATIENT:", "###")
PATIENT_STOPS = ("\nDoctor:", "\nDOCTOR:", "###")
"""Where a turn ends (a completion turn also ends at its first newline)."""


@dataclass(frozen=True)
class Turn:
    turn: int
    """1-based, counting both speakers."""
    speaker: Speaker
    text: str
    redacted: bool = False

    def record(self) -> dict[str, Any]:
        return {"turn": self.turn, "speaker": self.speaker, "text": self.text, "redacted": self.redacted}


@dataclass
class Consultation:
    """One conversation in progress."""

    trace_id: str
    turns: list[Turn] = field(default_factory=list)
    doctor_turns: int = 0
    conclusion: str | None = None
    stop: StopReason = "max_turns"

    def transcript(self) -> list[dict[str, Any]]:
        return [t.record() for t in self.turns]


def turn_text(text: str) -> str:
    """A reply without its speaker label and without any turn it goes on to write for the other side."""
    first = _NEXT_SPEAKER.split("\n" + text.strip(), maxsplit=2)
    body = next((part for part in first if part.strip()), "")
    return _LABEL.sub("", body.strip()).strip()


def conclusion_of(text: str) -> str | None:
    """The text after a ``Conclusion:`` marker (None without one; an empty conclusion is kept as '')."""
    m = _CONCLUSION.search(text)
    return m.group("text").strip() if m else None


def leaks(reply: str, hidden: list[str], record_text: str) -> list[str]:
    """The hidden values ``reply`` names that the patient's record itself does not."""
    said, record = f" {normalise(reply)} ", f" {normalise(record_text)} "
    return [h for h in hidden if (n := normalise(h)) and f" {n} " in said and f" {n} " not in record]


def _with_stops(agent: Agent, stops: tuple[str, ...], seed: int | None, name: str) -> Agent:
    sampling = agent.sampling
    if sampling.stop is None:
        first_line = ("\n",) if agent.model.mode == "completion" else ()
        sampling = sampling.model_copy(update={"stop": (*first_line, *stops)})
    if seed is not None:
        sampling = sampling.model_copy(update={"seed": seed})
    return Agent(
        name, agent.model, agent.template, agent.client, sampling=sampling, templates=agent.templates
    )


class ConsultationRunner:
    """Runs consultations between one doctor agent and one patient-simulator agent."""

    def __init__(
        self,
        doctor: Agent,
        patient: Agent,
        *,
        max_turns: int = 6,
        record_field: str = "record",
        opening_field: str = "complaint",
        hidden_fields: tuple[str, ...] = ("diagnosis",),
        leak_reply: str = "I don't know what it is, doctor. That's why I came.",
    ):
        self.doctor = doctor
        self.patient = patient
        self.max_turns = max_turns
        self.record_field = record_field
        self.opening_field = opening_field
        self.hidden_fields = hidden_fields
        self.leak_reply = leak_reply

    def patient_record(self, item: Item) -> Any:
        """What the patient knows: the case record without the hidden fields."""
        record = item.data.get(self.record_field)
        if isinstance(record, dict):
            return {k: v for k, v in record.items() if k not in self.hidden_fields}
        return record if record is not None else item.question

    def hidden_values(self, item: Item) -> list[str]:
        record = item.data.get(self.record_field)
        sources = [item.data, record if isinstance(record, dict) else {}]
        found = [str(s[f]) for s in sources for f in self.hidden_fields if s.get(f)]
        return list(dict.fromkeys(found))

    def opening(self, item: Item) -> str:
        text = item.data.get(self.opening_field) or item.question
        if not text:
            raise ValueError(
                f"case '{item.id}' has no opening complaint: give it a '{self.opening_field}' field "
                "(or map one to the item's question)"
            )
        return str(text)

    async def run(self, item: Item, ctx: AgentContext, *, sample_index: int = 0, node: str = "") -> Trace:
        """One consultation on ``item``: a trace whose ``answer`` is the doctor's conclusion (None
        when a bound stopped it first) and whose ``meta`` holds the typed transcript."""
        node = node or (ctx.node or "consultation")
        seed = None if not sample_index else (self.doctor.sampling.seed or 0) + sample_index
        doctor = _with_stops(self.doctor, DOCTOR_STOPS, seed, self.doctor.name)
        patient = _with_stops(self.patient, PATIENT_STOPS, seed, self.patient.name)
        episode = Consultation(trace_id=f"{item.id}/{node}/{sample_index}")
        record = self.patient_record(item)
        record_text = str(record)
        hidden = self.hidden_values(item)
        base = {**item_variables(item), "record": record, "max_turns": self.max_turns}
        self._add(episode, item, ctx, "patient", self.opening(item))
        while episode.doctor_turns < self.max_turns:
            turns_left = self.max_turns - episode.doctor_turns
            texts, _ = await doctor.call(
                {**base, "transcript": episode.transcript(), "turns_left": turns_left}, ctx
            )
            reply = turn_text(texts[0] if texts else "")
            episode.doctor_turns += 1
            if not reply:
                episode.stop = "empty"
                break
            self._add(episode, item, ctx, "doctor", reply)
            conclusion = conclusion_of(reply)
            if conclusion is not None:
                episode.conclusion, episode.stop = conclusion or reply, "conclusion"
                break
            texts, _ = await patient.call(
                {**base, "transcript": episode.transcript(), "question": reply}, ctx
            )
            answer = turn_text(texts[0] if texts else "") or "..."
            named = leaks(answer, hidden, record_text)
            if named:
                self._add(episode, item, ctx, "patient", self.leak_reply, redacted=answer, named=named)
            else:
                self._add(episode, item, ctx, "patient", answer)
        end = {
            "stop": episode.stop,
            "doctor_turns": episode.doctor_turns,
            "max_turns": self.max_turns,
            "conclusion": episode.conclusion,
            "redacted": sum(t.redacted for t in episode.turns),
        }
        ctx.note(END_NOTE, end, trace_id=episode.trace_id)
        return self._trace(item, episode, node, sample_index)

    def _add(
        self,
        episode: Consultation,
        item: Item,
        ctx: AgentContext,
        speaker: Speaker,
        text: str,
        *,
        redacted: str | None = None,
        named: list[str] | None = None,
    ) -> None:
        turn = Turn(len(episode.turns) + 1, speaker, text, redacted=redacted is not None)
        episode.turns.append(turn)
        data = turn.record()
        if redacted is not None:
            data |= {"original": redacted, "named": named or []}
        ctx.note(TURN_NOTE, data, trace_id=episode.trace_id)

    def _trace(self, item: Item, episode: Consultation, node: str, sample_index: int) -> Trace:
        transcript = episode.transcript()
        text = "\n".join(f"{t['speaker'].capitalize()}: {t['text']}" for t in transcript)
        return Trace(
            id=episode.trace_id,
            item_id=item.id,
            node=node,
            model=self.doctor.model.alias,
            text=text,
            answer=episode.conclusion,
            parse_error=None
            if episode.conclusion is not None
            else f"no conclusion ({episode.stop} after {episode.doctor_turns} doctor turns)",
            temperature=self.doctor.sampling.temperature,
            sample_index=sample_index,
            meta={
                "transcript": transcript,
                "conclusion": episode.conclusion,
                "stop_reason": episode.stop,
                "doctor_turns": episode.doctor_turns,
                "patient_model": self.patient.model.alias,
            },
        )
