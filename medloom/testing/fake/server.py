"""The fake endpoint over a real socket: an aiohttp server on its own event loop in a background
thread, reachable from this process and from others::

    with FakeOpenAIServer(lambda req: "hello world") as srv:
        client = LLMClient.from_urls([srv.base_url])

``GET /_fake/stats`` returns the request/token counters as JSON (handy across processes). The
responder runs on the server's event loop, so it must not block.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Sequence
from types import TracebackType

from aiohttp import web

from medloom.testing.fake.endpoint import FakeEndpoint, Outcome
from medloom.testing.fake.responders import DownMode, Embedder, Responder

_JSON = "application/json"


class FakeOpenAIServer(FakeEndpoint):
    """OpenAI-compatible HTTP fake on ``host:port`` (port 0 → OS-chosen), in its own thread.

    Use as a context manager or call ``start()`` / ``stop()``. All public methods and
    properties are thread-safe and may be called from any thread (including the responder).
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        models: Sequence[str] = ("fake-model",),
        host: str = "127.0.0.1",
        port: int = 0,
        strict_models: bool = False,
        record_requests: bool = True,
        backlog: int = 2048,
        embedder: Embedder | None = None,
    ) -> None:
        super().__init__(
            responder,
            models=models,
            strict_models=strict_models,
            record_requests=record_requests,
            embedder=embedder,
        )
        self.host = host
        self._port = port
        self._backlog = backlog
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: web.Server | None = None
        self._runner: web.ServerRunner | None = None
        self._site: web.SockSite | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> FakeOpenAIServer:
        """Start serving in a background thread; returns once the port is listening."""
        if self._thread is not None:
            raise RuntimeError("FakeOpenAIServer already started")
        self._down = None
        ready = threading.Event()
        errors: list[BaseException] = []
        thread = threading.Thread(
            target=self._run, args=(ready, errors), name="FakeOpenAIServer", daemon=True
        )
        self._thread = thread
        thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("FakeOpenAIServer did not start in time")
        if errors:
            thread.join()
            self._thread = None
            raise errors[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: drop open connections, close the port and join the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if thread is threading.current_thread():
            raise RuntimeError("stop() cannot be called from the server's own thread")
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._ashutdown(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._astart())
        except BaseException as exc:
            errors.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None

    async def _astart(self) -> None:
        self._server = web.Server(self._dispatch, handler_cancellation=True, access_log=None)
        self._runner = web.ServerRunner(self._server, shutdown_timeout=1.0)
        await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        assert self._runner is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._port))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self._site = web.SockSite(self._runner, sock, backlog=self._backlog)
        await self._site.start()

    async def _unlisten(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None
        self._close_connections()

    def _close_connections(self) -> None:
        if self._server is not None:
            for handler in self._server.connections:
                handler.force_close()

    async def _ashutdown(self) -> None:
        await self._unlisten()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._server = None

    # -- addresses -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the OS-chosen one once started with ``port=0``)."""
        return self._port

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        """OpenAI base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    # -- availability --------------------------------------------------------------------

    def set_down(self, down: bool = True, mode: DownMode = "drop") -> None:
        """Make the server unavailable (or available again with ``down=False``).

        ``"drop"`` accepts connections and closes them without a response; ``"503"``
        answers every request with a 503 error; ``"refuse"`` closes the listening socket
        and open connections so connects are refused; coming back up re-binds the SAME port.
        """
        if mode not in ("drop", "refuse", "503"):
            raise ValueError(f"unknown down mode {mode!r}")
        loop = self._loop
        if loop is None or self._thread is None:
            raise RuntimeError("FakeOpenAIServer is not running")
        coro = self._aset_down(mode if down else None)
        if threading.current_thread() is self._thread:
            loop.create_task(coro)
        else:
            asyncio.run_coroutine_threadsafe(coro, loop).result(10.0)

    async def _aset_down(self, mode: DownMode | None) -> None:
        previous, self._down = self._down, mode
        if mode == "refuse" and previous != "refuse":
            await self._unlisten()
        elif mode != "refuse" and previous == "refuse":
            await self._listen()
        if mode == "drop":
            self._close_connections()

    # -- request handling ----------------------------------------------------------------

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read() if request.method == "POST" else None
        outcome = await self.handle(request.method, request.path, body, request.headers)
        if outcome.drop:
            return self._drop(request)
        return _response(outcome)

    @staticmethod
    def _drop(request: web.BaseRequest) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()
        # Writing this to the aborted transport fails quietly inside aiohttp.
        return web.Response(status=499)


def _response(outcome: Outcome) -> web.Response:
    return web.Response(
        body=outcome.body_bytes(), status=outcome.status, headers=outcome.headers, content_type=_JSON
    )
