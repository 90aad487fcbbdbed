"""Keep configured API key values out of everything medloom records.

A model can echo a key it was shown (a prompt quoting the environment, a proxy putting the
``Authorization`` header into its output), and an error message can quote it. The client passes
every fresh response and every error through here before anything is cached, recorded in a
trajectory or written as a dataset row.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from medloom.core.calls import Choice, TokenLogprob
from medloom.core.errors import LLMError

MASK = "***"
MIN_SECRET_LEN = 4
"""Shorter values (``EMPTY``-style placeholders aside) are too common to mask safely."""


def configured_secrets(key_envs: Iterable[str | None]) -> list[str]:
    """The values of the set environment variables among ``key_envs`` (the endpoints' ``api_key_env``)."""
    values = {os.environ.get(name) or "" for name in key_envs if name}
    return sorted((v for v in values if len(v) >= MIN_SECRET_LEN), key=len, reverse=True)


def redact_text(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_choices(choices: list[Choice], secrets: list[str]) -> list[Choice]:
    """The choices with secrets masked in their text and logprob tokens (unchanged ones kept as is)."""
    return [_redact_choice(c, secrets) if _mentions(c, secrets) else c for c in choices]


def redact_error(err: LLMError, secrets: list[str]) -> bool:
    """Mask secrets in an error's message in place; returns whether anything was masked."""
    message = str(err)
    clean = redact_text(message, secrets)
    if clean == message:
        return False
    err.args = (clean,)
    return True


def _mentions(choice: Choice, secrets: list[str]) -> bool:
    tokens = "".join(t.token for t in choice.logprobs or [])
    return any(s in choice.text or s in tokens for s in secrets)


def _redact_choice(choice: Choice, secrets: list[str]) -> Choice:
    logprobs = _redact_tokens(choice.logprobs, secrets) if choice.logprobs else choice.logprobs
    return choice.model_copy(update={"text": redact_text(choice.text, secrets), "logprobs": logprobs})


def _redact_tokens(tokens: list[TokenLogprob], secrets: list[str]) -> list[TokenLogprob]:
    """Mask a secret even when it spans several tokens: the token where it starts carries the mask,
    the others lose their share of it, so the tokens still join to the redacted text."""
    texts = [t.token for t in tokens]
    for secret in secrets:
        joined = "".join(texts)
        start = joined.find(secret)
        while start >= 0:
            end = start + len(secret)
            texts = _mask_span(texts, start, end)
            joined = "".join(texts)
            start = joined.find(secret, start + len(MASK))
    return [t.model_copy(update={"token": text}) for t, text in zip(tokens, texts, strict=True)]


def _mask_span(texts: list[str], start: int, end: int) -> list[str]:
    out: list[str] = []
    pos = 0
    masked = False
    for text in texts:
        lo, hi = pos, pos + len(text)
        pos = hi
        if hi <= start or lo >= end:
            out.append(text)
            continue
        before = text[: max(0, start - lo)]
        after = text[max(0, end - lo) :] if end < hi else ""
        out.append(before + ("" if masked else MASK) + after)
        masked = True
    return out
