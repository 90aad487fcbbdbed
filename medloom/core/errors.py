"""The exception hierarchy: every error medloom raises on purpose derives from MedloomError."""

from __future__ import annotations

from pathlib import Path


class MedloomError(Exception):
    """Base class for medloom's errors."""


class ConfigError(MedloomError):
    """A config file (or an override) is invalid; names the file and the key."""

    def __init__(self, message: str, *, file: str | Path | None = None, key: str | None = None):
        self.file = str(file) if file is not None else None
        self.key = key
        where = []
        if self.file:
            where.append(self.file)
        if key:
            where.append(f"key '{key}'")
        prefix = f"{': '.join(where)}: " if where else ""
        super().__init__(f"{prefix}{message}")


class GraphError(ConfigError):
    """A graph spec is structurally wrong (unknown node, unbounded cycle, unreachable node)."""


class DataError(MedloomError):
    """An input dataset cannot be read at all (a bad row is reported and skipped instead)."""


class LLMError(MedloomError):
    """An LLM call failed."""

    def __init__(self, message: str, *, endpoint: str | None = None, status: int | None = None):
        self.endpoint = endpoint
        self.status = status
        super().__init__(message)


class RetryableLLMError(LLMError):
    """A failure worth retrying: connection error, timeout, 429, 5xx."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        self.retry_after = retry_after
        super().__init__(message, endpoint=endpoint, status=status)


class FatalLLMError(LLMError):
    """A failure that retrying cannot fix: bad request, authentication, unknown model."""


class NoEndpointAvailable(LLMError):
    """No endpoint serves the requested model."""


class EndpointsResting(RetryableLLMError):
    """Every endpoint for the model is out of rotation after repeated failures (retryable:
    a later attempt may find one probed back in)."""


class RunError(MedloomError):
    """A run cannot start or resume (missing run directory, config mismatch)."""


class TrajectoryError(MedloomError):
    """A trajectory file cannot be read: written by a newer medloom, or a line is not an event."""
