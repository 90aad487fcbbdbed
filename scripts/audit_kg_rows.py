"""Audit a kg_multihop run's kept rows without medloom's verifiers (issue 13's "done when").

    python scripts/audit_kg_rows.py runs/<run-id>                 # the demo KG
    python scripts/audit_kg_rows.py runs/<run-id> --kg my_triples.tsv --json audit.json

Reads the run's ``data.jsonl`` and the KG's triples file (the bundled demo by default: columns
head_id, head, head_type, relation, tail_id, tail, tail_type) with the standard library only, and
flags, per row:

- path: a hop that is not a triple of the KG;
- reasoning: a step naming an entity off the row's path, two path entities that are not one hop
  of the path, a relation word that is not the hop's, or denying a triple the KG holds; a step
  that names one entity and states a relation through a pronoun ("It resembles X") must use the
  relation of a hop at that entity;
- question: it does not name the path's start, names another KG entity, or its relation words do
  not follow the path's relations in order (a run of one relation counted once).

Exit status 1 when any row is flagged. It shares no code with medloom's checks: its own name
matching, its own relation words.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

DEMO_KG = Path(__file__).resolve().parent.parent / "medloom" / "kg" / "data" / "demo_kg.tsv"

# The words that state each relation (matched as word prefixes), written for this audit.
RELATION_WORDS: dict[str, tuple[str, ...]] = {
    "treats": ("treat", "therap", "indicated", "cure"),
    "palliates": ("palliat", "reliev"),
    "binds": ("bind", "bound", "target"),
    "associates": ("associat", "linked", "implicated"),
    "localizes": ("locali", "site", "affect", "located"),
    "resembles": ("resembl", "similar"),
    "upregulates": ("upregulat",),
    "downregulates": ("downregulat",),
}
DIRECTED = {"treats", "palliates", "binds", "localizes", "upregulates", "downregulates"}
TYPE_WORDS = {
    "Compound": ("compound", "drug", "medication"),
    "Disease": ("disease", "condition", "disorder", "cancer"),
    "Gene": ("gene", "protein"),
    "Anatomy": ("organ", "tissue", "site", "anatomy", "structure"),
}
Hops = list[tuple[str, str, str, bool]]
"""(source, relation, target, forward) in walking order, names lower-cased."""
NEGATION = re.compile(r"\b(?:not|never|neither|nor|cannot|unrelated)\b|n't\b", re.I)
PRONOUN = re.compile(r"\b(?:it|its|this|that|these|the (?:disease|drug|compound|gene|protein|organ))\b", re.I)


@dataclass
class KG:
    triples: set[tuple[str, str, str]] = field(default_factory=set)
    """(head name, relation, tail name), names lower-cased."""
    names: dict[str, str] = field(default_factory=dict)
    """lower-cased name → name as written."""

    def joined(self, a: str, b: str) -> set[str]:
        """Relations of the triples between two names, either way round."""
        return {r for h, r, t in self.triples if (h, t) in ((a, b), (b, a))}


def load_triples(path: Path) -> KG:
    kg = KG()
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            head, tail = row["head"], row["tail"]
            kg.triples.add((head.lower(), row["relation"], tail.lower()))
            kg.names[head.lower()] = head
            kg.names[tail.lower()] = tail
    return kg


class Names:
    """Finds KG names in text: longest first, whole words, short upper-case symbols only in capitals."""

    def __init__(self, kg: KG):
        ordered = sorted(kg.names.values(), key=len, reverse=True)
        self.patterns = [
            (name.lower(), re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])", 0 if _symbol(name) else re.I))
            for name in ordered
        ]

    def find(self, text: str) -> list[tuple[int, str]]:
        """(position, lower-cased name) of each name in ``text``, no overlaps."""
        taken: list[tuple[int, int]] = []
        found = []
        for key, pattern in self.patterns:
            for m in pattern.finditer(text):
                if any(a < m.end() and m.start() < b for a, b in taken):
                    continue
                taken.append((m.start(), m.end()))
                found.append((m.start(), key))
        return sorted(found)


def _symbol(name: str) -> bool:
    return name.isupper() and len(name) <= 4


def relation_words(text: str) -> list[tuple[int, str]]:
    """(position, relation) for each relation word in ``text``."""
    out = []
    for m in re.finditer(r"[A-Za-z]+", text):
        word = m.group(0).lower()
        out += [(m.start(), rel) for rel, stems in RELATION_WORDS.items() if word.startswith(stems)]
    return out


def blank(text: str, spans: list[tuple[int, str]]) -> str:
    """``text`` with the names found in it blanked (so "allergic" cues nothing)."""
    chars = list(text)
    lowered = text.lower()
    for pos, key in spans:
        end = pos + len(key) if lowered[pos : pos + len(key)] == key else pos
        chars[pos:end] = " " * (end - pos)
    return "".join(chars)


def audit_row(row: dict[str, object], kg: KG, names: Names) -> dict[str, list[str]]:
    path = row["path"]
    path = json.loads(path) if isinstance(path, str) else path
    assert isinstance(path, dict)
    nodes = [n["name"].lower() for n in path["nodes"]]
    hops = [
        (h["source"]["name"].lower(), h["relation"], h["target"]["name"].lower(), h["forward"])
        for h in path["hops"]
    ]
    problems: dict[str, list[str]] = {"path": [], "reasoning": [], "question": []}
    for s, rel, t, forward in hops:
        head, tail = (s, t) if forward else (t, s)
        if (head, rel, tail) not in kg.triples:
            problems["path"].append(f"{head} {rel} {tail} is not a KG triple")
    steps = row.get("steps") or []
    steps = json.loads(steps) if isinstance(steps, str) else steps
    assert isinstance(steps, list)
    for step in steps:
        text = step["text"] if isinstance(step, dict) else str(step)
        why = audit_step(text, kg, names, nodes, hops)
        if why:
            problems["reasoning"].append(f"{text!r}: {why}")
    end_type = str(path["nodes"][-1]["type"])
    problems["question"] = audit_question(str(row.get("question", "")), names, nodes, hops, end_type)
    return problems


def audit_step(text: str, kg: KG, names: Names, nodes: list[str], hops: Hops) -> str | None:
    found = names.find(text)
    named = list(dict.fromkeys(key for _, key in found))
    said = {rel for _, rel in relation_words(blank(text, found))}
    off = [kg.names[n] for n in named if n not in nodes]
    negated = NEGATION.search(text) is not None
    if negated:
        for i, a in enumerate(named):
            for b in named[i + 1 :]:
                held = kg.joined(a, b) & (said or set(RELATION_WORDS))
                if held:
                    return f"denies {kg.names[a]} {sorted(held)[0]} {kg.names[b]}, which the KG holds"
        return None
    if off:
        return f"states {', '.join(off)}, not on the row's path"
    hop_of = {frozenset((s, t)): rel for s, rel, t, _ in hops}
    if len(named) >= 2:
        pairs = [frozenset((a, b)) for i, a in enumerate(named) for b in named[i + 1 :]]
        stated = [p for p in pairs if p in hop_of]
        if not stated:
            return f"names {', '.join(kg.names[n] for n in named)}, which are not one hop of the path"
        if said and not any(hop_of[p] in said for p in stated):
            return f"says {sorted(said)} where the path's hop is {hop_of[stated[0]]}"
        return reversed_hop(text, found, hops)
    if len(named) == 1 and said and PRONOUN.search(text):
        at = {rel for s, rel, t, _ in hops if named[0] in (s, t)}
        if not said & at:
            return (
                f"states {sorted(said)} through a pronoun; the hops at {kg.names[named[0]]} are {sorted(at)}"
            )
    return None


def reversed_hop(text: str, found: list[tuple[int, str]], hops: Hops) -> str | None:
    """A directed hop written tail first in the active voice ("breast cancer treats Eribulin")."""
    where = {key: pos for pos, key in found}
    for s, rel, t, forward in hops:
        head, tail = (s, t) if forward else (t, s)
        if rel not in DIRECTED or head not in where or tail not in where or where[tail] > where[head]:
            continue
        between = text[where[tail] : where[head]].lower()
        if not re.search(r"\b(?:by|site of)\b", between):
            return f"states {head} {rel} {tail} the wrong way round"
    return None


def audit_question(question: str, names: Names, nodes: list[str], hops: Hops, end_type: str) -> list[str]:
    out = []
    words = TYPE_WORDS.get(end_type)
    if words and not re.search(rf"\b(?:which|what)(?: \w+)? (?:{'|'.join(words)})\b", question.lower()):
        out.append(f"does not ask for a {end_type.lower()}")
    found = names.find(question)
    if nodes[0] not in {key for _, key in found}:
        out.append("does not name the path's start")
    others = sorted({key for _, key in found} - {nodes[0]})
    if others:
        out.append(f"names {others}")
    runs: list[str] = []
    for _, rel, _, _ in hops:
        if not runs or runs[-1] != rel:
            runs.append(rel)
    said: list[str] = []
    for _, rel in relation_words(blank(question, found)):
        if not said or said[-1] != rel:
            said.append(rel)
    if said != runs:
        out.append(f"its relation words read {said}, the path is {runs}")
    return out


def audit_question_of(path: dict, question: str, kg: KG, names: Names) -> list[str]:
    return audit_row({"path": path, "question": question, "steps": []}, kg, names)["question"]


def question_problems(path: dict, question: str, kg: KG, names: Names) -> list[str]:
    return audit_row({"path": path, "question": question, "steps": []}, kg, names)["question"]


def audit_trajectories(run: Path, kg: KG, names: Names) -> None:
    """Every question and reasoning trace the run wrote, audited; beside medloom's verdict on it."""
    paths: dict[str, object] = {}
    traces: list[tuple[str, str, dict]] = []
    verdicts: dict[str, bool] = {}
    for line in (run / "trajectories.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "item_started":
            paths[event["item_id"]] = (event.get("input") or {}).get("path")
        elif event["type"] == "trace":
            traces.append((event["item_id"], event["node"], event["trace"]))
        elif event["type"] == "verdict":
            verdicts[event["trace_id"]] = bool(event["verdict"]["passed"])
    keys = ["questions", "questions flagged", "drafts", "drafts flagged", "drafts flagged but used"]
    counts = dict.fromkeys([*keys, "traces", "traces flagged", "flagged but passed"], 0)
    for item_id, node, trace in traces:
        path = paths.get(item_id)
        if not isinstance(path, dict):
            continue
        if node == "question":
            meta = trace.get("meta") or {}
            counts["questions"] += 1
            counts["questions flagged"] += bool(question_problems(path, str(meta.get("question")), kg, names))
            for draft in meta.get("candidates") or []:  # the LLM's drafts, usable (problem None) or not
                flagged = bool(question_problems(path, str(draft.get("question")), kg, names))
                counts["drafts"] += 1
                counts["drafts flagged"] += flagged
                counts["drafts flagged but used"] += flagged and draft.get("problem") is None
        elif trace["id"] in verdicts and trace.get("steps"):
            found = audit_row({"path": path, "question": "", "steps": trace["steps"]}, kg, names)["reasoning"]
            counts["traces"] += 1
            counts["traces flagged"] += bool(found)
            counts["flagged but passed"] += bool(found) and verdicts[trace["id"]]
    print("all traces: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a run directory (with data.jsonl)")
    ap.add_argument(
        "--kg", type=Path, default=DEMO_KG, help="the run's KG as a triples TSV (default: the demo)"
    )
    ap.add_argument("--json", type=Path, help="write the per-row findings here")
    ap.add_argument(
        "--all-traces",
        action="store_true",
        help="also audit every question and reasoning trace in trajectories.jsonl (kept or not) "
        "and count how often medloom's own verdict on it failed too",
    )
    args = ap.parse_args()
    kg = load_triples(args.kg)
    names = Names(kg)
    data = args.run / "data.jsonl"
    rows = (
        [json.loads(line) for line in data.read_text().splitlines() if line.strip()] if data.exists() else []
    )
    findings = []
    for row in rows:
        problems = audit_row(row, kg, names)
        findings.append(
            {"item_id": row.get("item_id") or row.get("id"), "question": row.get("question"), **problems}
        )
    flagged = {kind: sum(bool(f[kind]) for f in findings) for kind in ("path", "reasoning", "question")}
    print(f"audited {len(rows)} kept rows of {args.run} against {args.kg.name} ({len(kg.triples)} triples)")
    print(f"rows with a path hop outside the KG:            {flagged['path']}")
    print(f"rows whose reasoning states an edge outside the KG: {flagged['reasoning']}")
    print(f"rows whose question misdescribes its path:      {flagged['question']}")
    for f in findings:
        for kind in ("path", "reasoning", "question"):
            for why in f[kind]:
                print(f"- {f['item_id']} [{kind}] {why}")
    if args.all_traces:
        audit_trajectories(args.run, kg, names)
    if args.json:
        args.json.write_text(json.dumps(findings, indent=1))
    return 1 if any(flagged.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
