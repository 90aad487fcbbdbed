"""Tools of an MCP server (tool set ``mcp``), started over stdio with the ``mcp`` package::

    tools:
      - mcp: {command: python, args: [my_server.py], env: {KEY: value}, prefix: "lab_"}

The server starts when the node is built and lives until the process ends (or :func:`close_all`),
on a thread of its own: one session serves every item's calls. Its tools keep their names
(``prefix`` is prepended when given) and their input schemas, so arguments are validated before a
call; a result the server flags as an error reaches the agent as an error result.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import threading
from concurrent.futures import Future
from typing import Any

from medloom.agents.tools.base import Tool, ToolEnv, register_toolset

_PARAMS = {"command", "args", "env", "cwd", "prefix", "start_timeout_s"}


class McpToolError(RuntimeError):
    """The server answered a call with an error result."""


class McpServer:
    """One stdio MCP server and its open session, driven from any event loop."""

    def __init__(
        self, command: str, args: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None
    ):
        self.command, self.args, self.env, self.cwd = command, args, env, cwd
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: Any = None
        self._stop: asyncio.Event | None = None
        self._ready: Future[list[Any]] = Future()
        self._thread = threading.Thread(target=self._serve, name=f"mcp:{command}", daemon=True)

    def start(self, timeout_s: float = 60.0) -> list[Any]:
        """Start the server; its tool descriptions (raises with the server's error)."""
        self._thread.start()
        return self._ready.result(timeout=timeout_s)

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced to start(); a later crash fails the calls
            if not self._ready.done():
                self._ready.set_exception(exc)

    async def _main(self) -> None:
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client

        env = {**os.environ, **self.env} if self.env else None
        params = StdioServerParameters(command=self.command, args=self.args, env=env, cwd=self.cwd)
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            listed = await session.list_tools()
            self._session = session
            self._ready.set_result(list(listed.tools))
            await self._stop.wait()

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        """The text of a tool's result; raises McpToolError when the server flags an error."""
        if self._loop is None or self._session is None or not self._thread.is_alive():
            raise RuntimeError(f"MCP server '{self.command}' is not running")
        future = asyncio.run_coroutine_threadsafe(self._session.call_tool(name, arguments), self._loop)
        result = await asyncio.wrap_future(future)
        parts = [getattr(block, "text", None) for block in result.content]
        text = "\n".join(p for p in parts if p is not None)
        structured = getattr(result, "structured_content", None) or getattr(result, "structuredContent", None)
        if not text and structured is not None:
            text = json.dumps(structured, ensure_ascii=False)
        if getattr(result, "is_error", None) or getattr(result, "isError", None):
            raise McpToolError(text or "the tool reported an error")
        return text

    def close(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=10)


_servers: list[McpServer] = []


def close_all() -> None:
    """Stop every MCP server this process started."""
    while _servers:
        _servers.pop().close()


atexit.register(close_all)


def _tool(server: McpServer, described: Any, prefix: str) -> Tool:
    remote = described.name
    schema = getattr(described, "input_schema", None) or getattr(described, "inputSchema", None) or {}

    async def call(**arguments: Any) -> str:
        return await server.call(remote, arguments)

    return Tool(
        name=f"{prefix}{remote}",
        description=described.description or remote,
        parameters=schema or {"type": "object", "properties": {}},
        function=call,
    )


@register_toolset("mcp")
def mcp_toolset(env: ToolEnv, params: dict[str, Any]) -> list[Tool]:
    """``{mcp: {command: CMD, args: [...], env: {...}, cwd: DIR, prefix: ""}}``."""
    unknown = set(params) - _PARAMS
    if unknown or "command" not in params:
        raise ValueError(
            f"tool set 'mcp' needs 'command' (and takes {', '.join(sorted(_PARAMS))})"
            + (f"; unknown: {sorted(unknown)}" if unknown else "")
        )
    cwd = params.get("cwd") or (str(env.base_dir) if env.base_dir else None)
    server = McpServer(
        str(params["command"]), [str(a) for a in params.get("args", [])], env=params.get("env"), cwd=cwd
    )
    try:
        described = server.start(float(params.get("start_timeout_s", 60)))
    except Exception as exc:
        raise ValueError(
            f"MCP server '{params['command']}' did not start: {type(exc).__name__}: {exc}"
        ) from exc
    _servers.append(server)
    return [_tool(server, d, str(params.get("prefix", ""))) for d in described]
