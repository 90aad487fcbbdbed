"""An in-process, real-socket fake of the OpenAI HTTP API for tests and benchmarks.

``FakeOpenAIServer`` serves ``/v1/completions``, ``/v1/chat/completions``, ``/v1/embeddings``,
``/v1/models`` and ``/health`` from an aiohttp server running on its own event loop in a background
thread, so both in-process clients and other processes can reach it::

    with FakeOpenAIServer(lambda req: "hello world") as srv:
        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="x", max_retries=0)

``GET /_fake/stats`` returns the request/token counters as JSON (handy across processes).
Replies are scripted by a *responder*: ``responder(req: FakeRequest) -> Reply | str |
list[str]`` (or an awaitable of one). It runs on the server's event loop, so it must not
block. Tokens are whitespace-separated words everywhere (usage, ``max_tokens``, logprobs).

Run standalone (for subprocess tests) with::

    python -m medloom.testing.fake_openai --port 0 --script MODULE:CALLABLE --port-file PATH
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeAlias, cast

from aiohttp import web

__all__ = [
    "DownMode",
    "Embedder",
    "FakeOpenAIServer",
    "FakeRequest",
    "Matcher",
    "Reply",
    "ReplyLike",
    "Responder",
    "Rule",
    "ScriptedResponder",
    "echo_responder",
    "hashed_bag_of_words",
    "main",
]

log = logging.getLogger(__name__)

RequestKind: TypeAlias = Literal["completion", "chat"]
DownMode: TypeAlias = Literal["drop", "refuse", "503"]

_WORD_RE = re.compile(r"\S+")
_TOKEN_RE = re.compile(r"\s*\S+")  # a word with its leading whitespace; tokens join to text
_JSON = "application/json"
_ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "bad_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout", "request_timeout"),
    409: ("invalid_request_error", "conflict"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "gateway_timeout"),
}


@dataclass(slots=True)
class FakeRequest:
    """One completion/chat request as the responder sees it."""

    kind: RequestKind
    body: dict[str, Any]
    prompt_text: str
    model: str
    n: int
    index_in_run: int
    attempt: int
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Chat messages (empty for completions)."""
        return cast(list[dict[str, Any]], self.body.get("messages") or [])


@dataclass(frozen=True, slots=True)
class Reply:
    """What the fake answers: texts on success, or an error/slow/garbage/dropped reply.

    ``texts`` is one text for every choice or a list of per-choice texts (cycled to ``n``).
    ``delay_s`` applies before any outcome. ``finish_reason`` overrides the computed one.
    """

    texts: str | Sequence[str] = ""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    malformed: bool = False
    drop_connection: bool = False
    error_message: str | None = None
    finish_reason: str | None = None
    token_logprob: float = -0.5

    @classmethod
    def error(cls, status: int, retry_after: float | None = None, message: str | None = None) -> Reply:
        """An OpenAI-style error reply, optionally with a ``Retry-After`` header (seconds)."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            ra = int(retry_after) if float(retry_after).is_integer() else retry_after
            headers["Retry-After"] = str(ra)
        return cls(status=status, headers=headers, error_message=message)

    @classmethod
    def slow(cls, seconds: float, text: str | Sequence[str] = "") -> Reply:
        """A successful reply sent after ``seconds``."""
        return cls(texts=text, delay_s=seconds)

    @classmethod
    def garbage(cls) -> Reply:
        """HTTP 200 with a truncated JSON body (the openai SDK raises ``json.JSONDecodeError``)."""
        return cls(texts="garbage", malformed=True)

    @classmethod
    def disconnect(cls) -> Reply:
        """Close the connection without sending any response."""
        return cls(drop_connection=True)


_PLAIN = Reply()
ReplyLike: TypeAlias = Reply | str | Sequence[str]
Responder: TypeAlias = Callable[[FakeRequest], ReplyLike | Awaitable[ReplyLike]]
Matcher: TypeAlias = str | Callable[[FakeRequest], bool]
_Handler: TypeAlias = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


Embedder: TypeAlias = Callable[[str], Sequence[float]]


def hashed_bag_of_words(text: str, dim: int = 64) -> list[float]:
    """Default embedder: a deterministic, L2-normalised bag of hashed lowercase words, so texts
    sharing words are close (enough for tests of nearest-neighbour code)."""
    vector = [0.0] * dim
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[int(hashlib.blake2b(word.encode(), digest_size=4).hexdigest(), 16) % dim] += 1.0
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]


def echo_responder(req: FakeRequest) -> str:
    """Default responder: answer with the prompt text (chat: the last message's content)."""
    if req.kind == "chat" and req.messages:
        return _content_text(req.messages[-1].get("content"))
    return req.prompt_text


@dataclass(slots=True)
class Rule:
    """``ScriptedResponder`` rule: first matching rule wins; ``times`` limits its uses."""

    match: Matcher
    reply: ReplyLike | Responder
    times: int | None = None
    used: int = 0

    def matches(self, req: FakeRequest) -> bool:
        if self.times is not None and self.used >= self.times:
            return False
        if isinstance(self.match, str):
            return self.match in req.prompt_text
        return bool(self.match(req))


class ScriptedResponder:
    """A responder from ordered rules (prompt substring or predicate → reply or callable)::

    script = ScriptedResponder(default="fallback").add("capital of France", "Paris")
    script.add(lambda q: q.attempt == 0, Reply.error(503), times=1)
    """

    def __init__(
        self,
        rules: Iterable[Rule | tuple[Matcher, ReplyLike | Responder]] = (),
        default: ReplyLike | Responder = echo_responder,
    ) -> None:
        self.rules: list[Rule] = [r if isinstance(r, Rule) else Rule(r[0], r[1]) for r in rules]
        self.default = default
        self._lock = threading.Lock()

    def add(
        self, match: Matcher, reply: ReplyLike | Responder, *, times: int | None = None
    ) -> ScriptedResponder:
        """Append a rule; returns ``self`` for chaining."""
        self.rules.append(Rule(match, reply, times))
        return self

    def __call__(self, req: FakeRequest) -> ReplyLike | Awaitable[ReplyLike]:
        outcome: ReplyLike | Responder = self.default
        with self._lock:
            for rule in self.rules:
                if rule.matches(req):
                    rule.used += 1
                    outcome = rule.reply
                    break
        if callable(outcome):
            return outcome(req)
        return outcome


# -- response shaping --------------------------------------------------------------------


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multi-part content: keep the text parts
        return "".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def _prompt_text(kind: RequestKind, body: dict[str, Any]) -> str:
    if kind == "chat":
        messages = body.get("messages") or []
        return "\n".join(_content_text(m.get("content")) if isinstance(m, dict) else str(m) for m in messages)
    prompt = body.get("prompt", "")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):  # batched or token-id prompts are flattened into one
        return "\n".join(p if isinstance(p, str) else json.dumps(p) for p in prompt)
    return str(prompt)


def _count_tokens(text: str) -> int:
    return len(text.split())


def _shape_text(text: str, stops: Sequence[str], max_tokens: int | None) -> tuple[str, str]:
    """Apply ``stop`` (cut before the earliest stop string) then ``max_tokens`` (words)."""
    finish = "stop"
    if stops:
        cuts = [i for s in stops if s and (i := text.find(s)) >= 0]
        if cuts:
            text = text[: min(cuts)]
    if max_tokens is not None:
        words = list(_WORD_RE.finditer(text))
        if len(words) > max_tokens:
            text = text[: words[max_tokens - 1].end()] if max_tokens > 0 else ""
            finish = "length"
    return text, finish


def _completion_logprobs(text: str, lp: float) -> dict[str, Any]:
    tokens = _TOKEN_RE.findall(text)
    offsets: list[int] = []
    pos = 0
    for tok in tokens:
        offsets.append(pos)
        pos += len(tok)
    return {
        "tokens": tokens,
        "token_logprobs": [lp] * len(tokens),
        "top_logprobs": None,
        "text_offset": offsets,
    }


def _chat_logprobs(text: str, lp: float) -> dict[str, Any]:
    return {
        "content": [
            {"token": t, "logprob": lp, "bytes": None, "top_logprobs": []} for t in _TOKEN_RE.findall(text)
        ],
        "refusal": None,
    }


def _error_body(status: int, message: str | None) -> dict[str, Any]:
    etype, code = _ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", str(status))
    )
    return {
        "error": {
            "message": message or f"fake error {status} ({code})",
            "type": etype,
            "param": None,
            "code": code,
        }
    }


def _json_response(
    payload: dict[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(payload, separators=(",", ":")).encode(),
        status=status,
        headers=headers,
        content_type=_JSON,
    )


def _load_responder(spec: str) -> Responder:
    """``MODULE:CALLABLE`` (or ``path/to/file.py:CALLABLE``) → the responder object."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--script must be MODULE:CALLABLE, got {spec!r}")
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name).resolve()
        mod_spec = importlib.util.spec_from_file_location(path.stem, path)
        if mod_spec is None or mod_spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[path.stem] = module
        mod_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    obj = getattr(module, attr)
    if not callable(obj):
        raise TypeError(f"{spec} is not callable")
    return cast(Responder, obj)


# -- the server ---------------------------------------------------------------------------


class FakeOpenAIServer:
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
        self.responder: Responder = responder or echo_responder
        self.embedder: Embedder = embedder or hashed_bag_of_words
        self.embedding_inputs: list[str] = []
        """Every text sent to ``/v1/embeddings``, in order."""
        self.models = list(models)
        self.host = host
        self.strict_models = strict_models
        self.record_requests = record_requests
        self._port = port
        self._backlog = backlog
        self._lock = threading.Lock()
        self._requests: list[FakeRequest] = []
        self._request_count = 0
        self._completion_tokens = 0
        self._rejected = 0
        self._seen: dict[bytes, int] = {}  # body digest → times seen
        self._down: DownMode | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: web.Server | None = None
        self._runner: web.ServerRunner | None = None
        self._site: web.SockSite | None = None
        self._routes: dict[tuple[str, str], _Handler] = {}
        for prefix in ("/v1", ""):
            self._routes[("POST", f"{prefix}/completions")] = self._completions
            self._routes[("POST", f"{prefix}/chat/completions")] = self._chat
            self._routes[("GET", f"{prefix}/models")] = self._models
            self._routes[("POST", f"{prefix}/embeddings")] = self._embeddings
        self._routes[("GET", "/health")] = self._health
        self._routes[("GET", "/_fake/stats")] = self._stats

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

    # -- public state --------------------------------------------------------------------

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

    @property
    def requests(self) -> list[FakeRequest]:
        """A snapshot of the completion/chat requests received (in arrival order)."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        """Completion/chat requests received (those answered while down are excluded)."""
        with self._lock:
            return self._request_count

    @property
    def completion_tokens_served(self) -> int:
        """Completion tokens in successful (200, well-formed) replies: the "paid" tokens."""
        with self._lock:
            return self._completion_tokens

    @property
    def rejected_count(self) -> int:
        """Requests that hit the server while it was down (drop/503 modes)."""
        with self._lock:
            return self._rejected

    @property
    def down(self) -> DownMode | None:
        """The current down mode, or ``None`` when up."""
        return self._down

    def reset_counts(self) -> None:
        """Forget recorded requests, counters, ``index_in_run`` and ``attempt`` history."""
        with self._lock:
            self._requests.clear()
            self._request_count = 0
            self._completion_tokens = 0
            self._rejected = 0
            self._seen.clear()

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
        if self._down is not None:
            with self._lock:
                self._rejected += 1
            if self._down == "503":
                return _json_response(_error_body(503, "fake server is down"), 503)
            return self._drop(request)
        route = self._routes.get((request.method, request.path))
        if route is None:
            return _json_response(_error_body(404, f"no route {request.method} {request.path}"), 404)
        return await route(request)

    @staticmethod
    def _drop(request: web.BaseRequest) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()
        # Writing this to the aborted transport fails quietly inside aiohttp.
        return web.Response(status=499)

    async def _health(self, request: web.BaseRequest) -> web.StreamResponse:
        return _json_response({"status": "ok"})

    async def _stats(self, request: web.BaseRequest) -> web.StreamResponse:
        with self._lock:
            stats = {
                "request_count": self._request_count,
                "completion_tokens_served": self._completion_tokens,
                "rejected_count": self._rejected,
            }
        return _json_response(stats)

    async def _models(self, request: web.BaseRequest) -> web.StreamResponse:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return _json_response({"object": "list", "data": data})

    async def _embeddings(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except ValueError as exc:
            return _json_response(_error_body(400, f"invalid JSON body: {exc}"), 400)
        raw = body.get("input") if isinstance(body, dict) else None
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return _json_response(_error_body(400, "input must be a string or a list of strings"), 400)
        model = str(body.get("model") or self.models[0])
        if self.strict_models and model not in self.models:
            return _json_response(_error_body(404, f"model {model!r} not found"), 404)
        with self._lock:
            self.embedding_inputs.extend(texts)
        data = [
            {"object": "embedding", "index": i, "embedding": [float(v) for v in self.embedder(t)]}
            for i, t in enumerate(texts)
        ]
        tokens = sum(_count_tokens(t) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return _json_response({"object": "list", "data": data, "model": model, "usage": usage})

    async def _completions(self, request: web.BaseRequest) -> web.StreamResponse:
        return await self._generate(request, "completion")

    async def _chat(self, request: web.BaseRequest) -> web.StreamResponse:
        return await self._generate(request, "chat")

    async def _generate(self, request: web.BaseRequest, kind: RequestKind) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return _json_response(_error_body(400, f"invalid JSON body: {exc}"), 400)
        if not isinstance(body, dict):
            return _json_response(_error_body(400, "body must be a JSON object"), 400)
        if body.get("stream"):
            return _json_response(_error_body(400, "FakeOpenAIServer does not stream"), 400)
        model = str(body.get("model") or self.models[0])
        if self.strict_models and model not in self.models:
            return _json_response(_error_body(404, f"model {model!r} not found"), 404)
        n = int(body.get("n") or 1)
        key = hashlib.blake2b(raw, digest_size=16).digest()
        with self._lock:
            index = self._request_count
            self._request_count += 1
            attempt = self._seen.get(key, 0)
            self._seen[key] = attempt + 1
            req = FakeRequest(
                kind=kind,
                body=body,
                prompt_text=_prompt_text(kind, body),
                model=model,
                n=n,
                index_in_run=index,
                attempt=attempt,
                headers=request.headers,
            )
            if self.record_requests:
                self._requests.append(req)
        request_id = f"req-fake-{index}"

        try:
            out = self.responder(req)
            if inspect.isawaitable(out):
                out = await out
        except Exception as exc:
            log.exception("FakeOpenAIServer responder failed on request %d", index)
            message = f"responder raised {type(exc).__name__}: {exc}"
            return _json_response(_error_body(500, message), 500, {"x-request-id": request_id})
        reply, texts = (out, out.texts) if isinstance(out, Reply) else (_PLAIN, out)

        if reply.delay_s > 0:
            await asyncio.sleep(reply.delay_s)
        if reply.drop_connection:
            return self._drop(request)
        headers = {"x-request-id": request_id, **reply.headers}
        if reply.status >= 400:
            return _json_response(_error_body(reply.status, reply.error_message), reply.status, headers)

        payload, completion_tokens = self._build(req, texts, reply, request_id)
        data = json.dumps(payload, separators=(",", ":")).encode()
        if reply.malformed:
            return web.Response(body=data[: len(data) // 2], headers=headers, content_type=_JSON)
        with self._lock:
            self._completion_tokens += completion_tokens
        return web.Response(body=data, status=reply.status, headers=headers, content_type=_JSON)

    @staticmethod
    def _build(
        req: FakeRequest, out: str | Sequence[str], reply: Reply, request_id: str
    ) -> tuple[dict[str, Any], int]:
        body = req.body
        texts = [out] if isinstance(out, str) else list(out) or [""]
        stop = body.get("stop")
        stops: list[str] = [stop] if isinstance(stop, str) else list(stop or [])
        max_tokens = body.get("max_completion_tokens")
        if max_tokens is None:
            max_tokens = body.get("max_tokens")
        chat = req.kind == "chat"
        want_logprobs = bool(body.get("logprobs")) if chat else body.get("logprobs") is not None
        choices: list[dict[str, Any]] = []
        completion_tokens = 0
        for i in range(req.n):
            text, finish = _shape_text(texts[i % len(texts)], stops, max_tokens)
            completion_tokens += _count_tokens(text)
            choice: dict[str, Any] = {"index": i, "finish_reason": reply.finish_reason or finish}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
                lps = _chat_logprobs(text, reply.token_logprob) if want_logprobs else None
            else:
                choice["text"] = text
                lps = _completion_logprobs(text, reply.token_logprob) if want_logprobs else None
            choice["logprobs"] = lps
            choices.append(choice)
        prompt_tokens = _count_tokens(req.prompt_text)
        payload = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{request_id}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": req.model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return payload, completion_tokens


# -- CLI ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run a fake server until SIGTERM/SIGINT (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m medloom.testing.fake_openai", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = OS-chosen")
    parser.add_argument("--script", default=None, help="MODULE:CALLABLE or path/file.py:CALLABLE responder")
    parser.add_argument("--port-file", default=None, help="write the bound port here")
    parser.add_argument("--models", default="fake-model", help="comma-separated model names")
    args = parser.parse_args(argv)

    responder = _load_responder(args.script) if args.script else echo_responder
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server = FakeOpenAIServer(responder, models=models, host=args.host, port=args.port)
    server.start()
    try:
        if args.port_file:
            tmp = f"{args.port_file}.tmp{os.getpid()}"
            Path(tmp).write_text(f"{server.port}\n")
            os.replace(tmp, args.port_file)  # atomic: readers never see a partial file
        print(f"FakeOpenAIServer listening on {server.base_url}", flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    # Run the canonical module's main so ``Reply`` etc. imported by --script modules are the
    # same classes the server checks against (not copies living in ``__main__``).
    from medloom.testing.fake_openai import main as _main

    sys.exit(_main())
