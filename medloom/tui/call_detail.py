"""One LLM call: prompt, response, tokens, latency, endpoint, cache hit."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from medloom.core.events import LLMCall


def render_call(call: LLMCall) -> RenderableType:
    req, resp = call.request, call.response
    facts = Table.grid(padding=(0, 1))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("agent", f"{call.agent} (node {call.node})")
    facts.add_row("model", f"{req.model} · {req.mode}")
    facts.add_row("sampling", f"T={req.temperature} n={req.n} max_tokens={req.max_tokens}")
    if resp is None:
        facts.add_row("error", Text(call.error or "unknown", style="red"))
        return Group(facts, _prompt(call))
    facts.add_row("endpoint", resp.endpoint or "?")
    facts.add_row("tokens", f"{resp.usage.prompt_tokens} prompt + {resp.usage.completion_tokens} completion")
    facts.add_row("latency", f"{resp.latency_s:.3f} s, {resp.attempts} attempt(s)")
    facts.add_row("cache", Text("hit", style="cyan") if resp.cache_hit else "miss")
    if resp.errors:
        facts.add_row("retried", Text("; ".join(resp.errors), style="yellow"))
    parts: list[RenderableType] = [facts, _prompt(call)]
    for choice in resp.choices:
        title = f"response {choice.index} ({choice.finish_reason or '?'})"
        parts.append(Panel(Text(choice.text), title=title, title_align="left", border_style="green"))
    return Group(*parts)


def _prompt(call: LLMCall) -> RenderableType:
    req = call.request
    if req.messages is not None:
        body = Text()
        for msg in req.messages:
            body.append(f"[{msg.role}]\n", style="bold")
            body.append(msg.content + "\n")
    else:
        body = Text(req.prompt or "")
    return Panel(body, title="prompt", title_align="left", border_style="blue")
