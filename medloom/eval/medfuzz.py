"""MedFuzz: how robust a solver graph is to rewrites that violate a benchmark's assumptions.

For each solver: a baseline run answers the benchmark (stage ``<solver>``). Every question it
answers correctly is attacked for up to ``turns`` turns. Each turn, the attacker recipe
(``configs/eval/medfuzz_attacker.yaml``, op ``medfuzz_attack``) rewrites each question still
standing, seeing its earlier rewrites and the solver's answers, and a guard (an LLM judge,
recorded) checks the gold answer still holds (stage ``<solver>-attack-<t>``); the solver then
answers the rewrites that passed the guard (stage ``<solver>-target-<t>``). A question *flips* at
the first turn whose rewrite passed the guard and that the solver no longer answers correctly
(a wrong letter or no parsable answer); a rewrite that failed the guard never counts.

Reported per solver: accuracy before and after (after: flipped questions count as wrong, the
others keep their baseline result), flips / attacked questions, turns to flip, guard rejections,
and the exact paired permutation test of the drop (:mod:`medloom.eval.significance`). Each
successful attack is kept in ``attacks/<solver>/<item>.jsonl``: the item's events from the
baseline, attacker and target runs, in order.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from medloom.core.errors import ConfigError, MedloomError
from medloom.core.records import Item
from medloom.eval.benchmark import benchmark_spec, gold_items
from medloom.eval.runner import read_predictions, solvers_from
from medloom.eval.significance import PairedTest, paired_permutation_test
from medloom.eval.stages import (
    StageRunner,
    item_ends,
    item_events,
    last_traces,
    markdown_table,
    notes_of,
    slug,
    write_summary,
)
from medloom.eval.stats import wilson_interval
from medloom.ops.medfuzz_attack import MEDFUZZ_REWRITE
from medloom.runs.runner import EmbeddedProvider, ProgressHook

DEFAULT_ATTACKER = Path("configs/eval/medfuzz_attacker.yaml")
"""The attacker recipe used without ``--judge`` (relative to the current directory)."""


class AttackTurn(BaseModel):
    turn: int
    rewrite: str
    guard: str
    """The guard's decision on the rewrite: yes, no or undecided (only yes lets it count)."""
    guard_reply: str = ""
    control_guard: str | None = None
    """The guard's decision on its control (another question with these options; should be no)."""
    answer: str | None = None
    """The solver's answer to the rewrite (None: not asked, or no parsable answer)."""
    correct: bool | None = None
    reasoning: str = ""
    attacker_run: str = ""
    target_run: str = ""


class Attack(BaseModel):
    """One benchmark question under a solver: baseline answer and every attack turn."""

    solver: str
    item_id: str
    index: int
    gold: str | None
    before: str | None
    correct_before: bool
    turns: list[AttackTurn] = Field(default_factory=list)
    flipped_at: int | None = None
    events_file: str | None = None

    @property
    def correct_after(self) -> bool:
        return self.correct_before and self.flipped_at is None


class MedfuzzSummary(BaseModel):
    solver: str
    config: str
    run_dir: str
    n: int
    correct_before: int
    correct_after: int
    accuracy_before: float
    accuracy_after: float
    ci_before: tuple[float, float]
    ci_after: tuple[float, float]
    attacked: int
    flips: int
    flip_rate: float
    """flips / attacked (questions answered correctly at baseline)."""
    mean_turns_to_flip: float | None
    turns_to_flip: dict[int, int]
    guard_rejections: int
    """Rewrites the guard did not pass (no or undecided), over all turns."""
    guard_controls: int = 0
    guard_control_yes: int = 0
    """Controls the guard passed: a guard that passes another question's text with these options
    is not checking anything, and its flips are not evidence."""
    max_turns: int
    significance: PairedTest
    stopped: str | None = None
    """Why the attack ended before its turns ran out (a later stage failed); the figures count
    the turns that finished."""


class MedfuzzResult(BaseModel):
    benchmark: str
    out_dir: str
    attacker: str
    turns: int
    solvers: list[MedfuzzSummary] = Field(default_factory=list)
    attacks: list[Attack] = Field(default_factory=list)


def guard_control(item: Item, items: list[Item]) -> str:
    """The question after ``item`` in the benchmark (a question whose gold answer cannot be
    ``item``'s): the guard's control; empty with a one-question benchmark."""
    other = items[(items.index(item) + 1) % len(items)]
    return "" if other is item or other.question == item.question else other.question


def _mcq_row(item: Item, question: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": item.id,
        "question": question or item.question,
        "options": item.options,
        "answer": item.answer,
        **extra,
    }


def _history(attack: Attack) -> list[dict[str, Any]]:
    """What the attacker sees of its earlier turns on this question."""
    return [
        {
            "turn": t.turn,
            "rewrite": t.rewrite,
            "answer": t.answer,
            "reasoning": t.reasoning[:600],
            "guard_failed": t.guard != "yes",
            "guard_reason": t.guard_reply[:200],
        }
        for t in attack.turns
    ]


def summarize_medfuzz(
    solver: str, config: str, run_dir: str, attacks: list[Attack], turns: int
) -> MedfuzzSummary:
    n = len(attacks)
    before = [a.correct_before for a in attacks]
    after = [a.correct_after for a in attacks]
    flipped = [a.flipped_at for a in attacks if a.flipped_at is not None]
    attacked = sum(before)
    histogram: dict[int, int] = {}
    for t in flipped:
        histogram[t] = histogram.get(t, 0) + 1
    return MedfuzzSummary(
        solver=solver,
        config=config,
        run_dir=run_dir,
        n=n,
        correct_before=sum(before),
        correct_after=sum(after),
        accuracy_before=sum(before) / n if n else 0.0,
        accuracy_after=sum(after) / n if n else 0.0,
        ci_before=wilson_interval(sum(before), n),
        ci_after=wilson_interval(sum(after), n),
        attacked=attacked,
        flips=len(flipped),
        flip_rate=len(flipped) / attacked if attacked else 0.0,
        mean_turns_to_flip=sum(flipped) / len(flipped) if flipped else None,
        turns_to_flip=dict(sorted(histogram.items())),
        guard_rejections=sum(t.guard != "yes" for a in attacks for t in a.turns),
        guard_controls=sum(t.control_guard is not None for a in attacks for t in a.turns),
        guard_control_yes=sum(t.control_guard == "yes" for a in attacks for t in a.turns),
        max_turns=turns,
        significance=paired_permutation_test(before, after),
    )


async def _attack_solver(
    stages: StageRunner,
    solver_label: str,
    solver_path: Path,
    attacker: Path,
    items: list[Item],
    turns: int,
    overrides: list[str] | None,
) -> tuple[Path, list[Attack], list[Path], str | None]:
    stage = slug(solver_label)
    base_dir = await stages.run(
        stage, solver_path, (_mcq_row(i) for i in items), mcq=True, gold=True, overrides=overrides
    )
    preds = {p.item_id: p for p in read_predictions(base_dir, solver_label, items)}
    attacks = {
        i.id: Attack(
            solver=solver_label,
            item_id=i.id,
            index=i.index,
            gold=i.answer,
            before=preds[i.id].predicted,
            correct_before=preds[i.id].correct,
        )
        for i in items
    }
    by_id = {i.id: i for i in items}
    runs = [base_dir]
    stopped: str | None = None
    try:
        for turn in range(1, turns + 1):
            standing = [a for a in attacks.values() if a.correct_before and a.flipped_at is None]
            if not standing:
                break
            attack_dir = await stages.run(
                f"{stage}-attack-{turn}",
                attacker,
                (
                    _mcq_row(
                        by_id[a.item_id],
                        history=_history(a),
                        guard_control=guard_control(by_id[a.item_id], items),
                    )
                    for a in standing
                ),
                mcq=True,
                gold=True,
            )
            runs.append(attack_dir)
            rewrites = {k: v[-1] for k, v in notes_of(attack_dir, MEDFUZZ_REWRITE).items()}
            passed = [a for a in standing if rewrites.get(a.item_id, {}).get("guard") == "yes"]
            answers: dict[str, Any] = {}
            reasons: dict[str, str] = {}
            target_dir: Path | None = None
            if passed:
                target_items = [
                    by_id[a.item_id].model_copy(update={"question": rewrites[a.item_id]["rewrite"]})
                    for a in passed
                ]
                target_dir = await stages.run(
                    f"{stage}-target-{turn}",
                    solver_path,
                    (_mcq_row(i) for i in target_items),
                    mcq=True,
                    gold=True,
                    overrides=overrides,
                )
                runs.append(target_dir)
                answers = {p.item_id: p for p in read_predictions(target_dir, solver_label, target_items)}
                reasons = {k: t.text for k, t in last_traces(target_dir).items()}
            attacker_ends = item_ends(attack_dir)
            for attack in standing:
                end = attacker_ends.get(attack.item_id)
                lost = (
                    f"attacker {end.status}: {end.reason}"
                    if end
                    else "the attacker run did not finish this item"
                )
                note = rewrites.get(attack.item_id, {"rewrite": "", "guard": "no", "guard_reply": lost})
                pred = answers.get(attack.item_id)
                step = AttackTurn(
                    turn=turn,
                    rewrite=str(note.get("rewrite", "")),
                    guard=str(note.get("guard", "no")),
                    guard_reply=str(note.get("guard_reply", "")),
                    control_guard=note.get("control_guard"),
                    answer=pred.predicted if pred else None,
                    correct=pred.correct if pred else None,
                    reasoning=reasons.get(attack.item_id, ""),
                    attacker_run=str(attack_dir),
                    target_run=str(target_dir) if pred else "",
                )
                attack.turns.append(step)
                if step.guard == "yes" and step.correct is False:
                    attack.flipped_at = turn
    except MedloomError as exc:  # e.g. the endpoint went away: keep the turns that finished
        stopped = f"stopped during turn {turn}: {exc}"
    return base_dir, list(attacks.values()), runs, stopped


def _keep_successes(out: Path, folder: str, attacks: list[Attack], runs: list[Path]) -> None:
    """Write each successful attack's events (baseline, attacker and target runs) to one file."""
    for attack in attacks:
        if attack.flipped_at is None:
            continue
        path = out / "attacks" / folder / f"{slug(attack.item_id)}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [e for run in runs for e in item_events(run, attack.item_id)]
        path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in lines), encoding="utf-8")
        attack.events_file = str(path)


async def aattack(
    configs: Sequence[str | Path],
    benchmark: str | Path,
    *,
    attacker: str | Path | None = None,
    turns: int = 3,
    endpoints: list[str] | None = None,
    limit: int | None = None,
    fields: dict[str, str] | None = None,
    overrides: list[str] | None = None,
    out_dir: str | Path | None = None,
    concurrency: int | None = None,
    no_cache: bool = False,
    embedded: EmbeddedProvider | None = None,
    progress: Callable[[str], ProgressHook | None] | None = None,
) -> MedfuzzResult:
    """MedFuzz every solver on ``benchmark``; ``overrides`` apply to the solvers only."""
    if turns < 1:
        raise ConfigError(f"--turns must be at least 1, got {turns}", key="--turns")
    solvers = solvers_from(configs)
    attacker_path = Path(attacker) if attacker else DEFAULT_ATTACKER
    if not attacker_path.is_file():
        raise ConfigError(f"attacker recipe {attacker_path} not found; pass --judge FILE", key="--judge")
    items, _ = gold_items(benchmark_spec(benchmark, fields, limit))
    if not items:
        raise ConfigError(f"benchmark {benchmark} has no readable items", key="--dataset")
    if any(not i.options for i in items):
        raise ConfigError(
            "MedFuzz attacks multiple-choice questions: the benchmark needs options", key="--dataset"
        )
    out = Path(out_dir) if out_dir else Path("runs") / time.strftime("eval-medfuzz-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    result = MedfuzzResult(
        benchmark=str(benchmark), out_dir=str(out), attacker=str(attacker_path), turns=turns
    )
    async with contextlib.AsyncExitStack() as stack:
        stages = StageRunner(out, stack, endpoints, concurrency, no_cache, embedded, progress)
        for solver in solvers:
            base_dir, attacks, runs, stopped = await _attack_solver(
                stages, solver.label, solver.path, attacker_path, items, turns, overrides
            )
            _keep_successes(out, slug(solver.label), attacks, runs)
            result.attacks.extend(attacks)
            result.solvers.append(
                summarize_medfuzz(solver.label, str(solver.path), str(base_dir), attacks, turns).model_copy(
                    update={"stopped": stopped}
                )
            )
    return result


MEDFUZZ_COLUMNS = (
    "solver",
    "n",
    "acc. before",
    "acc. after",
    "flips / attacked",
    "turns to flip",
    "guard rejected",
    "guard ctrl yes",
    "p",
)


def medfuzz_cells(s: MedfuzzSummary) -> list[str]:
    return [
        s.solver,
        str(s.n),
        f"{s.accuracy_before:.1%}",
        f"{s.accuracy_after:.1%}",
        f"{s.flips}/{s.attacked} ({s.flip_rate:.0%})" if s.attacked else "0/0",
        f"{s.mean_turns_to_flip:.2f}" if s.mean_turns_to_flip is not None else "–",
        str(s.guard_rejections),
        f"{s.guard_control_yes}/{s.guard_controls}" if s.guard_controls else "–",
        f"{s.significance.p_one_sided:.4g}",
    ]


def write_medfuzz(result: MedfuzzResult) -> dict[str, Path]:
    """``medfuzz.json`` (summaries), ``medfuzz_attacks.jsonl`` (every attacked question, every
    turn) and ``medfuzz.md`` (the table and the successful attacks)."""
    lines = [
        f"# MedFuzz on {Path(result.benchmark).name} (≤ {result.turns} turns, attacker `{result.attacker}`)",
        "",
        *markdown_table(MEDFUZZ_COLUMNS, (medfuzz_cells(s) for s in result.solvers)),
        "",
        "Only questions answered correctly at baseline are attacked. A flip is the first turn whose "
        "rewrite passed the guard and that the solver no longer answers correctly. p: one-sided exact paired "
        "permutation test (= exact McNemar) of the drop in accuracy. guard ctrl yes: the guard passed "
        "another question's text with these options (should be no); a high rate means the guard "
        "checks nothing and the flips are not evidence.",
        "",
        *(f"**{s.solver} stopped early**: {s.stopped}" for s in result.solvers if s.stopped),
        "",
        "## Successful attacks",
        "",
    ]
    for a in result.attacks:
        if a.flipped_at is None:
            continue
        t = a.turns[a.flipped_at - 1]
        lines += [
            f"- {a.solver} / {a.item_id} (turn {t.turn}): gold {a.gold}, now {t.answer or 'no answer'}; "
            f"events `{a.events_file}`",
            f"  > {t.rewrite[:400]}",
        ]
    return write_summary(Path(result.out_dir), "medfuzz", result, "attacks", result.attacks, lines)
