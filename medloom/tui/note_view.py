"""What a step decided (a ``note`` event): vote rounds, resampling tries, decontamination removals.

Each known kind gets a one-line label for the trajectory tree and a readable detail; an unknown
kind falls back to its raw data.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.pretty import Pretty
from rich.table import Table
from rich.text import Text

from medloom.core.events import Note


def _votes(note: Note) -> list[dict[str, Any]]:
    votes = note.data.get("votes")
    return [v for v in votes if isinstance(v, dict)] if isinstance(votes, list) else []


def _mark(ok: object) -> tuple[str, str]:
    return ("✓", "green") if ok else ("✗", "red")


def note_label(note: Note) -> Text:
    """A one-line label: "round 2: 4 yes / 1 no — dissent: Cardiology", "resample C, A → gold A ✓"."""
    data = note.data
    if note.kind == "vote_round":
        votes = _votes(note)
        yes = sum(1 for v in votes if v.get("agrees"))
        dissent = [str(v.get("expert", "?")) for v in votes if not v.get("agrees")]
        text = Text.assemble(
            (f"round {data.get('round', '?')}: ", "bold"),
            (f"{yes} yes", "green"),
            " / ",
            (f"{len(votes) - yes} no", "red" if dissent else ""),
        )
        if dissent:
            text.append(" — dissent: " + ", ".join(dissent), style="yellow")
        return text
    if note.kind == "vote_outcome":
        mark, style = _mark(data.get("accepted"))
        return Text.assemble(("vote ", "bold"), f"{data.get('outcome', '?')} ", (mark, style))
    if note.kind == "domains":
        experts = [*data.get("question_domains", []), *data.get("option_domains", [])]
        return Text.assemble(("experts ", "bold"), ", ".join(map(str, experts)))
    if note.kind == "resample":
        answers = ", ".join("–" if a is None else str(a) for a in data.get("answers", []))
        mark, style = _mark(data.get("matched"))
        return Text.assemble(("resample ", "bold"), f"{answers} → gold {data.get('gold')} ", (mark, style))
    if note.kind == "contaminated":
        overlap = data.get("overlap")
        share = f"{overlap:.0%}" if isinstance(overlap, int | float) else "?"
        return Text.assemble(
            ("contaminated ", "bold red"),
            f"{share} {data.get('eval_set', '?')} ~{data.get('closest_eval_id')}",
        )
    return Text.assemble(("note ", "bold"), note.kind)


def _facts(*rows: tuple[str, RenderableType | str]) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        table.add_row(name, value)
    return table


def _head(note: Note, title: str) -> Text:
    text = Text(title, style="bold")
    text.append(f"  at {note.node}" if note.node else "")
    if note.trace_id:
        text.append(f"\ntrace {note.trace_id}", style="dim")
    return text


def render_note(note: Note) -> RenderableType:
    """The detail of a note, laid out by its kind."""
    data = note.data
    if note.kind == "vote_round":
        votes = Table(header_style="bold", box=None, pad_edge=False)
        for name in ("expert", "vote", "advice"):
            votes.add_column(name)
        for v in _votes(note):
            vote = Text("yes", style="green") if v.get("agrees") else Text("no", style="red")
            if not v.get("parsed", True):
                vote.append(" (unparsed)", style="yellow")
            votes.add_row(str(v.get("expert", "?")), vote, str(v.get("advice") or ""))
        facts = _facts(
            ("outcome", str(data.get("outcome", "?"))),
            ("report", "revised with the dissenters' advice" if data.get("revised") else "unchanged"),
        )
        return Group(_head(note, f"vote round {data.get('round', '?')}"), note_label(note), facts, votes)
    if note.kind == "vote_outcome":
        mark, style = _mark(data.get("accepted"))
        return Group(
            _head(note, "vote outcome"),
            _facts(
                ("outcome", str(data.get("outcome", "?"))),
                ("rounds", str(data.get("rounds", "?"))),
                ("requires", str(data.get("require", "?"))),
                ("accepted", Text(f"{mark} {'yes' if data.get('accepted') else 'no'}", style=style)),
            ),
        )
    if note.kind == "domains":
        padded = data.get("padded") or []
        return Group(
            _head(note, "expert fields"),
            _facts(
                ("question experts", ", ".join(map(str, data.get("question_domains", [])))),
                ("option experts", ", ".join(map(str, data.get("option_domains", [])))),
                ("padded", ", ".join(map(str, padded)) + " (the model named too few)" if padded else "none"),
            ),
        )
    if note.kind == "resample":
        gold = data.get("gold")
        tries = Text()
        for i, answer in enumerate(data.get("answers", []), 1):
            hit = answer is not None and str(answer).strip().lower() == str(gold).strip().lower()
            tries.append(f"try {i}: {'–' if answer is None else answer}", style="bold green" if hit else "")
            tries.append(" ✓ gold\n" if hit else "\n", style="green")
        mark, style = _mark(data.get("matched"))
        verdict = f"matched gold at try {data.get('tries')}" if data.get("matched") else "no gold match"
        return Group(
            _head(note, "gold resampling"),
            _facts(("gold", str(gold)), ("result", Text(f"{mark} {verdict}", style=style))),
            tries,
        )
    if note.kind == "contaminated":
        overlap = data.get("overlap")
        threshold = data.get("threshold")
        share = f"{overlap:.0%}" if isinstance(overlap, int | float) else "?"
        limit = f"{threshold:.0%}" if isinstance(threshold, int | float) else "?"
        return Group(
            _head(note, "removed by decontamination"),
            _facts(
                ("eval set", str(data.get("eval_set", "?"))),
                ("overlap", f"{share} of its {data.get('n', '?')}-grams (threshold {limit})"),
                (
                    "closest",
                    f"{data.get('closest_eval_id')} ({data.get('shared_ngrams_with_closest')} shared)",
                ),
                ("e.g.", Text(f"“{data.get('example_ngram', '')}”", style="italic")),
            ),
        )
    return Group(_head(note, f"note: {note.kind}"), Pretty(data))
