"""Errors of the embedded LLM server: preparing the default model, starting and running vLLM."""

from __future__ import annotations

from pathlib import Path

from medloom.core.errors import MedloomError


class ServingError(MedloomError, RuntimeError):
    """Base class for errors of the embedded LLM server."""


class ModelPreparationError(ServingError):
    """The default model cannot be prepared (a package is missing, or conversion failed)."""


class ServerStartError(ServingError):
    """A vLLM server exited or did not become ready; carries the exit code and the log's tail."""

    def __init__(
        self,
        message: str,
        *,
        exit_code: int | None = None,
        log_path: Path | None = None,
        log_tail: str = "",
    ):
        self.exit_code = exit_code
        self.log_path = log_path
        self.log_tail = log_tail
        parts = [message]
        if log_path is not None:
            parts.append(f"log: {log_path}")
        if log_tail:
            parts.append(f"last lines of the log:\n{log_tail}")
        super().__init__("\n".join(parts))


class VLLMNotInstalledError(ServerStartError):
    """vLLM cannot be imported by the interpreter meant to run the server."""


class ServerExitedError(ServerStartError):
    """A server that was ready exited on its own."""


class DeviceError(ServingError):
    """The requested device cannot be used: no GPU is visible, or the installed vLLM is the wrong build."""


class LayoutError(ServingError):
    """Replicas, parallel sizes and devices do not fit together (the message shows the arithmetic)."""
