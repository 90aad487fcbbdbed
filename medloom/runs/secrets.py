"""Keep API keys out of logs."""

from __future__ import annotations

import logging

from medloom.llm.redact import MIN_SECRET_LEN, redact_text


class SecretFilter(logging.Filter):
    """Replaces any of the given secret values in log records with ``***``."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= MIN_SECRET_LEN]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self._clean(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                # Tracebacks (and their chained causes) may quote a key: render them here.
                record.exc_text = self._clean(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True

    def _clean(self, text: str) -> str:
        return redact_text(text, self.secrets)
