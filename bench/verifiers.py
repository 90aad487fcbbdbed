"""Verifier benchmark: precision and recall of each verifier on reasoning traces and questions built
from real KG paths (the demo KG and the Hetionet subset), correct and with one injected error each.

    python bench/verifiers.py                              # deterministic checks, both KGs
    python bench/verifiers.py --write    # and ship them: medloom/verifiers/data/measured.json
    python bench/verifiers.py --endpoint http://127.0.0.1:8000/v1 --judge-limit 60   # + an LLM judge
    python bench/verifiers.py --endpoint URL --logprob-limit 60   # + the log-probability verifiers
    python bench/verifiers.py --endpoint URL --medval --skip-checks --judge-limit 0 --write   # MedVAL only

Prints, per verifier, recall and precision per error kind (precision: the kind's injected cases
against the correct cases of the same items) and over the kinds it is meant to catch (its
scope, marked *), and its false-rejection rate on all correct cases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medloom.eval.injection import QUESTION_KINDS, TRACE_KINDS, Case, build_cases  # noqa: E402
from medloom.eval.medval_injection import MEDVAL_KINDS, medval_cases  # noqa: E402
from medloom.eval.verifier_bench import BENCH, VerifierFigures, score  # noqa: E402
from medloom.kg.spec import KGSpec  # noqa: E402
from medloom.kg.store import load_kg  # noqa: E402
from medloom.verifiers import registered_checks  # noqa: E402
from medloom.verifiers.measured import MEASURED_FILE  # noqa: E402

HETIONET = ROOT.parent / "shared" / "data" / "hetionet"
MEDVAL_DEMO = ROOT / "configs" / "data" / "medval_demo.jsonl"


def run_checks(cases: dict[str, list[Case]], sources: dict[str, str]) -> list[VerifierFigures]:
    """Every deterministic verifier of BENCH on its cases (KG checks read each case's own KG)."""
    out = []
    for name, check, params, what, scope, which in BENCH:
        built: dict[str, Any] = {}
        verdicts = {}
        for c in cases[which]:
            if c.kg not in built:
                uses_kg = check in ("kg_grounding", "question_fidelity")
                built[c.kg] = registered_checks()[check](
                    **({**params, "source": sources[c.kg]} if uses_kg else params)
                )
            verdicts[c.id] = built[c.kg].check(c.item, c.trace)
        passed = {k: v.passed for k, v in verdicts.items()}
        out.append(score(name, check, cases[which], passed, scope=scope, params=params, what=what))
        MISSES[name] = [
            (c, verdicts[c.id].reason)
            for c in cases[which]
            if (c.is_error and c.kind in scope and passed[c.id]) or (not c.is_error and not passed[c.id])
        ]
    return out


MISSES: dict[str, list[tuple[Case, str]]] = {}
"""Per verifier: the in-scope errors it passed and the correct cases it rejected (with its reason)."""


async def run_judge(
    cases: list[Case], endpoint: str, model: str | None, mode: str, limit: int
) -> VerifierFigures:
    from medloom.agents.agent import Agent, ModelRef
    from medloom.llm.client import LLMClient
    from medloom.verifiers.llm_judge import LLMJudge

    client = LLMClient.from_urls([endpoint])
    served = model or next(m for models in (await client.discover_models()).values() for m in models)
    agent = Agent("judge", ModelRef(alias="judge", served=served, mode=mode), "mcq_judge", client)  # type: ignore[arg-type]
    judge = LLMJudge(agent, structured=False)
    picked = _stratified(cases, limit)
    sem = asyncio.Semaphore(16)

    async def one(c: Case) -> tuple[str, bool]:
        async with sem:
            return c.id, (await judge.verify(c.item, c.trace)).passed

    verdicts = dict(await asyncio.gather(*(one(c) for c in picked)))
    await client.aclose()
    return score(
        f"LLM judge ({served})",
        "judge",
        picked,
        verdicts,
        scope=TRACE_KINDS,
        what="mcq_judge template",
        model=served,
    )


async def run_logprob(
    cases: list[Case], endpoint: str, model: str | None, limit: int
) -> list[VerifierFigures]:
    """The log-probability verifiers (belief shift, step likelihood) on up to ``limit`` trace cases;
    they need prompt log-probabilities (a vLLM /v1/completions endpoint)."""
    from medloom.agents.agent import ModelRef
    from medloom.agents.context import AgentContext
    from medloom.agents.templates import TemplateLibrary
    from medloom.llm.client import LLMClient
    from medloom.llm.settings import EndpointConfig
    from medloom.nodes.likelihood import LikelihoodNode, LikelihoodRun
    from medloom.verifiers.likelihood import LikelihoodScorer

    client = LLMClient([EndpointConfig(name="endpoint0", base_url=endpoint, timeout_s=600)])
    served = model or next(m for models in (await client.discover_models()).values() for m in models)
    ref = ModelRef(alias="scorer", served=served, mode="completion")
    scorer = LikelihoodScorer(client, ref, TemplateLibrary())
    picked = _stratified(cases, limit)
    sem = asyncio.Semaphore(4)  # each case scores several prefixes at once
    figures = []
    for method in ("belief_shift", "step_likelihood"):
        node = LikelihoodRun(LikelihoodNode(type="likelihood", model="scorer", method=method), scorer)

        async def one(c: Case, node: LikelihoodRun = node) -> tuple[str, bool]:
            async with sem:
                verdict, _ = await node.judge(c.item, c.trace, AgentContext())
                return c.id, verdict.passed

        verdicts = dict(await asyncio.gather(*(one(c) for c in picked)))
        what = "threshold 0 nats" if method == "belief_shift" else "flag drops > 0.5 nats/token"
        figures.append(
            score(
                f"{method} ({served})", method, picked, verdicts, scope=TRACE_KINDS, what=what, model=served
            )
        )
    await client.aclose()
    return figures


async def run_medval(endpoint: str, model: str | None, mode: str, limit: int) -> tuple[VerifierFigures, int]:
    """The MedVAL validator (levels 1-2 pass) on the demo rows' clean outputs and their copies with
    one injected hallucination, omission or certainty misalignment; returns the figures and the
    number of cases."""
    from medloom.agents.agent import Agent, ModelRef, Sampling
    from medloom.agents.context import AgentContext
    from medloom.llm.cache import RequestCache
    from medloom.llm.client import LLMClient
    from medloom.llm.settings import EndpointConfig
    from medloom.verifiers.medval import MedvalCheck

    rows = [json.loads(line) for line in MEDVAL_DEMO.read_text(encoding="utf-8").splitlines() if line.strip()]
    cases = _stratified(medval_cases(rows), limit)
    # a slow shared CPU server: few calls at a time, each allowed 10 minutes
    # (and cached, so a run cut short resumes where it stopped)
    cache = RequestCache(ROOT / "runs" / ".cache" / "bench_medval.sqlite")
    client = LLMClient([EndpointConfig(name="endpoint0", base_url=endpoint, timeout_s=600)], cache=cache)
    client._owns_cache = True
    served = model or next(m for models in (await client.discover_models()).values() for m in models)
    ref = ModelRef(alias="judge", served=served, mode=mode)  # type: ignore[arg-type]
    check = MedvalCheck()
    check.bind(Agent("medval", ref, check.default_template, client, sampling=Sampling(max_tokens=128)))
    sem = asyncio.Semaphore(4)
    undecided = 0

    async def one(c: Case) -> tuple[str, bool]:
        nonlocal undecided
        async with sem:
            verdict = await check.verify(c.item, c.trace, AgentContext(item_id=c.item.id))
            undecided += verdict.undecided
            return c.id, verdict.passed

    verdicts = dict(await asyncio.gather(*(one(c) for c in cases)))
    await client.aclose()
    what = (
        "an LLM grades an output against its input: risk level 1-4 with typed errors; levels 1-2 pass "
        f"({undecided} of {len(cases)} replies unreadable: undecided, counted as rejections)"
    )
    figures = score(
        f"medval ({served})", "medval", cases, verdicts, scope=MEDVAL_KINDS, what=what, model=served
    )
    return figures, len(cases)


def _stratified(cases: list[Case], limit: int) -> list[Case]:
    """Up to ``limit`` cases, whole items at a time (each error with its correct case)."""
    by_item: dict[str, list[Case]] = {}
    for c in cases:
        by_item.setdefault(c.item.id, []).append(c)
    out: list[Case] = []
    for group in by_item.values():
        if len(out) + len(group) > limit:
            break
        out += group
    return out


def fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def table(figures: list[VerifierFigures], kinds: list[str]) -> str:
    header = "| verifier | " + " | ".join(kinds) + " | in scope: recall | precision | false rejection |"
    lines = [header, "|" + " --- |" * (len(kinds) + 4)]
    for f in figures:
        cells = []
        for k in kinds:
            kf = f.kinds.get(k)
            mark = "*" if k in f.scope else ""
            cells.append("–" if kf is None else f"{mark}{fmt(kf.recall)}/{fmt(kf.precision)}")
        lines.append(
            f"| {f.name} | " + " | ".join(cells) + f" | {fmt(f.recall)} | {fmt(f.precision)}"
            f" | {fmt(f.false_rejection_rate)} ({f.false_rejections}/{f.correct}) |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=40, help="items per KG (default 40)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hetionet", default=str(HETIONET), help="the Hetionet subset directory ('' to skip)")
    ap.add_argument(
        "--write", action="store_true", help=f"write the figures to {MEASURED_FILE.relative_to(ROOT)}"
    )
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument(
        "--misses", type=int, default=0, help="print up to N misses and false rejections per verifier"
    )
    ap.add_argument("--endpoint", help="an OpenAI-compatible endpoint: also measure the LLM judge")
    ap.add_argument("--model", help="served model for the judge (default: the endpoint's first)")
    ap.add_argument("--mode", default="completion", choices=["chat", "completion"])
    ap.add_argument("--judge-limit", type=int, default=60, help="trace cases the judge sees (0: no judge)")
    ap.add_argument(
        "--medval",
        action="store_true",
        help="with --endpoint: also measure the MedVAL validator on demo outputs with injected errors",
    )
    ap.add_argument("--medval-limit", type=int, default=100, help="medval cases (default: all)")
    ap.add_argument(
        "--skip-checks",
        action="store_true",
        help="skip the deterministic checks (measure LLM verifiers only)",
    )
    ap.add_argument(
        "--logprob-limit",
        type=int,
        default=0,
        help="with --endpoint (completion mode): also measure the log-probability verifiers on N trace cases",
    )
    args = ap.parse_args()

    started = time.perf_counter()
    sources = [("demo", "demo")] + ([("hetionet", args.hetionet)] if args.hetionet else [])
    cases: dict[str, list[Case]] = {"trace": [], "question": []}
    for name, source in sources:
        traces, questions = build_cases(load_kg(KGSpec(source=source)), name, args.items, args.seed)
        cases["trace"] += traces
        cases["question"] += questions
    figures = [] if args.skip_checks else run_checks(cases, dict(sources))
    medval_count = 0
    if args.endpoint and args.medval:
        medval, medval_count = asyncio.run(
            run_medval(args.endpoint, args.model, args.mode, args.medval_limit)
        )
        figures.append(medval)
    if args.endpoint and args.judge_limit:
        figures.append(
            asyncio.run(run_judge(cases["trace"], args.endpoint, args.model, args.mode, args.judge_limit))
        )
    if args.endpoint and args.logprob_limit:
        figures += asyncio.run(run_logprob(cases["trace"], args.endpoint, args.model, args.logprob_limit))
    elapsed = time.perf_counter() - started

    counts = {which: len(v) for which, v in cases.items()}
    correct = {which: sum(not c.is_error for c in v) for which, v in cases.items()}
    print(
        f"verifier benchmark: {args.items} items per KG ({', '.join(n for n, _ in sources)}), "
        f"seed {args.seed}; "
        f"{counts['trace']} trace cases ({correct['trace']} correct), "
        f"{counts['question']} question cases ({correct['question']} correct); {elapsed:.1f} s\n"
    )
    print("Reasoning traces: recall/precision per injected kind (* = in the verifier's scope)\n")
    on_traces = [f for f in figures if f.check not in ("question_fidelity", "leakage", "medval")]
    print(table(on_traces, TRACE_KINDS))
    print("\nQuestions: recall/precision per injected mismatch\n")
    print(table([f for f in figures if f.check in ("question_fidelity", "leakage")], QUESTION_KINDS))
    if medval_count:
        print(f"\nMedVAL: {medval_count} outputs of the medval demo rows, clean or with one injected error\n")
        print(table([f for f in figures if f.check == "medval"], MEDVAL_KINDS))
    if args.misses:
        print_misses(args.misses)
    payload = {
        "generated_by": "python bench/verifiers.py --write",
        "items_per_kg": args.items,
        "seed": args.seed,
        "kgs": [n for n, _ in sources],
        "cases": counts,
        "verifiers": [f.model_dump() for f in figures],
    }
    if medval_count:
        payload["medval_cases"] = medval_count
    if args.write:
        payload = merged(payload, skipped_checks=args.skip_checks)
        MEASURED_FILE.parent.mkdir(parents=True, exist_ok=True)
        MEASURED_FILE.write_text(json.dumps(payload, indent=1) + "\n")
        print(f"\nwrote {MEASURED_FILE.relative_to(ROOT)}")
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
    return 0


def merged(payload: dict[str, Any], *, skipped_checks: bool) -> dict[str, Any]:
    """``payload`` over the shipped figures: rows of verifiers measured now replace theirs, the
    others stay (with ``--skip-checks`` the deterministic figures and their case counts stay too)."""
    old = json.loads(MEASURED_FILE.read_text()) if MEASURED_FILE.exists() else {}
    names = {v["name"] for v in payload["verifiers"]}
    kept = [v for v in old.get("verifiers", []) if v.get("name") not in names]
    base = {**payload, **{k: v for k, v in old.items() if k != "verifiers"}} if skipped_checks else payload
    extra = {"medval_cases": payload["medval_cases"]} if "medval_cases" in payload else {}
    return {**base, **extra, "verifiers": kept + payload["verifiers"]}


def print_misses(n: int) -> None:
    """The first ``n`` misses (in scope) and false rejections of each deterministic verifier."""
    for name, wrong in MISSES.items():
        print(f"\n## {name}: {len(wrong)} misses and false rejections")
        for c, reason in wrong[:n]:
            print(f"- {c.id} [{c.kind}]: {reason}\n  {c.trace.text!r}")


if __name__ == "__main__":
    raise SystemExit(main())
