"""Response shaping: OpenAI-compatible JSON bodies from a reply (stop strings, ``max_tokens``,
``n``, logprobs, usage), error bodies and embeddings. Tokens are whitespace-separated words."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from medloom.testing.fake.responders import Embedder, FakeRequest, Reply, RequestKind, content_text

_WORD_RE = re.compile(r"\S+")
_TOKEN_RE = re.compile(r"\s*\S+")  # a word with its leading whitespace; tokens join to text
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


def prompt_text(kind: RequestKind, body: dict[str, Any]) -> str:
    """The prompt as one text (chat: the messages' contents joined by newlines)."""
    if kind == "chat":
        messages = body.get("messages") or []
        return "\n".join(content_text(m.get("content")) if isinstance(m, dict) else str(m) for m in messages)
    prompt = body.get("prompt", "")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):  # batched or token-id prompts are flattened into one
        return "\n".join(p if isinstance(p, str) else json.dumps(p) for p in prompt)
    return str(prompt)


def count_tokens(text: str) -> int:
    return len(text.split())


def shape_text(text: str, stops: Sequence[str], max_tokens: int | None) -> tuple[str, str]:
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


def _completion_logprobs(
    text: str, lp: float, scorer: Callable[[str, str], float] | None = None
) -> dict[str, Any]:
    tokens = _TOKEN_RE.findall(text)
    offsets: list[int] = []
    pos = 0
    for tok in tokens:
        offsets.append(pos)
        pos += len(tok)
    values: list[float | None] = [
        lp if scorer is None else scorer(text[:o], t) for t, o in zip(tokens, offsets, strict=True)
    ]
    if scorer is not None and values:
        values[0] = None  # like vLLM's echo: the first prompt token has no context
    return {
        "tokens": tokens,
        "token_logprobs": values,
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


def _echo_batch(req: FakeRequest, prompts: list[str], reply: Reply, request_id: str) -> dict[str, Any]:
    """A batched echo (a list of prompts, ``max_tokens: 0``): one choice per prompt with its
    prompt log-probabilities."""
    choices = [
        {
            "index": i,
            "text": p,
            "finish_reason": "length",
            "logprobs": _completion_logprobs(p, reply.token_logprob, reply.echo_logprob),
        }
        for i, p in enumerate(prompts)
    ]
    tokens = sum(count_tokens(p) for p in prompts)
    return {
        "id": f"cmpl-{request_id}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": req.model,
        "choices": choices,
        "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens},
    }


def error_body(status: int, message: str | None) -> dict[str, Any]:
    """An OpenAI-style error body."""
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


def completion_payload(
    req: FakeRequest, out: str | Sequence[str], reply: Reply, request_id: str
) -> tuple[dict[str, Any], int]:
    """The completion / chat completion body answering ``req`` with ``out``, and its
    completion tokens."""
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
    prompts = body.get("prompt") if not chat else None
    if isinstance(prompts, list) and body.get("echo") and all(isinstance(p, str) for p in prompts):
        return _echo_batch(req, prompts, reply, request_id), 0
    for i in range(req.n):
        text, finish = shape_text(texts[i % len(texts)], stops, max_tokens)
        completion_tokens += count_tokens(text)
        choice: dict[str, Any] = {"index": i, "finish_reason": reply.finish_reason or finish}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
            lps = _chat_logprobs(text, reply.token_logprob) if want_logprobs else None
        else:
            if body.get("echo"):
                text = req.prompt_text + text
            choice["text"] = text
            lps = (
                _completion_logprobs(
                    text, reply.token_logprob, reply.echo_logprob if body.get("echo") else None
                )
                if want_logprobs
                else None
            )
        choice["logprobs"] = lps
        choices.append(choice)
    prompt_tokens = count_tokens(req.prompt_text)
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


def embeddings_payload(texts: list[str], model: str, embedder: Embedder) -> dict[str, Any]:
    """The ``/embeddings`` body for ``texts``."""
    data = [
        {"object": "embedding", "index": i, "embedding": [float(v) for v in embedder(t)]}
        for i, t in enumerate(texts)
    ]
    tokens = sum(count_tokens(t) for t in texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}
