"""Budget caps of a run (``run.budget``): checked against the config, seeded with what the run's
earlier sessions paid (read from its trajectories), and the ledger the session charges."""

from __future__ import annotations

from pathlib import Path

from medloom.core.budget import BudgetCaps, LocalBudgetLedger, Spend
from medloom.core.errors import ConfigError
from medloom.core.events import EmbeddingCall, LLMCall
from medloom.core.usage import Price, UsageTally
from medloom.graphs.spec import GraphSpec
from medloom.runs.store import iter_events

CALL_TYPES = {"llm_call", "embedding_call"}


def check_budget(spec: GraphSpec, *, file: str | None = None, models: dict[str, str] | None = None) -> None:
    """A cost cap needs a price for every model the run calls; a :class:`ConfigError` otherwise.

    ``models`` are the served names (recipe name → served name) once known; before that only the
    models the recipe names explicitly are checked."""
    if spec.run.budget.max_cost is None:
        return
    key = "run.budget.max_cost"
    prices = spec.llm.prices
    if not prices:
        raise ConfigError(
            "a cost cap needs prices: add llm.prices.MODEL: {prompt: P, completion: C} (per million "
            "tokens) for each model, or cap tokens or calls instead (--max-tokens, --max-calls)",
            file=file,
            key=key,
        )
    named = models if models is not None else {n: m.model for n, m in spec.models.items() if m.model}
    unpriced = sorted({served for served in named.values() if served not in prices})
    if unpriced:
        raise ConfigError(
            f"a cost cap needs a price for every model; none in llm.prices for {', '.join(unpriced)} "
            f"(priced: {', '.join(sorted(prices))})",
            file=file,
            key=key,
        )


def spent_before(trajectories: Path, prices: dict[str, Price]) -> Spend:
    """What the calls recorded in a run's trajectories paid (every session, finished items or not)."""
    tally = UsageTally()
    for _, event in iter_events(trajectories, CALL_TYPES):
        if isinstance(event, LLMCall):
            tally.add(event.response, prices.get(event.request.model))
        elif isinstance(event, EmbeddingCall):
            tally.add(event.response, prices.get(event.model))
    return Spend.of(tally)


def session_ledger(
    caps: BudgetCaps, trajectories: Path, prices: dict[str, Price]
) -> LocalBudgetLedger | None:
    """The in-process ledger of a session with caps (None without any), seeded with the earlier spend:
    the caps bound the whole run, so a resume goes on only under a raised cap."""
    if not caps.any:
        return None
    return LocalBudgetLedger(caps, spent_before(trajectories, prices))
