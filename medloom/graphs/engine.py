"""Execute a graph over items: concurrent, streaming, every item ends kept, rejected or failed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator

from medloom.agents.context import AgentContext
from medloom.core.budget import BudgetLedger, CapReached
from medloom.core.errors import LLMError
from medloom.core.events import (
    EmbeddingCall,
    Event,
    ItemFinished,
    ItemStarted,
    LLMCall,
    NodeStats,
    RowSkipped,
    TraceDropped,
)
from medloom.core.records import Item, Trace
from medloom.core.rows import trace_row
from medloom.graphs.runtime import Runtime
from medloom.nodes.protocol import ItemMemory, NodeContext

log = logging.getLogger("medloom.engine")

EventSink = Callable[[Event], None]


class NodeFailure(Exception):
    """An item failed at a node; wraps the cause."""

    def __init__(self, node: str, cause: BaseException):
        self.node = node
        self.cause = cause
        super().__init__(f"{node}: {cause}")


class LoopLimit(RuntimeError):
    """An item entered one node more often than the graph's loops allow."""


class ItemRun:
    """One item's way through the graph."""

    def __init__(self, rt: Runtime, item: Item, ctx: AgentContext, run_id: str):
        self.rt = rt
        self.item = item
        self.ctx = ctx
        self.run_id = run_id
        self.spec = rt.compiled.spec
        self.stats: dict[str, NodeStats] = defaultdict(NodeStats)
        self.pending: dict[str, list[Trace]] = defaultdict(list)
        self.final: list[Trace] = []
        self.drops: list[tuple[str, str, str]] = []
        self.memory = ItemMemory()
        self.visits: Counter[str] = Counter()
        self.entries = set(rt.compiled.entries)
        self.rejected: tuple[str, str, str] | None = None
        """An item-level rejection by a node: (node, reason, code)."""

    def count_call(self, event: LLMCall | EmbeddingCall) -> None:
        if event.node is not None:
            model = event.model if isinstance(event, EmbeddingCall) else event.request.model
            self.stats[event.node].add(event.response, self.rt.prices.get(model))

    async def run(self) -> ItemFinished:
        for component in self.rt.compiled.components:
            while True:
                progressed = False
                for node in component:
                    if node in self.entries:
                        if node in self.stats:
                            continue
                        progressed = True
                        self.route(node, await self._run_node(node, []))
                        continue
                    batch = self.pending.pop(node, [])
                    if not batch:
                        continue
                    progressed = True
                    self.stats[node].traces_in += len(batch)
                    self.route(node, await self._run_node(node, batch))
                if self.rejected or not progressed or not any(self.pending.get(n) for n in component):
                    break
            if self.rejected:
                break
        return self.finish()

    async def _run_node(self, node: str, batch: list[Trace]) -> list[Trace]:
        """Run ``node`` on ``batch``; apply its item update, drops and rejection."""
        self.visits[node] += 1
        limit = self.rt.compiled.max_visits
        if self.visits[node] > limit:
            raise NodeFailure(
                node,
                LoopLimit(
                    f"entered {limit} times for one item: a loop through it does not end; bound it "
                    "with a refiner (max_rounds) or raise run.max_node_visits"
                ),
            )
        ctx = NodeContext(
            item_id=self.ctx.item_id,
            attempt=self.ctx.attempt,
            node=node,
            emit=self.ctx.emit,
            stats=self.stats[node],
            memory=self.memory,
        )
        try:
            out = await self.rt.nodes[node].run(self.item, batch, ctx)
        except Exception as exc:
            raise NodeFailure(node, exc) from exc
        if out.item is not None:
            self.item = out.item
        for drop in out.drops:
            self.drop(node, drop.trace, drop.reason, code=drop.code, event=drop.announce)
        if out.reject is not None:
            self.rejected = (node, out.reject, out.reject_code or f"rejected by {node}")
            self.pending.clear()
            self.stats[node].dropped += 1
            return []
        return out.traces

    def drop(self, node: str, trace: Trace, reason: str, *, code: str, event: bool = True) -> None:
        """Record that ``trace`` stops at ``node``; ``code`` is a short category for reports."""
        self.stats[node].dropped += 1
        self.drops.append((node, reason, code))
        if event:
            self.ctx.send(
                TraceDropped(
                    item_id=self.item.id,
                    attempt=self.ctx.attempt,
                    node=node,
                    trace_id=trace.id,
                    reason=reason,
                )
            )

    def route(self, node: str, traces: list[Trace]) -> None:
        """Send each trace along its first matching out-edge; keep it if the node is final."""
        routes = self.rt.compiled.routes[node]
        self.stats[node].traces_out += len(traces)
        for trace in traces:
            target = next((v for v, conditions in routes if any(c.holds(trace) for c in conditions)), None)
            if target is not None:
                self.pending[target].append(trace)
            elif not routes:
                self.final.append(trace)
            else:
                verdict = trace.last_verdict
                if verdict is not None and not verdict.passed:
                    self.drop(node, trace, verdict.reason, code=f"failed {', '.join(verdict.failing)}")
                else:
                    self.drop(node, trace, "no edge condition matched", code="no edge matched")

    def finish(self) -> ItemFinished:
        out = self.spec.output
        if self.rejected:
            node, reason, code = self.rejected
            end = self._end("rejected", node=node, reason=reason)
            return end.model_copy(update={"reason_code": code})
        if self.final:
            rows = [trace_row(self.item, t, self.run_id, out.passthrough, out.columns) for t in self.final]
            return self._end("kept", node=None, reason=None, rows=rows)
        if not self.drops:
            return self._end("rejected", node=None, reason="no trace reached a final node")
        by_node = Counter(n for n, _, _ in self.drops)
        last_at = {n: i for i, (n, _, _) in enumerate(self.drops)}
        node = max(by_node, key=lambda n: (by_node[n], last_at[n]))
        codes = Counter(c for n, _, c in self.drops if n == node)
        reasons = Counter(r for n, r, _ in self.drops if n == node)
        summary = " | ".join(f"{r} (×{c})" if c > 1 else r for r, c in reasons.most_common(3))
        end = self._end("rejected", node=node, reason=summary)
        return end.model_copy(update={"reason_code": codes.most_common(1)[0][0]})

    def _end(
        self,
        status: str,
        *,
        node: str | None,
        reason: str | None,
        rows: list[dict[str, object]] | None = None,
    ) -> ItemFinished:
        return ItemFinished(
            item_id=self.item.id,
            attempt=self.ctx.attempt,
            node=node,
            status=status,  # type: ignore[arg-type]
            reason=reason,
            rows=rows or [],
            item={"question": self.item.question, "options": self.item.options, "answer": self.item.answer},
            stats=dict(self.stats),
        )


class Engine:
    """Runs items through a runtime with bounded concurrency, streaming from an iterator."""

    def __init__(
        self,
        rt: Runtime,
        sink: EventSink,
        *,
        run_id: str,
        attempt: int = 0,
        concurrency: int = 16,
        on_item_done: Callable[[ItemFinished], None] | None = None,
        budget: BudgetLedger | None = None,
    ):
        """With ``budget``, each item starts only while no cap is reached; :attr:`stopped_by` then
        says which cap stopped the run (the items in flight finish)."""
        self.rt = rt
        self.sink = sink
        self.run_id = run_id
        self.attempt = attempt
        self.concurrency = concurrency
        self.on_item_done = on_item_done
        self.budget = budget
        self.stopped_by: CapReached | None = None

    async def run_item(self, item: Item) -> ItemFinished:
        """One item, start to end; never raises for the item's own failures."""
        started = time.perf_counter()
        runner: ItemRun

        def emit(event: Event) -> None:
            if isinstance(event, LLMCall | EmbeddingCall):
                runner.count_call(event)
            self.sink(event)

        ctx = AgentContext(item_id=item.id, attempt=self.attempt, emit=emit)
        runner = ItemRun(self.rt, item, ctx, self.run_id)
        self.sink(ItemStarted(item_id=item.id, attempt=self.attempt, index=item.index, input=item.data))
        try:
            end = await runner.run()
        except NodeFailure as failure:
            cause = failure.cause
            if not isinstance(cause, LLMError):
                log.exception("internal error on item %s at node %s", item.id, failure.node, exc_info=cause)
            kind = "" if isinstance(cause, LLMError) else f"{type(cause).__name__}: "
            end = runner._end("failed", node=failure.node, reason=f"{kind}{cause}")
        end = end.model_copy(update={"wall_s": round(time.perf_counter() - started, 4)})
        self.sink(end)
        if self.on_item_done:
            self.on_item_done(end)
        return end

    async def run(self, items: Iterable[tuple[int, Item | Exception]], done: set[str] | None = None) -> None:
        """Process ``items`` (bad rows come as exceptions and are recorded as skipped)."""
        done = done or set()
        iterator: Iterator[tuple[int, Item | Exception]] = iter(items)
        lock = asyncio.Lock()

        async def next_item() -> Item | None:
            async with lock:
                if self.stopped_by is not None:
                    return None
                for index, entry in iterator:
                    if isinstance(entry, Exception):
                        self.sink(
                            RowSkipped(
                                item_id=f"row-{index}", attempt=self.attempt, index=index, reason=str(entry)
                            )
                        )
                        log.warning("row %d skipped: %s", index, entry)
                        continue
                    if entry.id in done:
                        continue
                    if self.budget is not None and (reached := await self.budget.exceeded()) is not None:
                        self.stopped_by = reached  # this item and the rest wait for a resume
                        log.warning("%s", reached.message())
                        return None
                    return entry
                return None

        async def worker() -> None:
            while (item := await next_item()) is not None:
                await self.run_item(item)

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
