"""The fake endpoint itself, apart from how requests reach it: routes, counters, the responder
call and the shaped outcome. The HTTP server and the in-process fake both serve through it."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medloom.testing.fake.responders import (
    PLAIN,
    DownMode,
    Embedder,
    FakeRequest,
    Reply,
    RequestKind,
    Responder,
    echo_responder,
    hashed_bag_of_words,
)
from medloom.testing.fake.shaping import (
    completion_payload,
    embeddings_payload,
    error_body,
    prompt_text,
)

log = logging.getLogger(__name__)

_KINDS: dict[str, RequestKind] = {"/completions": "completion", "/chat/completions": "chat"}


@dataclass(slots=True)
class Outcome:
    """What to send back: a JSON payload with a status, or a dropped / truncated reply."""

    status: int = 200
    payload: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    """Close the connection without a response."""
    truncate: bool = False
    """Send only the first half of the serialised payload (a malformed body)."""

    def body_bytes(self) -> bytes:
        data = json.dumps(self.payload, separators=(",", ":")).encode()
        return data[: len(data) // 2] if self.truncate else data


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Outcome:
    return Outcome(status=status, payload=error_body(status, message), headers=headers or {})


class FakeEndpoint:
    """An OpenAI-compatible endpoint answered by a responder; thread-safe counters and records."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        models: Sequence[str] = ("fake-model",),
        strict_models: bool = False,
        record_requests: bool = True,
        embedder: Embedder | None = None,
    ) -> None:
        self.responder: Responder = responder or echo_responder
        self.embedder: Embedder = embedder or hashed_bag_of_words
        self.embedding_inputs: list[str] = []
        """Every text sent to ``/v1/embeddings``, in order."""
        self.embedding_tags: list[Mapping[str, str]] = []
        """Who asked for each ``/v1/embeddings`` call (in process only)."""
        self.models = list(models)
        self.strict_models = strict_models
        self.record_requests = record_requests
        self._lock = threading.Lock()
        self._requests: list[FakeRequest] = []
        self._request_count = 0
        self._completion_tokens = 0
        self._rejected = 0
        self._in_flight = 0
        self._peak_in_flight = 0
        self._seen: dict[bytes, int] = {}  # body digest → times seen
        self._down: DownMode | None = None

    # -- public state --------------------------------------------------------------------

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
    def peak_in_flight(self) -> int:
        """The most completion/chat requests this endpoint was answering at one time."""
        with self._lock:
            return self._peak_in_flight

    @property
    def completion_tokens_served(self) -> int:
        """Completion tokens in successful (200, well-formed) replies: the "paid" tokens."""
        with self._lock:
            return self._completion_tokens

    @property
    def rejected_count(self) -> int:
        """Requests that hit the endpoint while it was down."""
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
            self._peak_in_flight = self._in_flight
            self._seen.clear()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "request_count": self._request_count,
                "completion_tokens_served": self._completion_tokens,
                "rejected_count": self._rejected,
            }

    # -- handling ------------------------------------------------------------------------

    async def handle(
        self,
        method: str,
        path: str,
        body: bytes | Mapping[str, Any] | None,
        headers: Mapping[str, str],
        tags: Mapping[str, str] | None = None,
    ) -> Outcome:
        """The outcome of one request (``path`` with or without the ``/v1`` prefix)."""
        if self._down is not None:
            with self._lock:
                self._rejected += 1
            if self._down == "503":
                return _error(503, "fake server is down")
            return Outcome(drop=True)
        route = path.removeprefix("/v1")
        if method == "GET" and route == "/models":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
            return Outcome(payload={"object": "list", "data": data})
        if method == "GET" and path == "/health":
            return Outcome(payload={"status": "ok"})
        if method == "GET" and path == "/_fake/stats":
            return Outcome(payload=dict(self.stats()))
        if method != "POST" or (route not in _KINDS and route != "/embeddings"):
            return _error(404, f"no route {method} {path}")
        digest_source = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        if isinstance(body, bytes):
            try:
                parsed = json.loads(body)
            except ValueError as exc:
                return _error(400, f"invalid JSON body: {exc}")
        else:
            parsed = dict(body or {})
        if not isinstance(parsed, dict):
            return _error(400, "body must be a JSON object")
        if route == "/embeddings":
            return self._embeddings(parsed, tags or {})
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            return await self._generate(_KINDS[route], parsed, digest_source, headers, tags or {})
        finally:
            with self._lock:
                self._in_flight -= 1

    def _model(self, body: dict[str, Any]) -> tuple[str, Outcome | None]:
        model = str(body.get("model") or self.models[0])
        if self.strict_models and model not in self.models:
            return model, _error(404, f"model {model!r} not found")
        return model, None

    def _embeddings(self, body: dict[str, Any], tags: Mapping[str, str]) -> Outcome:
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return _error(400, "input must be a string or a list of strings")
        model, refused = self._model(body)
        if refused is not None:
            return refused
        with self._lock:
            self.embedding_inputs.extend(texts)
            self.embedding_tags.append(dict(tags))
        return Outcome(payload=embeddings_payload(texts, model, self.embedder))

    async def _generate(
        self,
        kind: RequestKind,
        body: dict[str, Any],
        raw: bytes,
        headers: Mapping[str, str],
        tags: Mapping[str, str],
    ) -> Outcome:
        if body.get("stream"):
            return _error(400, "the fake endpoint does not stream")
        model, refused = self._model(body)
        if refused is not None:
            return refused
        key = hashlib.blake2b(raw, digest_size=16).digest()
        with self._lock:
            index = self._request_count
            self._request_count += 1
            attempt = self._seen.get(key, 0)
            self._seen[key] = attempt + 1
            req = FakeRequest(
                kind=kind,
                body=body,
                prompt_text=prompt_text(kind, body),
                model=model,
                n=int(body.get("n") or 1),
                index_in_run=index,
                attempt=attempt,
                headers=headers,
                tags=dict(tags),
            )
            if self.record_requests:
                self._requests.append(req)
        request_id = f"req-fake-{index}"
        try:
            out = self.responder(req)
            if inspect.isawaitable(out):
                out = await out
        except Exception as exc:
            log.exception("fake endpoint responder failed on request %d", index)
            return _error(500, f"responder raised {type(exc).__name__}: {exc}", {"x-request-id": request_id})
        reply, texts = (out, out.texts) if isinstance(out, Reply) else (PLAIN, out)
        if reply.delay_s > 0:
            await asyncio.sleep(reply.delay_s)
        if reply.drop_connection:
            return Outcome(drop=True)
        reply_headers = {"x-request-id": request_id, **reply.headers}
        if reply.status >= 400:
            return Outcome(reply.status, error_body(reply.status, reply.error_message), reply_headers)
        payload, completion_tokens = completion_payload(req, texts, reply, request_id)
        if reply.malformed:
            return Outcome(payload=payload, headers=reply_headers, truncate=True)
        with self._lock:
            self._completion_tokens += completion_tokens
        return Outcome(reply.status, payload, reply_headers)
