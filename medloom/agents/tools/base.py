"""Tools: a name, a description, a JSON schema for the arguments, and a function.

A plain Python function becomes a tool with :func:`tool` (the schema comes from its type hints);
``@register_tool`` also makes it usable by name in a recipe's ``tools:`` list::

    @register_tool
    def drug_price(drug: str, country: str = "US") -> str:
        "Price of a drug in a country."
        ...

Recipes name *tool sets*: a registered factory ``(ToolEnv, params) -> list[Tool]`` (``kg`` gives
the knowledge-graph tools, ``search`` the passage search, ``mcp`` the tools of an MCP server).
A :class:`ToolBox` runs calls: invalid JSON, unknown tools, arguments that break the schema and
exceptions in the tool become an error result the agent reads, never a crash.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jsonschema
from pydantic import create_model

from medloom.core.calls import ToolCall
from medloom.core.registry import REGISTRY
from medloom.kg.spec import KGSpec
from medloom.kg.store import LoadedKG, load_kg

ToolFunction = Callable[..., Any | Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    """JSON schema of the arguments object."""
    function: ToolFunction

    def spec(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


@dataclass(frozen=True)
class ToolResult:
    call: ToolCall
    content: str
    error: bool = False


def tool(function: ToolFunction | None = None, *, name: str | None = None) -> Any:
    """Decorator: a :class:`Tool` from a function (its docstring is the description, its typed
    parameters the schema)."""

    def wrap(fn: ToolFunction) -> Tool:
        return Tool(
            name=name or fn.__name__,
            description=inspect.cleandoc(fn.__doc__ or fn.__name__),
            parameters=schema_of(fn),
            function=fn,
        )

    return wrap(function) if function is not None else wrap


def schema_of(fn: ToolFunction) -> dict[str, Any]:
    """The JSON schema of ``fn``'s keyword arguments, from its type hints."""
    hints = inspect.get_annotations(fn, eval_str=True)
    fields: dict[str, Any] = {}
    for pname, param in inspect.signature(fn).parameters.items():
        annotation = hints.get(pname, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (annotation, default)
    schema = create_model(f"{fn.__name__}_args", **fields).model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


@dataclass
class ToolEnv:
    """What tool sets may use: the recipe's knowledge graph and where the recipe lives."""

    kg_spec: KGSpec | None = None
    base_dir: Path | None = None
    _kg: LoadedKG | None = field(default=None, repr=False)

    @property
    def kg(self) -> LoadedKG:
        if self._kg is None:
            self._kg = load_kg(self.kg_spec, self.base_dir)
        return self._kg


class ToolSetFactory(Protocol):
    def __call__(self, env: ToolEnv, params: dict[str, Any]) -> list[Tool]: ...


def register_toolset(name: str) -> Callable[[ToolSetFactory], ToolSetFactory]:
    """Decorator: a factory of tools recipes name as ``tools: [NAME]`` or ``{NAME: {params}}``."""

    def wrap(factory: ToolSetFactory) -> ToolSetFactory:
        REGISTRY.add("tool", name, factory)
        return factory

    return wrap


def register_tool(function: ToolFunction | Tool) -> Tool:
    """Decorator: make a function (or a :class:`Tool`) usable by its name in ``tools:``."""
    made = function if isinstance(function, Tool) else tool(function)
    REGISTRY.add("tool", made.name, lambda env, params: [made])
    return made


def build_tools(refs: list[str | dict[str, dict[str, Any]]], env: ToolEnv) -> list[Tool]:
    """The tools of a recipe's ``tools:`` list; raises KeyError/ValueError naming what is wrong."""
    tools: list[Tool] = []
    for ref in refs:
        name, params = (ref, {}) if isinstance(ref, str) else next(iter(ref.items()))
        factory: ToolSetFactory = REGISTRY.get("tool", name)
        tools.extend(factory(env, params or {}))
    names = [t.name for t in tools]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"tools named twice: {', '.join(duplicates)} (drop one of the tool sets)")
    return tools


class ToolBox:
    """Runs tool calls by name, validating arguments against each tool's schema."""

    def __init__(self, tools: list[Tool], *, max_chars: int = 4000, timeout_s: float = 60.0):
        self.tools = {t.name: t for t in tools}
        self.max_chars = max_chars
        self.timeout_s = timeout_s

    def specs(self) -> list[dict[str, Any]]:
        return [t.spec() for t in self.tools.values()]

    async def call(self, call: ToolCall) -> ToolResult:
        """The result of one call; every failure is an error result that says how to fix it."""
        found = self.tools.get(call.name)
        if found is None:
            return ToolResult(
                call, f"error: unknown tool '{call.name}' (tools: {', '.join(self.tools)})", True
            )
        try:
            arguments = json.loads(call.arguments or "{}")
        except json.JSONDecodeError as exc:
            return ToolResult(
                call, f"error: arguments are not valid JSON ({exc.msg}); send a JSON object", True
            )
        if not isinstance(arguments, dict):
            return ToolResult(call, "error: arguments must be a JSON object", True)
        try:
            jsonschema.validate(arguments, found.parameters)
        except jsonschema.ValidationError as exc:
            where = ".".join(str(p) for p in exc.absolute_path) or "arguments"
            return ToolResult(
                call, f"error: invalid arguments for '{call.name}' at {where}: {exc.message}", True
            )
        try:
            async with asyncio.timeout(self.timeout_s):
                out = found.function(**arguments)
                if inspect.isawaitable(out):
                    out = await out
        except TimeoutError:
            return ToolResult(call, f"error: '{call.name}' timed out after {self.timeout_s:g}s", True)
        except Exception as exc:  # a tool's failure is the agent's information, not the run's crash
            return ToolResult(call, f"error: {type(exc).__name__}: {exc}", True)
        return ToolResult(call, self._text(out))

    def _text(self, out: Any) -> str:
        text = out if isinstance(out, str) else json.dumps(out, ensure_ascii=False, default=str)
        if len(text) > self.max_chars:
            text = text[: self.max_chars] + f"… [truncated at {self.max_chars} characters]"
        return text
