"""The scripting API of the fake endpoints: what a request looks like to a responder, what a
responder may answer, and ready-made responders.

A responder is ``responder(req: FakeRequest) -> Reply | str | list[str]`` (or an awaitable of
one). In process, ``req.agent`` and ``req.node`` name the caller, so scripts route by role rather
than by prompt wording::

    script = ScriptedResponder(default="Step 1: ...\\nAnswer: B")
    script.on(agent="judge", reply="Correct\\nScore: 5")
    script.add(lambda q: q.attempt == 0, Reply.error(503), times=1)
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, cast

RequestKind: TypeAlias = Literal["completion", "chat"]
DownMode: TypeAlias = Literal["drop", "refuse", "503"]


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
    tags: Mapping[str, str] = field(default_factory=dict)
    """Who called (``agent``, ``node``); only in process: nothing of it crosses a socket."""

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Chat messages (empty for completions)."""
        return cast(list[dict[str, Any]], self.body.get("messages") or [])

    @property
    def agent(self) -> str | None:
        """The calling agent's name (in process only)."""
        return self.tags.get("agent")

    @property
    def node(self) -> str | None:
        """The calling graph node's name (in process only)."""
        return self.tags.get("node")


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
    echo_logprob: Callable[[str, str], float] | None = None
    """With ``echo``: the log-probability of a token given the text before it (default
    ``token_logprob``), so a test can make a context raise a continuation's likelihood."""

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
        """HTTP 200 with a truncated JSON body."""
        return cls(texts="garbage", malformed=True)

    @classmethod
    def disconnect(cls) -> Reply:
        """Close the connection without sending any response."""
        return cls(drop_connection=True)


PLAIN = Reply()
ReplyLike: TypeAlias = Reply | str | Sequence[str]
Responder: TypeAlias = Callable[[FakeRequest], ReplyLike | Awaitable[ReplyLike]]
Matcher: TypeAlias = str | Callable[[FakeRequest], bool]
Embedder: TypeAlias = Callable[[str], Sequence[float]]


def hashed_bag_of_words(text: str, dim: int = 64) -> list[float]:
    """Default embedder: a deterministic, L2-normalised bag of hashed lowercase words, so texts
    sharing words are close (enough for tests of nearest-neighbour code)."""
    vector = [0.0] * dim
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[int(hashlib.blake2b(word.encode(), digest_size=4).hexdigest(), 16) % dim] += 1.0
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]


def content_text(content: Any) -> str:
    """The text of a chat message's content (multi-part content: its text parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def echo_responder(req: FakeRequest) -> str:
    """Default responder: answer with the prompt text (chat: the last message's content)."""
    if req.kind == "chat" and req.messages:
        return content_text(req.messages[-1].get("content"))
    return req.prompt_text


def by_caller(agent: str | None = None, node: str | None = None) -> Callable[[FakeRequest], bool]:
    """A matcher for requests from ``agent`` and/or ``node`` (in process)."""
    if agent is None and node is None:
        raise ValueError("by_caller needs an agent or a node name")

    def match(req: FakeRequest) -> bool:
        return (agent is None or req.agent == agent) and (node is None or req.node == node)

    return match


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
    """A responder from ordered rules (caller, prompt substring or predicate → reply or callable)."""

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

    def on(
        self,
        reply: ReplyLike | Responder,
        *,
        agent: str | None = None,
        node: str | None = None,
        times: int | None = None,
    ) -> ScriptedResponder:
        """Append a rule for calls from ``agent`` and/or ``node``; returns ``self``."""
        return self.add(by_caller(agent, node), reply, times=times)

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
