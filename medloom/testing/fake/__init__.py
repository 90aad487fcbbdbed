"""Fake OpenAI-compatible endpoints for tests and benchmarks.

- :mod:`~medloom.testing.fake.responders`: the scripting API (``FakeRequest``, ``Reply``,
  ``ScriptedResponder``; route by ``req.agent`` / ``req.node`` in process);
- :mod:`~medloom.testing.fake.shaping`: OpenAI-compatible bodies from replies;
- :mod:`~medloom.testing.fake.endpoint`: routes, counters and records, apart from any transport;
- :class:`FakeLLM`: the endpoint in process, through a ``MockTransport`` (unit tests);
- :class:`FakeOpenAIServer`: the endpoint on a real socket (transport, CLI, reliability tests).
"""

from medloom.testing.fake.endpoint import FakeEndpoint
from medloom.testing.fake.inprocess import FakeLLM
from medloom.testing.fake.responders import (
    DownMode,
    Embedder,
    FakeRequest,
    Matcher,
    Reply,
    ReplyLike,
    Responder,
    Rule,
    ScriptedResponder,
    by_caller,
    echo_responder,
    hashed_bag_of_words,
)
from medloom.testing.fake.server import FakeOpenAIServer

__all__ = [
    "DownMode",
    "Embedder",
    "FakeEndpoint",
    "FakeLLM",
    "FakeOpenAIServer",
    "FakeRequest",
    "Matcher",
    "Reply",
    "ReplyLike",
    "Responder",
    "Rule",
    "ScriptedResponder",
    "by_caller",
    "echo_responder",
    "hashed_bag_of_words",
]
